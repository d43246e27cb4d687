"""The scripts in `examples/` run, at the TINY budget, as a user runs them: `python
examples/<script>.py ...` in a subprocess, from a folder outside the repository."""

import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
from tiny_config import TINY, fast_subprocess_env
from xdist_once import computed_once

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
# The agent's part of TINY (networks, search, loss): what `own_scan_loop.py` reads.
TINY_AGENT = [o for o in TINY if o.startswith("agent.")]


def run_example(script: str, *args: str, cwd: Path, **env: str) -> tuple[str, str]:
    """Runs `examples/<script>` with `args` in `cwd`, with more environment variables `env`;
    returns its stdout and stderr."""
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        cwd=cwd,
        env=dict(fast_subprocess_env(), **env),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout, result.stderr


def numbers(text: str) -> list[float]:
    return [float(x) for x in re.findall(r"-?\d+(?:\.\d+)?", text)]


def line_after(output: str, prefix: str) -> str:
    lines = [line for line in output.splitlines() if line.startswith(prefix)]
    assert lines, f"no line starting with {prefix!r} in:\n{output}"
    return lines[-1][len(prefix) :]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, worker_id):
    """`train_cartpole.py` at the TINY budget, 2 seeds: its output and its folder (the run
    directory is `runs/cartpole-example` in it). Run once even when xdist splits the module."""

    def train():
        folder = tmp_path_factory.mktemp("train_cartpole")
        out, _ = run_example(
            "train_cartpole.py", *TINY, "--seeds", "2", "--out", "curve.png", cwd=folder
        )
        return out, folder

    return computed_once(tmp_path_factory, worker_id, "examples-train-cartpole", train)


def test_train_cartpole_trains_and_plots(trained):
    out, folder = trained
    png = folder / "curve.png"
    assert png.stat().st_size > 20_000  # two panels of curves, not an empty figure
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    final = numbers(line_after(out, "final greedy eval return per seed:"))
    assert len(final) == 2 and all(math.isfinite(r) and r > 0 for r in final)
    run_dir = folder / "runs" / "cartpole-example"
    assert line_after(out, "run directory: ") == str(run_dir)
    assert (run_dir / "config.yaml").exists() and any((run_dir / "checkpoints").iterdir())


def test_act_in_gymnasium_plays_a_trained_run(trained):
    _, folder = trained
    run_dir = folder / "runs" / "cartpole-example"
    out, _ = run_example("act_in_gymnasium.py", str(run_dir), "--episodes", "2", cwd=folder)
    returns = [numbers(line_after(out, f"episode {i}: return "))[0] for i in range(2)]
    # CartPole pays 1 per step, for at least the step that ends the episode and at most 500.
    assert all(1 <= r <= 500 and r == int(r) for r in returns)
    mean = numbers(line_after(out, "mean return over 2 episodes: "))[0]
    assert mean == pytest.approx(sum(returns) / 2, abs=0.05)


# A convenience path; the test above covers loading and acting. Heavy: a second training run
# (`make test` stays under 15 minutes on 2 cores).
@pytest.mark.heavy
@pytest.mark.slow
def test_act_in_gymnasium_trains_a_run_when_given_none(trained, tmp_path):
    # The fixture's config under another run name: the same program, read back from the
    # persistent compilation cache the fixture's run filled.
    out, _ = run_example(
        "act_in_gymnasium.py", *TINY, "run.num_seeds=2", "--episodes", "1", cwd=tmp_path
    )
    assert line_after(out, "loaded Policy('gymnax:CartPole-v1') from ") == str(
        tmp_path / "runs" / "act-in-gymnasium"
    )
    assert 1 <= numbers(line_after(out, "episode 0: return "))[0] <= 500


def test_sweep_lr_seeds_trains_every_member_in_one_program(tmp_path):
    out, log = run_example(
        "sweep_lr_seeds.py", *TINY, "--lrs", "1e-3", "1e-2", "--seeds", "2", "--out", "s.png",
        cwd=tmp_path, JAX_LOG_COMPILES="1",
    )  # fmt: skip
    assert "compiled once for 4 members" in out
    # JAX logs every compile: the training program is compiled once, for the 4 members' keys.
    compiles = [line for line in log.splitlines() if "Compiling jit(train)" in line]
    assert len(compiles) == 1 and re.search(r"key<\w+>\[4\]", compiles[0]), compiles
    # 2 learning rates x 2 seeds, 10 iterations of 16 env steps
    assert line_after(out, "eval/episode_return: shape ").startswith("(4, 10)")
    for lr in ("0.001", "0.01"):
        final = numbers(line_after(out, f"lr {lr}: final greedy return per seed "))
        assert len(final) == 2 and all(math.isfinite(r) for r in final)
    assert (tmp_path / "s.png").stat().st_size > 20_000


def test_own_scan_loop_acts_and_learns_with_the_agent(tmp_path):
    out, _ = run_example(
        "own_scan_loop.py", *TINY_AGENT, "--envs", "4", "--iterations", "10",
        "--updates", "2", "--batch", "8", "--eval-steps", "50", cwd=tmp_path,
    )  # fmt: skip
    assert "10 iterations, 160 env steps" in out
    # The first iteration stores 4 steps, less than a window (5 with TINY): no update yet.
    first, last, learned = numbers(line_after(out, "loss: "))
    assert math.isfinite(first) and math.isfinite(last) and learned == 9
    greedy = numbers(line_after(out, "greedy return: "))[0]
    assert 1 <= greedy <= 50  # at least the step that ends the episode; capped by --eval-steps
