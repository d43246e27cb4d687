"""Adapter from MuJoCo Playground environments to the jaxmb `Env` protocol.

Playground (and brax, see `brax_adapter`) envs are objects with `reset(rng) -> State` and
`step(state, action) -> State`, where `State` carries `obs`, `reward`, `done`, `metrics` and
`info`. They have no time limit (Playground's training wrappers add it) and do not reset
themselves. `PhysicsEnv` adds what the jaxmb contract asks for:

- `terminated` is the upstream `done`, which marks a real end: in the DM Control suite
  only a simulation that diverged to NaN, in brax also a body that fell (hopper, humanoid).
- `truncated` is `step_count >= params.max_steps_in_episode` on a step that did not
  terminate (DM Control tasks: 1000 steps, a time limit only).
- auto-reset inside `step`, with the pre-reset observation in `info["final_observation"]`.
  `params.full_reset` picks how: True calls the upstream `reset` with the step's key (a
  fresh random start; both branches run every step, as jit cannot branch on data), False
  restores the first state of this env copy (what Playground's and brax's training
  wrappers do by default; one `where` per step). The default is True where a reset costs
  about one physics step (Acrobot: one forward pass) and False where it costs far more or
  buys nothing (Cheetah settles for 200 physics steps in `reset`; Humanoid's `reset` has
  no randomness).
- observations and rewards are float32, flags bool; a non-finite reward or observation
  (the NaN that makes the upstream env report `done`) is replaced by 0 so that a diverged
  simulation cannot put NaN into replay. The episode still ends as terminated.

Upstream states come out of `reset` and `step` with the same pytree structure but
differing weak types (Playground's reward, Cheetah's `data.time`, brax's `done`), which
makes `jax.jit(step)` compile twice: once for the state from `reset`, again for its own
output. The adapter strips weak types from every leaf it returns, so one compile serves
both.

Physics runs through MJX's JAX implementation (`impl="jax"`): Playground 0.2.0 defaults
to MuJoCo Warp, which is 5-20x slower on CPU. The action space is a float32 Box over the
actuators' `ctrlrange` (as brax's own Gymnasium wrapper declares it); every DM Control
task in Playground uses [-1, 1]. These envs have no discrete actions: wrap them in
`jaxmb.envs.discretize.Discretize` before search; `action_mask` raises until then.

Observations that Playground returns as a dict use the `"state"` entry (the proprioceptive
vector; pixel entries are not supported); the three registered tasks return plain arrays.

Two upstream differences from dm_control's suite are kept as they are (the tests pin both):
Playground reads position-dependent quantities (Acrobot's orientations and tip-to-target
reward, Cheetah's speed sensor) right after `mjx.step`, whose kinematics are those of the
positions before the step, so they lag dm_control's by one physics step; and its XMLs use
fewer solver iterations (Cheetah 4, Acrobot 2, where dm_control has 100) and Euler instead
of RK4 for Acrobot. Returns are close to dm_control's, not equal.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import chex
import flax
import gymnasium
import jax
import jax.numpy as jnp
import numpy as np

from jaxmb.envs import core

# Tasks whose upstream reset is about as cheap as a step and random (see the docstring).
_FULL_RESET_BY_DEFAULT = frozenset({"AcrobotSwingupSparse"})


@flax.struct.dataclass
class PlaygroundParams:
    """Params of a Playground env.

    Attributes:
        max_steps_in_episode: time limit in agent steps; reaching it truncates.
        full_reset: static; True resets to a fresh random start, False to the env copy's
            first state (see the module docstring).
        impl: static; the MJX implementation, `"jax"` or `"warp"`.
    """

    max_steps_in_episode: int = 1000
    full_reset: bool = flax.struct.field(pytree_node=False, default=False)
    impl: str = flax.struct.field(pytree_node=False, default="jax")


@flax.struct.dataclass
class PhysicsEnvState:
    """State of `PhysicsEnv`; a leading `[num_envs]` axis appears under `VectorEnv`."""

    env_state: Any  # the upstream State (mjx_env.State or brax State), no weak types
    first_state: Any  # upstream State right after reset, or None when params.full_reset
    step_count: jax.Array  # [] int32, steps taken in the running episode


def _strip_weak_type(x: Any) -> Any:
    x = jnp.asarray(x)
    if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
        return x
    return jax.lax.convert_element_type(x, x.dtype)


def _strong_types(tree: Any) -> Any:
    """The same pytree with no weak-typed leaves, so reset's and step's states match."""
    return jax.tree.map(_strip_weak_type, tree)


def _finite_or_zero(x: jax.Array) -> jax.Array:
    return jnp.where(jnp.isfinite(x), x, jnp.zeros_like(x))


def _pick_observation(obs: Any) -> Any:
    """The proprioceptive vector: the observation itself, or its `"state"` entry."""
    return obs["state"] if isinstance(obs, Mapping) else obs


def _ctrl_range_space(mj_model: Any, action_size: int) -> gymnasium.spaces.Box:
    """Box over the actuators' ctrlrange; [-1, 1] for actuators without limits."""
    low = -np.ones(action_size, np.float32)
    high = np.ones(action_size, np.float32)
    limited = np.asarray(mj_model.actuator_ctrllimited, bool)
    ctrl_range = np.asarray(mj_model.actuator_ctrlrange, np.float32)
    low[limited] = ctrl_range[limited, 0]
    high[limited] = ctrl_range[limited, 1]
    return gymnasium.spaces.Box(low, high, (action_size,), np.float32)


