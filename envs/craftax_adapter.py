"""Adapter from craftax 1.6.1 environments to the jaxmb `Env` protocol.

craftax keeps the gymnax ≤0.0.9 API: `step` returns five items
`(obs, state, reward, done, info)` and auto-resets inside its own `EnvironmentAutoReset`,
with `done` the OR of every reason an episode ends (`is_game_over`):

- Craftax-Classic: `timestep >= max_timesteps`, the player standing in lava, or
  `player_health <= 0`;
- Craftax (full): `timestep >= max_timesteps`, `player_health <= 0`, or the boss beaten.

The time limit is a truncation (bootstrap); the others end the MDP. The adapter therefore
steps the non-auto-reset env (`step_env`) and resets itself, so it can

- split `done`: `terminated` is craftax's own `is_terminal` evaluated with the time limit
  lifted (so any end that craftax adds later counts as termination without an edit here),
  and `truncated` is `state.timestep >= params.max_timesteps` where the step did not
  terminate. When death and the time limit fall on the same step, terminated wins and
  truncated is False, as Gymnasium specifies; `terminated | truncated` always equals
  craftax's `done`;
- keep the observation of the ended episode in `info["final_observation"]`.

The key is split exactly as craftax's auto-reset splits it (`key_step, key_reset`), so for
the same keys and actions the adapter reproduces `env.step` of craftax's auto-reset envs
step for step, resets included (`tests/envs/test_craftax_adapter.py` checks this).

`info` keeps craftax's scalars: `Achievements/<name>` (100 for each achievement unlocked,
reported only on the step an episode ends, through either cause, 0 elsewhere) and, for
Classic, `score` (craftax's geometric-mean score, likewise at episode ends). craftax's
`discount` is 0 at the time limit too, so the adapter replaces it by
`1 - terminated`. `final_observation` is added.

The env declares those achievement keys as its `achievement_info_keys` (`{name:
"Achievements/<name>"}`, the `Env` protocol's optional member): Classic's 22, which are
Crafter's, and the full game's 67, read from craftax's own `Achievement` enum. The training
loop counts the ended episodes that unlocked each (`train/achievements/<name>`, per
iteration), and a run's `summary.json` gives each achievement's success rate and the run's
Crafter score.

The Crafter score follows Hafner (2021), "Benchmarking the Spectrum of Agent Capabilities":
with `s_i` the success rate of achievement `i` in percent (the share of all training
episodes of the run in which it was unlocked at least once),

    S = exp(mean_i ln(1 + s_i)) - 1,

a number in [0, 100]. The offset of 1 keeps an achievement that is never unlocked from
zeroing the whole score, and the mean of logarithms (a geometric mean) counts a rise in a
rare achievement's rate for more than the same rise in a common one's, so the score
rewards progress on the hard achievements. `crafter_score` computes it from the rates;
the full game's score applies the same formula to its 67 achievements (the Craftax paper
reports returns instead, so that figure has no published counterpart). craftax's own
`info["score"]` is the same formula applied to one episode's 0/100 flags, not the run's
score.

Observations are float32: symbolic ones a flat vector, pixel ones `[H, W, C]` with
channels last (63 x 63 x 3 for Classic) in [0, 1]. Classic's symbolic and pixel
observations stay in craftax's declared [0, 1]; the full game's symbolic observation does
not (health, food and mana are divided by 10 but grow past 10 with attributes, armour
enchantments are 0..2, and health is not clamped at 0), so `Craftax-Symbolic-v1` declares
an unbounded Box.

Params are craftax's own `EnvParams` (a `flax.struct` dataclass: `max_timesteps`,
`day_length`, mob settings...), passed through, so `make(id, max_timesteps=1000)` works.
Shapes (map size and the like) live in craftax's `StaticEnvParams` on the env object.
Every action is always legal.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import chex
import gymnasium
import jax
import jax.numpy as jnp
import numpy as np

from jaxmb.envs import core

CRAFTAX_ENV_NAMES: tuple[str, ...] = (
    "Craftax-Classic-Symbolic-v1",
    "Craftax-Classic-Pixels-v1",
    "Craftax-Symbolic-v1",
)
"""craftax names (without the `craftax:` prefix) this adapter builds."""

# Observations that leave craftax's declared [0, 1] bounds (see the module docstring).
_UNBOUNDED_OBSERVATIONS = frozenset({"Craftax-Symbolic-v1"})

# A time limit no episode reaches, to ask craftax whether a state is terminal for any
# other reason.
_NO_TIME_LIMIT = np.iinfo(np.int32).max


class CraftaxEnv:
    """A craftax environment behind the jaxmb `Env` protocol.

    Args:
        craftax_env: a craftax env WITHOUT auto-reset (e.g.
            `CraftaxClassicSymbolicEnvNoAutoReset`); the adapter resets itself.
        params: craftax `EnvParams`; craftax's defaults when None.
        env_id: the registry id, e.g. `"craftax:Craftax-Classic-Symbolic-v1"`.
    """

    def __init__(self, craftax_env: Any, params: Any = None, *, env_id: str):
        self._env = craftax_env
        self._params = craftax_env.default_params if params is None else params
        self.id = env_id
        name = env_id.split(":", 1)[-1]
        box = craftax_env.observation_space(self._params)
        shape = tuple(int(d) for d in box.shape)
        if name in _UNBOUNDED_OBSERVATIONS:
            low, high = -np.inf, np.inf
        else:
            low, high = float(box.low), float(box.high)
        self.observation_space = gymnasium.spaces.Box(low, high, shape, np.float32)
        self.action_space = gymnasium.spaces.Discrete(
            int(craftax_env.action_space(self._params).n), dtype=np.int32
        )
        self.achievement_info_keys = {
            name: f"Achievements/{name}" for name in achievement_names(craftax_env)
        }

    def __repr__(self) -> str:
        return f"CraftaxEnv({self.id!r})"

    @property
    def craftax_env(self) -> Any:
        """The wrapped craftax env (without auto-reset)."""
        return self._env

    @property
    def num_actions(self) -> int:
        """Number of discrete actions (17 for Classic, 43 for the full game)."""
        return core.num_actions(self.action_space)

    def default_params(self) -> Any:
        """The craftax `EnvParams` this adapter was built with."""
        return self._params

    def reset(self, key: jax.Array, params: Any) -> tuple[jax.Array, Any]:
        """Generates a new world; returns `(obs[*observation_space.shape] f32, state)`."""
        obs, state = self._env.reset_env(key, params)
        return jnp.asarray(obs, jnp.float32), state

    def is_terminated(self, state: Any, params: Any) -> jax.Array:
        """`bool[]`: `state` ends the game for a reason other than the time limit."""
        return jnp.asarray(
            self._env.is_terminal(state, params.replace(max_timesteps=_NO_TIME_LIMIT)), jnp.bool_
        )

    def is_truncated(self, state: Any, params: Any) -> jax.Array:
        """`bool[]`: `state` reached the time limit and the game did not otherwise end."""
        time_up = state.timestep >= params.max_timesteps
        return jnp.logical_and(time_up, ~self.is_terminated(state, params))

    def step(self, key: jax.Array, state: Any, action: jax.Array, params: Any) -> core.StepResult:
        """Steps craftax and starts a new world when the episode ends.

        Args:
            key: PRNG key, split into a step key and a reset key as craftax does.
            state: craftax `EnvState`.
            action: `int32[]`.
            params: craftax `EnvParams`.

        Returns:
            See `Env.step`. `info` holds craftax's scalar infos (achievements, score),
            `discount` (`1 - terminated`) and `final_observation`.
        """
        action = jnp.asarray(action, jnp.int32)
        chex.assert_shape(action, ())
        key_step, key_reset = jax.random.split(key)
        obs, next_state, reward, _, craftax_info = self._env.step_env(
            key_step, state, action, params
        )
        obs = jnp.asarray(obs, jnp.float32)
        terminated = self.is_terminated(next_state, params)
        truncated = self.is_truncated(next_state, params)
        reset_obs, reset_state = self.reset(key_reset, params)
        done = jnp.logical_or(terminated, truncated)
        info = {name: value for name, value in craftax_info.items() if jnp.ndim(value) == 0}
        info["discount"] = 1.0 - terminated.astype(jnp.float32)
        info["final_observation"] = obs
        return (
            jnp.where(done, reset_obs, obs),
            core.tree_where(done, reset_state, next_state),
            jnp.asarray(reward, jnp.float32),
            terminated,
            truncated,
            info,
        )

    def action_mask(self, state: Any, params: Any) -> jax.Array:
        """`bool[num_actions]`, all True: every craftax action is always allowed."""
        del state, params
        return core.all_actions_legal(self.action_space)


def build(name: str, params: Any = None) -> CraftaxEnv:
    """Builds the adapter for a craftax name such as `"Craftax-Classic-Symbolic-v1"`.

    Args:
        name: one of `CRAFTAX_ENV_NAMES`.
        params: craftax `EnvParams`; the defaults when None.

    Raises:
        ValueError: for a name this adapter does not expose.
    """
    if name not in CRAFTAX_ENV_NAMES:
        raise ValueError(f"unknown craftax env {name!r}; expected one of {CRAFTAX_ENV_NAMES}")
    from craftax.craftax_env import make_craftax_env_from_name

    craftax_env = make_craftax_env_from_name(name, auto_reset=False)
    return CraftaxEnv(craftax_env, params, env_id=f"craftax:{name}")


def achievement_names(craftax_env: Any) -> tuple[str, ...]:
    """The achievements of a craftax env, lower-cased as its `info` names them, in the order
    of craftax's `Achievement` enum: 22 for Classic (Crafter's), 67 for the full game."""
    if type(craftax_env).__module__.startswith("craftax.craftax_classic"):
        from craftax.craftax_classic.constants import Achievement
    else:
        from craftax.craftax.constants import Achievement
    return tuple(achievement.name.lower() for achievement in Achievement)


def crafter_score(success_rates_percent: Mapping[str, float] | Iterable[float]) -> float:
    """The Crafter score of a run (Hafner 2021): `exp(mean_i ln(1 + s_i)) - 1`.

    Args:
        success_rates_percent: the success rate `s_i` of every achievement, in percent
            (0 to 100): a sequence, or a mapping from names to rates. The score is defined
            over all of an env's achievements (Crafter's 22), never-unlocked ones included
            at 0.

    Returns:
        The score, in [0, 100].

    Raises:
        ValueError: for no rates, or a rate outside [0, 100] (NaN included).
    """
    if isinstance(success_rates_percent, Mapping):
        success_rates_percent = success_rates_percent.values()
    rates = np.asarray(list(success_rates_percent), np.float64)
    if rates.ndim != 1 or rates.size == 0:
        raise ValueError(f"expected a flat, non-empty list of rates, got shape {rates.shape}")
    if not np.all((rates >= 0) & (rates <= 100)):
        raise ValueError(f"success rates are percentages in [0, 100], got {rates.tolist()}")
    return float(np.exp(np.mean(np.log1p(rates))) - 1.0)
