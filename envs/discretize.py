"""Discrete actions for continuous-control envs, so that MuZero's search can enumerate them.

`Discretize` turns a `Box` action space into `Discrete(n)` through a fixed table of `n`
continuous actions (`.codebook`, `[n, dim]`); `step` looks the integer action up and
forwards the vector. Two ways to build the table:

- `mode="grid"`: `values_per_dim` evenly spaced values in `[low, high]` on every
  dimension, and every combination of them (the Cartesian product), so
  `n = values_per_dim ** dim`. Acrobot (1 dim) with 5 values has 5 actions; Cheetah
  (6 dims) with 3 values has 3**6 = 729. The first dimension varies slowest. An odd
  `values_per_dim` includes the centre of the range (0 for [-1, 1]). Grids above
  `max_actions` (default 4096) raise: Humanoid's 21 dims would give 3**21 = 10,460,353.
- `mode="codebook"`: the centre action plus, for each dimension alone, a push up and a push
  down: `n = 2 * dim + 1` (Cheetah 13, Humanoid 21 dims -> 43). `push` is a fraction of the
  half-range, so on [-1, 1] the rows are 0 and +-push on one dimension. Row 0 is the centre,
  then rows `2i + 1` and `2i + 2` push dimension `i` up and down. A `codebook` array
  `[n, dim]` given instead is used as is (after a bounds check).

Search sees every action as legal: `action_mask` is all True.
"""

from __future__ import annotations

import itertools
from typing import Any

import chex
import gymnasium
import jax
import jax.numpy as jnp
import numpy as np

from jaxmb.envs import core
from jaxmb.envs.wrappers import Wrapper

DEFAULT_MAX_ACTIONS = 4096
"""Largest joint action count `Discretize` builds unless told otherwise."""


def grid_codebook(low: np.ndarray, high: np.ndarray, values_per_dim: int) -> np.ndarray:
    """All combinations of `values_per_dim` evenly spaced values per dimension.

    Args:
        low: `[dim]` lower bounds.
        high: `[dim]` upper bounds.
        values_per_dim: values on each dimension, at least 2 (both bounds included).

    Returns:
        `float32[values_per_dim ** dim, dim]`, the first dimension varying slowest.
    """
    per_dim = [np.linspace(lo, hi, values_per_dim) for lo, hi in zip(low, high, strict=True)]
    return np.asarray(list(itertools.product(*per_dim)), np.float32).reshape(-1, len(low))


def push_codebook(low: np.ndarray, high: np.ndarray, push: float) -> np.ndarray:
    """The centre action and a push up and down on each dimension alone.

    Args:
        low: `[dim]` lower bounds.
        high: `[dim]` upper bounds.
        push: in (0, 1], the fraction of each half-range a push moves.

    Returns:
        `float32[2 * dim + 1, dim]`: row 0 the centre, rows `2i + 1` / `2i + 2` the
        centre plus / minus `push * (high - low) / 2` on dimension `i`.
    """
    centre = (low + high) / 2.0
    half_range = (high - low) / 2.0
    dim = len(low)
    table = np.tile(centre, (2 * dim + 1, 1))
    for i in range(dim):
        table[2 * i + 1, i] += push * half_range[i]
        table[2 * i + 2, i] -= push * half_range[i]
    return table.astype(np.float32)


def _box_bounds(space: gymnasium.spaces.Space) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(space, gymnasium.spaces.Box) or len(space.shape) != 1:
        raise TypeError(f"Discretize needs a 1-D Box action space, got {space!r}")
    low = np.asarray(space.low, np.float64)
    high = np.asarray(space.high, np.float64)
    if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
        raise ValueError(f"Discretize needs finite action bounds, got {space!r}")
    return low, high


