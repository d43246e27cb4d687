"""Evaluation of a finished (or interrupted) run from its directory."""

from __future__ import annotations

import os

import jax
import numpy as np

from jaxmb import config as config_lib
from jaxmb import configlib
from jaxmb.checkpoint import Checkpointer
from jaxmb.config import ConfigError
from jaxmb.train import _Loop


def load_run(run_dir: str):
    """The config, loop pieces and latest train state (seed-batched) of a run directory."""
    config_path = os.path.join(run_dir, "config.yaml")
    if not os.path.exists(config_path):
        raise ConfigError(f"{run_dir} is not a run directory (no config.yaml)", "run_dir")
    config = config_lib.load(config_path)
    loop = _Loop(config)
    keys = jax.random.split(jax.random.key(0), config.run.num_seeds)
    like = jax.eval_shape(loop.init_seeds, keys)
    checkpointer = Checkpointer(os.path.join(run_dir, "checkpoints"))
    state = checkpointer.restore(like)
    checkpointer.close()
    return config, loop, state


def evaluate_run(run_dir: str, *, episodes: int = 32, seed: int = 12345) -> dict:
    """Greedy evaluation (search as `agent.search.for_acting_test` says) of every seed.

    Returns:
      `{"per_seed": [mean return of each seed], "mean": float}`.
    """
    config, _, state = load_run(run_dir)
    config = configlib.replace(config, env=configlib.replace(config.env, num_eval_envs=episodes))
    loop = _Loop(config)
    keys = jax.random.split(jax.random.key(seed), config.run.num_seeds)
    returns = jax.jit(jax.vmap(loop.evaluate))(state.agent, keys)
    per_seed = [float(x) for x in np.asarray(returns)]
    return {"per_seed": per_seed, "mean": float(np.mean(per_seed))}
