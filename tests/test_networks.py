"""Networks and the agent's pure functions: shapes, parameter groups, image observations."""

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmb import config as config_lib
from jaxmb.agents import MuZero
from jaxmb.networks import MuZeroNetwork, normalize_latent

SMALL = config_lib.load(
    None,
    [
        "agent.network.hidden_sizes=[16]",
        "agent.network.latent_dim=8",
        "agent.network.dynamics_hidden_sizes=[16]",
        "agent.network.head_hidden_sizes=[16]",
        "agent.network.conv_channels=4",
        "agent.network.num_res_blocks=1",
        "agent.search.num_simulations=4",
    ],
).agent


def test_param_groups_cover_every_parameter():
    net = MuZeroNetwork(
        num_actions=3,
        obs_ndim=1,
        hidden_sizes=(8,),
        latent_dim=4,
        dynamics_hidden_sizes=(8,),
        head_hidden_sizes=(8,),
        value_atoms=5,
        reward_atoms=5,
    )
    params = net.init(jax.random.key(0), jnp.zeros((1, 6)), jnp.zeros((1,), jnp.int32))
    groups = set(params["params"])
    assert groups == {"encoder", "dynamics", "reward", "terminal", "policy", "value"}
    # Walker et al. 2023's parts (transfer by part) cover every group exactly once.
    part_groups = [g for groups_of_part in MuZero.parts.values() for g in groups_of_part]
    assert sorted(part_groups) == sorted(groups)


def test_minmax_latent_normalisation():
    z = normalize_latent(jnp.array([[2.0, 4.0, 6.0]]), "minmax")
    np.testing.assert_allclose(z, [[0.0, 0.5, 1.0]])


@pytest.mark.parametrize(
    "obs_space",
    [
        gymnasium.spaces.Box(-1, 1, (5,), np.float32),
        gymnasium.spaces.Box(0, 1, (10, 10, 4), np.float32),  # MinAtar-shaped: resnet torso
    ],
    ids=["vector-mlp", "image-resnet"],
)
def test_act_and_unroll_shapes_under_jit_and_vmap(obs_space):
    agent = MuZero(SMALL, obs_space, gymnasium.spaces.Discrete(3))
    state = agent.init(jax.random.key(0))
    obs = jnp.zeros((2, *obs_space.shape))
    act = jax.jit(lambda s, o, k: agent.act(s, o, k, training=True))
    action, info = act(state, obs, jax.random.key(1))
    assert action.shape == (2,) and info["policy"].shape == (2, 3) and info["value"].shape == (2,)
    np.testing.assert_allclose(info["policy"].sum(-1), 1.0, rtol=1e-5)
    batched = jax.vmap(lambda o, k: act(state, o, k)[0])(
        obs[:, None], jax.random.split(jax.random.key(2), 2)
    )
    assert batched.shape == (2, 1)
    out = jax.jit(agent.unroll)(state.params, obs, jnp.zeros((2, 5), jnp.int32))
    assert out["policy_logits"].shape == (2, 6, 3)
    assert out["value_logits"].shape == (2, 6, SMALL.network.value_support.num_atoms)
    assert out["reward_logits"].shape == (2, 5, SMALL.network.reward_support.num_atoms)
    assert out["terminal_logits"].shape == (2, 5)


def test_act_respects_the_action_mask_with_and_without_search():
    obs_space = gymnasium.spaces.Box(-1, 1, (5,), np.float32)
    for search_on in (True, False):
        cfg = config_lib.configlib.replace(
            SMALL,
            search=config_lib.configlib.replace(
                SMALL.search, for_acting_train=search_on, for_targets=search_on
            ),
        )
        agent = MuZero(cfg, obs_space, gymnasium.spaces.Discrete(4))
        state = agent.init(jax.random.key(0))
        mask = jnp.array([[True, False, False, True]] * 64)
        actions, info = agent.act(state, jnp.ones((64, 5)), jax.random.key(3), action_mask=mask)
        assert set(np.unique(actions)) <= {0, 3}
        assert float(info["policy"][:, 1:3].max()) == 0.0


def test_updates_fit_a_fixed_batch():
    """Repeated SGD steps on one batch drive its loss down: gradients reach every head."""
    obs_space = gymnasium.spaces.Box(-1, 1, (3,), np.float32)
    agent = MuZero(SMALL, obs_space, gymnasium.spaces.Discrete(2))
    state = agent.init(jax.random.key(0))
    length = SMALL.loss.unroll_steps + SMALL.loss.td_steps + 1
    k = jax.random.split(jax.random.key(1), 4)
    batch = {
        "obs": jax.random.normal(k[0], (8, length, 3)),
        "action": jax.random.randint(k[1], (8, length), 0, 2),
        "reward": jax.random.normal(k[2], (8, length)),
        "terminated": jnp.zeros((8, length), bool).at[:, 7].set(True),
        "truncated": jnp.zeros((8, length), bool),
        "policy": jax.nn.softmax(jax.random.normal(k[3], (8, length, 2))),
        "value": jnp.zeros((8, length)),
        "final_value": jnp.zeros((8, length)),
        "action_mask": jnp.ones((8, length, 2), bool),
        "weight": jnp.ones((8,)),
    }
    update = jax.jit(agent.update)
    first = None
    for i in range(60):
        state, metrics = update(state, batch, jax.random.key(i))
        first = first if first is not None else float(metrics["loss"])
    for term in ("policy", "value", "reward", "terminal"):
        assert np.isfinite(float(metrics[f"loss/{term}"]))
    assert float(metrics["loss"]) < 0.5 * first
