"""Adapter from gymnax 1.0.1 environments to the jaxmb `Env` protocol.

gymnax 1.0.1 already follows the contract: `Environment.step` returns
`(obs, state, reward, terminated, truncated, info)`, derives `truncated` from
`state.time >= params.max_steps_in_episode` apart from the env's own termination, auto-resets
with half of the split key, and stores the pre-reset observation in
`info["final_observation"]` (DeepSea overrides `step` but keeps all of this). The adapter only
normalises what differs between gymnax envs: observations become float32 (FourRooms and
FrozenLake emit int32), rewards float32 (UmbrellaChain and BernoulliBandit emit int32),
flags bool, and gymnax spaces become `gymnasium.spaces` (Catch declares an int32 Box for its
float32 observations; FrozenLake's `Discrete(16)` observation becomes a scalar float Box).

Three upstream observation spaces are narrower than the observations their envs emit
(MemoryChain shows its context as -1/+1 under a lower bound of 0; GaussianBandit shows a
Gaussian reward under bounds of [0, 2]; MetaMaze shows its goal reward of 10 under a bound
of 1); the adapter declares those unbounded rather than promise bounds that do not hold.

Exposed ids are `GYMNAX_ENV_IDS`, each checked by `tests/envs/test_gymnax_adapter.py`.
Skipped, with the reason in `SKIPPED_GYMNAX_ENVS`:

- `MNISTBandit-bsuite`: its constructor downloads MNIST over the network
  (`gymnax.utils.load_mnist`), which tests and air-gapped machines cannot do.
- `SimpleBandit-bsuite`: every step terminates and the observation is a constant, so
  neither a time limit nor `final_observation` can ever be observed; it keeps the contract
  vacuously, and there is nothing for a planner to learn from its observations.

DeepSea's default `max_steps_in_episode` equals its size, so the step that reaches the
bottom row reports `terminated=True` and `truncated=True` together; consumers must let
`terminated` win (no bootstrap), as Gymnasium specifies.

Spaces carry bounds computed from the params the adapter was built with, because several
gymnax bounds are params (Acrobot's `max_vel_*`, MetaMaze's time feature); shapes never
depend on params.
"""

from __future__ import annotations

from typing import Any

import chex
import gymnasium
import jax
import jax.numpy as jnp
import numpy as np

from jaxmb.envs import core

GYMNAX_ENV_IDS: tuple[str, ...] = (
    "CartPole-v1",
    "Acrobot-v1",
    "MountainCar-v0",
    "Pendulum-v1",
    "MountainCarContinuous-v0",
    "Asterix-MinAtar",
    "Breakout-MinAtar",
    "Freeway-MinAtar",
    "Seaquest-MinAtar",
    "SpaceInvaders-MinAtar",
    "Catch-bsuite",
    "DeepSea-bsuite",
    "MemoryChain-bsuite",
    "UmbrellaChain-bsuite",
    "DiscountingChain-bsuite",
    "FourRooms-misc",
    "MetaMaze-misc",
    "PointRobot-misc",
    "BernoulliBandit-misc",
    "GaussianBandit-misc",
    "Reacher-misc",
    "Swimmer-misc",
    "Pong-misc",
    "FrozenLake-misc",
)
"""gymnax names (without the `gymnax:` prefix) that jaxmb exposes."""

SKIPPED_GYMNAX_ENVS: dict[str, str] = {
    "MNISTBandit-bsuite": "its constructor downloads MNIST over the network",
    "SimpleBandit-bsuite": (
        "every step terminates and the observation is constant, so time limits and "
        "final_observation are unobservable"
    ),
}
"""gymnax names that are registered upstream but not exposed, with the reason."""


# Upstream bounds that the envs' own observations violate (see the module docstring).
_UNBOUNDED_OBSERVATIONS = frozenset({"MemoryChain-bsuite", "GaussianBandit-misc", "MetaMaze-misc"})


