"""Self-supervised loss terms on the world model: reconstruction, SPR and contrastive.

Anand et al. (2022) add one of three kinds of self-supervision to MuZero's model and find that
each improves generalisation to unseen procedurally generated levels. These are jaxmb's
readings of the three kinds; the forms, heads and defaults below are ours, not the paper's
verified settings (its appendix could not be read here).

Notation: a replayed window starts at time t; `z_k` is the model's latent after k unrolled
steps (`z_0` the encoder's latent of `o_t`, `z_k = g(z_{k-1}, a_{t+k-1})`), `[B, K+1, D]`.
Positions whose observation belongs to another episode than `o_t` are masked
(`targets.policy_mask`); each term averages over its positions counting masked ones as 0, as
MuZero's own terms do.

- **reconstruction** (`agent.loss.weights.reconstruction`): a decoder maps `z_k` to `o_{t+k}`,
  k = 0..K. Images (`[H, W, C]`) go through a deconvolution decoder (dense to a half-resolution
  grid of `agent.ssl.decoder_channels`, then a sub-pixel convolution, the equivalent of a
  stride-2 transposed convolution, to C channels, cropped to H x W); vectors through an MLP.
  The loss (`agent.ssl.reconstruction_loss`) is the squared error (`l2`), or the per-element
  binary cross-entropy of the decoder's logits with the observation scaled to [0, 1]
  (`cross_entropy`; integer observations are divided by 255, as the encoder does), each
  averaged over the observation's elements.
- **spr** (Schwarzer et al. 2021): `y_k = q(p(z_k))` (projection p, prediction q: MLP heads,
  `agent.ssl.head_hidden_sizes` then `projection_dim`) against `p'(h'(o_{t+k}))`, the target
  encoder h' and target projection p', k = 1..K. The loss is `2 - 2 cos(y_k, p'(h'(o_{t+k})))`:
  0 when the two point the same way.
- **contrastive** (InfoNCE): `u_k = normalise(p(z_k))` must pick out `v_k =
  normalise(p'(h'(o_{t+k})))` among the target embeddings of other observations:
  `-log softmax_j(u_k . v_j / temperature)` at the true one, k = 1..K. The candidates
  (`agent.ssl.negatives`) are the other windows' observations at the same step (`batch`), or
  those and every other unrolled step of every window, the window's own included
  (`batch_and_time`). Masked positions are never candidates.

The target side (h', p') is an exponential moving average of the online encoder and projection
(`agent.ssl.target=ema`, decay `agent.ssl.ema_decay` per SGD update) or the spine's target
network (`target_network`). It is computed as a target, so no gradient reaches it. A weight of
0 removes a term and its parameters from the program; weights are sweepable, so the kinds can
train in one compiled program (give each a non-zero weight in the base config and sweep them
to 0 per member: every member then carries all heads, and each trains only its own).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from jaxmb.losses import TermContext, TermSetup, register
from jaxmb.networks import MLP, Head

_NEEDS = {"unroll.latents", "targets.policy_mask"}


def _masked_mean(loss: jax.Array, mask: jax.Array) -> jax.Array:
    """`[B, P]` -> `[B]`: the mean over positions, masked ones counted as 0."""
    return jnp.sum(loss * mask, axis=-1) / loss.shape[-1]


def normalise(x: jax.Array) -> jax.Array:
    """Unit vectors along the last axis."""
    return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-6)


def observation_target(obs: jax.Array) -> jax.Array:
    """What a decoder reconstructs: integer observations divided by 255 (as the encoder reads
    them), float ones as they are."""
    if jnp.issubdtype(obs.dtype, jnp.integer):
        return obs.astype(jnp.float32) / 255.0
    return obs.astype(jnp.float32)


def reconstruction_error(
    prediction: jax.Array, obs: jax.Array, kind: str, obs_ndim: int
) -> jax.Array:
    """Per-position error `[...]` of the decoder's output `[..., *obs_shape]` against the
    observations: squared error (`l2`) or binary cross-entropy of logits (`cross_entropy`),
    averaged over the observation's `obs_ndim` trailing axes."""
    target = observation_target(obs)
    if kind == "l2":
        err = jnp.square(prediction - target)
    elif kind == "cross_entropy":
        err = optax.sigmoid_binary_cross_entropy(prediction, jnp.clip(target, 0.0, 1.0))
    else:
        raise ValueError(f"unknown reconstruction loss {kind!r}")
    return jnp.mean(err, axis=tuple(range(-obs_ndim, 0)))


