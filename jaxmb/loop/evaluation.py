"""Evaluation inside the program: greedy episodes on envs of their own.

One-player envs report the mean return of one greedy episode per eval env. Two-player games
(`env.num_players == 2`) play the agent against a uniform random legal player, and against the
agent's params of the previous evaluation (a frozen earlier checkpoint).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxmb.agents.base import Agent
from jaxmb.envs import VectorEnv


def play_episodes(
    env, env_params: Any, key: jax.Array, choose, *, num_envs: int, max_steps: int
) -> jax.Array:
    """One episode in each of the `num_envs` envs of `env` (a `VectorEnv`), capped at
    `max_steps` steps.

    `choose(env_state, obs, mask, key) -> (actions [N], credit [N])` picks the actions; each
    step's reward is added to an env's total times its `credit` (1 for one player; +1 or -1 in
    a two-player game, by whose move it was). Returns the totals `[N]`.
    """
    reset_key, key = jax.random.split(key)
    obs, env_state = env.reset(reset_key, env_params)

    def cond(carry):
        t, _, _, _, finished, _ = carry
        return (t < max_steps) & ~jnp.all(finished)

    def body(carry):
        t, env_state, obs, totals, finished, key = carry
        key, act_key, env_key = jax.random.split(key, 3)
        mask = env.action_mask(env_state, env_params)
        action, credit = choose(env_state, obs, mask, act_key)
        obs, env_state, reward, terminated, truncated, _ = env.step(
            env_key, env_state, action, env_params
        )
        totals = totals + jnp.where(finished, 0.0, credit * reward)
        finished = finished | terminated | truncated
        return t + 1, env_state, obs, totals, finished, key

    carry = (
        jnp.zeros((), jnp.int32),
        env_state,
        obs,
        jnp.zeros((num_envs,), jnp.float32),
        jnp.zeros((num_envs,), bool),
        key,
    )
    return jax.lax.while_loop(cond, body, carry)[3]


class Evaluator:
    """The evaluation of `agent` on `num_envs` copies of `env` (one episode each)."""

    def __init__(self, agent: Agent, env, env_params: Any, *, num_envs: int, max_steps: int):
        self.agent, self.env, self.env_params = agent, env, env_params
        self.vector_env = VectorEnv(env, num_envs)
        self.num_envs, self.max_steps = num_envs, max_steps
        self.two_player = getattr(env, "num_players", 1) == 2

    def _play(self, key, choose) -> jax.Array:
        return play_episodes(
            self.vector_env,
            self.env_params,
            key,
            choose,
            num_envs=self.num_envs,
            max_steps=self.max_steps,
        )

    def evaluate(self, agent_state: Any, key: jax.Array) -> jax.Array:
        """Mean return of one greedy episode in each eval env."""

        def choose(env_state, obs, mask, key):
            action, _ = self.agent.act(
                agent_state, obs, key, training=False, action_mask=mask, env_state=env_state
            )
            return action, jnp.ones(action.shape, jnp.float32)

        return jnp.mean(self._play(key, choose))

    def evaluate_two_player(
        self, agent_state: Any, key: jax.Array, opponent_params: Any | None = None
    ) -> tuple[jax.Array, jax.Array]:
        """Games of the agent against a uniform random legal player (`opponent_params`
        None; the agent acts greedily) or against the agent with `opponent_params` (both
        sides act as when training, so that the games differ). The agent is player id 0,
        which pgx gives black or white at random.

        Returns the agent's mean outcome (+1 win, -1 loss, 0 unfinished) and win rate over
        the eval envs' games.
        """
        to_play = jax.vmap(self.env.to_play)
        against_random = opponent_params is None

        def choose(env_state, obs, mask, key):
            agent_key, other_key = jax.random.split(key)
            mover = to_play(env_state)
            mine, _ = self.agent.act(
                agent_state,
                obs,
                agent_key,
                training=not against_random,
                action_mask=mask,
                env_state=env_state,
            )
            if against_random:
                theirs = jax.random.categorical(other_key, jnp.where(mask, 0.0, -jnp.inf))
            else:
                opponent = agent_state.replace(params=opponent_params)
                theirs, _ = self.agent.act(
                    opponent, obs, other_key, training=True, action_mask=mask, env_state=env_state
                )
            # Rewards are the mover's: the agent's outcome is minus the opponent's reward.
            return jnp.where(mover == 0, mine, theirs), jnp.where(mover == 0, 1.0, -1.0)

        outcome = self._play(key, choose)
        return jnp.mean(outcome), jnp.mean((outcome > 0).astype(jnp.float32))

    @property
    def metric_names(self) -> tuple[str, ...]:
        """The keys `metrics` returns (each a float32 scalar)."""
        if self.two_player:
            return ("eval/episode_return", "eval/win_rate", "eval/win_rate_previous")
        return ("eval/episode_return",)

    def metrics(self, agent_state: Any, key: jax.Array, opponent_params: Any = None) -> dict:
        """The `eval/*` metrics of one evaluation (see `jaxmb.loop`)."""
        if not self.two_player:
            return {"eval/episode_return": self.evaluate(agent_state, key)}
        random_key, previous_key = jax.random.split(key)
        outcome, win_rate = self.evaluate_two_player(agent_state, random_key)
        _, win_rate_previous = self.evaluate_two_player(agent_state, previous_key, opponent_params)
        return {
            "eval/episode_return": outcome,
            "eval/win_rate": win_rate,
            "eval/win_rate_previous": win_rate_previous,
        }
