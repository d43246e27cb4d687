"""jaxmb envs as Gymnasium envs: `check_env`, registered ids, the vector env's same-step
auto-reset, and the round trip JAX env -> Gymnasium -> bridge back in."""

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import jaxmb.envs as jenvs
from jaxmb.envs import host
from jaxmb.envs.gymnasium_export import gymnasium_id


def test_minipacman_is_registered_and_renders_rgb_arrays():
    env = gymnasium.make("jaxmb/MiniPacman-v0", render_mode="rgb_array")
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    frame = env.render()
    assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[-1] == 3


@pytest.mark.heavy  # compiles each env's step too; the default run checks CartPole's export
@pytest.mark.parametrize("gym_id", ["jaxmb/MiniPacman-v0", "jaxmb/Sokoban-v0"])
def test_renderable_envs_pass_check_env(gym_id):
    check_env(gymnasium.make(gym_id, render_mode="rgb_array").unwrapped)


def test_cartpole_export_passes_check_env_and_ids_are_registered():
    check_env(jenvs.to_gymnasium(*jenvs.make("gymnax:CartPole-v1")))
    assert gymnasium_id("gymnax:CartPole-v1") == "jaxmb/gymnax-CartPole-v1"
    for gym_id in ("jaxmb/MiniPacman-v0", "jaxmb/Sokoban-v0", "jaxmb/gymnax-CartPole-v1"):
        assert gym_id in gymnasium.registry
    env = gymnasium.make("jaxmb/gymnax-CartPole-v1", max_steps_in_episode=20)
    assert env.unwrapped.params.max_steps_in_episode == 20
    with pytest.raises(ValueError, match="renders nothing"):
        jenvs.to_gymnasium(*jenvs.make("gymnax:CartPole-v1"), render_mode="rgb_array")


def jax_trajectory(env, params, seed, actions):
    """What the exported env does for `reset(seed=seed)` and `actions`, written in JAX."""
    key = jax.random.key(seed)
    key, sub = jax.random.split(key)
    obs, state = jax.jit(env.reset)(sub, params)
    step = jax.jit(env.step)
    out = [np.asarray(obs)]
    for action in actions:
        key, sub = jax.random.split(key)
        obs, state, reward, terminated, truncated, info = step(sub, state, action, params)
        final = info["final_observation"]
        out.append((np.asarray(obs), float(reward), bool(terminated), bool(truncated), final))
    return out


def test_vector_export_follows_gymnasium_same_step_autoreset():
    env, params = jenvs.make("gymnax:CartPole-v1")
    vector = gymnasium.make_vec("jaxmb/gymnax-CartPole-v1", num_envs=3)
    assert isinstance(vector, jenvs.gymnasium_export.GymnasiumVectorEnv)
    assert vector.metadata["autoreset_mode"] == gymnasium.vector.AutoresetMode.SAME_STEP
    obs, _ = vector.reset(seed=5)
    assert vector.observation_space.contains(obs)
    actions = np.random.default_rng(0).integers(0, 2, (40, 3))
    refs = [jax_trajectory(env, params, 5 + i, jnp.asarray(actions[:, i])) for i in range(3)]
    np.testing.assert_array_equal(obs, np.stack([ref[0] for ref in refs]))
    ended = 0
    for t in range(40):
        obs, reward, terminated, truncated, info = vector.step(actions[t])
        assert vector.observation_space.contains(obs) and reward.dtype == np.float32
        for i, ref in enumerate(refs):
            ref_obs, ref_reward, ref_term, ref_trunc, ref_final = ref[t + 1]
            np.testing.assert_array_equal(obs[i], ref_obs)
            assert (reward[i], terminated[i], truncated[i]) == (ref_reward, ref_term, ref_trunc)
            if ref_term or ref_trunc:
                ended += 1
                assert info["_final_obs"][i]
                np.testing.assert_array_equal(info["final_obs"][i], ref_final)
    assert ended > 0


def test_round_trip_jax_to_gymnasium_to_bridge_gives_the_same_trajectory():
    """gymnax CartPole exported as `jaxmb/gymnax-CartPole-v1`, bridged back in as
    `gym:jaxmb/gymnax-CartPole-v1`: the bridge's trajectory is the JAX env's, episodes
    included (the exported env's `reset()` continues the JAX env's own next episode, and a
    Gymnasium loop sees the episode's last observation where the JAX env has reset)."""
    env, params = jenvs.make("gymnax:CartPole-v1")
    bridged, bridged_params = jenvs.make("gym:jaxmb/gymnax-CartPole-v1")
    assert bridged.observation_space == env.observation_space
    venv = jenvs.VectorEnv(bridged, 1)  # the env that read the spaces: one compile fewer
    actions = jnp.asarray(np.random.default_rng(1).integers(0, 2, (80, 1)), jnp.int32)
    reset_key = jax.random.key(3)

    def run(reset_key, actions):
        obs, state = venv.reset(reset_key, bridged_params)

        def body(state, action):
            obs, state, reward, terminated, truncated, info = venv.step(
                reset_key, state, action, bridged_params
            )
            return state, (obs, reward, terminated, truncated, info["final_observation"])

        return obs, jax.lax.scan(body, state, actions)[1]

    obs0, traj = jax.jit(run)(reset_key, actions)
    ends = 0
    for i, key in enumerate(jax.random.split(reset_key, 1)):
        ref = jax_trajectory(env, params, host.seed_from_key(key), actions[:, i])
        np.testing.assert_array_equal(obs0[i], ref[0])
        for t in range(len(actions)):
            ref_obs, ref_reward, ref_term, ref_trunc, ref_final = ref[t + 1]
            np.testing.assert_array_equal(traj[0][t, i], ref_obs, err_msg=f"env {i} step {t}")
            np.testing.assert_array_equal(traj[4][t, i], ref_final)
            assert (traj[1][t, i], traj[2][t, i], traj[3][t, i]) == (
                ref_reward,
                ref_term,
                ref_trunc,
            )
            ends += ref_term or ref_trunc
    assert ends > 0, "the round trip should cross an episode boundary"
    bridged.close()
