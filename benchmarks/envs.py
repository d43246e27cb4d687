"""Steps per second of each environment under `jit(vmap(step))`, and compile seconds.

    python benchmarks/envs.py                                   # every id below, batch 1, 64, 1024
    python benchmarks/envs.py --ids jaxmb:Sokoban-v0 --batches 64

Each row compiles one program per batch size: a `lax.scan` of `--steps` steps of the batched
env with uniformly random legal actions (continuous envs through `Discretize`), so
auto-resets are inside the measured time as in training. `compile s` is trace + compile of
that program (the env's reset included); `steps/s` counts env steps (batch x steps) over the
best of `--repeats` runs. Each id runs in a fresh process (a failure or a missing extra is a
row, not a crash). Prints a table and writes `benchmarks/results/envs-<date>.json`. On a CPU,
Craftax runs at batches up to 64 only (`CPU_MAX_BATCH`; `--all-batches` lifts it).
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
IDS = (
    "gymnax:CartPole-v1",
    "gymnax:Breakout-MinAtar",
    "jaxmb:Sokoban-v0",
    "jumanji:Sokoban-v0",
    "jaxmb:MiniPacman-v0",
    "pgx:go_9x9",
    "craftax:Craftax-Classic-Symbolic-v1",
    "craftax:Craftax-Classic-Pixels-v1",
    "craftax:Craftax-Symbolic-v1",
    "playground:AcrobotSwingupSparse",
    "playground:CheetahRun",
    "playground:HumanoidStand",
    "brax:hopper",
)
DISCRETIZE = {
    "playground:AcrobotSwingupSparse": dict(mode="grid", values_per_dim=5),
    "playground:CheetahRun": dict(mode="grid", values_per_dim=3),
    "playground:HumanoidStand": dict(mode="codebook", push=1.0),
    "brax:hopper": dict(mode="grid", values_per_dim=3),
}
WORKER_TIMEOUT_S = 1800
# Craftax generates a new world for every env on every step (`vmap` runs both branches of
# the auto-reset), about 60 env steps/s at batch 64 on a 2-core CPU: batch 1024 would take
# half an hour a row there. `--all-batches` measures it anyway (on a GPU, say).
CPU_MAX_BATCH = {
    "craftax:Craftax-Classic-Symbolic-v1": 64,
    "craftax:Craftax-Classic-Pixels-v1": 64,
    "craftax:Craftax-Symbolic-v1": 64,
}


def measure(env_id: str, batches: list[int], steps: int, repeats: int) -> list[dict]:
    import gymnasium
    import jax
    import jax.numpy as jnp

    import jaxmb.envs
    from jaxmb.envs.discretize import Discretize

    env, params = jaxmb.envs.make(env_id)
    if not isinstance(env.action_space, gymnasium.spaces.Discrete):
        env = Discretize(env, **DISCRETIZE.get(env_id, dict(mode="codebook")))
    rows = []
    for batch in batches:
        vector = jaxmb.envs.VectorEnv(env, batch)

        def rollout(key, vector=vector):
            reset_key, key = jax.random.split(key)
            obs, state = vector.reset(reset_key, params)

            def one(carry, step_key):
                state, total = carry
                act_key, env_key = jax.random.split(step_key)
                mask = vector.action_mask(state, params)
                logits = jnp.where(mask, 0.0, -jnp.inf)
                action = jax.random.categorical(act_key, logits)
                _, state, reward, *_ = vector.step(env_key, state, action, params)
                return (state, total + jnp.sum(reward)), None

            (state, total), _ = jax.lax.scan(one, (state, 0.0), jax.random.split(key, steps))
            return total

        start = time.perf_counter()
        compiled = jax.jit(rollout).lower(jax.random.key(0)).compile()
        compile_seconds = time.perf_counter() - start
        runs = []
        for i in range(repeats):
            start = time.perf_counter()
            jax.block_until_ready(compiled(jax.random.key(i + 1)))
            runs.append(time.perf_counter() - start)
        rows.append(
            {
                "id": env_id,
                "batch": batch,
                "steps": steps,
                "actions": int(env.action_space.n),
                "compile_seconds": compile_seconds,
                "run_seconds": min(runs),
                "steps_per_second": batch * steps / min(runs),
            }
        )
    return rows


def _worker(env_id: str, batches: list[int], args) -> list[dict]:
    command = [
        sys.executable,
        os.path.abspath(__file__),
        "--worker",
        env_id,
        "--batches",
        *map(str, batches),
        "--steps",
        str(args.steps),
        "--repeats",
        str(args.repeats),
    ]
    env = dict(os.environ, JAX_PLATFORMS=os.environ.get("JAX_PLATFORMS", "cpu"))
    try:
        proc = subprocess.run(
            command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=WORKER_TIMEOUT_S
        )
    except subprocess.TimeoutExpired:
        return [{"id": env_id, "error": f"timed out after {WORKER_TIMEOUT_S} s"}]
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        tail = proc.stderr.strip().splitlines()[-1:] or [f"exit {proc.returncode}"]
        return [{"id": env_id, "error": tail[0][:200]}]
    return json.loads(lines[-1][len("RESULT ") :])


def main() -> None:
    import jax

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ids", nargs="*", default=list(IDS))
    parser.add_argument("--batches", nargs="*", type=int, default=[1, 64, 1024])
    parser.add_argument("--steps", type=int, default=100, help="steps per measured run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=None, help="JSON path (default: benchmarks/results)")
    parser.add_argument(
        "--all-batches",
        action="store_true",
        help="also the batches CPU_MAX_BATCH skips (Craftax above 64) on a CPU",
    )
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        rows = measure(args.worker, args.batches, args.steps, args.repeats)
        print("RESULT " + json.dumps(rows), flush=True)
        return
    results = {**metadata(), "rows": []}
    print(f"jaxmb envs  {results['date']}  {results['machine']}  jax {results['jax']}")
    print(f"{'id':<38} {'actions':>7} {'batch':>6} {'compile s':>9} {'steps/s':>12}")
    on_cpu = jax.default_backend() == "cpu"
    for env_id in args.ids:
        limit = CPU_MAX_BATCH.get(env_id) if on_cpu and not args.all_batches else None
        batches = [b for b in args.batches if limit is None or b <= limit]
        rows = _worker(env_id, batches, args) if batches else []
        rows += [
            {"id": env_id, "batch": b, "skipped": f"batch > {limit} on the CPU (--all-batches)"}
            for b in args.batches
            if b not in batches
        ]
        for row in rows:
            results["rows"].append(row)
            if "skipped" in row:
                print(f"{env_id:<38} {'':>7} {row['batch']:>6} skipped: {row['skipped']}")
                continue
            if "error" in row:
                print(f"{env_id:<38} FAILED: {row['error']}", flush=True)
                continue
            print(
                f"{env_id:<38} {row['actions']:>7} {row['batch']:>6} "
                f"{row['compile_seconds']:>9.1f} {row['steps_per_second']:>12,.0f}",
                flush=True,
            )
    write(results, "envs", args.out)


if __name__ == "__main__":
    main()
