"""Wrappers that add episode statistics, auto-reset and a batch axis to any `Env`.

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


def _where(pred: jax.Array, on_true: Any, on_false: Any) -> Any:
    """Picks between two pytrees of one structure, keeping `on_false`'s dtypes."""

    def pick(a: Any, b: Any) -> jax.Array:
        b = jnp.asarray(b)
        return jnp.where(pred, a, b).astype(b.dtype)

    return jax.tree.map(pick, on_true, on_false)


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
        obs = _where(done, reset_obs, obs)
        next_state = _where(done, reset_state, next_state)
        return obs, next_state, reward, terminated, truncated, info


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