class Discretize(Wrapper):
    """Gives a continuous-action env `Discrete(n)` actions (see the module docstring).

    Args:
        env: an env with a 1-D, bounded `Box` action space.
        mode: `"grid"` or `"codebook"`.
        values_per_dim: grid mode: values on each dimension (>= 2).
        push: codebook mode: fraction of the half-range each push moves, in (0, 1].
        codebook: codebook mode: an explicit `[n, dim]` table, used instead of `push`.
        max_actions: grid mode: the largest `values_per_dim ** dim` allowed.

    Raises:
        TypeError: for an action space that is not a 1-D Box.
        ValueError: for a grid above `max_actions`, bad `values_per_dim`, `push` or
            `mode`, or a `codebook` of the wrong shape or outside the bounds.
    """

    def __init__(
        self,
        env: core.Env,
        mode: str = "grid",
        *,
        values_per_dim: int = 3,
        push: float = 1.0,
        codebook: Any = None,
        max_actions: int = DEFAULT_MAX_ACTIONS,
    ):
        low, high = _box_bounds(env.action_space)
        dim = len(low)
        if mode == "grid":
            if values_per_dim < 2:
                raise ValueError(f"values_per_dim must be at least 2, got {values_per_dim}")
            count = values_per_dim**dim
            if count > max_actions:
                raise ValueError(
                    f"grid discretisation of {env.id}'s {dim}-dim actions gives "
                    f"{values_per_dim}**{dim} = {count:,} joint actions, above "
                    f"max_actions={max_actions:,}; use mode='codebook' ({2 * dim + 1} "
                    "actions), fewer values_per_dim, or raise max_actions"
                )
            table = grid_codebook(low, high, values_per_dim)
        elif mode == "codebook":
            if codebook is None:
                if not 0.0 < push <= 1.0:
                    raise ValueError(f"push must be in (0, 1] (of the half-range), got {push}")
                table = push_codebook(low, high, push)
            else:
                table = np.asarray(codebook, np.float32)
                if table.ndim != 2 or table.shape[1] != dim or table.shape[0] < 1:
                    raise ValueError(f"codebook must be [num_actions, {dim}], got {table.shape}")
                if np.any(table < low.astype(np.float32)) or np.any(
                    table > high.astype(np.float32)
                ):
                    raise ValueError(f"codebook rows must lie in {env.action_space}")
        else:
            raise ValueError(f"mode must be 'grid' or 'codebook', got {mode!r}")
        table.setflags(write=False)
        super().__init__(env)
        self.mode = mode
        self._codebook = table
        self.continuous_action_space = env.action_space
        self.action_space = gymnasium.spaces.Discrete(len(table), dtype=np.int32)

    def __repr__(self) -> str:
        return f"Discretize({self.env!r}, mode={self.mode!r}, num_actions={len(self._codebook)})"

    @property
    def codebook(self) -> np.ndarray:
        """`float32[num_actions, dim]`, read-only: row `i` is what action `i` sends."""
        return self._codebook

    @property
    def num_actions(self) -> int:
        """Number of discrete actions, `len(codebook)`."""
        return core.num_actions(self.action_space)

    def to_continuous(self, action: jax.Array) -> jax.Array:
        """Maps `int32[...]` action indices to `float32[..., dim]` vectors."""
        return jnp.asarray(self._codebook)[action]

    def nearest_action(self, vector: jax.Array) -> jax.Array:
        """The index of the codebook row closest (Euclidean) to `float32[dim]` `vector`."""
        distances = jnp.sum((jnp.asarray(self._codebook) - vector) ** 2, axis=-1)
        return jnp.argmin(distances).astype(jnp.int32)

    def step(
        self, key: jax.Array, state: Any, action: jax.Array, params: core.EnvParams
    ) -> core.StepResult:
        """Steps the wrapped env with `codebook[action]`.

        Args:
            key: PRNG key.
            state: the wrapped env's state.
            action: `int32[]` in `[0, num_actions)`.
            params: the wrapped env's params.
        """
        action = jnp.asarray(action, jnp.int32)
        chex.assert_shape(action, ())
        return self.env.step(key, state, self.to_continuous(action), params)

    def action_mask(self, state: Any, params: core.EnvParams) -> jax.Array:
        """`bool[num_actions]`, all True."""
        del state, params
        return core.all_actions_legal(self.action_space)
