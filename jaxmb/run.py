"""Runs a config end to end and fills its run directory.

    result = jaxmb.run.train_run(config)

Rerunning the same config on an existing run directory resumes from its latest checkpoint:
the restored state goes through the same compiled program as a fresh one, so a run that was
killed and resumed ends with the same parameters as one that was not (on the same machine).

`runs/<name>/` receives `config.yaml` (the resolved config), `metrics.jsonl` (one line per
seed at each log interval), TensorBoard events in `tensorboard/`, orbax checkpoints in
`checkpoints/`, `plots/learning_curve.png` and `summary.json`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Any

import jax
import numpy as np

from jaxmb import configlib
from jaxmb.checkpoint import Checkpointer
from jaxmb.config import Config, ConfigError
from jaxmb.logger import RunLogger
from jaxmb.plotting import plot_learning_curves
from jaxmb.train import check_finite, make_train


@dataclasses.dataclass
class RunResult:
    run_dir: str
    summary: dict[str, Any]
    metrics: dict[str, np.ndarray]  # each [num_seeds, num_iterations]
    final_state: Any


def default_run_name(config: Config) -> str:
    env_name = config.env.id.split(":", 1)[-1].lower()
    return f"muzero-{env_name}-{time.strftime('%Y%m%d-%H%M%S')}"


def prepare_run_dir(config: Config) -> str:
    """Creates the run directory and checks it is writable, before anything is compiled."""
    name = config.run.name or default_run_name(config)
    run_dir = os.path.abspath(os.path.join(config.run.root, name))
    try:
        os.makedirs(os.path.join(run_dir, "plots"), exist_ok=True)
        probe = os.path.join(run_dir, ".write_test")
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as err:
        raise ConfigError(f"cannot write the run directory {run_dir}: {err}", "run.root") from err
    return run_dir


def _seed_keys(config: Config) -> jax.Array:
    return jax.random.split(jax.random.key(config.run.seed), config.run.num_seeds)


def _check_same_config(config: Config, run_dir: str) -> None:
    """A run directory resumes only the config it was started with."""
    saved = configlib.to_dict(configlib.load(os.path.join(run_dir, "config.yaml"), cls=Config))
    current = configlib.to_dict(config)
    differ = sorted(
        key for key in configlib.flat_keys(Config) if _get(saved, key) != _get(current, key)
    )
    if differ:
        raise ConfigError(
            f"{run_dir} holds a run with a different config ({', '.join(differ)}); "
            "use another run.name to start a new run",
            "run.name",
        )


def _get(tree: dict, dotted: str):
    for part in dotted.split("."):
        tree = tree.get(part, {}) if isinstance(tree, dict) else None
    return tree


def train_run(config: Config, *, quiet: bool = False) -> RunResult:
    """Trains `config.run.num_seeds` seeds together and writes the run directory.

    If the run directory already holds checkpoints of the same config, training resumes from
    the latest one. A non-finite loss raises `jaxmb.train.NonFiniteLossError` after the last
    good state is kept (checkpoints are never written from a halted state).
    """
    run_dir = prepare_run_dir(config)
    config_path = os.path.join(run_dir, "config.yaml")
    checkpointer = Checkpointer(os.path.join(run_dir, "checkpoints"))
    resume_step = checkpointer.latest_step()
    if resume_step is not None and os.path.exists(config_path):
        _check_same_config(config, run_dir)
    configlib.dump_yaml(config, config_path)
    num_seeds = config.run.num_seeds
    logger = RunLogger(
        run_dir,
        config.num_iterations * config.steps_per_iteration,
        num_seeds=num_seeds,
        tensorboard=config.run.tensorboard,
        progress=config.run.progress and not quiet,
    )

    def save_checkpoint(state) -> None:
        checkpointer.save(int(np.asarray(state.iteration).reshape(-1)[0]), state)

    train = make_train(
        config, callback=logger, checkpoint_callback=save_checkpoint, num_seeds=num_seeds
    )
    keys = _seed_keys(config)
    start = time.perf_counter()
    # Fresh and resumed runs go through the same compiled `train.run`, so that resuming gives
    # bit-identical results.
    if resume_step is None:
        state = jax.jit(train.init)(keys)
    else:
        state = checkpointer.restore(jax.eval_shape(train.init, keys))
    start_iteration = int(np.asarray(state.iteration))
    compiled = jax.jit(train.run).lower(state).compile()
    compile_seconds = time.perf_counter() - start
    logger.start()
    start = time.perf_counter()
    try:
        final_state, metrics = compiled(state)
        jax.block_until_ready(metrics)
        jax.effects_barrier()
    finally:
        logger.close()
    run_seconds = time.perf_counter() - start
    check_finite(train.loop, final_state)
    checkpointer.save(config.num_iterations, final_state)
    checkpointer.close()

    metrics = {k: np.asarray(v) for k, v in metrics.items()}
    summary = summarize(config, metrics, compile_seconds, run_seconds, start_iteration)
    with open(os.path.join(run_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    plot_path = os.path.join(run_dir, "plots", "learning_curve.png")
    plot_learning_curves(metrics, plot_path, title=f"MuZero on {config.env.id}")
    summary["learning_curve"] = plot_path
    return RunResult(run_dir, summary, metrics, final_state)


def summarize(
    config: Config,
    metrics: dict[str, np.ndarray],
    compile_seconds: float,
    run_seconds: float,
    start_iteration: int = 0,
) -> dict[str, Any]:
    """Final figures of a run: per-seed and mean final greedy eval return, speed (of the
    iterations this process ran: all of them, or those after `start_iteration` on resume)."""
    eval_returns = metrics["eval/episode_return"]  # [S, I]
    final_eval = [
        float(row[np.isfinite(row)][-1]) if np.isfinite(row).any() else None for row in eval_returns
    ]
    env_steps = int(metrics["env_steps"][0, -1])
    num_seeds = eval_returns.shape[0]
    return {
        "env_id": config.env.id,
        "num_seeds": num_seeds,
        "env_steps_per_seed": env_steps,
        "final_eval_return": final_eval,
        "final_eval_return_mean": (None if None in final_eval else float(np.mean(final_eval))),
        "compile_seconds": round(compile_seconds, 2),
        "run_seconds": round(run_seconds, 2),
        "resumed_from_iteration": start_iteration or None,
        "env_steps_per_second": round(
            num_seeds
            * (config.num_iterations - start_iteration)
            * config.steps_per_iteration
            / run_seconds,
            1,
        ),
    }
