"""Cost of the planning variants and of test-time search.

    python benchmarks/planning.py            # matched setting (about 10 minutes on 2 CPU cores)
    python benchmarks/planning.py --quick    # small networks and few iterations, a smoke check
    python benchmarks/planning.py --iterations 12   # fewer train iterations a row

1. Env steps/s of the whole train step (collect, replay, SGD with its targets) for each
   variant of `jaxmb.experiments.variants` at the matched setting (`configs/muzero/
   matched.yaml`), evaluation switched off; the Learn variants reanalyse every window
   (`reanalyse_fraction=1`, as `python -m jaxmb experiment planning` runs them), and one more
   row runs vanilla MuZero on the targets stored when acting (`reanalyse_fraction=0`).
   The ratio to that last row is the price of each variant.
2. Greedy acting steps/s of a batch of `num_eval_envs` observations at test-time budgets
   0 (the prior), 1, 5, 25 and 100 simulations.

Compile time is measured apart (`lower().compile()`). Prints a table and writes
`benchmarks/results/planning-<date>.json`.
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

from benchmarks._common import metadata, write  # noqa: E402
from jaxmb import config as config_lib  # noqa: E402
from jaxmb import configlib  # noqa: E402
from jaxmb.experiments.variants import SWITCHES, variant_overrides  # noqa: E402
from jaxmb.loop import Loop, make_train  # noqa: E402

QUICK = [
    "agent.network.hidden_sizes=[32]",
    "agent.network.latent_dim=16",
    "agent.network.dynamics_hidden_sizes=[32]",
    "agent.network.head_hidden_sizes=[32]",
    "agent.network.value_support={num_atoms: 51, vmin: -25, vmax: 25}",
    "agent.network.reward_support={num_atoms: 21, vmin: -10, vmax: 10}",
    "replay.batch_size=32",
]


def _config(overrides: list[str], iterations: int):
    base = os.path.join(ROOT, "configs", "muzero", "matched.yaml")
    cfg = config_lib.load(base, overrides)
    steps = iterations * cfg.steps_per_iteration
    return configlib.apply_overrides(
        cfg,
        [
            f"train.total_env_steps={steps}",
            "train.eval_every=0",
            "replay.min_size=256",
            f"train.log_every={steps}",
        ],
    )


def train_step_rate(overrides: list[str], iterations: int) -> dict:
    """Env steps/s of `iterations` iterations, learning from the second one on."""
    cfg = _config(overrides, iterations)
    train = make_train(cfg)
    state = jax.jit(train.init)(jax.random.key(0))
    start = time.perf_counter()
    compiled = jax.jit(train.run).lower(state).compile()
    compile_seconds = time.perf_counter() - start
    start = time.perf_counter()  # one timed run: the program is already compiled
    jax.block_until_ready(compiled(state))
    seconds = time.perf_counter() - start
    return {
        "env_steps_per_second": cfg.num_iterations * cfg.steps_per_iteration / seconds,
        "compile_seconds": compile_seconds,
    }


def acting_rate(overrides: list[str], budget: int, repeats: int) -> dict:
    """Greedy actions/s for a batch of `num_eval_envs` observations at a test budget."""
    cfg = _config(overrides, 1)
    loop = Loop(cfg)
    agent_state = loop.agent.init(jax.random.key(0))
    obs = jnp.zeros((cfg.env.num_eval_envs, *loop.env.observation_space.shape), jnp.float32)

    def act(state, obs, key):
        return loop.agent.act(state, obs, key, training=False, num_simulations=budget)[0]

    start = time.perf_counter()
    compiled = jax.jit(act).lower(agent_state, obs, jax.random.key(1)).compile()
    compile_seconds = time.perf_counter() - start
    jax.block_until_ready(compiled(agent_state, obs, jax.random.key(1)))
    start = time.perf_counter()
    for i in range(repeats):
        jax.block_until_ready(compiled(agent_state, obs, jax.random.key(i)))
    seconds = (time.perf_counter() - start) / repeats
    return {
        "actions_per_second": cfg.env.num_eval_envs / seconds,
        "compile_seconds": compile_seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", help="JSON path (default benchmarks/results/planning-DATE.json)")
    parser.add_argument(
        "--iterations", type=int, help="train iterations a row (default 40; 8 quick)"
    )
    args = parser.parse_args()
    common = QUICK if args.quick else []
    iterations = args.iterations or (8 if args.quick else 40)
    results = {
        "meta": metadata(),
        "quick": args.quick,
        "iterations": iterations,
        "variants": {},
        "test_budgets": {},
    }
    rows = [(name, variant_overrides(name)) for name in SWITCHES]
    rows.append(
        (
            "learn_data_eval, stored targets",
            variant_overrides("learn_data_eval", reanalyse_fraction=0.0),
        )
    )
    for name, overrides in rows:
        results["variants"][name] = train_step_rate([*common, *overrides], iterations)
        print(name, results["variants"][name], flush=True)
    for budget in (0, 1, 5, 25, 100):
        overrides = [*common, *variant_overrides("learn_data_eval")]
        results["test_budgets"][budget] = acting_rate(overrides, budget, 5 if args.quick else 20)
        print(budget, results["test_budgets"][budget], flush=True)

    reference = results["variants"]["learn_data_eval, stored targets"]["env_steps_per_second"]
    print(f"\n{'variant':<34} {'env steps/s':>12} {'ratio':>7} {'compile s':>10}")
    for name, row in results["variants"].items():
        rate = row["env_steps_per_second"]
        print(f"{name:<34} {rate:12.1f} {rate / reference:7.2f} {row['compile_seconds']:10.1f}")
    print(f"\n{'test budget':<12} {'actions/s':>12} {'compile s':>10}")
    for budget, row in results["test_budgets"].items():
        print(f"{budget:<12} {row['actions_per_second']:12.1f} {row['compile_seconds']:10.1f}")
    write(results, "planning", args.out)


if __name__ == "__main__":
    main()
