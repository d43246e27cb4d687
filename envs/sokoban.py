"""`jaxmb:Sokoban-v0`: Sokoban in pure JAX with procedurally generated, solvable levels.

The player pushes boxes onto targets in a walled room. Levels come from
`jaxmb.envs.sokoban_levels` (a random room, boxes placed on targets, then pulled away by
reverse play, so every level is solvable) and are a deterministic function of a level
index, drawn at every reset as Procgen draws its seeds: `start_level + uniform[0,
num_levels)`, or any index when `num_levels == 0`. "Train on 100 levels, test on unseen
ones" is therefore `make("jaxmb:Sokoban-v0", num_levels=100)` for training and
`start_level=100` (or `num_levels=0`) for testing.

Actions (`Discrete(4)`): 0 up, 1 down, 2 left, 3 right. A move into a box pushes it when the
cell beyond is free (floor, no box); a move into a wall or a blocked box leaves everything in
place (and still costs the step). There is no no-op action: gym-sokoban's no-op can only
waste a step, and leaving it out shrinks the search's branching factor from 5 to 4. Every
action is always legal, so `action_mask` is all True.

Rewards (gym-sokoban's values, params of the env): -0.1 every step, +1 when a push puts a box
on a target, -1 when a push takes one off, and +10 more on the step that puts the last box on
its target (that step earns -0.1 + 1 + 10), which terminates the episode. The time limit
(`max_steps_in_episode`, 120) truncates and never terminates; the step that solves on the
last allowed step is terminated only.

Observations: `float32[H, W, 7]`, one-hot per cell over `CHANNELS` (wall, floor, target,
box, box on target, player, player on target). `render` draws `uint8[H * k, W * k, 3]`.

Room size and box count decide array shapes, so they are static: `Sokoban(params)` fixes
them from the non-pytree fields `height`, `width`, `num_boxes` of `SokobanParams`. They live
in the params dataclass (as treedef metadata, never traced) so that `make` and YAML presets
can set them like any param: `make("jaxmb:Sokoban-v0", height=7, width=7, num_boxes=1)`
builds a 7x7 env, and `env.params: {height: 7, ...}` does the same from a config. Every
other field is an ordinary leaf that may be traced or vmapped; passing params whose static
fields differ from the env's is an error.

`step` auto-resets. Generating a level costs far more than a move, so generation runs inside
a loop whose trip count is zero where no episode ended; under `vmap` a step pays for it only
when some member's episode ends (see `sokoban_levels`).
"""

from __future__ import annotations

import chex
import flax.struct
import gymnasium
import jax
import jax.numpy as jnp
import numpy as np

from jaxmb.envs import core
from jaxmb.envs import sokoban_levels as levels

CHANNELS = ("wall", "floor", "target", "box", "box_on_target", "player", "player_on_target")
# Tile colours per channel (RGB), and the colour of the inner square drawn on top of them.
_BACKGROUND = np.array(
    [
        [90, 60, 40],  # wall
        [230, 220, 200],  # floor
        [230, 220, 200],  # target (on floor)
        [230, 220, 200],  # box
        [230, 220, 200],  # box on target
        [230, 220, 200],  # player
        [230, 220, 200],  # player on target
    ],
    np.uint8,
)
_FOREGROUND = np.array(
    [
        [90, 60, 40],
        [230, 220, 200],
        [220, 60, 60],  # target: small red square
        [200, 150, 50],  # box: large ochre square
        [60, 170, 70],  # box on target: large green square
        [40, 80, 200],  # player: blue
        [150, 60, 200],  # player on target: purple
    ],
    np.uint8,
)
_INSET = np.array([0.0, 0.0, 0.35, 0.12, 0.12, 0.22, 0.22])  # fraction of the tile left bare


@flax.struct.dataclass
class SokobanParams:
    """Params of `jaxmb:Sokoban-v0`.

    `height`, `width` and `num_boxes` are static (treedef metadata, see the module
    docstring); all other fields are leaves and may be traced or vmapped.
    """

    height: int = flax.struct.field(pytree_node=False, default=10)  # rows, walls included
    width: int = flax.struct.field(pytree_node=False, default=10)  # columns, walls included
    num_boxes: int = flax.struct.field(pytree_node=False, default=4)
    max_steps_in_episode: int = 120  # time limit; reaching it truncates
    num_levels: int = 0  # levels drawn from: [start_level, start_level + num_levels); 0: any
    start_level: int = 0
    reward_step: float = -0.1
    reward_box_on_target: float = 1.0
    reward_box_off_target: float = -1.0
    reward_solved: float = 10.0
    room_steps: int = 45  # steps of the digger that carves the room
    runs_per_box: int = 3  # reverse-play runs (pulls of one box along a line) per box
    seek_probability: float = 0.7  # chance that a run pulls a box still on its target
    max_rounds: int = 4  # rounds of 8 generation attempts before keeping the last attempt


