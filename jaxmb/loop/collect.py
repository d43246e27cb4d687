"""Collection: the training envs step `rollout_steps` times, acting with the agent."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxmb.agents.base import Agent
from jaxmb.envs import core

#: Where an iteration's count of ended episodes that unlocked an achievement is logged:
#: `train/achievements/<name>`, for the names of the env's `achievement_info_keys`.
ACHIEVEMENT_METRIC_PREFIX = "train/achievements/"


def achievement_metric(name: str) -> str:
    """The metric that counts the ended episodes that unlocked achievement `name`."""
    return ACHIEVEMENT_METRIC_PREFIX + name


def record_template(agent: Agent, obs: jax.Array) -> dict:
    """Zeros shaped like one replay record (`jaxmb.agents.base`), for observations
    `obs [N, ...]`."""
    num_actions = agent.num_actions
    record = {
        "obs": obs[0],
        "action": jnp.zeros((), jnp.int32),
        "reward": jnp.zeros((), jnp.float32),
        "terminated": jnp.zeros((), bool),
        "truncated": jnp.zeros((), bool),
        "final_value": jnp.zeros((), jnp.float32),
        "action_mask": jnp.ones((num_actions,), bool),
    }
    for name, spec in agent.record_spec().items():
        record[name] = jnp.zeros(spec.shape, spec.dtype)
    return record


def collect(
    agent: Agent,
    env,
    env_params: Any,
    agent_state: Any,
    env_state: Any,
    obs: jax.Array,
    key: jax.Array,
    *,
    rollout_steps: int,
    random_action_prob: Any = None,
):
    """`rollout_steps` steps of every env of `env` (a `VectorEnv` of `EpisodeStatistics`).

    Returns the env state and observations after the last step, the records `[N, T, ...]`
    (`record_template`'s fields), the episode statistics `(episode_done, episode_return,
    unlocked)` `[T, N]`, and the other fields of `act`'s info `[T, N, ...]` (for
    `agent.acting_metrics`). `unlocked` maps each name of the env's `achievement_info_keys`
    (`jaxmb.envs.core.Env`) to `bool[T, N]`: an episode ended at that step having unlocked
    the achievement; it is empty for an env that declares none. With `random_action_prob`
    (`train.random_action_prob`; None: never), each step's action is replaced by a uniformly
    random legal one with that chance.
    """
    record_fields = tuple(agent.record_spec())
    achievements = core.achievement_info_keys(env)

    def one_step(carry, step_key):
        env_state, obs = carry
        act_key, env_key = jax.random.split(step_key)
        mask = env.action_mask(env_state, env_params)
        action, info = agent.act(
            agent_state,
            obs,
            act_key,
            training=True,
            action_mask=mask,
            env_state=env_state.env_state,  # under EpisodeStatistics: the env's own
        )
        if random_action_prob is not None:
            # A uniformly random legal action in place of the agent's, with this chance; keys
            # of their own, so the agent's and the env's draws are those of a run without.
            coin_key, pick_key = jax.random.split(jax.random.fold_in(step_key, 1))
            uniform = jax.random.categorical(pick_key, jnp.where(mask, 0.0, -jnp.inf))
            take = jax.random.uniform(coin_key, action.shape) < random_action_prob
            action = jnp.where(take, uniform.astype(action.dtype), action)
        next_obs, env_state, reward, terminated, truncated, env_info = env.step(
            env_key, env_state, action, env_params
        )
        # Value of the observation a time limit cut off: the truncation bootstrap.
        final_value = agent.bootstrap_value(agent_state, env_info["final_observation"])
        step = {
            "obs": obs,
            "action": action.astype(jnp.int32),
            "reward": reward.astype(jnp.float32),
            "terminated": terminated,
            "truncated": truncated,
            "final_value": final_value,
            "action_mask": mask,
            **{name: info[name] for name in record_fields},
        }
        extra = {k: v for k, v in info.items() if k not in record_fields}
        done = env_info["episode_done"]
        # Envs report achievements on the step an episode ends; other steps are not read.
        unlocked = {name: done & (env_info[key] > 0) for name, key in achievements.items()}
        stats = (done, env_info["episode_return"], unlocked)
        return (env_state, next_obs), (step, stats, extra)

    keys = jax.random.split(key, rollout_steps)
    (env_state, obs), (steps, stats, infos) = jax.lax.scan(one_step, (env_state, obs), keys)
    steps = jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), steps)  # [T, N] -> [N, T]
    return env_state, obs, steps, stats, infos
