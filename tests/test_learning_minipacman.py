"""Learning test: MuZero on MiniPacman (regular mode) beats the uniform-random policy."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmb import config as config_lib
from jaxmb.envs import EpisodeStatistics, VectorEnv
from jaxmb.train import build_env, make_train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIME_LIMIT = 50
OVERRIDES = [
    f"env.params={{mode: 0, num_levels: 0, max_steps_in_episode: {TIME_LIMIT}}}",
    f"env.eval_max_steps={TIME_LIMIT}",
    "env.num_eval_envs=32",
    "replay.capacity=16384",
    "replay.min_size=512",
    "train.total_env_steps=24576",
    "train.eval_every=4096",
    "run.progress=false",
    "run.tensorboard=false",
]


def random_policy_return(config, num_episodes: int = 512) -> float:
    """Mean return of the first episode of `num_episodes` envs under uniform random actions."""
    env, params = build_env(config)
    vector = VectorEnv(EpisodeStatistics(env), num_episodes)

    def play(key):
        obs, state = vector.reset(key, params)

        def body(carry, key):
            state, finished, first_return = carry
            action_key, step_key = jax.random.split(key)
            actions = jax.random.randint(action_key, (num_episodes,), 0, env.num_actions)
            _, state, _, _, _, info = vector.step(step_key, state, actions, params)
            first = info["episode_done"] & ~finished
            first_return = jnp.where(first, info["episode_return"], first_return)
            return (state, finished | info["episode_done"], first_return), None

        carry = (state, jnp.zeros(num_episodes, bool), jnp.zeros(num_episodes))
        keys = jax.random.split(key, TIME_LIMIT)
        (_, finished, first_return), _ = jax.lax.scan(body, carry, keys)
        return finished, first_return

    finished, returns = jax.jit(play)(jax.random.key(7))
    assert bool(finished.all()), "the time limit ends every episode within TIME_LIMIT steps"
    return float(returns.mean())


# `make test-all`, not `make test`: about 3 minutes of CPU on 2 cores, and the default run must
# stay under 15 minutes there. The default run asserts learning on the CartPole preset
# (tests/test_learning.py); run this one before changing the conv torso, MiniPacman or its
# preset.
@pytest.mark.heavy
@pytest.mark.slow
def test_muzero_beats_the_random_policy_on_minipacman():
    """Greedy evaluation (32 episodes, 50-step limit) after 24k env steps reaches at least
    twice the random policy's mean return (512 episodes, same env params)."""
    cfg = config_lib.load(os.path.join(ROOT, "configs", "muzero", "minipacman.yaml"), OVERRIDES)
    random_return = random_policy_return(cfg)
    _, metrics = jax.jit(make_train(cfg))(jax.random.key(0))
    steps = np.asarray(metrics["env_steps"])
    evals = np.asarray(metrics["eval/episode_return"])
    done = np.isfinite(evals)
    curve = ", ".join(f"{s}: {e:.2f}" for s, e in zip(steps[done], evals[done], strict=True))
    muzero_return = float(np.max(evals[done][-2:]))
    print(f"MiniPacman: MuZero {muzero_return:.2f}, random {random_return:.2f}; curve: {curve}")
    assert muzero_return >= 2 * random_return, (
        f"MuZero {muzero_return:.2f} (best of the last two evaluations) vs random "
        f"{random_return:.2f}; curve: {curve}"
    )
