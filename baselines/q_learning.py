"""The controlled model-free baseline: MuZero without a model and without search.

Anand et al. (2022) ask what MuZero's model and search add over a model-free learner that shares
everything else. This agent is that learner: n-step distributional Q-learning with

- MuZero's encoder (`jaxmb.networks.Encoder`, the same latent normalisation as
  `MuZeroNetwork.represent`, the same `agent.network` sizes) and a Q head of MuZero's head
  sizes giving categorical logits `[..., A, atoms]` on the value support (h-transform, two-hot
  targets: `jaxmb.distributions.Support`);
- MuZero's replay windows (`window = K + n + 1`), trained at positions 0..K of each window,
  so a batch trains as many positions as MuZero's K-step unroll;
- MuZero's n-step value targets (`jaxmb.targets.nstep_value_targets`: no bootstrap after a
  termination, the stored `final_value` after a truncation), bootstrapped at t+n with the
  target network; and MuZero's optimiser and target-network schedule (`jaxmb.agents.common`).

What differs is what a model-free learner cannot have: the targets are Q(s_t, a_t) of the
taken action instead of V(s_t), and acting is epsilon-greedy or Boltzmann over Q instead of a
search (`agent.q_learning`).

**Bootstrap.** Double DQN (van Hasselt et al. 2016) by default: the online network picks the
greedy legal action at obs[t+n] (legal actions are in the window's `action_mask`), the target
network values it; `agent.q_learning.double_q=false` takes the target network's own max.
The truncation bootstrap `bootstrap_value` is the online network's max over *all* actions: the
loop does not pass legal actions there (CartPole's are all legal anyway).

**Masks.** Position k of a window is the *observed* obs[k]; once an episode ends inside the
window it belongs to the next episode. MuZero trains its model state there (absorbing after a
termination: value 0), but Q-learning has no model state to train: positions after an episode
end are not trained (`unroll_masks(...)["same_episode"]`); their reported value target is 0
after a termination, as MuZero's is. Two-player games are refused (their signed returns
would need the sign flip MuZero applies with a negated discount).

A batch (`dict`, leaves `[B, L, ...]`) holds the loop's record fields and `weight [B]`; the
agent stores no fields of its own (`record_spec() == {}`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import flax.linen as nn
import flax.struct
import gymnasium
import jax
import jax.numpy as jnp
import optax

from jaxmb import losses
from jaxmb.agents import common
from jaxmb.config import AgentConfig, ConfigError
from jaxmb.distributions import Support
from jaxmb.losses.q_value import taken_action_logits
from jaxmb.networks import Head, encoder_of, encoder_settings, normalize_latent
from jaxmb.targets import nstep_value_targets, unroll_masks

#: The value of an illegal action's logit or Q: finite, so an all-illegal row stays NaN-free.
_ILLEGAL = -1e9


@flax.struct.dataclass
class QLearningState:
    params: dict  # flax variables {"params": {"encoder": ..., "q": ...}}
    target_params: dict  # same structure, copied every `target_update_period` updates
    opt_state: optax.OptState
    num_updates: jax.Array  # [] int32


class QNetwork(nn.Module):
    """MuZero's encoder and a Q head, with parameter groups `encoder` and `q`.

    The encoder is built exactly as `MuZeroNetwork`'s (same module, same group name), so an
    encoder transfers between the two agents.
    """

    num_actions: int
    obs_ndim: int
    torso: str = "mlp"
    hidden_sizes: Sequence[int] = (64, 64)
    latent_dim: int = 64
    head_hidden_sizes: Sequence[int] = (64,)
    activation: str = "relu"
    layer_norm: bool = True
    latent_norm: str = "minmax"
    conv_channels: int = 32
    num_res_blocks: int = 2
    value_atoms: int = 51

    def setup(self) -> None:
        self.encoder = encoder_of(self)
        # Zero-initialised output, as MuZero's value head: every Q starts at the support's
        # centre.
        self.q = Head(
            self.head_hidden_sizes,
            self.num_actions * self.value_atoms,
            self.activation,
            self.layer_norm,
            True,
        )

    def represent(self, obs: jax.Array) -> jax.Array:
        """`[..., *obs_shape]` -> normalised latent `[..., latent_dim]` (MuZero's `represent`)."""
        return normalize_latent(self.encoder(obs), self.latent_norm)

    def q_logits(self, latent: jax.Array) -> jax.Array:
        """`[..., latent_dim]` -> Q logits `[..., A, value_atoms]`."""
        logits = self.q(latent)
        return logits.reshape((*logits.shape[:-1], self.num_actions, self.value_atoms))

    def __call__(self, obs: jax.Array) -> jax.Array:
        return self.q_logits(self.represent(obs))


def build_network(config: AgentConfig, obs_shape: tuple[int, ...], num_actions: int) -> QNetwork:
    """The encoder and Q head of `agent.network` (the sizes MuZero's networks read)."""
    net = config.network
    return QNetwork(
        num_actions=num_actions,
        **encoder_settings(net, obs_shape),
        head_hidden_sizes=net.head_hidden_sizes,
        value_atoms=net.value_support.num_atoms,
    )


def greedy_values(
    select_q: jax.Array, value_q: jax.Array, legal: jax.Array | None = None
) -> jax.Array:
    """`value_q` at the legal action that maximises `select_q`: `[..., A]` -> `[...]`.

    With `select_q` the online network's and `value_q` the target network's Q-values this is
    Double DQN's bootstrap; with the same Q twice, the max over legal actions.
    """
    if legal is not None:
        select_q = jnp.where(legal, select_q, _ILLEGAL)
    action = jnp.argmax(select_q, axis=-1)
    return jnp.take_along_axis(value_q, action[..., None], axis=-1)[..., 0]


def q_targets(
    batch: dict,
    bootstrap: jax.Array,
    support: Support,
    *,
    discount: float | jax.Array,
    unroll_steps: int,
    td_steps: int,
) -> dict:
    """The n-step Q targets of positions 0..K of a batch of windows, and their mask.

    Args:
      batch: replayed windows `[B, L, ...]` (`reward`, `terminated`, `truncated`,
        `final_value`).
      bootstrap: `[B, K+1]` the value of obs[n .. n+K] that position k bootstraps from.
      support: the value support of the two-hot targets.
      discount, unroll_steps, td_steps: gamma, K, n.

    Returns:
      `value` `[B, K+1]` the n-step returns (0 after a termination in the window), `q_probs`
      `[B, K+1, atoms]` their two-hot projections, `q_mask` `[B, K+1]` positions in the
      episode of position 0.
    """
    positions = unroll_steps + 1
    values = jnp.zeros(batch["reward"].shape, jnp.float32)
    values = values.at[:, td_steps : td_steps + positions].set(bootstrap)
    value = jax.vmap(
        lambda r, te, tr, v, fv: nstep_value_targets(
            r, te, tr, v, fv, discount=discount, td_steps=td_steps, num_positions=positions
        )
    )(batch["reward"], batch["terminated"], batch["truncated"], values, batch["final_value"])
    masks = jax.vmap(lambda te, tr: unroll_masks(te, tr, positions))(
        batch["terminated"], batch["truncated"]
    )
    value = jnp.where(masks["absorbing"] > 0, 0.0, value)
    return {
        "value": value,
        "q_probs": support.scalar_to_probs(value),
        "q_mask": masks["same_episode"],
    }


class QLearning:
    """n-step distributional (Double) Q-learning with MuZero's encoder, replay and targets."""

    kind: ClassVar[str] = "q_learning"
    #: Transfer parts -> parameter groups; `encoder` is MuZero's part of the same name.
    parts: ClassVar[dict[str, tuple[str, ...]]] = {"encoder": ("encoder",), "q_head": ("q",)}

    @classmethod
    def from_config(cls, config, env, env_params=None) -> QLearning:
        """The agent for `env`, with the checks that name the config key to change."""
        if not isinstance(env.action_space, gymnasium.spaces.Discrete):
            raise ConfigError(
                f"q_learning needs discrete actions and {config.env.id} has {env.action_space}; "
                "set env.discretize.mode to grid or codebook",
                "env.discretize.mode",
            )
        if getattr(env, "num_players", 1) != 1:
            raise ConfigError(
                f"q_learning is single-player and {config.env.id} has "
                f"{env.num_players} players (its returns would need MuZero's sign flip); "
                "use agent.kind=muzero",
                "agent.kind",
            )
        return cls(config.agent, env.observation_space, env.action_space)

    def __init__(
        self,
        config: AgentConfig,
        observation_space: gymnasium.spaces.Space,
        action_space: gymnasium.spaces.Space,
    ):
        if not isinstance(action_space, gymnasium.spaces.Discrete):
            raise TypeError(f"QLearning needs a Discrete action space, got {action_space}")
        self.config = config
        self.observation_space = observation_space
        self.num_actions = int(action_space.n)
        self.window = config.loss.unroll_steps + config.loss.td_steps + 1
        self.loss_weights = config.loss.weights
        self.guarded_metrics = (
            *(f"loss/{name}" for name in losses.active(self.loss_weights)),
            "grad_norm",
        )
        self.network = build_network(config, tuple(observation_space.shape), self.num_actions)
        self.value_support = common.support(config.network.value_support)
        self.optimizer = common.build_optimizer(config.optim)

    # ----------------------------------------------------------------------------- state

    def record_spec(self) -> dict[str, jax.ShapeDtypeStruct]:
        """No fields beyond the loop's: targets bootstrap from the target network."""
        return {}

    def init(self, key: jax.Array) -> QLearningState:
        obs = jnp.zeros((1, *self.observation_space.shape), self.observation_space.dtype)
        params = self.network.init(key, obs)
        return QLearningState(
            params=params,
            target_params=params,
            opt_state=self.optimizer.init(params),
            num_updates=jnp.zeros((), jnp.int32),
        )

    # ----------------------------------------------------------------------------- inference

    def q_values(self, params, obs: jax.Array) -> jax.Array:
        """Q-values `[..., A]` of observations `[..., *obs_shape]`."""
        return self.value_support.logits_to_scalar(self.network.apply(params, obs))

    def represent(self, params, obs: jax.Array) -> jax.Array:
        """Latents `[..., latent_dim]` of observations (the encoder's, as MuZero's `represent`;
        read by latent-based reward transforms)."""
        return self.network.apply(params, obs, method=QNetwork.represent)

    def bootstrap_value(self, state: QLearningState, obs: jax.Array) -> jax.Array:
        """The truncation bootstrap `[B]`: the online network's max over all actions."""
        return jnp.max(self.q_values(state.params, obs), axis=-1)

    def epsilon(self, num_updates: jax.Array) -> jax.Array:
        """Epsilon after `num_updates` SGD updates: linear from `epsilon_start` to `epsilon_end`."""
        cfg = self.config.q_learning
        if cfg.epsilon_decay_updates == 0:
            return jnp.asarray(cfg.epsilon_end, jnp.float32)
        fraction = jnp.clip(num_updates / cfg.epsilon_decay_updates, 0.0, 1.0)
        return cfg.epsilon_start + fraction * (cfg.epsilon_end - cfg.epsilon_start)

    def act(
        self,
        state: QLearningState,
        obs: jax.Array,
        key: jax.Array,
        *,
        training: bool = True,
        action_mask: jax.Array | None = None,
        env_state=None,
    ) -> tuple[jax.Array, dict]:
        """Chooses actions for a batch of observations.

        Args:
          state: agent state.
          obs: `[B, *obs_shape]`.
          key: PRNG key.
          training: explore (`agent.q_learning.exploration`) or act greedily. Static.
          action_mask: `[B, A]` bool, True where legal; an illegal action is never chosen.
          env_state: unused (no search).

        Returns:
          actions `[B]` and a dict with `value` `[B]` (the max legal Q) and, when exploring
          epsilon-greedily, `epsilon` `[B]`.
        """
        q = self.q_values(state.params, obs)
        legal = jnp.ones(q.shape, bool) if action_mask is None else action_mask
        masked_q = jnp.where(legal, q, _ILLEGAL)
        greedy = jnp.argmax(masked_q, axis=-1)
        info = {"value": jnp.max(masked_q, axis=-1)}
        if not training:
            return greedy, info
        cfg = self.config.q_learning
        if cfg.exploration == "boltzmann":
            logits = jnp.where(legal, q / cfg.temperature, _ILLEGAL)
            return jax.random.categorical(key, logits), info
        explore_key, random_key = jax.random.split(key)
        epsilon = self.epsilon(state.num_updates)
        random_action = jax.random.categorical(random_key, jnp.where(legal, 0.0, _ILLEGAL))
        explore = jax.random.uniform(explore_key, greedy.shape) < epsilon
        info["epsilon"] = jnp.full(greedy.shape, epsilon, jnp.float32)
        return jnp.where(explore, random_action, greedy), info

    def acting_metrics(self, infos: dict) -> dict[str, jax.Array]:
        """`q/epsilon`: the iteration's mean epsilon (epsilon-greedy only)."""
        if "epsilon" not in infos:
            return {}
        return {"q/epsilon": jnp.mean(infos["epsilon"])}

    # ----------------------------------------------------------------------------- learning

    def compute_targets(self, params, target_params, batch: dict) -> dict:
        """The n-step targets of positions 0..K (`q_targets`), bootstrapped from the target
        network at obs[n .. n+K]; the online `params` pick the action with `double_q`."""
        cfg = self.config.loss
        positions = cfg.unroll_steps + 1
        boot = slice(cfg.td_steps, cfg.td_steps + positions)
        obs = batch["obs"][:, boot]
        target_q = self.q_values(target_params, obs)
        select_q = self.q_values(params, obs) if self.config.q_learning.double_q else target_q
        bootstrap = greedy_values(select_q, target_q, batch["action_mask"][:, boot])
        return q_targets(
            batch,
            bootstrap,
            self.value_support,
            discount=cfg.discount,
            unroll_steps=cfg.unroll_steps,
            td_steps=cfg.td_steps,
        )

    def unroll(self, params, obs: jax.Array) -> dict:
        """Latents `[B, K+1, D]` and Q logits `[B, K+1, A, atoms]` of observations
        `[B, K+1, ...]` (what loss terms read as `unroll.*`; no model: the observed obs)."""
        latents = self.network.apply(params, obs, method=QNetwork.represent)
        q_logits = self.network.apply(params, latents, method=QNetwork.q_logits)
        return {"latents": latents, "q_logits": q_logits}

    def loss(self, params, targets: dict, batch: dict) -> tuple[jax.Array, dict]:
        positions = self.config.loss.unroll_steps + 1
        out = self.unroll(params, batch["obs"][:, :positions])
        total, parts = losses.total_loss(
            params, batch, out, targets, self.loss_weights, batch["weight"]
        )
        taken = taken_action_logits(out["q_logits"][:, :1], batch["action"][:, :1])[:, 0]
        predicted = self.value_support.logits_to_scalar(taken)
        return total, {"parts": parts, "value_error": jnp.abs(predicted - targets["value"][:, 0])}

    def update(
        self, state: QLearningState, batch: dict, key: jax.Array
    ) -> tuple[QLearningState, dict]:
        """One SGD step on a batch of windows.

        Returns the new state and metrics: `loss`, `loss/<term>` for each active term,
        `grad_norm` and `priority` `[B]` (|target - predicted Q of the taken action| at
        position 0, for prioritized replay).
        """
        del key  # targets and loss are deterministic
        targets = self.compute_targets(state.params, state.target_params, batch)
        targets = jax.lax.stop_gradient(targets)
        new, metrics = common.loss_step(
            self.optimizer, self.config.optim, self.loss, state, targets, batch
        )
        return QLearningState(*new), metrics
