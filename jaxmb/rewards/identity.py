"""The identity transform: the agent trains on the env's reward (the default)."""

from __future__ import annotations

import jax.numpy as jnp

from jaxmb.rewards import register


@register("identity")
class Identity:
    """No intrinsic reward. `jaxmb.rewards.make` returns None for it, so the loop computes
    nothing; the class exists for completeness (and for code that wants a transform object)."""

    def __init__(self, config=None, agent=None):
        del config, agent

    def init(self, key, obs):
        return None

    def observe(self, state, steps):
        return state

    def intrinsic(self, state, batch):
        return jnp.zeros(batch["reward"].shape, jnp.float32)

    def update(self, state, batch, key):
        return state, {}
