"""Procedural Sokoban levels in pure JAX: a level is a deterministic function of its index.

Generation is jittable and vmappable; shapes depend only on the static room size and box
count.

1. **Topology.** Start from solid wall and let a digger walk `room_steps` steps through the
   interior (the outer ring always stays wall), turning with probability 0.35 and carving a
   small random brush (one cell, a bar, a plus or a 2x2 block) around itself at every step.
   A walk is connected, so all floor is one room.
2. **Solved room.** `num_boxes + 1` distinct floor cells are drawn (cells a box could be
   pulled from first): boxes on targets at the first `num_boxes`, the player at the last.
3. **Reverse play.** `runs_per_box * num_boxes` runs, each pulling one box along a straight
   line: the player walks (through free floor, found by flood fill) to the cell next to a
   box, then steps away from it one or more cells, dragging the box along. A box still on
   its target is picked with probability `seek_probability` when one can be pulled. Every
   pull is the exact inverse of a legal push, and walking is reversible, so the solved room
   stays reachable from every state on the way: **levels are solvable by construction**. Of
   the states visited, the latest with the most boxes off their targets is kept (as
   gym-sokoban keeps its best-scoring state), and the player starts on a random cell it can
   reach there.
4. **Retry.** An attempt is accepted when the room has at least `num_boxes + 2` floor cells
   and *every* box starts off its target (so no level starts partly solved, and every box
   needs at least one push). Attempts run `ATTEMPTS_PER_ROUND` at a time (vmapped, so a
   round costs little more than one attempt); a `lax.while_loop` stops after the first
   round with an accepted attempt, taking the first accepted one, or after `max_rounds`
   rounds, keeping the last attempt then (still solvable, but it may start with boxes on
   targets; `generate_level` reports it with attempt -1). On the default 10x10 room with 4
   boxes about 40% of attempts are accepted (7x7 with 2 boxes: 80%), so a second round is
   needed for about 1 level in 100, and no attempt in 32 is accepted for about 1 in 10^7.

Randomness inside generation comes from a counter-based integer hash (`_mix`) of a per-level
seed, not from `jax.random`: threefry inlined in every loop body made the generator take
several times longer to compile. The seed of level `i` is a bijection of `i`, so different
indices never share a seed.

Under `vmap` the retry loop runs while any member still needs a level, and a member that
needs none (`needed=False`) runs no attempt at all, which keeps auto-reset cheap: only the
steps where some episode ends pay for generation.
"""

from __future__ import annotations

import functools
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

# Moves in action order: up, down, left, right, as (row, col) offsets.
DIRECTIONS = np.array([[-1, 0], [1, 0], [0, -1], [0, 1]], np.int32)
ATTEMPTS_PER_ROUND = 8
_LEVEL_SALT = 0x50C0BA
_TURN_PROBABILITY = 0.35
_BRUSHES = np.array(
    [
        [[0, 0, 0], [0, 1, 0], [0, 0, 0]],  # one cell
        [[0, 0, 0], [1, 1, 1], [0, 0, 0]],  # horizontal bar
        [[0, 1, 0], [0, 1, 0], [0, 1, 0]],  # vertical bar
        [[0, 1, 0], [1, 1, 1], [0, 1, 0]],  # plus
        [[0, 0, 0], [0, 1, 1], [0, 1, 1]],  # 2x2 block
    ],
    bool,
)


@flax.struct.dataclass
class Level:
    """One level's layout, `[H, W]` grids indexed `[row, col]`."""

    walls: jax.Array  # [H, W] bool
    targets: jax.Array  # [H, W] bool
    boxes: jax.Array  # [H, W] bool
    player: jax.Array  # [2] int32, (row, col)


# ------------------------------------------------------------------------------ randomness


def _mix(x: jax.Array) -> jax.Array:
    """A bijective avalanche hash of uint32 (Wellons' "lowbias32")."""
    x = jnp.asarray(x).astype(jnp.uint32)
    x = (x ^ (x >> 16)) * jnp.uint32(0x7FEB352D)
    x = (x ^ (x >> 15)) * jnp.uint32(0x846CA68B)
    return x ^ (x >> 16)


def _draw(seed: jax.Array, stream: jax.Array, shape: tuple[int, ...] = ()) -> jax.Array:
    """uint32 values of `shape`, a function of `(seed, stream, position)`."""
    counter = np.arange(int(np.prod(shape)), dtype=np.uint32).reshape(shape)
    return _mix(_mix(seed ^ _mix(stream)) + counter)


