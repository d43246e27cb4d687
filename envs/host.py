"""Host envs: environments not written in JAX, stepped on the host from inside the compiled loop.

`HostEnv` satisfies the `Env` protocol, so `VectorEnv(EpisodeStatistics(env), num_envs)`,
`make_train` and the agent treat it as any JAX env. Its `reset` and `step` are one host call
each (`host_callback.host_call`), and `vmap` folds every batch axis into that call: the training
loop's vmap over envs, nested in its vmap over seeds, steps all `[seeds, envs]` host envs with
ONE call per loop step, holding the whole batch of actions.

The env state that JAX carries is a handle: the pool and the row of the env on the host. A pool
is a batch of host envs (in this process, or spread over worker processes, see `host_pool`)
that belongs to one traced `reset` call: the training envs and the evaluation envs of a program
are different pools, and every evaluation reuses (reseeds) its own. So:

- running a compiled `reset` again restarts its pool's episodes: states from an earlier run of
  that same `reset` then point at the new episodes;
- a handle is meaningful only in the process that made it. A state restored from a checkpoint
  in a new process points at a pool that is not there; its envs are then made and reset on their
  first step, which reports `truncated=True` with the first observation (episodes restart on
  resume, nothing else changes);
- a host env cannot be the model of a search (`search.model=env`): stepping it would step the
  real env.

Determinism: `reset` seeds each host env from its JAX key (`seed_from_key`); episodes after the
first continue the env's own generator, so a fixed key and fixed actions give a fixed trajectory.
Host envs are not differentiable, and they are stepped by the host: under `jax.vmap(train)`
(rather than `make_train(..., num_seeds=...)`) the loop's `cond`s become selects and run their
host calls every iteration, which is correct but slow.
"""

from __future__ import annotations

import dataclasses
import functools
import random
import threading
import weakref
from collections.abc import Mapping
from typing import Any

import flax.struct
import gymnasium
import jax
import jax.numpy as jnp
import numpy as np

from jaxmb.envs import core, host_pool
from jaxmb.envs.host_adapters import observation_output
from jaxmb.envs.host_callback import host_call
from jaxmb.envs.host_pool import HostEnvError

__all__ = ["HostEnv", "HostEnvError", "HostEnvState", "raise_host_error", "seed_from_key"]


@flax.struct.dataclass
class HostEnvState:
    """Handle of one host env; a leading `[num_envs]` axis appears under `VectorEnv`."""

    pool: jax.Array  # [] int32, the pool (one per traced `reset`)
    index: jax.Array  # [] int32, the env's row in its pool


def seed_from_key_data(key_data: np.ndarray) -> int:
    """The host seed of a PRNG key's raw data (`jax.random.key_data(key)`), in [0, 2**31)."""
    words = np.asarray(key_data, np.uint32).reshape(-1)
    return int(np.random.SeedSequence(words.tolist()).generate_state(1)[0] % 2**31)


def seed_from_key(key: jax.Array) -> int:
    """The seed `HostEnv.reset(key, ...)` gives its host env, e.g. to rebuild it in a test."""
    return seed_from_key_data(np.asarray(_key_data(key)))


def _key_data(key: jax.Array) -> jax.Array:
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        return jax.random.key_data(key)
    return key


def _space_from(description: dict, *, observation: bool) -> gymnasium.spaces.Space:
    kind = description["kind"]
    if kind == "discrete" and not observation:
        return gymnasium.spaces.Discrete(description["n"], dtype=np.int32)
    if kind == "box":
        dtype = np.dtype(description["dtype"])
        if not observation:
            dtype = np.dtype(np.float32)
        low = np.asarray(description["low"], np.float64)
        high = np.asarray(description["high"], np.float64)
        if dtype == np.float32:
            finite = np.finfo(np.float32).max
            low, high = np.clip(low, -finite, finite), np.clip(high, -finite, finite)
        shape = tuple(description["shape"])
        return gymnasium.spaces.Box(
            np.broadcast_to(low, shape).astype(dtype),
            np.broadcast_to(high, shape).astype(dtype),
            shape,
            dtype,
        )
    what = "observation" if observation else "action"
    raise TypeError(
        f"{what} spaces of kind {kind} are not supported by host envs: "
        f"{description.get('repr', description)}"
    )