@flax.struct.dataclass
class SokobanState:
    """State of one Sokoban episode."""

    walls: jax.Array  # [H, W] bool
    targets: jax.Array  # [H, W] bool
    boxes: jax.Array  # [H, W] bool
    player: jax.Array  # [2] int32, (row, col)
    level: jax.Array  # [] int32, the level index this episode plays
    time: jax.Array  # [] int32, steps taken in this episode


class Sokoban:
    """Sokoban behind the jaxmb `Env` protocol.

    Args:
        params: the params `default_params()` returns; `SokobanParams()` when None. Its
            static fields fix the room shape and box count of this env.
    """

    action_space = gymnasium.spaces.Discrete(4, dtype=np.int32)

    def __init__(self, params: SokobanParams | None = None, *, env_id: str = "jaxmb:Sokoban-v0"):
        params = SokobanParams() if params is None else params
        self.height, self.width, self.num_boxes = (
            int(params.height),
            int(params.width),
            int(params.num_boxes),
        )
        if min(self.height, self.width) < 3 or self.num_boxes < 1:
            raise ValueError(
                f"need a room of at least 3x3 and one box, got {self.height}x{self.width} "
                f"with {self.num_boxes} boxes"
            )
        if (self.height - 2) * (self.width - 2) < self.num_boxes + 2:
            raise ValueError(
                f"a {self.height}x{self.width} room has too few interior cells for "
                f"{self.num_boxes} boxes, the player and one free cell"
            )
        self._params = params
        self.id = env_id
        shape = (self.height, self.width, len(CHANNELS))
        self.observation_space = gymnasium.spaces.Box(0.0, 1.0, shape, np.float32)

    def __repr__(self) -> str:
        return f"Sokoban({self.height}x{self.width}, num_boxes={self.num_boxes})"

    @property
    def num_actions(self) -> int:
        return 4

    @property
    def shape(self) -> tuple[int, int]:
        """`(height, width)` of the room, walls included."""
        return self.height, self.width

    def default_params(self) -> SokobanParams:
        """The params this env was built with."""
        return self._params

    def _check(self, params: SokobanParams) -> None:
        static = (int(params.height), int(params.width), int(params.num_boxes))
        if static != (self.height, self.width, self.num_boxes):
            raise ValueError(
                f"params are for a {static[0]}x{static[1]} room with {static[2]} boxes, but "
                f"this env is {self.height}x{self.width} with {self.num_boxes}; build a new "
                "env from these params (jaxmb.envs.make or sokoban.build)"
            )

    # ------------------------------------------------------------------ levels and reset

    def generate(self, level: jax.Array, params: SokobanParams) -> tuple[SokobanState, jax.Array]:
        """The start state of level index `level` (`int32[]`).

        Returns:
            `(state, attempt int32[])`: `attempt` is the 1-based number of the generation
            attempt that was accepted, -1 if none was (see `sokoban_levels.generate_level`).
        """
        self._check(params)
        layout, attempts = levels.generate_level(level, self.shape, self.num_boxes, params)
        return self._start(layout, level), attempts

    def _start(self, layout: levels.Level, level: jax.Array) -> SokobanState:
        return SokobanState(
            walls=layout.walls,
            targets=layout.targets,
            boxes=layout.boxes,
            player=layout.player,
            level=jnp.asarray(level, jnp.int32),
            time=jnp.zeros((), jnp.int32),
        )

    def reset(self, key: jax.Array, params: SokobanParams) -> tuple[jax.Array, SokobanState]:
        """Draws a level index and generates its level.

        Returns:
            `(obs float32[H, W, 7], state)`.
        """
        state, _ = self.generate(levels.sample_level_index(key, params), params)
        return self.observation(state), state

    # ------------------------------------------------------------------ dynamics

    def move(
        self, state: SokobanState, action: jax.Array, params: SokobanParams
    ) -> tuple[SokobanState, jax.Array, jax.Array, jax.Array]:
        """One move without auto-reset: `(state, reward f32[], terminated, truncated)`."""
        step = jnp.asarray(levels.DIRECTIONS)[action]
        player = state.player
        ahead = player + step
        beyond = jnp.clip(player + 2 * step, 0, jnp.array([self.height - 1, self.width - 1]))
        free = ~state.walls & ~state.boxes
        push = state.boxes[ahead[0], ahead[1]] & free[beyond[0], beyond[1]]
        moves = free[ahead[0], ahead[1]] | push
        boxes = state.boxes.at[ahead[0], ahead[1]].set(state.boxes[ahead[0], ahead[1]] & ~push)
        boxes = boxes.at[beyond[0], beyond[1]].set(boxes[beyond[0], beyond[1]] | push)
        on_before = jnp.sum(state.boxes & state.targets)
        on_after = jnp.sum(boxes & state.targets)
        solved = on_after == self.num_boxes
        reward = (
            params.reward_step
            + params.reward_box_on_target * (on_after > on_before)
            + params.reward_box_off_target * (on_after < on_before)
            + params.reward_solved * solved
        )
        time = state.time + 1
        truncated = (time >= params.max_steps_in_episode) & ~solved
        state = state.replace(boxes=boxes, player=jnp.where(moves, ahead, player), time=time)
        return state, jnp.asarray(reward, jnp.float32), solved, truncated

    def step(
        self, key: jax.Array, state: SokobanState, action: jax.Array, params: SokobanParams
    ) -> core.StepResult:
        """Moves, and starts the next level when the episode ends.

        Args:
            key: PRNG key, used only to draw the next level index.
            state: current state.
            action: `int32[]` in `[0, 4)`.
            params: `SokobanParams`.

        Returns:
            `(obs float32[H, W, 7], state, reward float32[], terminated bool[], truncated
            bool[], info)` with `info["final_observation"]`.
        """
        self._check(params)
        action = jnp.asarray(action, jnp.int32)
        chex.assert_shape(action, ())
        state, reward, terminated, truncated = self.move(state, action, params)
        done = terminated | truncated
        final_obs = self.observation(state)
        # Generation runs only where an episode ended (see sokoban_levels' docstring).
        next_level = levels.sample_level_index(key, params)
        current = levels.Level(state.walls, state.targets, state.boxes, state.player)
        layout, _ = levels.generate_level(
            next_level, self.shape, self.num_boxes, params, needed=done, placeholder=current
        )
        state = core.tree_where(done, self._start(layout, next_level), state)
        obs = self.observation(state)
        info = {"final_observation": final_obs}
        return obs, state, reward, terminated, truncated, info

    def action_mask(self, state: SokobanState, params: SokobanParams) -> jax.Array:
        """`bool[4]`, all True: a blocked move is legal and leaves everything in place."""
        del state, params
        return core.all_actions_legal(self.action_space)

    # ------------------------------------------------------------------ views

    def observation(self, state: SokobanState) -> jax.Array:
        """One-hot `float32[H, W, 7]` over `CHANNELS`."""
        player = jnp.zeros(self.shape, bool).at[state.player[0], state.player[1]].set(True)
        walls, targets, boxes = state.walls, state.targets, state.boxes
        channels = [
            walls,
            ~walls & ~targets & ~boxes & ~player,
            targets & ~boxes & ~player,
            boxes & ~targets,
            boxes & targets,
            player & ~targets,
            player & targets,
        ]
        return jnp.stack(channels, axis=-1).astype(jnp.float32)

    def render(
        self, state: SokobanState, params: SokobanParams | None = None, *, tile_size: int = 8
    ) -> jax.Array:
        """Draws the room as `uint8[H * tile_size, W * tile_size, 3]` RGB.

        Each cell is a tile of its channel's colour with an inner square for targets, boxes
        and the player.
        """
        del params
        kinds = jnp.argmax(self.observation(state), axis=-1)  # [H, W]
        sprites = jnp.asarray(_sprites(tile_size))[kinds]  # [H, W, k, k, 3]
        image = sprites.transpose(0, 2, 1, 3, 4)
        return image.reshape(self.height * tile_size, self.width * tile_size, 3)


def _sprites(tile_size: int) -> np.ndarray:
    """`uint8[7, k, k, 3]`: one tile per channel."""
    centre = (np.arange(tile_size) + 0.5) / tile_size - 0.5
    distance = np.maximum(np.abs(centre)[:, None], np.abs(centre)[None, :])  # [k, k]
    inner = distance[None] < (0.5 - _INSET)[:, None, None]  # [7, k, k]
    inner &= _INSET[:, None, None] > 0
    return np.where(inner[..., None], _FOREGROUND[:, None, None], _BACKGROUND[:, None, None])


def build(name: str, params: SokobanParams | None) -> Sokoban:
    """Registry builder of `jaxmb:<name>`; `params=None` means `SokobanParams()`."""
    if name != "Sokoban-v0":
        raise ValueError(f"unknown Sokoban variant {name!r}; only 'Sokoban-v0' exists")
    return Sokoban(params, env_id=f"jaxmb:{name}")
