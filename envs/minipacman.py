"""`jaxmb:MiniPacman-v0`: MiniPacman (Weber et al. 2017) with procedural levels, in pure JAX.

Pacman walks a 15 x 19 maze (`minipacman_maze.py`: a braided random maze, connected and
without dead ends) eating food, which lies on every free cell. Eating one of the power pills
(`params.num_pills`, 4 by default) makes the ghosts edible for `params.power_steps` steps,
during which they flee; an eaten ghost returns to its start cell and chases again (it is not
edible again until the next pill). Touching a ghost that is not edible kills Pacman.

Levels are Procgen's (Anand et al. 2022 train MuZero on such level ranges): a level index is
`start_level + uniform int in [0, num_levels)` (`num_levels = 0`: any index in
`[0, 2**31 - 1)`), and the whole level (maze, Pacman's and the ghosts' start cells, pill
cells) is a deterministic function of that index. "Train on N levels, test on unseen ones"
is a change of `num_levels` / `start_level`.

Rewards, by `params.mode` (Weber et al. 2017, appendix, table of MiniPacman tasks; the same
table is in the gym-minipacman port of DeepMind's workshop code):

    mode        per step  food  power pill  eat ghost  killed by ghost
    0 regular     0        1        2          5            0
    1 avoid       0.1     -0.1     -5        -10          -20
    2 hunt        0        0        1         10          -20
    3 ambush      0       -0.1      0         10          -20
    4 rush        0       -0.1     10          0            0

Episode ends: `terminated` when a non-edible ghost catches Pacman (any mode) and, in rush
mode, on the step that eats the last power pill; `truncated` when `time` reaches
`params.max_steps_in_episode` (never both). Eating all the food starts the next level inside
the same episode (as Weber et al. do): a fresh level is drawn from the level range, and the
episode's step counter keeps running. Unlike the workshop code, hunt and ambush do not
advance the level when all ghosts are eaten (eaten ghosts come back here) nor after a
number of steps survived; rush terminates rather than advancing.

One step: Pacman moves (into a wall: stays), eats what is on his cell (a pill restarts the
power timer), then each ghost moves (with probability `ghost_speed`, halved while edible) one
cell: with probability `ghost_chase_prob` the greedy step on the maze distance to Pacman
(towards him, or away while edible), otherwise a random legal step. Pacman meets a ghost
when it stands on his new cell before or after its move, so they cannot pass through each
other. Maze distances come from `distance_field` with `height + width` relaxation rounds;
beyond that horizon a ghost orders cells by that horizon plus the Manhattan distance.

Observations are `float32[15, 19, 7]` channels-last: walls, food, pills, Pacman, ghosts that
are dangerous, edible ghosts, and a plane holding the power time left as a fraction of
`power_steps` (so the state is Markov). Actions: 0 noop, 1 up, 2 down, 3 left, 4 right; all
always legal.
"""

from __future__ import annotations

from typing import Any

import chex
import flax
import gymnasium
import jax
import jax.numpy as jnp
import numpy as np

from jaxmb.envs import core
from jaxmb.envs.minipacman_maze import (
    MOVES,
    UNREACHED,
    BitStream,
    cell_mask,
    distance_field,
    draw_level_index,
    lattice_size,
    maze_bits,
    one_hot_argmax,
    pick_cells,
    walls_from_bits,
)

ENV_NAMES = ("MiniPacman-v0",)
MODES = ("regular", "avoid", "hunt", "ambush", "rush")
REGULAR, AVOID, HUNT, AMBUSH, RUSH = range(5)
# [mode, event]; events: per step, food, power pill, eat ghost, killed by ghost.
REWARDS = np.array(
    [
        [0.0, 1.0, 2.0, 5.0, 0.0],
        [0.1, -0.1, -5.0, -10.0, -20.0],
        [0.0, 0.0, 1.0, 10.0, -20.0],
        [0.0, -0.1, 0.0, 10.0, -20.0],
        [0.0, -0.1, 10.0, 0.0, 0.0],
    ],
    np.float32,
)
NUM_CHANNELS = 7
GHOST_BITS = 12  # random words per ghost and step: 5 tie-breaks, 5 wander scores, 2 draws
MAX_PILLS = 8  # `params.num_pills` is clipped to this (the pill draw is a static loop)
_LEVEL_SALT = 0x9AC3A7  # root of every level key: level i's key is fold_in(key(salt), i)


