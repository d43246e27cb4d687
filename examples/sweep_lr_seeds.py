"""Sweep learning rates x seeds of MuZero on CartPole-v1 in ONE compiled program.

Numeric hyperparameters are inputs of the program `jaxmb.make_train` builds, not constants:
`jax.vmap(train)` over keys and a learning rate per member trains every (learning rate, seed)
pair side by side, and the whole batch compiles once. The plot shows, per learning rate, the
mean greedy evaluation return over seeds with its 95% Student-t interval.

    python examples/sweep_lr_seeds.py                                # 3 rates x 4 seeds, 20k steps
    python examples/sweep_lr_seeds.py --lrs 1e-3 1e-2 --seeds 8 train.total_env_steps=5000

`python -m jaxmb sweep` does the same with run directories, checkpoints and resuming.
"""

import argparse
import time

import jax
import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")  # write files, open no window
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import jaxmb  # noqa: E402
from jaxmb.stats import t_interval  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("overrides", nargs="*", help="dotted config overrides, key=value")
parser.add_argument("--lrs", type=float, nargs="+", default=[1e-3, 3e-3, 1e-2])
parser.add_argument("--seeds", type=int, default=4, help="seeds per learning rate")
parser.add_argument("--out", default="sweep_lr_seeds.png", help="PNG path")
args = parser.parse_args()

config = jaxmb.config.load("muzero/cartpole", args.overrides)
train = jaxmb.make_train(config)  # train(key, hparams) -> (final state, metrics); nothing runs

# Member i = (learning rate i // seeds, seed i % seeds): every rate sees the same seeds.
num_lrs, num_seeds = len(args.lrs), args.seeds
seed_keys = jax.random.split(jax.random.key(0), num_seeds)
keys = jnp.tile(seed_keys, num_lrs)  # [lrs * seeds]
hparams = {"agent.optim.learning_rate": jnp.repeat(jnp.asarray(args.lrs, jnp.float32), num_seeds)}

# One program for the whole batch: compiled ahead of time here, so the compile is timed apart.
start = time.perf_counter()
program = jax.jit(jax.vmap(train)).lower(keys, hparams).compile()
print(f"compiled once for {num_lrs * num_seeds} members in {time.perf_counter() - start:.1f} s")
start = time.perf_counter()
_, metrics = program(keys, hparams)
metrics = jax.tree.map(np.asarray, metrics)  # blocks until the run is done
print(f"trained in {time.perf_counter() - start:.1f} s")

# [members, iterations] -> [lrs, seeds, iterations]
evals = metrics["eval/episode_return"]
print(f"eval/episode_return: shape {evals.shape} (members, iterations)")
evals = evals.reshape(num_lrs, num_seeds, -1)
steps = metrics["env_steps"][0]
evaluated = np.isfinite(evals).all(axis=(0, 1))  # the iterations that evaluated

fig, ax = plt.subplots(figsize=(7, 4.5))
for i, lr in enumerate(args.lrs):
    curves = evals[i][:, evaluated]  # [seeds, evaluations]
    mean = curves.mean(axis=0)
    line = ax.plot(steps[evaluated], mean, "o-", ms=3, label=f"lr {lr:g}")[0]
    if num_seeds > 1:  # an interval needs 2 seeds
        intervals = [t_interval(curves[:, j]) for j in range(curves.shape[1])]
        low, high = np.asarray(intervals).T
        ax.fill_between(steps[evaluated], low, high, color=line.get_color(), alpha=0.2)
    print(f"lr {lr:g}: final greedy return per seed {np.round(curves[:, -1], 1).tolist()}")
ax.set(xlabel="environment steps", ylabel="greedy evaluation return")
ax.set_title(f"MuZero on {config.env.id}: mean and 95% interval over {num_seeds} seeds")
ax.grid(alpha=0.3)
ax.legend()
fig.tight_layout()
fig.savefig(args.out, dpi=110)
print(f"plot: {args.out}")
