"""Learning-curve plots (PNG) for a run directory."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # files only; no display on training machines

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from jaxmb.stats import t_interval  # noqa: E402


def _save(fig, path: str, title: str) -> str:
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def steps_label(config) -> str:
    """The x axis of a run's curves: what its `env_steps` metric counts. With
    `env.action_repeat` above 1 the loop's env steps are agent decisions."""
    repeat = config.env.action_repeat
    return "environment steps" if repeat == 1 else f"agent decisions ({repeat} env steps each)"


def plot_learning_curves(
    metrics: dict[str, np.ndarray],
    path: str,
    *,
    title: str = "",
    xlabel: str = "environment steps",
) -> str:
    """Greedy eval return (per seed, thin; mean, thick; on unseen levels too, dashed, when the
    run logs `eval/unseen_episode_return`) and training episode return.

    Args:
      metrics: arrays `[num_seeds, num_iterations]` as `make_train` returns them.
      path: PNG path to write.
      title: figure title.
      xlabel: what `metrics["env_steps"]` counts (`steps_label(config)`).
    """
    steps = metrics["env_steps"][0]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, key, label in (
        (axes[0], "eval/episode_return", "greedy evaluation return"),
        (axes[1], "train/episode_return", "training episode return"),
    ):
        values = metrics[key]
        for seed, row in enumerate(values):
            ok = np.isfinite(row)
            ax.plot(steps[ok], row[ok], lw=0.8, alpha=0.5, label=f"seed {seed}")
        with np.errstate(all="ignore"):
            ok = np.isfinite(values).all(axis=0)
            if ok.any():
                ax.plot(steps[ok], values[:, ok].mean(axis=0), color="black", lw=2, label="mean")
        ax.set_xlabel(xlabel)
        ax.set_title(label)
        ax.grid(alpha=0.3)
    unseen = metrics.get("eval/unseen_episode_return")
    if unseen is not None:  # env.eval_unseen_levels: the held-out levels beside the trained ones
        ok = np.isfinite(unseen).all(axis=0)
        for row in unseen:
            good = np.isfinite(row)
            axes[0].plot(steps[good], row[good], color="tab:red", lw=0.8, ls="--", alpha=0.4)
        if ok.any():
            axes[0].plot(
                steps[ok],
                unseen[:, ok].mean(axis=0),
                color="tab:red",
                lw=2,
                ls="--",
                label="mean, unseen levels",
            )
        axes[0].set_title("greedy evaluation return: training levels and unseen levels")
    axes[0].set_ylabel("episode return")
    axes[0].legend(fontsize=7)
    return _save(fig, path, title)


def plot_sweep(
    metrics: dict[str, np.ndarray],
    member_point: np.ndarray,
    point_labels: list[str],
    path: str,
    *,
    title: str = "",
    xlabel: str = "environment steps",
) -> str:
    """Greedy eval curves per grid point (mean over seeds, 95% t interval shaded) and the
    final eval return per point as bars with the same interval.

    Args:
      metrics: arrays `[num_members, num_iterations]`.
      member_point: `[num_members]`, the grid point of each member.
      point_labels: one label per grid point.
      path: PNG path to write.
      title: figure title.
      xlabel: what `metrics["env_steps"]` counts (`steps_label(config)`).
    """
    evals = metrics["eval/episode_return"]
    fig, (curves, bars) = plt.subplots(
        1, 2, figsize=(12, 4.5), gridspec_kw={"width_ratios": [3, 2]}
    )
    means, lows, highs = [], [], []
    for p, label in enumerate(point_labels):
        # Per point: a structural key (num_envs, ...) may change the steps per iteration.
        steps = metrics["env_steps"][member_point == p][0]
        evaluated = np.isfinite(evals[member_point == p]).any(axis=0)
        rows = evals[member_point == p][:, evaluated]
        with np.errstate(all="ignore"):
            mean = np.nanmean(rows, axis=0)
        line = curves.plot(steps[evaluated], mean, lw=1.8, marker="o", ms=3, label=label)[0]
        intervals = [t_interval(rows[:, j]) for j in range(rows.shape[1])]
        if all(i is not None for i in intervals) and intervals:
            low, high = np.asarray(intervals).T
            curves.fill_between(steps[evaluated], low, high, color=line.get_color(), alpha=0.2)
        finals = [row[np.isfinite(row)][-1] for row in rows if np.isfinite(row).any()]
        final_mean = float(np.mean(finals)) if finals else np.nan
        interval = t_interval(finals)
        means.append(final_mean)
        # max(0, .): seeds that agree give a zero-width interval, which float32 means can put
        # a rounding error inside the mean, and matplotlib refuses negative error bars.
        lows.append(max(0.0, final_mean - interval[0]) if interval else 0.0)
        highs.append(max(0.0, interval[1] - final_mean) if interval else 0.0)
    curves.set_xlabel(xlabel)
    curves.set_ylabel("greedy evaluation return")
    curves.grid(alpha=0.3)
    curves.legend(fontsize=7)
    positions = np.arange(len(point_labels))
    bars.bar(positions, means, yerr=[lows, highs], capsize=4, color="tab:blue", alpha=0.7)
    bars.set_xticks(positions, point_labels, rotation=30, ha="right", fontsize=7)
    bars.set_ylabel("final greedy evaluation return")
    bars.grid(alpha=0.3, axis="y")
    return _save(fig, path, title)
