"""Pools of host envs: in this process, or spread over worker processes.

A pool is a fixed number of envs of one kind, stepped together: `reset(indices, seeds)` and
`step(indices, actions)` (see `host_worker.EnvBatch`, which is the in-process pool). A
`WorkerPool` splits its envs over worker processes, each serving an `EnvBatch`, as Gymnasium's
`AsyncVectorEnv` does: a step sends every worker its actions before reading any reply, so the
workers step in parallel. A worker may run under another interpreter (a worker venv).

A worker that dies is a `HostEnvError` naming the env id, the worker's exit code and the end of
its stderr; it never hangs the caller, as its pipe closes when it exits.
"""

from __future__ import annotations

import atexit
import os
import queue
import subprocess
import sys
import tempfile
import threading
import weakref
from typing import Any

import numpy as np

from jaxmb.envs import host_adapters, host_worker

WORKER_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "host_worker.py")
# `-c` puts the working directory first on sys.path, where a checkout's `envs/` could shadow a
# suite's modules: drop it, then run this package's worker file as a script.
_BOOT = "import runpy, sys; sys.path.pop(0); runpy.run_path(sys.argv[1], run_name='__main__')"


class HostEnvError(RuntimeError):
    """A host env raised (or its worker died) while being reset or stepped.

    Attributes:
        env_id: the jaxmb id, e.g. `"gym:CartPole-v1"`.
        original: the exception the env raised, when it ran in this process (None for a
            worker's: its type, message and traceback are in `details`).
        details: index (the env's row in its pool, -1 when unknown), where (`"reset"` or
            `"step"`), step (steps that env had taken, counting this one), episode_step, error
            (the original exception as `"Type: message"`) and traceback (its text).
    """

    def __init__(self, env_id: str, details: dict, original: BaseException | None = None):
        self.env_id = env_id
        self.details = details
        self.original = original
        index = details.get("index", -1)
        which = f" (env {index} of its batch)" if index >= 0 else ""
        where = details.get("where", "step")
        step = details.get("step", -1)
        at = (
            f" at step {step} (step {details.get('episode_step')} of its episode)"
            if step >= 0
            else ""
        )
        super().__init__(f"host env {env_id}{which} raised in {where}{at}: {details['error']}")

    @property
    def remote_traceback(self) -> str:
        return self.details.get("traceback", "")


def _to_host_error(env_id: str, err: host_worker.EnvError) -> HostEnvError:
    return HostEnvError(env_id, err.details, original=err.__cause__)