def _uniform(bits: jax.Array) -> jax.Array:
    """uint32 -> float32 in [0, 1)."""
    return (bits >> 8).astype(jnp.float32) * (1.0 / (1 << 24))


def _below(bits: jax.Array, n: jax.Array | int) -> jax.Array:
    """uint32 -> int32 in [0, n) for 1 <= n <= 2**16."""
    n = jnp.asarray(n).astype(jnp.uint32)
    return (((bits >> 16) * n) >> 16).astype(jnp.int32)


def level_seed(level: jax.Array) -> jax.Array:
    """The uint32 seed of level index `level` (`int32[]`); distinct for distinct indices."""
    return _mix(jnp.asarray(level).astype(jnp.uint32) ^ jnp.uint32(_LEVEL_SALT))


def sample_level_index(key: jax.Array, params: Any) -> jax.Array:
    """Draws a level index as Procgen does.

    Returns:
        `int32[]`: `start_level + uniform{0, ..., num_levels - 1}`, or, when
        `num_levels == 0`, any non-negative int32 (`start_level` is then ignored).
    """
    num_levels = jnp.asarray(params.num_levels, jnp.int32)
    start = jnp.asarray(params.start_level, jnp.int32)
    bounded = start + jax.random.randint(key, (), 0, jnp.maximum(num_levels, 1), jnp.int32)
    bits = jax.random.bits(key, (), jnp.uint32) >> 1  # 31 bits: a non-negative int32
    return jnp.where(num_levels > 0, bounded, bits.astype(jnp.int32))


# ------------------------------------------------------------------------------ grids


def _shift(grid: jax.Array, d_row: int, d_col: int) -> jax.Array:
    """`out[r, c] = grid[r + d_row, c + d_col]`, False outside the grid (static offsets)."""
    height, width = grid.shape
    padded = jnp.pad(grid, 2)
    return jax.lax.slice(padded, (2 + d_row, 2 + d_col), (2 + d_row + height, 2 + d_col + width))


def _neighbours(region: jax.Array) -> jax.Array:
    """Cells next to `region` (4-connected), `bool[H, W]`."""
    spread = [_shift(region, int(d_row), int(d_col)) for d_row, d_col in DIRECTIONS]
    return spread[0] | spread[1] | spread[2] | spread[3]


def reachable(free: jax.Array, player: jax.Array) -> jax.Array:
    """Cells the player can walk to through `free` cells: flood fill, `bool[H, W]`."""
    start = jnp.zeros(free.shape, bool).at[player[0], player[1]].set(True)

    def body(carry):
        region, _ = carry
        grown = region
        for _ in range(3):  # a few dilations per iteration: fewer while-loop round trips
            grown = grown | (free & _neighbours(grown))
        return grown, jnp.any(grown != region)

    return jax.lax.while_loop(lambda carry: carry[1], body, (start, jnp.array(True)))[0]


