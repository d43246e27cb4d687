"""jaxmb envs as Gymnasium envs: `to_gymnasium`, `to_gymnasium_vector`, and `jaxmb/<Name>` ids.

    env = jaxmb.envs.to_gymnasium(*jaxmb.envs.make("jaxmb:MiniPacman-v0"), render_mode="rgb_array")
    env = gymnasium.make("jaxmb/MiniPacman-v0")          # after `import jaxmb.envs`
    envs = gymnasium.make_vec("jaxmb/MiniPacman-v0", num_envs=8)    # one jitted batched step

The exported env steps the jitted JAX env on the default device and hands back NumPy arrays.
Keys: `reset(seed=s)` starts the chain `key = jax.random.key(s)`; the reset and every step
split a fresh key off it (`key, sub = jax.random.split(key)`), so a Gymnasium loop can be
replayed in JAX exactly. The JAX env resets itself when an episode ends; the Gymnasium env
returns the episode's last observation then, and the next `reset()` without a seed starts the
episode the JAX env had already started, so a Gymnasium loop follows the JAX env's own
trajectory across episodes. The vector env uses Gymnasium's same-step auto-reset
(`info["final_obs"]`, `info["final_info"]` where an episode ended), which is the JAX env's own.

Registered ids: `jaxmb/<name>` for the ids of source `jaxmb` (`jaxmb/MiniPacman-v0`,
`jaxmb/Sokoban-v0`) and `jaxmb/<source>-<name>` for other JAX sources, e.g.
`jaxmb/gymnax-CartPole-v1`. Keyword arguments of `gymnasium.make` other than `render_mode` are
params overrides (`gymnasium.make("jaxmb/MiniPacman-v0", num_ghosts=1)`).
"""

from __future__ import annotations

from typing import Any

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

from jaxmb.envs import core, registry


def _render_modes(env: core.Env) -> list[str]:
    return ["rgb_array"] if callable(getattr(env, "render", None)) else []


def _seed_key(seed: int) -> jax.Array:
    return jax.random.key(int(seed) % 2**32)


