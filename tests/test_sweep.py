"""`jaxmb.sweep` and `python -m jaxmb sweep`: a grid x seeds in one program, one run directory
per member, sweep.json and the comparison plot."""

import json
import os

import numpy as np
import pytest
import yaml
from tiny_config import TINY, tiny

import jaxmb
from jaxmb import sweeps
from jaxmb.__main__ import main
from jaxmb.config import ConfigError
from jaxmb.stats import t_interval

LR = "agent.optim.learning_rate"


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    config = tiny(f"run.root={root}", "run.progress=false", "run.tensorboard=false")
    grid = {LR: [1e-3, 1e-2]}
    return config, grid, jaxmb.sweep(config, seeds=2, grid=grid, name="lr")


def test_sweep_writes_one_run_directory_per_member(swept):
    config, _, result = swept
    assert [m["label"] for m in result.members] == [
        "learning_rate=0.001-seed0",
        "learning_rate=0.001-seed1",
        "learning_rate=0.01-seed0",
        "learning_rate=0.01-seed1",
    ]
    for index, member in enumerate(result.members):
        run_dir = member["run_dir"]
        for name in ("config.yaml", "metrics.jsonl", "summary.json", "plots/learning_curve.png"):
            assert os.path.exists(os.path.join(run_dir, name)), name
        with open(os.path.join(run_dir, "config.yaml")) as f:
            saved = yaml.safe_load(f)
        assert saved["agent"]["optim"]["learning_rate"] == member["hparams"][LR]
        with open(os.path.join(run_dir, "metrics.jsonl")) as f:
            rows = [json.loads(line) for line in f]
        assert len(rows) == config.num_iterations
        losses = [np.nan if r["loss"] is None else r["loss"] for r in rows]
        np.testing.assert_allclose(losses, result.metrics["loss"][index])
    # Seeds repeat across grid points (common random numbers): the first iteration, before
    # any learning, is the same for seed 0 of both learning rates.
    episodes = result.metrics["train/episodes"]
    np.testing.assert_array_equal(episodes[0, :2], episodes[2, :2])
    loss = result.metrics["loss"]
    assert not np.allclose(loss[0, 1:], loss[2, 1:])


def test_sweep_json_and_plot(swept):
    _, grid, result = swept
    with open(os.path.join(result.sweep_dir, "sweep.json")) as f:
        summary = json.load(f)
    assert summary["grid"] == grid and summary["seeds"] == 2 and summary["num_members"] == 4
    for point, members in zip(summary["points"], ([0, 1], [2, 3]), strict=True):
        finals = [result.members[i]["final_eval_return"] for i in members]
        assert point["final_eval_return"] == finals
        assert point["mean"] == pytest.approx(np.mean(finals))
        low, high = point["ci95"]
        assert low <= point["mean"] <= high
    assert os.path.getsize(os.path.join(result.sweep_dir, "plots", "sweep.png")) > 10_000


def test_rerunning_a_finished_sweep_resumes_and_another_grid_is_refused(swept):
    config, grid, result = swept
    again = jaxmb.sweep(config, seeds=2, grid=grid, name="lr")
    assert again.summary["points"] == result.summary["points"]
    # Finished: the restored history; nothing compiled or ran, so the timings are the first's.
    assert again.summary["already_trained"] and not result.summary["already_trained"]
    for name in ("compile_seconds", "run_seconds", "env_steps_per_second"):
        assert again.summary[name] == result.summary[name], name
    for name, values in result.metrics.items():
        np.testing.assert_array_equal(again.metrics[name], values, err_msg=name)
    with pytest.raises(ConfigError, match="another grid"):
        jaxmb.sweep(config, seeds=2, grid={LR: [1e-3]}, name="lr")


def test_t_interval_matches_a_hand_computation():
    # mean 2, sample sd 1, n = 3: t_{0.975, 2} = 4.302653 -> half width 4.302653 / sqrt(3).
    low, high = t_interval([1.0, 2.0, 3.0])
    assert (high - low) / 2 == pytest.approx(4.302653 / np.sqrt(3), rel=1e-6)
    assert t_interval([1.0]) is None
    # The old import path still works.
    assert sweeps.t_interval is t_interval


@pytest.mark.parametrize(
    ("grid", "says"),
    [
        ("agent.search.num_simulations=4,-1", "agent.search.num_simulations"),
        ("agent.network.latnt_dim=8,16", "did you mean"),
        ("run.seed=1,2", "run.* keys"),
        ("agent.q_learning.epsilon_decay_updates=2,4", "does not read"),
        ("agent.optim.learning_rate=fast", "takes numbers"),
        ("agent.optim.learnin_rate=1e-3", "did you mean"),
        ("agent.loss.discount=0.9,1.5", "agent.loss.discount"),
        ("agent.loss.discount=", "key=v1,v2"),
    ],
)
def test_cli_sweep_errors_name_the_key_before_compiling(grid, says, capsys, tmp_path):
    code = main(["sweep", f"run.root={tmp_path}", "--grid", grid, "--quiet"])
    assert code == 2
    err = capsys.readouterr().err
    assert says in err
    assert "Traceback" not in err


