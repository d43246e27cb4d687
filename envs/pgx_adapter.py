"""Adapter from pgx 2.6.0 Go to the jaxmb `Env` protocol: a two-player zero-sum game.

pgx's `Env.step(state, action, key)` returns the next `State`, with `rewards` of shape
`[2]` (one per player id), `terminated`, `truncated` (never set by Go), `legal_action_mask`
and `current_player`, and does not reset. The adapter adds what the protocol needs:

- **Whose turn.** The env state is pgx's `State`; `state.current_player` (int32, 0 or 1) is
  the player id to move, and `to_play(state)` returns it. Player ids are not colours:
  `init` draws which id plays black, so either id may open a game. Turns strictly
  alternate within a game (a pass is a move). `info["to_play"]` is the player to move in
  the state `step` returns (after an auto-reset, the first player of the new game).
- **Observations** are pgx's, which are already from the perspective of the player to
  move: `float32[9, 9, 17]`, channels last; channel `2k` holds the mover's stones and
  `2k + 1` the opponent's, `k` steps ago (k = 0..7), and channel 16 is 1 when the player
  to move plays white. So one network serves both players.
- **Rewards** are from the MOVER's perspective: `reward = next_state.rewards[mover]` with
  `mover = state.current_player` before the step. Go pays only at the end: +1 when the
  move just made ends the game in the mover's win, -1 in its loss, 0 otherwise (komi 7.5
  under area scoring, so no draws). The opponent's reward is always `-reward`.
- **Termination.** A game ends after two consecutive passes, a move that repeats an
  earlier position (positional superko: the mover loses), or the step cap
  `max_termination_steps` (pgx's default `2 * 9 * 9 = 162` moves, after AlphaGo). pgx
  scores the board at the cap, so it is a real terminal: `terminated=True` and the reward
  is the game's result. `truncated` is pgx's flag, which Go never sets.
- **Illegal actions** pass through pgx's rule: an action outside `action_mask` ends the
  game at once (`terminated=True`) with reward -1 for the mover (+1 for the opponent).
  Agents should mask with `action_mask(state)`, pgx's `legal_action_mask` (82 actions:
  the 81 points, then pass at index 81, which is always legal).
- **Auto-reset.** The key is split into `key_step, key_reset`; when a game ends, `state`
  and `obs` are a new game's (`pgx.init(key_reset)`) and `info["final_observation"]` is the
  ended game's last observation, from the perspective of the player who would have moved
  next (pgx observes for `current_player`, which its step has already advanced).

Two-player use (search and targets are the caller's job): at each step the value of
`obs` belongs to `to_play(state)`; since players alternate, the value of the next state is
the opponent's, so a return from the mover's view is `r_t - discount * V(s_{t+1})`, which
is mctx's two-player convention of a discount of -1 in the recurrent function.

- **Symmetries.** `symmetries` is the board's 8 rotations and reflections
  (`jaxmb.envs.symmetry.BoardSymmetries`), for `replay.augment_symmetries`.

- **An optional early-pass rule** (`GoParams.no_pass_before`, default 0: standard rules).
  With N > 0, passing is illegal while fewer than N moves have been played, unless no other
  move is legal. The adapter writes this into the state's `legal_action_mask`, so
  `action_mask`, search with the env as its model, the random evaluation player and pgx's
  own illegal-action rule (an early pass ends the game, the passer losing) all see it. It
  is a training aid for small budgets: early in self-play a pass-heavy prior is a cheap
  local optimum (after one pass, the second wins for White on komi), and an agent that
  passes is beaten by any player who keeps placing stones. `docs/results/go.md` measures
  it; an agent trained with it can be evaluated under standard rules (N = 0).

Params: `GoParams` holds `komi`, `max_termination_steps` and `no_pass_before`. pgx takes the
first two as constructor arguments and closes over them as Python numbers, so all are static
(not pytree leaves):
`make("pgx:go_9x9", komi=6.5)` builds a new pgx env, and passing params that differ from
the env's own raises instead of being silently ignored.
"""

from __future__ import annotations

from typing import Any

import chex
import flax.struct
import gymnasium
import jax
import jax.numpy as jnp
import numpy as np

from jaxmb.envs import core
from jaxmb.envs.symmetry import BoardSymmetries

PGX_ENV_NAMES: tuple[str, ...] = ("go_9x9",)
"""pgx names (without the `pgx:` prefix) this adapter builds."""

_BOARD_SIZES = {"go_9x9": 9}


@flax.struct.dataclass
class GoParams:
    """Rules of the game; static, since pgx bakes them into the env it builds.

    Attributes:
        komi: points added to white's area score.
        max_termination_steps: moves after which the game is scored and ends.
        no_pass_before: passing is illegal while fewer moves than this have been played,
            unless it is the only legal move (0: standard rules, pass always legal).
    """

    komi: float = flax.struct.field(pytree_node=False, default=7.5)
    max_termination_steps: int = flax.struct.field(pytree_node=False, default=162)
    no_pass_before: int = flax.struct.field(pytree_node=False, default=0)


