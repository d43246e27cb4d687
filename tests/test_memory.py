"""Memory known before it is spent (`jaxmb.memory`): every size key checked against the machine
before the program is traced, allocated or run, and the peak recorded in `summary.json`.

The cases that must fail run in a subprocess under an address-space limit
(`tests/memory_limited.py`), so that a regression fails here instead of exhausting the machine,
and so that they fail the same way on a machine with more memory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import jax
import pytest
from memory_limited import run_limited
from tiny_config import tiny

from jaxmb import memory
from jaxmb.config import ConfigError
from jaxmb.train import make_train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: The issue's cases: each must be a ConfigError naming its key, through `make_train` and the CLI.
ISSUE_CASES = {
    "agent.search.num_simulations": "agent.search.num_simulations=100000000",
    "agent.search.num_simulations_test": "agent.search.num_simulations_test=100000000",
    "env.num_eval_envs": "env.num_eval_envs=100000000",
    "replay.capacity": "replay.capacity=1000000000",
    "agent.network.latent_dim": "agent.network.latent_dim=100000000",
}


def test_each_absurd_size_is_a_config_error_naming_its_key_under_a_memory_limit():
    cases = [
        {"via": via, "overrides": [override]}
        for via in ("make_train", "cli")
        for override in ISSUE_CASES.values()
    ]
    for key, result in zip([*ISSUE_CASES] * 2, run_limited(cases), strict=True):
        assert result["outcome"] == "config_error", result
        assert result["key"] == key, result
        assert "GB" in result["message"] and "run.memory_check=false" in result["message"]
        assert result["seconds"] < 60, result  # checked, not traced at length


def test_the_search_is_checked_before_it_is_traced():
    # 1e8 simulations: mctx's Gumbel table alone would take hundreds of GB while tracing; the
    # check reads the config, so it answers at once, whatever memory this machine has.
    config = tiny("agent.search.num_simulations=100000000")
    loop = make_train(tiny(), memory_check=False).loop
    with pytest.raises(ConfigError) as err:
        memory.check_search(config, loop)
    assert err.value.key == "agent.search.num_simulations"
    assert "Gumbel visit table" in err.value.message


def test_memory_check_false_skips_the_check():
    # 1e7 eval envs: their search tree needs about 10 GB, more than the limit leaves.
    over = ["env.num_eval_envs=10000000"]
    checked, skipped = run_limited(
        [{"overrides": over}, {"overrides": [*over, "run.memory_check=false"]}]
    )
    assert checked["outcome"] == "config_error" and checked["key"] == "env.num_eval_envs"
    assert skipped["outcome"] == "built", skipped  # traced whole: only running would need it


def test_the_estimate_has_the_state_by_part():
    train = make_train(tiny(), num_seeds=2)
    est = train.memory_estimate()
    shapes = train.state_shapes(jax.random.split(jax.random.key(0), 2))
    assert est.state_bytes == memory.tree_bytes(shapes)
    parts = {p.name: p for p in est.parts}
    replay = parts["replay buffer"]
    assert replay.key == "replay.capacity"
    assert replay.bytes == memory.tree_bytes(shapes.replay)
    for name in ("parameters", "target parameters", "optimiser state"):
        assert parts[name].bytes > 0 and parts[name].key == memory.NETWORK
    assert parts["metric history"].key == "train.total_env_steps"
    assert parts["env states"].key == "env.num_envs"
    assert est.members == 2 and est.to_dict()["state_bytes_per_member"] == est.state_bytes // 2
    assert {"search tree (acting)", "search tree (evaluation)"} <= set(parts)
    assert est.peak_bytes > est.device_bytes > 2 * est.state_bytes


@pytest.mark.parametrize(
    "override, key",
    [
        ("agent.network.latent_dim=2048", "agent.network.latent_dim"),
        ("agent.network.hidden_sizes=[4096]", "agent.network.hidden_sizes"),
        ("agent.network.head_hidden_sizes=[4096]", "agent.network.head_hidden_sizes"),
    ],
)
def test_the_parameters_are_blamed_on_the_network_key_that_sizes_them(override, key):
    train = make_train(tiny(override))
    est = train.memory_estimate()
    part = est.largest_state()
    assert part.name == "optimiser state"  # Adam's two moments: twice the parameters
    assert est.key(part) == key


def test_a_state_too_large_for_the_memory_left_names_its_key():
    train = make_train(tiny("replay.capacity=65536"))
    est = train.memory_estimate()
    host = memory.Available(est.device_bytes // 2, "this host")
    with pytest.raises(ConfigError) as err:
        memory.check(est, (host, host))
    assert err.value.key == "replay.capacity"
    assert err.value.message.startswith("the replay buffer needs ")
    assert "this host has" in err.value.message
    # Members: one fits, the batch of them does not.
    seeded = make_train(tiny("replay.capacity=65536"), num_seeds=4).memory_estimate()
    needed = seeded.device_bytes + seeded.host_bytes + seeded.save_bytes
    host = memory.Available(needed - seeded.device_bytes // 2, "this host")
    with pytest.raises(ConfigError) as err:
        memory.check(seeded, (host, host))
    assert err.value.key == "run.num_seeds"


def _train_and_read_memory(tmp_path, preset: str, *overrides: str) -> dict:
    """`python -m jaxmb train` in a fresh process (its peak RSS is the run's own), with full
    optimisation as users run it; returns summary.json's `memory`."""
    args = [preset, *overrides, f"run.root={tmp_path}", "--name", "run", "--quiet"]
    proc = subprocess.run(
        [sys.executable, "-m", "jaxmb", "train", *args],
        cwd=ROOT,
        env=dict(os.environ, JAX_PLATFORMS="cpu"),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(tmp_path / "run" / "summary.json") as f:
        return json.load(f)["memory"]


#: The stated factor: the measured peak is within this factor of the estimate, both ways.
FACTOR = 2.0


def _within_factor(mem: dict) -> None:
    ratio = mem["measured_peak_bytes"] / mem["estimated_peak_bytes"]
    assert 1 / FACTOR <= ratio <= FACTOR, (ratio, mem)
    assert mem["measured"] == "host RSS" and mem["xla"]["temp"] >= 0


@pytest.mark.slow
def test_the_default_preset_peak_is_within_the_stated_factor_of_the_estimate(tmp_path):
    mem = _train_and_read_memory(
        tmp_path,
        "muzero/cartpole",
        "train.total_env_steps=512",
        "replay.min_size=256",
        "train.eval_every=512",
        "env.num_eval_envs=4",
        "env.eval_max_steps=50",
    )
    _within_factor(mem)


@pytest.mark.heavy
def test_a_minipacman_peak_is_within_the_stated_factor_of_the_estimate(tmp_path):
    # Its replay holds float32 [15, 19, 7] observations: a 528 MB state, most of the peak.
    mem = _train_and_read_memory(
        tmp_path,
        "muzero/minipacman",
        "train.total_env_steps=256",
        "replay.min_size=128",
        "train.eval_every=256",
        "env.num_eval_envs=4",
    )
    assert mem["state_bytes_per_member"] > 500e6
    _within_factor(mem)


def test_summary_records_the_estimated_and_measured_peak(tmp_path):
    from jaxmb.run import train_run

    config = tiny(f"run.root={tmp_path}", "run.progress=false", "run.tensorboard=false")
    mem = train_run(config, quiet=True).summary["memory"]
    assert mem["estimated_peak_bytes"] > 0 and mem["measured_peak_bytes"] > 0
    assert mem["xla"]["argument"] == mem["state_bytes_per_member"]  # one member
    assert "working: XLA temporary buffers" in mem["parts"]
    assert mem["estimated_checkpoint_bytes"] == memory.CHECKPOINT_COPIES * mem["xla"]["argument"]
