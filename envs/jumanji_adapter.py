"""`jumanji:Sokoban-v0`: jumanji 1.1.2's Sokoban behind the jaxmb `Env` protocol, offline.

jumanji's default `Sokoban()` downloads DeepMind's Boxoban levels from the Hugging Face hub
when it is constructed, which fails on a machine without network access. The adapter never
builds that generator. Its `levels` param picks where levels come from:

- `"toy"` (default): jumanji's `ToyGenerator`, two fixed 10x10 levels with 4 boxes;
- `"simple"`: jumanji's `SimpleSolveGenerator`, one easy level (4 boxes in a row under 4
  targets);
- a path to Boxoban levels the user already has: a directory of Boxoban `.txt` files (as in
  DeepMind's `boxoban-levels` repository, e.g. `.../unfiltered/train`), one such file, or a
  `.npy` array `[N, 10, 10, 2]` (fixed grid, variable grid) as in InstaDeep's Hugging Face
  copy. Each reset draws one of the loaded levels uniformly.

For our own procedurally generated Sokoban, with `num_levels`/`start_level` for
generalisation studies, use `jaxmb:Sokoban-v0`.

Dynamics and rewards are jumanji's, unchanged: actions 0 up, 1 right, 2 down, 3 left (note:
not the order of `jaxmb:Sokoban-v0`); -0.1 a step, +1 for a box pushed onto a target, -1
for one pushed off, +10 when all 4 boxes are on targets, which ends the episode.

jumanji ends an episode at its time limit with `termination` (discount 0). The adapter
splits the two causes: `terminated` is jumanji's `level_complete`, and `truncated` is the
time limit reached on a step that did not solve the level (bootstrap). The time limit is
the traceable param `max_steps_in_episode` (jumanji's `time_limit`, 120); the jumanji env
is built with a limit no episode reaches so that only the adapter decides.

Observations are `float32[10, 10, 7]`: one-hot per cell over `CHANNELS`, the codes of
jumanji's combined grid (`Sokoban.grid_combine`). `step` auto-resets, drawing the next
level with the step's key, and keeps the last observation in `info["final_observation"]`.
Every action is always legal. `render` draws `uint8` RGB.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import chex
import flax.struct
import gymnasium
import jax
import jax.numpy as jnp
import numpy as np

from jaxmb.envs import core

JUMANJI_ENV_NAMES: tuple[str, ...] = ("Sokoban-v0",)
"""jumanji names (without the `jumanji:` prefix) this adapter builds."""

CHANNELS = (
    "empty",
    "wall",
    "target",
    "agent",
    "box",
    "agent_on_target",
    "box_on_target",
)
"""Observation channels, in the order of jumanji's grid codes 0..6."""

GRID_SIZE = 10
_NO_TIME_LIMIT = int(np.iinfo(np.int32).max)
_COLOURS = np.array(
    [
        [230, 220, 200],  # empty floor
        [90, 60, 40],  # wall
        [220, 60, 60],  # target
        [40, 80, 200],  # agent
        [200, 150, 50],  # box
        [150, 60, 200],  # agent on target
        [60, 170, 70],  # box on target
    ],
    np.uint8,
)
# Boxoban text characters -> (fixed code, variable code), jumanji's mapping.
_CHARACTERS = {"#": (1, 0), ".": (2, 0), "@": (0, 3), "$": (0, 4), " ": (0, 0)}


@flax.struct.dataclass
class JumanjiSokobanParams:
    """Params of `jumanji:Sokoban-v0`.

    `levels` is static (it decides which arrays the env holds): build a new env with
    `make("jumanji:Sokoban-v0", levels=...)` to change it.
    """

    levels: str = flax.struct.field(pytree_node=False, default="toy")
    max_steps_in_episode: int = 120  # jumanji's time_limit; reaching it truncates


