"""Learning tests: the default CartPole preset must actually learn."""

import os

import jax
import numpy as np
import pytest

from jaxmb import config as config_lib
from jaxmb.train import make_train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_default_cartpole_preset_learns_two_vmapped_seeds():
    """Greedy eval (16 episodes) reaches >= 400 within 22k env steps, for each of 2 seeds."""
    cfg = config_lib.load(
        os.path.join(ROOT, "configs", "muzero", "cartpole.yaml"),
        ["train.total_env_steps=22000", "train.eval_every=4000", "env.num_eval_envs=16"],
    )
    train = make_train(cfg)
    _, metrics = jax.jit(jax.vmap(train))(jax.random.split(jax.random.key(2026), 2))
    steps = np.asarray(metrics["env_steps"][0])
    evals = np.asarray(metrics["eval/episode_return"])
    done = np.isfinite(evals[0])
    curve = "\n".join(
        f"  {s:>6}: " + "  ".join(f"{evals[i, j]:6.1f}" for i in range(2))
        for j, s in zip(np.flatnonzero(done), steps[done], strict=True)
    )
    best = np.nanmax(evals, axis=1)
    assert (best >= 400).all(), f"best greedy eval per seed {best}; curve:\n{curve}"
