"""Scaling of the seed-batched program: members vmapped on one device, and seeds sharded over
devices (`jaxmb.distributed.compile_sharded`, both modes).

    python benchmarks/scaling.py            # full run (1024 env steps a member, best of 2)
    python benchmarks/scaling.py --quick    # fewer members, devices and steps: a smoke check

Prints a table and writes `benchmarks/results/scaling[-quick]-<date>.json`. The setting is
`configs/muzero/cartpole.yaml` with evaluation off (`train.eval_every=0`) and learning from
`replay.min_size` env steps on, so most of the budget is spent learning; no callbacks.

Each measurement runs in a fresh process: the device count
(`XLA_FLAGS=--xla_force_host_platform_device_count=N`) is fixed when JAX starts. Forced host
devices share the machine's cores, so on a CPU box the sharded rows measure the cost of
partitioning (collectives, per-device dispatch), not a speed-up; real scaling needs real
devices or hosts.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import metadata, write  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "configs", "muzero", "cartpole.yaml")
WORKER_TIMEOUT_S = 1800


def measure(spec: dict) -> dict:
    """One measurement, in this process: compile seconds, run seconds, env steps/s."""
    import jax

    from jaxmb import config as config_lib
    from jaxmb import distributed
    from jaxmb.train import make_train

    config = config_lib.load(
        CONFIG,
        [
            "train.eval_every=0",
            f"train.total_env_steps={spec['env_steps']}",
            f"replay.min_size={spec['min_size']}",
        ],
    )
    members = spec["members"]
    train = make_train(config, num_seeds=members)
    keys = jax.random.split(jax.random.key(0), members)
    start = time.perf_counter()
    if spec["mode"] == "vmap":
        compiled = jax.jit(train).lower(keys).compile()
    else:
        mesh = distributed.seed_mesh()
        compiled, keys = distributed.compile_sharded(
            train, keys, mesh, shard_map=spec["mode"] == "shard_map"
        )
    compile_seconds = time.perf_counter() - start
    runs = []
    for _ in range(spec["repeats"]):  # the best of a few: the box is shared and noisy
        start = time.perf_counter()
        _, metrics = jax.block_until_ready(compiled(keys))
        runs.append(time.perf_counter() - start)
    run_seconds = min(runs)
    env_steps = int(distributed.to_host(metrics["env_steps"])[0, -1])
    return dict(
        spec,
        devices=jax.device_count(),
        compile_seconds=compile_seconds,
        run_seconds=run_seconds,
        all_run_seconds=runs,
        env_steps_per_member=env_steps,
        env_steps_per_second=members * env_steps / run_seconds,
        seconds_per_member=run_seconds / members,
    )


def _run_worker(spec: dict) -> dict:
    flags = [
        f
        for f in os.environ.get("XLA_FLAGS", "").split()
        if not f.startswith("--xla_force_host_platform_device_count")
    ]
    flags.append(f"--xla_force_host_platform_device_count={spec['devices']}")
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=" ".join(flags))
    try:
        proc = subprocess.run(
            [sys.executable, os.path.abspath(__file__), "--worker", json.dumps(spec)],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=WORKER_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        return dict(spec, error=f"timed out after {WORKER_TIMEOUT_S} s")
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        tail = [
            line
            for line in proc.stderr.splitlines()
            if "Involuntary full rematerialization" not in line
        ][-15:]
        return dict(spec, error=f"exit {proc.returncode}: " + "\n".join(tail))
    return json.loads(lines[-1][len("RESULT ") :])


def _row(result: dict) -> str:
    if "error" in result:
        return (
            f"{result['mode']:>9} {result['devices']:>7} {result['members']:>7}  "
            f"FAILED: {result['error'].splitlines()[-1] if result['error'] else ''}"
        )
    return (
        f"{result['mode']:>9} {result['devices']:>7} {result['members']:>7} "
        f"{result['compile_seconds']:>10.1f} {result['run_seconds']:>8.1f} "
        f"{result['env_steps_per_second']:>13.1f} {result['seconds_per_member']:>13.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer sizes and steps")
    parser.add_argument("--out", default=None, help="JSON path (default: benchmarks/results)")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        print("RESULT " + json.dumps(measure(json.loads(args.worker))), flush=True)
        return

    if args.quick:
        env_steps, min_size, repeats = 256, 128, 1
        member_counts, device_counts, sharded_members = [1, 2, 4], [1, 2, 4], 4
    else:
        env_steps, min_size, repeats = 1024, 256, 2
        member_counts, device_counts, sharded_members = [1, 2, 4, 8, 16, 32], [1, 2, 4, 8], 8
    base = {"env_steps": env_steps, "min_size": min_size, "repeats": repeats}
    specs = [dict(base, mode="vmap", devices=1, members=m) for m in member_counts]
    specs += [
        dict(base, mode=mode, devices=d, members=sharded_members)
        for mode in ("jit", "shard_map")
        for d in device_counts
    ]

    results: dict = {
        **metadata(),
        "config": os.path.relpath(CONFIG, ROOT),
        "overrides": [
            "train.eval_every=0",
            f"train.total_env_steps={env_steps}",
            f"replay.min_size={min_size}",
        ],
        "quick": args.quick,
        "repeats": repeats,
        "rows": [],
    }
    header = (
        f"{'mode':>9} {'devices':>7} {'members':>7} {'compile s':>10} {'run s':>8} "
        f"{'env steps/s':>13} {'s per member':>13}"
    )
    print(f"jaxmb scaling  {results['date']}  {results['machine']}  jax {results['jax']}")
    print(f"{results['config']} {' '.join(results['overrides'])}")
    print(header)
    for spec in specs:
        result = _run_worker(spec)
        results["rows"].append(result)
        print(_row(result), flush=True)
    print(
        "load average (1, 5, 15 min) at start "
        + ", ".join(f"{x:.1f}" for x in results["load_average_start"])
        + "; at end "
        + ", ".join(f"{x:.1f}" for x in os.getloadavg())
    )
    write(results, "scaling-quick" if args.quick else "scaling", args.out)
    if any("error" in row for row in results["rows"]):
        sys.exit(1)


if __name__ == "__main__":
    main()
