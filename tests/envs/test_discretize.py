"""Discretize on a fake continuous-action env: tables, round trips, errors, jit and vmap.

The fake env echoes the continuous action it receives as its observation, so what the
wrapper sends is visible from outside. One test steps Acrobot through the wrapper when
Playground is installed; Humanoid's codebook is checked on a fake 21-dim body.
"""

import flax
import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmb.envs import VectorEnv, core
from jaxmb.envs.discretize import DEFAULT_MAX_ACTIONS, Discretize


@flax.struct.dataclass
class EchoParams:
    max_steps_in_episode: int = 1000


class EchoEnv:
    """A continuous-action env whose observation is the last action it was given."""

    def __init__(self, low, high):
        low = np.asarray(low, np.float32)
        high = np.asarray(high, np.float32)
        self.id = f"test:Echo{len(low)}"
        self.action_space = gymnasium.spaces.Box(low, high, low.shape, np.float32)
        self.observation_space = gymnasium.spaces.Box(-np.inf, np.inf, low.shape, np.float32)

    @property
    def num_actions(self):
        return core.num_actions(self.action_space)

    def default_params(self):
        return EchoParams()

    def reset(self, key, params):
        del key, params
        obs = jnp.zeros(self.action_space.shape, jnp.float32)
        return obs, jnp.zeros((), jnp.int32)

    def step(self, key, state, action, params):
        del key, params
        obs = jnp.asarray(action, jnp.float32)
        false = jnp.zeros((), jnp.bool_)
        return obs, state + 1, jnp.sum(obs), false, false, {"final_observation": obs}

    def action_mask(self, state, params):
        raise TypeError("continuous actions: wrap in Discretize")


def _unit_env(dim):
    return EchoEnv(-np.ones(dim), np.ones(dim))


def test_grid_counts_and_values():
    cheetah_like = Discretize(_unit_env(6), "grid", values_per_dim=3)
    assert cheetah_like.num_actions == 729
    assert cheetah_like.codebook.shape == (729, 6)
    assert cheetah_like.action_space == gymnasium.spaces.Discrete(729, dtype=np.int32)
    # Every combination exactly once, each value from {-1, 0, 1}.
    assert len({tuple(row) for row in cheetah_like.codebook}) == 729
    assert set(np.unique(cheetah_like.codebook)) == {-1.0, 0.0, 1.0}
    # The first dimension varies slowest, the last fastest.
    np.testing.assert_array_equal(cheetah_like.codebook[0], -np.ones(6))
    np.testing.assert_array_equal(cheetah_like.codebook[1], [-1, -1, -1, -1, -1, 0])
    np.testing.assert_array_equal(cheetah_like.codebook[243], [0, -1, -1, -1, -1, -1])
    np.testing.assert_array_equal(cheetah_like.codebook[-1], np.ones(6))

    acrobot_like = Discretize(_unit_env(1), "grid", values_per_dim=5)
    assert acrobot_like.num_actions == 5
    np.testing.assert_allclose(acrobot_like.codebook[:, 0], [-1.0, -0.5, 0.0, 0.5, 1.0])


def test_grid_follows_uneven_bounds():
    env = Discretize(EchoEnv([-3.0, 0.0], [3.0, 2.0]), "grid", values_per_dim=3)
    np.testing.assert_allclose(np.unique(env.codebook[:, 0]), [-3.0, 0.0, 3.0])
    np.testing.assert_allclose(np.unique(env.codebook[:, 1]), [0.0, 1.0, 2.0])


def test_grid_above_the_cap_names_codebook_mode():
    with pytest.raises(ValueError, match=r"3\*\*21 = 10,460,353.*mode='codebook' \(43 actions\)"):
        Discretize(_unit_env(21), "grid", values_per_dim=3)
    # 4**6 = 4096 sits exactly on the default cap; one more value per dim does not.
    assert Discretize(_unit_env(6), "grid", values_per_dim=4).num_actions == DEFAULT_MAX_ACTIONS
    with pytest.raises(ValueError, match="max_actions=4,096"):
        Discretize(_unit_env(6), "grid", values_per_dim=5)
    assert Discretize(_unit_env(6), "grid", values_per_dim=5, max_actions=20_000).num_actions == (
        5**6
    )


def test_codebook_contents_for_a_humanoid_sized_body():
    env = Discretize(_unit_env(21), "codebook", push=0.5)
    assert env.num_actions == 43
    table = env.codebook
    np.testing.assert_array_equal(table[0], np.zeros(21))
    for i in range(21):
        up, down = np.zeros(21), np.zeros(21)
        up[i], down[i] = 0.5, -0.5
        np.testing.assert_array_equal(table[2 * i + 1], up)
        np.testing.assert_array_equal(table[2 * i + 2], down)