@flax.struct.dataclass
class MiniPacmanParams:
    """Numeric params; each field may be a traced value (one setting per env under vmap).

    Integer fields are cast to int32 where used, so YAML floats such as `mode: 1.0` work.
    """

    mode: int = REGULAR  # [] reward table row: 0 regular 1 avoid 2 hunt 3 ambush 4 rush
    num_levels: int = 0  # [] levels in the range; 0: any level index
    start_level: int = 0  # [] first level index of the range
    max_steps_in_episode: int = 1000  # [] time limit (truncated)
    num_pills: int = 4  # [] power pills per level, at most MAX_PILLS
    power_steps: int = 20  # [] steps the ghosts stay edible after a pill
    ghost_speed: float = 0.75  # [] probability a ghost moves in a step (halved while edible)
    ghost_chase_prob: float = 0.8  # [] probability a moving ghost takes the greedy step


@flax.struct.dataclass
class MiniPacmanState:
    """One env's state; `G` is the env's static `num_ghosts`."""

    walls: jax.Array  # [H, W] bool
    food: jax.Array  # [H, W] bool
    pills: jax.Array  # [H, W] bool
    pacman: jax.Array  # [2] int32, (row, column)
    ghosts: jax.Array  # [G, 2] int32
    ghost_homes: jax.Array  # [G, 2] int32, where an eaten ghost returns
    ghost_eaten: jax.Array  # [G] bool, eaten since the last pill (so not edible)
    power_timer: jax.Array  # [] int32, steps of edibility left (0: ghosts dangerous)
    level: jax.Array  # [] int32, the level index
    time: jax.Array  # [] int32, steps taken in the episode


def _int(value: Any) -> jax.Array:
    return jnp.round(jnp.asarray(value)).astype(jnp.int32)


def draw_level(bits: jax.Array, params: MiniPacmanParams) -> jax.Array:
    """A level index from the params' range (see `draw_level_index`): `int32[]`."""
    return draw_level_index(bits, _int(params.num_levels), _int(params.start_level))


