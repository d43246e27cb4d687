"""Reward transforms: what the agent trains on, between replay and the targets.

Replay always holds the env's own reward. When the loop samples a batch of windows for an SGD
update, the run's transform computes an intrinsic reward for every step of the windows and the
agent sees

    reward = w_env * env_reward + w_intrinsic * intrinsic_reward

with the weights of the current phase (`reward.*` in the config): during the first
`reward.exploration_env_steps` env steps of a run (the exploration phase) the `exploration_*`
weights, afterwards `env_weight` and `intrinsic_weight`. An exploration phase with
`exploration_env_weight=0` trains on intrinsic reward only; the env's reward is still logged
(`train/episode_return`), and the learning metrics `reward/env`, `reward/intrinsic` and
`reward/trained` give the mean of each over the sampled steps.

A transform has its own state in the train state (`TrainState.reward`: parameters, running
statistics, counts) and is updated with the agent:

    transform = jaxmb.rewards.make(config)             # by config.reward.transform
    state = transform.init(key, obs)                   # obs: one observation [*obs_shape]
    state = transform.observe(state, steps)            # each iteration's new records [N, T, ...]
    intrinsic = transform.intrinsic(state, batch)      # [B, L] for sampled windows [B, L, ...]
    state, metrics = transform.update(state, batch, key)   # with each SGD update

A transform that declares `needs_latent = True` also gets `batch["latent"]` (`[B, L, D]`, the
agent's `represent(params, obs)` with its current online parameters, under `stop_gradient`) in
`intrinsic` and `update`.

The identity transform (the default) is left out of the program altogether. Adding a transform
means adding a module to this package that calls `register` (the package imports its modules
the first time the registry is read). The transforms:

    count         a count-based bonus on SimHash buckets, for small and tabular envs
    rnd           random network distillation (Burda et al. 2019): a predictor's error at
                  matching a fixed random network on the next observation
    disagreement  the variance of an ensemble of one-step latent predictors (Plan2Explore-style)

Which intrinsic reward Walker et al. (2023) used could not be read here; RND and disagreement
are jaxmb's choice of two well-known ones (each module documents its reading).
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol

import jax
import jax.numpy as jnp

from jaxmb import plugins


class RewardTransform(Protocol):
    """See the module docstring for the shapes."""

    name: ClassVar[str]

    def init(self, key: jax.Array, obs: jax.Array) -> Any: ...

    def observe(self, state: Any, steps: dict) -> Any: ...

    def intrinsic(self, state: Any, batch: dict) -> jax.Array: ...

    def update(self, state: Any, batch: dict, key: jax.Array) -> tuple[Any, dict]: ...


def needs_latent(transform: RewardTransform | None) -> bool:
    """Whether the loop must add `batch["latent"]` for `transform`."""
    return bool(getattr(transform, "needs_latent", False))


# Unknown names are reported on "transform": RewardConfig's builder puts it under "reward.".
_TRANSFORMS = plugins.Registry(
    __name__, __path__, what="reward transform", key=lambda name: "transform"
)


def register(name: str):
    """Class decorator registering a transform under `name`; its constructor takes the
    `Config` and the agent (`make`)."""

    def decorate(cls: type) -> type:
        cls.name = name
        _TRANSFORMS.add(name, cls)
        return cls

    return decorate


def names() -> tuple[str, ...]:
    return _TRANSFORMS.names()


def spec(name: str) -> type:
    """The transform class registered as `name`; a `ConfigError` on `reward.transform`."""
    return _TRANSFORMS.get(name)


def make(config: Any, agent: Any = None) -> RewardTransform | None:
    """The run's transform, or None for the identity (nothing to compute). A transform's
    constructor takes the `Config` and the run's agent (which `disagreement` reads)."""
    if config.reward.transform == "identity":
        return None
    return spec(config.reward.transform)(config, agent)


def weights(reward_config: Any, env_steps: jax.Array) -> tuple[jax.Array, jax.Array]:
    """`(w_env, w_intrinsic)` at `env_steps` (the phase: exploration, then task)."""
    cfg = reward_config
    exploring = env_steps < cfg.exploration_env_steps
    w_env = jnp.where(exploring, cfg.exploration_env_weight, cfg.env_weight)
    w_intrinsic = jnp.where(exploring, cfg.exploration_intrinsic_weight, cfg.intrinsic_weight)
    return w_env, w_intrinsic


def apply(
    transform: RewardTransform, state: Any, batch: dict, reward_config: Any, env_steps: jax.Array
) -> tuple[dict, dict]:
    """The batch with its rewards mixed (see the module docstring), and the `reward/*` metrics."""
    env_reward = batch["reward"]
    intrinsic = transform.intrinsic(state, batch).astype(env_reward.dtype)
    w_env, w_intrinsic = weights(reward_config, env_steps)
    trained = w_env * env_reward + w_intrinsic * intrinsic
    metrics = {
        "reward/env": jnp.mean(env_reward),
        "reward/intrinsic": jnp.mean(intrinsic),
        "reward/trained": jnp.mean(trained),
    }
    return dict(batch, reward=trained), metrics


def next_step_novelty(novelty: jax.Array, batch: dict) -> jax.Array:
    """Per-step intrinsic rewards `[B, L]` from per-observation novelty `[B, L]`.

    Step t's reward is the novelty of the observation it led to, `obs[t + 1]`. Where the episode
    ended at step t, `obs[t + 1]` belongs to the next episode and the state reached is not
    stored, so the step gets the novelty of its own observation `obs[t]`; so does the window's
    last step (whose reward no target reads: targets use rewards up to `L - 2`).
    """
    ended = batch["terminated"] | batch["truncated"]
    following = jnp.concatenate([novelty[:, 1:], novelty[:, -1:]], axis=1)
    last = jnp.zeros_like(ended).at[:, -1].set(True)
    return jnp.where(ended | last, novelty, following)
