"""Collection: the training envs step `rollout_steps` times, acting with the agent."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxmb.agents.base import Agent


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
):
    """`rollout_steps` steps of every env of `env` (a `VectorEnv` of `EpisodeStatistics`).

    Returns the env state and observations after the last step, the records `[N, T, ...]`
    (`record_template`'s fields), the episode statistics `(episode_done, episode_return)`
    `[T, N]`, and the other fields of `act`'s info `[T, N, ...]` (for `agent.acting_metrics`).
    """
    record_fields = tuple(agent.record_spec())

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
        stats = (env_info["episode_done"], env_info["episode_return"])
        return (env_state, next_obs), (step, stats, extra)

    keys = jax.random.split(key, rollout_steps)
    (env_state, obs), (steps, stats, infos) = jax.lax.scan(one_step, (env_state, obs), keys)
    steps = jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), steps)  # [T, N] -> [N, T]
    return env_state, obs, steps, stats, infos
