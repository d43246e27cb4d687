"""Procedural mazes for MiniPacman: a braided random maze on a cell lattice, in pure JAX.

The grid is `[height, width]` with odd sizes (15 x 19 by default). Cells at odd (row, column)
are the lattice "rooms" (7 x 9 of them by default); the cell between two neighbouring rooms
is the passage ("edge") that joins them, and cells at even (row, column) are pillars that
are always wall, as is the border. Generation, all jittable and vmappable:

1. A random spanning tree of the lattice: the minimum spanning tree under i.i.d. uniform
   passage weights (randomised Prim's algorithm, a fixed `num_rooms - 1` iterations), so
   every room, hence every free cell, is reachable from every other.
2. Braiding: every room left with a single open passage (a dead end) opens one more passage,
   picked at random among its closed ones. The result has no dead ends, so a ghost can never
   corner Pacman at the end of a corridor.
3. Extra loops: each still-closed passage opens with probability `loop_fraction`.

Opening passages never disconnects anything, so the maze stays connected. Mazes are not
mirror-symmetric (unlike the arcade game's); the level key alone decides them.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

# Pacman's actions and the four ghost moves share these offsets: (row, column).
MOVES = np.array([[0, 0], [-1, 0], [1, 0], [0, -1], [0, 1]], np.int32)  # noop up down left right


class BitStream:
    """Consecutive slices of one `jax.random.bits` draw.

    A level needs a dozen small random arrays; drawing them all with one threefry call rather
    than a call (and a key split) each cuts the compile time of the env several times over,
    as XLA spends most of it on the inlined threefry rounds.

    Args:
        bits: `uint32[n]` random words.
    """

    def __init__(self, bits: jax.Array):
        self.bits = bits
        self.offset = 0

    @classmethod
    def draw(cls, key: jax.Array, size: int) -> BitStream:
        return cls(jax.random.bits(key, (size,), jnp.uint32))

    def take(self, shape: tuple[int, ...]) -> jax.Array:
        """The next `prod(shape)` words as `uint32[shape]`; fails if the draw runs out."""
        size = int(np.prod(shape))
        if self.offset + size > self.bits.shape[-1]:
            raise ValueError(f"BitStream of {self.bits.shape[-1]} words exhausted")
        words = self.bits[..., self.offset : self.offset + size]
        self.offset += size
        return words.reshape(*self.bits.shape[:-1], *shape)

    def uniform(self, shape: tuple[int, ...]) -> jax.Array:
        """The next words as `float32[shape]` uniform on [0, 1) (24 bits each)."""
        return (self.take(shape) >> 8).astype(jnp.float32) * (1.0 / (1 << 24))


def lattice_size(height: int, width: int) -> tuple[int, int]:
    """`(rows, columns)` of rooms in a `[height, width]` grid (both sizes odd and >= 5)."""
    if height < 5 or width < 5 or height % 2 == 0 or width % 2 == 0:
        raise ValueError(f"maze height and width must be odd and >= 5, got {height}x{width}")
    return (height - 1) // 2, (width - 1) // 2


def one_hot_argmax(score: jax.Array) -> jax.Array:
    """`argmax` over the last axis as a one-hot bool mask (the first maximum on ties).

    Comparisons and a cumulative sum instead of `jnp.argmax`, whose variadic reduce XLA's CPU
    backend runs slowly under vmap.
    """
    best = score == jnp.max(score, axis=-1, keepdims=True)
    return best & (jnp.cumsum(best, axis=-1) == 1)


# Passages are kept as two masks over the lattice: `across[i, j]` joins room (i, j) to
# (i, j + 1), `down[i, j]` joins (i, j) to (i + 1, j). Everything below is shifts and
# elementwise logic on these small grids: under vmap, XLA's CPU gathers and scatters cost
# several times more than the whole computation.


def _neighbour_masks(across: jax.Array, down: jax.Array) -> jax.Array:
    """Per room, whether its passage to the left, right, up, down is set: `bool[R, C, 4]`."""
    return jnp.stack(
        [
            jnp.pad(across, ((0, 0), (1, 0))),
            jnp.pad(across, ((0, 0), (0, 1))),
            jnp.pad(down, ((1, 0), (0, 0))),
            jnp.pad(down, ((0, 1), (0, 0))),
        ],
        axis=-1,
    )


def _passages_of(per_room: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Inverse of `_neighbour_masks`: a room's choice of side `bool[R, C, 4]` -> passages."""
    left, right, up, below = (per_room[..., d] for d in range(4))
    return left[:, 1:] | right[:, :-1], up[1:, :] | below[:-1, :]


