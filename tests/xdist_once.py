"""Computing a module fixture's costly result once per test run, not once per xdist worker.

`--dist worksteal` may split a module's tests between the two workers, and each worker then
builds the module's fixtures again. For fixtures that compile a costly program (Playground's
Cheetah) that doubles their time. `computed_once` lets the first worker to get there compute
and store the result (a pickle in the run's shared temp folder, under a file lock); the
other reads it.
"""

import fcntl
import os
import pickle
from collections.abc import Callable
from typing import Any


def computed_once(tmp_path_factory, worker_id: str, name: str, compute: Callable[[], Any]):
    """`compute()`, or what another worker of this run stored for `name`.

    The result must pickle (numpy arrays, not jax arrays or envs). Without xdist
    (`worker_id == "master"`) this is `compute()`.
    """
    if worker_id == "master":
        return compute()
    folder = tmp_path_factory.getbasetemp().parent  # shared by the run's workers
    path = os.path.join(folder, f"computed-once-{name}.pkl")
    with open(path + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the other worker waits here until it is stored
        try:
            if os.path.exists(path):
                with open(path, "rb") as f:
                    return pickle.load(f)
            result = compute()
            with open(path + ".tmp", "wb") as f:
                pickle.dump(result, f)
            os.replace(path + ".tmp", path)
            return result
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