def spr_error(predicted: jax.Array, target: jax.Array) -> jax.Array:
    """`2 - 2 cos(predicted, target)` along the last axis: in [0, 4], 0 when aligned."""
    return 2.0 - 2.0 * jnp.sum(normalise(predicted) * normalise(target), axis=-1)


def info_nce(
    queries: jax.Array, keys: jax.Array, mask: jax.Array, temperature, negatives: str
) -> jax.Array:
    """InfoNCE of queries `[B, K, E]` against keys `[B, K, E]`: query (i, k)'s positive is key
    (i, k); the candidates are the valid keys (`mask [B, K]`) at step k (`batch`) or at every
    step (`batch_and_time`). Returns `-log p(positive)` `[B, K]` (an invalid query's value is
    finite and meant to be masked)."""
    batch, steps, _ = queries.shape
    q, k = normalise(queries), normalise(keys)
    valid = mask > 0
    if negatives == "batch":
        logits = jnp.einsum("ike,jke->kij", q, k) / temperature  # [K, B, B]
        logits = jnp.where(valid.T[:, None, :], logits, -1e9)
        log_p = jax.nn.log_softmax(logits, axis=-1)
        return -jnp.diagonal(log_p, axis1=1, axis2=2).T
    if negatives == "batch_and_time":
        flat_q, flat_k = q.reshape(batch * steps, -1), k.reshape(batch * steps, -1)
        logits = flat_q @ flat_k.T / temperature  # [BK, BK]
        logits = jnp.where(valid.reshape(1, -1), logits, -1e9)
        log_p = jax.nn.log_softmax(logits, axis=-1)
        return -jnp.diagonal(log_p).reshape(batch, steps)
    raise ValueError(f"unknown negatives {negatives!r}")


