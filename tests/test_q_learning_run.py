"""The Q-learning baseline goes through everything MuZero goes through: run directories and
checkpoints, resume, evaluation, `load_policy`, sweeps, plots and the CLI."""

from __future__ import annotations

import json
import os

import jax
import numpy as np
from tiny_config import TINY

from jaxmb import config as config_lib
from jaxmb import run as run_lib
from jaxmb import sweeps
from jaxmb.__main__ import main
from jaxmb.agents.registry import unread_keys, with_kind
from jaxmb.evaluate import evaluate_run
from jaxmb.policy import load_policy

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# TINY without the keys q_learning does not read (it refuses them away from their defaults).
TINY_Q = [o for o in TINY if not o.split("=")[0].startswith(unread_keys("q_learning"))]


def _tiny_q(root, *extra):
    base = config_lib.load(None, [*TINY, f"run.root={root}", "run.tensorboard=false"])
    return config_lib.configlib.apply_overrides(with_kind(base, "q_learning"), list(extra))


def test_run_dir_resume_eval_and_policy(tmp_path):
    config = _tiny_q(tmp_path, "run.name=q", "run.num_seeds=2", "train.checkpoint_every=80")
    assert config.agent.kind == "q_learning" and config.agent.loss.weights == {"q": 1.0}
    result = run_lib.train_run(config, quiet=True)
    run_dir = result.run_dir
    assert os.path.basename(run_dir) == "q"
    assert os.path.exists(os.path.join(run_dir, "plots", "learning_curve.png"))
    with open(os.path.join(run_dir, "summary.json")) as f:
        summary = json.load(f)
    assert len(summary["final_eval_return"]) == 2
    assert np.isfinite(result.metrics["loss/q"][:, 1:]).all()
    assert "q/epsilon" in result.metrics
    # A rerun of the finished run restores it and compiles nothing.
    again = run_lib.train_run(config, quiet=True)
    assert again.summary["already_trained"]
    for a, b in zip(
        jax.tree.leaves(result.final_state.agent.params),
        jax.tree.leaves(again.final_state.agent.params),
        strict=True,
    ):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    evaluation = evaluate_run(run_dir, episodes=2)
    assert len(evaluation["per_seed"]) == 2
    policy = load_policy(run_dir, member=1)
    action = policy(np.zeros(4, np.float32))
    assert int(action) in (0, 1)


def test_sweep_and_cli(tmp_path):
    config = _tiny_q(tmp_path, "train.total_env_steps=64")
    result = sweeps.sweep(
        config, seeds=2, grid={"agent.optim.learning_rate": [1e-3, 3e-3]}, name="s", quiet=True
    )
    assert len(result.points) == 2
    assert os.path.exists(os.path.join(tmp_path, "s", "sweep.json"))
    code = main(
        [
            "train",
            os.path.join(ROOT, "configs", "q_learning", "cartpole.yaml"),
            *TINY_Q,
            "train.total_env_steps=64",
            f"run.root={tmp_path}",
            "run.tensorboard=false",
            "--name",
            "cli",
            "--quiet",
        ]
    )
    assert code == 0
    assert os.path.exists(os.path.join(tmp_path, "cli", "summary.json"))
