"""A replay buffer that lives inside the compiled program.

All `N` environments write one step each per loop step, so the buffer is a set of `[N, C, ...]`
arrays (C steps per env, circular) and one shared write counter. A sample is a window of `L`
consecutive steps of one env. A window is valid when all its steps are in the buffer and were
written in order: its start is at least `L - 1` steps older than the newest step. Windows may
cross episode ends; `targets.unroll_masks` handles those, so no target mixes two episodes.

Sampling is uniform over valid windows, or prioritized (Schaul et al. 2016): probability
proportional to `priority ** alpha`, with importance weights `(M * P(i)) ** -beta`, normalised
by the batch maximum. New steps get the largest priority seen so far.
"""

from __future__ import annotations

from typing import Any

import chex
import flax.struct
import jax
import jax.numpy as jnp

PyTree = Any


@flax.struct.dataclass
class ReplayState:
    data: PyTree  # every leaf [N, C, ...]
    priority: jax.Array  # [N, C] float32
    max_priority: jax.Array  # [] float32
    num_written: jax.Array  # [] int32: steps written per env since the start


@flax.struct.dataclass
class Sample:
    data: PyTree  # every leaf [B, L, ...]
    env_index: jax.Array  # [B] int32
    start_slot: jax.Array  # [B] int32: buffer slot of the window's first step
    weight: jax.Array  # [B] float32 importance weights (1 for uniform sampling)


def init(example_step: PyTree, num_envs: int, steps_per_env: int) -> ReplayState:
    """An empty buffer shaped like `example_step` (one step of one env, unbatched)."""
    data = jax.tree.map(
        lambda x: jnp.zeros((num_envs, steps_per_env, *jnp.shape(x)), jnp.asarray(x).dtype),
        example_step,
    )
    return ReplayState(
        data=data,
        priority=jnp.zeros((num_envs, steps_per_env), jnp.float32),
        max_priority=jnp.ones((), jnp.float32),
        num_written=jnp.zeros((), jnp.int32),
    )


def capacity(state: ReplayState) -> int:
    return state.priority.shape[1]


def add(state: ReplayState, steps: PyTree) -> ReplayState:
    """Writes `T` steps of every env (leaves `[N, T, ...]`).

    The per-env capacity must be a multiple of `T` (the config checks it), so a write never
    wraps around the end of the buffer and is one `dynamic_update_slice`.
    """
    num_steps = jax.tree.leaves(steps)[0].shape[1]
    cap = capacity(state)
    if cap % num_steps:
        raise ValueError(f"capacity per env {cap} is not a multiple of the write size {num_steps}")
    slot = state.num_written % cap

    def write(buffer, new):
        start = (0, slot) + (0,) * (buffer.ndim - 2)
        return jax.lax.dynamic_update_slice(buffer, new.astype(buffer.dtype), start)

    data = jax.tree.map(write, state.data, steps)
    new_priority = jnp.full(state.priority.shape[:1] + (num_steps,), state.max_priority)
    priority = jax.lax.dynamic_update_slice(state.priority, new_priority, (0, slot))
    return state.replace(data=data, priority=priority, num_written=state.num_written + num_steps)


def num_valid_starts(state: ReplayState, window: int) -> jax.Array:
    """Valid window starts per env (0 until `window` steps have been written)."""
    oldest = jnp.maximum(state.num_written - capacity(state), 0)
    return jnp.maximum(state.num_written - window + 1 - oldest, 0)


def valid_start_mask(state: ReplayState, window: int) -> jax.Array:
    """`[C]` bool: slots where a window of `window` steps can start."""
    cap = capacity(state)
    slots = jnp.arange(cap)
    age = (state.num_written - 1 - slots) % cap  # steps since this slot was written
    return (slots < state.num_written) & (age >= window - 1)


def _gather(state: ReplayState, env_index: jax.Array, start_slot: jax.Array, window: int):
    cap = capacity(state)
    slots = (start_slot[:, None] + jnp.arange(window)[None, :]) % cap  # [B, L]
    return jax.tree.map(lambda x: x[env_index[:, None], slots], state.data)


def sample(
    state: ReplayState,
    key: chex.PRNGKey,
    batch_size: int,
    window: int,
    *,
    prioritized: bool = False,
    priority_exponent: float = 1.0,
    importance_exponent: float = 1.0,
) -> Sample:
    """Samples `batch_size` windows of `window` steps. Needs `num_valid_starts > 0`."""
    num_envs, cap = state.priority.shape
    if not prioritized:
        env_key, start_key = jax.random.split(key)
        env_index = jax.random.randint(env_key, (batch_size,), 0, num_envs)
        oldest = jnp.maximum(state.num_written - cap, 0)
        count = jnp.maximum(num_valid_starts(state, window), 1)
        offset = jax.random.randint(start_key, (batch_size,), 0, count)
        start_slot = (oldest + offset) % cap
        weight = jnp.ones((batch_size,), jnp.float32)
        return Sample(_gather(state, env_index, start_slot, window), env_index, start_slot, weight)

    valid = jnp.broadcast_to(valid_start_mask(state, window)[None, :], (num_envs, cap))
    scaled = jnp.where(valid, state.priority, 0.0) ** priority_exponent
    scaled = jnp.where(valid, scaled, 0.0).reshape(-1)
    cdf = jnp.cumsum(scaled)
    total = cdf[-1]
    # Stratified inverse-CDF sampling: one uniform draw per equal slice of the mass.
    u = (jnp.arange(batch_size) + jax.random.uniform(key, (batch_size,))) / batch_size
    flat = jnp.searchsorted(cdf, u * total, side="right")
    flat = jnp.clip(flat, 0, num_envs * cap - 1)
    env_index, start_slot = flat // cap, flat % cap
    prob = scaled[flat] / jnp.maximum(total, 1e-12)
    num_valid = jnp.maximum(jnp.sum(valid), 1)
    weight = (num_valid * jnp.maximum(prob, 1e-12)) ** (-importance_exponent)
    weight = weight / jnp.max(weight)
    return Sample(_gather(state, env_index, start_slot, window), env_index, start_slot, weight)


SYMMETRIC_KEYS = {
    "obs": "obs",
    "action": "actions",
    "policy": "action_values",
    "action_mask": "action_values",
}
"""The step fields a symmetry transforms, each with the `symmetries` method that moves it (the
other fields, rewards and values, are invariant)."""


def apply_symmetries(data: dict, symmetries: Any, key: chex.PRNGKey) -> dict:
    """Windows `data` (leaves `[B, L, ...]`) each under one random transform of `symmetries`
    (`jaxmb.envs.symmetry`): the `SYMMETRIC_KEYS` fields of a window are moved by the same
    transform, so a window stays a consistent trajectory."""
    batch_size = data["action"].shape[0]
    g = jax.random.randint(key, (batch_size,), 0, symmetries.num)

    def one(window, g):
        moved = {k: getattr(symmetries, m)(window[k], g) for k, m in SYMMETRIC_KEYS.items()}
        return {**window, **moved}

    return jax.vmap(one)(data, g)


def update_priorities(
    state: ReplayState, env_index: jax.Array, start_slot: jax.Array, priority: jax.Array
) -> ReplayState:
    """Sets the priorities of sampled windows (by their start) to `priority` `[B]`."""
    priority = jnp.maximum(priority.astype(jnp.float32), 1e-6)
    return state.replace(
        priority=state.priority.at[env_index, start_slot].set(priority),
        max_priority=jnp.maximum(state.max_priority, jnp.max(priority)),
    )