class MiniPacman:
    """The MiniPacman env (see the module docstring).

    Args:
        params: what `default_params()` returns; `MiniPacmanParams()` when None.
        height: maze rows (odd, >= 5); static.
        width: maze columns (odd, >= 5); static.
        num_ghosts: ghosts per level; static.
        loop_fraction: probability that each passage left closed after braiding opens,
            making extra loops; static, as it is part of what a level index means.
        render_scale: pixels per cell side in `render`.
    """

    action_space = gymnasium.spaces.Discrete(len(MOVES), dtype=np.int32)

    def __init__(
        self,
        params: MiniPacmanParams | None = None,
        *,
        height: int = 15,
        width: int = 19,
        num_ghosts: int = 3,
        loop_fraction: float = 0.2,
        render_scale: int = 8,
        env_id: str = "jaxmb:MiniPacman-v0",
    ):
        rooms = np.prod(lattice_size(height, width))  # also validates the size
        if not 1 <= num_ghosts < rooms:
            raise ValueError(f"num_ghosts must be in [1, {rooms}), got {num_ghosts}")
        self.height, self.width, self.num_ghosts = height, width, num_ghosts
        self.loop_fraction = float(loop_fraction)
        self.render_scale = int(render_scale)
        self.distance_iterations = height + width
        self.id = env_id
        self._params = MiniPacmanParams() if params is None else params
        shape = (height, width, NUM_CHANNELS)
        self.observation_space = gymnasium.spaces.Box(0.0, 1.0, shape, np.float32)

    def __repr__(self) -> str:
        return f"MiniPacman({self.height}x{self.width}, num_ghosts={self.num_ghosts})"

    @property
    def num_actions(self) -> int:
        return len(MOVES)

    def default_params(self) -> MiniPacmanParams:
        """The params this env was built with."""
        return self._params

    # ------------------------------------------------------------------ levels

    def level_layout(self, level: jax.Array, params: MiniPacmanParams) -> MiniPacmanState:
        """The start state of level `level` (`int32[]`), a deterministic function of it."""
        key = jax.random.fold_in(jax.random.key(_LEVEL_SALT), level)
        cells = self.height * self.width
        bits = BitStream.draw(key, maze_bits(self.height, self.width) + 1 + 2 * cells)
        walls = walls_from_bits(bits, self.height, self.width, self.loop_fraction)
        room_rows, room_cols = lattice_size(self.height, self.width)
        room = (bits.take(()) % (room_rows * room_cols)).astype(jnp.int32)
        pacman = jnp.stack(jnp.divmod(room, room_cols)) * 2 + 1
        at_pacman = self._cell_mask(pacman)
        rows, cols = jnp.indices((self.height, self.width))
        manhattan = jnp.abs(rows - pacman[0]) + jnp.abs(cols - pacman[1])
        eligible = ~walls & ~at_pacman
        # Ghosts start far from Pacman where the maze allows it.
        far = manhattan >= (self.height + self.width) // 3
        ghost_masks = pick_cells(bits, eligible, far, self.num_ghosts)  # [G, H, W]
        pill_masks = pick_cells(bits, eligible, jnp.zeros_like(far), MAX_PILLS)
        wanted = jnp.arange(MAX_PILLS) < _int(params.num_pills)
        pills = jnp.any(pill_masks & wanted[:, None, None], axis=0)
        ghosts = jnp.stack(
            [jnp.sum(ghost_masks * rows, (1, 2)), jnp.sum(ghost_masks * cols, (1, 2))], axis=-1
        ).astype(jnp.int32)
        return MiniPacmanState(
            walls=walls,
            food=eligible & ~pills,
            pills=pills,
            pacman=pacman.astype(jnp.int32),
            ghosts=ghosts,
            ghost_homes=ghosts,
            ghost_eaten=jnp.zeros((self.num_ghosts,), bool),
            power_timer=jnp.zeros((), jnp.int32),
            level=jnp.asarray(level, jnp.int32),
            time=jnp.zeros((), jnp.int32),
        )

    def _cell_mask(self, cells: jax.Array) -> jax.Array:
        return cell_mask(cells, self.height, self.width)

    # ------------------------------------------------------------------ protocol

    def reset(self, key: jax.Array, params: MiniPacmanParams) -> tuple[jax.Array, MiniPacmanState]:
        """Starts an episode on a level drawn from the params' range.

        Returns:
            `(obs float32[H, W, 7], state)`.
        """
        state = self.level_layout(draw_level(jax.random.bits(key, (2,)), params), params)
        return self.observe(state, params), state

    def step(
        self, key: jax.Array, state: MiniPacmanState, action: jax.Array, params: MiniPacmanParams
    ) -> core.StepResult:
        """One step, with auto-reset; see `Env.step` and the module docstring.

        Args:
            key: PRNG key.
            state: the current state.
            action: `int32[]` in [0, 5).
            params: `MiniPacmanParams`.

        Returns:
            `(obs float32[H, W, 7], state, reward float32[], terminated bool[],
            truncated bool[], info)`; `info["final_observation"]` as `Env.step` says.
        """
        action = jnp.asarray(action, jnp.int32)
        chex.assert_shape(action, ())
        bits = jax.random.bits(key, (self.num_ghosts * GHOST_BITS + 2,), jnp.uint32)
        next_state, reward, terminated = self.transition(bits[2:], state, action, params)
        truncated = (next_state.time >= _int(params.max_steps_in_episode)) & ~terminated
        done = terminated | truncated
        # One fresh level serves both a reset (done) and the next level (all food eaten).
        fresh = self.level_layout(draw_level(bits[:2], params), params)
        cleared = ~jnp.any(next_state.food)
        next_level = fresh.replace(time=next_state.time)
        final_observation = self.observe(next_state, params)
        next_state = jax.tree.map(
            lambda reset, advance, stay: jnp.where(done, reset, jnp.where(cleared, advance, stay)),
            fresh,
            next_level,
            next_state,
        )
        obs = self.observe(next_state, params)
        info = {"final_observation": jnp.where(done, final_observation, obs)}
        return obs, next_state, reward, terminated, truncated, info

    def action_mask(self, state: MiniPacmanState, params: MiniPacmanParams) -> jax.Array:
        """`bool[5]`, all True: walking into a wall is a noop."""
        del state, params
        return core.all_actions_legal(self.action_space)

    # ------------------------------------------------------------------ dynamics

    def transition(
        self, bits: jax.Array, state: MiniPacmanState, action: jax.Array, params: MiniPacmanParams
    ) -> tuple[MiniPacmanState, jax.Array, jax.Array]:
        """The step without time limit or resets: `(state, reward f32[], terminated bool[])`.

        `bits` are `uint32[G * GHOST_BITS]` random words for the ghosts. The returned state
        may have no food left; `step` then starts the next level.
        """
        target = state.pacman + jnp.asarray(MOVES)[action]
        blocked = jnp.any(state.walls & self._cell_mask(target))
        pacman = jnp.where(blocked, state.pacman, target)
        at_pacman = self._cell_mask(pacman)
        ate_food = jnp.any(state.food & at_pacman)
        ate_pill = jnp.any(state.pills & at_pacman)
        food = state.food & ~at_pacman
        pills = state.pills & ~at_pacman
        power_timer = jnp.where(
            ate_pill, _int(params.power_steps), jnp.maximum(state.power_timer - 1, 0)
        )
        ghost_eaten = state.ghost_eaten & ~ate_pill
        edible = (power_timer > 0) & ~ghost_eaten  # [G]
        moved = self.move_ghosts(bits, state.walls, state.ghosts, pacman, edible, params)
        hit = jnp.all(state.ghosts == pacman, -1) | jnp.all(moved == pacman, -1)  # [G]
        eaten = hit & edible
        killed = jnp.any(hit & ~edible)
        ghosts = jnp.where(eaten[:, None], state.ghost_homes, moved)
        mode = jnp.clip(_int(params.mode), 0, len(MODES) - 1)
        events = jnp.stack([jnp.ones((), jnp.int32), ate_food, ate_pill, jnp.sum(eaten), killed])
        events = events.astype(jnp.float32)
        reward = jnp.dot(jnp.asarray(REWARDS)[mode], events)
        rush_over = (mode == RUSH) & ate_pill & ~jnp.any(pills)
        next_state = state.replace(
            food=food,
            pills=pills,
            pacman=pacman,
            ghosts=ghosts,
            ghost_eaten=ghost_eaten | eaten,
            power_timer=power_timer,
            time=state.time + 1,
        )
        return next_state, reward, killed | rush_over

    def move_ghosts(
        self,
        bits: jax.Array,
        walls: jax.Array,
        ghosts: jax.Array,
        pacman: jax.Array,
        edible: jax.Array,
        params: MiniPacmanParams,
    ) -> jax.Array:
        """Each ghost's next cell: `int32[G, 2]` (see the module docstring for the policy).

        Args:
            bits: `uint32[G * GHOST_BITS]` random words.
            walls: `bool[H, W]`.
            ghosts: `int32[G, 2]` current cells.
            pacman: `int32[2]`, Pacman's cell after his move.
            edible: `bool[G]`, True for ghosts that flee.
            params: `MiniPacmanParams`.
        """
        num_ghosts = ghosts.shape[0]
        horizon = self.distance_iterations
        distance = distance_field(walls, pacman, horizon)
        rows, cols = jnp.indices(walls.shape)
        manhattan = jnp.abs(rows - pacman[0]) + jnp.abs(cols - pacman[1])
        metric = jnp.where(distance >= UNREACHED, horizon + manhattan, distance)
        # What lies at each move (noop, up, down, left, right) from every cell; the border is
        # wall, so wrapping around never matters.
        shifts = [(0, 0), (1, 0), (-1, 0), (1, 1), (-1, 1)]
        metric_next = jnp.stack([jnp.roll(metric, s, a) for s, a in shifts], -1)  # [H, W, 5]
        free_next = jnp.stack([~jnp.roll(walls, s, a) for s, a in shifts], -1)
        at_ghost = self._cell_mask(ghosts)[..., None]  # [G, H, W, 1]
        legal = jnp.any(at_ghost & free_next, axis=(1, 2)) & (jnp.arange(5) > 0)  # [G, 5]
        metric = jnp.sum(at_ghost * metric_next, axis=(1, 2)).astype(jnp.float32)
        noise = BitStream(bits.reshape(num_ghosts, GHOST_BITS))
        tie_noise, random_score = noise.uniform((5,)), noise.uniform((5,))
        chase = noise.uniform((1,)) < params.ghost_chase_prob
        move_draw = noise.uniform((1,))
        # A fleeing ghost may stay put (at a cell farthest from Pacman, every move comes
        # closer); a chasing one always has a closer cell to go to. Ties break at random.
        greedy_legal = legal | (edible[:, None] & (jnp.arange(5) == 0))
        greedy_score = jnp.where(edible[:, None], metric, -metric)
        greedy_score = greedy_score + 0.1 * tie_noise
        greedy = one_hot_argmax(jnp.where(greedy_legal, greedy_score, -jnp.inf)) & greedy_legal
        wander = one_hot_argmax(jnp.where(legal, random_score, -1.0))
        direction = jnp.where(chase, greedy, wander & legal)  # [G, 5] one-hot or empty
        speed = jnp.where(edible, 0.5, 1.0) * params.ghost_speed
        moves = move_draw < speed[:, None]
        step = jnp.sum((direction & moves)[..., None] * jnp.asarray(MOVES), axis=1)
        return (ghosts + step).astype(jnp.int32)

    # ------------------------------------------------------------------ views

    def observe(self, state: MiniPacmanState, params: MiniPacmanParams) -> jax.Array:
        """The observation of `state`: `float32[H, W, 7]` (channels in the module docstring)."""
        edible = (state.power_timer > 0) & ~state.ghost_eaten
        at_ghost = self._cell_mask(state.ghosts)  # [G, H, W]
        power = state.power_timer / jnp.maximum(_int(params.power_steps), 1)
        channels = [
            state.walls,
            state.food,
            state.pills,
            self._cell_mask(state.pacman),
            jnp.any(at_ghost & ~edible[:, None, None], axis=0),
            jnp.any(at_ghost & edible[:, None, None], axis=0),
            jnp.full(state.walls.shape, jnp.clip(power, 0.0, 1.0)),
        ]
        return jnp.stack([c.astype(jnp.float32) for c in channels], axis=-1)

    def render(self, state: MiniPacmanState, params: MiniPacmanParams) -> jax.Array:
        """An RGB picture of `state`: `uint8[H * k, W * k, 3]`, `k = render_scale`."""
        k = self.render_scale
        obs = self.observe(state, params) > 0.5
        centre = (jnp.arange(k) + 0.5 - k / 2) ** 2
        radius2 = centre[:, None] + centre[None, :]  # [k, k] squared distance to tile centre
        shapes = {
            "full": jnp.ones((k, k), bool),
            "dot": radius2 <= (k / 8) ** 2 + 0.5,
            "pill": radius2 <= (k / 3) ** 2,
            "disc": radius2 <= (k / 2) ** 2,
        }
        layers = [  # (channel, tile shape, colour), drawn in order
            (0, "full", (33, 33, 200)),
            (1, "dot", (255, 184, 151)),
            (2, "pill", (255, 105, 180)),
            (3, "disc", (255, 230, 0)),
            (4, "disc", (230, 0, 0)),
            (5, "disc", (0, 200, 255)),
        ]
        image = jnp.zeros((self.height * k, self.width * k, 3), jnp.uint8)
        for channel, shape, colour in layers:
            cells = jnp.repeat(jnp.repeat(obs[..., channel], k, 0), k, 1)
            mask = cells & jnp.tile(shapes[shape], (self.height, self.width))
            image = jnp.where(mask[..., None], jnp.asarray(colour, jnp.uint8), image)
        return image


def build(name: str, params: MiniPacmanParams | None = None) -> MiniPacman:
    """The registry's builder: `jaxmb:<name>` with `params` (None: defaults)."""
    if name not in ENV_NAMES:
        raise ValueError(f"unknown MiniPacman env {name!r}; known: {ENV_NAMES}")
    return MiniPacman(params, env_id=f"jaxmb:{name}")
