"""The Q-learning baseline (`jaxmb.baselines.q_learning`): shapes under jit and vmap, legal
actions, n-step targets against a hand computation, learning on a fixed batch, config errors."""

import functools
import os
import types

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmb import config as config_lib
from jaxmb import losses
from jaxmb.agents import Agent, MuZero, registry
from jaxmb.agents.common import param_groups
from jaxmb.baselines.q_learning import QLearning, greedy_values, q_targets
from jaxmb.config import ConfigError
from jaxmb.distributions import Support

PRESET = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    "configs",
    "q_learning",
    "cartpole.yaml",
)
OBS = gymnasium.spaces.Box(-1, 1, (4,), np.float32)
ACTIONS = gymnasium.spaces.Discrete(3)
SMALL = [
    "agent.kind=q_learning",
    "agent.network.hidden_sizes=[16]",
    "agent.network.latent_dim=8",
    "agent.network.head_hidden_sizes=[16]",
    "agent.network.value_support={num_atoms: 11, vmin: -5, vmax: 5}",
    "agent.loss.unroll_steps=2",
    "agent.loss.td_steps=2",
    "agent.optim.target_update_period=1000",
]


def small_agent(*overrides: str) -> QLearning:
    config = config_lib.load(None, SMALL + list(overrides))
    return QLearning(config.agent, OBS, ACTIONS)


def random_batch(agent: QLearning, key: jax.Array, batch_size: int = 8) -> dict:
    obs_key, action_key, reward_key = jax.random.split(key, 3)
    shape = (batch_size, agent.window)
    return {
        "obs": jax.random.uniform(obs_key, (*shape, 4), minval=-1.0, maxval=1.0),
        "action": jax.random.randint(action_key, shape, 0, agent.num_actions),
        "reward": jax.random.uniform(reward_key, shape),
        "terminated": jnp.zeros(shape, bool).at[0, 1].set(True),
        "truncated": jnp.zeros(shape, bool).at[1, 2].set(True),
        "action_mask": jnp.ones((*shape, agent.num_actions), bool),
        "final_value": jnp.ones(shape),
        "weight": jnp.ones((batch_size,)),
    }


def perturbed(params, scale: float = 0.5):
    """`params` plus Gaussian noise: the zero-initialised Q head gives every action one Q."""
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(42), len(leaves))
    noise = [scale * jax.random.normal(k, x.shape) for k, x in zip(keys, leaves, strict=True)]
    return jax.tree.unflatten(tree, [x + n for x, n in zip(leaves, noise, strict=True)])


def test_protocol_parts_and_shared_encoder():
    agent = small_agent()
    assert isinstance(agent, Agent)
    assert agent.kind == "q_learning" and agent.record_spec() == {}
    assert agent.window == 2 + 2 + 1
    assert agent.guarded_metrics == ("loss/q", "grad_norm")
    params = agent.init(jax.random.key(0)).params
    groups = param_groups(params, agent.parts, registry.spec("q_learning").parts)
    assert sorted(groups) == sorted(params["params"]) == ["encoder", "q"]
    # MuZero's encoder, built from the same config: same parameter tree (transfers by part).
    muzero_config = config_lib.load(None, [o for o in SMALL if not o.startswith("agent.kind")])
    muzero_params = MuZero(muzero_config.agent, OBS, ACTIONS).init(jax.random.key(0)).params
    shapes = functools.partial(jax.tree.map, lambda x: x.shape)
    assert shapes(params["params"]["encoder"]) == shapes(muzero_params["params"]["encoder"])


def test_term_needs_are_provided():
    provides = registry.spec("q_learning").provides
    assert losses.get("q").needs <= provides
    assert registry.spec("q_learning").loss_weights == {"q": 1.0}


def test_shapes_under_jit_and_vmap():
    agent = small_agent()
    seeds = 2
    states = jax.vmap(agent.init)(jax.random.split(jax.random.key(0), seeds))
    obs = jnp.zeros((seeds, 5, 4))
    keys = jax.random.split(jax.random.key(1), seeds)
    for training in (True, False):
        act = jax.jit(jax.vmap(functools.partial(agent.act, training=training)))
        action, info = act(states, obs, keys)
        assert action.shape == (seeds, 5) and info["value"].shape == (seeds, 5)
    assert info.keys() == {"value"}  # greedy: no epsilon
    value = jax.jit(jax.vmap(agent.bootstrap_value))(states, obs)
    assert value.shape == (seeds, 5)
    batches = jax.vmap(lambda k: random_batch(agent, k))(keys)
    new_states, metrics = jax.jit(jax.vmap(agent.update))(states, batches, keys)
    assert metrics.keys() == {"loss", "loss/q", "grad_norm", "priority"}
    assert metrics["priority"].shape == (seeds, 8) and metrics["loss"].shape == (seeds,)
    assert np.all(np.isfinite(metrics["priority"]))
    np.testing.assert_array_equal(new_states.num_updates, [1, 1])


