"""Checkpoints of the train state with orbax-checkpoint (atomic: written to a temporary
folder, then renamed).

PRNG keys are stored as their raw `uint32` data (orbax stores plain arrays) and rebuilt on
restore, so a restored state is a drop-in for the saved one. Arrays with a zero-size axis
(MJX's `data.act` for a body without actuator activations) hold no data and orbax refuses
them: they are stored as a scalar placeholder and rebuilt from `like`'s shape on restore.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp


def is_key(x: Any) -> bool:
    """Whether `x` (an array or a shape) holds typed PRNG keys."""
    dtype = getattr(x, "dtype", None)
    return dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key)


def _is_empty(x: Any) -> bool:
    """Whether `x` (an array or a shape) has a zero-size axis."""
    return 0 in getattr(x, "shape", ())


def _to_storable(tree: Any) -> Any:
    def storable(x: Any) -> Any:
        if is_key(x):
            return jax.random.key_data(x)
        if _is_empty(x):
            return np.zeros((), x.dtype)
        return x

    return jax.tree.map(storable, tree)


def _from_storable(stored: Any, like: Any) -> Any:
    def restored(s: Any, ref: Any) -> Any:
        if is_key(ref):
            return jax.random.wrap_key_data(s)
        if _is_empty(ref):
            return np.zeros(ref.shape, ref.dtype)
        return s

    return jax.tree.map(restored, stored, like)


class Checkpointer:
    """Saves and restores train states under `<run_dir>/checkpoints/<step>`.

    Args:
      directory: the checkpoints folder.
      max_to_keep: how many recent checkpoints to keep.
    """

    def __init__(self, directory: str, max_to_keep: int = 3):
        self.directory = os.path.abspath(directory)
        options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True)
        if jax.process_count() > 1:
            # Process 0 alone writes and reads (it holds the whole state: jaxmb gathers it to
            # the host first); the other processes never construct a Checkpointer.
            os.makedirs(self.directory, exist_ok=True)  # orbax refuses to with active_processes
            options = ocp.CheckpointManagerOptions(
                max_to_keep=max_to_keep,
                create=False,
                multiprocessing_options=ocp.options.MultiprocessingOptions(
                    primary_host=0, active_processes={0}
                ),
            )
        self._manager = ocp.CheckpointManager(self.directory, options=options)

    def save(self, step: int, state: Any) -> None:
        """Writes `state` (any pytree of arrays) as checkpoint `step` and waits for it.

        A step that is already saved is left as it is (the loop's last periodic checkpoint and
        the final one are the same state).
        """
        if int(step) in self._manager.all_steps():
            return
        host_state = jax.tree.map(np.asarray, _to_storable(state))
        self._manager.save(int(step), args=ocp.args.StandardSave(host_state), force=True)
        self._manager.wait_until_finished()

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def restore(self, like: Any, step: int | None = None) -> Any:
        """Restores checkpoint `step` (default: latest) into the structure of `like`.

        `like` may hold arrays or `jax.ShapeDtypeStruct`s (e.g. from `jax.eval_shape`).
        """
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {self.directory}")
        abstract = jax.eval_shape(_to_storable, like)
        stored = self._manager.restore(step, args=ocp.args.StandardRestore(abstract))
        return _from_storable(stored, like)

    def close(self) -> None:
        self._manager.close()


def read_saved(directory: str, step: int | None = None) -> tuple[int, Any]:
    """Checkpoint `step` (default: the latest) of `directory` as it was saved: nested dicts
    of numpy arrays, without a template (to read a part, such as the agent's parameters,
    without building the train state). Keys stay raw `uint32` data.

    Raises:
      FileNotFoundError: when `directory` holds no checkpoint.
    """
    directory = os.path.abspath(directory)
    if not os.path.isdir(directory):  # orbax's manager would create it
        raise FileNotFoundError(f"no checkpoint in {directory}")
    manager = ocp.CheckpointManager(directory)
    try:
        step = manager.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {directory}")
        saved = manager.restore(step, args=ocp.args.StandardRestore())
    finally:
        manager.close()
    return step, saved
