"""Scalar <-> categorical conversions for value and reward heads.

MuZero predicts values and rewards as categorical distributions over a fixed support. Targets
are squashed with the invertible transform of Pohlen et al. (2018),

    h(x) = sign(x) * (sqrt(|x| + 1) - 1) + eps * x,

then projected onto the support by splitting the mass between the two nearest atoms. The
support therefore lives on the *transformed* scale: 601 atoms on [-300, 300] cover raw values up
to about 9e4. Functions here are pure and work on any leading batch shape.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

DEFAULT_EPS = 1e-3


def h_transform(x: jax.Array, eps: float = DEFAULT_EPS) -> jax.Array:
    """The value-squashing transform h(x) = sign(x)(sqrt(|x|+1)-1) + eps x."""
    return jnp.sign(x) * (jnp.sqrt(jnp.abs(x) + 1.0) - 1.0) + eps * x


def h_inverse(y: jax.Array, eps: float = DEFAULT_EPS) -> jax.Array:
    """Exact inverse of `h_transform` (closed form from Pohlen et al. 2018, Prop. A.2)."""
    inner = jnp.sqrt(1.0 + 4.0 * eps * (jnp.abs(y) + 1.0 + eps)) - 1.0
    return jnp.sign(y) * ((inner / (2.0 * eps)) ** 2 - 1.0)


@dataclasses.dataclass(frozen=True)
class Support:
    """An evenly spaced categorical support on the transformed scale.

    Attributes:
      num_atoms: number of atoms (bins).
      vmin: first atom, on the transformed scale.
      vmax: last atom, on the transformed scale.
      eps: the eps of the h transform; 0 disables the transform's linear term. `use_transform`
        False means targets are projected as they are (no squashing).
    """

    num_atoms: int
    vmin: float
    vmax: float
    eps: float = DEFAULT_EPS
    use_transform: bool = True

    @property
    def atoms(self) -> jax.Array:
        return jnp.linspace(self.vmin, self.vmax, self.num_atoms, dtype=jnp.float32)

    @property
    def delta(self) -> float:
        return (self.vmax - self.vmin) / (self.num_atoms - 1)

    def squash(self, x: jax.Array) -> jax.Array:
        return h_transform(x, self.eps) if self.use_transform else x

    def unsquash(self, y: jax.Array) -> jax.Array:
        return h_inverse(y, self.eps) if self.use_transform else y

    def scalar_to_probs(self, x: jax.Array) -> jax.Array:
        """Two-hot projection of raw scalars. `[...]` -> `[..., num_atoms]`.

        The squashed value is clipped to [vmin, vmax]; its mass goes to the two nearest atoms in
        proportion to closeness, so `probs @ atoms` equals the (clipped) squashed value exactly.
        """
        y = jnp.clip(self.squash(x.astype(jnp.float32)), self.vmin, self.vmax)
        position = (y - self.vmin) / self.delta
        lower = jnp.clip(jnp.floor(position), 0, self.num_atoms - 1)
        upper_weight = position - lower
        lower_idx = lower.astype(jnp.int32)
        upper_idx = jnp.minimum(lower_idx + 1, self.num_atoms - 1)
        probs = jax.nn.one_hot(lower_idx, self.num_atoms) * (1.0 - upper_weight)[..., None]
        probs = probs + jax.nn.one_hot(upper_idx, self.num_atoms) * upper_weight[..., None]
        return probs

    def probs_to_scalar(self, probs: jax.Array) -> jax.Array:
        """Expected squashed value, unsquashed. `[..., num_atoms]` -> `[...]`."""
        return self.unsquash(jnp.sum(probs * self.atoms, axis=-1))

    def logits_to_scalar(self, logits: jax.Array) -> jax.Array:
        """`[..., num_atoms]` logits -> `[...]` raw scalars."""
        return self.probs_to_scalar(jax.nn.softmax(logits, axis=-1))
