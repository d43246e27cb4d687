"""A NaN injected into training, to exercise the NaN guard (a test hook, not a config key).

    with nan_injection.poisoned_update(5): ...       # in a test process
    python tests/nan_injection.py 100 train ...      # the CLI, with SGD update 100 poisoned

The patch wraps `MuZero.update`: at SGD update `at` (1-based) the batch's rewards become NaN,
so that update's value and reward loss terms are NaN and the guard must refuse it.
"""

from __future__ import annotations

import contextlib
import sys

import jax.numpy as jnp

from jaxmb.agents.muzero import MuZero


def install(at: int):
    """Patches `MuZero.update`; returns the original."""
    original = MuZero.update

    def update(self, state, batch, key):
        poison = jnp.where(state.num_updates + 1 == at, jnp.nan, 1.0)
        return original(self, state, dict(batch, reward=batch["reward"] * poison), key)

    MuZero.update = update
    return original


@contextlib.contextmanager
def poisoned_update(at: int):
    original = install(at)
    try:
        yield
    finally:
        MuZero.update = original


if __name__ == "__main__":
    install(int(sys.argv[1]))
    from jaxmb.__main__ import main

    sys.exit(main(sys.argv[2:]))
