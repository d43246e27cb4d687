"""Host envs in the compiled loop: `load_policy` acts in a plain Gymnasium loop; (heavy) a run that
a host env stops keeps its checkpoint, and MuZero learns CartPole through the bridge.

The default run covers the same ground more cheaply: `test_host.py` raises from a host env inside
a jitted scan, and its `host_call` test runs cond and while_loop under vmap as the loop does."""

import os
import sys

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmb import config as config_lib
from jaxmb import configlib
from jaxmb.checkpoint import Checkpointer
from jaxmb.envs import host
from jaxmb.policy import load_policy
from jaxmb.run import train_run
from jaxmb.train import build_agent, build_env, make_train

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tiny_config import tiny  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FAILING = "gym:host_test_envs:HostTest/FailingCartPole-v1"  # raises on each env's 30th step


@pytest.fixture(scope="module")
def failed_run(tmp_path_factory):
    """TINY on 4 host CartPoles that raise on their 30th step (iteration 8 of 10), two members
    vmapped, checkpointing every 2 iterations."""
    root = tmp_path_factory.mktemp("runs")
    config = tiny(
        f"env.id={FAILING}",
        "train.checkpoint_every=32",
        "run.num_seeds=2",
        f"run.root={root}",
        "run.name=failing",
        "run.progress=false",
        "run.tensorboard=false",
    )
    with pytest.raises(Exception) as info:
        train_run(config, quiet=True)
    return os.path.join(root, "failing"), info.value


@pytest.mark.heavy
def test_a_host_env_error_stops_the_run_naming_env_step_and_exception(failed_run):
    _, error = failed_run
    with pytest.raises(host.HostEnvError) as typed:
        host.raise_host_error(error)
    assert typed.value.env_id == FAILING and typed.value.details["step"] == 30
    assert f"host env {FAILING}" in str(error) and "ValueError: boom at step 30" in str(error)


@pytest.mark.heavy
def test_the_stopped_run_keeps_its_last_checkpoint_and_its_policy_plays_gymnasium(failed_run):
    run_dir, _ = failed_run
    checkpointer = Checkpointer(os.path.join(run_dir, "checkpoints"))
    assert checkpointer.latest_step() == 6  # iterations 2, 4, 6 were saved before step 30
    checkpointer.close()
    play_cartpole(load_policy(run_dir, member=1))


def play_cartpole(policy):
    env = gymnasium.make("CartPole-v1")
    obs, _ = env.reset(seed=0)
    for _ in range(20):
        action = policy(obs)
        assert isinstance(action, int) and 0 <= action < 2
        obs, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            obs, _ = env.reset()
    batch = policy(obs[None])  # a batch of 1: the program the single observations ran
    assert batch.shape == (1,) and batch.dtype == np.int32


def test_load_policy_restores_a_members_params_and_acts_in_gymnasium(tmp_path):
    """A run directory whose checkpoint holds two members' agents on the bridged CartPole (the
    heavy test above loads one that a training run wrote)."""
    # Acting from the policy network (no search) keeps the compile small; the search path is
    # the heavy test's and every training test's.
    config = tiny("env.id=gym:CartPole-v1", "run.num_seeds=2", "agent.search.for_acting_test=false")
    configlib.dump_yaml(config, os.path.join(tmp_path, "config.yaml"))
    agent = build_agent(config, build_env(config)[0])
    rng = np.random.default_rng(0)  # two members' agents: random leaves of init's shapes
    agents = jax.tree.map(
        lambda s: rng.normal(size=(2, *s.shape)).astype(s.dtype),
        jax.eval_shape(agent.init, jax.random.key(0)),
    )
    checkpointer = Checkpointer(os.path.join(tmp_path, "checkpoints"))
    checkpointer.save(4, {"agent": agents, "iteration": jnp.int32(4)})  # a TrainState's layout
    checkpointer.close()
    policy = load_policy(str(tmp_path), member=1)
    saved = jax.tree.map(lambda x: np.asarray(x[1]), agents.params)
    for a, b in zip(
        jax.tree.leaves(saved), jax.tree.leaves(policy.agent_state.params), strict=True
    ):
        np.testing.assert_array_equal(a, b)
    play_cartpole(policy)
    with pytest.raises(FileNotFoundError):
        load_policy(str(tmp_path / "nowhere"))


def _learn(env_id, steps):
    config = config_lib.load(
        os.path.join(ROOT, "configs", "muzero", "cartpole.yaml"),
        [
            f"env.id={env_id}",
            f"train.total_env_steps={steps}",
            "train.eval_every=1000",
            "env.num_eval_envs=8",
        ],
    )
    train = make_train(config, num_seeds=1)
    _, metrics = jax.jit(train)(jax.random.split(jax.random.key(0), 1))
    return np.asarray(metrics["eval/episode_return"])[0]


@pytest.mark.heavy
@pytest.mark.parametrize("env_id", ["gymnax:CartPole-v1", "gym:CartPole-v1"])
def test_the_same_muzero_config_learns_cartpole_in_jax_and_through_the_bridge(env_id):
    """The default preset, 6k env steps: greedy eval (8 episodes) passes 150 (random: ~20)."""
    evals = _learn(env_id, 6000)
    assert np.nanmax(evals) >= 150, evals[np.isfinite(evals)]