def _spanning_tree(bits: BitStream, rows: int, cols: int) -> tuple[jax.Array, jax.Array]:
    """Prim's algorithm on i.i.d. uniform passage weights: a random spanning tree.

    Returns:
        `(across bool[R, C - 1], down bool[R - 1, C])`, True for tree passages.
    """
    num_across = rows * (cols - 1)
    weights = bits.uniform((num_across + (rows - 1) * cols,))
    start = (bits.take(()) % (rows * cols)).astype(jnp.int32)
    in_tree = (jnp.arange(rows * cols) == start).reshape(rows, cols)
    across = jnp.zeros((rows, cols - 1), bool)
    down = jnp.zeros((rows - 1, cols), bool)

    def grow(_, carry):
        in_tree, across, down = carry
        frontier = jnp.concatenate(
            [
                (in_tree[:, :-1] != in_tree[:, 1:]).reshape(-1),
                (in_tree[:-1, :] != in_tree[1:, :]).reshape(-1),
            ]
        )
        # The lightest frontier passage, found without an argmin (a variadic reduce, which
        # XLA's CPU backend runs slowly under vmap). A tie would open two passages at once:
        # a loop at worst, never a disconnection.
        masked = jnp.where(frontier, weights, 2.0)
        chosen = masked == jnp.min(masked)
        new_across = chosen[:num_across].reshape(rows, cols - 1)
        new_down = chosen[num_across:].reshape(rows - 1, cols)
        in_tree = in_tree | jnp.any(_neighbour_masks(new_across, new_down), axis=-1)
        return in_tree, across | new_across, down | new_down

    _, across, down = jax.lax.fori_loop(0, rows * cols - 1, grow, (in_tree, across, down))
    return across, down


