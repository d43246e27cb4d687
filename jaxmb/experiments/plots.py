"""Tables and PNG plots of the experiments: means with 95% Student-t intervals over seeds."""

from __future__ import annotations

import os
from collections import defaultdict
from typing import Any

import numpy as np

from jaxmb.experiments.variants import LABELS
from jaxmb.plotting import _save, plt
from jaxmb.stats import t_interval


def mean_intervals(rows: list[dict[str, Any]], *keys: str) -> dict[str, dict[str, Any]]:
    """Groups `rows` by `keys` and returns, per group (keys joined by '/'), the mean of
    `return`, its 95% t interval (None for one seed) and the seed count."""
    groups: dict[str, list[float]] = defaultdict(list)
    for row in rows:
        groups["/".join(str(row[k]) for k in keys)].append(float(row["return"]))
    out = {}
    for group, values in groups.items():
        interval = t_interval(values)
        out[group] = {
            "mean": float(np.mean(values)),
            "ci95": None if interval is None else [round(x, 3) for x in interval],
            "seeds": len(values),
        }
    return out


def last_finite(row: np.ndarray) -> float:
    """The last finite value of a metric's history row (the final evaluation); NaN if none."""
    ok = np.isfinite(row)
    return float(row[ok][-1]) if ok.any() else float("nan")


def seed_stat(values) -> dict[str, Any]:
    """Mean, 95% t interval (None for fewer than two) and count of the finite values among
    `values` (one per seed; None and NaN are left out)."""
    ok = [float(v) for v in values if v is not None and np.isfinite(v)]
    interval = t_interval(ok)
    return {
        "mean": float(np.mean(ok)) if ok else None,
        "ci95": None if interval is None else [round(x, 4) for x in interval],
        "seeds": len(ok),
    }


def _errorbars(stats: list[dict[str, Any]]) -> np.ndarray:
    means = np.array([s["mean"] for s in stats])
    low = np.array([s["mean"] if s["ci95"] is None else s["ci95"][0] for s in stats])
    high = np.array([s["mean"] if s["ci95"] is None else s["ci95"][1] for s in stats])
    # Seeds that agree give a zero-width interval, which the 3-decimal rounding of `ci95` can
    # put just inside the mean (-0.6875 in [-0.688, -0.688]): matplotlib refuses negative bars.
    return np.maximum(np.stack([means - low, high - means]), 0.0)


def _lines(ax, rows, x_key, line_key, x_values, labels=None, ylabel="greedy episode return"):
    """One line per `line_key` value: mean return against `x_key`, interval shaded."""
    stats = mean_intervals(rows, line_key, x_key)
    for line in dict.fromkeys(r[line_key] for r in rows):
        cells = [stats.get(f"{line}/{x}") for x in x_values]
        xs = [i for i, c in enumerate(cells) if c is not None]
        cells = [c for c in cells if c is not None]
        means = np.array([c["mean"] for c in cells])
        err = _errorbars(cells)
        label = (labels or {}).get(line, str(line))
        ax.plot(xs, means, marker="o", label=label)
        ax.fill_between(xs, means - err[0], means + err[1], alpha=0.15)
    ax.set_xticks(range(len(x_values)), [str(x) for x in x_values])
    ax.grid(alpha=0.3)
    ax.set_ylabel(ylabel)


def planning_plots(
    out: str,
    variant_rows: list[dict[str, Any]],
    budget_rows: list[dict[str, Any]],
    depth_rows: list[dict[str, Any]],
    train_rows: list[dict[str, Any]],
    curves: dict[str, dict[str, np.ndarray]],
    *,
    title: str,
    xlabel: str = "environment steps",
    ylabel: str = "greedy episode return",
) -> dict[str, str]:
    """Writes the planning experiment's PNGs under `out/plots/`; returns name -> path.
    `xlabel` says what the learning curves' `env_steps` count (`plotting.steps_label`),
    `ylabel` what a return is (a two-player game's mean outcome against random)."""
    paths = {}
    path = os.path.join(out, "plots", "variants.png")
    stats = mean_intervals(variant_rows, "variant")
    names = list(stats)
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.bar(
        range(len(names)),
        [stats[n]["mean"] for n in names],
        yerr=_errorbars([stats[n] for n in names]),
        capsize=4,
        color="tab:blue",
    )
    for i, name in enumerate(names):  # every seed as a dot: with few seeds the bars hide a lot
        values = [float(r["return"]) for r in variant_rows if r["variant"] == name]
        ax.scatter([i] * len(values), values, color="black", s=12, zorder=3)
    ax.set_xticks(range(len(names)), [LABELS.get(n, n) for n in names], rotation=15)
    ax.set_ylabel(f"{ylabel}: mean, 95% CI, seeds", fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    paths["variants"] = _save(fig, path, f"Where search is used: {title}")

    if budget_rows:
        path = os.path.join(out, "plots", "test_budget.png")
        budgets = sorted({r["test_budget"] for r in budget_rows})
        fig, ax = plt.subplots(figsize=(7, 4))
        _lines(ax, budget_rows, "test_budget", "variant", budgets, LABELS, ylabel)
        ax.set_xlabel("simulations at test time (0: policy prior)")
        ax.legend(fontsize=8)
        paths["test_budget"] = _save(fig, path, f"Test-time search budget: {title}")

    if train_rows:
        path = os.path.join(out, "plots", "train_budget.png")
        budgets = sorted({r["train_budget"] for r in train_rows})
        fig, ax = plt.subplots(figsize=(7, 4))
        _lines(ax, train_rows, "train_budget", "test", budgets, ylabel=ylabel)
        ax.set_xlabel("simulations while training (Learn+Data+Eval)")
        ax.legend(title="acting at test", fontsize=8)
        paths["train_budget"] = _save(fig, path, f"Train-time search budget: {title}")

    if depth_rows:
        path = os.path.join(out, "plots", "depth.png")
        kinds = list(dict.fromkeys(r["kind"] for r in depth_rows))
        fig, axes = plt.subplots(1, len(kinds), figsize=(6 * len(kinds), 4), squeeze=False)
        for ax, kind in zip(axes[0], kinds, strict=True):
            rows = [r for r in depth_rows if r["kind"] == kind]
            depths = list(dict.fromkeys(r["depth"] for r in rows))
            _lines(ax, rows, "depth", "variant", depths, LABELS, ylabel)
            what = "tree depth limit" if kind == "max_depth" else "D_UCT (prior below)"
            ax.set_xlabel(f"{what}, {rows[0]['budget']} simulations")
            ax.legend(fontsize=8)
        paths["depth"] = _save(fig, path, f"Search depth at test time: {title}")

    if curves:
        path = os.path.join(out, "plots", "learning_curves.png")
        fig, ax = plt.subplots(figsize=(7, 4))
        for name, metrics in curves.items():
            values = np.asarray(metrics["eval/episode_return"])  # [S, I]
            steps = np.asarray(metrics["env_steps"])[0]
            ok = np.isfinite(values).all(axis=0)
            mean = values[:, ok].mean(axis=0)
            ax.plot(steps[ok], mean, label=LABELS.get(name, name))
            if values.shape[0] > 1:
                half = 1.96 * values[:, ok].std(axis=0, ddof=1) / np.sqrt(values.shape[0])
                ax.fill_between(steps[ok], mean - half, mean + half, alpha=0.15)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(f"{ylabel} (own test setting)", fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        paths["learning_curves"] = _save(fig, path, f"Learning curves: {title}")
    return paths
