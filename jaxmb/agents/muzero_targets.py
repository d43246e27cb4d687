"""MuZero's learning targets as plain functions of explicit arguments.

`compute_targets` gives the policy, value, reward and termination targets of a batch of
replayed windows: search policies (stored, or reanalysed with the target network) with
`search.for_targets` on, a one-step lookahead in the learned model with it off, and n-step
value returns with episode ends handled as `jaxmb.targets` describes.

The model enters as a `TargetModel`: the functions and supports that targets read, so each
function here can be called (and tested) with any model, a hand-made one included.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import mctx

from jaxmb import search
from jaxmb.distributions import Support
from jaxmb.targets import nstep_value_targets, one_step_policy_target, unroll_masks


class TargetModel(NamedTuple):
    """What targets read from a MuZero agent."""

    #: `(params, obs [N, ...]) -> mctx.RootFnOutput` (prior logits, value, latent).
    initial_inference: Callable[[Any, jax.Array], mctx.RootFnOutput]
    #: The learned model, one step (`mctx.RecurrentFn`).
    recurrent_fn: mctx.RecurrentFn
    #: What reanalyse searches with (the model, with rollouts past the tree if configured).
    search_recurrent_fn: mctx.RecurrentFn
    value_support: Support
    reward_support: Support
    #: The discount of returns: negated in two-player games (see `MuZero`).
    discount: float
    num_actions: int


def target_positions(unroll_steps: int, td_steps: int) -> tuple[int, ...]:
    """Window positions whose policy (0..K) or bootstrap value (n..n+K) targets read."""
    return tuple(
        sorted(set(range(unroll_steps + 1)) | set(range(td_steps, td_steps + unroll_steps + 1)))
    )


def reanalyse(
    model: TargetModel,
    target_params,
    batch: dict,
    key: jax.Array,
    rows: int,
    *,
    search_config,
    unroll_steps: int,
    td_steps: int,
):
    """Fresh search on the first `rows` windows, with target params, at the positions
    targets read (`target_positions`).

    Returns the improved policies `[rows, L, A]`, root values `[rows, L]` (zeros at the
    positions not searched) and the simulations run `[]`.
    """
    index = jnp.array(target_positions(unroll_steps, td_steps))
    num_actions = model.num_actions
    obs = batch["obs"][:rows, index]
    flat_obs = obs.reshape((-1, *obs.shape[2:]))
    root = model.initial_inference(target_params, flat_obs)
    mask = batch["action_mask"][:rows, index].reshape((-1, num_actions))
    out = search.run_search(
        target_params,
        key,
        root,
        model.search_recurrent_fn,
        search_config,
        num_simulations=search_config.num_simulations,
        invalid_actions=~mask,
        greedy=True,
    )
    shape = obs.shape[:2]
    length = batch["obs"].shape[1]
    policy = jnp.zeros((rows, length, num_actions), jnp.float32)
    policy = policy.at[:, index].set(out.action_weights.reshape((*shape, num_actions)))
    value = jnp.zeros((rows, length), jnp.float32)
    value = value.at[:, index].set(search.root_value(out).reshape(shape))
    return policy, value, jnp.sum(search.num_simulations_run(out))


def one_step_q_values(
    model: TargetModel, params, obs: jax.Array
) -> tuple[jax.Array, mctx.RootFnOutput]:
    """Q(s, a) = r(s, a) + discount * v(s') for every action, one model step each.

    `discount` is the model's: 0 after a predicted termination, negated in two-player games.
    Returns Q `[N, A]` for observations `[N, ...]`, and the root inference.
    """
    root = model.initial_inference(params, obs)
    count = root.value.shape[0]

    def one_action(action):
        step, _ = model.recurrent_fn(
            params, None, jnp.full((count,), action, jnp.int32), root.embedding
        )
        return step.reward + step.discount * step.value

    q_values = jax.vmap(one_action, out_axes=1)(jnp.arange(model.num_actions))
    return q_values, root


def one_step_policy(
    model: TargetModel, target_params, batch: dict, *, search_config, unroll_steps: int
) -> jax.Array:
    """The one-step lookahead policy targets (search.for_targets off) of positions 0..K,
    from the target network's model: `[B, K+1, A]`."""
    cfg = search_config
    num_actions = model.num_actions
    positions = unroll_steps + 1
    obs = batch["obs"][:, :positions]
    q_values, root = one_step_q_values(model, target_params, obs.reshape((-1, *obs.shape[2:])))
    legal = batch["action_mask"][:, :positions].reshape((-1, num_actions))
    policy = jax.vmap(
        lambda q, logits, v, m: one_step_policy_target(
            q,
            logits,
            v,
            m,
            mode=cfg.one_step_target,
            temperature=cfg.one_step_temperature,
            value_scale=cfg.value_scale,
            maxvisit_init=cfg.maxvisit_init,
        )
    )(q_values, root.prior_logits, root.value, legal)
    return policy.reshape((*obs.shape[:2], num_actions))


def bootstrap_values(
    model: TargetModel, target_params, batch: dict, *, bootstrap: str, unroll_steps: int, td_steps
) -> jax.Array:
    """The values `[B, L]` n-step returns bootstrap from: the target network's value of
    `obs[n .. n+K]` (`bootstrap=target_network`; other positions 0), or the stored ones."""
    if bootstrap != "target_network":
        return batch["value"]
    positions = unroll_steps + 1
    boot_obs = batch["obs"][:, td_steps : td_steps + positions]
    boot = model.initial_inference(target_params, boot_obs.reshape((-1, *boot_obs.shape[2:])))
    values = jnp.zeros_like(batch["value"])
    return values.at[:, td_steps : td_steps + positions].set(boot.value.reshape(boot_obs.shape[:2]))


def compute_targets(
    model: TargetModel,
    target_params,
    batch: dict,
    key: jax.Array,
    *,
    loss_config,
    search_config,
    needs: frozenset[str] | None = None,
    represent: Callable[[Any, jax.Array], jax.Array] | None = None,
) -> dict:
    """Policy, value, reward and termination targets and their masks (see `jaxmb.losses`).

    With `search.for_targets` on, the policy targets are search policies: fresh ones
    (reanalyse with the target params) for the first `loss.reanalyse_fraction` of the batch,
    whose values then bootstrap from the fresh search root values; the rest use the policies
    and values stored when acting. Off, no tree is built: the policy target is
    `one_step_policy_target` of the target network's one-step Q-values, and values bootstrap
    from the target network's value head.

    Args:
      model: the agent's model functions.
      target_params: the target network's params.
      batch: replayed windows `[B, L, ...]`.
      key: PRNG key (reanalyse searches with it).
      loss_config, search_config: `agent.loss`, `agent.search`.
      needs: the `targets.<key>` the active loss terms read (None: all). The policy target
        (a one-step lookahead) is skipped when nothing reads it; `targets.target_latents`,
        the target network's latents of `obs[0 .. K]` `[B, K+1, D]`, is computed only when
        read (it needs `represent`, `(params, obs) -> latent`).

    Returns:
      a dict of targets, and `simulations` `[]`: the simulations run for these targets.
    """
    needs = None if needs is None else frozenset(n for n in needs if n.startswith("targets."))
    unroll, td = loss_config.unroll_steps, loss_config.td_steps
    positions = unroll + 1
    policy = batch["policy"].astype(jnp.float32)
    values = bootstrap_values(
        model,
        target_params,
        batch,
        bootstrap=loss_config.bootstrap,
        unroll_steps=unroll,
        td_steps=td,
    )
    simulations = jnp.zeros((), jnp.int32)
    if search_config.for_targets:
        rows = int(round(loss_config.reanalyse_fraction * policy.shape[0]))
        if rows:
            fresh_policy, fresh_value, simulations = reanalyse(
                model,
                target_params,
                batch,
                key,
                rows,
                search_config=search_config,
                unroll_steps=unroll,
                td_steps=td,
            )
            policy = policy.at[:rows].set(fresh_policy)
            values = values.at[:rows].set(fresh_value)
    elif needs is None or "targets.policy" in needs:
        policy = one_step_policy(
            model, target_params, batch, search_config=search_config, unroll_steps=unroll
        )

    value_targets = jax.vmap(
        lambda r, te, tr, v, fv: nstep_value_targets(
            r,
            te,
            tr,
            v,
            fv,
            discount=model.discount,
            td_steps=td,
            num_positions=positions,
        )
    )(batch["reward"], batch["terminated"], batch["truncated"], values, batch["final_value"])
    masks = jax.vmap(lambda te, tr: unroll_masks(te, tr, positions))(
        batch["terminated"], batch["truncated"]
    )
    absorbing = masks["absorbing"]
    value_targets = jnp.where(absorbing > 0, 0.0, value_targets)
    # Transition k-1 leads into position k (k = 1..K); its source state is position k-1.
    source_absorbing = absorbing[:, :unroll] > 0
    reward = jnp.where(source_absorbing, 0.0, batch["reward"][:, :unroll])
    terminal = jnp.where(source_absorbing, 1.0, batch["terminated"][:, :unroll])
    targets = {
        "policy": policy[:, :positions],
        "policy_mask": masks["same_episode"],
        "value": value_targets,
        "value_probs": model.value_support.scalar_to_probs(value_targets),
        "value_mask": masks["value"],
        "reward_probs": model.reward_support.scalar_to_probs(reward),
        "terminal": terminal.astype(jnp.float32),
        "model_mask": masks["model"][:, 1:],
        "simulations": simulations,
    }
    if needs is not None and "targets.target_latents" in needs:
        if represent is None:
            raise ValueError("targets.target_latents needs `represent`")
        targets["target_latents"] = represent(target_params, batch["obs"][:, :positions])
    return targets
