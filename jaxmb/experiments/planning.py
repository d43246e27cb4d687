"""The planning experiment (Hamrick et al. 2021): where search helps, and how much of it.

    python -m jaxmb experiment planning --env gymnax:CartPole-v1 --seeds 5
    python -m jaxmb experiment planning planning --name my-study   # experiments/planning
    python -m jaxmb experiment planning configs/experiments/planning.yaml   # or by path

1. Every variant of `jaxmb.experiments.variants` (One-Step, Learn, Data, Learn+Data,
   Learn+Data+Eval) trains with every seed: one compiled program per variant (the switches
   change the program's structure), its seeds batched inside it. Each variant is a run
   directory under `variants/<name>/`, so an interrupted experiment resumes. Learn+Data and
   Learn+Data+Eval train alike (they differ only at test time), so the first of them listed
   trains for both; the learning curves plot shows it once.
2. Vanilla MuZero (Learn+Data+Eval) also trains at each train-time budget of
   `train_budgets` (`train_budgets/sims_<n>/`).
3. Every trained agent is evaluated greedily, `eval_episodes` episodes per seed:
   - at each test-time budget of `test_budgets` (0 = no search: the prior's argmax);
   - at `depth_budget` simulations with each tree-depth limit of `max_depths` (mctx's
     `max_depth`; none = unlimited) and each D_UCT of `uct_depths` (interior nodes at that
     depth or deeper follow the prior).
   One evaluation program is compiled per test setting and shared by all variants.
4. Writes `variants.csv` (each variant at its own test setting: search at
   `num_simulations_test` for Learn+Data+Eval, the prior for the others), `budgets.csv`,
   `train_budgets.csv`, `depths.csv`, `summary.json` and plots: `plots/variants.png`
   (mean and 95% t interval over seeds), `plots/test_budget.png`, `plots/train_budget.png`,
   `plots/depth.png` and `plots/learning_curves.png`.
   In a two-player game (`pgx:go_9x9`) an episode is a game against a uniform random legal
   player: `return` is the mean outcome (+1 win, -1 loss, 0 unfinished), every CSV row also
   has the seed's `win_rate`, and `summary.json` gives each variant's mean win rate.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import time
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
import yaml

from jaxmb import config as config_lib
from jaxmb import configlib, presets
from jaxmb.config import Config, ConfigError
from jaxmb.experiments import plots
from jaxmb.experiments.variants import LABELS, SWITCHES, variant_overrides
from jaxmb.plotting import steps_label


@dataclasses.dataclass(frozen=True, kw_only=True)
class PlanningSpec:
    """What `run_planning` trains and measures (the keys of `configs/experiments/*.yaml`).

    Attributes:
      base: the preset the variants start from: a name (`muzero/cartpole`) or a YAML path.
      overrides: dotted overrides applied to `base` before each variant's switches.
      variants: names from `jaxmb.experiments.variants.SWITCHES`.
      seeds: seeds per variant.
      reanalyse_fraction: share of each batch reanalysed by Learn+Data and Learn+Data+Eval.
      test_budgets: simulations at test time; 0 = act from the prior.
      train_budgets: train-time budgets of vanilla MuZero (empty: skip).
      depth_budget: simulations of the depth evaluations.
      max_depths: tree-depth limits (None = unlimited).
      uct_depths: D_UCT values (None = search everywhere).
      eval_episodes: greedy episodes per seed and setting.
    """

    base: str = "configs/muzero/cartpole.yaml"
    overrides: tuple[str, ...] = ()
    variants: tuple[str, ...] = tuple(SWITCHES)
    seeds: int = 5
    reanalyse_fraction: float = 1.0
    test_budgets: tuple[int, ...] = (0, 1, 5, 25, 100)
    train_budgets: tuple[int, ...] = (1, 2, 5, 25)
    depth_budget: int = 25
    max_depths: tuple[int | None, ...] = (1, 2, 3, 5, None)
    uct_depths: tuple[int | None, ...] = (1, 2, 3, None)
    eval_episodes: int = 32

    def __post_init__(self) -> None:
        for name in self.variants:
            variant_overrides(name)  # raises for unknown names
        if self.seeds < 1:
            raise ConfigError(f"seeds must be >= 1, got {self.seeds}", "seeds")
        if any(b < 0 for b in self.test_budgets) or any(b < 1 for b in self.train_budgets):
            raise ConfigError("test budgets must be >= 0 and train budgets >= 1", "budgets")


#: The spec fields that decide what is trained; an experiment directory keeps them fixed.
TRAINING_KEYS = ("base", "overrides", "variants", "seeds", "reanalyse_fraction", "train_budgets")

#: `--quick`: a smoke version of the experiment (tiny budgets; it still compiles one program
#: per variant and per test setting, about 5 to 10 minutes on 2 CPU cores).
QUICK: dict[str, Any] = {
    "seeds": 2,
    "test_budgets": (0, 2),
    "train_budgets": (2,),
    "depth_budget": 4,
    "max_depths": (1, None),
    "uct_depths": (1,),
    "eval_episodes": 2,
    "overrides": (
        "train.total_env_steps=256",
        "train.eval_every=128",
        "env.num_envs=4",
        "env.eval_max_steps=50",
        "replay.capacity=1024",
        "replay.min_size=64",
        "replay.batch_size=8",
        "train.replay_ratio=0.125",
        "agent.search.num_simulations=4",
        "run.progress=false",
        "run.tensorboard=false",
    ),
}


def load_spec(path: str | None, **changes: Any) -> PlanningSpec:
    """A `PlanningSpec` from an optional YAML file or preset name (`planning_cartpole_cpu`, in
    `experiments/`), then keyword changes (None = keep)."""
    data: dict[str, Any] = {}
    if path is not None:
        with open(presets.resolve(path, group="experiments"), encoding="utf-8") as f:
            data = yaml.safe_load(f) or {}
    known = {f.name for f in dataclasses.fields(PlanningSpec)}
    for key in data:
        if key not in known:
            raise ConfigError(f"unknown experiment key '{key}' in {path}; valid: {sorted(known)}")
    data.update({k: v for k, v in changes.items() if v is not None})
    data = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    return PlanningSpec(**data)


def preset_for_env(env_id: str) -> str:
    """The file of the `muzero/` preset whose `env.id` is `env_id` (else `muzero/cartpole`'s),
    as an absolute path."""
    for name in presets.names("muzero"):
        path = presets.path(name)
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if data.get("env", {}).get("id") == env_id:
            return str(path)
    return str(presets.path("muzero/cartpole"))


def _base_config(spec: PlanningSpec, extra: Sequence[str] = ()) -> Config:
    # `base` is a file, else a preset name; the YAMLs' `configs/muzero/...` paths read as names
    # where the repository is not (jaxmb.presets.resolve).
    return config_lib.load(spec.base, [*spec.overrides, *extra])


def variant_config(spec: PlanningSpec, variant: str, extra: Sequence[str] = ()) -> Config:
    """The base config with a variant's switches and `extra` overrides."""
    fraction = spec.reanalyse_fraction
    return _base_config(spec, [*variant_overrides(variant, reanalyse_fraction=fraction), *extra])


def train_or_load(config: Config, run_dir: str, quiet: bool):
    """Trains (or resumes, or reloads when finished) one run directory; returns the
    seed-batched agent state and the metrics."""
    from jaxmb.evaluate import load_run
    from jaxmb.run import train_run

    metrics_path = os.path.join(run_dir, "metrics.npz")
    if os.path.exists(metrics_path):
        _, _, state = load_run(run_dir)
        return state.agent, dict(np.load(metrics_path))
    os.makedirs(os.path.join(run_dir, "plots"), exist_ok=True)
    result = train_run(config, quiet=quiet, run_dir=run_dir)
    np.savez(metrics_path, **result.metrics)
    return result.final_state.agent, result.metrics


OUTCOME_LABEL = "mean outcome vs random (+1 win, -1 loss)"


def result_rows(evaluated, **fields: Any) -> list[dict[str, Any]]:
    """CSV rows, one per seed, from `(returns [S], win_rates [S] or None)`: `fields`, then
    `seed`, `return` and, for a two-player game, `win_rate`."""
    returns, win_rates = evaluated
    rows = []
    for seed, value in enumerate(returns):
        row = {**fields, "seed": seed, "return": float(value)}
        if win_rates is not None:
            row["win_rate"] = float(win_rates[seed])
        rows.append(row)
    return rows


def variant_stats(variant_rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per variant: the mean return, its 95% t interval over seeds and the seed count, and
    for a two-player game the mean of the seeds' win rates against the random player."""
    stats = plots.mean_intervals(variant_rows, "variant")
    for name, stat in stats.items():
        rates = [r["win_rate"] for r in variant_rows if r["variant"] == name and "win_rate" in r]
        if rates:
            stat["win_rate"] = float(np.mean(rates))
    return stats


def write_csv(path: str, rows: list[dict[str, Any]]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def experiment_dir(root: str, name: str | None, prefix: str, env_id: str, spec: Any) -> str:
    """`root/name` (default `<prefix>-<env>-<time>`) with `plots/`, and the spec written to
    its `experiment.json`; returns its absolute path."""
    env_name = env_id.split(":", 1)[-1].lower()
    name = name or f"{prefix}-{env_name}-{time.strftime('%Y%m%d-%H%M%S')}"
    out = os.path.abspath(os.path.join(root, name))
    os.makedirs(os.path.join(out, "plots"), exist_ok=True)
    with open(os.path.join(out, "experiment.json"), "w") as f:
        json.dump(dataclasses.asdict(spec), f, indent=2)
    return out


def write_summary(out: str, summary: dict[str, Any]) -> dict[str, Any]:
    """Writes `out/summary.json`; returns the summary with `dir` (the experiment directory)
    added, as the experiments return it."""
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    return {**summary, "dir": out}


def _none(value: Any) -> str:
    return "none" if value is None else str(value)


def run_planning(
    spec: PlanningSpec, *, name: str | None = None, root: str = "runs", quiet: bool = False
) -> dict[str, Any]:
    """Runs the experiment (see the module docstring); returns `summary.json`'s content."""
    base = _base_config(spec)
    env_name = base.env.id.split(":", 1)[-1].lower()
    name = name or f"planning-{env_name}-{time.strftime('%Y%m%d-%H%M%S')}"
    out = os.path.abspath(os.path.join(root, name))
    os.makedirs(os.path.join(out, "plots"), exist_ok=True)
    spec_path = os.path.join(out, "experiment.json")
    spec_json = json.loads(json.dumps(dataclasses.asdict(spec)))
    if os.path.exists(spec_path):
        # Trained runs are reused, so what they were trained with must not change; the
        # evaluation settings may (re-evaluating at other budgets retrains nothing).
        with open(spec_path) as f:
            stored = json.load(f)
        changed = [k for k in TRAINING_KEYS if stored.get(k) != spec_json[k]]
        if changed:
            raise ConfigError(
                f"{out} holds an experiment trained with other {', '.join(changed)}; use "
                "another --name",
                "name",
            )
    with open(spec_path, "w") as f:
        json.dump(spec_json, f, indent=2)
    start = time.perf_counter()
    seeds = [f"run.num_seeds={spec.seeds}"]

    trained: dict[str, Any] = {}  # label -> (agent states [S], metrics)
    by_training: dict[str, str] = {}  # what training sees -> the variant trained with it
    for variant in spec.variants:
        cfg = variant_config(spec, variant, seeds)
        # Learn+Data and Learn+Data+Eval train alike (for_acting_test only changes how the
        # agent is evaluated, and evaluation draws its own keys): one run serves both.
        same = configlib.to_yaml(
            configlib.apply_overrides(cfg, ["agent.search.for_acting_test=false"])
        )
        if same in by_training:
            trained[variant] = trained[by_training[same]]
            continue
        by_training[same] = variant
        trained[variant] = train_or_load(cfg, os.path.join(out, "variants", variant), quiet)
    base_budget = variant_config(spec, "learn_data_eval").agent.search.num_simulations
    for budget in spec.train_budgets:
        if budget == base_budget and "learn_data_eval" in trained:
            trained[f"train_budget_{budget}"] = trained["learn_data_eval"]  # the same run
            continue
        extra = [*seeds, f"agent.search.num_simulations={budget}"]
        cfg = variant_config(spec, "learn_data_eval", extra)
        run_dir = os.path.join(out, "train_budgets", f"sims_{budget}")
        trained[f"train_budget_{budget}"] = train_or_load(cfg, run_dir, quiet)

    eval_config = variant_config(spec, "learn_data_eval", seeds)
    keys = jax.random.split(jax.random.key(base.run.seed + 7919), spec.seeds)
    cache: dict[tuple, Any] = {}
    from jaxmb.evaluate import evaluator

    def evaluate(states, budget: int, **search: Any) -> tuple[np.ndarray, np.ndarray | None]:
        """Per seed: the mean return (a two-player game's mean outcome) and, for a
        two-player game, the win rate against the random player (else None)."""
        setting = (budget, *sorted(search.items()))
        if setting not in cache:
            cache[setting] = evaluator(
                eval_config, episodes=spec.eval_episodes, budget=budget, win_rates=True, **search
            )
        result = cache[setting](states, keys)
        if isinstance(result, tuple):
            return np.asarray(result[0], np.float64), np.asarray(result[1], np.float64)
        return np.asarray(result, np.float64), None

    own_budget = eval_config.agent.search.simulations_test
    variant_rows, budget_rows, depth_rows, train_rows = [], [], [], []
    for variant in spec.variants:
        states, _ = trained[variant]
        by_budget = {b: evaluate(states, b) for b in spec.test_budgets}
        own = own_budget if SWITCHES[variant][2] else 0
        if own not in by_budget:
            by_budget[own] = evaluate(states, own)
        variant_rows += result_rows(
            by_budget[own], variant=variant, label=LABELS[variant], test_budget=own
        )
        for budget in spec.test_budgets:
            budget_rows += result_rows(by_budget[budget], variant=variant, test_budget=budget)
        for kind, depths in (("max_depth", spec.max_depths), ("uct_depth", spec.uct_depths)):
            for depth in depths:
                depth_rows += result_rows(
                    evaluate(states, spec.depth_budget, **{kind: depth}),
                    variant=variant,
                    kind=kind,
                    depth=_none(depth),
                    budget=spec.depth_budget,
                )
    for budget in spec.train_budgets:
        states, _ = trained[f"train_budget_{budget}"]
        for test, evaluated in (
            ("search", evaluate(states, budget)),
            ("prior", evaluate(states, 0)),
        ):
            train_rows += result_rows(evaluated, train_budget=budget, test=test)

    two_player = bool(variant_rows) and "win_rate" in variant_rows[0]
    files = {}
    for file, rows in (
        ("variants.csv", variant_rows),
        ("budgets.csv", budget_rows),
        ("depths.csv", depth_rows),
        ("train_budgets.csv", train_rows),
    ):
        if rows:
            write_csv(os.path.join(out, file), rows)
            files[file] = os.path.join(out, file)
    title = f"{base.env.id}, {spec.seeds} seeds"
    pictures = plots.planning_plots(
        out,
        variant_rows,
        budget_rows,
        depth_rows,
        train_rows,
        {v: trained[v][1] for v in dict.fromkeys(by_training.values())},
        title=title,
        xlabel=steps_label(base),
        ylabel=OUTCOME_LABEL if two_player else "greedy episode return",
    )
    summary = {
        "env_id": base.env.id,
        "seeds": spec.seeds,
        "variants": variant_stats(variant_rows),
        "files": files,
        "plots": pictures,
        "seconds": round(time.perf_counter() - start, 1),
    }
    return write_summary(out, summary)
