"""Hyperparameter sweeps: numeric keys in one compiled program, structural keys in one
compile per point.

    result = jaxmb.sweep(config, seeds=5, grid={"agent.optim.learning_rate": [1e-3, 3e-3],
                                                "agent.network.latent_dim": [32, 64]})

trains every grid point with every seed (here 2 x 2 x 5 = 20 members). The grid's keys are
of two kinds (`python -m jaxmb config` marks the sweepable ones):

- **sweepable** keys (learning rate, loss weights, discount, ...) are traced inputs
  (`jaxmb.hparams`): every value of them, times the seeds, trains in one seed-batched program;
- **structural** keys (network sizes, `num_simulations`, `unroll_steps`, `agent.kind`, ...)
  shape the program: the grid is grouped by structural point, and each group compiles once
  and vmaps its sweepable values and seeds inside.

Every grid point sees the same seeds (common random numbers). A typo, an out-of-range value
or a `run.*` key is a `ConfigError` naming the key, raised before anything compiles.

`runs/<name>/` then holds:

- without structural keys, what `jaxmb.run.train_run` writes for the whole batch
  (config.yaml, checkpoints, metrics.jsonl, TensorBoard, summary.json); with them, one such
  run directory per group under `groups/<structural point>/`;
- `members/<label>/`: one run directory per member (its own `config.yaml` with the member's
  values, `metrics.jsonl` with one line per iteration, `summary.json`, `plots/`);
- `sweep.json`: the grid, every member, per grid point the final greedy evaluation return's
  mean and 95% interval over seeds, and per group its compile and run time;
- `plots/sweep.png`: evaluation curves (mean and 95% interval over seeds) per grid point,
  and the final returns as bars.

Rerunning the same sweep resumes: each group restarts from its own latest checkpoint, so a
member whose group finished is not trained again, and an interrupted group goes on from where
it stopped. The 95% interval is Student's t interval of the mean over seeds (none for one seed).
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
import json
import math
import os
import re
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

__all__ = ["SweepResult", "split_grid", "sweep", "t_interval"]


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


def _grid_points(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    for key, values in grid.items():
        if isinstance(values, str | bytes) or not isinstance(values, Sequence) or not values:
            raise ConfigError(f"a grid entry needs a non-empty list of values, got {values!r}", key)
    keys = list(grid)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*grid.values())]


def _override(key: str, value: Any) -> str:
    """`key=value` with the value written as YAML reads it back (JSON is YAML)."""
    if isinstance(value, np.generic):
        value = value.item()
    return f"{key}={value if isinstance(value, str) else json.dumps(value)}"


def _shown(value: Any) -> str:
    if isinstance(value, bool | str):
        return str(value)
    if isinstance(value, int | float | np.number):
        return f"{value:g}"
    return json.dumps(value, separators=(",", ":"))


def _label(point: Mapping[str, Any], short: Mapping[str, str]) -> str:
    label = ",".join(f"{short[k]}={_shown(v)}" for k, v in point.items())
    return re.sub(r"[/\\\s]", "_", label) or "base"


def split_grid(config: Config, grid: Mapping[str, Sequence[Any]]) -> tuple[list[str], list[str]]:
    """The grid's keys as `(sweepable, structural)`, checked against `config`.

    Sweepable keys become traced hyperparameters; every other key of the config is
    structural and takes one compile per value. `ConfigError` names a key that is not a
    config key (with the nearest valid ones), a `run.*` key (where and how the sweep runs,
    not what it trains: use `seeds` and `name`), a key the config's agent does not read, or a
    value the config's rules refuse.
    """
    sweepable = set(hparams_lib.sweepable_keys(config))
    numeric, structural = [], []
    for key in grid:
        if key == "run" or key.startswith("run."):
            raise ConfigError(
                "run.* keys say where and how a sweep runs, not what it trains; use "
                "seeds / --seeds and name / --name",
                key,
            )
        if key in sweepable:
            numeric.append(key)
            continue
        known = hparams_lib.all_keys(config)
        if key not in known:
            close = difflib.get_close_matches(key, known, n=3, cutoff=0.6)
            hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            raise ConfigError(f"not a config key{hint}", key)
        if "agent.kind" not in grid:
            try:
                hparams_lib.check_keys(config, [key])
            except ConfigError as err:
                if "does not read" in str(err):
                    raise
        structural.append(key)
    for key in numeric:
        for value in grid[key]:
            if isinstance(value, bool) or not isinstance(value, int | float | np.number):
                raise ConfigError(f"a sweepable key takes numbers, got {value!r}", key)
    return numeric, structural


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
    steps = metrics["env_steps"]
    with open(os.path.join(member_dir, "metrics.jsonl"), "w") as f:
        for i in range(len(steps)):
            if isinstance(steps[i], float) and not math.isfinite(steps[i]):
                break  # the padding after a shorter group's last iteration
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


def _gather(parts: list[tuple[list[int], dict[str, np.ndarray]]], n: int) -> dict[str, np.ndarray]:
    """Each group's `[members, iterations]` metrics put back in member order. Groups whose
    structure changes the iteration count (or the metrics an agent logs) are padded with NaN."""
    if len(parts) == 1:
        index, metrics = parts[0]
        order = np.argsort(index)
        return {k: v[order] for k, v in metrics.items()}
    names = list(dict.fromkeys(k for _, m in parts for k in m))
    length = max(len(m["env_steps"][0]) for _, m in parts)
    same = all(len(m["env_steps"][0]) == length and set(m) == set(names) for _, m in parts)
    out = {}
    for name in names:
        like = next(m[name] for _, m in parts if name in m)
        dtype = like.dtype if same else np.result_type(like.dtype, np.float32)
        column = np.full((n, length), np.nan if not same else 0, dtype)
        for index, metrics in parts:
            if name in metrics:
                values = metrics[name]
                column[index, : values.shape[1]] = values
        out[name] = column
    return out


def sweep(
    config: Config,
    *,
    seeds: int = 1,
    grid: Mapping[str, Sequence[Any]] | None = None,
    name: str | None = None,
    quiet: bool = False,
) -> SweepResult:
    """Trains every point of `grid` with `seeds` seeds; see the module doc.

    Args:
      config: the base config; its `run.root` holds the sweep directory.
      seeds: seeds per grid point (`jax.random.split(key(run.seed), seeds)`, the same for
        every point).
      grid: config key -> values; the members are the Cartesian product. Sweepable keys take
        numbers and share one compile; structural keys take any value the key accepts (as in
        an override: `[64, 64]`, `muzero`, 8) and compile once per structural point. Empty or
        None: the base config alone, with `seeds` seeds.
      name: the sweep directory's name (default `run.name`, else generated).
      quiet: no progress bar.

    Raises:
      ConfigError: for a key that cannot be swept, a bad value, or `seeds < 1`.
    """
    grid = {
        key: values.tolist() if isinstance(values, np.ndarray) else values
        for key, values in (grid or {}).items()
    }
    grid = {k: list(v) if isinstance(v, tuple) else v for k, v in grid.items()}
    if not isinstance(seeds, int) or seeds < 1:
        raise ConfigError(f"seeds must be an int >= 1, got {seeds!r}", "seeds")
    points = _grid_points(grid) if grid else [{}]
    numeric, structural = split_grid(config, grid)
    # One config per structural point, each checked (with its sweepable values) before
    # anything compiles.
    group_points = _grid_points({k: grid[k] for k in structural}) if structural else [{}]
    group_configs = [
        configlib.apply_overrides(config, [_override(k, v) for k, v in gp.items()])
        for gp in group_points
    ]
    for group_config in group_configs:
        hparams_lib.check_values(group_config, {k: grid[k] for k in numeric})
    members = [(p, s) for p in range(len(points)) for s in range(seeds)]
    env_name = config.env.id.split(":", 1)[-1].lower()
    name = name or config.run.name or f"sweep-{env_name}-{time.strftime('%Y%m%d-%H%M%S')}"
    primary = jax.process_index() == 0  # with several processes, process 0 writes
    top_config = configlib.apply_overrides(
        config, [f"run.num_seeds={len(members)}", f"run.name={name}"]
    )
    if primary:
        sweep_dir = prepare_run_dir(top_config)
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

    short = _short_names(list(grid))
    point_labels = [_label(point, short) for point in points]
    group_labels = [_label(gp, short) for gp in group_points]
    seed_keys = jax.random.split(jax.random.key(config.run.seed), seeds)
    parts, groups = [], []
    for g, (gp, group_config) in enumerate(zip(group_points, group_configs, strict=True)):
        index = [
            i for i, (p, _) in enumerate(members) if all(points[p][k] == v for k, v in gp.items())
        ]
        run_overrides = [f"run.num_seeds={len(index)}", f"run.name={name}"]
        run_dir = None
        if structural:
            run_overrides += [
                f"run.root={os.path.join(sweep_dir, 'groups')}",
                f"run.name={group_labels[g]}",
            ]
        batch_config = configlib.apply_overrides(group_config, run_overrides)
        if not structural:
            run_dir = sweep_dir
        hparams = {
            key: np.asarray([points[members[i][0]][key] for i in index], np.float32)
            for key in numeric
        } or None
        keys = seed_keys[np.asarray([members[i][1] for i in index])]
        result = train_run(batch_config, quiet=quiet, hparams=hparams, keys=keys, run_dir=run_dir)
        parts.append((index, result.metrics))
        groups.append(
            {
                "label": group_labels[g],
                "structural": gp,
                "run_dir": result.run_dir,
                "members": len(index),
                **{k: result.summary[k] for k in (*_TIMINGS, "already_trained")},
            }
        )
    metrics = _gather(parts, len(members))
    if not primary:
        return SweepResult(sweep_dir, [], [], metrics, groups[-1])

    member_rows = []
    for index, (p, s) in enumerate(members):
        label = f"{point_labels[p]}-seed{s}"
        member_dir = os.path.join(sweep_dir, "members", label)
        overrides = [_override(k, v) for k, v in points[p].items()]
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
        "structural_keys": structural,
        "points": point_rows,
        "members": member_rows,
        **_totals(groups),
    }
    if structural:
        summary["groups"] = groups
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


_TIMINGS = ("compile_seconds", "run_seconds", "env_steps_per_second")


def _totals(groups: list[dict[str, Any]]) -> dict[str, Any]:
    """The sweep's timings: one group's own, or the sum over groups (a group trained by an
    earlier call keeps that call's timings, as `train_run` does)."""
    if len(groups) == 1:
        return {k: groups[0][k] for k in (*_TIMINGS, "already_trained")}
    timed = [g for g in groups if g["env_steps_per_second"] and g["run_seconds"]]
    run_seconds = sum(g["run_seconds"] for g in timed)
    steps = sum(g["env_steps_per_second"] * g["run_seconds"] for g in timed)
    return {
        "compile_seconds": round(sum(g["compile_seconds"] for g in groups), 2),
        "run_seconds": round(sum(g["run_seconds"] for g in groups), 2),
        "env_steps_per_second": round(steps / run_seconds, 1) if run_seconds > 0 else None,
        "already_trained": all(g["already_trained"] for g in groups),
    }