def parse_boxoban_text(text: str) -> tuple[np.ndarray, np.ndarray]:
    """Parses Boxoban levels (`; <index>` followed by 10 rows of `#`, `.`, `@`, `$`, ` `).

    Returns:
        `(fixed, variable)`, each `uint8[N, 10, 10]` in jumanji's codes.

    Raises:
        ValueError: for a level that is not 10x10 or holds another character.
    """
    blocks: list[list[str]] = []
    for line in text.splitlines():
        if line.startswith(";"):
            blocks.append([])
        elif line.strip() and blocks:
            blocks[-1].append(line.rstrip("\n"))
    fixed, variable = [], []
    for index, rows in enumerate(blocks):
        rows = [row.ljust(GRID_SIZE) for row in rows]
        if len(rows) != GRID_SIZE or any(len(row) != GRID_SIZE for row in rows):
            raise ValueError(f"Boxoban level {index} is not {GRID_SIZE}x{GRID_SIZE}: {rows}")
        unknown = {c for row in rows for c in row} - set(_CHARACTERS)
        if unknown:
            raise ValueError(f"Boxoban level {index} has unknown characters {sorted(unknown)}")
        fixed.append([[_CHARACTERS[c][0] for c in row] for row in rows])
        variable.append([[_CHARACTERS[c][1] for c in row] for row in rows])
    if not fixed:
        raise ValueError("no Boxoban levels found (a level starts with a '; <index>' line)")
    return np.asarray(fixed, np.uint8), np.asarray(variable, np.uint8)


