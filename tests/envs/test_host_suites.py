"""Each host suite through the bridge gives the observations of the suite's own env for the same
seed and actions: Atari and RoboDesk in this process, Procgen and Meta-World in their worker
venvs (run from the suite's own interpreter for the reference). A suite that is not installed
is skipped with the command that installs it."""

import importlib.util
import json
import os
import subprocess
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxmb.envs as jenvs
from jaxmb.envs import host, worker_venvs


def bridge_rollout(env_id, actions, *, num_envs=1, seed=0, **overrides):
    """Resets `num_envs` envs of `env_id` and steps them with `actions[t]` (the same action for
    every env); returns the seeds, the reset observation and the step outputs."""
    key = jax.random.key(seed)
    env, params = jenvs.make(env_id, **overrides)
    venv = jenvs.VectorEnv(env, num_envs)
    try:
        obs, state = jax.jit(venv.reset)(key, params)
        step = jax.jit(venv.step)
        out = []
        for t, action in enumerate(actions):
            action = jnp.broadcast_to(
                jnp.asarray(action, env.action_space.dtype), (num_envs, *env.action_space.shape)
            )
            next_obs, state, reward, terminated, truncated, info = step(
                jax.random.key(t), state, action, params
            )
            out.append(
                tuple(
                    map(
                        np.asarray,
                        (next_obs, reward, terminated, truncated, info["final_observation"]),
                    )
                )
            )
    finally:
        env.close()
    seeds = [host.seed_from_key(k) for k in jax.random.split(key, num_envs)]
    return env, seeds, np.asarray(obs), out


# --------------------------------------------------------------------------- Atari (in-process)

needs_ale = pytest.mark.skipif(
    importlib.util.find_spec("ale_py") is None, reason='needs ale-py: pip install "jaxmb[atari]"'
)


def atari_reference(game, seed, actions, **options):
    """The suite's own pipeline, built here with Gymnasium's wrappers."""
    import ale_py
    import gymnasium
    from gymnasium.wrappers import AtariPreprocessing, FrameStackObservation

    gymnasium.register_envs(ale_py)
    env = gymnasium.make(
        f"ALE/{game}",
        frameskip=1,
        repeat_action_probability=0.25,
        full_action_space=False,
        max_num_frames_per_episode=options.get("max_frames", 108_000),
    )
    env = AtariPreprocessing(env, noop_max=0, frame_skip=4, screen_size=96, grayscale_obs=True)
    env = FrameStackObservation(env, 4)
    obs, _ = env.reset(seed=seed)
    frames = [np.transpose(obs, (1, 2, 0))]
    flags = []
    for action in actions:
        obs, reward, terminated, truncated, _ = env.step(action)
        frames.append(np.transpose(obs, (1, 2, 0)))
        flags.append((reward, terminated, truncated))
        if terminated or truncated:
            break
    return frames, flags


@needs_ale
@pytest.mark.parametrize("game", ["MsPacman-v5", "Hero-v5"])
def test_atari_through_the_bridge_matches_ale_with_the_same_preprocessing(game):
    actions = [0, 3, 3, 2, 1, 4, 4, 0, 2, 3, 1, 1]
    env, seeds, obs0, out = bridge_rollout(f"ale:{game}", actions, max_frames=40)
    assert env.observation_space.shape == (96, 96, 4) and env.observation_space.dtype == np.uint8
    frames, flags = atari_reference(game, seeds[0], actions, max_frames=40)
    np.testing.assert_array_equal(obs0[0], frames[0])
    for t, (reward, terminated, truncated) in enumerate(flags):
        np.testing.assert_array_equal(out[t][4][0], frames[t + 1], err_msg=f"step {t}")
        assert (out[t][1][0], out[t][2][0], out[t][3][0]) == (reward, terminated, truncated)
    # 40 emulator frames = 10 agent steps: a time limit, reported as truncation.
    assert flags[9][2] and not flags[9][1] and len(flags) == 10


# --------------------------------------------------------------------------- worker venvs


def worker_python(suite):
    python = worker_venvs.venv_python(suite)
    if not os.path.exists(python):
        pytest.skip(
            f"no {suite} worker venv at {python}; run: {worker_venvs.create_command(suite)}"
        )
    return python


def run_reference(python, script, tmp_path):
    """Runs `script` under the worker venv's interpreter; it saves `out.npz` in `tmp_path`."""
    subprocess.run([python, "-c", textwrap.dedent(script)], check=True, cwd=tmp_path, timeout=300)
    return np.load(tmp_path / "out.npz")


