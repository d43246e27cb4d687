"""EpisodeStatistics, AutoReset and VectorEnv, on the random-walk env and on CartPole."""

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from random_walk_env import RandomWalkEnv, WalkParams

import jaxmb.envs
from jaxmb.envs import ActionRepeat, AutoReset, EpisodeStatistics, VectorEnv, core

NUM_STEPS = 24


def _make_rollout(env, params):
    """A jitted `rollout(key, actions[T])` returning the stacked step outputs."""

    def rollout(key, actions):
        key_reset, key_steps = jax.random.split(key)
        obs, state = env.reset(key_reset, params)

        def body(state, key_and_action):
            key, action = key_and_action
            obs, state, reward, terminated, truncated, info = env.step(key, state, action, params)
            return state, (obs, state, reward, terminated, truncated, info)

        keys = jax.random.split(key_steps, actions.shape[0])
        return obs, state, jax.lax.scan(body, state, (keys, actions))[1]

    return jax.jit(rollout)


def _scan_actions(env, params, key, actions):
    return jax.device_get(_make_rollout(env, params)(key, jnp.asarray(actions, jnp.int32)))


def _expected_statistics(reward, terminated, truncated):
    """Running return and length by hand, restarting after each end of episode."""
    returns, lengths, total, length = [], [], 0.0, 0
    for r, te, tr in zip(reward, terminated, truncated, strict=True):
        total, length = total + float(r), length + 1
        returns.append(total)
        lengths.append(length)
        if te or tr:
            total, length = 0.0, 0
    return np.array(returns, np.float32), np.array(lengths, np.int32)


def test_wrappers_satisfy_the_protocol(walk_env):
    for env in (AutoReset(walk_env), EpisodeStatistics(walk_env), VectorEnv(walk_env, 3)):
        assert core.missing_env_members(env) == []
        assert env.id == walk_env.id
        assert env.num_actions == 3


def test_auto_reset_starts_a_new_episode(walk_env):
    env = AutoReset(walk_env)
    params = WalkParams(max_steps=4, goal=2)
    # Always +1: reaches the goal (position >= 2) within 3 steps from any start in [-1, 1].
    _, _, (obs, state, reward, terminated, truncated, info) = _scan_actions(
        env, params, jax.random.key(0), np.full(12, 2)
    )
    assert terminated.any() and not truncated.any()
    final = info["final_observation"]
    np.testing.assert_array_equal(final[~terminated], obs[~terminated])
    # The pre-reset observation is at the goal; the returned one starts a new episode.
    assert (final[terminated, 0] == params.goal).all()
    assert (state.time[terminated] == 0).all() and (obs[terminated, 1] == 0).all()
    assert (np.abs(state.position[terminated]) <= 1).all()
    assert obs.dtype == np.float32 and state.time.dtype == np.int32


def test_auto_reset_truncates_on_the_time_limit(walk_env):
    env = AutoReset(walk_env)
    params = WalkParams(max_steps=4, goal=100)
    _, _, (obs, state, _, terminated, truncated, info) = _scan_actions(
        env, params, jax.random.key(0), np.ones(12)
    )
    np.testing.assert_array_equal(truncated, np.arange(1, 13) % 4 == 0)
    assert not terminated.any()
    np.testing.assert_array_equal(info["final_observation"][truncated, 1], 4.0)
    np.testing.assert_array_equal(state.time[truncated], 0)


def test_episode_statistics_match_a_hand_run_episode(walk_env):
    env = EpisodeStatistics(AutoReset(walk_env))
    params = WalkParams(max_steps=5, goal=2)
    key = jax.random.key(3)
    obs, state = env.reset(key, params)
    step = jax.jit(env.step)
    # +1, +1, stay, then a fresh episode: 0 (reward 0) until the time limit.
    actions = [2, 2, 1, 2, 0, 1, 1, 1, 1]
    total, length = 0.0, 0
    for t, action in enumerate(actions):
        key, subkey = jax.random.split(key)
        obs, state, reward, terminated, truncated, info = step(subkey, state, action, params)
        total, length = total + float(reward), length + 1
        done = bool(terminated | truncated)
        assert bool(info["episode_done"]) == done
        assert float(info["episode_return"]) == total, t
        assert int(info["episode_length"]) == length, t
        if done:
            total, length = 0.0, 0
        assert float(state.episode_return) == total and int(state.episode_length) == length
    assert info["episode_return"].dtype == jnp.float32
    assert info["episode_length"].dtype == jnp.int32


