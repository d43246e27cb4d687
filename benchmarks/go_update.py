"""Cost of the 9x9 Go preset's training step: one SGD update and one self-play step, with and
without symmetry augmentation, with the MLP encoder the preset uses and the 2-block conv
torso it used before.

    python benchmarks/go_update.py            # about 3 minutes on 2 CPU cores
    python benchmarks/go_update.py --repeats 2

Each variant builds the loop of `configs/muzero/go_9x9.yaml` (search over the env,
`agent.search.model=env`, as the Go learning test trains), fills the replay's counter so that
every window can be sampled, and times the compiled `learn` (the iteration's
`replay_ratio * 256` updates, sampling included) and the compiled self-play collection (4
moves on each of the 64 boards, search included). Prints a table and writes
`benchmarks/results/go_update-<date>.json`.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import jax
import jax.numpy as jnp

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks import _common  # noqa: E402
from jaxmb import config as config_lib  # noqa: E402
from jaxmb import replay as replay_lib  # noqa: E402
from jaxmb.loop import Loop  # noqa: E402

VARIANTS = {
    "preset (mlp, augmented)": [],
    "mlp, no augmentation": ["replay.augment_symmetries=false"],
    "conv torso (2 blocks), augmented": [
        "agent.network.torso=resnet",
        "agent.network.conv_channels=32",
        "agent.network.num_res_blocks=2",
    ],
}


def _time(fn, repeats: int) -> float:
    jax.block_until_ready(fn())  # compile and warm up
    start = time.perf_counter()
    for _ in range(repeats):
        jax.block_until_ready(fn())
    return (time.perf_counter() - start) / repeats


def measure(overrides: list[str], repeats: int) -> dict:
    preset = os.path.join(ROOT, "configs", "muzero", "go_9x9.yaml")
    config = config_lib.load(preset, ["agent.search.model=env", *overrides])
    loop = Loop(config)
    state = loop.init(jax.random.key(0))
    cap = replay_lib.capacity(state.replay)
    replay = state.replay.replace(num_written=jnp.asarray(cap // 2, jnp.int32))
    guard = (jnp.zeros((), bool), jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))
    learn = jax.jit(loop.learn)
    collect = jax.jit(loop.collect)
    learn_s = _time(lambda: learn(state.agent, replay, jax.random.key(1), guard), repeats)
    collect_s = _time(lambda: collect(state, jax.random.key(2)), repeats)
    moves = config.train.rollout_steps * config.env.num_envs
    updates = config.updates_per_iteration
    return {
        "overrides": overrides,
        "updates_per_iteration": updates,
        "moves_per_iteration": moves,
        "update_ms": 1000 * learn_s / updates,
        "selfplay_ms_per_move": 1000 * collect_s / moves,
        "moves_per_second": moves / (learn_s + collect_s),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    results = {**_common.metadata(), "repeats": args.repeats, "variants": {}}
    print(f"{'variant':36} {'update ms':>10} {'self-play ms/move':>18} {'moves/s':>8}")
    for name, overrides in VARIANTS.items():
        row = measure(overrides, args.repeats)
        results["variants"][name] = row
        print(
            f"{name:36} {row['update_ms']:10.1f} {row['selfplay_ms_per_move']:18.2f} "
            f"{row['moves_per_second']:8.0f}"
        )
    base = results["variants"]["mlp, no augmentation"]["update_ms"]
    for row in results["variants"].values():
        row["update_cost_vs_mlp_unaugmented"] = row["update_ms"] / base
    _common.write(results, "go_update", args.out)


if __name__ == "__main__":
    main()
