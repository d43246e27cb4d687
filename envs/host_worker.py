"""The host half of host envs: a batch of envs that auto-resets, and the worker process.

This file, and `host_adapters.py` (the suites) which it loads, import only the standard library
and NumPy at the top (each suite is imported when its first env is made), because they also run
in worker processes under other interpreters: a worker venv whose pins conflict with jaxmb's
(Procgen needs numpy<2 and the old `gym`; Meta-World 3.1.1 pins mujoco 3.3.0) runs

    <venv>/bin/python -c "...runpy.run_path('<this file>', run_name='__main__')"

and talks to the parent over its stdin and stdout: length-prefixed pickles of builtins only
(arrays travel as dtype, shape and bytes), so NumPy 1 and NumPy 2 understand each other.

`EnvBatch` is what both the in-process pools and the workers step. It follows Gymnasium's
same-step auto-reset: when an episode ends, the observation returned is the next episode's
first, and `final_obs` holds the last one of the episode that ended. Observations are converted
on this side (uint8 images stay uint8, everything else becomes float32), so less crosses the
pipe and both sides agree on dtypes.
"""

from __future__ import annotations

import importlib.util
import os
import pickle
import struct
import sys
import traceback
from typing import Any

import numpy as np

if __name__ == "__main__":  # a worker: load the sibling file by path (jaxmb may not be installed)
    _spec = importlib.util.spec_from_file_location(
        "host_adapters",
        os.path.join(os.path.dirname(os.path.abspath(__file__)), "host_adapters.py"),
    )
    host_adapters = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(host_adapters)
else:
    from jaxmb.envs import host_adapters

describe_space = host_adapters.describe_space
observation_output = host_adapters.observation_output
make_env = host_adapters.make_env

# --------------------------------------------------------------------------- a batch of envs


class EnvError(Exception):
    """An env of a batch raised. `args`: a dict with index, step, episode_step, error, traceback."""

    @property
    def details(self) -> dict:
        return self.args[0]


