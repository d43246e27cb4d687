"""Throughput of the whole train step, compile time, seeds vmapped vs run one after another,
and time-to-solve of the default CartPole preset.

    python benchmarks/throughput.py            # full run (about 10 minutes on 2 CPU cores)
    python benchmarks/throughput.py --quick    # fewer steps, for a smoke check
    python benchmarks/throughput.py --memory-only   # the memory rows alone (about a minute)
    python benchmarks/throughput.py --ssl-only      # plain MuZero and each SSL term alone

Prints a table and writes `benchmarks/results/throughput.json`. The matched setting is
`configs/muzero/matched.yaml`: 8 envs, 25 simulations, unroll 5, TD 5, batch 256, 0.25 SGD
updates per env step, MLP width 128, 601-atom supports, uniform replay, no reanalyse; the
evaluation episodes are switched off while timing. The Q-learning baseline is timed at the same
setting (`agent.kind=q_learning`, search and model keys back at their defaults), and so is
MuZero with each self-supervised term (`jaxmb.losses.ssl`) at weight 1: its cost relative to
plain MuZero, measured in the same run.

Utilisation: XLA's own cost analysis gives the FLOPs of one SGD update and of one search
(root inference + num_simulations recurrent steps), which add up to FLOPs per env step; the
achieved FLOP/s is compared with a matmul FLOP/s measured in the same process, so the ratio
means the same on any machine.

Memory: bytes per member of the matched setting and of the default preset: the train state by
part (`jaxmb.memory`, from `jax.eval_shape`) and the compiled program's temporary buffers and
output (XLA's `memory_analysis()`, of `jit(train)` for one member).
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import os
import platform
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from jaxmb import config as config_lib  # noqa: E402
from jaxmb import memory  # noqa: E402
from jaxmb import replay as replay_lib  # noqa: E402
from jaxmb.agents.registry import with_kind  # noqa: E402
from jaxmb.loop.collect import record_template  # noqa: E402
from jaxmb.train import make_train  # noqa: E402


def _timed(fn, *args, repeats: int = 1):
    out = jax.block_until_ready(fn(*args))
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        out = jax.block_until_ready(fn(*args))
        best = min(best, time.perf_counter() - start)
    return best, out


def matmul_flops() -> dict:
    """GFLOP/s of XLA matmuls: the unroll's shape (1536x128 . 128x128) and a large one."""
    results = {}
    for name, (m, k) in {"1536x128x128": (1536, 128), "2048^3": (2048, 2048)}.items():
        a = jax.random.normal(jax.random.key(0), (m, k))
        # Scaled so repeated products neither blow up nor vanish; each product depends on the
        # last, so XLA cannot hoist it out of the loop.
        b = jax.random.normal(jax.random.key(1), (k, k)) / np.sqrt(k)
        reps = 200 if m * k * k < 1e8 else 5
        f = jax.jit(
            functools.partial(
                lambda a, b, reps: jax.lax.fori_loop(0, reps, lambda i, x: x @ b, a), reps=reps
            )
        )
        seconds, _ = _timed(f, a, b, repeats=3)
        results[name] = 2 * m * k * k * reps / seconds / 1e9
    return results


def _flops(fn, *args) -> float:
    analysis = jax.jit(fn).lower(*args).compile().cost_analysis()
    if isinstance(analysis, list):
        analysis = analysis[0]
    return float(analysis.get("flops", float("nan")))


