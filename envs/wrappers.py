"""Wrappers that add episode statistics, auto-reset, action repeat and a batch axis to any `Env`.

Each wrapper is itself an `Env`, so they compose: the usual stack for training is
`VectorEnv(EpisodeStatistics(env), num_envs)`, which keeps the statistics per env.
"""

from __future__ import annotations

from typing import Any

import chex
import flax
import jax
import jax.numpy as jnp

from jaxmb.envs import core


class Wrapper:
    """Forwards every part of the protocol to the wrapped env; subclasses override some.

    Args:
        env: the env to wrap.
    """

    def __init__(self, env: core.Env):
        self.env = env
        self.observation_space = env.observation_space
        self.action_space = env.action_space
        self.id = env.id

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.env!r})"

    @property
    def achievement_info_keys(self) -> dict[str, str]:
        """The wrapped env's achievements (`Env`'s optional member): every wrapper passes
        the wrapped env's `info` on, so what it reports at episode ends still reaches the
        loop. A wrapper that reports achievements of its own overrides this."""
        return core.achievement_info_keys(self.env)

    @property
    def num_actions(self) -> int:
        """Number of discrete actions of the wrapped env."""
        return self.env.num_actions

    def default_params(self) -> core.EnvParams:
        """The wrapped env's params."""
        return self.env.default_params()

    def reset(self, key: jax.Array, params: core.EnvParams) -> tuple[Any, Any]:
        """See `Env.reset`."""
        return self.env.reset(key, params)

    def step(
        self, key: jax.Array, state: Any, action: jax.Array, params: core.EnvParams
    ) -> core.StepResult:
        """See `Env.step`."""
        return self.env.step(key, state, action, params)

    def action_mask(self, state: Any, params: core.EnvParams) -> jax.Array:
        """See `Env.action_mask`."""
        return self.env.action_mask(state, params)


@flax.struct.dataclass
class EpisodeStatisticsState:
    """State of `EpisodeStatistics`; a leading `[num_envs]` axis appears under `VectorEnv`."""

    env_state: Any  # the wrapped env's state
    episode_return: jax.Array  # [] float32, undiscounted return of the running episode
    episode_length: jax.Array  # [] int32, steps taken in the running episode


class EpisodeStatistics(Wrapper):
    """Tracks the undiscounted return and length of the running episode.

    `step` adds to `info`:

    - `episode_done`: `bool[]`, `terminated | truncated`.
    - `episode_return`: `float32[]`, the return of the episode up to and including this
      step; where `episode_done` is True, the return of the episode that just ended.
    - `episode_length`: `int32[]`, the same for the number of steps.

    The wrapped env must auto-reset (gymnax envs do; otherwise wrap it in `AutoReset`
    first), because the counters restart whenever an episode ends.
    """

    def reset(self, key: jax.Array, params: core.EnvParams) -> tuple[Any, EpisodeStatisticsState]:
        """See `Env.reset`; the counters start at zero."""
        obs, env_state = self.env.reset(key, params)
        state = EpisodeStatisticsState(
            env_state=env_state,
            episode_return=jnp.zeros((), jnp.float32),
            episode_length=jnp.zeros((), jnp.int32),
        )
        return obs, state

    def step(
        self,
        key: jax.Array,
        state: EpisodeStatisticsState,
        action: jax.Array,
        params: core.EnvParams,
    ) -> core.StepResult:
        """See `Env.step`; `info` gains `episode_done`, `episode_return`, `episode_length`."""
        obs, env_state, reward, terminated, truncated, info = self.env.step(
            key, state.env_state, action, params
        )
        done = jnp.logical_or(terminated, truncated)
        episode_return = state.episode_return + jnp.asarray(reward, jnp.float32)
        episode_length = state.episode_length + 1
        info = {
            **info,
            "episode_done": done,
            "episode_return": episode_return,
            "episode_length": episode_length,
        }
        state = EpisodeStatisticsState(
            env_state=env_state,
            episode_return=jnp.where(done, 0.0, episode_return).astype(jnp.float32),
            episode_length=jnp.where(done, 0, episode_length).astype(jnp.int32),
        )
        return obs, state, reward, terminated, truncated, info

    def action_mask(self, state: EpisodeStatisticsState, params: core.EnvParams) -> jax.Array:
        """See `Env.action_mask`."""
        return self.env.action_mask(state.env_state, params)