class PgxGoEnv:
    """pgx Go behind the jaxmb `Env` protocol; see the module docstring for conventions.

    Args:
        name: `"go_9x9"`.
        params: `GoParams`; its defaults when None.
    """

    def __init__(self, name: str, params: GoParams | None = None):
        from pgx.go import Go

        size = _BOARD_SIZES[name]
        self._params = GoParams() if params is None else params
        if self._params.no_pass_before < 0:
            raise ValueError(f"no_pass_before must be >= 0, got {self._params.no_pass_before}")
        self._pgx_env = Go(
            size=size,
            komi=float(self._params.komi),
            max_terminal_steps=int(self._params.max_termination_steps),
        )
        self.id = f"pgx:{name}"
        # pgx's `observation_shape` runs `init` op by op (seconds); tracing it is instant.
        example = jax.eval_shape(self._pgx_env.init, jax.random.key(0))
        self.observation_space = gymnasium.spaces.Box(
            0.0, 1.0, tuple(example.observation.shape), np.float32
        )
        self.action_space = gymnasium.spaces.Discrete(size * size + 1, dtype=np.int32)
        self._symmetries = BoardSymmetries(size, size * size + 1)

    def __repr__(self) -> str:
        return f"PgxGoEnv({self.id!r}, {self._params})"

    @property
    def pgx_env(self) -> Any:
        """The wrapped `pgx.go.Go`."""
        return self._pgx_env

    @property
    def num_actions(self) -> int:
        """Points of the board plus pass (82 for 9x9); pass is the last action."""
        return core.num_actions(self.action_space)

    @property
    def num_players(self) -> int:
        return 2

    @property
    def symmetries(self) -> BoardSymmetries:
        """The board's 8 rotations and reflections (pass unchanged). Go's rules, komi and
        Tromp-Taylor scoring are the same under each, and pgx's observation planes are
        board-shaped, so `replay.augment_symmetries` may use them."""
        return self._symmetries

    def default_params(self) -> GoParams:
        """The `GoParams` this env was built with."""
        return self._params

    def _check_params(self, params: GoParams) -> None:
        if params != self._params:
            raise ValueError(
                f"{self.id} was built with {self._params} and cannot play {params}: "
                "pgx fixes komi and the step cap when it builds the env; build one with "
                f'jaxmb.envs.make("{self.id}", komi=..., max_termination_steps=...)'
            )

    def reset(self, key: jax.Array, params: GoParams) -> tuple[jax.Array, Any]:
        """Starts a game; returns `(obs float32[9, 9, 17], pgx State)`."""
        self._check_params(params)
        state = self._restrict_pass(self._pgx_env.init(key))
        return state.observation.astype(jnp.float32), state

    def _restrict_pass(self, state: Any) -> Any:
        """Applies `no_pass_before` to `state.legal_action_mask` (pgx checks moves against
        the state's mask, so a masked pass is an illegal action there too)."""
        limit = self._params.no_pass_before
        if limit == 0:
            return state
        mask = state.legal_action_mask
        early = (state._step_count < limit) & ~state.terminated
        others = jnp.any(mask[:-1])
        return state.replace(legal_action_mask=mask.at[-1].set(mask[-1] & ~(early & others)))

    def step(
        self, key: jax.Array, state: Any, action: jax.Array, params: GoParams
    ) -> core.StepResult:
        """Plays `action` for `to_play(state)` and starts a new game when this one ends.

        Args:
            key: PRNG key, split into `key_step, key_reset`.
            state: pgx `State`.
            action: `int32[]` in `[0, num_actions)`; `num_actions - 1` passes.
            params: the env's `GoParams`.

        Returns:
            See `Env.step`; `reward` is the mover's. `info` holds `final_observation` and
            `to_play` (`int32[]`, the player to move in the returned state).
        """
        self._check_params(params)
        action = jnp.asarray(action, jnp.int32)
        chex.assert_shape(action, ())
        key_step, key_reset = jax.random.split(key)
        mover = state.current_player
        next_state = self._restrict_pass(self._pgx_env.step(state, action, key_step))
        reward = next_state.rewards[mover].astype(jnp.float32)
        terminated = jnp.asarray(next_state.terminated, jnp.bool_)
        truncated = jnp.asarray(next_state.truncated, jnp.bool_)
        final_obs = next_state.observation.astype(jnp.float32)
        reset_obs, reset_state = self.reset(key_reset, params)
        done = jnp.logical_or(terminated, truncated)
        next_state = core.tree_where(done, reset_state, next_state)
        info = {"final_observation": final_obs, "to_play": next_state.current_player}
        return (
            jnp.where(done, reset_obs, final_obs),
            next_state,
            reward,
            terminated,
            truncated,
            info,
        )

    def to_play(self, state: Any) -> jax.Array:
        """`int32[]`: the id (0 or 1) of the player to move in `state`, whose view `obs` is."""
        return state.current_player

    def action_mask(self, state: Any, params: GoParams) -> jax.Array:
        """`bool[num_actions]`: pgx's `legal_action_mask` (pass, the last action, is legal
        under standard rules, `no_pass_before` aside; suicide, occupied points and simple ko
        are not)."""
        del params
        return state.legal_action_mask


def build(name: str, params: GoParams | None = None) -> PgxGoEnv:
    """Builds the adapter for a pgx name.

    Args:
        name: one of `PGX_ENV_NAMES`.
        params: `GoParams`; the defaults when None.

    Raises:
        ValueError: for a name this adapter does not expose.
    """
    if name not in PGX_ENV_NAMES:
        raise ValueError(f"unknown pgx env {name!r}; expected one of {PGX_ENV_NAMES}")
    return PgxGoEnv(name, params)
