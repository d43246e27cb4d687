"""The train state of the compiled loop, and its layout when seeds are batched."""

from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp

from jaxmb import replay as replay_lib


@flax.struct.dataclass
class TrainState:
    agent: Any  # the agent's state (`Agent.init`): params, optimiser, target params, ...
    replay: replay_lib.ReplayState
    env_state: Any  # batched env state [N, ...]
    obs: jax.Array  # [N, *obs_shape]
    key: jax.Array
    iteration: jax.Array  # [] int32: iterations done
    last_train_return: jax.Array  # [] float32, carried for progress reports
    last_eval_return: jax.Array  # [] float32
    history: dict  # metric name -> [num_iterations], filled as iterations run
    halted: jax.Array  # [] bool: a non-finite loss or gradient stopped learning
    nan_update: jax.Array  # [] int32: the SGD update that was non-finite (-1: none)
    nan_terms: jax.Array  # [] int32: bit i set if `agent.guarded_metrics[i]` was non-finite
    # Two-player envs: the params of the last evaluation, the "previous checkpoint" opponent
    # (None for one-player envs).
    opponent_params: Any = None
    # The reward transform's state (`jaxmb.rewards`; None for the identity).
    reward: Any = None


def missing(dtype) -> float | int:
    """The history's value for iterations not run yet: NaN, or -1 for integer metrics."""
    return jnp.nan if jnp.issubdtype(dtype, jnp.floating) else -1


def nanmean_where(values: jax.Array, mask: jax.Array) -> jax.Array:
    count = jnp.sum(mask)
    total = jnp.sum(jnp.where(mask, values, 0.0))
    return jnp.where(count > 0, total / jnp.maximum(count, 1), jnp.nan)


def seed_axes(state: TrainState) -> TrainState:
    """vmap axes of a seed-batched `TrainState`: 0 everywhere but the shared counters."""
    axes = jax.tree.map(lambda _: 0, state)
    return axes.replace(iteration=None, replay=axes.replay.replace(num_written=None))


def with_seed_axis(state: TrainState) -> TrainState:
    """One seed's state as a seed-batched state of one member (`seed_axes` layout)."""
    return map_seed_leaves(lambda x: x[None], state)


def without_seed_axis(state: TrainState) -> TrainState:
    """The inverse of `with_seed_axis`."""
    return map_seed_leaves(lambda x: x[0], state)


def map_seed_leaves(fn, state: TrainState) -> TrainState:
    """`fn` on every leaf with a seed axis in `seed_axes`; the shared counters stay."""
    return jax.tree.map(
        lambda axis, x: x if axis is None else fn(x),
        seed_axes(state),
        state,
        is_leaf=lambda axis: axis is None,
    )
