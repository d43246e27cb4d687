"""The seams of the loop: the agent registry, loss terms, reward transforms, transfer by part."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from tiny_config import tiny

from jaxmb import agents, losses, rewards
from jaxmb import run as run_lib
from jaxmb import transfer as transfer_lib
from jaxmb.agents.base import Agent
from jaxmb.config import ConfigError
from jaxmb.loop import make_train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# --------------------------------------------------------------------------- agents


def test_unknown_agent_kind_lists_the_registered_kinds():
    with pytest.raises(ConfigError) as err:
        tiny("agent.kind=muzer")
    assert err.value.key == "agent.kind"
    assert "did you mean 'muzero'" in str(err.value)
    for kind in agents.kinds():
        assert kind in str(err.value)
    assert {"muzero", "q_learning"} <= set(agents.kinds())


def test_muzero_implements_the_protocol_and_the_loop_names_no_agent():
    train = make_train(tiny())
    assert isinstance(train.loop.agent, Agent)
    assert train.loop.agent.kind == "muzero"
    # The loop package never imports an agent module: the registry does, by name.
    for name in ("collect", "learn", "evaluation", "program", "state", "build"):
        with open(os.path.join(ROOT, "jaxmb", "loop", f"{name}.py")) as f:
            source = f.read()
        for banned in ("muzero", "MuZero", "q_learning", "baselines"):
            assert banned not in source, (name, banned)


def test_core_does_not_import_baselines():
    code = (
        "import sys, jax, jaxmb\n"
        "from jaxmb import config\n"
        "train = jaxmb.make_train(config.load(None, ['env.num_envs=2', 'replay.capacity=1024']))\n"
        "assert not [m for m in sys.modules if m.startswith('jaxmb.baselines.')], sys.modules\n"
    )
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=300)


# --------------------------------------------------------------------------- loss terms


def test_loss_term_names_come_from_the_registry():
    assert {"policy", "value", "reward", "terminal", "q"} <= set(losses.names())
    with pytest.raises(ConfigError) as err:
        tiny("agent.loss.weights.polcy=1")
    assert err.value.key == "agent.loss.weights.polcy"
    assert "did you mean 'policy'" in str(err.value)
    # A term the agent cannot feed is refused, naming it; weight 0 is fine.
    with pytest.raises(ConfigError, match="does not compute") as err:
        tiny("agent.loss.weights.q=1")
    assert err.value.key == "agent.loss.weights.q"
    tiny("agent.loss.weights.q=0")


@pytest.fixture
def probe_term():
    """A term registered from outside the package: it reads the target network's latents."""
    calls = []

    @losses.register("latent_probe", needs={"unroll.latents", "targets.target_latents"})
    def latent_probe(params, batch, unroll, targets):
        calls.append(targets["target_latents"].shape)
        # The online latents pulled towards the target network's: a differentiable [B] loss.
        diff = unroll["latents"] - targets["target_latents"]
        return jnp.mean(diff**2, axis=(1, 2))

    yield calls
    losses.unregister("latent_probe")


def _fixed_batch(agent, key):
    length = agent.window
    keys = jax.random.split(key, 3)
    return {
        "obs": jax.random.normal(keys[0], (8, length, 4)),
        "action": jax.random.randint(keys[1], (8, length), 0, 2),
        "reward": jnp.ones((8, length)),
        "terminated": jnp.zeros((8, length), bool),
        "truncated": jnp.zeros((8, length), bool),
        "policy": jnp.full((8, length, 2), 0.5),
        "value": jnp.zeros((8, length)),
        "final_value": jnp.zeros((8, length)),
        "action_mask": jnp.ones((8, length, 2), bool),
        "weight": jnp.ones((8,)),
    }