def test_procgen_through_a_worker_venv_matches_procgen(tmp_path):
    python = worker_python("procgen")
    actions = [0, 1, 5, 7, 7, 7, 2, 3, 4, 8] * 3
    options = {"num_levels": 50, "start_level": 7, "distribution_mode": "easy"}
    env, seeds, obs0, out = bridge_rollout("procgen:coinrun", actions, **options)
    assert env.observation_space.shape == (64, 64, 3) and env.num_actions == 15
    ref = run_reference(
        python,
        f"""
        import numpy as np
        from procgen import ProcgenGym3Env
        frames, rewards, firsts = [], [], []
        for seed in {seeds}:
            env = ProcgenGym3Env(num=1, env_name="coinrun", rand_seed=seed, **{json.dumps(options)})
            _, obs, _ = env.observe()
            seq, rew, first = [obs["rgb"][0]], [], []
            for action in {actions}:
                env.act(np.array([action]))
                r, obs, f = env.observe()
                seq.append(obs["rgb"][0]); rew.append(r[0]); first.append(f[0])
            frames.append(seq); rewards.append(rew); firsts.append(first)
        np.savez("out.npz", frames=np.array(frames), rewards=np.array(rewards),
                 firsts=np.array(firsts))
        """,
        tmp_path,
    )
    np.testing.assert_array_equal(obs0, ref["frames"][:, 0])
    for t in range(len(actions)):
        np.testing.assert_array_equal(out[t][0], ref["frames"][:, t + 1], err_msg=f"step {t}")
        np.testing.assert_array_equal(out[t][1], ref["rewards"][:, t])
        np.testing.assert_array_equal(out[t][2], ref["firsts"][:, t])


def test_metaworld_through_a_worker_venv_matches_metaworld(tmp_path):
    python = worker_python("metaworld")
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, (8, 4)).astype(np.float32)
    env, seeds, obs0, out = bridge_rollout("metaworld:reach-v3", actions, task_set="test")
    assert env.observation_space.shape == (39,) and env.action_space.shape == (4,)
    ref = run_reference(
        python,
        f"""
        import gymnasium, metaworld, numpy as np
        benchmark = metaworld.ML1("reach-v3", seed=0)
        env = gymnasium.wrappers.TimeLimit(benchmark.test_classes["reach-v3"](), 500)
        rng = np.random.default_rng({seeds[0]})
        env.unwrapped.set_task(benchmark.test_tasks[int(rng.integers(len(benchmark.test_tasks)))])
        obs, _ = env.reset(seed={seeds[0]})
        frames, rewards = [obs], []
        for action in np.array({actions.tolist()}, np.float32):
            obs, reward, terminated, truncated, _ = env.step(action)
            frames.append(obs); rewards.append(reward)
        np.savez("out.npz", frames=np.array(frames, np.float32),
                 rewards=np.array(rewards, np.float32))
        """,
        tmp_path,
    )
    np.testing.assert_array_equal(obs0[0], ref["frames"][0])
    for t in range(len(actions)):
        np.testing.assert_array_equal(out[t][0][0], ref["frames"][t + 1], err_msg=f"step {t}")
        np.testing.assert_array_equal(out[t][1][0], ref["rewards"][t])


# --------------------------------------------------------------------------- RoboDesk


@pytest.mark.skipif(
    importlib.util.find_spec("robodesk") is None,
    reason='needs robodesk: pip install "jaxmb[robodesk]"',
)
def test_robodesk_through_the_bridge_matches_robodesk():
    """Two steps: RoboDesk renders with EGL at about 280 ms a step on a CPU."""
    actions = np.array([[0.5, -0.5, 0.2, 0.0, 1.0], [0.0, 0.3, -0.2, 0.5, -1.0]], np.float32)
    env, seeds, obs0, out = bridge_rollout("robodesk:open_slide", actions)
    assert env.observation_space.shape == (64, 64, 3) and env.action_space.shape == (5,)
    os.environ.setdefault("MUJOCO_GL", "egl")
    import PIL.Image

    PIL.Image.ANTIALIAS = getattr(PIL.Image, "ANTIALIAS", PIL.Image.LANCZOS)
    from robodesk import robodesk

    ref = robodesk.RoboDesk(task="open_slide", reward="dense", image_size=64)
    np.random.seed(seeds[0])  # RoboDesk draws its initial state from NumPy's global generator
    np.testing.assert_array_equal(obs0[0], ref.reset()["image"])
    for t, action in enumerate(actions):
        obs, reward, done, _ = ref.step(action)
        np.testing.assert_array_equal(out[t][0][0], obs["image"])
        np.testing.assert_allclose(out[t][1][0], reward, rtol=1e-6)
        assert not out[t][2][0] and out[t][3][0] == done
