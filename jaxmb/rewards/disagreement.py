"""Latent disagreement (Plan2Explore-style; Sekar et al. 2020, Pathak et al. 2019).

An ensemble of `reward.disagreement.ensemble_size` one-step predictors each maps the agent's
latent of an observation and the action taken, `(z_t, a_t)`, to the latent of the next
observation, `z_{t+1}`. Where the agent has seen a transition often, the members agree; where
it has not, they were fitted to little data from different initialisations and disagree. Step
t's intrinsic reward is that disagreement: the variance of the members' predictions across the
ensemble, averaged over the latent's dimensions.

- **Latents.** `z = agent.represent(params, obs)`, the agent's own encoder (MuZero's
  representation, the Q-learning baseline's encoder) with its current online parameters,
  under `stop_gradient`: the agent's encoder is never trained by this transform. The loop
  computes them for every sampled window and passes them as `batch["latent"]` (`needs_latent`).
- **Training.** Every member is fitted to the same sampled transitions (squared error,
  summed over the latent, averaged over the transitions), with one Adam step
  (`reward.disagreement.learning_rate`) per SGD update of the agent. Steps where the episode
  ended have no next latent in the window and are left out, as is the window's last step.
- **Scale.** The agent's latents are min-max normalised to [0, 1], so raw variances are small.
  With `reward.disagreement.normalize` (the default) the reward is divided by a running
  standard deviation of the disagreement over the sampled steps (no mean subtracted, so it
  stays positive).
- **Planning over it.** The reward transform mixes the intrinsic reward into the batch before
  the targets, so MuZero's reward head learns the mixed reward and the search maximises the
  intrinsic return: the model plans to reach where its ensemble disagrees.

The ensemble, its input (the agent's latent rather than a separate world model's state) and
the defaults are jaxmb's choices.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import optax

from jaxmb.configlib import ConfigError
from jaxmb.rewards import register
from jaxmb.rewards.rnd import Moments


class OneStepPredictor(nn.Module):
    """`(latent [..., D], action one-hot [..., A])` -> predicted next latent `[..., D]`."""

    hidden_sizes: tuple[int, ...]
    latent_dim: int

    @nn.compact
    def __call__(self, latent: jax.Array, action: jax.Array) -> jax.Array:
        x = jnp.concatenate([latent, action], axis=-1)
        for size in self.hidden_sizes:
            x = nn.elu(nn.Dense(size)(x))
        return nn.Dense(self.latent_dim)(x)


@flax.struct.dataclass
class DisagreementState:
    ensemble: dict  # the members' parameters, stacked on a leading [E] axis
    opt_state: Any
    moments: Moments  # [] of the raw disagreement over sampled steps


@register("disagreement")
class Disagreement:
    #: The loop adds `batch["latent"]` ([B, L, D], `agent.represent`) to the sampled windows.
    needs_latent = True

    def __init__(self, config, agent=None):
        if agent is None or not hasattr(agent, "represent"):
            raise ConfigError(
                "the disagreement transform reads the agent's latents: it needs an agent with "
                f"`represent(params, obs)` (agent.kind={config.agent.kind} "
                + ("was not given" if agent is None else "has none")
                + ")",
                "reward.transform",
            )
        self.num_actions = agent.num_actions
        self.settings = config.reward.disagreement
        self.latent_dim = config.agent.network.latent_dim
        self.optimizer = optax.adam(self.settings.learning_rate)
        self.network = OneStepPredictor(
            tuple(self.settings.hidden_sizes), config.agent.network.latent_dim
        )

    def init(self, key: jax.Array, obs: jax.Array) -> DisagreementState:
        del obs
        keys = jax.random.split(key, self.settings.ensemble_size)
        latent = jnp.zeros((self.latent_dim,), jnp.float32)
        action = jnp.zeros((self.num_actions,), jnp.float32)
        ensemble = jax.vmap(lambda k: self.network.init(k, latent, action))(keys)
        return DisagreementState(
            ensemble=ensemble,
            opt_state=self.optimizer.init(ensemble),
            moments=Moments.zeros(()),
        )

    def predictions(self, ensemble: dict, latent: jax.Array, action: jax.Array) -> jax.Array:
        """Every member's prediction `[E, ..., D]` from latents `[..., D]`, actions `[...]`."""
        one_hot = jax.nn.one_hot(action, self.num_actions)
        return jax.vmap(lambda p: self.network.apply(p, latent, one_hot))(ensemble)

    def disagreement(self, ensemble: dict, batch: dict) -> jax.Array:
        """The raw disagreement `[B, L]`: the ensemble variance, averaged over dimensions."""
        predictions = self.predictions(ensemble, batch["latent"], batch["action"])
        # The variance of deviations from the first member (the same variance): exactly 0
        # when the members agree, where float rounding of the mean would leave a residue.
        shifted = predictions - predictions[:1]
        variance = jnp.mean(jnp.square(shifted), axis=0) - jnp.square(jnp.mean(shifted, axis=0))
        return jnp.mean(jnp.maximum(variance, 0.0), axis=-1)

    # ------------------------------------------------------------------------ seam

    def observe(self, state: DisagreementState, steps: dict) -> DisagreementState:
        return state

    def intrinsic(self, state: DisagreementState, batch: dict) -> jax.Array:
        raw = self.disagreement(state.ensemble, batch)
        if not self.settings.normalize:
            return raw
        std = jnp.where(state.moments.count > 1, state.moments.std, 1.0)
        return raw / jnp.maximum(std, 1e-8)

    def update(
        self, state: DisagreementState, batch: dict, key: jax.Array
    ) -> tuple[DisagreementState, dict]:
        del key
        latent = batch["latent"]
        ended = batch["terminated"] | batch["truncated"]
        valid = (~ended[:, :-1]).astype(jnp.float32)  # [B, L-1]
        target = jax.lax.stop_gradient(latent[:, 1:])

        def loss_fn(ensemble):
            predicted = self.predictions(ensemble, latent[:, :-1], batch["action"][:, :-1])
            errors = jnp.sum(jnp.square(predicted - target), axis=-1)  # [E, B, L-1]
            per_member = jnp.sum(errors * valid, axis=(1, 2)) / jnp.maximum(jnp.sum(valid), 1.0)
            return jnp.sum(per_member), jnp.mean(per_member)

        (_, mean_loss), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.ensemble)
        updates, opt_state = self.optimizer.update(grads, state.opt_state, state.ensemble)
        ensemble = optax.apply_updates(state.ensemble, updates)
        raw = self.disagreement(state.ensemble, batch)
        state = state.replace(
            ensemble=ensemble, opt_state=opt_state, moments=state.moments.add(raw.reshape(-1))
        )
        return state, {"disagreement/loss": mean_loss, "disagreement/raw": jnp.mean(raw)}
