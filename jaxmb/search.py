"""A thin layer over mctx: the learned model as an `mctx.RecurrentFn`, and the policy call.

Nothing sits between search and the model but mctx's own types: `make_recurrent_fn` turns the
network into a `RecurrentFn` whose embedding is the latent state, and `run_search` turns the
config into the settings of `search_variants.run_policy`, the one place that picks the policy
(`mctx.muzero_policy`, `mctx.gumbel_muzero_policy`, or their prior-following variants when
`uct_depth` is set).

Invalid actions. mctx masks invalid actions at the root only (mctx issues #29, #54). Inside the
tree, a recurrent fn may mark actions invalid by giving them the logit `MASKED_LOGIT`
(`mask_logits`); `jaxmb.search_masks` holds both and says why a masked action is never
selected, by PUCT (`masked_qtransform`) or by Gumbel. They are re-exported here.

Terminal states. The model's termination head marks a transition terminal when its probability
exceeds `terminal_threshold`; the recurrent fn then returns discount 0, so nothing below that
node reaches the values above it: the predicted terminal is absorbing.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import chex
import jax
import jax.numpy as jnp
import mctx

from jaxmb import search_variants
from jaxmb.config import SearchConfig
from jaxmb.distributions import Support
from jaxmb.networks import MuZeroNetwork
from jaxmb.search_masks import MASKED_LOGIT, mask_logits, masked_qtransform

__all__ = [
    "MASKED_LOGIT",
    "make_recurrent_fn",
    "mask_logits",
    "masked_qtransform",
    "num_simulations_run",
    "root_value",
    "run_search",
]


def make_recurrent_fn(
    network: MuZeroNetwork,
    value_support: Support,
    reward_support: Support,
    *,
    discount: float,
    terminal_threshold: float = 0.5,
    invalid_actions_fn: Callable[[jax.Array], jax.Array] | None = None,
) -> mctx.RecurrentFn:
    """The learned model as an `mctx.RecurrentFn`: `(params, key, action [B], latent [B, D])`.

    Args:
      network: the MuZero network; `params` passed to the recurrent fn are its variables.
      value_support, reward_support: supports of the value and reward heads.
      discount: discount applied between search nodes.
      terminal_threshold: predicted termination probability above which the node is terminal
        (discount 0, absorbing).
      invalid_actions_fn: optional map from the next latent `[B, D]` to invalid actions
        `[B, A]` inside the tree.
    """

    def recurrent_fn(params, rng_key, action, embedding):
        del rng_key
        next_latent, reward_logits, terminal_logit = network.apply(
            params, embedding, action, method=MuZeroNetwork.recurrent
        )
        prior_logits, value_logits = network.apply(
            params, next_latent, method=MuZeroNetwork.predict
        )
        if invalid_actions_fn is not None:
            prior_logits = mask_logits(prior_logits, invalid_actions_fn(next_latent))
        terminal = jax.nn.sigmoid(terminal_logit) > terminal_threshold
        output = mctx.RecurrentFnOutput(
            reward=reward_support.logits_to_scalar(reward_logits),
            discount=jnp.where(terminal, 0.0, discount).astype(jnp.float32),
            prior_logits=prior_logits,
            value=value_support.logits_to_scalar(value_logits),
        )
        return output, next_latent

    return recurrent_fn


def run_search(
    params,
    rng_key: chex.PRNGKey,
    root: mctx.RootFnOutput,
    recurrent_fn: mctx.RecurrentFn,
    config: SearchConfig,
    *,
    num_simulations: int,
    invalid_actions: jax.Array | None = None,
    greedy: bool = False,
) -> mctx.PolicyOutput:
    """Runs the configured mctx policy.

    Args:
      params: passed through to `recurrent_fn`.
      rng_key: PRNG key.
      root: `mctx.RootFnOutput` with `prior_logits [B, A]`, `value [B]`, `embedding [B, ...]`.
      recurrent_fn: the model (see `make_recurrent_fn`).
      config: search settings.
      num_simulations: budget (static).
      invalid_actions: `[B, A]`, True where the action is illegal at the root.
      greedy: no root noise and a deterministic action (evaluation).

    Returns:
      mctx's `PolicyOutput`: `action [B]`, `action_weights [B, A]` (the improved policy, the
      policy target), `search_tree`.
    """
    root = root.replace(prior_logits=mask_logits(root.prior_logits, invalid_actions))
    if config.algorithm == "muzero":
        qtransform = masked_qtransform
    else:
        qtransform = functools.partial(
            mctx.qtransform_completed_by_mix_value,
            value_scale=config.value_scale,
            maxvisit_init=config.maxvisit_init,
        )
    # run_policy alone picks the policy (algorithm x uct_depth) and reads only the settings of
    # the chosen algorithm.
    return search_variants.run_policy(
        params,
        rng_key,
        root,
        recurrent_fn,
        algorithm=config.algorithm,
        num_simulations=num_simulations,
        uct_depth=config.uct_depth,
        invalid_actions=invalid_actions,
        max_depth=config.max_depth,
        qtransform=qtransform,
        dirichlet_fraction=0.0 if greedy else config.dirichlet_fraction,
        dirichlet_alpha=config.dirichlet_alpha,
        pb_c_init=config.pb_c_init,
        pb_c_base=config.pb_c_base,
        temperature=0.0 if greedy else config.temperature,
        # mctx builds its sequential-halving table for every count up to this one, in Python
        # and in time quadratic in it; counts above the number of actions are never read.
        max_num_considered_actions=min(
            config.max_num_considered_actions, root.prior_logits.shape[-1]
        ),
        gumbel_scale=0.0 if greedy else config.gumbel_scale,
    )


def root_value(policy_output: mctx.PolicyOutput) -> jax.Array:
    """The search's value estimate of the root, `[B]`."""
    return policy_output.search_tree.node_values[:, mctx.Tree.ROOT_INDEX]


def num_simulations_run(policy_output: mctx.PolicyOutput) -> jax.Array:
    """Simulations a search ran, read from its tree: `[B]` int32.

    Every simulation ends in one call of the recurrent fn and backs its value up through the
    root, so the root's visit count is 1 (its own evaluation) plus the simulations.
    """
    visits = policy_output.search_tree.node_visits[:, mctx.Tree.ROOT_INDEX]
    return (visits - 1).astype(jnp.int32)
