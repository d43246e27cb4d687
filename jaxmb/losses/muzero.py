"""MuZero's loss as a sum of named terms.

Each term is a pure function `term(unroll, targets) -> [B]` of the model's unroll outputs and
the targets of the batch (both dicts of arrays, see `agents/muzero.py`), returning a per-sequence
loss already averaged over the unroll positions it covers. The total is
`sum(weight[name] * term)`; a term whose weight is 0 is never called, so it is not in the
compiled program. New terms (reconstruction, SPR, contrastive) register in `LOSS_TERMS` and
`jaxmb.config.LOSS_TERMS`.

Shapes: B sequences, K + 1 unroll positions (position 0 is the observed state), K transitions.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax


def _masked_mean(loss: jax.Array, mask: jax.Array) -> jax.Array:
    """Mean over the last axis counting every position, masked ones as 0: `[B, P]` -> `[B]`."""
    return jnp.sum(loss * mask, axis=-1) / loss.shape[-1]


def policy_loss(unroll: dict, targets: dict) -> jax.Array:
    """Cross-entropy of the policy logits `[B, K+1, A]` with the policy targets."""
    ce = optax.softmax_cross_entropy(unroll["policy_logits"], targets["policy"])
    return _masked_mean(ce, targets["policy_mask"])


def value_loss(unroll: dict, targets: dict) -> jax.Array:
    """Cross-entropy of the value logits `[B, K+1, atoms]` with the two-hot value targets."""
    ce = optax.softmax_cross_entropy(unroll["value_logits"], targets["value_probs"])
    return _masked_mean(ce, targets["value_mask"])


def reward_loss(unroll: dict, targets: dict) -> jax.Array:
    """Cross-entropy of the reward logits `[B, K, atoms]` with the two-hot reward targets."""
    ce = optax.softmax_cross_entropy(unroll["reward_logits"], targets["reward_probs"])
    return _masked_mean(ce, targets["model_mask"])


def terminal_loss(unroll: dict, targets: dict) -> jax.Array:
    """Binary cross-entropy of the termination logits `[B, K]`."""
    bce = optax.sigmoid_binary_cross_entropy(unroll["terminal_logits"], targets["terminal"])
    return _masked_mean(bce, targets["model_mask"])


LossTerm = Callable[[dict, dict], jax.Array]

LOSS_TERMS: dict[str, LossTerm] = {
    "policy": policy_loss,
    "value": value_loss,
    "reward": reward_loss,
    "terminal": terminal_loss,
}


def total_loss(
    unroll: dict, targets: dict, weights: dict[str, float], importance: jax.Array
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Weighted sum of the terms with non-zero weight, importance-weighted over the batch.

    Returns:
      the scalar loss and a dict of each term's (unweighted, batch-mean) value.
    """
    total = jnp.zeros((), jnp.float32)
    parts = {}
    for name, weight in weights.items():
        # A weight may be a tracer (a swept hyperparameter, see jaxmb.hparams): only a
        # Python 0 removes the term from the program.
        if isinstance(weight, int | float) and weight == 0.0:
            continue
        per_sequence = LOSS_TERMS[name](unroll, targets)
        parts[name] = jnp.mean(per_sequence)
        total = total + weight * jnp.mean(importance * per_sequence)
    return total, parts
