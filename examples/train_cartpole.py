"""Train MuZero on CartPole-v1 and plot its learning curve.

The shortest path from a preset to a trained agent: load the preset by name, change keys with
dotted overrides (the same ones `python -m jaxmb train` takes), and let `jaxmb.run.train_run`
compile, train and fill a run directory (config, metrics, checkpoints, summary). The script
then draws its own plot from the metrics the run returns, arrays `[seeds, iterations]`.

    python examples/train_cartpole.py                        # the preset: 20k env steps per seed
    python examples/train_cartpole.py --seeds 2 agent.search.num_simulations=8
    python examples/train_cartpole.py train.total_env_steps=4000 --out curve.png

The run directory it prints is what `examples/act_in_gymnasium.py` loads.
"""

import argparse

import matplotlib

matplotlib.use("Agg")  # write files, open no window
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import jaxmb  # noqa: E402
import jaxmb.run  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("overrides", nargs="*", help="dotted config overrides, key=value")
parser.add_argument("--seeds", type=int, default=1, help="seeds trained in one program")
parser.add_argument("--root", default="runs", help="folder of run directories")
parser.add_argument("--name", default="cartpole-example", help="run directory name")
parser.add_argument("--out", default=None, help="PNG path (default: in the run directory)")
args = parser.parse_args()

# 1. The config: the preset, then our overrides. A mistyped key is a ConfigError naming it.
config = jaxmb.config.load(
    "muzero/cartpole",
    [f"run.num_seeds={args.seeds}", f"run.root={args.root}", f"run.name={args.name}"]
    + args.overrides,
)

# 2. Train. Rerunning the same command resumes from the run's latest checkpoint.
result = jaxmb.run.train_run(config)
metrics = result.metrics  # dict of [seeds, iterations] arrays
print(f"run directory: {result.run_dir}")
print(f"compile {result.summary['compile_seconds']} s, run {result.summary['run_seconds']} s")

# 3. Plot: greedy evaluation return (NaN where an iteration did not evaluate), training
#    episode return, and the loss (NaN before learning starts).
steps = metrics["env_steps"][0]
fig, (ax_return, ax_loss) = plt.subplots(1, 2, figsize=(11, 4))
for seed in range(args.seeds):
    train_return = metrics["train/episode_return"][seed]
    ok = np.isfinite(train_return)
    ax_return.plot(steps[ok], train_return[ok], lw=0.8, alpha=0.4, color=f"C{seed}")
    eval_return = metrics["eval/episode_return"][seed]
    ok = np.isfinite(eval_return)
    ax_return.plot(steps[ok], eval_return[ok], "o-", color=f"C{seed}", label=f"seed {seed} eval")
    loss = metrics["loss"][seed]
    ok = np.isfinite(loss)
    ax_loss.plot(steps[ok], loss[ok], color=f"C{seed}")
ax_return.set(xlabel="environment steps", ylabel="episode return", title="return")
ax_return.legend(title="thin: training episodes", fontsize=7)
ax_loss.set(xlabel="environment steps", ylabel="loss", title="MuZero loss", yscale="log")
for ax in (ax_return, ax_loss):
    ax.grid(alpha=0.3)
fig.suptitle(f"MuZero on {config.env.id}")
fig.tight_layout()
out = args.out or f"{result.run_dir}/cartpole_curve.png"
fig.savefig(out, dpi=110)

final = result.summary["final_eval_return"]  # the last greedy return of each seed
print(f"final greedy eval return per seed: {final}")
print(f"learning curve: {out}")