def test_a_new_term_adds_to_the_loss_and_gets_what_it_needs(probe_term):
    base = make_train(tiny()).loop.agent
    probe = make_train(tiny("agent.loss.weights.latent_probe=2.0")).loop.agent
    probe_term.clear()  # make_train traced the iteration once, for the memory check's shapes
    state = base.init(jax.random.key(0))
    batch = _fixed_batch(base, jax.random.key(1))
    # Without the term the target latents are not computed.
    assert "target_latents" not in base.compute_targets(state.target_params, batch, None)
    _, plain = base.update(state, batch, jax.random.key(2))
    _, metrics = probe.update(state, batch, jax.random.key(2))
    assert probe_term == [(8, base.config.loss.unroll_steps + 1, base.config.network.latent_dim)]
    assert "loss/latent_probe" in metrics and "loss/latent_probe" not in plain
    assert "loss/latent_probe" in probe.guarded_metrics
    np.testing.assert_allclose(
        metrics["loss"], plain["loss"] + 2.0 * metrics["loss/latent_probe"], rtol=1e-5
    )
    for name in ("policy", "value", "reward", "terminal"):
        np.testing.assert_allclose(metrics[f"loss/{name}"], plain[f"loss/{name}"], rtol=1e-6)
    # Weight 0 removes it from the program.
    zero = make_train(tiny("agent.loss.weights.latent_probe=0")).loop.agent
    assert "loss/latent_probe" not in zero.update(state, batch, jax.random.key(2))[1]


def test_without_reward_terms_the_unroll_skips_the_transition_heads():
    agent = make_train(
        tiny("agent.loss.weights={policy: 1.0, value: 0.25, reward: 0, terminal: 0}")
    ).loop.agent
    state = agent.init(jax.random.key(0))
    out = agent.unroll(state.params, jnp.zeros((2, 4)), jnp.zeros((2, 2), jnp.int32))
    assert set(out) == {"latents", "policy_logits", "value_logits"}


# --------------------------------------------------------------------------- rewards


def test_unknown_reward_transform_is_a_config_error():
    with pytest.raises(ConfigError) as err:
        tiny("reward.transform=cont")
    assert err.value.key == "reward.transform" and "did you mean 'count'" in str(err.value)
    assert {"identity", "count"} <= set(rewards.names())


def test_count_bonus_rewards_new_states_more_than_frequent_ones():
    config = tiny("reward.transform=count", "reward.count.hash_bits=8")
    transform = rewards.make(config)
    often, rare = jnp.array([1.0, 0.0, 0.0, 0.0]), jnp.array([0.0, 0.0, 1.0, -1.0])
    state = transform.init(jax.random.key(0), often)
    assert int(transform.bucket(state, often)) != int(transform.bucket(state, rare))
    stream = jnp.stack([often] * 9 + [rare])[None]  # [N=1, T=10, 4]
    state = transform.observe(state, {"obs": stream})
    novelty = transform.novelty(state, jnp.stack([often, rare]))
    np.testing.assert_allclose(novelty, [1 / 3, 1.0], rtol=1e-6)  # 1/sqrt(9), 1/sqrt(1)


def test_next_step_novelty_reads_the_next_observation_within_an_episode():
    novelty = jnp.array([[1.0, 2.0, 3.0, 4.0, 5.0]])
    ended = jnp.array([[False, True, False, False, False]])
    batch = {"terminated": ended, "truncated": jnp.zeros_like(ended)}
    got = rewards.next_step_novelty(novelty, batch)
    # Step 0 led to obs 1; step 1 ended its episode (own novelty); the last step keeps its own.
    np.testing.assert_array_equal(got, [[2.0, 2.0, 4.0, 5.0, 5.0]])


def test_after_the_exploration_phase_the_task_weights_apply():
    """The default task weights: env reward only. (The exploration phase itself, intrinsic
    reward only with the env's reward logged, is tested with a marker reward in
    test_intrinsic_rewards.py.)"""
    _, task = jax.jit(make_train(tiny("reward.transform=count")))(jax.random.key(0))
    on = np.asarray(task["learning"]) == 1
    np.testing.assert_array_equal(np.asarray(task["reward/trained"])[on], 1.0)
    assert (np.asarray(task["reward/intrinsic"])[on] < 1.0).all()