def flops_per_env_step(config) -> dict:
    """FLOPs of one SGD update and of acting, from XLA's cost analysis, per env step."""
    train = make_train(config)
    loop = train.loop
    state = loop.init(jax.random.key(0))
    # A full replay of placeholder steps: FLOPs do not depend on the values.
    example = record_template(loop.agent, state.obs)
    shape = (config.env.num_envs, loop.steps_per_env)
    data = jax.tree.map(lambda x: jnp.broadcast_to(x, (*shape, *x.shape)), example)
    replay = state.replay.replace(data=data, num_written=jnp.int32(loop.steps_per_env))
    sample = replay_lib.sample(replay, jax.random.key(1), config.replay.batch_size, loop.window)
    batch = dict(sample.data, weight=sample.weight)
    update = _flops(loop.agent.update, state.agent, batch, jax.random.key(2))
    act = _flops(
        lambda s, o, k: loop.agent.act(s, o, k, training=True),
        state.agent,
        state.obs,
        jax.random.key(3),
    )
    # mctx runs its simulations in a loop whose body XLA counts once: add the rest.
    root = loop.agent.initial_inference(state.agent.params, state.obs)
    rec = _flops(
        lambda p, a, e: loop.agent.recurrent_fn(p, None, a, e),
        state.agent.params,
        jnp.zeros((config.env.num_envs,), jnp.int32),
        root.embedding,
    )
    sims = config.agent.search.num_simulations
    act_total = act + (sims - 1) * rec
    final_value = _flops(loop.agent.value, state.agent.params, state.obs)
    per_iteration = config.updates_per_iteration * update + config.train.rollout_steps * (
        act_total + final_value
    )
    return {
        "sgd_update_gflop": update / 1e9,
        "act_gflop": act_total / 1e9,
        "gflop_per_env_step": per_iteration / config.steps_per_iteration / 1e9,
        "sgd_share": config.updates_per_iteration * update / per_iteration,
    }


def run_program(config, num_seeds: int | None):
    """Compile seconds and run seconds of the whole program (1 seed, or vmapped seeds)."""
    train = make_train(config)
    if num_seeds is None:
        fn, arg = jax.jit(train), jax.random.key(0)
    else:
        fn, arg = jax.jit(jax.vmap(train)), jax.random.split(jax.random.key(0), num_seeds)
    start = time.perf_counter()
    compiled = fn.lower(arg).compile()
    compile_seconds = time.perf_counter() - start
    start = time.perf_counter()
    jax.block_until_ready(compiled(arg))
    return compile_seconds, time.perf_counter() - start, compiled, arg


def memory_per_member(config, compiled=None) -> dict:
    """Bytes of one member: the train state by part (`jaxmb.memory`) and, from the compiled
    `jit(train)` (compiled here when not given), XLA's temporary buffers and output."""
    train = make_train(config)
    est = train.memory_estimate()
    if compiled is None:
        compiled = jax.jit(train).lower(jax.random.key(0)).compile()
    stats = compiled.memory_analysis()
    return {
        "state_bytes": est.state_bytes,
        "state_parts": {p.name: p.bytes for p in est.by_kind("state")},
        "estimated_working_bytes": est.working_bytes,
        "xla_temp_bytes": None if stats is None else int(stats.temp_size_in_bytes),
        "xla_output_bytes": None if stats is None else int(stats.output_size_in_bytes),
    }


def print_memory(rows: dict) -> None:
    for name, row in rows.items():
        parts = sorted(row["state_parts"].items(), key=lambda kv: -kv[1])[:3]
        largest = ", ".join(f"{part} {memory.format_bytes(size)}" for part, size in parts)
        temp = row["xla_temp_bytes"]
        print(
            f"bytes per member, {name}: state {row['state_bytes']:,} ({largest}); XLA temporary "
            f"buffers {'n/a' if temp is None else f'{temp:,}'}"
        )


