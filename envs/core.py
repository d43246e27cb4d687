"""The environment protocol every jaxmb environment satisfies.

The contract is gymnax 1.0's, which mirrors Gymnasium's five fields: `step` returns
`terminated` (the MDP ended, do not bootstrap) and `truncated` (a time limit, bootstrap)
apart, auto-resets, and keeps the observation it replaced in `info["final_observation"]`.
All mutable data lives in two pytrees, the env state and the params, so an env object is
a static description that can be closed over by `jax.jit`, `jax.vmap` and `lax.scan`.
"""

from __future__ import annotations

import inspect
from typing import Any, Protocol

import gymnasium
import jax
import jax.numpy as jnp

PyTree = Any
Observation = PyTree  # usually a float32 array of shape `observation_space.shape`
EnvState = PyTree
EnvParams = PyTree
Info = dict[str, Any]
StepResult = tuple[Observation, EnvState, jax.Array, jax.Array, jax.Array, Info]


class Env(Protocol):
    """A functional environment.

    Not `runtime_checkable`: on Python 3.11 `isinstance` would evaluate `num_actions`,
    which raises for continuous action spaces; use `missing_env_members` instead.

    Attributes:
        observation_space: space of one (unbatched) observation.
        action_space: space of one (unbatched) action.
        id: the registry id with its source prefix, e.g. `"gymnax:CartPole-v1"`.

    Optional members, looked up with `getattr` where used: `num_players` and `to_play(state)`
    for two-player games, `symmetries` (`jaxmb.envs.symmetry`) for
    `replay.augment_symmetries`, and `achievement_info_keys` (read through the function of
    that name below).

    `achievement_info_keys` maps an achievement's name (`"collect_wood"`) to the `info` key
    under which `step` reports it (`"Achievements/collect_wood"`): a value above 0 on the
    step an episode ends when that episode unlocked it at least once; values on other steps
    are not read. The training loop counts, per iteration, the ended episodes that unlocked
    each (`train/achievements/<name>`), and a run's summary turns the counts into success
    rates (`jaxmb.run.achievement_success_rates`). The craftax adapter declares Crafter's
    achievements this way (`jaxmb.envs.craftax_adapter`); for an env that declares none the
    loop logs no such metric and compiles the program it compiled before the hook existed.
    """

    observation_space: gymnasium.spaces.Space
    action_space: gymnasium.spaces.Space
    id: str

    @property
    def num_actions(self) -> int:
        """Number of discrete actions; raises `TypeError` for other action spaces."""
        ...

    def default_params(self) -> EnvParams:
        """Returns the params pytree the env was built with (vmappable)."""
        ...

    def reset(self, key: jax.Array, params: EnvParams) -> tuple[Observation, EnvState]:
        """Starts an episode.

        Args:
            key: PRNG key.
            params: params pytree.

        Returns:
            `(obs, state)`.
        """
        ...

    def step(
        self, key: jax.Array, state: EnvState, action: jax.Array, params: EnvParams
    ) -> StepResult:
        """Advances one step and starts a new episode when this one ends.

        Args:
            key: PRNG key.
            state: env state.
            action: one action from `action_space`.
            params: params pytree.

        Returns:
            `(obs, state, reward, terminated, truncated, info)`: `reward` a float32 scalar,
            `terminated` and `truncated` bool scalars. When the episode ended, `obs` and
            `state` already belong to the next episode and `info["final_observation"]` holds
            the last observation of the one that ended; otherwise it equals `obs`.
        """
        ...

    def action_mask(self, state: EnvState, params: EnvParams) -> jax.Array:
        """Returns `bool[num_actions]`, True where an action is legal in `state`."""
        ...


ENV_MEMBERS = (
    "observation_space",
    "action_space",
    "id",
    "num_actions",
    "default_params",
    "reset",
    "step",
    "action_mask",
)


def missing_env_members(env: Any) -> list[str]:
    """Names of `Env` members that `env` lacks, looked up without running properties."""
    return [name for name in ENV_MEMBERS if not _has_static(env, name)]


def _has_static(obj: Any, name: str) -> bool:
    try:
        inspect.getattr_static(obj, name)
    except AttributeError:
        return False
    return True


def num_actions(space: gymnasium.spaces.Space) -> int:
    """Returns the number of actions of a discrete action space.

    Args:
        space: a `gymnasium.spaces.Discrete` with `start == 0`.

    Returns:
        `space.n` as a Python int.

    Raises:
        TypeError: for any other kind of space (continuous actions need a discretising
            wrapper before search can use them).
        ValueError: for a `Discrete` space whose actions do not start at 0, since masks and
            policy logits index actions from 0.
    """
    if not isinstance(space, gymnasium.spaces.Discrete):
        raise TypeError(
            f"num_actions needs a Discrete action space, got {space!r}; "
            "discretise continuous actions with a wrapper first"
        )
    if int(space.start) != 0:
        raise ValueError(f"actions must be numbered from 0, got start={space.start}")
    return int(space.n)


def all_actions_legal(space: gymnasium.spaces.Space) -> jax.Array:
    """The mask of an env without illegal actions: `bool[num_actions]`, all True."""
    return jnp.ones((num_actions(space),), dtype=jnp.bool_)


def achievement_info_keys(env: Any) -> dict[str, str]:
    """The achievements `env` reports at episode ends, as `{name: info key}` (see `Env`);
    empty for an env that declares none."""
    return dict(getattr(env, "achievement_info_keys", None) or {})


def tree_where(pred: jax.Array, on_true: Any, on_false: Any) -> Any:
    """Picks between two pytrees of one structure, keeping `on_false`'s dtypes (a reset
    state may hold weakly typed scalars that would otherwise change a carry's type)."""

    def pick(a: Any, b: Any) -> jax.Array:
        b = jnp.asarray(b)
        return jnp.where(pred, a, b).astype(b.dtype)

    return jax.tree.map(pick, on_true, on_false)
