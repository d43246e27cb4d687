"""The gymnax classic-control envs behind `make` match Gymnasium's numpy originals.

gymnax computes in float32 and Gymnasium in float64, so observations agree to a
tolerance while rewards and termination flags must agree exactly. Two checks per env:
one step from many random states written into both envs (this reaches terminal states a
random policy rarely visits), and whole episodes stepped open loop from a shared start.
"""

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxmb.envs

NUM_STATES = 256


def _cartpole_states(rng: np.random.Generator, n: int) -> dict:
    # Inside the termination thresholds (|x| < 2.4, |theta| < 0.2095), where gymnax and
    # Gymnasium agree on the reward (gymnax pays 0 for stepping out of a terminal state).
    return {
        "x": rng.uniform(-2.3, 2.3, n),
        "x_dot": rng.uniform(-2.0, 2.0, n),
        "theta": rng.uniform(-0.2, 0.2, n),
        "theta_dot": rng.uniform(-2.0, 2.0, n),
    }


def _acrobot_states(rng: np.random.Generator, n: int) -> dict:
    return {
        "joint_angle1": rng.uniform(-np.pi, np.pi, n),
        "joint_angle2": rng.uniform(-np.pi, np.pi, n),
        "velocity_1": rng.uniform(-2 * np.pi, 2 * np.pi, n),
        "velocity_2": rng.uniform(-4 * np.pi, 4 * np.pi, n),
    }


def _mountain_car_states(rng: np.random.Generator, n: int) -> dict:
    return {"position": rng.uniform(-1.2, 0.6, n), "velocity": rng.uniform(-0.07, 0.07, n)}


# gymnax state fields in the order of Gymnasium's `state` vector, and how to sample them.
CASES = {
    "CartPole-v1": (("x", "x_dot", "theta", "theta_dot"), _cartpole_states, 1e-5),
    "Acrobot-v1": (
        ("joint_angle1", "joint_angle2", "velocity_1", "velocity_2"),
        _acrobot_states,
        1e-4,
    ),
    "MountainCar-v0": (("position", "velocity"), _mountain_car_states, 1e-6),
}


def _gymnasium_step(env, state_vector: np.ndarray, action: int):
    env.state = np.asarray(state_vector, np.float64)
    if hasattr(env, "steps_beyond_terminated"):
        env.steps_beyond_terminated = None
    obs, reward, terminated, _, _ = env.step(action)
    return obs, reward, terminated


@pytest.mark.parametrize("name", list(CASES))
def test_one_step_from_random_states(name):
    fields, sample, atol = CASES[name]
    env, params = jaxmb.envs.make(f"gymnax:{name}")
    reference = gymnasium.make(name).unwrapped
    reference.reset(seed=0)

    rng = np.random.default_rng(0)
    values = {k: v.astype(np.float32) for k, v in sample(rng, NUM_STATES).items()}
    actions = rng.integers(0, env.num_actions, NUM_STATES).astype(np.int32)
    _, start = env.reset(jax.random.key(0), params)
    states = jax.vmap(lambda v: start.replace(**v))(values)
    keys = jax.random.split(jax.random.key(1), NUM_STATES)
    step = jax.jit(jax.vmap(env.step, in_axes=(0, 0, 0, None)))
    _, _, reward, terminated, truncated, info = jax.device_get(
        step(keys, states, jnp.asarray(actions), params)
    )

    assert not truncated.any()
    for i in range(NUM_STATES):
        state_vector = [values[field][i] for field in fields]
        obs, ref_reward, ref_terminated = _gymnasium_step(reference, state_vector, int(actions[i]))
        np.testing.assert_allclose(info["final_observation"][i], obs, rtol=1e-5, atol=atol)
        assert reward[i] == ref_reward, i
        assert terminated[i] == ref_terminated, i
    assert terminated.any() and not terminated.all(), "the sample should reach both cases"


# A random policy drops the pole within tens of steps and never lifts the car out of the
# valley, so the two episodes end by termination and by the 200-step time limit.
@pytest.mark.parametrize(("name", "num_steps"), [("CartPole-v1", 200), ("MountainCar-v0", 200)])
def test_episode_open_loop(name, num_steps):
    fields, _, _ = CASES[name]
    env, params = jaxmb.envs.make(f"gymnax:{name}")
    rng = np.random.default_rng(1)
    actions = rng.integers(0, env.num_actions, num_steps).astype(np.int32)

    def rollout(key, actions):
        obs, state = env.reset(key, params)

        def body(state, key_and_action):
            key, action = key_and_action
            _, state, reward, terminated, truncated, info = env.step(key, state, action, params)
            return state, (info["final_observation"], reward, terminated, truncated)

        keys = jax.random.split(key, num_steps)
        return obs, state, jax.lax.scan(body, state, (keys, actions))[1]

    key = jax.random.key(2)
    obs0, start, (obs, reward, terminated, truncated) = jax.device_get(
        jax.jit(rollout)(key, jnp.asarray(actions))
    )
    # Keep Gymnasium's TimeLimit wrapper, so truncation is compared too.
    reference = gymnasium.make(name)
    reference.reset(seed=0)
    reference.unwrapped.state = np.array([getattr(start, f) for f in fields], np.float64)
    np.testing.assert_array_equal(obs0, np.asarray(reference.unwrapped.state, np.float32))

    for t in range(num_steps):
        ref_obs, ref_reward, ref_terminated, ref_truncated, _ = reference.step(int(actions[t]))
        # float32 against float64: the gap grows slowly along an episode.
        np.testing.assert_allclose(obs[t], ref_obs, rtol=1e-4, atol=1e-4, err_msg=f"t={t}")
        assert reward[t] == ref_reward, t
        assert (terminated[t], truncated[t]) == (ref_terminated, ref_truncated), t
        if ref_terminated or ref_truncated:
            break
    else:
        pytest.fail("the episode should end within num_steps")


@pytest.mark.parametrize("name", list(CASES))
def test_time_limit_matches_gymnasium_registration(name):
    _, params = jaxmb.envs.make(f"gymnax:{name}")
    assert params.max_steps_in_episode == gymnasium.spec(name).max_episode_steps
