"""Hyperparameter sweeps in one compiled program.

    result = jaxmb.sweep(config, seeds=5, grid={"agent.optim.learning_rate": [1e-3, 3e-3],
                                                "agent.loss.discount": [0.97, 0.99]})

trains every grid point with every seed (here 2 x 2 x 5 = 20 members) as one seed-batched
program: the grid values are traced inputs (`jaxmb.hparams`), so nothing recompiles per
member, and each grid point sees the same seeds (common random numbers). Only sweepable keys
(`python -m jaxmb config` marks them) may be in the grid; a structural key, a typo or an
out-of-range value is a `ConfigError` naming the key, raised before anything compiles.

`runs/<name>/` then holds what `jaxmb.run.train_run` writes for the whole batch (config.yaml,
checkpoints, so rerunning the same sweep resumes; metrics.jsonl, TensorBoard, summary.json),
plus:

- `members/<label>/`: one run directory per member (its own `config.yaml` with the member's
  values, `metrics.jsonl` with one line per iteration, `summary.json`, `plots/`);
- `sweep.json`: the grid, every member, and per grid point the final greedy evaluation
  return's mean and 95% interval over seeds;
- `plots/sweep.png`: evaluation curves (mean and 95% interval over seeds) per grid point,
  and the final returns as bars.

The 95% interval is Student's t interval of the mean over seeds (none for one seed).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np

from jaxmb import configlib
from jaxmb import hparams as hparams_lib
from jaxmb.config import Config, ConfigError
from jaxmb.plotting import plot_learning_curves, plot_sweep, steps_label
from jaxmb.run import prepare_run_dir, train_run
from jaxmb.stats import t_interval  # re-exported: `jaxmb.sweeps.t_interval` predates jaxmb.stats

__all__ = ["SweepResult", "sweep", "t_interval"]


@dataclasses.dataclass
class SweepResult:
    sweep_dir: str
    points: list[dict[str, Any]]  # per grid point: hparams, per-seed finals, mean, ci95
    members: list[dict[str, Any]]  # per member: label, hparams, seed, run_dir, final return
    metrics: dict[str, np.ndarray]  # each [num_members, num_iterations]
    summary: dict[str, Any]


def _short_names(keys: Sequence[str]) -> dict[str, str]:
    """The last part of each key (`learning_rate`), or the whole key where two collide."""
    last = [key.rsplit(".", 1)[-1] for key in keys]
    return {
        key: (name if last.count(name) == 1 else key) for key, name in zip(keys, last, strict=True)
    }


def _grid_points(grid: Mapping[str, Sequence[float]]) -> list[dict[str, float]]:
    for key, values in grid.items():
        if isinstance(values, str | bytes) or not isinstance(values, Sequence) or not values:
            raise ConfigError(f"a grid entry needs a non-empty list of values, got {values!r}", key)
    keys = list(grid)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*grid.values())]


def _finals(row: np.ndarray) -> float | None:
    ok = np.isfinite(row)
    return float(row[ok][-1]) if ok.any() else None


def _json_value(x: Any) -> Any:
    x = x.item() if isinstance(x, np.generic) else x
    return None if isinstance(x, float) and not math.isfinite(x) else x


def _write_member(
    member_dir: str, config: Config, metrics: dict[str, np.ndarray], info: dict[str, Any]
) -> None:
    os.makedirs(os.path.join(member_dir, "plots"), exist_ok=True)
    configlib.dump_yaml(config, os.path.join(member_dir, "config.yaml"))
    with open(os.path.join(member_dir, "metrics.jsonl"), "w") as f:
        for i in range(len(metrics["env_steps"])):
            row = {"iteration": i + 1, **{k: _json_value(v[i]) for k, v in metrics.items()}}
            f.write(json.dumps(row) + "\n")
    with open(os.path.join(member_dir, "summary.json"), "w") as f:
        json.dump(info, f, indent=2)
    plot_learning_curves(
        {k: v[None] for k, v in metrics.items()},
        os.path.join(member_dir, "plots", "learning_curve.png"),
        title=info["label"],
        xlabel=steps_label(config),
    )


def sweep(
    config: Config,
    *,
    seeds: int = 1,
    grid: Mapping[str, Sequence[float]] | None = None,
    name: str | None = None,
    quiet: bool = False,
) -> SweepResult:
    """Trains every point of `grid` with `seeds` seeds in one program; see the module doc.

    Args:
      config: the base config; its `run.root` holds the sweep directory.
      seeds: seeds per grid point (`jax.random.split(key(run.seed), seeds)`, the same for
        every point).
      grid: sweepable key -> values; the members are the Cartesian product. Empty or None:
        the base config alone, with `seeds` seeds.
      name: the sweep directory's name (default `run.name`, else generated).
      quiet: no progress bar.

    Raises:
      ConfigError: for a key that cannot be swept, a bad value, or `seeds < 1`.
    """
    grid = dict(grid or {})
    if not isinstance(seeds, int) or seeds < 1:
        raise ConfigError(f"seeds must be an int >= 1, got {seeds!r}", "seeds")
    hparams_lib.check_values(config, grid)
    points = _grid_points(grid) if grid else [{}]
    members = [(p, s) for p in range(len(points)) for s in range(seeds)]
    env_name = config.env.id.split(":", 1)[-1].lower()
    name = name or config.run.name or f"sweep-{env_name}-{time.strftime('%Y%m%d-%H%M%S')}"
    batch_config = configlib.apply_overrides(
        config, [f"run.num_seeds={len(members)}", f"run.name={name}"]
    )
    primary = jax.process_index() == 0  # with several processes, process 0 writes
    if primary:
        sweep_dir = prepare_run_dir(batch_config)
    else:
        sweep_dir = os.path.abspath(os.path.join(config.run.root, name))
    spec = {"grid": grid, "seeds": seeds}
    spec_path = os.path.join(sweep_dir, "sweep_spec.json")
    if primary and os.path.exists(spec_path):
        with open(spec_path) as f:
            if json.load(f) != json.loads(json.dumps(spec)):
                raise ConfigError(
                    f"{sweep_dir} holds a sweep of another grid or seed count; use another name",
                    "run.name",
                )
    if primary:
        with open(spec_path, "w") as f:
            json.dump(spec, f, indent=2)

    seed_keys = jax.random.split(jax.random.key(config.run.seed), seeds)
    keys = seed_keys[np.asarray([s for _, s in members])]
    hparams = {
        key: np.asarray([points[p][key] for p, _ in members], np.float32) for key in grid
    } or None
    result = train_run(batch_config, quiet=quiet, hparams=hparams, keys=keys, run_dir=sweep_dir)
    metrics = result.metrics
    if not primary:
        return SweepResult(sweep_dir, [], [], metrics, result.summary)

    short = _short_names(list(grid))
    point_labels = [
        ",".join(f"{short[k]}={v:g}" for k, v in point.items()) or "base" for point in points
    ]
    member_rows = []
    for index, (p, s) in enumerate(members):
        label = f"{point_labels[p]}-seed{s}"
        member_dir = os.path.join(sweep_dir, "members", label)
        overrides = [f"{k}={float(v)!r}" for k, v in points[p].items()]
        member_config = configlib.apply_overrides(config, [*overrides, "run.num_seeds=1"])
        row = {
            "label": label,
            "hparams": points[p],
            "seed": s,
            "run_dir": member_dir,
            "final_eval_return": _finals(metrics["eval/episode_return"][index]),
        }
        _write_member(member_dir, member_config, {k: v[index] for k, v in metrics.items()}, row)
        member_rows.append(row)

    point_rows = []
    for p, point in enumerate(points):
        finals = [
            row["final_eval_return"]
            for row, (q, _) in zip(member_rows, members, strict=True)
            if q == p
        ]
        ok = [v for v in finals if v is not None]
        interval = t_interval(ok)
        point_rows.append(
            {
                "label": point_labels[p],
                "hparams": point,
                "final_eval_return": finals,
                "mean": float(np.mean(ok)) if ok else None,
                "ci95": list(interval) if interval else None,
            }
        )
    summary = {
        "grid": grid,
        "seeds": seeds,
        "num_members": len(members),
        "points": point_rows,
        "members": member_rows,
        **{
            k: result.summary[k]
            for k in ("compile_seconds", "run_seconds", "env_steps_per_second", "already_trained")
        },
    }
    with open(os.path.join(sweep_dir, "sweep.json"), "w") as f:
        json.dump(summary, f, indent=2)
    member_point = np.asarray([p for p, _ in members])
    plot_sweep(
        metrics,
        member_point,
        point_labels,
        os.path.join(sweep_dir, "plots", "sweep.png"),
        title=f"sweep on {config.env.id} ({seeds} seed{'s' if seeds > 1 else ''} per point)",
        xlabel=steps_label(config),
    )
    return SweepResult(sweep_dir, point_rows, member_rows, metrics, summary)
