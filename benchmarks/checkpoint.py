"""Cost of checkpointing the whole train state: seconds per save and restore, size on disk.

    python benchmarks/checkpoint.py                 # cartpole and matched presets, 1 and 8 seeds
    python benchmarks/checkpoint.py --repeats 5

The state is what `jaxmb.run` saves: params, optimiser, target params, the replay buffer, env
states, keys, counters and the metric history, for `run.num_seeds` members. It is built with
`train.init` (a fresh state holds the same arrays as a trained one: the replay is allocated
in full up front) with the replay filled with noise, so that the size on disk is the worst
case of a full buffer (orbax compresses; real data compresses somewhat better). Each save goes
through `jaxmb.checkpoint.Checkpointer.save` (orbax, atomic:
a temporary folder renamed on completion) and waits for it to finish, as the loop does.
Prints a table and writes `benchmarks/results/checkpoint-<date>.json`.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import jax
import numpy as np

from jaxmb import config as config_lib
from jaxmb.checkpoint import Checkpointer
from jaxmb.train import make_train

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import metadata, write  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PRESETS = ("cartpole", "matched")


def _folder_bytes(path: str) -> int:
    return sum(
        os.path.getsize(os.path.join(folder, name))
        for folder, _, names in os.walk(path)
        for name in names
    )


def measure(preset: str, num_seeds: int, repeats: int) -> dict:
    config = config_lib.load(os.path.join(ROOT, "configs", "muzero", f"{preset}.yaml"))
    train = make_train(config, num_seeds=num_seeds)
    state = jax.block_until_ready(
        jax.jit(train.init)(jax.random.split(jax.random.key(0), num_seeds))
    )
    # A fresh replay is zeros, which orbax's compression shrinks to nothing; a full buffer of
    # noise is the incompressible worst case a long run approaches.
    noise = np.random.default_rng(0)
    state = state.replace(
        replay=jax.tree.map(
            lambda x: (noise.standard_normal(x.shape) * 3).astype(x.dtype), state.replay
        )
    )
    state_bytes = sum(
        np.asarray(
            jax.random.key_data(x) if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key) else x
        ).nbytes
        for x in jax.tree.leaves(state)
    )
    with tempfile.TemporaryDirectory() as folder:
        checkpointer = Checkpointer(os.path.join(folder, "checkpoints"), max_to_keep=repeats + 1)
        saves = []
        for step in range(1, repeats + 1):
            start = time.perf_counter()
            checkpointer.save(step, state)
            saves.append(time.perf_counter() - start)
        disk = _folder_bytes(os.path.join(folder, "checkpoints", "1"))
        like = jax.eval_shape(train.init, jax.random.split(jax.random.key(0), num_seeds))
        restores = []
        for _ in range(repeats):
            start = time.perf_counter()
            jax.block_until_ready(checkpointer.restore(like))
            restores.append(time.perf_counter() - start)
        checkpointer.close()
    return {
        "preset": preset,
        "num_seeds": num_seeds,
        "state_mb": state_bytes / 2**20,
        "disk_mb": disk / 2**20,
        "save_seconds": min(saves),
        "all_save_seconds": saves,
        "restore_seconds": min(restores),
        "all_restore_seconds": restores,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="saves and restores per row")
    parser.add_argument("--out", default=None, help="JSON path (default: benchmarks/results)")
    args = parser.parse_args()
    results = {**metadata(), "rows": []}
    print(f"jaxmb checkpoint cost  {results['date']}  {results['machine']}  jax {results['jax']}")
    print(
        f"{'preset':>9} {'seeds':>5} {'state MB':>9} {'disk MB':>8} {'save s':>7} {'restore s':>9}"
    )
    for preset in PRESETS:
        for num_seeds in (1, 8):
            row = measure(preset, num_seeds, args.repeats)
            results["rows"].append(row)
            print(
                f"{preset:>9} {num_seeds:>5} {row['state_mb']:>9.1f} {row['disk_mb']:>8.1f} "
                f"{row['save_seconds']:>7.2f} {row['restore_seconds']:>9.2f}",
                flush=True,
            )
    write(results, "checkpoint", args.out)


if __name__ == "__main__":
    main()
