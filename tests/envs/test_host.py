"""Host envs through the callback bridge: one host call per step, parity with Gymnasium's own env,
determinism, worker processes, and the error paths."""

import os

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxmb.envs as jenvs
from jaxmb.envs import host, host_callback
from jaxmb.envs.registry import MissingDependencyError, UnknownEnvError

HERE = os.path.dirname(os.path.abspath(__file__))
FAILING = "gym:host_test_envs:HostTest/FailingCartPole-v0"
DYING = "gym:host_test_envs:HostTest/DyingCartPole-v0"


class Counter:
    """A host function that doubles its input and records the batch of every call."""

    def __init__(self):
        self.batches = []

    def __call__(self, x):
        self.batches.append(x.shape[0])
        return ((x * 2).astype(np.int32),)


def test_host_call_is_one_call_per_step_under_nested_vmap_cond_and_while():
    """[3 seeds, 4 envs] -> one host call with 12 rows, also inside cond and while_loop under
    vmap (where a plain io_callback raises "IO effect not supported in vmap-of-cond")."""
    counter = Counter()

    def one(x):
        shapes = [jax.ShapeDtypeStruct((1,), jnp.int32)]
        return host_callback.host_call(counter, shapes, x[None])[0][0]

    def program(x, flag):
        def body(c, _):
            c = jax.vmap(one)(c)
            c = jax.lax.cond(flag > 0, jax.vmap(one), lambda c: c, c)
            c = jax.lax.while_loop(lambda c: jnp.max(c) < 50, jax.vmap(one), c)
            return c % 7, c

        return jax.lax.scan(body, x, None, length=2)[1]

    x = jnp.arange(1, 13, dtype=jnp.int32).reshape(3, 4)
    out = jax.jit(jax.vmap(program, in_axes=(0, None)))(x, 1)
    assert set(counter.batches) == {12}, counter.batches
    expected = np.asarray(x)
    for t in range(2):  # the same computation on the host, row by row
        expected = expected * 4
        for row in expected:  # each seed's while_loop runs until its own max reaches 50
            while row.max() < 50:
                row *= 2
        np.testing.assert_array_equal(out[:, t], expected)
        expected = expected % 7


def rollout(venv, params, key, num_steps):
    """`num_steps` steps of a policy pushing towards the pole's lean, inside one jitted scan."""

    def run(key):
        reset_key, key = jax.random.split(key)
        obs, state = venv.reset(reset_key, params)

        def body(carry, step_key):
            state, obs = carry
            action = (obs[:, 2] > 0).astype(jnp.int32)
            obs, state, reward, terminated, truncated, info = venv.step(
                step_key, state, action, params
            )
            out = (obs, reward, terminated, truncated, info["final_observation"], action)
            return (state, obs), out

        _, traj = jax.lax.scan(body, (state, obs), jax.random.split(key, num_steps))
        return reset_key, obs, traj

    return jax.jit(run)(key)


def test_gym_cartpole_matches_gymnasium_for_the_same_seeds_and_actions():
    env, params = jenvs.make("gym:CartPole-v1")
    assert env.observation_space.dtype == np.float32 and env.num_actions == 2
    venv = jenvs.VectorEnv(jenvs.EpisodeStatistics(env), 3)
    reset_key, obs0, traj = rollout(venv, params, jax.random.key(0), 120)
    obs, reward, terminated, truncated, final, action = map(np.asarray, traj)
    assert terminated.any(), "the test should cross an episode boundary"
    for i, key in enumerate(jax.random.split(reset_key, 3)):
        ref = gymnasium.make("CartPole-v1")
        ref_obs, _ = ref.reset(seed=host.seed_from_key(key))
        np.testing.assert_allclose(obs0[i], ref_obs, rtol=1e-6)
        for t in range(len(action)):
            ref_obs, ref_reward, ref_term, ref_trunc, _ = ref.step(int(action[t, i]))
            np.testing.assert_allclose(final[t, i], ref_obs, rtol=1e-6, err_msg=f"env {i} t {t}")
            assert (reward[t, i], terminated[t, i], truncated[t, i]) == (
                ref_reward,
                ref_term,
                ref_trunc,
            )
            if ref_term or ref_trunc:
                ref_obs, _ = ref.reset()
            np.testing.assert_allclose(obs[t, i], ref_obs, rtol=1e-6)