class AutoReset(Wrapper):
    """Starts a new episode inside `step` for envs whose `step` does not.

    The key is split in two: one half steps the wrapped env, the other resets it. Both
    branches are computed and one is selected, as a jitted program cannot branch on data.
    `info["final_observation"]` is the observation the wrapped env returned, which the
    reset observation replaces when `terminated | truncated`.
    """

    def step(
        self, key: jax.Array, state: Any, action: jax.Array, params: core.EnvParams
    ) -> core.StepResult:
        """See `Env.step`."""
        key_step, key_reset = jax.random.split(key)
        obs, next_state, reward, terminated, truncated, info = self.env.step(
            key_step, state, action, params
        )
        reset_obs, reset_state = self.env.reset(key_reset, params)
        done = jnp.logical_or(terminated, truncated)
        info = {**info, "final_observation": obs}
        obs = core.tree_where(done, reset_obs, obs)
        next_state = core.tree_where(done, reset_state, next_state)
        return obs, next_state, reward, terminated, truncated, info


class ActionRepeat(Wrapper):
    """Repeats each action for `repeat` steps of the wrapped env and sums the rewards.

    This is the action repeat (frame skip) of DM Control and Atari agents: one agent
    decision becomes up to `repeat` env steps. It makes random exploration travel further
    (uniform random actions on gymnax Acrobot-v1 reach the goal within the 500-step limit in
    2% of episodes; held for 4 steps, in 44%), and it divides the search's cost per env step
    by `repeat`.

    The repeat stops where an episode ends: the step that terminates or truncates is the last
    one taken, and the call returns that step's observation and state (already those of
    the next episode, as the wrapped env auto-resets) and its `terminated`, `truncated` and
    `info` (so `final_observation` is the last observation of the episode that ended). The
    reward is the sum over the steps taken. A jitted program cannot stop a loop per batch
    member, so the remaining steps of such a call are computed and discarded: a call always
    costs `repeat` wrapped steps.

    `info` is the info of the last step taken, with `action_repeat_steps` (`int32[]`, the
    number of env steps taken: `repeat`, or fewer where an episode ended) added. The action
    is held even if the wrapped env's mask would forbid it part-way through, so use it with
    envs whose every action is always legal. Two-player envs are refused: each of their
    steps is a ply of the other player.

    Args:
        env: the env to wrap; it must auto-reset.
        repeat: env steps per action, at least 1 (1 leaves the env unchanged).

    Raises:
        ValueError: for `repeat < 1` or a two-player env.
    """

    def __init__(self, env: core.Env, repeat: int):
        super().__init__(env)
        if int(repeat) != repeat or repeat < 1:
            raise ValueError(f"action repeat must be a positive integer, got {repeat!r}")
        if getattr(env, "num_players", 1) > 1:
            raise ValueError(
                f"{env.id} is a two-player game, where every step is the other player's "
                "ply; action repeat does not apply"
            )
        self.repeat = int(repeat)

    def __repr__(self) -> str:
        return f"ActionRepeat({self.env!r}, repeat={self.repeat})"

    def step(
        self, key: jax.Array, state: Any, action: jax.Array, params: core.EnvParams
    ) -> core.StepResult:
        """See `Env.step`; the reward is summed over up to `repeat` env steps."""
        keys = jax.random.split(key, self.repeat)
        obs, state, reward, terminated, truncated, info = self.env.step(
            keys[0], state, action, params
        )
        first = (obs, state, jnp.asarray(reward, jnp.float32), terminated, truncated, info)
        carry = (*first, jnp.ones((), jnp.int32))

        def body(carry, key):
            obs, state, reward, terminated, truncated, info, taken = carry
            ended = jnp.logical_or(terminated, truncated)
            n_obs, n_state, n_reward, n_terminated, n_truncated, n_info = self.env.step(
                key, state, action, params
            )
            stepped = (
                n_obs,
                n_state,
                reward + jnp.asarray(n_reward, jnp.float32),
                n_terminated,
                n_truncated,
                n_info,
                taken + 1,
            )
            return core.tree_where(ended, carry, stepped), None

        carry, _ = jax.lax.scan(body, carry, keys[1:])
        obs, state, reward, terminated, truncated, info, taken = carry
        return obs, state, reward, terminated, truncated, {**info, "action_repeat_steps": taken}