def test_reward_weights_are_swept_only_with_a_transform():
    train = make_train(tiny())
    with pytest.raises(ConfigError, match="identity") as err:
        jax.eval_shape(train, jax.random.key(0), {"reward.intrinsic_weight": 1.0})
    assert err.value.key == "reward.intrinsic_weight"
    counted = make_train(tiny("reward.transform=count"))
    _, metrics = jax.eval_shape(counted, jax.random.key(0), {"reward.intrinsic_weight": 1.0})
    assert "reward/trained" in metrics


# --------------------------------------------------------------------------- transfer


@pytest.fixture(scope="module")
def source_run(tmp_path_factory):
    """A trained tiny run with two members, its directory and final state."""
    root = tmp_path_factory.mktemp("runs")
    config = tiny(
        f"run.root={root}",
        "run.name=source",
        "run.num_seeds=2",
        "run.progress=false",
        "run.tensorboard=false",
        "train.total_env_steps=64",
    )
    result = run_lib.train_run(config, quiet=True)
    return result.run_dir, result.final_state


def _leaves(tree):
    return [np.asarray(x) for x in jax.tree.leaves(tree)]


def test_transferred_parts_are_the_source_bits_and_the_rest_is_fresh(source_run):
    run_dir, source_state = source_run
    keys = jax.random.split(jax.random.key(5), 2)
    parts = "[encoder, model]"
    tuned = make_train(
        tiny(f"agent.init_from.run={run_dir}", f"agent.init_from.parts={parts}"), num_seeds=2
    )
    fresh = make_train(tiny(), num_seeds=2)
    got, want = jax.jit(tuned.init)(keys), jax.jit(fresh.init)(keys)
    for member in range(2):
        for tree in ("params", "target_params"):
            have = getattr(got.agent, tree)["params"]
            source = source_state.agent.params["params"]
            for group in ("encoder", "dynamics"):  # the named parts: the source member's bits
                for a, b in zip(_leaves(have[group]), _leaves(source[group]), strict=True):
                    np.testing.assert_array_equal(a[member], b[member])
            for group in ("policy", "value", "reward", "terminal"):  # fresh, same key
                fresh_group = getattr(want.agent, tree)["params"][group]
                for a, b in zip(_leaves(have[group]), _leaves(fresh_group), strict=True):
                    np.testing.assert_array_equal(a[member], b[member])
    # The optimiser state is fresh.
    for a, b in zip(_leaves(got.agent.opt_state), _leaves(want.agent.opt_state), strict=True):
        np.testing.assert_array_equal(a, b)
    # A single-seed program takes the source's member 0.
    single = make_train(tiny(f"agent.init_from.run={run_dir}", "agent.init_from.parts=[encoder]"))
    one = jax.jit(single.init)(keys[0])
    for a, b in zip(
        _leaves(one.agent.params["params"]["encoder"]),
        _leaves(source_state.agent.params["params"]["encoder"]),
        strict=True,
    ):
        np.testing.assert_array_equal(a, b[0])