@dataclasses.dataclass(frozen=True)
class HostSpec:
    """What a host env is: enough to make it in this process or in a worker.

    Attributes:
        env_id: the jaxmb id, e.g. `"procgen:coinrun"`.
        suite: a key of `host_adapters.MAKERS`.
        name: the suite's name for the env, e.g. `"coinrun"`.
        options: the suite's options (from the params).
        num_workers: 0 to step in this process; otherwise each pool spreads its envs over up to
            this many worker processes.
        python: the workers' interpreter ("" for this one).
    """

    env_id: str
    suite: str
    name: str
    options: tuple[tuple[str, Any], ...] = ()
    num_workers: int = 0
    python: str = ""

    def make_pool(self, size: int) -> Any:
        return host_pool.make_pool(
            self.env_id,
            self.suite,
            self.name,
            dict(self.options),
            size,
            num_workers=self.num_workers,
            python=self.python,
        )


class _Host:
    """The host side of one `HostEnv`: its pools by id, and the two host functions."""

    def __init__(self, spec: HostSpec, obs_space: gymnasium.spaces.Space, spare: Any = None):
        self.spec = spec
        self.obs_shape = obs_space.shape
        self.obs_dtype = obs_space.dtype
        # Pool ids are >= 1; pool 0 is the spare: the pool of 1 env that read the spaces,
        # kept for a first pool of that size.
        self.pools: dict[int, Any] = {} if spare is None else {_SPARE: spare}
        self.lock = threading.Lock()
        self.last_error: HostEnvError | None = None
        weakref.finalize(self, _close_pools, self.pools)

    def new_pool_id(self) -> int:
        # Random, so that a handle restored from another process cannot name a pool of this one.
        while True:
            pool_id = _POOL_IDS.randrange(1, 2**31 - 1)
            if pool_id not in self.pools:
                return pool_id

    def _fail(self, err: HostEnvError) -> HostEnvError:
        self.last_error = err
        _recent_errors.append(err)
        del _recent_errors[:-8]
        return err

    def reset(self, pool_id: int, key_data: np.ndarray) -> tuple[np.ndarray, ...]:
        size = len(key_data)
        seeds = np.array([seed_from_key_data(k) for k in key_data], np.int64)
        indices = np.arange(size)
        with self.lock:
            try:
                pool = self.pools.get(pool_id)
                if pool is None or len(pool) != size:
                    if pool is not None:
                        pool.close()
                    pool = self.pools[pool_id] = self._new_pool(size)
                obs = pool.reset(indices, seeds)
            except HostEnvError as err:
                raise self._fail(err) from err.__cause__
        return obs, np.full(size, pool_id, np.int32), indices.astype(np.int32)

    def step(
        self, pool_ids: np.ndarray, indices: np.ndarray, actions: np.ndarray
    ) -> tuple[np.ndarray, ...]:
        first = int(pool_ids[0])
        if (pool_ids == first).all() and first in self.pools:  # the usual case: one pool
            with self.lock:
                try:
                    return self.pools[first].step(indices, actions)
                except HostEnvError as err:
                    raise self._fail(err) from err.__cause__
        size = len(indices)
        obs = np.empty((size, *self.obs_shape), self.obs_dtype)
        final = np.empty_like(obs)
        reward = np.zeros(size, np.float32)
        terminated = np.zeros(size, bool)
        truncated = np.zeros(size, bool)
        with self.lock:
            try:
                for pool_id in np.unique(pool_ids):
                    rows = np.flatnonzero(pool_ids == pool_id)
                    pool = self.pools.get(int(pool_id))
                    if pool is None:  # a handle from another process (a resumed run)
                        pool = self._restart(int(pool_id), indices[rows])
                        obs[rows] = final[rows] = pool.reset(indices[rows], indices[rows])
                        truncated[rows] = True
                        continue
                    outs = pool.step(indices[rows], actions[rows])
                    obs[rows], reward[rows], terminated[rows], truncated[rows], final[rows] = outs
            except HostEnvError as err:
                raise self._fail(err) from err.__cause__
        return obs, reward, terminated, truncated, final

    def _new_pool(self, size: int) -> Any:
        spare = self.pools.pop(_SPARE, None)
        if spare is not None and len(spare) == size:
            return spare
        if spare is not None:
            spare.close()
        return self.spec.make_pool(size)

    def _restart(self, pool_id: int, indices: np.ndarray) -> Any:
        pool = self.pools[pool_id] = self._new_pool(int(np.max(indices)) + 1)
        return pool

    def close(self) -> None:
        with self.lock:
            _close_pools(self.pools)