class Decoder(nn.Module):
    """Latent `[..., D]` -> observation `[..., *obs_shape]` (values, or logits for the
    cross-entropy loss)."""

    obs_shape: tuple[int, ...]
    hidden_sizes: Sequence[int]
    channels: int
    kind: str = "auto"  # deconv, mlp, or auto: deconv for images

    @nn.compact
    def __call__(self, latent: jax.Array) -> jax.Array:
        batch_shape = latent.shape[:-1]
        kind = (
            self.kind if self.kind != "auto" else ("deconv" if len(self.obs_shape) == 3 else "mlp")
        )
        if kind == "mlp" or len(self.obs_shape) != 3:
            x = MLP(self.hidden_sizes, "relu", True)(latent)
            x = nn.Dense(math.prod(self.obs_shape))(x)
            return x.reshape((*batch_shape, *self.obs_shape))
        height, width, channels = self.obs_shape
        half_h, half_w = -(-height // 2), -(-width // 2)
        x = nn.Dense(half_h * half_w * self.channels)(latent.reshape((-1, latent.shape[-1])))
        x = nn.relu(x.reshape((-1, half_h, half_w, self.channels)))
        # Up to full resolution by a sub-pixel convolution (Shi et al. 2016: equivalent to a
        # stride-2 transposed convolution): a 3x3 convolution to 2 x 2 x C channels, each
        # pixel's 2 x 2 block then laid out in space.
        x = nn.Conv(4 * channels, (3, 3))(x)
        x = x.reshape((-1, half_h, half_w, 2, 2, channels)).transpose(0, 1, 3, 2, 4, 5)
        x = x.reshape((-1, 2 * half_h, 2 * half_w, channels))[:, :height, :width, :]
        return x.reshape((*batch_shape, height, width, channels))


def _head(ctx: TermContext) -> Head:
    cfg = ctx.agent.ssl
    return Head(tuple(cfg.head_hidden_sizes), cfg.projection_dim, "relu", True)


def _init_head(head: Head, key: jax.Array, width: int):
    return head.init(key, jnp.zeros((1, width)))["params"]


def _target_projection(name: str, ctx: TermContext, projection: Head):
    """`(target params, batch) -> {name/target: p'(h'(o_{t+1..t+K}))}` `[B, K, E]`."""
    steps = ctx.agent.loss.unroll_steps

    def targets(target_params, batch: dict) -> dict:
        latents = ctx.represent(target_params, batch["obs"][:, 1 : steps + 1])
        own = {"params": target_params["terms"][name]["projection"]}
        return {f"{name}/target": projection.apply(own, latents)}

    return targets


def _decoder(ctx: TermContext) -> Decoder:
    cfg = ctx.agent.ssl
    return Decoder(
        tuple(ctx.obs_shape), tuple(cfg.decoder_hidden_sizes), cfg.decoder_channels, cfg.decoder
    )


@register("reconstruction", needs=_NEEDS, build=True)
def reconstruction(ctx: TermContext) -> TermSetup:
    """Decode each unrolled latent z_k into the observation o_{t+k} (k = 0..K)."""
    cfg = ctx.agent.ssl
    decoder = _decoder(ctx)
    steps = ctx.agent.loss.unroll_steps

    def init(key: jax.Array):
        return _init_head(decoder, key, ctx.latent_dim)

    def loss(params, batch: dict, unroll: dict, targets: dict) -> jax.Array:
        prediction = decoder.apply({"params": params["terms"]["reconstruction"]}, unroll["latents"])
        err = reconstruction_error(
            prediction, batch["obs"][:, : steps + 1], cfg.reconstruction_loss, len(ctx.obs_shape)
        )
        return _masked_mean(err, targets["policy_mask"])

    return TermSetup(loss=loss, init=init)


def decode(ctx: TermContext, params, latents: jax.Array) -> jax.Array:
    """The reconstruction decoder's picture of latents `[..., D]` (sigmoid of the logits with
    the cross-entropy loss), for plots."""
    cfg = ctx.agent.ssl
    decoder = _decoder(ctx)
    out = decoder.apply({"params": params["terms"]["reconstruction"]}, latents)
    return jax.nn.sigmoid(out) if cfg.reconstruction_loss == "cross_entropy" else out


@register("spr", needs=_NEEDS, build=True)
def spr(ctx: TermContext) -> TermSetup:
    """SPR: predict the target encoder's projection of o_{t+k} from z_k (k = 1..K)."""
    projection, prediction = _head(ctx), _head(ctx)

    def init(key: jax.Array):
        k1, k2 = jax.random.split(key)
        return {
            "projection": _init_head(projection, k1, ctx.latent_dim),
            "prediction": _init_head(prediction, k2, ctx.agent.ssl.projection_dim),
        }

    def loss(params, batch: dict, unroll: dict, targets: dict) -> jax.Array:
        own = params["terms"]["spr"]
        projected = projection.apply({"params": own["projection"]}, unroll["latents"][:, 1:])
        predicted = prediction.apply({"params": own["prediction"]}, projected)
        err = spr_error(predicted, targets["spr/target"])
        return _masked_mean(err, targets["policy_mask"][:, 1:])

    return TermSetup(loss=loss, init=init, targets=_target_projection("spr", ctx, projection))


@register("contrastive", needs=_NEEDS, build=True)
def contrastive(ctx: TermContext) -> TermSetup:
    """InfoNCE: z_k's projection must pick out o_{t+k}'s target embedding (k = 1..K)."""
    cfg = ctx.agent.ssl
    projection = _head(ctx)

    def init(key: jax.Array):
        return {"projection": _init_head(projection, key, ctx.latent_dim)}

    def loss(params, batch: dict, unroll: dict, targets: dict) -> jax.Array:
        own = params["terms"]["contrastive"]
        queries = projection.apply({"params": own["projection"]}, unroll["latents"][:, 1:])
        mask = targets["policy_mask"][:, 1:]
        nll = info_nce(queries, targets["contrastive/target"], mask, cfg.temperature, cfg.negatives)
        return _masked_mean(nll, mask)

    return TermSetup(
        loss=loss, init=init, targets=_target_projection("contrastive", ctx, projection)
    )
