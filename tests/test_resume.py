"""Runs that survive: SIGKILL then resume gives the same parameters; NaN keeps good checkpoints."""

import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from tiny_config import TINY, fast_subprocess_env

from jaxmb.evaluate import load_run

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NAN_INJECTION = os.path.join(ROOT, "tests", "nan_injection.py")
LONG = [*TINY, "train.total_env_steps=6400", "train.checkpoint_every=320", "train.eval_every=3200"]


def _command(root, *extra, nan_at: int | None = None):
    # `nan_injection.py N` runs the CLI with SGD update N poisoned.
    launcher = ["-m", "jaxmb"] if nan_at is None else [NAN_INJECTION, str(nan_at)]
    return [
        sys.executable,
        *launcher,
        "train",
        *LONG,
        *extra,
        "--name",
        "r",
        "--quiet",
        f"run.root={root}",
    ]


def _train(root, *extra, nan_at: int | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        _command(root, *extra, nan_at=nan_at),
        cwd=ROOT,
        env=fast_subprocess_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )


def _checkpoints(run_dir):
    folder = os.path.join(run_dir, "checkpoints")
    if not os.path.isdir(folder):
        return []
    return sorted(int(p) for p in os.listdir(folder) if p.isdigit())


@pytest.mark.slow
def test_sigkill_then_resume_is_bit_identical(tmp_path):
    reference = _train(tmp_path / "a")
    assert reference.returncode == 0, reference.stderr[-3000:]

    run_dir = tmp_path / "b" / "r"
    proc = subprocess.Popen(
        _command(tmp_path / "b"),
        cwd=ROOT,
        env=fast_subprocess_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 600
    while not _checkpoints(run_dir) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    kept = _checkpoints(run_dir)
    assert kept and kept[-1] < 400, kept

    resumed = _train(tmp_path / "b")
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    _, _, state_a = load_run(str(tmp_path / "a" / "r"))
    _, _, state_b = load_run(str(run_dir))
    assert int(state_b.iteration) == int(state_a.iteration) == 400
    for a, b in zip(
        jax.tree.leaves(state_a.agent.params), jax.tree.leaves(state_b.agent.params), strict=True
    ):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    np.testing.assert_array_equal(state_a.history["loss"], state_b.history["loss"])


@pytest.mark.slow
def test_non_finite_loss_stops_the_run_and_keeps_good_checkpoints(tmp_path):
    # Two updates per iteration from the second on: update 100 falls in iteration 51, after
    # the checkpoints of iterations 20 and 40 (every 320 env steps = 20 iterations of 16).
    result = _train(tmp_path, nan_at=100)
    assert result.returncode == 3, result.stderr[-3000:]
    assert "SGD update 100" in result.stderr and "value" in result.stderr
    assert "Traceback" not in result.stderr
    run_dir = tmp_path / "r"
    assert _checkpoints(run_dir) == [20, 40]
    _, _, state = load_run(str(run_dir))
    assert not np.asarray(state.halted).any()
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(state.agent.params))