def _braid(bits: BitStream, across: jax.Array, down: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Opens one random closed passage at every dead-end room."""
    is_open = _neighbour_masks(across, down)  # [R, C, 4]
    exists = _neighbour_masks(jnp.ones_like(across), jnp.ones_like(down))
    closed = exists & ~is_open
    dead_end = jnp.sum(is_open, axis=-1) == 1
    score = jnp.where(closed, bits.uniform(closed.shape), -1.0)
    pick = one_hot_argmax(score) & closed
    extra_across, extra_down = _passages_of(pick & dead_end[..., None])
    return across | extra_across, down | extra_down


def _to_grid(across: jax.Array, down: jax.Array) -> jax.Array:
    """Walls of the `[2R + 1, 2C + 1]` grid whose rooms are free and passages as given."""
    rows, cols = down.shape[0] + 1, across.shape[1] + 1
    edge = jnp.ones((rows, 1), bool)
    room_rows = jnp.stack(
        [jnp.zeros((rows, cols), bool), jnp.concatenate([~across, edge], axis=1)], axis=-1
    ).reshape(rows, 2 * cols)
    pillar_rows = jnp.stack([~down, jnp.ones((rows - 1, cols), bool)], axis=-1).reshape(
        rows - 1, 2 * cols
    )
    body = jnp.stack([room_rows[:-1], pillar_rows], axis=1).reshape(2 * rows - 2, 2 * cols)
    body = jnp.concatenate([body, room_rows[-1:]], axis=0)  # [2R - 1, 2C]
    body = jnp.concatenate([jnp.ones((2 * rows - 1, 1), bool), body], axis=1)
    border = jnp.ones((1, 2 * cols + 1), bool)
    return jnp.concatenate([border, body, border], axis=0)


def maze_bits(height: int, width: int) -> int:
    """Random 32-bit words that `walls_from_bits` consumes for a `[height, width]` maze."""
    rows, cols = lattice_size(height, width)
    passages = rows * (cols - 1) + (rows - 1) * cols
    return 2 * passages + 1 + 4 * rows * cols


def walls_from_bits(
    bits: BitStream, height: int, width: int, loop_fraction: float | jax.Array
) -> jax.Array:
    """A connected maze without dead ends, from `maze_bits(height, width)` words of `bits`.

    Args:
        bits: the level's random words; the maze is a deterministic function of them.
        height: grid rows (odd, >= 5); static.
        width: grid columns (odd, >= 5); static.
        loop_fraction: probability that each passage left closed after braiding opens.

    Returns:
        `bool[height, width]`, True for walls.
    """
    rows, cols = lattice_size(height, width)
    across, down = _spanning_tree(bits, rows, cols)
    across, down = _braid(bits, across, down)
    across = across | (bits.uniform(across.shape) < loop_fraction)
    down = down | (bits.uniform(down.shape) < loop_fraction)
    return _to_grid(across, down)


def generate_walls(
    key: jax.Array, height: int, width: int, loop_fraction: float | jax.Array
) -> jax.Array:
    """`walls_from_bits` on fresh words from `key`: `bool[height, width]`, True for walls."""
    bits = BitStream.draw(key, maze_bits(height, width))
    return walls_from_bits(bits, height, width, loop_fraction)


def cell_mask(cells: jax.Array, height: int, width: int) -> jax.Array:
    """One-hot grids of cells `int32[..., 2]`: `bool[..., height, width]`.

    MiniPacman uses masks instead of indexing throughout: under vmap, XLA's CPU gathers and
    scatters of single cells cost more than elementwise work on the whole 15 x 19 grid.
    """
    rows, cols = jnp.indices((height, width))
    return (rows == cells[..., 0, None, None]) & (cols == cells[..., 1, None, None])


def draw_level_index(bits: jax.Array, num_levels: jax.Array, start_level: jax.Array) -> jax.Array:
    """A level index from two random words `uint32[2]`: `int32[]`.

    `start_level + word % num_levels` (as Procgen draws levels; the modulo bias, under
    `num_levels / 2**32`, is immaterial), or any index in `[0, 2**31)` when `num_levels` is 0.
    """
    offset = (bits[0] % jnp.maximum(num_levels, 1).astype(jnp.uint32)).astype(jnp.int32)
    unbounded = (bits[1] >> 1).astype(jnp.int32)
    return jnp.where(num_levels > 0, start_level + offset, unbounded).astype(jnp.int32)


def pick_cells(bits: BitStream, eligible: jax.Array, preferred: jax.Array, count: int) -> jax.Array:
    """`count` distinct random eligible cells, preferred ones first: `bool[count, H, W]`.

    Each cell gets a distinct integer priority (preference, random bits, cell index), and the
    largest are taken one by one: unique without an argmax or a sort.
    """
    height, width = eligible.shape
    index = jnp.arange(height * width, dtype=jnp.int32).reshape(height, width)
    shift = int(np.ceil(np.log2(height * width)))
    noise = (bits.take(eligible.shape) >> (3 + shift)).astype(jnp.int32)  # 29 - shift bits
    priority = (preferred.astype(jnp.int32) << 29) | (noise << shift) | index
    priority = jnp.where(eligible, priority, -1)

    def take(priority, _):
        chosen = priority == jnp.max(priority)
        return jnp.where(chosen, -1, priority), chosen & (priority >= 0)

    return jax.lax.scan(take, priority, None, length=count)[1]


def distance_field(walls: jax.Array, source: jax.Array, num_iterations: int) -> jax.Array:
    """Maze distance to `source`, by `num_iterations` rounds of breadth-first relaxation.

    Cells farther than `num_iterations` steps (and walls) keep a large value; callers that
    need an order there add a fallback (see `MiniPacman.move_ghosts`).

    Args:
        walls: `bool[H, W]`; the border must be wall (the shifts wrap around).
        source: `int32[2]`, a free cell.
        num_iterations: static number of relaxation rounds.

    Returns:
        `int32[H, W]`: the exact distance where it is at most `num_iterations`, otherwise
        `UNREACHED`.
    """
    rows, cols = jnp.indices(walls.shape)
    at_source = (rows == source[0]) & (cols == source[1])
    distance = jnp.where(at_source, 0, UNREACHED).astype(jnp.int32)

    def relax(_, distance):
        neighbours = jnp.minimum(
            jnp.minimum(jnp.roll(distance, 1, 0), jnp.roll(distance, -1, 0)),
            jnp.minimum(jnp.roll(distance, 1, 1), jnp.roll(distance, -1, 1)),
        )
        return jnp.where(walls, UNREACHED, jnp.minimum(distance, neighbours + 1))

    return jax.lax.fori_loop(0, num_iterations, relax, distance)


UNREACHED = 1 << 20
"""Distance of walls and of cells beyond the relaxation horizon."""