def test_episode_statistics_property():
    """For any action sequence, length counts the steps since the last end of episode."""
    env = EpisodeStatistics(AutoReset(RandomWalkEnv()))
    params = WalkParams(max_steps=5, goal=2)
    run = _make_rollout(env, params)

    @settings(max_examples=40, deadline=None)
    @given(
        actions=st.lists(st.integers(0, 2), min_size=NUM_STEPS, max_size=NUM_STEPS),
        seed=st.integers(0, 2**31 - 1),
    )
    def check(actions, seed):
        _, _, (_, _, reward, terminated, truncated, info) = jax.device_get(
            run(jax.random.key(seed), jnp.asarray(actions, jnp.int32))
        )
        returns, lengths = _expected_statistics(reward, terminated, truncated)
        np.testing.assert_array_equal(info["episode_length"], lengths)
        np.testing.assert_allclose(info["episode_return"], returns)
        np.testing.assert_array_equal(reward, actions)
        assert not (terminated & truncated).any()

    check()


def test_vector_env_shapes_under_jit(walk_env):
    num_envs = 8
    env = VectorEnv(EpisodeStatistics(AutoReset(walk_env)), num_envs)
    params = env.default_params()
    assert env.observation_space == env.single_observation_space == walk_env.observation_space
    assert env.action_space == env.single_action_space == walk_env.action_space

    obs, state = jax.jit(env.reset)(jax.random.key(0), params)
    assert obs.shape == (num_envs, 2)
    assert len(np.unique(state.env_state.position)) > 1, "each copy needs its own key"
    assert state.episode_return.shape == state.env_state.position.shape == (num_envs,)
    actions = jnp.zeros((num_envs,), jnp.int32)
    obs, state, reward, terminated, truncated, info = jax.jit(env.step)(
        jax.random.key(1), state, actions, params
    )
    assert obs.shape == info["final_observation"].shape == (num_envs, 2)
    for array in (reward, terminated, truncated, info["episode_return"]):
        assert array.shape == (num_envs,)
    mask = jax.jit(env.action_mask)(state, params)
    assert mask.shape == (num_envs, 3) and mask.dtype == jnp.bool_
    # Action 0 is illegal exactly where the position is -2 or below.
    np.testing.assert_array_equal(mask[:, 0], state.env_state.position > -2)
    assert mask[:, 1:].all()


def test_vector_env_batched_params(walk_env):
    env = VectorEnv(AutoReset(walk_env), 3, batch_params=True)
    params = WalkParams(max_steps=jnp.array([1, 2, 3]), goal=jnp.array([100, 100, 100]))
    _, state = jax.jit(env.reset)(jax.random.key(0), params)
    step = jax.jit(env.step)
    actions = jnp.ones((3,), jnp.int32)
    truncations = []
    for t in range(3):
        _, state, _, _, truncated, _ = step(jax.random.key(t), state, actions, params)
        truncations.append(np.asarray(truncated))
    np.testing.assert_array_equal(
        np.array(truncations), [[True, False, False], [True, True, False], [True, False, True]]
    )
    default = env.default_params()
    assert default.max_steps.shape == (3,)


def test_vector_env_rejects_wrong_action_shape(walk_env):
    env = VectorEnv(walk_env, 4)
    params = env.default_params()
    _, state = env.reset(jax.random.key(0), params)
    with pytest.raises(AssertionError):
        env.step(jax.random.key(1), state, jnp.zeros((3,), jnp.int32), params)
    with pytest.raises(ValueError):
        VectorEnv(walk_env, 0)