def test_bootstrap_value_is_the_online_max_over_all_actions():
    agent = small_agent()
    state = agent.init(jax.random.key(0))
    state = state.replace(params=perturbed(state.params))  # a Q that is not flat
    obs = jax.random.uniform(jax.random.key(1), (6, 4))
    q = agent.q_values(state.params, obs)
    np.testing.assert_allclose(agent.bootstrap_value(state, obs), q.max(-1), rtol=1e-6)
    assert np.ptp(np.asarray(q), axis=-1).min() > 0  # the max is not a tie


@pytest.mark.parametrize(
    "overrides",
    [
        ["agent.q_learning.epsilon_start=1.0", "agent.q_learning.epsilon_decay_updates=10"],
        ["agent.q_learning.exploration=boltzmann", "agent.q_learning.temperature=100.0"],
        [],  # greedy (training=False) below
    ],
    ids=["epsilon-greedy", "boltzmann", "greedy"],
)
def test_masked_actions_are_never_chosen(overrides):
    agent = small_agent(*overrides)
    state = agent.init(jax.random.key(0))
    count = 512
    obs = jax.random.uniform(jax.random.key(1), (count, 4))
    # Random masks with at least one legal action; action 0, the argmax of the initial flat
    # Q, is illegal in half the rows.
    mask = jax.random.bernoulli(jax.random.key(2), 0.5, (count, 3))
    mask = mask.at[:, 2].set(mask[:, 2] | ~(mask[:, 0] | mask[:, 1]))
    training = bool(overrides)
    act = jax.jit(functools.partial(agent.act, training=training))
    action, _ = act(state, obs, jax.random.key(3), action_mask=mask)
    action, mask = np.asarray(action), np.asarray(mask)
    assert np.all(mask[np.arange(count), action])
    if training:  # exploring: every action comes up where all are legal
        assert set(action[mask.all(-1)]) == {0, 1, 2}


def test_epsilon_decays_linearly_in_updates_and_is_reported():
    agent = small_agent(
        "agent.q_learning.epsilon_start=0.9",
        "agent.q_learning.epsilon_end=0.1",
        "agent.q_learning.epsilon_decay_updates=100",
    )
    eps = [float(agent.epsilon(jnp.asarray(n))) for n in (0, 50, 100, 1000)]
    np.testing.assert_allclose(eps, [0.9, 0.5, 0.1, 0.1], rtol=1e-6)
    state = agent.init(jax.random.key(0)).replace(num_updates=jnp.asarray(50, jnp.int32))
    _, info = agent.act(state, jnp.zeros((4, 4)), jax.random.key(0), training=True)
    metrics = agent.acting_metrics(jax.tree.map(lambda x: x[None], info))  # [T=1, N=4]
    np.testing.assert_allclose(metrics["q/epsilon"], 0.5, rtol=1e-6)
    boltzmann = small_agent("agent.q_learning.exploration=boltzmann")
    _, info = boltzmann.act(state, jnp.zeros((4, 4)), jax.random.key(0), training=True)
    assert boltzmann.acting_metrics(info) == {}


def test_greedy_values_double_q_against_hand_computation():
    select_q = jnp.array([[1.0, 5.0, 3.0]])  # the online network
    value_q = jnp.array([[10.0, 20.0, 5.0]])  # the target network
    legal = jnp.array([[True, False, True]])
    # Double DQN: the online net picks action 2 (action 1 is illegal), the target net values it.
    np.testing.assert_allclose(greedy_values(select_q, value_q, legal), [5.0])
    # Without double Q: the target net's own max over legal actions.
    np.testing.assert_allclose(greedy_values(value_q, value_q, legal), [10.0])


