"""Learning-curve plots (PNG) for a run directory."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # files only; no display on training machines

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def plot_learning_curves(metrics: dict[str, np.ndarray], path: str, *, title: str = "") -> str:
    """Greedy eval return (per seed, thin; mean, thick) and training episode return.

    Args:
      metrics: arrays `[num_seeds, num_iterations]` as `make_train` returns them.
      path: PNG path to write.
      title: figure title.
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
        ax.set_xlabel("environment steps")
        ax.set_title(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("episode return")
    axes[0].legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
