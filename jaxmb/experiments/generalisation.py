"""Planning and generalisation (Hamrick et al. 2021, section 6): train on a few procedural
levels, then search on unseen ones with the learned model and with a perfect model.

    python -m jaxmb experiment planning-generalisation --env jaxmb:MiniPacman-v0 --levels 5

1. Vanilla MuZero (Learn+Data+Eval) trains on levels `[0, levels)` (`env.params.num_levels`,
   `start_level=0`) with every seed, in one program (`agent/` run directory; resumes).
2. Every trained agent is evaluated greedily on the training levels and on unseen ones
   (`start_level=test_start_level`, `num_levels=test_num_levels`), at each test budget
   (0 = the prior), searching with the learned model and with the environment itself as the
   model (`agent.search.model=env`: a perfect model; the prior and value are still the
   networks'), `eval_episodes` episodes per seed and setting.
3. Writes `generalisation.csv`, `summary.json` and `plots/generalisation.png` (return
   against test budget, one line per level set and model, 95% t intervals over seeds).

The paper's finding to check: on unseen mazes even a perfect model does not rescue search
when the value and prior do not generalise.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Any

import jax
import numpy as np

from jaxmb.config import ConfigError
from jaxmb.evaluate import evaluator
from jaxmb.experiments import planning, plots
from jaxmb.plotting import _save, plt


@dataclasses.dataclass(frozen=True, kw_only=True)
class GeneralisationSpec:
    """What `run_generalisation` trains and measures.

    Attributes:
      base: the preset (a name or a YAML path); its env must take `num_levels` and
        `start_level`.
      overrides: dotted overrides of `base`.
      levels: training levels `[0, levels)`.
      seeds: seeds trained together.
      test_start_level, test_num_levels: the unseen levels.
      test_budgets: simulations at test time (0 = the prior).
      models: search models to compare ("learned", "env").
      eval_episodes: greedy episodes per seed and setting.
      reanalyse_fraction: share of each batch whose targets are recomputed by search with
        the target network (0: the search policies and values stored when acting, as the
        presets train; the planning experiment uses 1 so that Learn+Data+Eval matches Learn).
    """

    base: str = "configs/muzero/minipacman.yaml"
    overrides: tuple[str, ...] = ()
    levels: int = 5
    seeds: int = 3
    test_start_level: int = 1_000_000
    test_num_levels: int = 1_000_000
    test_budgets: tuple[int, ...] = (0, 1, 5, 25)
    models: tuple[str, ...] = ("learned", "env")
    eval_episodes: int = 32
    reanalyse_fraction: float = 0.0

    def __post_init__(self) -> None:
        if self.levels < 1:
            raise ConfigError(f"levels must be >= 1, got {self.levels}", "levels")
        if self.test_start_level < self.levels:
            raise ConfigError(
                f"test levels from {self.test_start_level} overlap the training levels "
                f"[0, {self.levels})",
                "test_start_level",
            )
        for model in self.models:
            if model not in ("learned", "env"):
                raise ConfigError(f"models are 'learned' or 'env', got {model!r}", "models")


def run_generalisation(
    spec: GeneralisationSpec, *, name: str | None = None, root: str = "runs", quiet: bool = False
) -> dict[str, Any]:
    """Runs the experiment (see the module docstring); returns `summary.json`'s content."""
    train_levels = {"num_levels": spec.levels, "start_level": 0}
    level_sets = {
        "train levels": train_levels,
        "unseen levels": {"num_levels": spec.test_num_levels, "start_level": spec.test_start_level},
    }
    pspec = planning.PlanningSpec(
        base=spec.base,
        overrides=spec.overrides,
        seeds=spec.seeds,
        reanalyse_fraction=spec.reanalyse_fraction,
    )
    extra = [
        f"run.num_seeds={spec.seeds}",
        *(f"env.params.{k}={v}" for k, v in train_levels.items()),
    ]
    config = planning.variant_config(pspec, "learn_data_eval", extra)
    out = planning.experiment_dir(root, name, "generalisation", config.env.id, spec)
    start = time.perf_counter()
    states, metrics = planning.train_or_load(config, os.path.join(out, "agent"), quiet)

    keys = jax.random.split(jax.random.key(config.run.seed + 104729), spec.seeds)
    rows = []
    for level_name, params in level_sets.items():
        for model in spec.models:
            for budget in spec.test_budgets:
                if model == "env" and budget == 0:
                    continue  # no search: the model is not used
                evaluate = evaluator(
                    config,
                    episodes=spec.eval_episodes,
                    budget=budget,
                    env_params=params,
                    model=model,
                )
                values = np.asarray(evaluate(states, keys), np.float64)
                for seed, value in enumerate(values):
                    rows.append(
                        {
                            "levels": level_name,
                            "model": model,
                            "test_budget": budget,
                            "seed": seed,
                            "return": value,
                        }  # fmt: skip
                    )
    planning.write_csv(os.path.join(out, "generalisation.csv"), rows)
    plot = _plot(out, rows, f"{config.env.id}, trained on {spec.levels} levels, {spec.seeds} seeds")
    summary = {
        "env_id": config.env.id,
        "levels": spec.levels,
        "seeds": spec.seeds,
        "results": plots.mean_intervals(rows, "levels", "model", "test_budget"),
        "plots": {"generalisation": plot},
        "seconds": round(time.perf_counter() - start, 1),
    }
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    summary["dir"] = out
    return summary


def _plot(out: str, rows: list[dict[str, Any]], title: str) -> str:
    budgets = sorted({r["test_budget"] for r in rows})
    for row in rows:  # one line per level set and model; the prior (budget 0) joins both
        row["line"] = f"{row['levels']}, {row['model']} model"
    lines = [dict(r) for r in rows if r["test_budget"] != 0]
    for r in rows:
        if r["test_budget"] == 0:
            for model in {x["model"] for x in rows}:
                lines.append(dict(r, line=f"{r['levels']}, {model} model"))
    fig, ax = plt.subplots(figsize=(7, 4))
    plots._lines(ax, lines, "test_budget", "line", budgets)
    ax.set_xlabel("simulations at test time (0: policy prior)")
    ax.legend(fontsize=8)
    return _save(fig, os.path.join(out, "plots", "generalisation.png"), title)