def time_to_solve(config, threshold: float) -> dict:
    """Env steps and wall seconds (compile included) until greedy eval >= threshold."""
    events = []
    start = time.perf_counter()

    def callback(report):
        events.append(
            (
                int(report["env_steps"]),
                float(report["eval/episode_return"]),
                time.perf_counter() - start,
            )
        )

    train = make_train(config, callback=callback)
    compiled = jax.jit(train).lower(jax.random.key(0)).compile()
    compile_seconds = time.perf_counter() - start
    jax.block_until_ready(compiled(jax.random.key(0)))
    jax.effects_barrier()
    evals = [(s, r, t) for s, r, t in events if np.isfinite(r)]
    solved = next(((s, r, t) for s, r, t in evals if r >= threshold), None)
    return {
        "threshold": threshold,
        "compile_seconds": compile_seconds,
        "solved_at_env_steps": None if solved is None else solved[0],
        "solved_at_seconds": None if solved is None else solved[2],
        "evals": [(s, r) for s, r, _ in evals],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--out", default=os.path.join(ROOT, "benchmarks", "results", "throughput.json")
    )
    parser.add_argument("--skip-solve", action="store_true")
    parser.add_argument("--memory-only", action="store_true", help="only the memory rows")
    parser.add_argument(
        "--ssl-only", action="store_true", help="only the SSL rows (plain MuZero and each term)"
    )
    args = parser.parse_args()

    steps = 1024 if args.quick else 4096
    seed_steps = 256 if args.quick else 1024
    matched = config_lib.load(
        os.path.join(ROOT, "configs", "muzero", "matched.yaml"),
        [f"train.total_env_steps={steps}", "train.eval_every=0", "replay.min_size=256"],
    )
    results: dict = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {os.cpu_count()} cpus, {jax.devices()[0].device_kind}",
        "jax": jax.__version__,
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip(),
    }
    default_preset = config_lib.load(
        os.path.join(ROOT, "configs", "muzero", "cartpole.yaml"), ["train.eval_every=1000"]
    )
    if args.ssl_only:
        results["ssl"] = ssl_rows(matched, steps)
        print_ssl(results["ssl"])
        _write(args.out.replace(".json", "_ssl.json"), results)
        return
    if args.memory_only:
        results["memory_per_member"] = {
            "matched": memory_per_member(matched),
            "default": memory_per_member(default_preset),
        }
        print_memory(results["memory_per_member"])
        return
    results["matmul_gflops"] = matmul_flops()
    flops = flops_per_env_step(matched)
    results["matched_flops"] = flops

    compile_s, run_s, matched_program, _ = run_program(matched, None)
    sps = steps / run_s
    results["matched"] = {
        "env_steps": steps,
        "compile_seconds": compile_s,
        "run_seconds": run_s,
        "env_steps_per_second": sps,
        "achieved_gflops": sps * flops["gflop_per_env_step"],
        "utilisation_vs_unroll_matmul": sps
        * flops["gflop_per_env_step"]
        / results["matmul_gflops"]["1536x128x128"],
    }
    reanalyse = config_lib.configlib.replace(
        matched,
        agent=config_lib.configlib.replace(
            matched.agent,
            loss=config_lib.configlib.replace(matched.agent.loss, reanalyse_fraction=0.25),
        ),
    )
    r_compile, r_run, _, _ = run_program(reanalyse, None)
    results["matched_reanalyse_0.25"] = {
        "compile_seconds": r_compile,
        "env_steps_per_second": steps / r_run,
    }

    # The controlled model-free baseline at the matched setting: the same encoder, heads,
    # replay, replay ratio, batch and optimiser, no model and no search.
    q_cfg = with_kind(matched, "q_learning")
    q_compile, q_run, _, _ = run_program(q_cfg, None)
    results["matched_q_learning"] = {
        "compile_seconds": q_compile,
        "env_steps_per_second": steps / q_run,
    }
    results["ssl"] = ssl_rows(matched, steps)

    seed_cfg = config_lib.configlib.replace(
        matched, train=config_lib.configlib.replace(matched.train, total_env_steps=seed_steps)
    )
    _, single_run, compiled, key = run_program(seed_cfg, None)
    rows = []
    for num_seeds in (1, 2, 4, 8):
        v_compile, v_run, _, _ = run_program(seed_cfg, num_seeds)
        start = time.perf_counter()
        for i in range(num_seeds):
            jax.block_until_ready(compiled(jax.random.key(i)))
        seq_run = time.perf_counter() - start
        rows.append(
            {
                "seeds": num_seeds,
                "vmapped_env_steps_per_second": num_seeds * seed_steps / v_run,
                "sequential_env_steps_per_second": num_seeds * seed_steps / seq_run,
                "vmapped_compile_seconds": v_compile,
            }
        )
    results["seeds"] = rows

    if not args.skip_solve:
        results["default_time_to_solve"] = time_to_solve(default_preset, 475.0)
    results["memory_per_member"] = {
        "matched": memory_per_member(matched, matched_program),
        "default": memory_per_member(default_preset),
    }

    print(
        f"\njaxmb throughput  {results['date']}  {results['machine']}  jax {results['jax']}"
        f"  commit {results['commit']}"
    )
    mm = results["matmul_gflops"]
    print(f"matmul GFLOP/s: unroll shape {mm['1536x128x128']:.0f}, large {mm['2048^3']:.0f}")
    m = results["matched"]
    print(
        f"matched: {m['env_steps_per_second']:.1f} env steps/s, compile "
        f"{m['compile_seconds']:.1f} s, {flops['gflop_per_env_step']:.2f} GFLOP/env step "
        f"(SGD {100 * flops['sgd_share']:.0f}%), {m['achieved_gflops']:.0f} GFLOP/s = "
        f"{100 * m['utilisation_vs_unroll_matmul']:.0f}% of the unroll-shaped matmul"
    )
    r = results["matched_reanalyse_0.25"]
    print(
        f"matched + reanalyse 0.25: {r['env_steps_per_second']:.1f} env steps/s "
        f"(compile {r['compile_seconds']:.1f} s)"
    )
    q = results["matched_q_learning"]
    print(
        f"matched, Q-learning baseline: {q['env_steps_per_second']:.1f} env steps/s "
        f"(compile {q['compile_seconds']:.1f} s)"
    )
    print_ssl(results["ssl"])
    print(f"{'seeds':>5} {'vmapped steps/s':>16} {'sequential steps/s':>19} {'ratio':>6}")
    for row in rows:
        ratio = row["vmapped_env_steps_per_second"] / row["sequential_env_steps_per_second"]
        print(
            f"{row['seeds']:>5} {row['vmapped_env_steps_per_second']:>16.1f} "
            f"{row['sequential_env_steps_per_second']:>19.1f} {ratio:>6.2f}"
        )
    print_memory(results["memory_per_member"])
    if "default_time_to_solve" in results:
        t = results["default_time_to_solve"]
        print(
            f"default CartPole preset: greedy eval >= 475 at {t['solved_at_env_steps']} env "
            f"steps, {t['solved_at_seconds']} s (compile {t['compile_seconds']:.1f} s included)"
        )
    _write(args.out, results)