class InProcessPool:
    """`size` envs in this process (an `EnvBatch` whose errors name the env id).

    Envs of `host_adapters.THREAD_BOUND_SUITES` (RoboDesk: dm_control's EGL context belongs to
    the thread that made it current) are made and stepped on one dedicated thread, since XLA
    runs host callbacks on whichever thread it likes.
    """

    def __init__(self, env_id: str, suite: str, name: str, options: dict, size: int):
        self.env_id = env_id
        self._thread = _env_thread() if suite in host_adapters.THREAD_BOUND_SUITES else None
        self.batch = self._call(host_worker.EnvBatch, suite, name, options, size)
        self._closes_at_exit = self._thread is None

    def _call(self, fn: Any, *args: Any) -> Any:
        if self._thread is None:
            return fn(*args)
        return self._thread.call(fn, *args)

    def __len__(self) -> int:
        return len(self.batch)

    @property
    def spaces(self) -> tuple[dict, dict]:
        return self.batch.observation_space, self.batch.action_space

    def reset(self, indices: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        try:
            obs = self._call(self.batch.reset, indices, seeds)
        except host_worker.EnvError as err:
            raise _to_host_error(self.env_id, err) from err.__cause__
        if not self._closes_at_exit:
            # Closed at exit on its thread, before dm_control's exit handler (registered when
            # the first frame was rendered; atexit runs the later ones first) frees its
            # contexts from the main thread, which fails.
            atexit.register(_close_pool, weakref.ref(self))
            self._closes_at_exit = True
        return obs

    def step(self, indices: np.ndarray, actions: np.ndarray) -> tuple[np.ndarray, ...]:
        try:
            return self._call(self.batch.step, indices, actions)
        except host_worker.EnvError as err:
            raise _to_host_error(self.env_id, err) from err.__cause__

    def close(self) -> None:
        if self.batch is not None:
            self._call(self.batch.close)
            self.batch = None


class _EnvThread:
    """A daemon thread that runs the calls given to `call`, one at a time.

    Not a `ThreadPoolExecutor`: those stop before `atexit` handlers run, and the envs must
    still be closed on their thread then (dm_control frees its contexts at exit).
    """

    def __init__(self):
        self.jobs: queue.Queue = queue.Queue()
        threading.Thread(target=self._serve, name="jaxmb-host-env", daemon=True).start()

    def _serve(self) -> None:
        while True:
            fn, args, result, done = self.jobs.get()
            try:
                result.append((True, fn(*args)))
            except BaseException as err:
                result.append((False, err))
            done.set()

    def call(self, fn: Any, *args: Any) -> Any:
        result: list = []
        done = threading.Event()
        self.jobs.put((fn, args, result, done))
        done.wait()
        ok, value = result[0]
        if not ok:
            raise value
        return value


_ENV_THREAD: list[_EnvThread] = []


def _env_thread() -> _EnvThread:
    """The one thread that makes and steps every thread-bound host env of this process."""
    if not _ENV_THREAD:
        _ENV_THREAD.append(_EnvThread())
    return _ENV_THREAD[0]


class _Worker:
    """One worker process serving an `EnvBatch` of `size` envs."""

    def __init__(self, env_id: str, python: str, suite: str, name: str, options: dict, size: int):
        self.env_id = env_id
        self.python = python
        self.stderr = tempfile.TemporaryFile()
        try:
            self.proc = subprocess.Popen(
                [python, "-c", _BOOT, WORKER_FILE],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self.stderr,
            )
        except OSError as err:
            raise HostEnvError(
                env_id,
                {"where": "start", "error": f"cannot start a worker with {python}: {err}"},
            ) from err
        message = {"command": "make", "suite": suite, "name": name, "options": options}
        self.send(dict(message, size=size))
        self.info = self.receive("make")

    def send(self, message: dict) -> None:
        try:
            host_worker.send(self.proc.stdin, message)
        except (BrokenPipeError, OSError, ValueError) as err:
            raise self._died("send") from err

    def receive(self, where: str) -> dict:
        try:
            reply = host_worker.recv(self.proc.stdout)
        except (EOFError, OSError, ValueError) as err:
            raise self._died(where) from err
        if "error" in reply:
            raise HostEnvError(self.env_id, reply["error"])
        return reply

    def _died(self, where: str) -> HostEnvError:
        try:
            code = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self.stderr.seek(0)
        tail = self.stderr.read()[-2000:].decode(errors="replace").strip()
        message = (
            f"its worker process (pid {self.proc.pid}, {self.python}) died with exit code {code}"
        )
        if tail:
            message += f"; the end of its stderr:\n{tail}"
        return HostEnvError(self.env_id, {"where": where, "error": message})

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                host_worker.send(self.proc.stdin, {"command": "close"})
                self.proc.wait(timeout=5)
            except Exception:
                self.proc.kill()
                self.proc.wait()
        self.stderr.close()


class WorkerPool:
    """`size` envs spread over up to `num_workers` worker processes run by `python`."""

    def __init__(
        self,
        env_id: str,
        suite: str,
        name: str,
        options: dict,
        size: int,
        *,
        num_workers: int,
        python: str,
    ):
        self.env_id = env_id
        self.size = size
        chunks = [
            c for c in np.array_split(np.arange(size), max(1, min(num_workers, size))) if len(c)
        ]
        self.workers: list[_Worker] = []
        try:
            for chunk in chunks:
                self.workers.append(_Worker(env_id, python, suite, name, options, len(chunk)))
        except BaseException:
            self.close()
            raise
        # env index -> (worker, row in that worker's batch)
        self.owner = np.concatenate([np.full(len(c), w) for w, c in enumerate(chunks)])
        self.row = np.concatenate([np.arange(len(c)) for c in chunks])
        self.start = [int(c[0]) for c in chunks]
        _live_pools.add(self)

    def __len__(self) -> int:
        return self.size

    @property
    def spaces(self) -> tuple[dict, dict]:
        info = self.workers[0].info
        return info["observation_space"], info["action_space"]

    def _scatter(self, command: str, indices: np.ndarray, **per_env: np.ndarray) -> list:
        """Sends each worker its envs' share; returns [(positions, reply)] per worker used."""
        indices = np.asarray(indices)
        owners = self.owner[indices]
        used = []
        for w in np.unique(owners):
            positions = np.flatnonzero(owners == w)
            message = {"command": command, "indices": self.row[indices[positions]]}
            message.update({k: np.asarray(v)[positions] for k, v in per_env.items()})
            self.workers[w].send(message)
            used.append((positions, w))
        replies, error = [], None
        for positions, w in used:  # read every reply, so the pipes stay in step after an error
            try:
                replies.append((positions, self.workers[w].receive(command)))
            except HostEnvError as err:
                index = err.details.get("index", -1)
                if index >= 0:  # the worker numbers its own envs from 0
                    err = HostEnvError(
                        self.env_id, dict(err.details, index=int(self.start[w] + index))
                    )
                error = error or err
        if error is not None:
            raise error
        return replies

    def reset(self, indices: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        replies = self._scatter("reset", indices, seeds=seeds)
        first = replies[0][1]["obs"]
        obs = np.empty((len(indices), *first.shape[1:]), first.dtype)
        for positions, reply in replies:
            obs[positions] = reply["obs"]
        return obs

    def step(self, indices: np.ndarray, actions: np.ndarray) -> tuple[np.ndarray, ...]:
        replies = self._scatter("step", indices, actions=actions)
        names = ("obs", "reward", "terminated", "truncated", "final_obs")
        outs = []
        for name in names:
            first = replies[0][1][name]
            out = np.empty((len(indices), *first.shape[1:]), first.dtype)
            for positions, reply in replies:
                out[positions] = reply[name]
            outs.append(out)
        return tuple(outs)

    def close(self) -> None:
        for worker in self.workers:
            worker.close()
        self.workers = []
        _live_pools.discard(self)


def _close_pool(ref: weakref.ref) -> None:
    pool = ref()
    if pool is not None:
        pool.close()


_live_pools: weakref.WeakSet = weakref.WeakSet()


@atexit.register
def _close_live_pools() -> None:
    for pool in list(_live_pools):
        pool.close()


def make_pool(
    env_id: str,
    suite: str,
    name: str,
    options: dict,
    size: int,
    *,
    num_workers: int = 0,
    python: str = "",
) -> Any:
    """An `InProcessPool` when `num_workers == 0`, else a `WorkerPool` (default interpreter: this
    one)."""
    if num_workers <= 0:
        return InProcessPool(env_id, suite, name, options, size)
    return WorkerPool(
        env_id,
        suite,
        name,
        options,
        size,
        num_workers=num_workers,
        python=python or sys.executable,
    )