def test_seeds_times_envs_is_one_call_and_a_fixed_key_gives_a_fixed_trajectory(monkeypatch):
    env, params = jenvs.make("gym:CartPole-v1")
    venv = jenvs.VectorEnv(env, 4)
    rows = []
    step = host._Host.step

    def counting(self, pool_ids, indices, actions):
        rows.append(len(indices))
        return step(self, pool_ids, indices, actions)

    monkeypatch.setattr(host._Host, "step", counting)
    keys = jax.random.split(jax.random.key(1), 2)
    run = jax.jit(jax.vmap(lambda k: rollout(venv, params, k, 30)[2]))
    first = run(keys)
    assert rows == [8] * 30, rows  # one call per step holds all 2 x 4 envs
    second = run(keys)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0][:, :, 0], first[0][:, :, 1])  # envs differ


def test_worker_processes_give_the_in_process_trajectory():
    key = jax.random.key(3)
    trajs = []
    for num_workers in (0, 2):
        env, params = jenvs.make("gym:CartPole-v1", num_workers=num_workers)
        venv = jenvs.VectorEnv(env, 3)
        trajs.append(rollout(venv, params, key, 40)[2])
        env.close()
    for a, b in zip(*trajs, strict=True):
        np.testing.assert_array_equal(a, b)


def _run_failing(env_id, fail_at, **overrides):
    env, params = jenvs.make(env_id, kwargs={"fail_at": fail_at}, **overrides)
    venv = jenvs.VectorEnv(env, 2)
    try:
        jax.block_until_ready(rollout(venv, params, jax.random.key(0), 20))
    finally:
        env.close()


def test_an_env_that_raises_names_the_env_the_step_and_the_exception():
    with pytest.raises(Exception) as info:
        _run_failing(FAILING, fail_at=7)
    with pytest.raises(host.HostEnvError) as typed:
        host.raise_host_error(info.value)
    err = typed.value
    assert err.env_id == FAILING and err.details["step"] == 7
    assert "ValueError: boom at step 7" in str(err) and "at step 7" in str(err)
    assert isinstance(err.__cause__, jax.errors.JaxRuntimeError)
    assert isinstance(err.original, ValueError) and "Traceback" in err.remote_traceback
    assert str(err) in str(info.value)  # the runtime error's own message says it too


def test_a_worker_env_that_raises_or_dies_is_an_error_naming_the_env(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", HERE)
    with pytest.raises(Exception) as info:
        _run_failing(FAILING, fail_at=5, num_workers=1)
    assert "host env " + FAILING in str(info.value)
    assert "ValueError: boom at step 5" in str(info.value)
    with pytest.raises(Exception) as info:
        _run_failing(DYING, fail_at=4, num_workers=1)
    assert "host env " + DYING in str(info.value) and "died with exit code 3" in str(info.value)


def test_missing_suites_and_unknown_ids_say_what_to_do(monkeypatch):
    monkeypatch.setenv("JAXMB_PROCGEN_PYTHON", "/nonexistent/python")
    with pytest.raises(MissingDependencyError, match="make worker-venvs"):
        jenvs.make("procgen:coinrun")
    with pytest.raises(UnknownEnvError, match="NoSuchEnv"):
        jenvs.make("gym:NoSuchEnv-v0")
    with pytest.raises(UnknownEnvError, match="procgen:coinrun"):
        jenvs.make("procgen:coinrn")


def test_host_params_are_static_and_overridable():
    env, params = jenvs.make("gym:CartPole-v1", max_episode_steps=7)
    assert jax.tree.leaves(params) == [] and hash(params)
    venv = jenvs.VectorEnv(env, 2)
    *_, traj = rollout(venv, params, jax.random.key(0), 10)
    truncated = np.asarray(traj[3])
    assert truncated[6].all() and not truncated[:6].any()
    with pytest.raises(ValueError, match="max_episode_steps"):
        jenvs.make("gym:CartPole-v1", max_episode_step=7)


def test_a_restored_handle_from_another_process_restarts_its_episode():
    env, params = jenvs.make("gym:CartPole-v1")
    state = host.HostEnvState(pool=jnp.int32(12345), index=jnp.int32(1))
    obs, state, reward, terminated, truncated, info = jax.jit(env.step)(
        jax.random.key(0), state, jnp.int32(0), params
    )
    assert bool(truncated) and not bool(terminated) and float(reward) == 0.0
    np.testing.assert_array_equal(obs, info["final_observation"])