def test_a_mixed_source_gives_each_member_its_own_origin_and_parts(source_run):
    """`transfer.mixed_source`: member 0 takes the source's member 1 encoder, member 1 starts
    from scratch, member 2 takes everything of the source's member 0; the rest is fresh."""
    run_dir, source_state = source_run
    keys = jax.random.split(jax.random.key(5), 3)
    fresh = make_train(tiny(), num_seeds=3)
    everything = ("encoder", "prior_heads", "model", "dynamics_heads")
    members = [(run_dir, 1, ("encoder",)), (None, 0, ()), (run_dir, 0, everything)]
    source = transfer_lib.mixed_source(members, fresh.loop.agent)
    tuned = make_train(tiny(), num_seeds=3, source=source)
    got, want = jax.jit(tuned.init)(keys), jax.jit(fresh.init)(keys)
    origin = {0: {"encoder": 1}, 1: {}, 2: dict.fromkeys(got.agent.params["params"], 0)}
    for member, copied in origin.items():
        for tree in ("params", "target_params"):
            have = getattr(got.agent, tree)["params"]
            for group in have:
                if group in copied:
                    expected = source_state.agent.params["params"][group]
                    index = copied[group]
                else:
                    expected, index = getattr(want.agent, tree)["params"][group], member
                for a, b in zip(_leaves(have[group]), _leaves(expected), strict=True):
                    np.testing.assert_array_equal(a[member], b[index])
    with pytest.raises(ConfigError, match="member 2"):
        transfer_lib.mixed_source([(run_dir, 2, ("encoder",))], fresh.loop.agent)


def test_transfer_errors_name_the_part_the_run_and_the_shapes(source_run, tmp_path):
    run_dir, _ = source_run
    with pytest.raises(ConfigError, match="no part") as err:
        tiny(f"agent.init_from.run={run_dir}", "agent.init_from.parts=[q_head]")
    assert err.value.key == "agent.init_from.parts"
    with pytest.raises(ConfigError) as err:
        make_train(tiny(f"agent.init_from.run={tmp_path}", "agent.init_from.parts=[encoder]")).init(
            jax.random.key(0)
        )
    assert err.value.key == "agent.init_from.run"
    wider = tiny(
        f"agent.init_from.run={run_dir}",
        "agent.init_from.parts=[encoder]",
        "agent.network.latent_dim=12",
    )
    with pytest.raises(ConfigError) as err:
        make_train(wider).init(jax.random.key(0))
    assert err.value.key == "agent.init_from.parts"
    message = str(err.value)
    assert "'encoder'" in message and run_dir in message and "(16, 12)" in message
    with pytest.raises(ConfigError, match="3 members"):
        transfer_lib.Source(run_dir, ("encoder",), {"params": {}}, 3).for_members(2)


def test_a_resumed_fine_tuning_run_does_not_read_the_source_again(source_run, tmp_path):
    run_dir, _ = source_run
    source_copy = str(tmp_path / "source")
    shutil.copytree(run_dir, source_copy)
    config = tiny(
        f"run.root={tmp_path}",
        "run.name=tuned",
        "run.progress=false",
        "run.tensorboard=false",
        "train.checkpoint_every=80",
        f"agent.init_from.run={source_copy}",
        "agent.init_from.parts=[encoder, prior_heads]",
    )
    first = run_lib.train_run(config, quiet=True)
    checkpoints = os.path.join(first.run_dir, "checkpoints")
    # Keep the mid-run checkpoint only: the rerun resumes from iteration 5 of 10.
    shutil.rmtree(os.path.join(checkpoints, str(config.num_iterations)))
    shutil.rmtree(source_copy)
    again = run_lib.train_run(config, quiet=True)
    assert again.summary["resumed_from_iteration"] == 5
    for a, b in zip(
        _leaves(first.final_state.agent.params),
        _leaves(again.final_state.agent.params),
        strict=True,
    ):
        np.testing.assert_array_equal(a, b)


def test_configs_saved_with_the_removed_nan_hook_still_load(tmp_path):
    """`agent.loss.inject_nan_at_update` (a testing hook, now tests/nan_injection.py) was in
    every saved config.yaml; at its old default it is read and ignored, otherwise refused."""
    from jaxmb import config as config_lib

    path = tmp_path / "config.yaml"
    path.write_text("agent:\n  loss:\n    inject_nan_at_update: 0\n")
    assert config_lib.load(str(path)) == config_lib.load(None)
    path.write_text("agent:\n  loss:\n    inject_nan_at_update: 5\n")
    with pytest.raises(ConfigError, match="removed") as err:
        config_lib.load(str(path))
    assert err.value.key == "agent.loss.inject_nan_at_update"