def load_levels(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Loads Boxoban levels from a directory of `.txt` files, one `.txt` file, or a `.npy`.

    Returns:
        `(fixed, variable)`, each `uint8[N, 10, 10]`.

    Raises:
        FileNotFoundError: when `path` does not exist or a directory holds no `.txt` file.
        ValueError: for a malformed file.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(
            f"Boxoban levels not found at {str(path)!r}; give 'toy', 'simple', a directory "
            "of Boxoban .txt files, one .txt file, or a .npy array [N, 10, 10, 2]"
        )
    if path.suffix == ".npy":
        array = np.load(path)
        if array.ndim != 4 or array.shape[1:] != (GRID_SIZE, GRID_SIZE, 2):
            raise ValueError(f"{path} holds an array of shape {array.shape}, not [N, 10, 10, 2]")
        return array[..., 0].astype(np.uint8), array[..., 1].astype(np.uint8)
    files = sorted(path.glob("*.txt")) if path.is_dir() else [path]
    if not files:
        raise FileNotFoundError(f"no Boxoban .txt files in {path}")
    parts = [parse_boxoban_text(f.read_text()) for f in files]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _level_generator(levels: str) -> Any:
    """A jumanji `Generator` for `levels`; never one that downloads."""
    from jumanji.environments.routing.sokoban import generator as generators

    if levels == "toy":
        return generators.ToyGenerator()
    if levels == "simple":
        return generators.SimpleSolveGenerator()
    fixed, variable = load_levels(levels)

    class _ArrayGenerator(generators.Generator):
        """Draws one of the given levels uniformly at each reset."""

        def __init__(self) -> None:
            super().__init__()
            self._fixed_grids = jnp.asarray(fixed)
            self._variable_grids = jnp.asarray(variable)

        def __call__(self, rng_key: jax.Array) -> Any:
            from jumanji.environments.routing.sokoban.types import State

            key, idx_key = jax.random.split(rng_key)
            index = jax.random.randint(idx_key, (), 0, self._fixed_grids.shape[0])
            variable_grid = self._variable_grids[index]
            return State(
                key=key,
                fixed_grid=self._fixed_grids[index],
                variable_grid=variable_grid,
                agent_location=self.get_agent_coordinates(variable_grid),
                step_count=jnp.array(0, jnp.int32),
            )

    return _ArrayGenerator()


class JumanjiSokoban:
    """jumanji's Sokoban behind the jaxmb `Env` protocol (see the module docstring).

    Args:
        params: `JumanjiSokobanParams`; the defaults when None.
    """

    action_space = gymnasium.spaces.Discrete(4, dtype=np.int32)
    observation_space = gymnasium.spaces.Box(
        0.0, 1.0, (GRID_SIZE, GRID_SIZE, len(CHANNELS)), np.float32
    )

    def __init__(self, params: JumanjiSokobanParams | None = None):
        from jumanji.environments import Sokoban

        self._params = JumanjiSokobanParams() if params is None else params
        self.levels = str(self._params.levels)
        self._env = Sokoban(generator=_level_generator(self.levels), time_limit=_NO_TIME_LIMIT)
        self.id = "jumanji:Sokoban-v0"

    def __repr__(self) -> str:
        return f"JumanjiSokoban(levels={self.levels!r})"

    @property
    def jumanji_env(self) -> Any:
        """The wrapped `jumanji.environments.Sokoban` (its time limit is never reached)."""
        return self._env

    @property
    def num_actions(self) -> int:
        return 4

    def default_params(self) -> JumanjiSokobanParams:
        """The params this env was built with."""
        return self._params

    def _check(self, params: JumanjiSokobanParams) -> None:
        if str(params.levels) != self.levels:
            raise ValueError(
                f"params use levels {params.levels!r} but this env was built for "
                f"{self.levels!r}; build a new env with make('jumanji:Sokoban-v0', levels=...)"
            )

    def observe(self, state: Any) -> jax.Array:
        """`float32[10, 10, 7]`: one-hot of jumanji's combined grid."""
        grid = self._env.grid_combine(state.variable_grid, state.fixed_grid)
        return jax.nn.one_hot(grid, len(CHANNELS), dtype=jnp.float32)

    def reset(self, key: jax.Array, params: JumanjiSokobanParams) -> tuple[jax.Array, Any]:
        """Draws a level; returns `(obs, state)` with `state` jumanji's `State`."""
        self._check(params)
        state, _ = self._env.reset(key)
        return self.observe(state), state

    def step(
        self, key: jax.Array, state: Any, action: jax.Array, params: JumanjiSokobanParams
    ) -> core.StepResult:
        """Steps jumanji and draws a new level (with `key`) when the episode ends.

        Returns:
            See `Env.step`. `info` holds `solved`, `prop_correct_boxes` (jumanji's extras),
            `discount` (`1 - terminated`) and `final_observation`.
        """
        self._check(params)
        action = jnp.asarray(action, jnp.int32)
        chex.assert_shape(action, ())
        next_state, timestep = self._env.step(state, action)
        obs = self.observe(next_state)
        terminated = jnp.asarray(self._env.level_complete(next_state), jnp.bool_)
        truncated = (next_state.step_count >= params.max_steps_in_episode) & ~terminated
        done = terminated | truncated
        reset_obs, reset_state = self.reset(key, params)
        info = {
            "solved": jnp.asarray(timestep.extras["solved"], jnp.bool_),
            "prop_correct_boxes": jnp.asarray(timestep.extras["prop_correct_boxes"], jnp.float32),
            "discount": 1.0 - terminated.astype(jnp.float32),
            "final_observation": obs,
        }
        return (
            jnp.where(done, reset_obs, obs),
            core.tree_where(done, reset_state, next_state),
            jnp.asarray(timestep.reward, jnp.float32),
            terminated,
            truncated,
            info,
        )

    def action_mask(self, state: Any, params: JumanjiSokobanParams) -> jax.Array:
        """`bool[4]`, all True: a move into a wall leaves the agent in place."""
        del state, params
        return core.all_actions_legal(self.action_space)

    def render(self, state: Any, tile: int = 8) -> np.ndarray:
        """`uint8[10 * tile, 10 * tile, 3]`: one colour per cell code (see `_COLOURS`)."""
        grid = np.asarray(self._env.grid_combine(state.variable_grid, state.fixed_grid))
        image = _COLOURS[grid]
        return np.repeat(np.repeat(image, tile, axis=0), tile, axis=1)


def build(name: str, params: JumanjiSokobanParams | None = None) -> JumanjiSokoban:
    """Builds the adapter for a jumanji name (only `"Sokoban-v0"`).

    Raises:
        ValueError: for another name.
    """
    if name not in JUMANJI_ENV_NAMES:
        raise ValueError(f"unknown jumanji env {name!r}; expected one of {JUMANJI_ENV_NAMES}")
    return JumanjiSokoban(params)
