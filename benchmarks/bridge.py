"""The host-env bridge: steps/s of `gym:CartPole-v1` through it vs `gymnax:CartPole-v1` in JAX.

    python benchmarks/bridge.py                       # batch 1, 8, 64; Procgen and Atari if present
    python benchmarks/bridge.py --batches 8 --steps 500

Every row is the same program: a jitted `lax.scan` of `--steps` steps of
`VectorEnv(env, batch)` with random actions (drawn in JAX), so the only difference between rows
of one batch is where the env steps (the reset runs before, untimed). The `noop host call` row
is the bridge's own overhead: one scan step of a host call that returns its input. For host
envs, `us/scan step` is one host call stepping the whole batch. Procgen (worker venv), Atari
(ale-py) and `num_workers=2` rows are added where they can run. Prints a table and writes
`benchmarks/results/bridge-<date>.json`.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import metadata, write  # noqa: E402

os.environ.setdefault("JAX_PLATFORMS", "cpu")


def programs(env, params, batch: int, steps: int):
    """`reset(key) -> state` and `run(state, key) -> (state, total reward)`, both jitted: the
    timed program is `steps` steps of the batched env with random actions (resets, which cost
    ALE about 0.2 s an env as it reloads the ROM, stay out of the timing)."""
    import jax

    from jaxmb.envs import VectorEnv

    venv = VectorEnv(env, batch)
    num_actions = env.num_actions

    def reset(key):
        return venv.reset(key, params)[1]

    def run(state, key):
        def body(carry, step_key):
            state, total = carry
            act_key, env_key = jax.random.split(step_key)
            action = jax.random.randint(act_key, (batch,), 0, num_actions)
            _, state, reward, *_ = venv.step(env_key, state, action, params)
            return (state, total + reward.sum()), None

        (state, total), _ = jax.lax.scan(body, (state, 0.0), jax.random.split(key, steps))
        return state, total

    return jax.jit(reset), jax.jit(run)


def time_program(reset, run, repeats: int) -> tuple[float, float]:
    """(compile + first run seconds, best run seconds) of `run`, continuing one state."""
    import jax

    state = jax.block_until_ready(reset(jax.random.key(0)))
    start = time.perf_counter()
    state, total = jax.block_until_ready(run(state, jax.random.key(1)))
    first = time.perf_counter() - start
    best = float("inf")
    for r in range(repeats):
        start = time.perf_counter()
        state, total = jax.block_until_ready(run(state, jax.random.key(r + 2)))
        best = min(best, time.perf_counter() - start)
    return first, best


def noop_call_us(batch: int, steps: int, repeats: int) -> float:
    """Microseconds per scan step of a host call that returns its input (the fixed cost)."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from jaxmb.envs.host_callback import host_call

    def identity(x):
        return (np.asarray(x),)

    def run(x, key):
        def body(x, _):
            (y,) = host_call(identity, [jax.ShapeDtypeStruct((batch,), jnp.int32)], x)
            return y + 1, None

        return jax.lax.scan(body, x, None, length=steps)[0], key

    def reset(key):
        return jnp.zeros((batch,), jnp.int32)

    _, best = time_program(jax.jit(reset), jax.jit(run), repeats)
    return best / steps * 1e6


def row(env_id: str, batch: int, steps: int, repeats: int, **overrides) -> dict:
    import jaxmb.envs as jenvs

    try:
        env, params = jenvs.make(env_id, **overrides)
    except Exception as err:  # a missing suite is a row, not a crash
        return {"env": env_id, "batch": batch, "skipped": f"{type(err).__name__}: {err}"}
    try:
        first, best = time_program(*programs(env, params, batch, steps), repeats)
    finally:
        getattr(env, "close", lambda: None)()
    label = env_id + "".join(f" {k}={v}" for k, v in overrides.items())
    return {
        "env": label,
        "batch": batch,
        "steps_per_s": batch * steps / best,
        "us_per_scan_step": best / steps * 1e6,
        "compile_and_first_s": first,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 64])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    results = {"meta": metadata(), "args": vars(args), "rows": []}
    rows = results["rows"]
    for batch in args.batches:
        noop = noop_call_us(batch, args.steps, args.repeats)
        rows.append({"env": "noop host call", "batch": batch, "us_per_scan_step": noop})
        rows.append(row("gymnax:CartPole-v1", batch, args.steps, args.repeats))
        rows.append(row("gym:CartPole-v1", batch, args.steps, args.repeats))
        if batch >= 8:
            rows.append(row("gym:CartPole-v1", batch, args.steps, args.repeats, num_workers=2))
    slow = max(1, args.steps // 10)  # Atari and Procgen steps cost ~0.3 ms each
    for batch in args.batches[-2:]:
        rows.append(row("ale:MsPacman-v5", batch, slow, args.repeats))
        rows.append(row("procgen:coinrun", batch, slow, args.repeats))
        rows.append(row("procgen:coinrun", batch, slow, args.repeats, num_workers=2))
    print(f"{'env':<40} {'batch':>5} {'steps/s':>11} {'us/scan step':>13} {'compile s':>10}")
    for r in rows:
        if "skipped" in r:
            print(f"{r['env']:<40} {r['batch']:>5}  skipped: {r['skipped'][:80]}")
            continue
        steps_per_s = f"{r['steps_per_s']:>11.0f}" if "steps_per_s" in r else " " * 11
        compile_s = f"{r['compile_and_first_s']:>10.2f}" if "compile_and_first_s" in r else ""
        us = f"{r['us_per_scan_step']:>13.1f}"
        print(f"{r['env']:<40} {r['batch']:>5} {steps_per_s} {us} {compile_s}")
    write(results, "bridge", args.out)


if __name__ == "__main__":
    main()