NUM_ENVS = "env.num_envs"


@pytest.fixture(scope="module")
def structural(tmp_path_factory):
    """A structural key (the number of envs: it changes the batch and the iteration count)
    times a sweepable one: two groups of two members, one compile each."""
    root = tmp_path_factory.mktemp("runs")
    overrides = [f"run.root={root}", "run.progress=false", "run.tensorboard=false"]
    grid = {NUM_ENVS: [4, 8], LR: [1e-3, 1e-2]}
    return overrides, grid, jaxmb.sweep(tiny(*overrides), grid=grid, name="structural")


def test_structural_keys_compile_once_per_group_and_vmap_the_rest(structural):
    _, grid, result = structural
    summary = result.summary
    assert summary["structural_keys"] == [NUM_ENVS]
    assert [g["label"] for g in summary["groups"]] == ["num_envs=4", "num_envs=8"]
    assert [g["members"] for g in summary["groups"]] == [2, 2]
    assert summary["compile_seconds"] == pytest.approx(
        sum(g["compile_seconds"] for g in summary["groups"]), abs=0.02
    )
    labels = [m["label"] for m in result.members]
    assert labels == [
        "num_envs=4,learning_rate=0.001-seed0",
        "num_envs=4,learning_rate=0.01-seed0",
        "num_envs=8,learning_rate=0.001-seed0",
        "num_envs=8,learning_rate=0.01-seed0",
    ]
    for group in summary["groups"]:
        with open(os.path.join(group["run_dir"], "config.yaml")) as f:
            saved = yaml.safe_load(f)
        assert saved["env"]["num_envs"] == group["structural"][NUM_ENVS]
        assert saved["run"]["num_seeds"] == 2
    # 160 env steps: 10 iterations of 4 x 4 steps, or 5 of 8 x 4 (padded with NaN after).
    steps = result.metrics["env_steps"]
    np.testing.assert_array_equal(steps[0], np.arange(1, 11) * 16)
    np.testing.assert_array_equal(steps[2, :5], np.arange(1, 6) * 32)
    assert np.isnan(steps[2, 5:]).all()
    for member in result.members:
        with open(os.path.join(member["run_dir"], "config.yaml")) as f:
            saved = yaml.safe_load(f)
        assert saved["env"]["num_envs"] == member["hparams"][NUM_ENVS]
        assert saved["agent"]["optim"]["learning_rate"] == member["hparams"][LR]
        with open(os.path.join(member["run_dir"], "metrics.jsonl")) as f:
            rows = [json.loads(line) for line in f]
        assert rows[-1]["env_steps"] == 160
    # Each member's metrics are its group's: the group's own summary.json holds the same
    # final returns, in member order.
    for g, group in enumerate(summary["groups"]):
        with open(os.path.join(group["run_dir"], "summary.json")) as f:
            finals = json.load(f)["final_eval_return"]
        assert finals == [m["final_eval_return"] for m in result.members[2 * g : 2 * g + 2]]
    loss = result.metrics["loss"]
    assert not np.allclose(loss[0, 1:5], loss[2, 1:5])
    with open(os.path.join(result.sweep_dir, "sweep.json")) as f:
        saved = json.load(f)
    assert saved["grid"] == grid and saved["num_members"] == 4
    assert [p["label"] for p in saved["points"]] == [m["label"][:-6] for m in result.members]
    assert os.path.getsize(os.path.join(result.sweep_dir, "plots", "sweep.png")) > 10_000


def test_structural_sweep_resumes_per_group_from_the_cli(structural, capsys):
    overrides, _, result = structural
    groups = result.summary["groups"]
    # The second group lost its checkpoints (as if the sweep stopped during it): rerunning the
    # same sweep from the command line keeps the first group and trains the second again.
    import shutil

    shutil.rmtree(os.path.join(groups[1]["run_dir"], "checkpoints"))
    code = main(
        [
            "sweep",
            *TINY,
            *overrides,
            "--grid",
            f"{NUM_ENVS}=4,8",
            "--grid",
            f"{LR}=1e-3,1e-2",
            "--name",
            "structural",
            "--quiet",
        ]
    )
    assert code == 0, capsys.readouterr().err
    with open(os.path.join(result.sweep_dir, "sweep.json")) as f:
        again = json.load(f)
    assert [g["already_trained"] for g in again["groups"]] == [True, False]
    assert again["groups"][0]["compile_seconds"] == groups[0]["compile_seconds"]
    # Same seeds, same program: the retrained group's results are the first call's.
    assert again["points"] == result.summary["points"]


def test_cli_grid_values_keep_lists_and_numbers():
    from jaxmb.__main__ import _parse_grid

    grid = _parse_grid(
        ["agent.network.hidden_sizes=[64,64],[128]", "agent.kind=muzero", f"{LR}=1e-3,3e-3"]
    )
    assert grid == {
        "agent.network.hidden_sizes": [[64, 64], [128]],
        "agent.kind": ["muzero"],
        LR: [1e-3, 3e-3],
    }
