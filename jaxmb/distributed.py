"""Seeds sharded over devices and hosts, with JAX's own sharding and `jax.distributed`.

The seed-batched program (`make_train(config, num_seeds=S)`) is already a bulk computation
over a leading `[S]` axis; scaling it out is a matter of telling `jax.jit` how that axis lies
on the devices. Nothing in the loop changes:

    jaxmb.distributed.initialize(coordinator, num_processes, process_id)  # multi-host only
    mesh = jaxmb.distributed.seed_mesh()                  # one axis "seeds", all devices
    train = jaxmb.make_train(config, callback=..., num_seeds=S)
    compiled, keys = jaxmb.distributed.compile_sharded(train, host_keys, mesh)
    state, metrics = compiled(keys)                       # global arrays, sharded on seeds
    metrics = jaxmb.distributed.to_host(metrics)          # numpy, on every process

or, as `jaxmb.run` does to resume through the same program, `state = init_sharded(train,
host_keys, mesh)` (or `to_global(restored_host_state, seed_shardings(...)[0])`), then
`compile_sharded_run(train, state, mesh)(state)`.

Every process runs the same program on the same (global) keys; each holds only its own
devices' seeds. `S` must be a multiple of the device count, so every device trains
`S / num_devices` members with no padding.

Two ways to compile, one result (the unsharded program's metrics and parameters, up to
float rounding):

- `shard_map=False` (default): `jax.jit` with in/out shardings; XLA partitions the bulk
  program, so anything the loop computes across seeds stays right. A `jax.debug.callback`
  (default `partitioned=False`) is lowered with a MAXIMAL sharding on the mesh's first
  device: XLA gathers its operands there and the host function runs once per report with
  the full global `[S, ...]` arrays, exactly as unsharded; with several processes it runs
  only in process 0. The price: every `while_loop` that `vmap` batched over seeds (search,
  evaluation) ends when all seeds are done, so each of its iterations all-reduces its
  predicate over all devices (and hosts).
- `shard_map=True`: the same `jax.jit` around `jax.shard_map`; each device runs its own
  `S / num_devices` seeds with no collective, its loops stopping when its own seeds are
  done. The loop then sees only the device's seeds, so (1) a reduction over seeds must go
  through `any_seed` / `all_seeds`, and (2) callbacks must be emitted with `seed_callback`
  (a drop-in for `jax.debug.callback` that gathers all seeds and calls once, on the first
  device); a plain `jax.debug.callback` would run once per device with its seeds only.
  Outside `shard_map`, the three are exactly `jnp.any`, `jnp.all`, `jax.debug.callback`.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxmb.checkpoint import is_key
from jaxmb.configlib import ConfigError

SEED_AXIS = "seeds"
ENV_AXIS = "envs"

__all__ = [
    "ENV_AXIS",
    "SEED_AXIS",
    "all_seeds",
    "any_seed",
    "barrier",
    "compile_sharded",
    "compile_sharded_run",
    "init_sharded",
    "hparam_shardings",
    "initialize",
    "is_primary",
    "member_mesh",
    "seed_callback",
    "seed_mesh",
    "seed_shardings",
    "to_global",
    "to_host",
]
_barrier_ids = itertools.count()
# Held apart so that a test may route `jax.debug.callback` itself through `seed_callback`.
_debug_callback = jax.debug.callback


def initialize(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
) -> bool:
    """Joins a multi-process run (`jax.distributed.initialize`); a no-op when all are None.

    Must run before anything touches a JAX backend (no `jax.devices()`, no arrays). CPU
    collectives across processes use gloo; the setting does not affect GPU/TPU backends.

    Args:
      coordinator_address: `"host:port"` of process 0's coordinator service.
      num_processes: how many processes take part (>= 1).
      process_id: this process's index in `[0, num_processes)`.

    Returns:
      True if `jax.distributed` was initialised, False for a single-process run.

    Raises:
      ConfigError: if only some of the three are given, or one is malformed.
    """
    given = {
        "coordinator_address": coordinator_address,
        "num_processes": num_processes,
        "process_id": process_id,
    }
    if all(v is None for v in given.values()):
        return False
    missing = [name for name, value in given.items() if value is None]
    if missing:
        raise ConfigError(
            "a multi-process run needs coordinator_address, num_processes and process_id "
            f"together; missing: {', '.join(missing)}"
        )
    if not re.fullmatch(r"\[?[\w.:-]+\]?:\d+", str(coordinator_address)):
        raise ConfigError(f"coordinator_address must read 'host:port', got {coordinator_address!r}")
    if not isinstance(num_processes, int) or num_processes < 1:
        raise ConfigError(f"num_processes must be an int >= 1, got {num_processes!r}")
    if not isinstance(process_id, int) or not 0 <= process_id < num_processes:
        raise ConfigError(f"process_id must be an int in [0, {num_processes}), got {process_id!r}")
    # The default in jax 0.10 already, but older/newer defaults differ ("none" gives no
    # cross-process collectives at all on CPU).
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=coordinator_address,
        num_processes=num_processes,
        process_id=process_id,
    )
    return True


def is_primary() -> bool:
    """True in process 0: the one that writes run directories and receives callbacks."""
    return jax.process_index() == 0


def barrier(name: str = "jaxmb", timeout_s: float = 1800.0) -> None:
    """Waits until every process reaches this point (no-op with one process).

    Uses the coordination service, not a collective: gloo gives a process only 30 s to join a
    new set of devices at its first collective, less than compile times can differ between
    processes (and between machines, or under load), so processes meet here after compiling.
    """
    if jax.process_count() == 1:
        return
    # Not re-exported publicly in jax 0.10; `jax.experimental.array_serialization` uses it too.
    from jax._src import distributed as jax_distributed

    barrier_id = f"{name}-{next(_barrier_ids)}"
    jax_distributed.global_state.client.wait_at_barrier(barrier_id, int(timeout_s * 1000))


def seed_mesh(devices: Any = None) -> Mesh:
    """A 1-D mesh with axis `"seeds"` over `devices` (default: all global devices)."""
    devices = jax.devices() if devices is None else list(devices)
    if not devices:
        raise ValueError("seed_mesh needs at least one device")
    return Mesh(np.asarray(devices, dtype=object), (SEED_AXIS,))


def member_mesh(num_members: int, num_envs: int, devices: Any = None) -> Mesh:
    """A 2-D mesh `("seeds", "envs")` for `num_members` members of `num_envs` envs each.

    Members are spread over as many devices as divide their number (`gcd(num_members,
    num_devices)`); the devices left over split each member's envs (`gcd(rest, num_envs)`),
    so 1 member of 16 envs on 8 devices is a `(1, 8)` mesh, 4 members on 8 devices `(4, 2)`.
    With one process the mesh may use fewer devices than there are (7 members on 8 devices:
    one); with several it must use all of them, or some process would hold nothing.

    Raises:
      ConfigError: (key `run.num_seeds`) with several processes, when members x envs cannot
        cover every device.
    """
    devices = jax.devices() if devices is None else list(devices)
    seeds = math.gcd(num_members, len(devices))
    envs = math.gcd(len(devices) // seeds, num_envs)
    if seeds * envs < len(devices) and jax.process_count() > 1:
        raise ConfigError(
            f"{num_members} members of {num_envs} envs cannot be spread over all "
            f"{len(devices)} devices of {jax.process_count()} processes; use a number of "
            f"members (seeds x grid points) that is a multiple of {len(devices)}",
            "run.num_seeds",
        )
    grid = np.asarray(devices[: seeds * envs], dtype=object).reshape(seeds, envs)
    return Mesh(grid, (SEED_AXIS, ENV_AXIS))


def _check_divisible(num_seeds: int, mesh: Mesh) -> None:
    num_devices = mesh.shape[SEED_AXIS]
    if num_seeds % num_devices:
        raise ConfigError(
            f"{num_seeds} seeds cannot be sharded evenly over {num_devices} devices; use a "
            f"multiple of {num_devices} (each device trains num_seeds / {num_devices} members)",
            "run.num_seeds",
        )


def seed_shardings(train, keys: jax.Array, mesh: Mesh):
    """`NamedSharding`s of `train(keys)`'s output: `P("seeds")` on every leaf with the seed
    axis, `P()` (replicated) on the shared counters (`iteration`, `replay.num_written`).

    A state leaf is seed-batched iff it has one more dimension than the same leaf of a
    single seed's state (`train.loop.init`); a metric iff its leading axis is `[S]` (all of
    them are `[S, num_iterations]`).
    """
    sharded, replicated = NamedSharding(mesh, P(SEED_AXIS)), NamedSharding(mesh, P())
    num_seeds = keys.shape[0]
    # The state's shapes without reading a transfer source (`train.state_shapes`).
    state_shape, metrics_shape = jax.eval_shape(train.run, train.state_shapes(keys))
    single = jax.eval_shape(lambda k: train.loop.init(k[0]), keys)
    state_shardings = jax.tree.map(
        lambda batched, one: sharded if batched.ndim == one.ndim + 1 else replicated,
        state_shape,
        single,
    )
    if mesh.shape.get(ENV_AXIS, 1) > 1:
        # Within a member, the env-batched leaves (env states, observations, the replay's
        # [N, C, ...] storage) split their env axis over "envs"; XLA partitions the rest.
        num_envs = train.loop.config.env.num_envs
        by_env = NamedSharding(mesh, P(SEED_AXIS, ENV_AXIS))

        def env_split(batched, one, current):
            if current is sharded and one.ndim >= 1 and one.shape[0] == num_envs:
                return by_env
            return current

        def split(name):
            return jax.tree.map(
                env_split,
                getattr(state_shape, name),
                getattr(single, name),
                getattr(state_shardings, name),
            )

        replay = state_shardings.replay.replace(
            data=jax.tree.map(
                env_split, state_shape.replay.data, single.replay.data, state_shardings.replay.data
            ),
            priority=env_split(
                state_shape.replay.priority, single.replay.priority, state_shardings.replay.priority
            ),
        )
        state_shardings = state_shardings.replace(
            env_state=split("env_state"), obs=split("obs"), replay=replay
        )
    metric_shardings = jax.tree.map(
        lambda m: sharded if m.ndim and m.shape[0] == num_seeds else replicated, metrics_shape
    )
    return state_shardings, metric_shardings


def to_global(tree: Any, shardings: Any) -> Any:
    """Host values, the same in every process, as global arrays laid out by `shardings`
    (a matching tree of `NamedSharding`s, e.g. `seed_shardings(...)[0]` for a restored
    `TrainState`); each process fills only its own devices. Typed PRNG keys stay keys."""

    def put(x, sharding):
        key = is_key(x)
        # Key data has trailing dims of its own, left unsharded by the (shorter) spec.
        data = np.asarray(jax.random.key_data(x) if key else x)
        array = jax.make_array_from_callback(data.shape, sharding, lambda index: data[index])
        if not key:
            return array
        # Wrapping is elementwise, so the keys keep the layout.
        impl = jax.random.key_impl(x)
        return jax.jit(lambda d: jax.random.wrap_key_data(d, impl=impl), out_shardings=sharding)(
            array
        )

    return jax.tree.map(put, tree, shardings)


def _program(fn, mesh: Mesh, in_shardings, out_shardings, shard_map: bool):
    """`jax.jit(fn)` with these shardings, around `jax.shard_map(fn)` if asked."""
    if shard_map:
        specs = jax.tree.map(lambda sharding: sharding.spec, (in_shardings, out_shardings))
        # check_vma=False: mctx's while loops start from constants (invariant across devices)
        # and carry per-seed values, which the varying-axes checker rejects. The replicated
        # outputs are the shared counters, computed alike on every device.
        fn = jax.shard_map(fn, mesh=mesh, in_specs=specs[0], out_specs=specs[1], check_vma=False)
    return jax.jit(fn, in_shardings=in_shardings, out_shardings=out_shardings)


def _start(train, keys: jax.Array, mesh: Mesh | None):
    mesh = seed_mesh() if mesh is None else mesh
    if keys.ndim < 1:
        raise ValueError(f"keys must be [num_seeds], got shape {keys.shape}")
    _check_divisible(keys.shape[0], mesh)
    return mesh, NamedSharding(mesh, P(SEED_AXIS)), seed_shardings(train, keys, mesh)


def compile_sharded(train, keys: jax.Array, mesh: Mesh | None = None, *, shard_map: bool = False):
    """Compiles the seed-batched `train` with its seed axis sharded over `mesh`.

    Args:
      train: `make_train(config, ..., num_seeds=S)`.
      keys: `[S]` PRNG keys (typed, or raw `uint32 [S, 2]`), the same in every process.
      mesh: from `seed_mesh()` (default: all global devices).
      shard_map: run the program under `jax.shard_map`: each device trains its own seeds
        without collectives (see the module docstring for what the loop must then do).

    Returns:
      `(compiled, global_keys)`: call `compiled(global_keys)` for `(state, metrics)`, global
      arrays sharded over `"seeds"` (the shared counters replicated). Use `to_host` to read
      them on every process. With several processes, all have compiled on return.

    Raises:
      ConfigError: (key `run.num_seeds`) if `S` is not a multiple of the device count.
    """
    mesh, key_sharding, out_shardings = _start(train, keys, mesh)
    global_keys = to_global(keys, key_sharding)
    jitted = _program(train, mesh, (key_sharding,), out_shardings, shard_map)
    compiled = jitted.lower(global_keys).compile()
    barrier("jaxmb-compiled")
    return compiled, global_keys


def init_sharded(train, keys: jax.Array, mesh: Mesh | None = None):
    """`train.init(keys)`: a fresh seed-batched state as global arrays on `mesh`, laid out
    as `seed_shardings` says (what `compile_sharded_run` takes).

    Raises:
      ConfigError: (key `run.num_seeds`) if `S` is not a multiple of the device count.
    """
    mesh, key_sharding, (state_shardings, _) = _start(train, keys, mesh)
    init = jax.jit(train.init, in_shardings=(key_sharding,), out_shardings=state_shardings)
    return init(to_global(keys, key_sharding))


def compile_sharded_run(
    train,
    state,
    mesh: Mesh | None = None,
    *,
    hparams: dict | None = None,
    shard_map: bool = False,
):
    """Compiles `train.run(state) -> (state, metrics)` with the seed axis sharded: the same
    program for a fresh state (`init_sharded`) and a restored one (`to_global` of the host
    copy, with `seed_shardings(...)[0]`), as `jaxmb.run` resumes.

    Args:
      train: `make_train(config, ..., num_seeds=S)`.
      state: the seed-batched `TrainState` (global arrays, or shapes).
      mesh: from `seed_mesh()` or `member_mesh()` (default: all global devices).
      hparams: the `[S]` hyperparameters of the members (`jaxmb.hparams`), if any: the
        compiled program then takes `(state, hparams)`, hparams as `to_global` puts them
        with `hparam_shardings`.
      shard_map: as in `compile_sharded`.

    Returns:
      the compiled `train.run`. With several processes, all have compiled on return.
    """
    keys = jax.ShapeDtypeStruct(state.key.shape, state.key.dtype)  # [S]: one key per seed
    mesh, key_sharding, (state_shardings, metric_shardings) = _start(train, keys, mesh)
    outs = (state_shardings, metric_shardings)
    if hparams:
        ins = (state_shardings, jax.tree.map(lambda _: key_sharding, hparams))
        jitted = _program(train.run, mesh, ins, outs, shard_map)
        compiled = jitted.lower(state, hparams).compile()
    else:
        jitted = _program(train.run, mesh, (state_shardings,), outs, shard_map)
        compiled = jitted.lower(state).compile()
    barrier("jaxmb-compiled")
    return compiled


def hparam_shardings(hparams: dict, mesh: Mesh) -> dict:
    """Where `[S]` hyperparameters go on `mesh`: split over `"seeds"` like the members."""
    return jax.tree.map(lambda _: NamedSharding(mesh, P(SEED_AXIS)), hparams)


def _inside_seed_shard_map() -> bool:
    try:
        jax.lax.axis_size(SEED_AXIS)
    except NameError:
        return False
    return True


def seed_callback(callback: Callable[..., None], *args: Any) -> None:
    """`jax.debug.callback(callback, *args)` that sees all seeds, however the program runs.

    Outside `compile_sharded(..., shard_map=True)` it is exactly `jax.debug.callback`. Inside,
    it all-gathers every leaf with a leading (local) seed axis over `"seeds"`, i.e. every leaf
    with `ndim >= 1` (the loop's only unbatched leaves are scalar counters, left as they are),
    and calls `callback` on the mesh's first device only (process 0).

    Inside `shard_map`, a `lax.cond` around this call must take the same branch on every
    device (a predicate from the shared counters, or reduced over seeds with `lax.pmax`):
    the gather is a collective that a device skipping it would leave waiting.
    """
    if not _inside_seed_shard_map():
        _debug_callback(callback, *args)
        return
    gathered = jax.tree.map(
        lambda x: jax.lax.all_gather(x, SEED_AXIS, tiled=True) if jnp.ndim(x) else x, args
    )
    jax.lax.cond(
        jax.lax.axis_index(SEED_AXIS) == 0,
        lambda: _debug_callback(callback, *gathered),
        lambda: None,
    )


def _across_devices(local: jax.Array, reduce) -> jax.Array:
    if not _inside_seed_shard_map():
        return local
    return reduce(local.astype(jnp.int32), SEED_AXIS).astype(bool)


def any_seed(x: jax.Array) -> jax.Array:
    """`jnp.any(x)` over all seeds, also under `shard_map` (where `jnp.any` sees only the
    device's own seeds): for predicates that must be the same for every seed."""
    return _across_devices(jnp.any(x), jax.lax.pmax)


def all_seeds(x: jax.Array) -> jax.Array:
    """`jnp.all(x)` over all seeds, also under `shard_map` (see `any_seed`)."""
    return _across_devices(jnp.all(x), jax.lax.pmin)


def _replicated(x: jax.Array) -> NamedSharding:
    if isinstance(x.sharding, NamedSharding):
        return x.sharding.update(spec=P())
    devices = sorted(x.sharding.device_set, key=lambda d: d.id)
    return NamedSharding(Mesh(np.asarray(devices, dtype=object), ("all",)), P())


def to_host(tree: Any) -> Any:
    """Every leaf as a full numpy array on this process (typed PRNG keys come back as keys).

    Arrays that span several processes are gathered by one jitted identity with replicated
    outputs (what `multihost_utils.process_allgather(..., tiled=True)` does leaf by leaf):
    a collective, so every process must call `to_host` on the same tree.
    """
    leaves, treedef = jax.tree.flatten(tree)
    data = [jax.random.key_data(x) if is_key(x) else x for x in leaves]
    remote = [
        i for i, x in enumerate(data) if isinstance(x, jax.Array) and not x.is_fully_addressable
    ]
    if remote:
        gathered = jax.jit(
            lambda *xs: xs, out_shardings=tuple(_replicated(data[i]) for i in remote)
        )(*(data[i] for i in remote))
        for i, x in zip(remote, gathered, strict=True):
            data[i] = x.addressable_data(0)
    host = [
        jax.random.wrap_key_data(np.asarray(d), impl=jax.random.key_impl(x))
        if is_key(x)
        else np.asarray(d)
        for x, d in zip(leaves, data, strict=True)
    ]
    return jax.tree.unflatten(treedef, host)
