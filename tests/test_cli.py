"""`make run`'s command on a shortened budget writes every file of the run directory."""

import json
import os
import subprocess
import sys

import pytest
from tiny_config import TINY, fast_subprocess_env

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The default config's loop with TINY's small networks: the default networks' compile would
# double this test's time, and `test_learning.py` trains them.
SHORT = [
    *(o for o in TINY if o.startswith("agent.network.")),
    "train.total_env_steps=1024",
    "train.eval_every=512",
    "train.log_every=256",
    "train.checkpoint_every=512",
    "replay.min_size=256",
    "env.num_eval_envs=4",
    "env.eval_max_steps=50",
    "agent.search.num_simulations=4",
]


def _cli(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "jaxmb", *args],
        cwd=cwd,
        env=fast_subprocess_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow
def test_train_then_eval_writes_run_directory(tmp_path, capsys):
    train = ("train", *SHORT, "--seeds", "2", "--name", "smoke", "--quiet", f"run.root={tmp_path}")
    result = _cli(*train, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = tmp_path / "smoke"
    for name in ("config.yaml", "metrics.jsonl", "summary.json", "plots/learning_curve.png"):
        assert (run_dir / name).is_file(), name
    assert any((run_dir / "tensorboard").iterdir())
    steps = sorted(int(p.name) for p in (run_dir / "checkpoints").iterdir() if p.name.isdigit())
    assert steps == [8, 16]  # every 512 env steps = 8 iterations of 64
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["num_seeds"] == 2 and len(summary["final_eval_return"]) == 2
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert {r["seed_index"] for r in rows} == {0, 1}
    assert "run directory:" in result.stdout and "learning curve:" in result.stdout

    # The same command again: the run is finished, so nothing compiles or runs, and the
    # summary keeps the first run's timings.
    again = _cli(*train, cwd=ROOT)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "already trained" in again.stdout
    assert json.loads((run_dir / "summary.json").read_text()) == {
        **summary,
        "already_trained": True,
    }

    evaluated = _cli("eval", str(run_dir), "--episodes", "2", cwd=ROOT)
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    assert "mean:" in evaluated.stdout
    # Another test budget and env params over the run's: episodes capped at 5 steps. In this
    # process (the CLI's `main`), which saves two interpreter start-ups.
    from jaxmb.__main__ import main

    capsys.readouterr()
    capped = ["--simulations", "0", "--env-param", "max_steps_in_episode=5"]
    assert main(["eval", str(run_dir), "--episodes", "2", *capped]) == 0
    assert float(capsys.readouterr().out.split("mean:")[1]) <= 5.0
    assert main(["eval", str(run_dir), "--env-param", "max_steps_in_episode"]) == 2
    assert "--env-param wants key=value" in capsys.readouterr().err


def test_bad_override_is_a_clear_error(tmp_path):
    result = _cli("train", "agent.search.num_simulatons=5", f"run.root={tmp_path}", cwd=ROOT)
    assert result.returncode == 2
    assert "agent.search.num_simulations" in result.stderr
    assert "Traceback" not in result.stderr


def test_experiment_env_option_picks_the_env_preset_as_base():
    from jaxmb.__main__ import _with_env

    changes = {"seeds": 2}
    overrides = _with_env("gymnax:Acrobot-v1", changes, ["train.total_env_steps=64"])
    assert os.path.basename(changes["base"]) == "acrobot.yaml"
    assert overrides == ["env.id=gymnax:Acrobot-v1", "train.total_env_steps=64"]
    unchanged = {"seeds": 2}
    assert _with_env(None, unchanged, ["a=1"]) == ["a=1"] and unchanged == {"seeds": 2}


def test_presets_lists_every_name_with_its_description(capsys):
    from jaxmb import presets
    from jaxmb.__main__ import main

    assert main(["presets"]) == 0
    table, footer = capsys.readouterr().out.split("\n\n")  # the rows, then where they are
    lines = table.splitlines()
    assert len(lines) == len(presets.names()) and str(presets.root()) in footer
    for name in presets.names():
        (line,) = [x for x in lines if x.split(" ", 1)[0] == name]
        assert line.split(None, 1)[1] == presets.description(name)
    assert main(["presets", "q_learning"]) == 0
    table = capsys.readouterr().out.split("\n\n")[0]
    assert [x.split(" ", 1)[0] for x in table.splitlines()] == ["q_learning/cartpole"]
    assert main(["presets", "muzeros"]) == 2
    assert "experiments, muzero, q_learning" in capsys.readouterr().err


def test_cli_takes_preset_names_and_suggests_close_ones(capsys):
    from jaxmb.__main__ import main

    # Each fails while reading its config, before anything is built or compiled.
    assert main(["train", "muzero/cartpol", "train.total_env_steps=64"]) == 2
    assert "did you mean 'muzero/cartpole', 'q_learning/cartpole'?" in capsys.readouterr().err
    assert main(["sweep", "configs/muzero/acrobt.yaml"]) == 2
    assert "did you mean 'muzero/acrobot'" in capsys.readouterr().err
    assert main(["experiment", "planning", "planning_cartpole_cpux"]) == 2
    assert "'experiments/planning_cartpole_cpu'" in capsys.readouterr().err
    assert main(["experiment", "planning-generalisation", "generalisation_minipacman"]) == 2
    assert "'experiments/generalisation_minipacman_cpu'" in capsys.readouterr().err
