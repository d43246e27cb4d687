"""`host_call`: a host callback that `vmap` turns into ONE call with the whole batch.

`jax.experimental.io_callback` does not fit a batch of host environments stepped from inside the
compiled loop, for three reasons measured on jax 0.10.2:

- under `vmap` it becomes a `lax.map`, one host round trip per batch member (about 5 times the
  cost of one call with the whole batch for 4 CartPoles, ../shared/deps.md section 3);
- `vmap` of a `lax.cond` whose branches hold an io_callback raises "IO effect not supported in
  vmap-of-cond", even when the predicate is not batched, and a `while_loop` with a batched
  predicate raises too. The training loop evaluates inside a `cond` and a `while_loop` under
  its vmap over seeds, so a plain io_callback env cannot train there;
- `pure_callback`, which has neither limit, may be merged, dropped or moved by XLA.

So this module defines a primitive of its own. It lowers exactly as an unordered io_callback
does (an XLA custom call with a side effect, which XLA never removes, merges or hoists), carries
an effect of its own kind (allowed in control flow, not an ordered effect), and its batching rule
folds every `vmap` axis into the leading batch axis of the same primitive: under
`vmap(vmap(f))` over [seeds, envs] the host function runs once per call with `seeds * envs`
rows. Where `vmap` turns a `cond` into a `select` (a batched predicate), both branches run and
so do their host calls; their results are discarded as usual.

Host functions take and return NumPy arrays whose leading axis is the batch; callers of
`host_call` pass arrays with that axis already there (use a batch of 1 for one env).

This uses jax internals (`jax._src`): jax is pinned to `<0.11`, and `tests/envs/test_host.py`
checks the behaviour above.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax._src import callback as _callback
from jax._src import core as _core
from jax._src import dispatch as _dispatch
from jax._src import effects as _effects
from jax._src.interpreters import batching as _batching
from jax._src.interpreters import mlir as _mlir
from jax.extend.core import Primitive

HostFn = Callable[..., Sequence[np.ndarray]]


class HostEnvEffect(_effects.Effect):
    """The effect of stepping a host env: unordered, allowed inside `cond`/`while`/`scan`."""

    __str__ = lambda _: "HostEnv"  # noqa: E731


_HOST_EFFECT = HostEnvEffect()
_effects.lowerable_effects.add_type(HostEnvEffect)
_effects.control_flow_allowed_effects.add_type(HostEnvEffect)

host_call_p = Primitive("jaxmb_host_call")
host_call_p.multiple_results = True
_dispatch.prim_requires_devices_during_lowering.add(host_call_p)
host_call_p.def_impl(functools.partial(_dispatch.apply_primitive, host_call_p))


@host_call_p.def_effectful_abstract_eval
def _abstract_eval(*avals, fn, result_avals):
    del avals, fn
    return result_avals, {_HOST_EFFECT}


def _batch_rule(args, dims, *, fn, result_avals):
    """Folds the vmapped axis into the leading batch axis: `[size, n, ...] -> [size * n, ...]`."""
    size = next(arg.shape[dim] for arg, dim in zip(args, dims, strict=True) if dim is not None)
    flat = []
    for arg, dim in zip(args, dims, strict=True):
        if dim is None:
            arg = jnp.broadcast_to(arg, (size, *arg.shape))
        else:
            arg = _batching.moveaxis(arg, dim, 0)
        flat.append(arg.reshape((size * arg.shape[1], *arg.shape[2:])))
    rows = size * result_avals[0].shape[0]
    flat_avals = tuple(_core.ShapedArray((rows, *a.shape[1:]), a.dtype) for a in result_avals)
    outs = host_call_p.bind(*flat, fn=fn, result_avals=flat_avals)
    outs = [out.reshape((size, out.shape[0] // size, *out.shape[1:])) for out in outs]
    return outs, (0,) * len(outs)


_batching.primitive_batchers[host_call_p] = _batch_rule


def _lowering(ctx, *args, fn, result_avals):
    del result_avals

    def run(*flat_args):
        return tuple(fn(*[np.asarray(a) for a in flat_args]))

    sharding = _callback._callback_op_sharding(ctx.module_context.axis_context, None, ctx.avals_out)
    result, _, _ = _callback.emit_python_callback(
        ctx,
        run,
        None,
        list(args),
        ctx.avals_in,
        ctx.avals_out,
        has_side_effect=True,
        returns_token=False,
        sharding=sharding,
    )
    return result


_mlir.register_lowering(host_call_p, _lowering, cacheable=False)


def host_call(
    fn: HostFn, result_shapes: Sequence[jax.ShapeDtypeStruct], *args: jax.Array
) -> list[jax.Array]:
    """Calls `fn(*numpy_args)` on the host from traced code, once per execution.

    Args:
        fn: host function of NumPy arrays returning a sequence of arrays, exactly of
            `result_shapes` (shape and dtype). Every argument and result has a leading batch
            axis of the same size `n`. It must be hashable (functions and bound methods are).
        result_shapes: shapes of the results, each `[n, ...]`.
        *args: arrays, each `[n, ...]`.

    Returns:
        The results, each `[n, ...]`. Under `vmap` (any depth) the host function still runs
        once, on all rows at once, vmapped axes first.
    """
    if not args:
        raise ValueError("host_call needs at least one argument to carry the batch axis")
    rows = {int(jnp.shape(a)[0]) for a in args} | {int(s.shape[0]) for s in result_shapes}
    if len(rows) != 1:
        raise ValueError(f"host_call: arguments and results disagree on the batch size {rows}")
    avals = tuple(_core.ShapedArray(tuple(s.shape), jnp.dtype(s.dtype)) for s in result_shapes)
    return host_call_p.bind(*[jnp.asarray(a) for a in args], fn=fn, result_avals=avals)
