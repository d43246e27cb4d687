"""Shared by the learning tests: train vmapped seeds and read their greedy evaluations.

A plain module rather than part of conftest.py, which test modules cannot import reliably.
"""

import jax
import numpy as np

from jaxmb.train import make_train


def train_seeds(cfg, num_seeds: int, seed: int = 2026) -> tuple[np.ndarray, str]:
    """Trains `num_seeds` seeds of `cfg` in one vmapped program.

    Returns:
        `(evals, curve)`: the greedy evaluation returns `[num_seeds, num_evaluations]` and a
        printable table of them per env step, for assertion messages.
    """
    _, metrics = jax.jit(jax.vmap(make_train(cfg)))(
        jax.random.split(jax.random.key(seed), num_seeds)
    )
    steps = np.asarray(metrics["env_steps"][0])
    evals = np.asarray(metrics["eval/episode_return"])
    done = np.isfinite(evals[0])
    curve = "\n".join(
        f"  {s:>6}: " + "  ".join(f"{evals[i, j]:7.1f}" for i in range(num_seeds))
        for j, s in zip(np.flatnonzero(done), steps[done], strict=True)
    )
    return evals[:, done], curve