def _close_pools(pools: dict) -> None:
    for pool in pools.values():
        pool.close()
    pools.clear()


_SPARE = 0
_recent_errors: list[HostEnvError] = []
_POOL_IDS = random.Random()  # its own generator: tracing must not draw from the global one


def raise_host_error(err: BaseException) -> None:
    """Raises the `HostEnvError` behind `err`, if `err` is the runtime error of a compiled
    program whose host env raised; returns otherwise.

    JAX reports an exception raised on the host as a `JaxRuntimeError` whose message holds the
    original's text; this gives back the original, for `except HostEnvError`.
    """
    if isinstance(err, HostEnvError):
        raise err
    text = str(err)
    for host_err in reversed(_recent_errors):
        if str(host_err) in text:
            raise host_err from err


class HostEnv:
    """An env stepped on the host, behind the jaxmb `Env` protocol.

    Args:
        spec: what to make (suite, name, options, workers).
        params: the params pytree `default_params()` returns. Host env params are static (they
            were used to make the env); `reset` and `step` ignore the params they are given.
    """

    def __init__(self, spec: HostSpec, params: Any):
        self.spec = spec
        self.id = spec.env_id
        self._params = params
        probe = spec.make_pool(1)
        try:
            obs_description, action_description = probe.spaces
            obs_space = _space_from(observation_output(obs_description), observation=True)
            self.action_space = _space_from(action_description, observation=False)
        except BaseException:
            probe.close()
            raise
        self.observation_space = obs_space
        self._host = _Host(spec, obs_space, spare=probe)

    def __repr__(self) -> str:
        return f"HostEnv({self.id!r})"

    @property
    def num_actions(self) -> int:
        """Number of discrete actions; `TypeError` for continuous action spaces."""
        return core.num_actions(self.action_space)

    def default_params(self) -> Any:
        """The (static) params this env was made with."""
        return self._params

    def close(self) -> None:
        """Closes every host env and worker of this env's pools."""
        self._host.close()

    def _obs_shape(self, rows: int) -> jax.ShapeDtypeStruct:
        space = self.observation_space
        return jax.ShapeDtypeStruct((rows, *space.shape), space.dtype)

    def reset(self, key: jax.Array, params: Any) -> tuple[jax.Array, HostEnvState]:
        """Starts an episode in a host env seeded from `key` (see the module docstring)."""
        del params
        fn = functools.partial(self._host.reset, self._host.new_pool_id())
        shapes = [
            self._obs_shape(1),
            jax.ShapeDtypeStruct((1,), jnp.int32),
            jax.ShapeDtypeStruct((1,), jnp.int32),
        ]
        obs, pool, index = host_call(fn, shapes, _key_data(key)[None])
        return obs[0], HostEnvState(pool=pool[0], index=index[0])

    def step(
        self, key: jax.Array, state: HostEnvState, action: jax.Array, params: Any
    ) -> core.StepResult:
        """Steps the host env (which auto-resets); see `Env.step` for the outputs."""
        del key, params
        action = jnp.asarray(action, self.action_space.dtype)
        if action.shape != self.action_space.shape:
            raise ValueError(
                f"{self.id}: an action of shape {action.shape}, expected {self.action_space.shape}"
            )
        shapes = [
            self._obs_shape(1),
            jax.ShapeDtypeStruct((1,), jnp.float32),
            jax.ShapeDtypeStruct((1,), jnp.bool_),
            jax.ShapeDtypeStruct((1,), jnp.bool_),
            self._obs_shape(1),
        ]
        obs, reward, terminated, truncated, final = host_call(
            self._host.step, shapes, state.pool[None], state.index[None], action[None]
        )
        info = {"final_observation": final[0]}
        return obs[0], state, reward[0], terminated[0], truncated[0], info

    def action_mask(self, state: HostEnvState, params: Any) -> jax.Array:
        """`bool[num_actions]`, all True."""
        del state, params
        return core.all_actions_legal(self.action_space)


def options_tuple(options: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    """A hashable, sorted form of an options mapping (nested mappings become tuples too)."""

    def freeze(value: Any) -> Any:
        if isinstance(value, Mapping):
            return options_tuple(value)
        if isinstance(value, list):
            return tuple(freeze(v) for v in value)
        return value

    return tuple(sorted((str(k), freeze(v)) for k, v in options.items()))
