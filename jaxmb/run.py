"""Runs a config end to end and fills its run directory.

    result = jaxmb.run.train_run(config)

Rerunning the same config on an existing run directory resumes from its latest checkpoint:
the restored state goes through the same compiled program as a fresh one, so a run that was
killed and resumed ends with the same parameters as one that was not (on the same machine).

`runs/<name>/` receives `config.yaml` (the resolved config), `metrics.jsonl` (one line per
seed at each log interval), TensorBoard events in `tensorboard/`, orbax checkpoints in
`checkpoints/`, `plots/learning_curve.png` and `summary.json`.

On an env that declares achievements (`jaxmb.envs.core.Env.achievement_info_keys`: Craftax),
`summary.json` adds each achievement's success rate over all training episodes of the run
(`achievement_success_rates`), and on Craftax the Crafter score (Hafner 2021) of those rates
(`crafter_score`, per seed, and `crafter_score_mean`). They are computed from the full
history of per-iteration counts (the `metrics` of `RunResult`, kept in every checkpoint),
since `metrics.jsonl` holds only the iterations at log points.

Memory is checked before anything runs (`jaxmb.memory`; `run.memory_check=false` skips it):
`make_train` checks the estimated peak, the compiled program is checked again with XLA's
own figures, and `summary.json`'s `memory` records the estimated and the measured peak.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from typing import Any

import jax
import numpy as np

from jaxmb import compile_cache, configlib, distributed
from jaxmb import memory as memory_lib
from jaxmb.checkpoint import Checkpointer, is_key
from jaxmb.config import Config, ConfigError
from jaxmb.envs.craftax_adapter import crafter_score
from jaxmb.logger import RunLogger
from jaxmb.loop import check_finite, make_train
from jaxmb.loop.collect import ACHIEVEMENT_METRIC_PREFIX
from jaxmb.plotting import plot_learning_curves, steps_label


@dataclasses.dataclass
class RunResult:
    run_dir: str
    summary: dict[str, Any]
    metrics: dict[str, np.ndarray]  # each [num_seeds, num_iterations]
    final_state: Any


def default_run_name(config: Config) -> str:
    env_name = config.env.id.split(":", 1)[-1].lower()
    return f"{config.agent.kind}-{env_name}-{time.strftime('%Y%m%d-%H%M%S')}"


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


#: Checkpoints kept on disk at once (`Checkpointer`'s max_to_keep), plus the one being written.
_CHECKPOINTS_ON_DISK = 4


def _check_disk_space(run_dir: str, estimate: memory_lib.Estimate) -> None:
    """A clear error before compiling when the disk cannot hold the run's checkpoints.

    Each checkpoint holds the whole train state; `estimate` (`jaxmb.memory`) has it by part,
    which names the largest (the replay buffer, the parameters or the optimiser state) and
    its key. orbax compresses, so this asks for the uncompressed size: the worst case of a
    full buffer.
    """
    state_bytes = estimate.state_bytes
    needed = state_bytes * _CHECKPOINTS_ON_DISK
    free = shutil.disk_usage(run_dir).free
    if free < needed:
        part = estimate.largest_state()
        share = 100 * part.bytes / max(state_bytes, 1)
        key = estimate.key(part) or "replay.capacity"
        raise ConfigError(
            f"the disk holding {run_dir} has {free / 2**20:.0f} MiB free; the run's checkpoints "
            f"need up to {needed / 2**20:.0f} MiB ({_CHECKPOINTS_ON_DISK} x "
            f"{state_bytes / 2**20:.1f} MiB of train state, {share:.0f}% of it the "
            f"{part.name}). Free some space, or lower {key} or run.num_seeds",
            "run.root",
        )


def _zeros_like(shapes: Any) -> Any:
    """Host zeros (and keys) shaped like `jax.eval_shape`'s output: a placeholder that
    `_broadcast_tree` fills with process 0's values."""

    def zeros(s):
        if is_key(s):
            return jax.random.split(jax.random.key(0), s.shape) if s.shape else jax.random.key(0)
        return np.zeros(s.shape, s.dtype)

    return jax.tree.map(zeros, shapes)


