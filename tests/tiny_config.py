"""The smallest config that exercises every part of the loop, shared by the test modules.

10 iterations of 16 env steps (4 CartPoles x 4 steps), learning from the 2nd iteration,
evaluation at the 5th and 10th.
"""

import os

from jaxmb import config as config_lib

TINY = [
    "env.num_envs=4",
    "env.num_eval_envs=2",
    "env.eval_max_steps=20",
    "agent.network.hidden_sizes=[16]",
    "agent.network.latent_dim=8",
    "agent.network.dynamics_hidden_sizes=[16]",
    "agent.network.head_hidden_sizes=[16]",
    "agent.network.value_support={num_atoms: 11, vmin: -5, vmax: 5}",
    "agent.network.reward_support={num_atoms: 11, vmin: -5, vmax: 5}",
    "agent.search.num_simulations=4",
    "agent.loss.unroll_steps=2",
    "agent.loss.td_steps=2",
    "replay.capacity=256",
    "replay.min_size=32",
    "replay.batch_size=8",
    "train.rollout_steps=4",
    "train.replay_ratio=0.125",
    "train.total_env_steps=160",
    "train.eval_every=80",
]


# XLA's CPU backend without its LLVM optimisations and fusion emitters: the TINY program
# compiles in under half the time (9.7 s instead of 22 s here) and runs about 3x slower.
# Neither option changes what a program computes. conftest.py applies them to every compile
# of a test not marked `slow`; subprocesses get them as `FAST_XLA_FLAGS`.
FAST_COMPILE_OPTIONS = {
    "xla_backend_optimization_level": 0,
    "xla_llvm_disable_expensive_passes": True,
    "xla_cpu_use_fusion_emitters": False,
}
FAST_XLA_FLAGS = [f"--{name}={str(value).lower()}" for name, value in FAST_COMPILE_OPTIONS.items()]


def fast_subprocess_env() -> dict:
    """The environment for a `python -m jaxmb` subprocess running a TINY program: CPU only,
    `FAST_XLA_FLAGS` (replacing any XLA_FLAGS of the caller)."""
    return dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=" ".join(FAST_XLA_FLAGS))


def tiny(*extra):
    """The TINY config with more overrides."""
    return config_lib.load(None, TINY + list(extra))
