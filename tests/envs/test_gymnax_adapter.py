"""Every exposed gymnax env keeps the contract under jit, vmap and scan.

Compiling dominates the run time, so each env gets one compiled program that every test
of that env reads: a `VectorEnv` of two copies reset and rolled forward with random
actions inside `jax.jit` and `lax.scan`. The program runs twice, with the default params
and with a forced time limit of `TIME_LIMIT` steps. Programs are compiled in worker threads
(XLA compiles without holding the GIL), with the fast compile options of tests/conftest.py.
"""

import concurrent.futures
import dataclasses
import functools
import os

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxmb.envs
from jaxmb.envs import VectorEnv
from jaxmb.envs.gymnax_adapter import GYMNAX_ENV_IDS, SKIPPED_GYMNAX_ENVS, GymnaxEnv

NUM_ENVS = 2
NUM_STEPS = 8
TIME_LIMIT = 3
ENV_IDS = [f"gymnax:{name}" for name in GYMNAX_ENV_IDS]
# Cuts compile time two- to threefold; neither option changes what the program computes.


def _random_action(space: gymnasium.spaces.Space, key: jax.Array) -> jax.Array:
    if isinstance(space, gymnasium.spaces.Discrete):
        return jax.random.randint(key, (), 0, space.n, dtype=jnp.int32)
    return jax.random.uniform(key, space.shape, minval=space.low, maxval=space.high)


def _rollout(env: GymnaxEnv, key: jax.Array, params) -> dict:
    discrete = isinstance(env.action_space, gymnasium.spaces.Discrete)
    vector_env = VectorEnv(env, NUM_ENVS)
    key_reset, key_rollout = jax.random.split(key)
    reset_obs, state = vector_env.reset(key_reset, params)

    def body(state, key):
        key_action, key_step = jax.random.split(key)
        keys = jax.random.split(key_action, NUM_ENVS)
        actions = jax.vmap(_random_action, in_axes=(None, 0))(env.action_space, keys)
        out = vector_env.step(key_step, state, actions, params)
        obs, state, reward, terminated, truncated, info = out
        record = {
            "obs": obs,
            "reward": reward,
            "terminated": terminated,
            "truncated": truncated,
            "final_observation": info["final_observation"],
            "time": state.time,
        }
        if discrete:
            record["mask"] = vector_env.action_mask(state, params)
        return state, record

    _, rollout = jax.lax.scan(body, state, jax.random.split(key_rollout, NUM_STEPS))
    return {"reset_obs": reset_obs, **rollout}


def _compile_and_run(env_id: str) -> tuple[GymnaxEnv, int, dict, dict]:
    env, params = jaxmb.envs.make(env_id)
    default_limit = params.max_steps_in_episode
    # The same Python type as the default, so both runs share one compiled program.
    limited = dataclasses.replace(params, max_steps_in_episode=type(default_limit)(TIME_LIMIT))
    rollout = jax.jit(functools.partial(_rollout, env))
    key = jax.random.key(0)
    return env, default_limit, *jax.device_get((rollout(key, params), rollout(key, limited)))


@pytest.fixture(scope="module")
def results(request):
    """Maps each selected env id to a future of `(env, default_limit, default, limited)`."""
    selected = set()
    for item in request.session.items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if getattr(item, "module", None) is request.module and "env_id" in params:
            selected.add(params["env_id"])
    workers = min(4, os.cpu_count() or 1)
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        futures = {
            env_id: pool.submit(_compile_and_run, env_id)
            for env_id in ENV_IDS
            if env_id in selected
        }
        yield {env_id: future.result for env_id, future in futures.items()}
        for future in futures.values():
            future.cancel()


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_spaces_describe_what_reset_and_step_return(env_id, results):
    env, _, out, _ = results[env_id]()
    shape = env.observation_space.shape
    assert out["reset_obs"].shape == (NUM_ENVS, *shape)
    assert out["obs"].shape == out["final_observation"].shape == (NUM_STEPS, NUM_ENVS, *shape)
    for name in ("reset_obs", "obs", "final_observation"):
        assert out[name].dtype == np.float32, name
        every_obs = out[name].reshape(-1, *shape)
        assert all(env.observation_space.contains(np.asarray(obs)) for obs in every_obs), name


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_reward_and_flags_are_float32_and_bool_scalars(env_id, results):
    _, _, out, _ = results[env_id]()
    for name, dtype in (("reward", np.float32), ("terminated", np.bool_), ("truncated", np.bool_)):
        assert out[name].shape == (NUM_STEPS, NUM_ENVS), name
        assert out[name].dtype == dtype, name


