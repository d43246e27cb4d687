"""Symmetries of an environment, for data augmentation.

A symmetry is a transform `g` of observations and actions under which the env's dynamics and
rewards are unchanged: playing the transformed actions from the transformed state gives the
transformed observations and the same rewards. Go's board has eight (the dihedral group of
the square: four rotations, each with or without a mirror), and AlphaGo Zero trained on
positions with a random one of the eight applied. An env that has such transforms exposes
them as its `symmetries` attribute (see `BoardSymmetries`); `replay.augment_symmetries`
then gives each sampled training window one random transform (`jaxmb.train`).

The interface (`num`, `obs`, `actions`, `action_values`) takes the transform's index as a
traced `int32[]`, so one compiled program serves every transform.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def _dihedral(grid: np.ndarray, index: int) -> np.ndarray:
    """Transform `index` (0..7) of a square array: `index % 4` quarter turns, after a
    transpose (a mirror in the main diagonal) when `index >= 4`. 0 is the identity."""
    if index >= 4:
        grid = grid.T
    return np.rot90(grid, index % 4)


class BoardSymmetries:
    """The 8 rotations and reflections of a square `size x size` board.

    Observations are `[..., size, size, C]` (channels last); actions `0 .. size*size - 1` are
    the board's points in row-major order, and actions after them (Go's pass) are unchanged
    by every transform.

    Args:
        size: the board's side.
        num_actions: all actions, board points first (82 for 9x9 Go).
    """

    num = 8

    def __init__(self, size: int, num_actions: int):
        points = size * size
        if num_actions < points:
            raise ValueError(f"{num_actions} actions cannot cover a {size}x{size} board")
        self.size = size
        self.num_actions = num_actions
        grid = np.arange(points).reshape(size, size)
        # point_source[g, p]: the point of the original board that point p shows after g.
        point_source = np.stack([_dihedral(grid, g).reshape(-1) for g in range(self.num)])
        extra = np.arange(points, num_actions)
        source = np.concatenate(
            [point_source, np.broadcast_to(extra, (self.num, extra.size))], axis=1
        )
        image = np.argsort(source, axis=1)  # image[g, a]: where action a goes under g
        self._point_source = point_source.astype(np.int32)
        self._action_source = source.astype(np.int32)
        self._action_image = image.astype(np.int32)

    def obs(self, obs: jax.Array, g: jax.Array) -> jax.Array:
        """Observations `[..., size, size, C]` under transform `g`."""
        shape = obs.shape
        flat = obs.reshape((*shape[:-3], self.size * self.size, shape[-1]))
        flat = jnp.take(flat, jnp.asarray(self._point_source)[g], axis=-2)
        return flat.reshape(shape)

    def actions(self, action: jax.Array, g: jax.Array) -> jax.Array:
        """Actions (int, any shape) under transform `g`."""
        return jnp.asarray(self._action_image)[g][action]

    def action_values(self, values: jax.Array, g: jax.Array) -> jax.Array:
        """Per-action arrays `[..., num_actions]` (policies, legal masks, Q-values) under
        transform `g`: entry `actions(a, g)` of the result is entry `a` of `values`."""
        return jnp.take(values, jnp.asarray(self._action_source)[g], axis=-1)
