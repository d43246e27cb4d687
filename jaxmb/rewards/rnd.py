"""Random network distillation (Burda et al. 2019, "Exploration by Random Network Distillation").

A target network `f` with random weights is never trained; a predictor `f_hat` learns to match
it on the observations the agent sees. The prediction error `||f_hat(x) - f(x)||^2` stays high
on observations unlike those seen so far, and is the novelty of `x`. Step t's intrinsic reward
is the novelty of the observation it led to, `obs[t + 1]` (`jaxmb.rewards.next_step_novelty`).

As in the paper:

- **Observations are normalised** before either network reads them: `x = clip((obs - mu) /
  sigma, -5, 5)` with per-element running mean and standard deviation `mu`, `sigma` of every
  observation collected (`observe`, each iteration's new records). Learning starts only after
  `replay.min_size` env steps, so the statistics rest on at least that many observations
  before any intrinsic reward is read (the paper warms them up with random-agent steps).
- **The reward is divided by a running standard deviation** of the intrinsic *returns*: each
  training env keeps a non-episodic discounted sum of its novelties (discount
  `reward.rnd.return_discount`) over the stream of collected observations, and the reward is
  `novelty / std(those sums)`. No mean is subtracted, so the reward stays positive. The sums
  and their std start with the predictor's first training step: before it, its errors are
  those of an untrained network, orders of magnitude above its later ones. The paper
  keeps the whole history (`reward.rnd.return_std_window=0`, the default). Where the
  predictor learns the few states of a small env in a few thousand steps, its error falls by
  orders of magnitude and a whole-history std, set by the first errors, shrinks the reward
  to nothing; a window (the std of about the last `return_std_window` sums) keeps its scale.
- **Networks.** For image observations of at least 36 x 36 pixels, the paper's convolutions
  (32, 64, 64 channels, kernels 8, 4, 3, strides 4, 2, 1, leaky ReLU) then dense layers; for
  smaller images and vectors, flattened observations through dense layers. The target has one
  hidden layer of `reward.rnd.hidden_size`, the predictor two (the paper's predictor is deeper
  than its target), both ending in `reward.rnd.embedding_dim` outputs.
- The predictor is trained with its own Adam (`reward.rnd.learning_rate`) on the observations
  of each sampled batch, one step per SGD update of the agent, on a random fraction
  `reward.rnd.update_proportion` of them (the paper keeps 25% with many parallel envs).

Which of the paper's settings jaxmb keeps, and the defaults, are jaxmb's choices.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import optax

from jaxmb.rewards import next_step_novelty, register

_CONV_MIN_SIZE = 36  # the paper's 8/4, 4/2, 3/1 convolutions need at least this many pixels


class RNDNetwork(nn.Module):
    """Normalised observation `[..., *obs_shape]` -> embedding `[..., embedding_dim]`."""

    obs_ndim: int
    hidden_layers: int
    hidden_size: int
    embedding_dim: int
    conv: bool

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        batch_shape = x.shape[: x.ndim - self.obs_ndim]
        if self.conv:
            x = x.reshape((-1, *x.shape[-3:]))
            for channels, kernel, stride in ((32, 8, 4), (64, 4, 2), (64, 3, 1)):
                x = nn.leaky_relu(nn.Conv(channels, (kernel, kernel), (stride, stride))(x))
        x = x.reshape((*batch_shape, -1))
        for _ in range(self.hidden_layers):
            x = nn.relu(nn.Dense(self.hidden_size)(x))
        return nn.Dense(self.embedding_dim)(x)


@flax.struct.dataclass
class Moments:
    """Running count, mean and sum of squared deviations (Chan et al.'s parallel update)."""

    count: jax.Array  # [] float32
    mean: jax.Array
    m2: jax.Array

    @classmethod
    def zeros(cls, shape) -> Moments:
        return cls(jnp.zeros((), jnp.float32), jnp.zeros(shape), jnp.zeros(shape))

    def add(self, values: jax.Array, window: int = 0) -> Moments:
        """The moments with `values [n, *shape]` added. With `window > 0` the old values
        count as at most `window - n` samples (their weight shrinks in proportion), so the
        moments follow roughly the last `window` values; 0 keeps the whole history."""
        n = jnp.asarray(values.shape[0], jnp.float32)
        mean = jnp.mean(values, axis=0)
        m2 = jnp.sum(jnp.square(values - mean), axis=0)
        count, old_m2 = self.count, self.m2
        if window:
            kept = jnp.minimum(count, jnp.maximum(window - n, 0.0))
            old_m2 = old_m2 * kept / jnp.maximum(count, 1.0)
            count = kept
        total = count + n
        delta = mean - self.mean
        return Moments(
            count=total,
            mean=self.mean + delta * n / total,
            m2=old_m2 + m2 + jnp.square(delta) * count * n / total,
        )

    @property
    def std(self) -> jax.Array:
        return jnp.sqrt(self.m2 / jnp.maximum(self.count, 1.0))


@flax.struct.dataclass
class RNDState:
    target: dict  # fixed random network
    predictor: dict
    opt_state: Any
    obs_moments: Moments  # per element of the observation
    return_moments: Moments  # [] of the intrinsic-return filter's values
    return_filter: jax.Array  # [num_envs] non-episodic discounted novelty sums
    updates: jax.Array  # [] int32: the predictor's training steps so far


@register("rnd")
class RND:
    def __init__(self, config, agent=None):
        del agent
        self.settings = config.reward.rnd
        self.num_envs = config.env.num_envs
        self.optimizer = optax.adam(self.settings.learning_rate)

    def _networks(self, obs_shape: tuple[int, ...]) -> tuple[RNDNetwork, RNDNetwork]:
        """The target (one hidden layer) and the predictor (two)."""
        s = self.settings
        conv = len(obs_shape) == 3 and min(obs_shape[:2]) >= _CONV_MIN_SIZE
        make = lambda layers: RNDNetwork(  # noqa: E731
            len(obs_shape), layers, s.hidden_size, s.embedding_dim, conv
        )
        return make(1), make(2)

    def init(self, key: jax.Array, obs: jax.Array) -> RNDState:
        target_net, predictor_net = self._networks(obs.shape)
        target_key, predictor_key = jax.random.split(key)
        x = jnp.zeros(obs.shape, jnp.float32)
        predictor = predictor_net.init(predictor_key, x)
        return RNDState(
            target=target_net.init(target_key, x),
            predictor=predictor,
            opt_state=self.optimizer.init(predictor),
            obs_moments=Moments.zeros(obs.shape),
            return_moments=Moments.zeros(()),
            return_filter=jnp.zeros((self.num_envs,), jnp.float32),
            updates=jnp.zeros((), jnp.int32),
        )

    # ------------------------------------------------------------------------ novelty

    def normalise(self, state: RNDState, obs: jax.Array) -> jax.Array:
        """`clip((obs - mu) / sigma, -5, 5)` with the running statistics."""
        std = jnp.maximum(state.obs_moments.std, 1e-6)
        return jnp.clip((obs.astype(jnp.float32) - state.obs_moments.mean) / std, -5.0, 5.0)

    def error(self, state: RNDState, predictor: dict, obs: jax.Array) -> jax.Array:
        """The squared prediction error `[...]` of observations `[..., *obs_shape]`."""
        target_net, predictor_net = self._networks(state.obs_moments.mean.shape)
        x = self.normalise(state, obs)
        target = jax.lax.stop_gradient(target_net.apply(state.target, x))
        return jnp.sum(jnp.square(predictor_net.apply(predictor, x) - target), axis=-1)

    def novelty(self, state: RNDState, obs: jax.Array) -> jax.Array:
        """The normalised novelty `[...]`: the error over the intrinsic returns' std; 0 until
        that std exists (the first iteration the predictor trains in)."""
        known = state.return_moments.count > 1
        scale = jnp.maximum(jnp.where(known, state.return_moments.std, 1.0), 1e-8)
        return jnp.where(known, self.error(state, state.predictor, obs) / scale, 0.0)

    # ------------------------------------------------------------------------ seam

    def observe(self, state: RNDState, steps: dict) -> RNDState:
        obs = steps["obs"]  # [N, T, *obs_shape]
        flat = obs.reshape((-1, *state.obs_moments.mean.shape)).astype(jnp.float32)
        state = state.replace(obs_moments=state.obs_moments.add(flat))
        errors = self.error(state, state.predictor, obs)  # [N, T]
        discount = self.settings.return_discount

        def filtered(carry, error_t):
            carry = discount * carry + error_t
            return carry, carry

        last, returns = jax.lax.scan(filtered, state.return_filter, errors.T)  # [T, N]
        moments = state.return_moments.add(
            returns.reshape(-1), window=self.settings.return_std_window
        )
        # Until the predictor has trained, its errors say nothing of novelty (and are orders
        # of magnitude above its later ones): the filter and its std start with training.
        trained = state.updates > 0
        return state.replace(
            return_filter=jnp.where(trained, last, state.return_filter),
            return_moments=jax.tree.map(
                lambda new, old: jnp.where(trained, new, old), moments, state.return_moments
            ),
        )

    def intrinsic(self, state: RNDState, batch: dict) -> jax.Array:
        return next_step_novelty(self.novelty(state, batch["obs"]), batch)

    def update(self, state: RNDState, batch: dict, key: jax.Array) -> tuple[RNDState, dict]:
        obs = batch["obs"]
        keep = jax.random.uniform(key, obs.shape[:2]) < self.settings.update_proportion
        keep = keep.astype(jnp.float32)

        def loss_fn(predictor):
            errors = self.error(state, predictor, obs)
            return jnp.sum(errors * keep) / jnp.maximum(jnp.sum(keep), 1.0)

        loss, grads = jax.value_and_grad(loss_fn)(state.predictor)
        updates, opt_state = self.optimizer.update(grads, state.opt_state, state.predictor)
        predictor = optax.apply_updates(state.predictor, updates)
        state = state.replace(predictor=predictor, opt_state=opt_state, updates=state.updates + 1)
        return state, {"rnd/loss": loss}