def test_nstep_targets_with_termination_and_truncation_against_hand_computation():
    """K = 2, n = 2, L = 5, discount 0.9; bootstrap values of obs[2..4] are 10, 20, 30."""
    support = Support(51, -25.0, 25.0)
    false = [False] * 5
    batch = {
        "reward": jnp.array([[1.0, 2.0, 3.0, 4.0, 5.0], [1.0] * 5, [1.0] * 5]),
        # Window 0 terminates at transition 1; window 2 is terminated and truncated at 0
        # (counts as terminated).
        "terminated": jnp.array([[False, True, False, False, False], false, [True, *false[1:]]]),
        # Window 1 is truncated at transition 2 and bootstraps from its final value 7.
        "truncated": jnp.array([false, [False, False, True, False, False], [True, *false[1:]]]),
        "final_value": jnp.zeros((3, 5)).at[1, 2].set(7.0),
    }
    bootstrap = jnp.array([[10.0, 20.0, 30.0]] * 3)
    out = q_targets(batch, bootstrap, support, discount=0.9, unroll_steps=2, td_steps=2)
    expected = [
        # z0 = r0 + g r1 (terminated: no bootstrap); z1 = r1; position 2 is past the
        # termination: target 0, not trained (its obs is the next episode's).
        [1.0 + 0.9 * 2.0, 2.0, 0.0],
        # z0 = r0 + g r1 + g^2 v(obs2); z1 = r1 + g r2 + g^2 fv2; z2 = r2 + g fv2.
        [1.0 + 0.9 + 0.81 * 10.0, 1.0 + 0.9 + 0.81 * 7.0, 1.0 + 0.9 * 7.0],
        [1.0, 0.0, 0.0],
    ]
    np.testing.assert_allclose(out["value"], expected, rtol=1e-5)
    np.testing.assert_array_equal(out["q_mask"], [[1, 1, 0], [1, 1, 1], [1, 0, 0]])
    np.testing.assert_allclose(support.probs_to_scalar(out["q_probs"]), expected, atol=1e-3)


def test_q_loss_reads_the_taken_actions_and_masks_positions():
    atoms = 5
    # Q logits favour atom a for action a; targets put all mass on atom 1.
    q_logits = jnp.broadcast_to(5.0 * jnp.eye(3, atoms), (1, 2, 3, atoms))
    targets = {"q_probs": jnp.zeros((1, 2, atoms)).at[..., 1].set(1.0)}
    ce = lambda a: float(-jax.nn.log_softmax(q_logits[0, 0, a])[1])  # noqa: E731
    q_loss = losses.get("q").fn
    batch = {"action": jnp.array([[1, 0, 2]])}
    both = q_loss(None, batch, {"q_logits": q_logits}, {**targets, "q_mask": jnp.ones((1, 2))})
    np.testing.assert_allclose(both, [(ce(1) + ce(0)) / 2], rtol=1e-6)
    first = q_loss(None, batch, {"q_logits": q_logits}, {**targets, "q_mask": jnp.array([[1, 0]])})
    np.testing.assert_allclose(first, [ce(1) / 2], rtol=1e-6)  # masked counts as 0, of 2


def test_update_decreases_the_loss_on_a_fixed_batch():
    agent = small_agent()
    state = agent.init(jax.random.key(0))
    batch = random_batch(agent, jax.random.key(1), batch_size=16)
    update = jax.jit(agent.update)
    first = None
    for _ in range(30):
        state, metrics = update(state, batch, jax.random.key(2))
        first = float(metrics["loss/q"]) if first is None else first
    assert float(metrics["loss/q"]) < 0.7 * first, (first, float(metrics["loss/q"]))
    assert int(state.num_updates) == 30
    # The target network is copied only every target_update_period (1000) updates.
    init_params = agent.init(jax.random.key(0)).params
    jax.tree.map(np.testing.assert_array_equal, state.target_params, init_params)


def test_search_keys_are_refused_for_q_learning():
    with pytest.raises(ConfigError) as err:
        config_lib.load(PRESET, ["agent.search.num_simulations=50"])
    # The registry names the unread section (agent.search) or the leaf itself.
    assert err.value.key in ("agent.search", "agent.search.num_simulations"), err.value
    assert "q_learning" in str(err.value)


def test_q_learning_keys_are_refused_for_muzero():
    with pytest.raises(ConfigError) as err:
        config_lib.load(None, ["agent.q_learning.epsilon_end=0.2"])
    assert err.value.key.startswith("agent.q_learning"), err.value


def test_two_player_and_continuous_envs_are_refused():
    config = config_lib.load(PRESET)
    go_like = types.SimpleNamespace(observation_space=OBS, action_space=ACTIONS, num_players=2)
    with pytest.raises(ConfigError) as err:
        QLearning.from_config(config, go_like)
    assert err.value.key == "agent.kind"
    box = gymnasium.spaces.Box(-1, 1, (2,), np.float32)
    continuous = types.SimpleNamespace(observation_space=OBS, action_space=box)
    with pytest.raises(ConfigError) as err:
        QLearning.from_config(config, continuous)
    assert err.value.key == "env.discretize.mode"
