"""Search variants for studying planning: depth limits, prior-following, rollouts, a perfect model.

These are the knobs of Hamrick et al. 2021, "On the role of planning in model-based deep RL".
Each one keeps search plain mctx: a different action selection rule handed to `mctx.search`,
or a different `mctx.RecurrentFn`.

Tree depth (`max_depth`, mctx's own argument). Depth counts edges from the root (the root is at
depth 0; `node_depths` computes it). A simulation stops descending once it has taken
`max_depth` actions. mctx then evaluates the last selected action even when that child already
exists: the recurrent fn is called again for it, the child's raw value is replaced by the new
evaluation (not averaged with the old one), its visit count grows by one, and the new value is
backed up to the root. No node is created on such a simulation, so a depth-limited tree ends with
fewer than `num_simulations + 1` nodes; the unused slots stay empty (depth -1). With a
deterministic model a revisit returns the same value again; with a stochastic one (e.g.
`with_rollouts` sampling from the prior) each revisit is a fresh sample, the node keeps only the
last, and its parent's value averages all of them.

Prior-following below a depth (`uct_depth`, D_UCT in the paper). `run_policy(uct_depth=d)`
selects actions with the usual rule (PUCT for muzero, Gumbel's interior rule for gumbel) at
nodes of depth `1 <= depth < d` and, at depth `d` and below, samples the action from the node's
prior. Sampling, not argmax: every simulation would otherwise follow the same single path
below depth `d` and the extra simulations would only re-evaluate it. The root always uses its
usual rule (PUCT with Dirichlet noise, or Gumbel's sequential halving), so the improved policy
and the acting rule keep their meaning; `uct_depth=1` is "search only at the root".

Rollouts past the tree (`with_rollouts`). A leaf's value becomes a mix of the value head and
the discounted return of an H-step rollout in the model, following the prior and bootstrapped
with the value head at the rollout's end. Discounts multiply along the rollout, so a predicted
terminal (discount 0) ends the return and a two-player model's signed discount (-gamma) flips
the sign at every ply. Each expansion pays `horizon` extra model calls.

A perfect model (`env_recurrent_fn`). For an env written in JAX, search can use the env itself:
the embedding is the env state and `env.step` the dynamics, while the prior and value still
come from the networks. Terminated transitions get discount 0; truncated ones (a time limit)
fold the value of the final observation into the reward and also get discount 0, since the env
has already reset and anything below that node belongs to another episode.

Invalid actions inside the tree get the logit `jaxmb.search_masks.MASKED_LOGIT` as everywhere
else.

Layering: `jaxmb.search` (the config-facing call) imports this module, and this module imports
only `jaxmb.search_masks` from jaxmb; neither imports the other back.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Literal

import chex
import jax
import jax.numpy as jnp
import mctx

# Private to mctx: the uct_depth policies below mirror mctx's own step for step. pyproject.toml
# pins mctx for them and tests/test_mctx_private.py fails, saying what moved, if they change.
from mctx._src import action_selection as mctx_action_selection
from mctx._src import policies as mctx_policies
from mctx._src import seq_halving as mctx_seq_halving

from jaxmb.search_masks import mask_logits

#: `(params, observation [B, ...]) -> (prior_logits [B, A], value [B])`.
PredictFn = Callable[[Any, jax.Array], tuple[jax.Array, jax.Array]]
Algorithm = Literal["muzero", "gumbel"]


def node_depths(tree: mctx.Tree) -> jax.Array:
    """Depth of every node of a search tree: 0 at the root, -1 for nodes never created.

    Args:
      tree: a batched `mctx.Tree` with `parents [B, N]`.

    Returns:
      `int32 [B, N]`.
    """
    chex.assert_rank(tree.parents, 2)
    return jax.vmap(_unbatched_node_depths)(tree.parents)


def _unbatched_node_depths(parents: jax.Array) -> jax.Array:
    # mctx stores the node first expanded by simulation i at index i + 1, after its parent, so
    # one pass in index order finds every parent's depth before its children need it.
    depths = jnp.full(parents.shape, -1, jnp.int32).at[mctx.Tree.ROOT_INDEX].set(0)

    def visit(index, depths):
        parent = parents[index]
        depth = jnp.where(parent == mctx.Tree.NO_PARENT, -1, depths[jnp.maximum(parent, 0)] + 1)
        return depths.at[index].set(depth)

    return jax.lax.fori_loop(1, parents.shape[0], visit, depths)


def depth_limited_interior_selection(
    base_fn: mctx.InteriorActionSelectionFn, uct_depth: int
) -> mctx.InteriorActionSelectionFn:
    """Uses `base_fn` above `uct_depth` and samples from the node's prior from there on.

    "Follows the prior" means sampling from it: an argmax would send every simulation down the
    same path below `uct_depth`, so extra simulations would only re-evaluate one leaf.

    Args:
      base_fn: an mctx interior selection fn, `(rng_key, tree, node_index, depth) -> action`
        on an unbatched tree (mctx vmaps it), e.g. a partial of `mctx.muzero_action_selection`.
      uct_depth: first depth (root = 0) at which the action is sampled from
        `tree.children_prior_logits[node_index]`; at least 1. Actions with logit
        `MASKED_LOGIT` have probability 0 and are never sampled.

    Returns:
      An `mctx.InteriorActionSelectionFn` returning an `int32` scalar action.
    """
    if uct_depth < 1:
        raise ValueError(
            f"uct_depth must be at least 1 (the root always searches), got {uct_depth}"
        )
    return functools.partial(_depth_limited_selection, base_fn=base_fn, uct_depth=uct_depth)


def _depth_limited_selection(rng_key, tree, node_index, depth, *, base_fn, uct_depth):
    # Both rules get the same key: only one action is kept, and handing base_fn the key mctx
    # gave keeps the search bit-identical to mctx's wherever depth < uct_depth.
    base_action = base_fn(rng_key, tree, node_index, depth)
    prior_action = jax.random.categorical(rng_key, tree.children_prior_logits[node_index])
    # mctx passes depth as a float scalar; the comparison is exact for any tree it can build.
    return jnp.where(depth >= uct_depth, prior_action, base_action).astype(jnp.int32)


def run_policy(
    params: Any,
    rng_key: chex.PRNGKey,
    root: mctx.RootFnOutput,
    recurrent_fn: mctx.RecurrentFn,
    *,
    algorithm: Algorithm,
    num_simulations: int,
    uct_depth: int | None = None,
    invalid_actions: jax.Array | None = None,
    max_depth: int | None = None,
    qtransform: Callable[..., jax.Array] | None = None,
    loop_fn: mctx.LoopFn = jax.lax.fori_loop,
    dirichlet_fraction: float = 0.25,
    dirichlet_alpha: float = 0.3,
    pb_c_init: float = 1.25,
    pb_c_base: float = 19652,
    temperature: float = 1.0,
    max_num_considered_actions: int = 16,
    gumbel_scale: float = 1.0,
) -> mctx.PolicyOutput:
    """`mctx.muzero_policy` or `mctx.gumbel_muzero_policy`, optionally prior-following deep down.

    The one place that picks the policy from `algorithm` x `uct_depth`; `jaxmb.search.run_search`
    and every other caller go through it. With `uct_depth=None` this calls the mctx policy
    unchanged. Otherwise it runs the same policy with the interior selection wrapped by
    `depth_limited_interior_selection`; the root rule, root noise, acting rule and
    `action_weights` are mctx's.

    Args:
      params: passed through to `recurrent_fn`.
      rng_key: PRNG key.
      root: `mctx.RootFnOutput`: `prior_logits [B, A]`, `value [B]`, `embedding [B, ...]`.
      recurrent_fn: the model.
      algorithm: "muzero" (PUCT) or "gumbel" (Gumbel MuZero).
      num_simulations: search budget (static).
      uct_depth: first depth at which interior nodes sample from the prior; None for plain mctx.
      invalid_actions: `bool [B, A]`, True where an action is illegal at the root.
      max_depth: mctx's depth cap (see the module docstring for what happens at the cap).
      qtransform: mctx's Q transform; None for the algorithm's mctx default.
      loop_fn: loop over simulations, as in mctx.
      dirichlet_fraction, dirichlet_alpha, pb_c_init, pb_c_base, temperature: muzero only.
        The Dirichlet settings must be Python floats (mctx checks).
      max_num_considered_actions, gumbel_scale: gumbel only.

    Returns:
      mctx's `PolicyOutput`: `action [B]`, `action_weights [B, A]`, `search_tree`.
    """
    if algorithm not in ("muzero", "gumbel"):
        raise ValueError(f"algorithm must be 'muzero' or 'gumbel', got {algorithm!r}")
    chex.assert_rank(root.prior_logits, 2)
    if invalid_actions is not None:
        chex.assert_equal_shape([root.prior_logits, invalid_actions])
    common = dict(invalid_actions=invalid_actions, max_depth=max_depth, loop_fn=loop_fn)
    if algorithm == "muzero":
        settings = dict(
            qtransform=qtransform or mctx.qtransform_by_parent_and_siblings,
            dirichlet_fraction=dirichlet_fraction,
            dirichlet_alpha=dirichlet_alpha,
            pb_c_init=pb_c_init,
            pb_c_base=pb_c_base,
            temperature=temperature,
        )
        mctx_policy, policy_with_uct_depth = mctx.muzero_policy, _muzero_policy_with_uct_depth
    else:
        settings = dict(
            qtransform=qtransform or mctx.qtransform_completed_by_mix_value,
            max_num_considered_actions=max_num_considered_actions,
            gumbel_scale=gumbel_scale,
        )
        mctx_policy, policy_with_uct_depth = (
            mctx.gumbel_muzero_policy,
            _gumbel_policy_with_uct_depth,
        )
    args = (params, rng_key, root, recurrent_fn, num_simulations)
    if uct_depth is None:
        return mctx_policy(*args, **common, **settings)
    return policy_with_uct_depth(*args, uct_depth, **common, **settings)


def _muzero_policy_with_uct_depth(
    params, rng_key, root, recurrent_fn, num_simulations, uct_depth, *, invalid_actions,
    max_depth, loop_fn, qtransform, dirichlet_fraction, dirichlet_alpha, pb_c_init, pb_c_base,
    temperature,
):  # fmt: skip
    # Mirrors mctx.muzero_policy step for step (same key splits), so with a uct_depth that is
    # never reached the output equals mctx's.
    rng_key, dirichlet_key, search_key = jax.random.split(rng_key, 3)
    noisy_probs = mctx_policies._add_dirichlet_noise(
        dirichlet_key,
        jax.nn.softmax(root.prior_logits),
        dirichlet_fraction=dirichlet_fraction,
        dirichlet_alpha=dirichlet_alpha,
    )
    noisy_logits = mctx_policies._get_logits_from_probs(noisy_probs)
    root = root.replace(
        prior_logits=mctx_policies._mask_invalid_actions(noisy_logits, invalid_actions)
    )
    puct = functools.partial(
        mctx.muzero_action_selection,
        pb_c_init=pb_c_init,
        pb_c_base=pb_c_base,
        qtransform=qtransform,
    )
    tree = mctx.search(
        params,
        search_key,
        root=root,
        recurrent_fn=recurrent_fn,
        root_action_selection_fn=functools.partial(puct, depth=0),
        interior_action_selection_fn=depth_limited_interior_selection(puct, uct_depth),
        num_simulations=num_simulations,
        max_depth=max_depth,
        invalid_actions=invalid_actions,
        loop_fn=loop_fn,
    )
    action_weights = tree.summary().visit_probs
    action_logits = mctx_policies._apply_temperature(
        mctx_policies._get_logits_from_probs(action_weights), temperature
    )
    action = jax.random.categorical(rng_key, action_logits)
    return mctx.PolicyOutput(action=action, action_weights=action_weights, search_tree=tree)


def _gumbel_policy_with_uct_depth(
    params, rng_key, root, recurrent_fn, num_simulations, uct_depth, *, invalid_actions,
    max_depth, loop_fn, qtransform, max_num_considered_actions, gumbel_scale,
):  # fmt: skip
    # Mirrors mctx.gumbel_muzero_policy step for step (same key splits).
    root = root.replace(
        prior_logits=mctx_policies._mask_invalid_actions(root.prior_logits, invalid_actions)
    )
    rng_key, gumbel_key = jax.random.split(rng_key)
    logits = root.prior_logits
    gumbel = gumbel_scale * jax.random.gumbel(gumbel_key, logits.shape, logits.dtype)
    tree = mctx.search(
        params,
        rng_key,
        root=root,
        recurrent_fn=recurrent_fn,
        root_action_selection_fn=functools.partial(
            mctx.gumbel_muzero_root_action_selection,
            num_simulations=num_simulations,
            max_num_considered_actions=max_num_considered_actions,
            qtransform=qtransform,
        ),
        interior_action_selection_fn=depth_limited_interior_selection(
            functools.partial(mctx.gumbel_muzero_interior_action_selection, qtransform=qtransform),
            uct_depth,
        ),
        num_simulations=num_simulations,
        max_depth=max_depth,
        invalid_actions=invalid_actions,
        extra_data=mctx.GumbelMuZeroExtraData(root_gumbel=gumbel),
        loop_fn=loop_fn,
    )
    # Act with the best of the most visited root actions by gumbel + logits + completed Q; the
    # improved policy is softmax(logits + completed Q) (Danihelka et al. 2022).
    visit_counts = tree.summary().visit_counts
    completed_q = jax.vmap(qtransform, in_axes=[0, None])(tree, mctx.Tree.ROOT_INDEX)
    score = mctx_seq_halving.score_considered(
        jnp.max(visit_counts, axis=-1, keepdims=True), gumbel, logits, completed_q, visit_counts
    )
    action = mctx_action_selection.masked_argmax(score, invalid_actions)
    improved_logits = mctx_policies._mask_invalid_actions(logits + completed_q, invalid_actions)
    action_weights = jax.nn.softmax(improved_logits)
    return mctx.PolicyOutput(action=action, action_weights=action_weights, search_tree=tree)


def with_rollouts(
    recurrent_fn: mctx.RecurrentFn, *, horizon: int, mix: float, greedy: bool = False
) -> mctx.RecurrentFn:
    """Wraps a model so that each new node's value includes an H-step rollout return.

    For a new node s_0 (the inner fn's next embedding), the rollout takes `horizon` actions in
    the model, each sampled from the prior of the state it leaves (argmax when `greedy`), and
    computes `G = r_1 + d_1 r_2 + ... + d_1...d_{H-1} r_H + d_1...d_H v(s_H)` from the inner
    fn's rewards r_i, discounts d_i and value head v. The node's value becomes
    `(1 - mix) v(s_0) + mix G`; its reward, discount, prior and embedding are unchanged.

    Args:
      recurrent_fn: the model, `(params, key, action [B], embedding [B, ...])`.
      horizon: rollout length H >= 0 (static).
      mix: weight of the rollout return, in [0, 1]; 1 replaces the value head's estimate.
      greedy: follow the prior's argmax instead of sampling (deterministic rollouts).

    Returns:
      An `mctx.RecurrentFn`; `recurrent_fn` itself when `horizon == 0` or `mix == 0`.
    """
    if horizon < 0:
        raise ValueError(f"horizon must be >= 0, got {horizon}")
    # `mix` may be a tracer (a swept hyperparameter): only a Python number is checked here.
    if isinstance(mix, int | float):
        if not 0.0 <= mix <= 1.0:
            raise ValueError(f"mix must be in [0, 1], got {mix}")
        if mix == 0.0:
            return recurrent_fn
    if horizon == 0:
        return recurrent_fn
    return functools.partial(
        _rollout_recurrent_fn, recurrent_fn=recurrent_fn, horizon=horizon, mix=mix, greedy=greedy
    )


def _rollout_recurrent_fn(
    params, rng_key, action, embedding, *, recurrent_fn, horizon, mix, greedy
):
    step_key, rollout_key = jax.random.split(rng_key)
    output, next_embedding = recurrent_fn(params, step_key, action, embedding)
    value = output.value
    # Carry: (embedding, prior logits of that state, its value, return so far, discount product).
    zeros = jnp.zeros_like(value)
    carry = (next_embedding, output.prior_logits, value, zeros, zeros + 1)
    step = functools.partial(_rollout_step, params, recurrent_fn=recurrent_fn, greedy=greedy)
    carry, _ = jax.lax.scan(step, carry, jax.random.split(rollout_key, horizon))
    _, _, last_value, partial_return, scale = carry
    rollout_return = partial_return + scale * last_value
    mixed = (1.0 - mix) * value + mix * rollout_return
    return output.replace(value=mixed.astype(value.dtype)), next_embedding


def _rollout_step(params, carry, key, *, recurrent_fn, greedy):
    embedding, prior_logits, _, partial_return, scale = carry
    action_key, model_key = jax.random.split(key)
    if greedy:
        action = jnp.argmax(prior_logits, axis=-1)
    else:
        action = jax.random.categorical(action_key, prior_logits)
    output, embedding = recurrent_fn(params, model_key, action.astype(jnp.int32), embedding)
    dtype = partial_return.dtype  # scan needs the carry's dtypes unchanged
    partial_return = partial_return + scale * output.reward.astype(dtype)
    # A discount of 0 zeroes everything after it: a predicted terminal is absorbing.
    scale = scale * output.discount.astype(dtype)
    value = output.value.astype(dtype)
    return (embedding, output.prior_logits, value, partial_return, scale), None


def env_recurrent_fn(
    env: Any, env_params: Any, predict_fn: PredictFn, *, discount: float
) -> mctx.RecurrentFn:
    """The environment itself as the search model (a perfect model).

    The embedding is the batched env state (leading axis B). Each expansion steps one copy of
    the env per batch element (`env.step` vmapped, one key each, so a stochastic env samples
    one outcome per expansion and the tree keeps it) and evaluates the networks on the result:

    - prior and value: `predict_fn` on `info["final_observation"]`, which `Env.step` makes equal
      to the new observation except where the episode ended; the prior is masked with the
      new state's `env.action_mask`;
    - reward: the env's reward (float32); discount: `discount` (negative for a two-player
      game's sign flip, passed through);
    - terminated: discount 0 and value 0, so nothing below reaches the values above;
    - truncated (time limit): the env has reset and the state below belongs to a new episode,
      so the node bootstraps instead: reward `r + discount * v(final observation)`, discount 0.
      Search may still spend simulations below such nodes; they do not change the values above.

    Args:
      env: one unbatched `jaxmb.envs.core.Env` (not a `VectorEnv`); it must auto-reset.
      env_params: its params, shared by the whole batch.
      predict_fn: `(params, obs [B, ...]) -> (prior_logits [B, A], value [B])`.
      discount: discount between search nodes.

    Returns:
      An `mctx.RecurrentFn` `(params, key, action [B], env_state [B, ...])`.
    """
    return functools.partial(
        _env_recurrent_fn, env=env, env_params=env_params, predict_fn=predict_fn, discount=discount
    )


def _env_recurrent_fn(params, rng_key, action, state, *, env, env_params, predict_fn, discount):
    chex.assert_rank(action, 1)
    batch_size = action.shape[0]
    keys = jax.random.split(rng_key, batch_size)
    step = jax.vmap(env.step, in_axes=(0, 0, 0, None))
    _, next_state, reward, terminated, truncated, info = step(keys, state, action, env_params)
    prior_logits, value = predict_fn(params, info["final_observation"])
    chex.assert_rank(prior_logits, 2)
    chex.assert_shape([reward, terminated, truncated, value], (batch_size,))
    legal = jax.vmap(env.action_mask, in_axes=(0, None))(next_state, env_params)
    chex.assert_equal_shape([prior_logits, legal])
    reward = reward.astype(jnp.float32)
    value = value.astype(jnp.float32)
    time_limit = jnp.logical_and(truncated, ~terminated)
    reward = jnp.where(time_limit, reward + discount * value, reward)
    ended = jnp.logical_or(terminated, truncated)
    output = mctx.RecurrentFnOutput(
        reward=reward,
        discount=jnp.where(ended, 0.0, discount).astype(jnp.float32),
        prior_logits=mask_logits(prior_logits, ~legal),
        value=jnp.where(ended, 0.0, value),
    )
    return output, next_state


def env_root(
    params: Any, obs: jax.Array, state: Any, *, env: Any, env_params: Any, predict_fn: PredictFn
) -> tuple[mctx.RootFnOutput, jax.Array]:
    """The root for `env_recurrent_fn`: networks on `obs [B, ...]`, embedding the env `state`.

    Returns:
      `(root, invalid_actions)`: the root with invalid actions' logits masked, and
      `invalid_actions bool [B, A]` to pass to the policy.
    """
    prior_logits, value = predict_fn(params, obs)
    legal = jax.vmap(env.action_mask, in_axes=(0, None))(state, env_params)
    chex.assert_equal_shape([prior_logits, legal])
    invalid_actions = ~legal
    root = mctx.RootFnOutput(
        prior_logits=mask_logits(prior_logits, invalid_actions),
        value=value.astype(jnp.float32),
        embedding=state,
    )
    return root, invalid_actions