def test_episode_statistics_per_copy_on_vectorised_cartpole():
    num_envs, num_steps = 4, 48
    env, params = jaxmb.envs.make("gymnax:CartPole-v1", max_steps_in_episode=10)
    vector_env = VectorEnv(EpisodeStatistics(env), num_envs)
    assert isinstance(vector_env.single_observation_space, gymnasium.spaces.Box)
    actions = np.random.default_rng(0).integers(0, 2, (num_steps, num_envs))
    _, _, (obs, _, reward, terminated, truncated, info) = _scan_actions(
        vector_env, params, jax.random.key(0), actions
    )
    assert obs.shape == (num_steps, num_envs, 4)
    # Random pushes drop the pole in some episodes; the others hit the 10-step limit.
    assert terminated.any() and truncated.any()
    np.testing.assert_array_equal(info["episode_done"], terminated | truncated)
    for i in range(num_envs):
        returns, lengths = _expected_statistics(reward[:, i], terminated[:, i], truncated[:, i])
        np.testing.assert_array_equal(info["episode_return"][:, i], returns)
        np.testing.assert_array_equal(info["episode_length"][:, i], lengths)
    np.testing.assert_array_equal(info["episode_length"][truncated], 10)


def _repeat_by_hand(env, params, key, state, action, repeat):
    """`repeat` steps of `env` in Python with ActionRepeat's keys, stopping at an episode end."""
    keys = jax.random.split(key, repeat)
    total, taken = 0.0, 0
    for k in keys:
        obs, state, reward, terminated, truncated, info = env.step(k, state, action, params)
        total, taken = total + float(reward), taken + 1
        if terminated or truncated:
            break
    return obs, state, total, bool(terminated), bool(truncated), info, taken


@settings(max_examples=15, deadline=None)
@given(
    repeat=st.integers(1, 4),
    actions=st.lists(st.integers(0, 2), min_size=1, max_size=6),
    seed=st.integers(0, 2**16),
)
def test_action_repeat_equals_the_steps_taken_by_hand(walk_env, repeat, actions, seed):
    inner = AutoReset(walk_env)
    env = ActionRepeat(inner, repeat)
    params = WalkParams(max_steps=5, goal=2)
    key = jax.random.key(seed)
    _, state = env.reset(key, params)
    expected_state = state
    step = jax.jit(env.step)
    for t, action in enumerate(actions):
        key_t = jax.random.fold_in(key, t)
        obs, state, reward, terminated, truncated, info = step(
            key_t, state, jnp.int32(action), params
        )
        e_obs, expected_state, e_reward, e_term, e_trunc, e_info, taken = _repeat_by_hand(
            inner, params, key_t, expected_state, jnp.int32(action), repeat
        )
        np.testing.assert_array_equal(obs, e_obs)
        np.testing.assert_array_equal(state.position, expected_state.position)
        np.testing.assert_array_equal(state.time, expected_state.time)
        assert float(reward) == e_reward and (bool(terminated), bool(truncated)) == (
            e_term,
            e_trunc,
        )
        np.testing.assert_array_equal(info["final_observation"], e_info["final_observation"])
        assert int(info["action_repeat_steps"]) == taken


def test_action_repeat_sums_rewards_and_stops_at_the_time_limit(walk_env):
    env = ActionRepeat(AutoReset(walk_env), 4)
    params = WalkParams(max_steps=6, goal=100)
    _, state = env.reset(jax.random.key(1), params)
    start = int(state.position)
    stay = jnp.int32(1)  # moves by 0, earns 1
    obs, state, reward, terminated, truncated, info = env.step(
        jax.random.key(2), state, stay, params
    )
    assert (float(reward), int(info["action_repeat_steps"])) == (4.0, 4)
    assert not (terminated or truncated) and obs.tolist() == [start, 4.0]
    # Two more steps reach the limit of 6: the call stops there and returns the next episode.
    obs, state, reward, terminated, truncated, info = env.step(
        jax.random.key(3), state, stay, params
    )
    assert (float(reward), int(info["action_repeat_steps"])) == (2.0, 2)
    assert bool(truncated) and not bool(terminated)
    assert info["final_observation"].tolist() == [start, 6.0] and float(obs[1]) == 0.0


def test_action_repeat_refuses_bad_repeats(walk_env):
    with pytest.raises(ValueError, match="positive integer"):
        ActionRepeat(walk_env, 0)
    with pytest.raises(ValueError, match="two-player"):
        ActionRepeat(type("TwoPlayer", (AutoReset,), {"num_players": 2})(walk_env), 2)
    assert core.missing_env_members(ActionRepeat(walk_env, 2)) == []