def _broadcast_tree(tree: Any) -> Any:
    """Process 0's host values of `tree`, in every process (a collective)."""
    from jax.experimental import multihost_utils

    leaves, treedef = jax.tree.flatten(tree)
    keys = [is_key(x) for x in leaves]
    data = [jax.random.key_data(x) if k else x for x, k in zip(leaves, keys, strict=True)]
    data = multihost_utils.broadcast_one_to_all(data)
    out = [
        jax.random.wrap_key_data(np.asarray(d), impl=jax.random.key_impl(x)) if k else np.asarray(d)
        for x, d, k in zip(leaves, data, keys, strict=True)
    ]
    return jax.tree.unflatten(treedef, out)


def _broadcast_int(value: int) -> int:
    from jax.experimental import multihost_utils

    return int(multihost_utils.broadcast_one_to_all(np.int32(value)))


#: Keys that change no computation: a run may resume with another value.
_RESUME_MAY_CHANGE = frozenset({"run.memory_check"})


def _check_same_config(config: Config, run_dir: str) -> None:
    """A run directory resumes only the config it was started with."""
    saved = configlib.to_dict(configlib.load(os.path.join(run_dir, "config.yaml"), cls=Config))
    current = configlib.to_dict(config)
    differ = sorted(
        key
        for key in configlib.flat_keys(Config)
        if key not in _RESUME_MAY_CHANGE and _get(saved, key) != _get(current, key)
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


@dataclasses.dataclass
class _RunDir:
    """Where a run writes (process 0 only) and where it resumes from."""

    path: str
    primary: bool
    checkpointer: Checkpointer | None
    resume_step: int | None


def _open_run_dir(config: Config, run_dir: str | None) -> _RunDir:
    """The run directory, checked and holding the resolved config, and its latest checkpoint.
    Only process 0 writes; the others compute their share of the same program."""
    primary = jax.process_index() == 0
    if primary:
        run_dir = prepare_run_dir(config) if run_dir is None else run_dir
    else:
        run_dir = run_dir or os.path.abspath(os.path.join(config.run.root, config.run.name))
    checkpointer = Checkpointer(os.path.join(run_dir, "checkpoints")) if primary else None
    resume_step = checkpointer.latest_step() if primary else None
    if jax.process_count() > 1:
        # Meet first: gloo gives a process 30 s to join the first collective, less than
        # process 0 may spend preparing the run directory.
        distributed.barrier("jaxmb-run-dir")
        resume_step = _broadcast_int(-1 if resume_step is None else resume_step)
        resume_step = None if resume_step < 0 else resume_step
    if primary:
        config_path = os.path.join(run_dir, "config.yaml")
        if resume_step is not None and os.path.exists(config_path):
            _check_same_config(config, run_dir)
        configlib.dump_yaml(config, config_path)
    return _RunDir(run_dir, primary, checkpointer, resume_step)


def _build_program(config: Config, where: _RunDir, logger: RunLogger | None, source=None):
    """`make_train` with the logger and the checkpointer as its callbacks."""

    def log(report) -> None:
        if logger is not None:  # callbacks run in process 0 only; this is belt and braces
            logger(report)

    def save_checkpoint(state) -> None:
        if where.checkpointer is not None:
            where.checkpointer.save(int(np.asarray(state.iteration).reshape(-1)[0]), state)

    return make_train(
        config,
        callback=log,
        checkpoint_callback=save_checkpoint,
        num_seeds=config.run.num_seeds,
        source=source,
    )


def _initial_state(config: Config, train, keys, where: _RunDir, hparams):
    """The state to run from (fresh, or restored from the latest checkpoint), the arguments
    of the compiled program, the function that compiles it, and the device layout.

    Fresh and resumed runs go through the same compiled `train.run`, so that resuming gives
    bit-identical results. With more than one device, members go over devices (and hosts) and
    each member's envs over what is left."""
    devices = {"processes": jax.process_count(), "seeds": 1, "envs": 1}
    if jax.device_count() == 1:
        if where.resume_step is None:
            state = jax.jit(train.init)(keys)
        else:
            state = where.checkpointer.restore(train.state_shapes(keys))

        def compile_run():
            return jax.jit(train.run).lower(state, hparams).compile()

        return state, (state, hparams), compile_run, devices
    mesh = distributed.member_mesh(config.run.num_seeds, config.env.num_envs)
    devices.update({name: int(size) for name, size in mesh.shape.items()})
    if where.resume_step is None:
        state = distributed.init_sharded(train, keys, mesh)
    else:
        like = train.state_shapes(keys)
        host = where.checkpointer.restore(like) if where.primary else _zeros_like(like)
        if jax.process_count() > 1:
            host = _broadcast_tree(host)
        state = distributed.to_global(host, distributed.seed_shardings(train, keys, mesh)[0])
    args = (state,)
    if hparams:
        args = (state, distributed.to_global(hparams, distributed.hparam_shardings(hparams, mesh)))

    def compile_run():
        return distributed.compile_sharded_run(train, state, mesh, hparams=hparams)

    return state, args, compile_run, devices


def _execute(compiled, args, logger: RunLogger | None):
    """Runs the compiled program to the end; a host env's failure is raised as
    `jaxmb.envs.HostEnvError`. Returns the final state, the metrics and the seconds taken."""
    if logger is not None:
        logger.start()
    start = time.perf_counter()
    try:
        final_state, metrics = compiled(*args)
        jax.block_until_ready(metrics)
        jax.effects_barrier()
    except jax.errors.JaxRuntimeError as err:
        from jaxmb.envs.host import raise_host_error

        raise_host_error(err)
        raise
    finally:
        if logger is not None:
            logger.close()
    return final_state, metrics, time.perf_counter() - start


def _memory_summary(estimate: memory_lib.Estimate) -> dict[str, Any]:
    """`summary.json`'s `memory`: the estimate (`jaxmb.memory`) and the peak measured, both
    in bytes. The measured peak is the device's `peak_bytes_in_use` where it reports one, else
    the host's peak RSS (`ru_maxrss`: this process's lifetime); the estimated peak is of the
    same memory."""
    measured = memory_lib.measured_peak()
    out = estimate.to_dict()
    out.update(measured)
    out["measured_peak_bytes"] = measured.get("device_peak_bytes", measured["host_peak_rss_bytes"])
    out["measured"] = "device" if "device_peak_bytes" in measured else "host RSS"
    return out


def _write_outputs(config: Config, run_dir: str, summary: dict, metrics: dict, finished: bool):
    """`summary.json` (a finished run rerun keeps the timings and memory figures of the run
    that trained) and the learning-curve plot."""
    summary_path = os.path.join(run_dir, "summary.json")
    if finished and os.path.exists(summary_path):
        with open(summary_path) as f:
            stored = json.load(f)
        summary.update({k: stored[k] for k in (*_TIMINGS, "memory") if k in stored})
    with open(summary_path, "w") as f:
        json.dump(summary, f, indent=2)
    plot_path = os.path.join(run_dir, "plots", "learning_curve.png")
    os.makedirs(os.path.dirname(plot_path), exist_ok=True)  # a caller's own run_dir too
    agent_name = "MuZero" if config.agent.kind == "muzero" else config.agent.kind
    plot_learning_curves(
        metrics, plot_path, title=f"{agent_name} on {config.env.id}", xlabel=steps_label(config)
    )
    summary["learning_curve"] = plot_path


def train_run(
    config: Config,
    *,
    quiet: bool = False,
    hparams: dict[str, np.ndarray] | None = None,
    keys: jax.Array | None = None,
    run_dir: str | None = None,
    source: Any = None,
) -> RunResult:
    """Trains `config.run.num_seeds` members together and writes the run directory.

    If the run directory already holds checkpoints of the same config, training resumes from
    the latest one; a run whose latest checkpoint is its last iteration returns its metrics
    (the restored history) without compiling, keeping the stored summary's timings and
    setting `summary["already_trained"]`. A non-finite loss raises
    `jaxmb.loop.NonFiniteLossError` after the last good state is kept (checkpoints are never
    written from a halted state).

    Args:
      config: the run's config; `run.num_seeds` members train in one program.
      quiet: no progress bar.
      hparams: sweepable key -> `[num_seeds]` values, one per member (`jaxmb.sweep`).
      keys: `[num_seeds]` PRNG keys (default: split from `run.seed`).
      run_dir: the directory to fill (default: `run.root/run.name`).
      source: transferred parts in place of `agent.init_from`'s (`jaxmb.transfer.Source`;
        read for a fresh run only, like `agent.init_from`).
    """
    compile_cache.enable(config.run.compile_cache)
    where = _open_run_dir(config, run_dir)
    logger = None
    if where.primary:
        logger = RunLogger(
            where.path,
            config.num_iterations * config.steps_per_iteration,
            num_seeds=config.run.num_seeds,
            tensorboard=config.run.tensorboard,
            progress=config.run.progress and not quiet,
        )
    train = _build_program(config, where, logger, source)  # checks memory (run.memory_check)
    keys = _seed_keys(config) if keys is None else keys
    estimate = train.memory_estimate()
    if where.primary:
        _check_disk_space(where.path, estimate)
    start = time.perf_counter()
    state, args, compile_run, devices = _initial_state(config, train, keys, where, hparams)
    start_iteration = int(distributed.to_host(state.iteration))
    # A finished run (its last checkpoint is the final iteration) is not compiled again: its
    # metrics are the restored state's history.
    finished = start_iteration >= config.num_iterations
    compiled = None if finished else compile_run()
    compile_seconds = time.perf_counter() - start
    if compiled is not None and jax.device_count() == 1:
        # XLA's temporary buffers in place of the config's estimate; with the state allocated,
        # what is left must hold the output state and the temporaries.
        if config.run.memory_check:
            estimate = memory_lib.check_compiled(estimate, compiled)
        else:
            estimate = memory_lib.with_compiled(estimate, compiled)
    if finished:
        final_state, metrics, run_seconds = state, state.history, 0.0
        if logger is not None:
            logger.start()
            logger.close()
    else:
        final_state, metrics, run_seconds = _execute(compiled, args, logger)
    if jax.device_count() > 1:
        final_state, metrics = distributed.to_host((final_state, metrics))
    check_finite(train.loop, final_state)
    if where.checkpointer is not None:
        where.checkpointer.save(config.num_iterations, final_state)
        where.checkpointer.close()
    metrics = {k: np.asarray(v) for k, v in metrics.items()}
    summary = summarize(config, metrics, compile_seconds, run_seconds, start_iteration)
    summary["mesh"] = devices  # processes, and devices along the members and the envs axes
    summary["already_trained"] = finished  # a finished run rerun: nothing ran
    summary["memory"] = _memory_summary(estimate)
    if where.primary:
        _write_outputs(config, where.path, summary, metrics, finished)
    return RunResult(where.path, summary, metrics, final_state)


_TIMINGS = ("compile_seconds", "run_seconds", "resumed_from_iteration", "env_steps_per_second")


def summarize(
    config: Config,
    metrics: dict[str, np.ndarray],
    compile_seconds: float,
    run_seconds: float,
    start_iteration: int = 0,
) -> dict[str, Any]:
    """Final figures of a run: per-seed and mean final greedy eval return, speed (of the
    iterations this process ran: all of them, or those after `start_iteration` on resume),
    and, where the env declares achievements, their success rates and (Craftax) the Crafter
    score (`achievement_summary`)."""
    eval_returns = metrics["eval/episode_return"]  # [S, I]
    final_eval = [
        float(row[np.isfinite(row)][-1]) if np.isfinite(row).any() else None for row in eval_returns
    ]
    env_steps = int(metrics["env_steps"][0, -1])
    num_seeds = eval_returns.shape[0]
    ran = config.num_iterations - start_iteration
    return {
        "env_id": config.env.id,
        "num_seeds": num_seeds,
        "env_steps_per_seed": env_steps,
        "final_eval_return": final_eval,
        "final_eval_return_mean": (None if None in final_eval else float(np.mean(final_eval))),
        "compile_seconds": round(compile_seconds, 2),
        "run_seconds": round(run_seconds, 2),
        "resumed_from_iteration": start_iteration or None,
        # None for a finished run rerun: it runs no iteration.
        "env_steps_per_second": (
            round(num_seeds * ran * config.steps_per_iteration / run_seconds, 1)
            if ran > 0 and run_seconds > 0
            else None
        ),
        **achievement_summary(config.env.id, metrics),
    }


def achievement_success_rates(metrics: dict[str, np.ndarray]) -> dict[str, list[float | None]]:
    """Each achievement's success rate over all training episodes of a run, per seed.

    The rate of achievement `name` is `100 * sum(train/achievements/<name>) /
    sum(train/episodes)`, both summed over every iteration that ran (the history's counts;
    iterations not run hold -1 and are left out): the percentage of the run's ended training
    episodes that unlocked it at least once, as Hafner (2021) defines it.

    Args:
        metrics: a run's history (`RunResult.metrics`, `make_train`'s metrics): name ->
            `[num_seeds, num_iterations]` (or `[num_iterations]`, one seed).

    Returns:
        `{name: [rate of each seed]}` in percent, in name order, None for a seed in whose run
        no episode ended; empty where the env declares no achievements.
    """
    names = sorted(
        k[len(ACHIEVEMENT_METRIC_PREFIX) :]
        for k in metrics
        if k.startswith(ACHIEVEMENT_METRIC_PREFIX)
    )
    if not names:
        return {}
    episodes = _run_total(metrics["train/episodes"])
    rates = {}
    for name in names:
        unlocked = _run_total(metrics[ACHIEVEMENT_METRIC_PREFIX + name])
        rates[name] = [
            None if ended == 0 else 100.0 * int(count) / int(ended)
            for count, ended in zip(unlocked, episodes, strict=True)
        ]
    return rates


def _run_total(counts: np.ndarray) -> np.ndarray:
    """`[num_seeds]`: a count metric summed over the iterations that ran (count >= 0)."""
    counts = np.atleast_2d(np.asarray(counts, np.int64))
    return np.where(counts >= 0, counts, 0).sum(axis=-1)


def achievement_summary(env_id: str, metrics: dict[str, np.ndarray]) -> dict[str, Any]:
    """`summary.json`'s achievement figures (see `achievement_success_rates`).

    Returns:
        `achievement_success_rates` (`{name: [percent per seed]}`, None where the env declares
        no achievements) and, for `craftax:` envs, `crafter_score` (per seed: the Crafter
        score of that seed's rates, `jaxmb.envs.craftax_adapter.crafter_score`; None for a
        seed without ended episodes) and `crafter_score_mean` (over the seeds; None unless
        every seed has a score). The score fields are None on other envs.
    """
    rates = achievement_success_rates(metrics)
    scores = None
    if rates and env_id.startswith("craftax:"):
        num_seeds = len(next(iter(rates.values())))
        per_seed = [[rate[seed] for rate in rates.values()] for seed in range(num_seeds)]
        scores = [
            None if None in seed_rates else crafter_score(seed_rates) for seed_rates in per_seed
        ]
    return {
        "achievement_success_rates": rates or None,
        "crafter_score": scores,
        "crafter_score_mean": (
            None if scores is None or None in scores else float(np.mean(scores))
        ),
    }
