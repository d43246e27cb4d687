"""Invalid actions inside the search tree: one masking logit shared by `search` and its variants.

mctx masks invalid actions at the root only (mctx issues #29, #54). Inside the tree, a
recurrent fn marks actions invalid by giving them the logit `MASKED_LOGIT` (`mask_logits`).
Their prior probability is then exactly 0 and:
- PUCT (muzero): `masked_qtransform` also gives them a value score of -inf, so they are never
  selected;
- Gumbel: interior selection maximises `pi'(a) - N(a) / (1 + sum N)`; a masked action scores 0
  while the valid actions' scores sum to `1 / (1 + sum N) > 0`, so one of them always scores
  more than 0 and a masked action is never selected.

This module sits below `jaxmb.search` and `jaxmb.search_variants` and imports neither.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import mctx

#: Logit given to invalid actions. Finite, so softmax and logsumexp stay NaN-free.
MASKED_LOGIT = -1e9


def mask_logits(logits: jax.Array, invalid_actions: jax.Array | None) -> jax.Array:
    """Sets the logits of invalid actions (`True` in `invalid_actions`) to `MASKED_LOGIT`.

    Args:
      logits: `[..., A]`.
      invalid_actions: `bool [..., A]`, or None for no masking.

    Returns:
      `[..., A]`, `logits` itself when `invalid_actions` is None.
    """
    if invalid_actions is None:
        return logits
    return jnp.where(invalid_actions, MASKED_LOGIT, logits)


def masked_qtransform(tree: mctx.Tree, node_index: chex.Numeric, **kwargs) -> chex.Array:
    """mctx's `qtransform_by_parent_and_siblings`, with -inf for children masked by the prior."""
    qvalues = mctx.qtransform_by_parent_and_siblings(tree, node_index, **kwargs)
    masked = tree.children_prior_logits[node_index] <= MASKED_LOGIT / 2
    return jnp.where(masked, -jnp.inf, qvalues)
