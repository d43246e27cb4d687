"""Pieces every agent of the loop shares: the optimiser, the target network, the supports.

Sharing them is what makes the model-free baseline a controlled comparison: MuZero and the
Q-learning agent get the same optax chain and the same target-network schedule from here.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from jaxmb.distributions import Support


def support(cfg) -> Support:
    """The categorical `Support` of a `SupportConfig`."""
    return Support(cfg.num_atoms, cfg.vmin, cfg.vmax, cfg.eps, cfg.use_transform)


def build_optimizer(optim) -> optax.GradientTransformation:
    """Global-norm clipping, then AdamW with an optional linear warm-up (`agent.optim`)."""
    schedule = optax.linear_schedule(
        0.0 if optim.warmup_updates else optim.learning_rate,
        optim.learning_rate,
        max(optim.warmup_updates, 1),
    )
    return optax.chain(
        optax.clip_by_global_norm(optim.max_grad_norm),
        optax.adamw(schedule, eps=optim.adam_eps, weight_decay=optim.weight_decay),
    )


def sgd_step(optimizer, optim, grads, opt_state, params, target_params, num_updates):
    """One optimiser step and the target-network copy every `optim.target_update_period`
    updates. Returns `(params, target_params, opt_state, num_updates)`."""
    updates, opt_state = optimizer.update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
    num_updates = num_updates + 1
    copy = num_updates % optim.target_update_period == 0
    target_params = jax.tree.map(lambda p, t: jnp.where(copy, p, t), params, target_params)
    return params, target_params, opt_state, num_updates


def param_groups(params: dict, parts: dict[str, tuple[str, ...]], names) -> tuple[str, ...]:
    """The top-level parameter groups of the parts `names`, checked against `params`."""
    groups = tuple(g for name in names for g in parts[name])
    missing = [g for g in groups if g not in params["params"]]
    if missing:
        raise KeyError(f"no parameter group {missing} in {sorted(params['params'])}")
    return groups


def loss_step(optimizer, optim, loss_fn, state, targets: dict, batch: dict):
    """The gradient of `loss_fn(params, targets, batch) -> (loss, {"parts", "value_error"})`
    at `state.params`, and one `sgd_step`.

    Returns `(params, target_params, opt_state, num_updates)` and the metrics `loss`,
    `grad_norm`, `loss/<term>` (the parts) and `priority` (the value errors `[B]`).
    """
    (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params, targets, batch)
    new = sgd_step(
        optimizer,
        optim,
        grads,
        state.opt_state,
        state.params,
        state.target_params,
        state.num_updates,
    )
    metrics = {"loss": loss, "grad_norm": optax.global_norm(grads)}
    metrics.update({f"loss/{k}": v for k, v in aux["parts"].items()})
    metrics["priority"] = aux["value_error"]
    return new, metrics
