"""Learning test: the model-free control (configs/q_learning/cartpole.yaml) learns CartPole
through the same loop as MuZero (`jaxmb.make_train`)."""

import os

import jax
import numpy as np
import pytest

import jaxmb
from jaxmb import config as config_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_q_learning_cartpole_preset_learns_two_vmapped_seeds():
    """Greedy eval (16 episodes) reaches >= 400 within 8k env steps, for each of 2 seeds.

    Measured on a 2-core CPU box (2026-12-02), greedy return per eval, these two seeds:

          env steps  1984   3968   5952   7936   8000
          seed 0      336    473    473    478    500
          seed 1      136    413    470    492    248

    and in a 4-seed probe (other keys, 12k steps) every seed was >= 400 at 3968 env steps
    (455, 477, 500, 483). With epsilon_end=0.05 and a 2000-update decay instead, two of those
    four seeds stayed under 400 (best 260 and 358) for 12k steps. About 3 minutes here,
    a third of it compiling.
    """
    cfg = config_lib.load(
        os.path.join(ROOT, "configs", "q_learning", "cartpole.yaml"),
        ["train.total_env_steps=8000", "train.eval_every=2000", "env.num_eval_envs=16"],
    )
    keys = jax.random.split(jax.random.key(2026), 2)
    _, metrics = jax.jit(jax.vmap(jaxmb.make_train(cfg)))(keys)
    steps = np.asarray(metrics["env_steps"][0])
    evals = np.asarray(metrics["eval/episode_return"])
    done = np.isfinite(evals[0])
    curve = "\n".join(
        f"  {s:>6}: {row}" for s, row in zip(steps[done], evals[:, done].T, strict=True)
    )
    best = evals[:, done].max(axis=1)
    assert (best >= 400).all(), f"best greedy eval per seed {best}; curve:\n{curve}"
    assert np.all(np.isfinite(np.asarray(metrics["loss/q"])[:, -1])), curve
