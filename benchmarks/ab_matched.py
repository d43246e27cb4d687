"""Matched-setting throughput of two checkouts, measured alternately in one session.

    git worktree add /tmp/jaxmb-old <commit>
    python benchmarks/ab_matched.py /tmp/jaxmb-old . --repeats 3

Each measurement is a fresh process that imports `jaxmb` from the given checkout (the venv's
`jaxmb.envs` is shared) and times `benchmarks/throughput.py`'s matched program: compile, then a
run of `--steps` env steps with evaluation off. Checkouts alternate (A B A B ...), so a change in
the box's load hits both. Prints each run, the medians and their ratio; writes JSON.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

_CHILD = r"""
import json, os, sys, time
root = sys.argv[1]
sys.path.insert(0, root)
import jax
import jaxmb
assert os.path.dirname(os.path.dirname(jaxmb.__file__)) == os.path.abspath(root), jaxmb.__file__
from jaxmb import config as config_lib
from jaxmb.train import make_train
steps = int(sys.argv[2])
config = config_lib.load(
    os.path.join(root, "configs", "muzero", "matched.yaml"),
    [f"train.total_env_steps={steps}", "train.eval_every=0", "replay.min_size=256"],
)
train = jax.jit(make_train(config))
key = jax.random.key(0)
start = time.perf_counter()
compiled = train.lower(key).compile()
compile_seconds = time.perf_counter() - start
start = time.perf_counter()
jax.block_until_ready(compiled(key))
run_seconds = time.perf_counter() - start
print(json.dumps({"compile_seconds": compile_seconds, "env_steps_per_second": steps / run_seconds}))
"""


def _commit(root: str) -> str:
    out = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True
    )
    dirty = subprocess.run(
        ["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True
    )
    return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("a", help="checkout A (e.g. the old commit's worktree)")
    parser.add_argument("b", help="checkout B")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=4096)
    parser.add_argument("--out", default=os.path.join(HERE, "results", "ab_matched.json"))
    args = parser.parse_args()
    roots = {"a": os.path.abspath(args.a), "b": os.path.abspath(args.b)}
    runs: dict[str, list[dict]] = {"a": [], "b": []}
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    for repeat in range(args.repeats):
        for name in ("a", "b"):
            out = subprocess.run(
                [sys.executable, "-c", _CHILD, roots[name], str(args.steps)],
                capture_output=True,
                text=True,
                env=env,
                check=True,
            )
            result = json.loads(out.stdout.strip().splitlines()[-1])
            runs[name].append(result)
            print(
                f"run {repeat} {name} ({roots[name]}): {result['env_steps_per_second']:.1f} "
                f"env steps/s, compile {result['compile_seconds']:.1f} s",
                flush=True,
            )
    medians = {
        name: statistics.median(r["env_steps_per_second"] for r in rs) for name, rs in runs.items()
    }
    results = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {os.cpu_count()} cpus",
        "steps": args.steps,
        "checkouts": {
            name: {"root": roots[name], "commit": _commit(roots[name])} for name in roots
        },
        "runs": runs,
        "median_env_steps_per_second": medians,
        "ratio_b_over_a": medians["b"] / medians["a"],
    }
    print(
        f"median env steps/s: A {medians['a']:.1f}, B {medians['b']:.1f}, "
        f"B/A {results['ratio_b_over_a']:.3f}"
    )
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=2)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
