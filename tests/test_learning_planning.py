"""Learning test of the Learn variant (Hamrick et al. 2021): search only for the targets,
acting from the policy prior, still learns CartPole. (Vanilla MuZero, Learn+Data+Eval, is the
default preset: tests/test_learning.py.)"""

import os

import jax
import numpy as np
import pytest

from jaxmb import config as config_lib
from jaxmb.experiments.variants import variant_overrides
from jaxmb.train import make_train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.heavy
def test_learn_variant_learns_cartpole():
    """Reanalysing every window with 8 simulations, acting from the prior: the greedy prior
    reaches >= 300 within 12k env steps (random play scores about 20)."""
    cfg = config_lib.load(
        os.path.join(ROOT, "configs", "muzero", "cartpole.yaml"),
        [
            *variant_overrides("learn"),
            "agent.search.num_simulations=8",
            "replay.batch_size=32",
            "train.replay_ratio=0.25",
            "train.total_env_steps=12000",
            "train.eval_every=1000",
        ],
    )
    _, metrics = jax.jit(make_train(cfg))(jax.random.key(7))
    evals = np.asarray(metrics["eval/episode_return"])
    steps = np.asarray(metrics["env_steps"])
    curve = ", ".join(f"{s}: {e:.0f}" for s, e in zip(steps, evals, strict=True) if np.isfinite(e))
    assert np.nanmax(evals) >= 300, f"greedy eval curve {curve}"
