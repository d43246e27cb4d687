"""Learning tests: the default CartPole preset must actually learn."""

import os

import pytest
from learning_curves import train_seeds

from jaxmb import config as config_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_default_cartpole_preset_learns_two_vmapped_seeds():
    """Greedy eval (16 episodes) reaches >= 400 within 30k env steps, for each of 2 seeds.

    How many steps a seed needs varies: in a 4-seed probe on a 2-core AMD EPYC box (evaluated
    every 2k steps) the seeds first reached 400 at 4k, 6k, 8k and 20k env steps. The budget
    was 22k until one of this test's seeds, on such a box, peaked at 295 by 22k."""
    cfg = config_lib.load(
        os.path.join(ROOT, "configs", "muzero", "cartpole.yaml"),
        ["train.total_env_steps=30000", "train.eval_every=4000", "env.num_eval_envs=16"],
    )
    evals, curve = train_seeds(cfg, num_seeds=2)
    best = evals.max(axis=1)
    assert (best >= 400).all(), f"best greedy eval per seed {best}; curve:\n{curve}"