def _check_time_limit(out: dict, limit: int) -> None:
    """`truncated` exactly when an episode reaches `limit` steps; a reset follows each end."""
    for b in range(NUM_ENVS):
        steps = 0
        for t in range(NUM_STEPS):
            steps += 1
            terminated, truncated = out["terminated"][t, b], out["truncated"][t, b]
            assert truncated == (steps >= limit), (t, b, steps)
            if terminated or truncated:
                assert out["time"][t, b] == 0, (t, b)
                steps = 0


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_time_limit_truncates_and_does_not_terminate(env_id, results):
    _, default_limit, default_out, limited_out = results[env_id]()
    _check_time_limit(default_out, default_limit)
    _check_time_limit(limited_out, TIME_LIMIT)
    time_limit_only = limited_out["truncated"] & ~limited_out["terminated"]
    assert time_limit_only.any(), "the forced time limit never fired on its own"


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_final_observation_is_the_observation_before_the_reset(env_id, results):
    _, _, default_out, limited_out = results[env_id]()
    for out in (default_out, limited_out):
        done = out["terminated"] | out["truncated"]
        np.testing.assert_array_equal(out["final_observation"][~done], out["obs"][~done])
    # After a truncation `obs` is a fresh episode's; an env may by chance be back at its
    # start (FrozenLake, Asterix), so one differing observation per env id suffices.
    truncated = limited_out["truncated"]
    differs = limited_out["final_observation"][truncated] != limited_out["obs"][truncated]
    assert differs.any()


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_action_mask(env_id, results):
    env, _, out, _ = results[env_id]()
    if not isinstance(env.action_space, gymnasium.spaces.Discrete):
        with pytest.raises(TypeError, match="Discrete"):
            env.action_mask(None, env.default_params())
        return
    assert env.num_actions == env.action_space.n
    assert out["mask"].shape == (NUM_STEPS, NUM_ENVS, env.num_actions)
    assert out["mask"].dtype == np.bool_ and out["mask"].all()


def test_unbatched_reset_and_step_under_jit():
    env, params = jaxmb.envs.make("gymnax:CartPole-v1")
    obs, state = jax.jit(env.reset)(jax.random.key(0), params)
    step = jax.jit(env.step)(jax.random.key(1), state, jnp.int32(1), params)
    next_obs, _, reward, terminated, truncated, info = step
    assert obs.shape == next_obs.shape == info["final_observation"].shape == (4,)
    assert reward.shape == terminated.shape == truncated.shape == ()
    np.testing.assert_array_equal(env.action_mask(state, params), [True, True])


def test_action_space_conversion():
    env, _ = jaxmb.envs.make("gymnax:CartPole-v1")
    assert env.action_space == gymnasium.spaces.Discrete(2, dtype=np.int32)
    env, _ = jaxmb.envs.make("gymnax:Pendulum-v1")
    assert env.action_space == gymnasium.spaces.Box(-2.0, 2.0, (1,), np.float32)


def test_observation_space_follows_params():
    env, params = jaxmb.envs.make("gymnax:Acrobot-v1", max_vel_1=2.0)
    assert params.max_vel_1 == 2.0
    assert env.observation_space.high[4] == np.float32(2.0)


def test_step_rejects_a_batched_action():
    env, params = jaxmb.envs.make("gymnax:CartPole-v1")
    _, state = env.reset(jax.random.key(0), params)
    with pytest.raises(AssertionError):
        env.step(jax.random.key(1), state, jnp.zeros((2,), jnp.int32), params)


def test_skipped_envs_are_not_registered():
    ids = {row.id for row in jaxmb.envs.list_envs(source="gymnax")}
    assert ids == set(ENV_IDS)
    assert not {f"gymnax:{name}" for name in SKIPPED_GYMNAX_ENVS} & ids
