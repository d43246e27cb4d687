"""A count-based novelty bonus, for small and tabular envs: `r_i = 1 / sqrt(n(phi(s)))`.

Observations are counted in `2^k` buckets. `phi` is SimHash (Tang et al. 2017, "#Exploration"):
the signs of `k` fixed Gaussian projections of the flattened observation, read as a k-bit
integer. With few distinct observations and enough bits every state gets its own bucket, so
this is an exact visit count on a tabular env. The counts grow with each iteration's newly
collected observations (`observe`); sampled windows read them (`intrinsic`), and step t's reward
is the novelty of the observation it led to (`jaxmb.rewards.next_step_novelty`). Nothing is
trained, so `update` does nothing.
"""

from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp

from jaxmb.rewards import next_step_novelty, register


@flax.struct.dataclass
class CountState:
    projection: jax.Array  # [obs_size, k] fixed Gaussian projections
    counts: jax.Array  # [2^k] int32 visits per bucket


@register("count")
class CountBonus:
    def __init__(self, config, agent=None):
        del agent
        self.bits = config.reward.count.hash_bits

    def init(self, key: jax.Array, obs: jax.Array) -> CountState:
        size = obs.size
        return CountState(
            projection=jax.random.normal(key, (size, self.bits), jnp.float32),
            counts=jnp.zeros((2**self.bits,), jnp.int32),
        )

    def bucket(self, state: CountState, obs: jax.Array) -> jax.Array:
        """Bucket indices `[...]` of observations `[..., *obs_shape]`."""
        size = state.projection.shape[0]
        flat = obs.reshape((*obs.shape[: obs.ndim - self._obs_ndim(obs, size)], size))
        bits = (flat.astype(jnp.float32) @ state.projection) > 0
        return jnp.sum(bits.astype(jnp.int32) << jnp.arange(self.bits), axis=-1)

    @staticmethod
    def _obs_ndim(obs: jax.Array, size: int) -> int:
        # The trailing axes whose product is the observation size.
        total = 1
        for ndim in range(1, obs.ndim + 1):
            total *= obs.shape[-ndim]
            if total == size:
                return ndim
        raise ValueError(f"observations {obs.shape} do not end in a shape of size {size}")

    def observe(self, state: CountState, steps: dict) -> CountState:
        buckets = self.bucket(state, steps["obs"]).reshape(-1)
        return state.replace(counts=state.counts.at[buckets].add(1))

    def novelty(self, state: CountState, obs: jax.Array) -> jax.Array:
        counts = state.counts[self.bucket(state, obs)]
        return jax.lax.rsqrt(jnp.maximum(counts, 1).astype(jnp.float32))

    def intrinsic(self, state: CountState, batch: dict) -> jax.Array:
        return next_step_novelty(self.novelty(state, batch["obs"]), batch)

    def update(self, state: CountState, batch: dict, key: jax.Array):
        return state, {}
