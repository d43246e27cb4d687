"""Draws win_rates.png from evals.csv: the ablation's win rates against random (131,072
moves, 256 games per bar, Wilson 95% intervals), by search model, augmentation, rules and
test-time simulations.

    python docs/results/go-augment-cpu/plot_ablation.py
"""

import csv
import math
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def wilson(rate: float, n: int, z: float = 1.96) -> tuple[float, float]:
    centre = (rate + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(rate * (1 - rate) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def main() -> None:
    with open(os.path.join(HERE, "evals.csv")) as f:
        rows = [r for r in csv.DictReader(f) if r["steps"] == "131072"]
    groups = [
        ("env", "standard"),
        ("learned", "standard"),
        ("learned", "training"),
    ]
    budgets = ["0", "16", "64"]
    fig, axes = plt.subplots(1, len(groups), figsize=(12, 3.8), sharey=True)
    for ax, (model, rules) in zip(axes, groups, strict=True):
        for i, aug in enumerate(["off", "on"]):
            xs, ys, lo, hi = [], [], [], []
            for j, budget in enumerate(budgets):
                (row,) = [
                    r
                    for r in rows
                    if (r["search_model"], r["rules"], r["augmentation"], r["simulations"])
                    == (model, rules, aug, budget)
                ]
                rate, games = float(row["win_rate"]), int(row["games"])
                low, high = wilson(rate, games)
                xs.append(j + (i - 0.5) * 0.38)
                ys.append(rate)
                lo.append(max(rate - low, 0.0))
                hi.append(max(high - rate, 0.0))
            ax.bar(xs, ys, 0.36, yerr=[lo, hi], capsize=3, label=f"augmentation {aug}")
        ax.axhline(0.8, color="k", lw=0.8, ls="--")
        ax.axhline(0.5, color="grey", lw=0.6, ls=":")
        ax.set_xticks(range(len(budgets)), ["prior", "16 sims", "64 sims"])
        ax.set_title(f"{model} model, {rules} rules")
        ax.set_ylim(0, 1)
    axes[0].set_ylabel("win rate vs uniform random (256 games)")
    axes[0].legend(loc="upper left", fontsize=8)
    fig.suptitle("9x9 Go, 131,072 self-play moves, one seed each (dashed: the 80% bar)")
    fig.tight_layout()
    out = os.path.join(HERE, "win_rates.png")
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