def test_codebook_push_is_a_fraction_of_the_half_range():
    env = Discretize(EchoEnv([-0.4, 0.0], [0.4, 2.0]), "codebook", push=1.0)
    expected = [[0.0, 1.0], [0.4, 1.0], [-0.4, 1.0], [0.0, 2.0], [0.0, 0.0]]
    np.testing.assert_allclose(env.codebook, expected, rtol=1e-6)


def test_user_codebook_and_its_checks():
    rows = [[0.0, 0.0], [1.0, -1.0], [0.25, 0.75]]
    env = Discretize(_unit_env(2), "codebook", codebook=rows)
    assert env.num_actions == 3
    np.testing.assert_array_equal(env.codebook, np.asarray(rows, np.float32))
    with pytest.raises(ValueError, match=r"codebook must be \[num_actions, 2\]"):
        Discretize(_unit_env(2), "codebook", codebook=np.zeros((4, 3)))
    with pytest.raises(ValueError, match="must lie in"):
        Discretize(_unit_env(2), "codebook", codebook=[[0.0, 1.5]])


def test_bad_arguments():
    with pytest.raises(ValueError, match="mode must be"):
        Discretize(_unit_env(2), "bins")
    with pytest.raises(ValueError, match="values_per_dim"):
        Discretize(_unit_env(2), "grid", values_per_dim=1)
    with pytest.raises(ValueError, match="push"):
        Discretize(_unit_env(2), "codebook", push=1.5)
    with pytest.raises(ValueError, match="finite"):
        Discretize(EchoEnv([-np.inf], [1.0]), "grid")
    discrete = _unit_env(2)
    discrete.action_space = gymnasium.spaces.Discrete(3)
    with pytest.raises(TypeError, match="1-D Box"):
        Discretize(discrete)


def test_codebook_is_read_only():
    env = Discretize(_unit_env(2))
    with pytest.raises(ValueError):
        env.codebook[0, 0] = 5.0


@pytest.mark.parametrize("mode", ["grid", "codebook"])
def test_round_trip_index_to_vector_and_back(mode):
    env = Discretize(EchoEnv([-3.0, -1.0, 0.0], [3.0, 1.0, 2.0]), mode)
    indices = jnp.arange(env.num_actions, dtype=jnp.int32)
    vectors = env.to_continuous(indices)
    np.testing.assert_array_equal(vectors, env.codebook)
    back = jax.vmap(env.nearest_action)(vectors)
    np.testing.assert_array_equal(back, indices)


def test_step_sends_the_table_row_under_jit_and_vmap():
    env = Discretize(EchoEnv([-3.0, 0.0], [3.0, 2.0]), "grid", values_per_dim=3)
    params = env.default_params()
    num_envs = 4
    vector_env = VectorEnv(env, num_envs)

    @jax.jit
    def rollout(key, actions):  # actions: [T, num_envs]
        obs, state = vector_env.reset(key, params)

        def body(state, action):
            obs, state, reward, terminated, truncated, info = vector_env.step(
                key, state, action, params
            )
            mask = vector_env.action_mask(state, params)
            return state, (obs, reward, terminated, truncated, mask)

        return jax.lax.scan(body, state, actions)[1]

    actions = jax.random.randint(jax.random.key(3), (5, num_envs), 0, env.num_actions)
    obs, reward, terminated, truncated, mask = jax.device_get(
        rollout(jax.random.key(0), actions.astype(jnp.int32))
    )
    expected = env.codebook[np.asarray(actions)]
    np.testing.assert_array_equal(obs, expected)
    np.testing.assert_allclose(reward, expected.sum(-1), rtol=1e-6)
    assert mask.shape == (5, num_envs, 9) and mask.all() and mask.dtype == np.bool_
    assert not terminated.any() and not truncated.any()
    for row in obs.reshape(-1, 2):
        assert env.continuous_action_space.contains(row)


def test_wrapper_keeps_the_protocol_and_the_wrapped_params():
    inner = _unit_env(3)
    env = Discretize(inner, "codebook")
    assert core.missing_env_members(env) == []
    assert env.id == inner.id
    assert env.default_params() == inner.default_params()
    assert env.observation_space == inner.observation_space
    assert env.continuous_action_space == inner.action_space
    with pytest.raises(TypeError, match="Discrete"):
        inner.num_actions  # noqa: B018
    assert env.num_actions == 7
    assert "codebook" in repr(env) and "num_actions=7" in repr(env)