def _cell(index: jax.Array, width: int) -> jax.Array:
    """Flat index -> `int32[2]` (row, col)."""
    return jnp.stack([index // width, index % width]).astype(jnp.int32)


# ------------------------------------------------------------------------------ one attempt


def _carve_room(seed: jax.Array, shape: tuple[int, int], params: Any) -> jax.Array:
    """Random-walk digger; returns `floor`, `bool[H, W]`, with a wall ring around it."""
    height, width = shape
    rows = np.arange(height)[:, None]
    cols = np.arange(width)[None, :]
    interior = (rows > 0) & (rows < height - 1) & (cols > 0) & (cols < width - 1)
    upper = jnp.array([height - 2, width - 2], jnp.int32)
    brushes = jnp.asarray(_BRUSHES)
    directions = jnp.asarray(DIRECTIONS)

    def body(step, carry):
        floor, position, heading = carry
        turn_bits, heading_bits, brush_bits = _draw(seed, step, (3,))
        turn = _uniform(turn_bits) < _TURN_PROBABILITY
        heading = jnp.where(turn, _below(heading_bits, 4), heading)
        position = jnp.clip(position + directions[heading], 1, upper)
        brush = brushes[_below(brush_bits, len(_BRUSHES))]
        d_row = rows - position[0] + 1
        d_col = cols - position[1] + 1
        inside = (d_row >= 0) & (d_row < 3) & (d_col >= 0) & (d_col < 3)
        mask = inside & brush[jnp.clip(d_row, 0, 2), jnp.clip(d_col, 0, 2)]
        return floor | (mask & interior), position, heading

    row_bits, col_bits, heading_bits = _draw(seed, jnp.uint32(0xFFFFFFFF), (3,))
    start = jnp.stack([1 + _below(row_bits, height - 2), 1 + _below(col_bits, width - 2)])
    floor = jnp.zeros(shape, bool).at[start[0], start[1]].set(True)
    steps = jnp.asarray(params.room_steps, jnp.int32)
    return jax.lax.fori_loop(0, steps, body, (floor, start, _below(heading_bits, 4)))[0]


def _place(seed: jax.Array, floor: jax.Array, num_boxes: int) -> tuple[jax.Array, jax.Array]:
    """Draws distinct floor cells: `(boxes_on_targets bool[H, W], player int32[2])`.

    Cells from which a box could be pulled in the empty room (a floor neighbour with floor
    beyond it) are drawn first, as a box on any other cell could never leave its target.
    """
    height, width = floor.shape
    pullable = jnp.zeros_like(floor)
    for d_row, d_col in DIRECTIONS:
        beyond = _shift(floor, 2 * int(d_row), 2 * int(d_col))
        pullable |= _shift(floor, int(d_row), int(d_col)) & beyond
    noise = _uniform(_draw(seed, jnp.uint32(0), floor.shape))
    scores = jnp.where(floor, noise + pullable, -1.0).reshape(-1)
    _, cells = jax.lax.top_k(scores, num_boxes + 1)
    boxes = jnp.zeros(height * width, bool).at[cells[:num_boxes]].set(True).reshape(floor.shape)
    return boxes, _cell(cells[num_boxes], width)


def _pulls(boxes: jax.Array, free: jax.Array, reach: jax.Array) -> jax.Array:
    """`bool[4, H, W]`: `[d, r, c]` when the box at `(r, c)` can be pulled one cell along
    direction `d` (the player reaches the cell past it along `d` and the next one is free)."""
    return jnp.stack(
        [
            boxes & _shift(reach, int(dr), int(dc)) & _shift(free, 2 * int(dr), 2 * int(dc))
            for dr, dc in DIRECTIONS
        ]
    )


def _reverse_play(
    seed: jax.Array,
    floor: jax.Array,
    targets: jax.Array,
    player: jax.Array,
    num_boxes: int,
    params: Any,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Pull runs from the solved room; returns the kept `(boxes, player, boxes_off_target)`."""
    height, width = floor.shape
    directions = jnp.asarray(DIRECTIONS)
    # The player's cells during a run of length k: box + 2d, ..., box + (k + 1)d.
    offsets = np.arange(2, max(height, width) + 1)  # [max_run]
    upper = jnp.array([height - 1, width - 1])

    def body(run, carry):
        boxes, player, best = carry
        seek_bits, length_bits = _draw(seed, 2 * run, (2,))
        choice_bits = _draw(seed, 2 * run + 1, (4 * height * width,))
        free = floor & ~boxes
        pulls = _pulls(boxes, free, reachable(free, player))  # [4, H, W]
        resting = pulls & (boxes & targets)[None]
        seek = (_uniform(seek_bits) < params.seek_probability) & jnp.any(resting)
        candidates = jnp.where(seek, resting, pulls).reshape(-1)
        possible = jnp.any(candidates)
        choice = jnp.argmax(jnp.where(candidates, choice_bits | 1, 0))  # uniform
        step = directions[choice // (height * width)]
        box = _cell(choice % (height * width), width)
        path = box[None] + offsets[:, None] * step[None]  # [max_run, 2]
        inside = jnp.all((path >= 0) & (path <= upper), axis=-1)
        path = jnp.clip(path, 0, upper)
        longest = jnp.sum(jnp.cumprod(inside & free[path[:, 0], path[:, 1]]))
        length = 1 + _below(length_bits, jnp.maximum(longest, 1))
        moved = box + length * step
        boxes = boxes.at[box[0], box[1]].set(boxes[box[0], box[1]] & ~possible)
        boxes = boxes.at[moved[0], moved[1]].set(boxes[moved[0], moved[1]] | possible)
        player = jnp.where(possible, moved + step, player)
        off_target = jnp.sum(boxes & ~targets)
        # Keep the latest state with the most boxes off their targets.
        better = off_target >= best[2]
        best = jax.tree.map(
            lambda new, old: jnp.where(better, new, old), (boxes, player, off_target), best
        )
        return boxes, player, best

    best = (targets, player, jnp.zeros((), jnp.int32))
    num_runs = jnp.asarray(params.runs_per_box, jnp.int32) * num_boxes
    return jax.lax.fori_loop(0, num_runs, body, (targets, player, best))[2]


def _attempt(seed: jax.Array, shape: tuple[int, int], num_boxes: int, params: Any):
    """One generation attempt: `(Level, accepted bool[])`."""
    room_seed, place_seed, play_seed, spot_seed = (_mix(seed ^ _mix(i)) for i in range(1, 5))
    floor = _carve_room(room_seed, shape, params)
    targets, start = _place(place_seed, floor, num_boxes)
    boxes, player, off_target = _reverse_play(play_seed, floor, targets, start, num_boxes, params)
    # Walking is reversible, so the player may start anywhere it can reach from there.
    reach = reachable(floor & ~boxes, player)
    spot = jnp.argmax(jnp.where(reach, _draw(spot_seed, jnp.uint32(0), shape), 0).reshape(-1))
    accepted = (jnp.sum(floor) >= num_boxes + 2) & (off_target == num_boxes)
    level = Level(walls=~floor, targets=targets, boxes=boxes, player=_cell(spot, shape[1]))
    return level, accepted


# ------------------------------------------------------------------------------ retry loop


# Jitted so that a program tracing several resets (the train envs' reset and auto-reset, the
# eval envs', a search on the env model) traces the generator once: the nested jit's jaxpr is
# cached by argument shapes, and XLA inlines it, so the compiled program is unchanged.
@functools.partial(jax.jit, static_argnames=("shape", "num_boxes"))
def generate_level(
    level: jax.Array,
    shape: tuple[int, int],
    num_boxes: int,
    params: Any,
    *,
    needed: jax.Array | bool = True,
    placeholder: Level | None = None,
) -> tuple[Level, jax.Array]:
    """Builds level number `level`; see the module docstring for the algorithm.

    Args:
        level: `int32[]` level index.
        shape: static `(height, width)` of the room, walls included.
        num_boxes: static number of boxes (and targets).
        params: a params pytree with the generation fields of `SokobanParams`
            (`room_steps`, `runs_per_box`, `seek_probability`, `max_rounds`).
        needed: `bool[]`; when False no attempt runs and `placeholder` comes back (the
            auto-reset of a step whose episode goes on).
        placeholder: returned when `needed` is False; an all-wall level when None.

    Returns:
        `(Level, attempt int32[])`: `attempt` is the 1-based number of the accepted attempt,
        0 when `needed` was False, and -1 when no attempt was accepted (the last one is
        returned then).
    """
    if placeholder is None:
        placeholder = Level(
            walls=jnp.ones(shape, bool),
            targets=jnp.zeros(shape, bool),
            boxes=jnp.zeros(shape, bool),
            player=jnp.ones((2,), jnp.int32),
        )
    seed = level_seed(level)
    max_rounds = jnp.maximum(jnp.asarray(params.max_rounds, jnp.int32), 1)

    def cond(carry):
        rounds, _, done, _ = carry
        return ~done & (rounds < max_rounds)

    def body(carry):
        rounds, _, _, _ = carry
        numbers = rounds * ATTEMPTS_PER_ROUND + jnp.arange(ATTEMPTS_PER_ROUND)
        seeds = _mix(seed ^ _mix(numbers.astype(jnp.uint32) + jnp.uint32(0x9E3779B9)))
        candidates, accepted = jax.vmap(_attempt, in_axes=(0, None, None, None))(
            seeds, shape, num_boxes, params
        )
        any_accepted = jnp.any(accepted)
        # The first accepted attempt of the round, or its last attempt when none was.
        first = jnp.where(any_accepted, jnp.argmax(accepted), ATTEMPTS_PER_ROUND - 1)
        chosen = jax.tree.map(lambda x: x[first], candidates)
        attempt = jnp.where(any_accepted, numbers[first] + 1, -1)
        return rounds + 1, chosen, any_accepted, attempt

    carry = (jnp.zeros((), jnp.int32), placeholder, ~jnp.asarray(needed, bool), jnp.int32(0))
    _, result, _, attempt = jax.lax.while_loop(cond, body, carry)
    return result, attempt
