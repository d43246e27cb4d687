"""Evaluation inside the program: greedy episodes on envs of their own.

One-player envs report the mean return of one greedy episode per eval env. Two-player games
(`env.num_players == 2`) play the agent against a uniform random legal player, and against the
agent's params of the previous evaluation (a frozen earlier checkpoint).

With `env.eval_unseen_levels`, an env with a level range (`num_levels` training levels from
`start_level`: MiniPacman, Sokoban) is evaluated twice: on its training levels
(`eval/episode_return`) and on levels it never trains on (`eval/unseen_episode_return`: those
from `start_level + num_levels` on, see `unseen_levels`), so the generalisation gap is logged
through training.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxmb.agents.base import Agent
from jaxmb.configlib import ConfigError
from jaxmb.envs import VectorEnv

#: The largest level index: level indices are int32.
LAST_LEVEL = 2**31 - 1


def unseen_levels(env_params: Any, env_id: str = "the env") -> Any:
    """Params that draw only levels outside the training range `[start_level, start_level +
    num_levels)`: the `LAST_LEVEL - start_level - num_levels` levels after it.

    Raises:
      ConfigError: naming `env.eval_unseen_levels` for an env without a level range, or
        `env.params.num_levels` when it is 0 (training draws every level: none is unseen).
    """
    if not (hasattr(env_params, "num_levels") and hasattr(env_params, "start_level")):
        raise ConfigError(
            f"{env_id} has no level range (num_levels, start_level params) to hold levels out "
            "of; jaxmb:MiniPacman-v0 and jaxmb:Sokoban-v0 have one",
            "env.eval_unseen_levels",
        )
    num_levels, start = int(env_params.num_levels), int(env_params.start_level)
    if num_levels <= 0:
        raise ConfigError(
            "is 0: training draws from every level, so no level is unseen; set the number of "
            "training levels to evaluate on unseen ones (env.eval_unseen_levels)",
            "env.params.num_levels",
        )
    first = start + num_levels
    return env_params.replace(start_level=first, num_levels=LAST_LEVEL - first)


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

    def __init__(
        self,
        agent: Agent,
        env,
        env_params: Any,
        *,
        num_envs: int,
        max_steps: int,
        unseen_params: Any = None,
    ):
        self.agent, self.env, self.env_params = agent, env, env_params
        self.unseen_params = unseen_params  # `unseen_levels(env_params)`, or None
        self.vector_env = VectorEnv(env, num_envs)
        self.num_envs, self.max_steps = num_envs, max_steps
        self.two_player = getattr(env, "num_players", 1) == 2

    def _play(self, key, choose, env_params: Any = None) -> jax.Array:
        return play_episodes(
            self.vector_env,
            self.env_params if env_params is None else env_params,
            key,
            choose,
            num_envs=self.num_envs,
            max_steps=self.max_steps,
        )

    def evaluate(self, agent_state: Any, key: jax.Array, env_params: Any = None) -> jax.Array:
        """Mean return of one greedy episode in each eval env (with `env_params`, or the
        training ones)."""

        def choose(env_state, obs, mask, key):
            action, _ = self.agent.act(
                agent_state, obs, key, training=False, action_mask=mask, env_state=env_state
            )
            return action, jnp.ones(action.shape, jnp.float32)

        return jnp.mean(self._play(key, choose, env_params))

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
        if self.unseen_params is not None:
            return ("eval/episode_return", "eval/unseen_episode_return")
        return ("eval/episode_return",)

    def metrics(self, agent_state: Any, key: jax.Array, opponent_params: Any = None) -> dict:
        """The `eval/*` metrics of one evaluation (see `jaxmb.loop`)."""
        if not self.two_player and self.unseen_params is not None:
            train_key, unseen_key = jax.random.split(key)
            return {
                "eval/episode_return": self.evaluate(agent_state, train_key),
                "eval/unseen_episode_return": self.evaluate(
                    agent_state, unseen_key, self.unseen_params
                ),
            }
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
