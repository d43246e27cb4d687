"""MuZero's loss terms: policy, value, reward and termination.

Shapes: B sampled windows, K + 1 unroll positions (position 0 is the observed state), K
transitions. Each term averages over the positions it covers, counting masked positions as 0
(so a window cut short by an episode end weighs less, as in MuZero's reference code).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from jaxmb.losses import register


def _masked_mean(loss: jax.Array, mask: jax.Array) -> jax.Array:
    """Mean over the last axis counting every position, masked ones as 0: `[B, P]` -> `[B]`."""
    return jnp.sum(loss * mask, axis=-1) / loss.shape[-1]


@register("policy", needs={"unroll.policy_logits", "targets.policy", "targets.policy_mask"})
def policy_loss(params, batch: dict, unroll: dict, targets: dict) -> jax.Array:
    """Cross-entropy of the policy logits `[B, K+1, A]` with the policy targets."""
    ce = optax.softmax_cross_entropy(unroll["policy_logits"], targets["policy"])
    return _masked_mean(ce, targets["policy_mask"])


@register("value", needs={"unroll.value_logits", "targets.value_probs", "targets.value_mask"})
def value_loss(params, batch: dict, unroll: dict, targets: dict) -> jax.Array:
    """Cross-entropy of the value logits `[B, K+1, atoms]` with the two-hot value targets."""
    ce = optax.softmax_cross_entropy(unroll["value_logits"], targets["value_probs"])
    return _masked_mean(ce, targets["value_mask"])


@register("reward", needs={"unroll.reward_logits", "targets.reward_probs", "targets.model_mask"})
def reward_loss(params, batch: dict, unroll: dict, targets: dict) -> jax.Array:
    """Cross-entropy of the reward logits `[B, K, atoms]` with the two-hot reward targets."""
    ce = optax.softmax_cross_entropy(unroll["reward_logits"], targets["reward_probs"])
    return _masked_mean(ce, targets["model_mask"])


@register("terminal", needs={"unroll.terminal_logits", "targets.terminal", "targets.model_mask"})
def terminal_loss(params, batch: dict, unroll: dict, targets: dict) -> jax.Array:
    """Binary cross-entropy of the termination logits `[B, K]`."""
    bce = optax.sigmoid_binary_cross_entropy(unroll["terminal_logits"], targets["terminal"])
    return _masked_mean(bce, targets["model_mask"])
