"""The Q-learning baseline's loss term: distributional n-step Q-learning on MuZero's support.

Shapes: B sampled windows, K + 1 trained positions (the observed obs[0..K] of each window,
as many positions as MuZero's unroll trains), A actions, `atoms` of the value support.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from jaxmb.losses import register


def _masked_mean(loss: jax.Array, mask: jax.Array) -> jax.Array:
    """Mean over the last axis counting every position, masked ones as 0 (as muzero.py's)."""
    return jnp.sum(loss * mask, axis=-1) / loss.shape[-1]


def taken_action_logits(q_logits: jax.Array, actions: jax.Array) -> jax.Array:
    """The logits of the taken actions: `[B, P, A, atoms]`, `[B, P]` -> `[B, P, atoms]`."""
    return jnp.take_along_axis(q_logits, actions[..., None, None], axis=-2)[..., 0, :]


@register("q", needs={"unroll.q_logits", "targets.q_probs", "targets.q_mask"})
def q_loss(params, batch: dict, unroll: dict, targets: dict) -> jax.Array:
    """Cross-entropy of the Q logits of the taken actions `[B, K+1, atoms]` with the two-hot
    n-step targets."""
    q_logits = unroll["q_logits"]  # [B, K+1, A, atoms]
    actions = batch["action"][:, : q_logits.shape[1]]
    ce = optax.softmax_cross_entropy(taken_action_logits(q_logits, actions), targets["q_probs"])
    return _masked_mean(ce, targets["q_mask"])