def _write(path: str, results: dict) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(results, f, indent=2, default=float)
    print(f"wrote {path}")


SSL_TERMS = ("reconstruction", "spr", "contrastive")


def ssl_rows(matched, steps: int) -> list[dict]:
    """The matched setting plain and with each SSL term at weight 1 (its defaults in
    `agent.ssl`), timed in one run: each term's cost as a ratio to plain MuZero."""
    rows = []
    for term in ("none", *SSL_TERMS):
        cfg = matched
        if term != "none":
            cfg = config_lib.configlib.apply_overrides(matched, [f"agent.loss.weights.{term}=1.0"])
        compile_s, run_s, _, _ = run_program(cfg, None)
        rows.append(
            {"ssl": term, "compile_seconds": compile_s, "env_steps_per_second": steps / run_s}
        )
    for row in rows:
        row["cost_vs_plain"] = rows[0]["env_steps_per_second"] / row["env_steps_per_second"]
    return rows


def print_ssl(rows: list[dict]) -> None:
    print(f"{'SSL term':>16} {'env steps/s':>12} {'cost vs plain':>14} {'compile s':>10}")
    for row in rows:
        print(
            f"{row['ssl']:>16} {row['env_steps_per_second']:>12.1f} "
            f"{row['cost_vs_plain']:>14.2f} {row['compile_seconds']:>10.1f}"
        )


if __name__ == "__main__":
    main()