class EnvBatch:
    """`size` envs of one kind, reset and stepped together with same-step auto-reset.

    Args:
        suite, name, options: what `make_env` builds.
        size: number of envs.
    """

    def __init__(self, suite: str, name: str, options: dict, size: int):
        self.envs = [make_env(suite, name, options) for _ in range(size)]
        first = self.envs[0]
        self.observation_space = first.observation_space
        self.action_space = first.action_space
        self.output_space = observation_output(first.observation_space)
        self._obs_dtype = np.dtype(self.output_space["dtype"])
        self._obs_shape = tuple(self.output_space["shape"])
        discrete = self.action_space["kind"] == "discrete"
        self._action = (
            (lambda a: int(a) + self.action_space["start"])
            if discrete
            else (lambda a: np.asarray(a, np.dtype(self.action_space["dtype"])))
        )
        self.steps = [0] * size  # steps taken by each env since it was made
        self.episode_steps = [0] * size

    def __len__(self) -> int:
        return len(self.envs)

    def _convert(self, obs: Any) -> np.ndarray:
        return np.asarray(obs, self._obs_dtype).reshape(self._obs_shape)

    def _fail(self, index: int, where: str, err: BaseException) -> EnvError:
        return EnvError(
            {
                "index": int(index),
                "where": where,
                "step": int(self.steps[index]),
                "episode_step": int(self.episode_steps[index]),
                "error": f"{type(err).__name__}: {err}",
                "traceback": traceback.format_exc(),
            }
        )

    def reset(self, indices: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        """Starts new episodes in `envs[indices]`, seeded; returns `obs[len(indices), ...]`."""
        out = np.empty((len(indices), *self._obs_shape), self._obs_dtype)
        for row, (index, seed) in enumerate(zip(indices.tolist(), seeds, strict=True)):
            try:
                out[row] = self._convert(self.envs[index].reset(int(seed)))
            except Exception as err:
                raise self._fail(index, "reset", err) from err
            self.episode_steps[index] = 0
        return out

    def step(self, indices: np.ndarray, actions: np.ndarray) -> tuple[np.ndarray, ...]:
        """Steps `envs[indices]` with `actions`; returns obs, reward, terminated, truncated,
        final_obs, each with a leading `[len(indices)]` axis."""
        num = len(indices)
        obs = np.empty((num, *self._obs_shape), self._obs_dtype)
        final = np.empty_like(obs)
        reward = np.empty(num, np.float32)
        terminated = np.empty(num, bool)
        truncated = np.empty(num, bool)
        for row, index in enumerate(indices.tolist()):
            env = self.envs[index]
            self.steps[index] += 1
            self.episode_steps[index] += 1
            try:
                o, r, term, trunc = env.step(self._action(actions[row]))
                final[row] = self._convert(o)
                if (term or trunc) and not env.autoresets:
                    o = env.reset(None)  # the env's own generator goes on: still deterministic
            except Exception as err:
                raise self._fail(index, "step", err) from err
            obs[row] = self._convert(o)
            reward[row], terminated[row], truncated[row] = r, term, trunc
            if term or trunc:
                self.episode_steps[index] = 0
        return obs, reward, terminated, truncated, final

    def close(self) -> None:
        for env in self.envs:
            try:
                env.close()
            except Exception:  # closing is best effort
                pass


# --------------------------------------------------------------------------- wire format

_ARRAY = "__ndarray__"


def _encode(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return (_ARRAY, obj.dtype.str, obj.shape, np.ascontiguousarray(obj).tobytes())
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        return {k: _encode(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_encode(v) for v in obj)
    return obj


def _decode(obj: Any) -> Any:
    if isinstance(obj, tuple) and len(obj) == 4 and obj[0] == _ARRAY:
        return np.frombuffer(obj[3], np.dtype(obj[1])).reshape(obj[2]).copy()
    if isinstance(obj, dict):
        return {k: _decode(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_decode(v) for v in obj)
    return obj


def send(stream: Any, message: Any) -> None:
    """Writes one length-prefixed message to a binary stream."""
    data = pickle.dumps(_encode(message), protocol=4)
    stream.write(struct.pack("<Q", len(data)) + data)
    stream.flush()


def _read_exactly(stream: Any, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = stream.read(left)
        if not chunk:
            raise EOFError("the other side closed the pipe")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def recv(stream: Any) -> Any:
    """Reads one message written by `send`; `EOFError` when the pipe is closed."""
    (size,) = struct.unpack("<Q", _read_exactly(stream, 8))
    return _decode(pickle.loads(_read_exactly(stream, size)))


# --------------------------------------------------------------------------- worker main


def _handle(batch: EnvBatch | None, message: dict) -> tuple[EnvBatch | None, dict]:
    command = message["command"]
    if command == "make":
        batch = EnvBatch(message["suite"], message["name"], message["options"], message["size"])
        return batch, {
            "observation_space": batch.observation_space,
            "action_space": batch.action_space,
            "python": sys.version.split()[0],
            "numpy": np.__version__,
        }
    if command == "reset":
        return batch, {"obs": batch.reset(message["indices"], message["seeds"])}
    if command == "step":
        outs = batch.step(message["indices"], message["actions"])
        return batch, dict(
            zip(("obs", "reward", "terminated", "truncated", "final_obs"), outs, strict=True)
        )
    raise ValueError(f"unknown command {command!r}")


def main() -> None:
    """Serves one `EnvBatch` over stdin/stdout until `close` or end of input."""
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # stray prints must not corrupt the pipe
    stdin = sys.stdin.buffer
    batch = None
    while True:
        try:
            message = recv(stdin)
        except EOFError:
            break
        if message["command"] == "close":
            if batch is not None:
                batch.close()
            send(out, {"closed": True})
            break
        try:
            batch, reply = _handle(batch, message)
        except EnvError as err:
            reply = {"error": err.details}
        except Exception as err:
            reply = {
                "error": {
                    "index": -1,
                    "where": message["command"],
                    "step": -1,
                    "episode_step": -1,
                    "error": f"{type(err).__name__}: {err}",
                    "traceback": traceback.format_exc(),
                }
            }
        send(out, reply)


if __name__ == "__main__":
    main()