class GymnasiumEnv(gymnasium.Env):
    """A jaxmb env behind `gymnasium.Env` (see the module docstring).

    Args:
        env: a jaxmb env (not batched).
        params: its params; `env.default_params()` when None.
        render_mode: None or `"rgb_array"` (when the env has `render(state, params)`).
    """

    def __init__(self, env: core.Env, params: Any = None, *, render_mode: str | None = None):
        modes = _render_modes(env)
        if render_mode is not None and render_mode not in modes:
            raise ValueError(f"{env.id} renders {modes or 'nothing'}, not {render_mode!r}")
        self.metadata = {"render_modes": modes, "render_fps": 10}  # NumPy out: no "jax" key
        self.env = env
        self.params = env.default_params() if params is None else params
        self.observation_space = env.observation_space
        self.action_space = env.action_space
        self.render_mode = render_mode
        self.spec = None
        self._reset = jax.jit(env.reset)
        self._step = jax.jit(env.step)
        self._render = jax.jit(env.render) if modes else None
        self._key: jax.Array | None = None
        self._state: Any = None
        self._pending: tuple[Any, Any] | None = None  # the JAX env's next episode, once one ends

    def __repr__(self) -> str:
        return f"GymnasiumEnv({self.env.id!r})"

    def _split(self) -> jax.Array:
        self._key, sub = jax.random.split(self._key)
        return sub

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Starts an episode: a fresh key chain when `seed` is given, else the next episode."""
        super().reset(seed=seed)
        if seed is not None or self._key is None:
            if seed is None:
                seed = int(self.np_random.integers(2**31))
            self._key = _seed_key(seed)
            self._pending = None
        if self._pending is not None:
            obs, self._state = self._pending
            self._pending = None
        else:
            obs, self._state = self._reset(self._split(), self.params)
        return np.asarray(obs), {}

    def step(self, action: Any):
        if self._state is None:
            raise gymnasium.error.ResetNeeded("call reset() before step()")
        action = jnp.asarray(action, self.action_space.dtype)
        obs, state, reward, terminated, truncated, info = self._step(
            self._split(), self._state, action, self.params
        )
        terminated, truncated = bool(terminated), bool(truncated)
        if terminated or truncated:
            self._pending = (obs, state)
            obs = info["final_observation"]
        self._state = state
        return np.asarray(obs), float(reward), terminated, truncated, {}

    def render(self) -> np.ndarray | None:
        if self.render_mode is None or self._state is None:
            return None
        return np.asarray(self._render(self._state, self.params))


class GymnasiumVectorEnv(gymnasium.vector.VectorEnv):
    """`num_envs` copies of a jaxmb env stepped by one jitted batched call.

    `reset(seed=s)` seeds copy `i` with `s + i` (Gymnasium's convention), i.e. key chain
    `jax.random.key(s + i)`; a list of seeds gives one per copy.
    """

    def __init__(
        self,
        env: core.Env,
        params: Any = None,
        num_envs: int = 1,
        *,
        render_mode: str | None = None,
    ):
        modes = _render_modes(env)
        if render_mode is not None and render_mode not in modes:
            raise ValueError(f"{env.id} renders {modes or 'nothing'}, not {render_mode!r}")
        self.metadata = {"render_modes": modes, "autoreset_mode": AutoresetMode.SAME_STEP}
        self.env = env
        self.params = env.default_params() if params is None else params
        self.num_envs = num_envs
        self.render_mode = render_mode
        self.single_observation_space = env.observation_space
        self.single_action_space = env.action_space
        self.observation_space = batch_space(env.observation_space, num_envs)
        self.action_space = batch_space(env.action_space, num_envs)

        def split(keys):
            pairs = jax.vmap(jax.random.split)(keys)
            return pairs[:, 0], pairs[:, 1]

        def reset(keys, params):
            keys, subs = split(keys)
            obs, state = jax.vmap(env.reset, in_axes=(0, None))(subs, params)
            return keys, obs, state

        def step(keys, state, action, params):
            keys, subs = split(keys)
            out = jax.vmap(env.step, in_axes=(0, 0, 0, None))(subs, state, action, params)
            return (keys, *out)

        self._reset = jax.jit(reset)
        self._step = jax.jit(step)
        self._render = jax.jit(jax.vmap(env.render, in_axes=(0, None))) if modes else None
        self._keys: jax.Array | None = None
        self._state: Any = None

    def reset(self, *, seed: int | list[int] | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is None:
            seed = int(self.np_random.integers(2**31))
        seeds = [seed + i for i in range(self.num_envs)] if isinstance(seed, int) else list(seed)
        if len(seeds) != self.num_envs:
            raise ValueError(f"{len(seeds)} seeds for {self.num_envs} envs")
        keys = jnp.stack([_seed_key(s) for s in seeds])
        self._keys, obs, self._state = self._reset(keys, self.params)
        return np.asarray(obs), {}

    def step(self, actions: Any):
        if self._state is None:
            raise gymnasium.error.ResetNeeded("call reset() before step()")
        actions = jnp.asarray(actions, self.single_action_space.dtype)
        self._keys, obs, self._state, reward, terminated, truncated, info = self._step(
            self._keys, self._state, actions, self.params
        )
        terminated, truncated = np.asarray(terminated), np.asarray(truncated)
        infos: dict[str, Any] = {}
        done = terminated | truncated
        if done.any():
            final = np.asarray(info["final_observation"])
            final_obs = np.full(self.num_envs, None, dtype=object)
            final_info = np.full(self.num_envs, None, dtype=object)
            for i in np.flatnonzero(done):
                final_obs[i], final_info[i] = final[i], {}
            infos = {
                "final_obs": final_obs,
                "_final_obs": done,
                "final_info": final_info,
                "_final_info": done,
            }
        return np.asarray(obs), np.asarray(reward, np.float32), terminated, truncated, infos

    def render(self) -> tuple[np.ndarray, ...] | None:
        if self.render_mode is None or self._state is None:
            return None
        return tuple(np.asarray(self._render(self._state, self.params)))


def to_gymnasium(
    env: core.Env, params: Any = None, *, render_mode: str | None = None
) -> GymnasiumEnv:
    """A `gymnasium.Env` that steps the jitted `env` (see `GymnasiumEnv`)."""
    return GymnasiumEnv(env, params, render_mode=render_mode)


def to_gymnasium_vector(
    env: core.Env, params: Any = None, num_envs: int = 1, *, render_mode: str | None = None
) -> GymnasiumVectorEnv:
    """A `gymnasium.vector.VectorEnv` of `num_envs` copies (see `GymnasiumVectorEnv`)."""
    return GymnasiumVectorEnv(env, params, num_envs, render_mode=render_mode)


def gymnasium_id(env_id: str) -> str:
    """The Gymnasium id of a jaxmb id: `jaxmb:MiniPacman-v0` -> `jaxmb/MiniPacman-v0`,
    `gymnax:CartPole-v1` -> `jaxmb/gymnax-CartPole-v1`."""
    source, _, name = env_id.partition(":")
    return f"jaxmb/{name}" if source == "jaxmb" else f"jaxmb/{source}-{name}"


def make_env(env_id: str, render_mode: str | None = None, **overrides: Any) -> GymnasiumEnv:
    """Gymnasium entry point: `gymnasium.make("jaxmb/...", **overrides)`."""
    env, params = registry.make(env_id, **overrides)
    return GymnasiumEnv(env, params, render_mode=render_mode)


def make_vector_env(
    env_id: str, num_envs: int = 1, render_mode: str | None = None, **overrides: Any
) -> GymnasiumVectorEnv:
    """Gymnasium vector entry point: `gymnasium.make_vec("jaxmb/...", num_envs, ...)`."""
    overrides.pop("vectorization_mode", None)
    overrides.pop("vector_kwargs", None)
    env, params = registry.make(env_id, **overrides)
    return GymnasiumVectorEnv(env, params, num_envs, render_mode=render_mode)


def register_gymnasium_ids() -> list[str]:
    """Registers `jaxmb/...` with Gymnasium for every listed id of a JAX source; returns them."""
    registered = []
    for env_id in sorted(registry._REGISTRY):
        if env_id.split(":", 1)[0] in registry.HOST_SOURCES:  # not JAX envs
            continue
        gym_id = gymnasium_id(env_id)
        if gym_id not in gymnasium.registry:
            gymnasium.register(
                gym_id,
                entry_point="jaxmb.envs.gymnasium_export:make_env",
                vector_entry_point="jaxmb.envs.gymnasium_export:make_vector_env",
                kwargs={"env_id": env_id},
                disable_env_checker=True,  # check_env passes; the passive checker costs a step
            )
        registered.append(gym_id)
    return registered