def to_gymnasium_space(space: Any, *, observation: bool) -> gymnasium.spaces.Space:
    """Converts a gymnax space into the equivalent `gymnasium.spaces` space.

    Args:
        space: a `gymnax.environments.spaces.Discrete` or `Box`.
        observation: True for an observation space: every observation is float32, so a
            `Discrete(n)` becomes a scalar `Box(0, n - 1)` and any Box dtype becomes float32.

    Returns:
        A `Discrete` with int32 dtype (to match JAX's default integer) or a float32 `Box`
        whose bounds are broadcast to its shape.
    """
    from gymnax.environments import spaces as gymnax_spaces

    if isinstance(space, gymnax_spaces.Discrete):
        if observation:
            return gymnasium.spaces.Box(0.0, float(space.n - 1), (), np.float32)
        return gymnasium.spaces.Discrete(int(space.n), dtype=np.int32)
    if isinstance(space, gymnax_spaces.Box):
        shape = tuple(int(d) for d in space.shape)
        low = np.broadcast_to(np.asarray(space.low, np.float32), shape)
        high = np.broadcast_to(np.asarray(space.high, np.float32), shape)
        return gymnasium.spaces.Box(low, high, shape, np.float32)
    raise NotImplementedError(f"no gymnasium conversion for gymnax space {space!r}")


def _as_float32(tree: Any) -> Any:
    return jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), tree)


class GymnaxEnv:
    """A gymnax environment behind the jaxmb `Env` protocol.

    The object holds no mutable data: the wrapped gymnax env is itself a static
    description, and state and params are pytrees passed in and out.

    Args:
        gymnax_env: a `gymnax.environments.environment.Environment`.
        params: the params whose bounds the spaces describe and that `default_params()`
            returns; the gymnax defaults when None.
        env_id: the registry id; `"gymnax:" + gymnax_env.name` when None.
    """

    def __init__(self, gymnax_env: Any, params: Any = None, *, env_id: str | None = None):
        self._env = gymnax_env
        self._params = gymnax_env.default_params if params is None else params
        self.id = env_id if env_id is not None else f"gymnax:{gymnax_env.name}"
        self.observation_space = to_gymnasium_space(
            gymnax_env.observation_space(self._params), observation=True
        )
        if gymnax_env.name in _UNBOUNDED_OBSERVATIONS:
            shape = self.observation_space.shape
            self.observation_space = gymnasium.spaces.Box(-np.inf, np.inf, shape, np.float32)
        self.action_space = to_gymnasium_space(
            gymnax_env.action_space(self._params), observation=False
        )
        self._action_dtype = self.action_space.dtype

    @classmethod
    def from_name(cls, name: str, params: Any = None) -> GymnaxEnv:
        """Builds the adapter for a gymnax-registered name such as `"CartPole-v1"`."""
        import gymnax

        gymnax_env, _ = gymnax.make(name)
        return cls(gymnax_env, params, env_id=f"gymnax:{name}")

    def __repr__(self) -> str:
        return f"GymnaxEnv({self.id!r})"

    @property
    def gymnax_env(self) -> Any:
        """The wrapped gymnax environment."""
        return self._env

    @property
    def num_actions(self) -> int:
        """Number of discrete actions; `TypeError` for continuous action spaces."""
        return core.num_actions(self.action_space)

    def default_params(self) -> Any:
        """The gymnax `EnvParams` this adapter was built with."""
        return self._params

    def reset(self, key: jax.Array, params: Any) -> tuple[jax.Array, Any]:
        """Starts an episode; returns `(obs[*observation_space.shape] float32, state)`."""
        obs, state = self._env.reset(key, params)
        return _as_float32(obs), state

    def step(self, key: jax.Array, state: Any, action: jax.Array, params: Any) -> core.StepResult:
        """Steps the gymnax env (which auto-resets); see `Env.step` for the outputs.

        Args:
            key: PRNG key.
            state: gymnax env state.
            action: `int32[]` for discrete envs, `float32[*action_space.shape]` otherwise.
            params: gymnax `EnvParams`.
        """
        action = jnp.asarray(action, self._action_dtype)
        # gymnax broadcasts a wrongly shaped action through its dynamics without complaint.
        chex.assert_shape(action, self.action_space.shape)
        obs, state, reward, terminated, truncated, info = self._env.step(key, state, action, params)
        info = {**info, "final_observation": _as_float32(info["final_observation"])}
        return (
            _as_float32(obs),
            state,
            jnp.asarray(reward, jnp.float32),
            jnp.asarray(terminated, jnp.bool_),
            jnp.asarray(truncated, jnp.bool_),
            info,
        )

    def action_mask(self, state: Any, params: Any) -> jax.Array:
        """`bool[num_actions]`, all True: gymnax envs have no illegal actions."""
        del state, params
        return core.all_actions_legal(self.action_space)
