"""Learning: SGD updates on sampled windows, behind the NaN guard.

The guard: an update whose guarded metrics (`agent.guarded_metrics`: the loss terms and the
gradient norm) are not all finite is not applied, and once the guard says halted, no later
update is either. `TrainState.halted`, `nan_update` (the first bad update) and `nan_terms`
(a bit per guarded metric) record it, and `check_finite` turns it into an error.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxmb import replay as replay_lib
from jaxmb import rewards as rewards_lib
from jaxmb.agents.base import Agent

#: `(halted [] bool, nan_update [] int32, nan_terms [] int32)`.
Guard = tuple[jax.Array, jax.Array, jax.Array]


def learn(
    agent: Agent,
    agent_state: Any,
    replay: replay_lib.ReplayState,
    key: jax.Array,
    guard: Guard,
    *,
    replay_config,
    num_updates: int,
    symmetries=None,
    transform=None,
    reward_state: Any = None,
    reward_config=None,
    env_steps: jax.Array | None = None,
):
    """`num_updates` SGD updates, each on a fresh sample of `agent.window`-step windows.

    Windows are sampled uniformly or by priority (`replay_config`), shown under a random
    symmetry of the env (`symmetries`, if given), and their rewards mixed by the reward
    `transform` (if given; see `jaxmb.rewards`), which is updated with each SGD update.

    Returns the agent state, the replay (new priorities), the updates' mean metrics, the new
    guard and the transform's state.
    """
    cfg = replay_config
    names = agent.guarded_metrics

    def one_update(carry, update_key):
        agent_state, reward_state, replay, guard = carry
        halted, nan_update, nan_terms = guard
        sample_key, update_key = jax.random.split(update_key)
        sample = replay_lib.sample(
            replay,
            sample_key,
            cfg.batch_size,
            agent.window,
            prioritized=cfg.prioritized,
            priority_exponent=cfg.priority_exponent,
            importance_exponent=cfg.importance_exponent,
        )
        data = sample.data
        if symmetries is not None:
            update_key, augment_key = jax.random.split(update_key)
            data = replay_lib.apply_symmetries(data, symmetries, augment_key)
        reward_metrics = {}
        new_reward_state = reward_state
        if transform is not None:
            update_key, reward_key = jax.random.split(update_key)
            if rewards_lib.needs_latent(transform):
                latent = agent.represent(agent_state.params, data["obs"])
                data = dict(data, latent=jax.lax.stop_gradient(latent))
            new_reward_state, transform_metrics = transform.update(reward_state, data, reward_key)
            data, reward_metrics = rewards_lib.apply(
                transform, reward_state, data, reward_config, env_steps
            )
            reward_metrics.update(transform_metrics)
        data.pop("latent", None)
        batch = dict(data, weight=sample.weight)
        new_state, metrics = agent.update(agent_state, batch, update_key)
        priority = metrics.pop("priority", None)
        metrics.update(reward_metrics)
        bad = jnp.stack([~jnp.isfinite(metrics[name]) for name in names])
        ok = ~jnp.any(bad) & ~halted
        first_bad = ~ok & ~halted
        nan_update = jnp.where(first_bad, new_state.num_updates, nan_update)
        nan_terms = jnp.where(
            first_bad, jnp.sum(bad.astype(jnp.int32) << jnp.arange(len(names))), nan_terms
        )
        keep = lambda new, old: jax.tree.map(lambda n, o: jnp.where(ok, n, o), new, old)  # noqa: E731
        agent_state = keep(new_state, agent_state)
        reward_state = keep(new_reward_state, reward_state)
        if cfg.prioritized:
            if priority is None:
                raise ValueError(f"replay.prioritized: agent {agent.kind} reports no priority")
            updated = replay_lib.update_priorities(
                replay, sample.env_index, sample.start_slot, priority
            )
            replay = keep(updated, replay)
        return (agent_state, reward_state, replay, (halted | ~ok, nan_update, nan_terms)), metrics

    keys = jax.random.split(key, num_updates)
    (agent_state, reward_state, replay, guard), metrics = jax.lax.scan(
        one_update, (agent_state, reward_state, replay, guard), keys
    )
    return agent_state, replay, jax.tree.map(jnp.mean, metrics), guard, reward_state


class NonFiniteLossError(FloatingPointError):
    """Training stopped because a loss term or the gradient norm was not finite."""


def check_finite(guarded_metrics: tuple[str, ...], state) -> None:
    """Raises `NonFiniteLossError` naming the SGD update and the loss terms if the NaN guard
    halted any seed of `state` (a `TrainState`, single or seed-batched)."""
    halted = jax.device_get(state.halted).reshape(-1)
    if not halted.any():
        return
    updates = jax.device_get(state.nan_update).reshape(-1)
    bits = jax.device_get(state.nan_terms).reshape(-1)
    lines = []
    for seed in map(int, halted.nonzero()[0]):
        terms = [
            name.removeprefix("loss/")
            for i, name in enumerate(guarded_metrics)
            if int(bits[seed]) >> i & 1
        ]
        lines.append(f"seed {seed}: SGD update {int(updates[seed])}, non-finite {', '.join(terms)}")
    raise NonFiniteLossError(
        "non-finite loss; training stopped before applying it ("
        + "; ".join(lines)
        + "). The parameters and checkpoints keep the last finite update."
    )
