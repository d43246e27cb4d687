"""MuZero's three functions as one flax module, with parameters grouped by role.

- representation h: observation -> latent            (param group ``encoder``)
- dynamics g:       latent, action -> next latent    (``dynamics``), reward (``reward``),
                    termination logit (``terminal``)
- prediction f:     latent -> policy logits (``policy``), value logits (``value``)

The top-level parameter dict therefore has one key per role, so a run can start from parts of
another (`MuZero.parts` groups them as Walker et al. 2023 do; see `jaxmb.transfer`). Values and
rewards are categorical over a `Support` (see distributions.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

_ACTIVATIONS = {"relu": nn.relu, "elu": nn.elu, "gelu": nn.gelu, "silu": nn.silu}


def normalize_latent(latent: jax.Array, mode: str) -> jax.Array:
    """Latent normalisation. "minmax" rescales each latent vector to [0, 1] as MuZero does."""
    if mode == "minmax":
        low = jnp.min(latent, axis=-1, keepdims=True)
        high = jnp.max(latent, axis=-1, keepdims=True)
        return (latent - low) / jnp.maximum(high - low, 1e-5)
    if mode == "layernorm":
        mean = jnp.mean(latent, axis=-1, keepdims=True)
        var = jnp.var(latent, axis=-1, keepdims=True)
        return (latent - mean) * jax.lax.rsqrt(var + 1e-5)
    return latent


class MLP(nn.Module):
    """Dense layers, each followed by an optional LayerNorm and the activation."""

    hidden_sizes: Sequence[int]
    activation: str = "relu"
    layer_norm: bool = True

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for size in self.hidden_sizes:
            x = nn.Dense(size)(x)
            if self.layer_norm:
                x = nn.LayerNorm()(x)
            x = _ACTIVATIONS[self.activation](x)
        return x


class ResidualBlock(nn.Module):
    channels: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        y = nn.relu(nn.LayerNorm()(x))
        y = nn.Conv(self.channels, (3, 3))(y)
        y = nn.relu(nn.LayerNorm()(y))
        y = nn.Conv(self.channels, (3, 3))(y)
        return x + y


class ResNetTorso(nn.Module):
    """A small residual conv torso for image observations `[..., H, W, C]`.

    One strided conv halves the resolution, residual blocks follow, and a dense layer maps the
    flattened features to the latent size.
    """

    channels: int
    num_blocks: int
    latent_dim: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        batch_shape = x.shape[:-3]
        x = x.reshape((-1, *x.shape[-3:]))
        if jnp.issubdtype(x.dtype, jnp.integer):
            x = x.astype(jnp.float32) / 255.0
        x = nn.Conv(self.channels, (3, 3), strides=(2, 2))(x)
        for _ in range(self.num_blocks):
            x = ResidualBlock(self.channels)(x)
        x = nn.relu(nn.LayerNorm()(x))
        x = x.reshape((x.shape[0], -1))
        x = nn.Dense(self.latent_dim)(x)
        return x.reshape((*batch_shape, self.latent_dim))


class Encoder(nn.Module):
    """Representation function: observation `[..., *obs_shape]` -> latent `[..., latent_dim]`."""

    torso: str
    hidden_sizes: Sequence[int]
    latent_dim: int
    activation: str
    layer_norm: bool
    conv_channels: int
    num_res_blocks: int
    obs_ndim: int

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        if self.torso == "resnet":
            return ResNetTorso(self.conv_channels, self.num_res_blocks, self.latent_dim)(obs)
        batch_shape = obs.shape[: obs.ndim - self.obs_ndim]
        x = obs.reshape((*batch_shape, -1)).astype(jnp.float32)
        x = MLP(self.hidden_sizes, self.activation, self.layer_norm)(x)
        return nn.Dense(self.latent_dim)(x)


def encoder_of(module: nn.Module) -> Encoder:
    """The `Encoder` of a network module that has the encoder's fields (`torso`,
    `hidden_sizes`, `latent_dim`, `activation`, `layer_norm`, `conv_channels`,
    `num_res_blocks`, `obs_ndim`): MuZero's and the Q-learning baseline's share it."""
    return Encoder(
        module.torso,
        module.hidden_sizes,
        module.latent_dim,
        module.activation,
        module.layer_norm,
        module.conv_channels,
        module.num_res_blocks,
        module.obs_ndim,
    )


def encoder_settings(network_config, obs_shape: tuple[int, ...]) -> dict:
    """The encoder fields of a network module from `agent.network`, for observations of
    `obs_shape` (`torso: auto` picks the conv torso for images)."""
    torso = network_config.torso
    if torso == "auto":
        torso = "resnet" if len(obs_shape) == 3 else "mlp"
    return dict(
        obs_ndim=len(obs_shape),
        torso=torso,
        hidden_sizes=network_config.hidden_sizes,
        latent_dim=network_config.latent_dim,
        activation=network_config.activation,
        layer_norm=network_config.layer_norm,
        latent_norm=network_config.latent_norm,
        conv_channels=network_config.conv_channels,
        num_res_blocks=network_config.num_res_blocks,
    )


class Head(nn.Module):
    """An MLP followed by a linear output layer (zero-initialised when `zero_init`)."""

    hidden_sizes: Sequence[int]
    num_outputs: int
    activation: str
    layer_norm: bool
    zero_init: bool = False

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = MLP(self.hidden_sizes, self.activation, self.layer_norm)(x)
        init = nn.initializers.zeros if self.zero_init else nn.initializers.lecun_normal()
        return nn.Dense(self.num_outputs, kernel_init=init)(x)


class MuZeroNetwork(nn.Module):
    """Representation, dynamics and prediction, with submodules named by parameter group.

    Methods take any leading batch shape. `__call__` touches every submodule so that `init`
    creates all parameters.
    """

    num_actions: int
    obs_ndim: int
    torso: str = "mlp"
    hidden_sizes: Sequence[int] = (128, 128)
    latent_dim: int = 128
    dynamics_hidden_sizes: Sequence[int] = (128, 128)
    head_hidden_sizes: Sequence[int] = (128,)
    activation: str = "relu"
    layer_norm: bool = True
    latent_norm: str = "minmax"
    conv_channels: int = 32
    num_res_blocks: int = 2
    value_atoms: int = 601
    reward_atoms: int = 601

    def setup(self) -> None:
        self.encoder = encoder_of(self)
        self.dynamics = Head(
            self.dynamics_hidden_sizes, self.latent_dim, self.activation, self.layer_norm
        )
        self.reward = Head(
            self.head_hidden_sizes, self.reward_atoms, self.activation, self.layer_norm, True
        )
        self.terminal = Head(self.head_hidden_sizes, 1, self.activation, self.layer_norm)
        self.policy = Head(
            self.head_hidden_sizes, self.num_actions, self.activation, self.layer_norm, True
        )
        self.value = Head(
            self.head_hidden_sizes, self.value_atoms, self.activation, self.layer_norm, True
        )

    def represent(self, obs: jax.Array) -> jax.Array:
        """`[..., *obs_shape]` -> normalised latent `[..., latent_dim]`."""
        return normalize_latent(self.encoder(obs), self.latent_norm)

    def dynamics_step(self, latent: jax.Array, action: jax.Array) -> tuple[jax.Array, jax.Array]:
        """The dynamics trunk: `[..., D]`, `[...]` -> next latent `[..., D]` and the
        transition features `[..., D + A]` that the reward and termination heads read."""
        action_one_hot = jax.nn.one_hot(action, self.num_actions, dtype=latent.dtype)
        x = jnp.concatenate([latent, action_one_hot], axis=-1)
        return normalize_latent(self.dynamics(x), self.latent_norm), x

    def transition_heads(self, features: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Transition features -> reward logits `[..., reward_atoms]`, termination logit `[...]`.

        Kept apart from `dynamics_step` so a K-step unroll can run the heads once on all K
        transitions (larger matmuls) instead of once per step.
        """
        return self.reward(features), self.terminal(features)[..., 0]

    def recurrent(
        self, latent: jax.Array, action: jax.Array
    ) -> tuple[jax.Array, jax.Array, jax.Array]:
        """One model step.

        Args:
          latent: `[..., latent_dim]`.
          action: `[...]` integer actions.

        Returns:
          next latent `[..., latent_dim]`, reward logits `[..., reward_atoms]` and the
          termination logit `[...]` of the transition.
        """
        next_latent, features = self.dynamics_step(latent, action)
        reward_logits, terminal_logit = self.transition_heads(features)
        return next_latent, reward_logits, terminal_logit

    def predict(self, latent: jax.Array) -> tuple[jax.Array, jax.Array]:
        """`[..., latent_dim]` -> policy logits `[..., A]`, value logits `[..., value_atoms]`."""
        return self.policy(latent), self.value(latent)

    def __call__(self, obs: jax.Array, action: jax.Array):
        latent = self.represent(obs)
        next_latent, reward_logits, terminal_logit = self.recurrent(latent, action)
        return self.predict(next_latent), reward_logits, terminal_logit