class VectorEnv(Wrapper):
    """Runs `num_envs` copies of an env side by side on a leading batch axis.

    Unlike Gymnasium's vector envs, `observation_space` and `action_space` describe ONE
    env (what a network's input and output are built from); `single_observation_space`
    and `single_action_space` are the same objects under Gymnasium's names. Batched
    arrays have shape `[num_envs, *space.shape]`.

    Args:
        env: the env to batch; it must auto-reset, since each copy ends at its own time.
        num_envs: size of the batch axis.
        batch_params: if True, params carry a leading `[num_envs]` axis (one setting per
            copy, e.g. for domain randomisation); by default all copies share one params
            pytree.
    """

    def __init__(self, env: core.Env, num_envs: int, *, batch_params: bool = False):
        super().__init__(env)
        if num_envs < 1:
            raise ValueError(f"num_envs must be at least 1, got {num_envs}")
        self.num_envs = num_envs
        self.batch_params = batch_params
        self.single_observation_space = env.observation_space
        self.single_action_space = env.action_space
        self._params_axis = 0 if batch_params else None

    def __repr__(self) -> str:
        return f"VectorEnv({self.env!r}, num_envs={self.num_envs})"

    def default_params(self) -> core.EnvParams:
        """The wrapped env's params, repeated `num_envs` times when `batch_params`."""
        params = self.env.default_params()
        if not self.batch_params:
            return params
        return jax.tree.map(lambda x: jnp.broadcast_to(x, (self.num_envs, *jnp.shape(x))), params)

    def reset(self, key: jax.Array, params: core.EnvParams) -> tuple[Any, Any]:
        """Resets every copy with its own key.

        Returns:
            `(obs[num_envs, ...], state)` with a leading `[num_envs]` axis on every leaf.
        """
        keys = jax.random.split(key, self.num_envs)
        return jax.vmap(self.env.reset, in_axes=(0, self._params_axis))(keys, params)

    def step(
        self, key: jax.Array, state: Any, action: jax.Array, params: core.EnvParams
    ) -> core.StepResult:
        """Steps every copy with its own key.

        Args:
            key: one PRNG key, split into `num_envs`.
            state: batched state from `reset` or `step`.
            action: `[num_envs, *action_space.shape]`.
            params: shared params, or batched ones when `batch_params`.

        Returns:
            The `Env.step` tuple with a leading `[num_envs]` axis on every leaf; `reward`
            is `float32[num_envs]`, `terminated` and `truncated` are `bool[num_envs]`.
        """
        chex.assert_shape(action, (self.num_envs, *self.action_space.shape))
        keys = jax.random.split(key, self.num_envs)
        return jax.vmap(self.env.step, in_axes=(0, 0, 0, self._params_axis))(
            keys, state, action, params
        )

    def action_mask(self, state: Any, params: core.EnvParams) -> jax.Array:
        """Returns `bool[num_envs, num_actions]`."""
        return jax.vmap(self.env.action_mask, in_axes=(0, self._params_axis))(state, params)