class PhysicsEnv:
    """A Playground or brax env behind the jaxmb `Env` protocol (see the module docstring).

    Args:
        upstream: an env with `reset(rng) -> State`, `step(State, action) -> State`,
            `action_size` and a MuJoCo `MjModel` (given as `mj_model`).
        params: params with `max_steps_in_episode` and a static `full_reset`.
        env_id: the registry id, e.g. `"playground:CheetahRun"`.
        mj_model: the `mujoco.MjModel` whose ctrlrange bounds the actions.
    """

    def __init__(self, upstream: Any, params: Any, *, env_id: str, mj_model: Any):
        self._env = upstream
        self._params = params
        self.id = env_id
        self.action_space = _ctrl_range_space(mj_model, int(upstream.action_size))
        abstract_state = jax.eval_shape(upstream.reset, jax.random.key(0))
        obs_shape = tuple(_pick_observation(abstract_state.obs).shape)
        self.observation_space = gymnasium.spaces.Box(-np.inf, np.inf, obs_shape, np.float32)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.id!r})"

    @property
    def upstream(self) -> Any:
        """The wrapped Playground or brax env."""
        return self._env

    @property
    def num_actions(self) -> int:
        """Raises `TypeError`: the actions are continuous; wrap in `Discretize` first."""
        return core.num_actions(self.action_space)

    def default_params(self) -> Any:
        """The params this env was built with."""
        return self._params

    @staticmethod
    def _observation(upstream_state: Any) -> jax.Array:
        obs = jnp.asarray(_pick_observation(upstream_state.obs), jnp.float32)
        return _finite_or_zero(obs)

    def _reset_upstream(self, key: jax.Array) -> Any:
        return _strong_types(self._env.reset(key))

    def reset(self, key: jax.Array, params: Any) -> tuple[jax.Array, PhysicsEnvState]:
        """Starts an episode.

        Args:
            key: PRNG key, passed unchanged to the upstream `reset`.
            params: env params.

        Returns:
            `(obs[*observation_space.shape] float32, state)`.
        """
        upstream_state = self._reset_upstream(key)
        state = PhysicsEnvState(
            env_state=upstream_state,
            first_state=None if params.full_reset else upstream_state,
            step_count=jnp.zeros((), jnp.int32),
        )
        return self._observation(upstream_state), state

    def step(
        self, key: jax.Array, state: PhysicsEnvState, action: jax.Array, params: Any
    ) -> core.StepResult:
        """Steps the physics and starts a new episode when this one ends.

        Args:
            key: PRNG key; used only by a full reset (upstream steps are deterministic).
            state: state from `reset` or `step`.
            action: `float32[action_size]`, within `action_space` (MuJoCo clamps the rest).
            params: env params.

        Returns:
            See `Env.step`. `info` also holds the upstream `metrics` (reward terms).
        """
        action = jnp.asarray(action, jnp.float32)
        chex.assert_shape(action, self.action_space.shape)
        stepped = _strong_types(self._env.step(state.env_state, action))
        obs = self._observation(stepped)
        reward = _finite_or_zero(jnp.asarray(stepped.reward, jnp.float32))
        terminated = jnp.asarray(stepped.done != 0, jnp.bool_)
        step_count = state.step_count + 1
        truncated = jnp.logical_and(
            step_count >= params.max_steps_in_episode, jnp.logical_not(terminated)
        )
        done = jnp.logical_or(terminated, truncated)
        restart = self._reset_upstream(key) if params.full_reset else state.first_state
        next_state = PhysicsEnvState(
            env_state=core.tree_where(done, restart, stepped),
            first_state=state.first_state,
            step_count=jnp.where(done, 0, step_count).astype(jnp.int32),
        )
        next_obs = jnp.where(done, self._observation(restart), obs)
        info = {"final_observation": obs, "metrics": stepped.metrics}
        return next_obs, next_state, reward, terminated, truncated, info

    def action_mask(self, state: PhysicsEnvState, params: Any) -> jax.Array:
        """Raises `TypeError`: continuous actions have no mask until discretised."""
        del state, params
        raise TypeError(
            f"{self.id} has continuous actions ({self.action_space}); wrap it in "
            "jaxmb.envs.discretize.Discretize(env) to get discrete actions and a mask"
        )


@functools.cache
def _load(name: str, impl: str) -> Any:
    """Loads a Playground env once per (name, impl); env objects are immutable."""
    from mujoco_playground import registry

    return registry.load(name, config_overrides={"impl": impl})


def default_params(name: str) -> PlaygroundParams:
    """Default params of Playground task `name` (time limit from its config)."""
    upstream = _load(name, "jax")
    return PlaygroundParams(
        max_steps_in_episode=int(upstream._config.episode_length),
        full_reset=name in _FULL_RESET_BY_DEFAULT,
    )


def build(name: str, params: PlaygroundParams | None = None) -> PhysicsEnv:
    """Builds `playground:<name>`; the registry's builder.

    Args:
        name: a Playground env name, e.g. `"CheetahRun"`.
        params: `PlaygroundParams`; `default_params(name)` when None.
    """
    if params is None:
        params = default_params(name)
    upstream = _load(name, params.impl)
    return PhysicsEnv(upstream, params, env_id=f"playground:{name}", mj_model=upstream.mj_model)
