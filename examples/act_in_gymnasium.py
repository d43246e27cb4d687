"""Act with a trained jaxmb agent in an ordinary Gymnasium loop.

`jaxmb.load_policy(run_dir)` reads a run directory's config and latest checkpoint and returns
`policy(obs) -> action`: the agent acting as its evaluation does (greedy search with the learned
model), callable on NumPy observations. Here it plays Gymnasium's own CartPole-v1, the env
jaxmb's `gymnax:CartPole-v1` reimplements in JAX.

    python examples/act_in_gymnasium.py runs/cartpole-example     # a run of train_cartpole.py
    python examples/act_in_gymnasium.py --episodes 10 runs/<name>
    python examples/act_in_gymnasium.py                           # trains a short run first

Without a run directory it trains one briefly (`--train-steps` env steps, as
`python -m jaxmb train muzero/cartpole train.total_env_steps=...`), plus any config overrides.
"""

import argparse

import gymnasium
import numpy as np

import jaxmb

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("run_dir", nargs="?", help="a run directory (default: train one first)")
parser.add_argument("overrides", nargs="*", help="config overrides when training a run here")
parser.add_argument("--episodes", type=int, default=3)
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--train-steps", type=int, default=8000, help="env steps of a run trained here")
args = parser.parse_args()

run_dir = args.run_dir
if run_dir is None or "=" in run_dir:  # no run directory: the arguments are all overrides
    import jaxmb.run

    overrides = ([run_dir] if run_dir else []) + args.overrides
    config = jaxmb.config.load(
        "muzero/cartpole",
        [f"train.total_env_steps={args.train_steps}", "run.name=act-in-gymnasium", *overrides],
    )
    run_dir = jaxmb.run.train_run(config).run_dir

policy = jaxmb.load_policy(run_dir, seed=args.seed)
print(f"loaded {policy} from {run_dir}")

env = gymnasium.make("CartPole-v1")
returns = []
for episode in range(args.episodes):
    obs, _ = env.reset(seed=args.seed + episode)
    total, done = 0.0, False
    while not done:
        obs, reward, terminated, truncated, _ = env.step(policy(obs))
        total += float(reward)
        done = terminated or truncated
    returns.append(total)
    print(f"episode {episode}: return {total:.1f}")
env.close()
print(f"mean return over {args.episodes} episodes: {np.mean(returns):.1f}")
