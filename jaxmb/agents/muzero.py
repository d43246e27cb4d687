"""The MuZero agent: pure functions over an explicit state pytree.

    agent = MuZero(config.agent, env.observation_space, env.action_space)
    state = agent.init(key)
    action, info = agent.act(state, obs, key, training=True)
    state, metrics = agent.update(state, batch, key)

`act` searches with the learned model (mctx) or, with search switched off, samples the policy
network's prior. `update` computes targets for a batch of replayed windows (n-step returns
bootstrapped with the target network or the stored values; optionally MuZero Reanalyse on a
fraction of the batch), unrolls the model K steps and applies one optax step.

A batch (`dict`, leaves `[B, L, ...]` with `L = unroll_steps + td_steps + 1`) holds the fields
the loop stores per step: `obs`, `action`, `reward`, `terminated`, `truncated`, `policy` (the
acting policy: the search's improved policy), `value` (the value estimate when acting),
`final_value` (value of the pre-reset observation, used where `truncated`), `action_mask`;
plus `weight` `[B]`, the importance weights.
"""

from __future__ import annotations

import flax.struct
import gymnasium
import jax
import jax.numpy as jnp
import mctx
import optax

from jaxmb import losses, search
from jaxmb.config import AgentConfig
from jaxmb.distributions import Support
from jaxmb.networks import MuZeroNetwork
from jaxmb.targets import nstep_value_targets, unroll_masks


@flax.struct.dataclass
class MuZeroState:
    params: dict  # flax variables {"params": {group: ...}}
    target_params: dict  # same structure, updated every `target_update_period` updates
    opt_state: optax.OptState
    num_updates: jax.Array  # [] int32


def _support(cfg) -> Support:
    return Support(cfg.num_atoms, cfg.vmin, cfg.vmax, cfg.eps, cfg.use_transform)


def _scale_gradient(x: jax.Array, scale: float) -> jax.Array:
    return x * scale + jax.lax.stop_gradient(x) * (1.0 - scale)


class MuZero:
    """MuZero (Schrittwieser et al. 2020) on a discrete action space."""

    def __init__(
        self,
        config: AgentConfig,
        observation_space: gymnasium.spaces.Space,
        action_space: gymnasium.spaces.Space,
        *,
        num_players: int = 1,
    ):
        if not isinstance(action_space, gymnasium.spaces.Discrete):
            raise TypeError(
                f"MuZero needs a Discrete action space, got {action_space}; wrap continuous "
                "envs in an action-discretisation wrapper"
            )
        if num_players not in (1, 2):
            raise ValueError(f"num_players must be 1 or 2, got {num_players}")
        self.config = config
        self.num_players = num_players
        # Two-player zero-sum, players alternating (e.g. Go): every reward and value is from
        # the view of the player to move, so one ply later the sign flips. A discount of
        # -discount does exactly that in search (mctx's two-player convention) and in the
        # n-step targets: z_t = r_t - g r_{t+1} + g^2 r_{t+2} ... +- g^n v_{t+n}.
        self.signed_discount = -config.loss.discount if num_players == 2 else config.loss.discount
        self.observation_space = observation_space
        self.num_actions = int(action_space.n)
        obs_shape = tuple(observation_space.shape)
        net = config.network
        torso = net.torso
        if torso == "auto":
            torso = "resnet" if len(obs_shape) == 3 else "mlp"
        self.value_support = _support(net.value_support)
        self.reward_support = _support(net.reward_support)
        self.network = MuZeroNetwork(
            num_actions=self.num_actions,
            obs_ndim=len(obs_shape),
            torso=torso,
            hidden_sizes=net.hidden_sizes,
            latent_dim=net.latent_dim,
            dynamics_hidden_sizes=net.dynamics_hidden_sizes,
            head_hidden_sizes=net.head_hidden_sizes,
            activation=net.activation,
            layer_norm=net.layer_norm,
            latent_norm=net.latent_norm,
            conv_channels=net.conv_channels,
            num_res_blocks=net.num_res_blocks,
            value_atoms=net.value_support.num_atoms,
            reward_atoms=net.reward_support.num_atoms,
        )
        self.recurrent_fn = search.make_recurrent_fn(
            self.network,
            self.value_support,
            self.reward_support,
            discount=self.signed_discount,
            terminal_threshold=config.loss.terminal_threshold,
        )
        optim = config.optim
        schedule = optax.linear_schedule(
            0.0 if optim.warmup_updates else optim.learning_rate,
            optim.learning_rate,
            max(optim.warmup_updates, 1),
        )
        self.optimizer = optax.chain(
            optax.clip_by_global_norm(optim.max_grad_norm),
            optax.adamw(schedule, eps=optim.adam_eps, weight_decay=optim.weight_decay),
        )

    # ----------------------------------------------------------------------------- state

    def init(self, key: jax.Array) -> MuZeroState:
        obs = jnp.zeros((1, *self.observation_space.shape), self.observation_space.dtype)
        params = self.network.init(key, obs, jnp.zeros((1,), jnp.int32))
        return MuZeroState(
            params=params,
            target_params=params,
            opt_state=self.optimizer.init(params),
            num_updates=jnp.zeros((), jnp.int32),
        )

    # ----------------------------------------------------------------------------- inference

    def initial_inference(self, params, obs: jax.Array) -> mctx.RootFnOutput:
        """Observations `[B, ...]` -> the search root (prior logits, value, latent)."""
        latent = self.network.apply(params, obs, method=MuZeroNetwork.represent)
        prior_logits, value_logits = self.network.apply(
            params, latent, method=MuZeroNetwork.predict
        )
        value = self.value_support.logits_to_scalar(value_logits)
        return mctx.RootFnOutput(prior_logits=prior_logits, value=value, embedding=latent)

    def value(self, params, obs: jax.Array) -> jax.Array:
        """The value network's estimate of observations `[B, ...]` -> `[B]`."""
        return self.initial_inference(params, obs).value

    def act(
        self,
        state: MuZeroState,
        obs: jax.Array,
        key: jax.Array,
        *,
        training: bool = True,
        action_mask: jax.Array | None = None,
    ) -> tuple[jax.Array, dict]:
        """Chooses actions for a batch of observations.

        Args:
          state: agent state.
          obs: `[B, *obs_shape]`.
          key: PRNG key.
          training: acting to collect data (search.for_acting_train, exploration noise) or to
            evaluate (search.for_acting_test, greedy if search.greedy_eval). Static.
          action_mask: `[B, A]` bool, True where legal.

        Returns:
          actions `[B]` and a dict with `policy` `[B, A]` (the improved policy when searching,
          else the prior) and `value` `[B]` (the search's root value, else the network's).
        """
        cfg = self.config.search
        root = self.initial_inference(state.params, obs)
        invalid = None if action_mask is None else ~action_mask
        use_search = cfg.for_acting_train if training else cfg.for_acting_test
        greedy = (not training) and cfg.greedy_eval
        if use_search:
            out = search.run_search(
                state.params,
                key,
                root,
                self.recurrent_fn,
                cfg,
                num_simulations=cfg.num_simulations if training else cfg.simulations_test,
                invalid_actions=invalid,
                greedy=greedy,
            )
            return out.action, {"policy": out.action_weights, "value": search.root_value(out)}
        logits = search.mask_logits(root.prior_logits, invalid)
        if greedy:
            action = jnp.argmax(logits, axis=-1)
        else:
            action = jax.random.categorical(key, logits)
        return action, {"policy": jax.nn.softmax(logits), "value": root.value}

    # ----------------------------------------------------------------------------- learning

    def _reanalyse(self, target_params, batch: dict, key: jax.Array, rows: int):
        """Fresh search on every observation of the first `rows` windows, with target params.

        Returns the improved policies `[rows, L, A]` and root values `[rows, L]`.
        """
        obs = batch["obs"][:rows]
        flat_obs = obs.reshape((-1, *obs.shape[2:]))
        root = self.initial_inference(target_params, flat_obs)
        mask = batch["action_mask"][:rows].reshape((-1, self.num_actions))
        out = search.run_search(
            target_params,
            key,
            root,
            self.recurrent_fn,
            self.config.search,
            num_simulations=self.config.search.num_simulations,
            invalid_actions=~mask,
            greedy=True,
        )
        shape = obs.shape[:2]
        policy = out.action_weights.reshape((*shape, self.num_actions))
        return policy, search.root_value(out).reshape(shape)

    def compute_targets(self, target_params, batch: dict, key: jax.Array) -> dict:
        """Policy, value, reward and termination targets and their masks (see losses.py)."""
        loss_cfg = self.config.loss
        unroll, td = loss_cfg.unroll_steps, loss_cfg.td_steps
        positions = unroll + 1
        policy = batch["policy"].astype(jnp.float32)
        if loss_cfg.bootstrap == "target_network":
            boot_obs = batch["obs"][:, td : td + positions]
            boot = self.value(target_params, boot_obs.reshape((-1, *boot_obs.shape[2:])))
            values = jnp.zeros_like(batch["value"])
            values = values.at[:, td : td + positions].set(boot.reshape(boot_obs.shape[:2]))
        else:
            values = batch["value"]
        batch_size = policy.shape[0]
        rows = int(round(loss_cfg.reanalyse_fraction * batch_size))
        if rows:
            fresh_policy, fresh_value = self._reanalyse(target_params, batch, key, rows)
            policy = policy.at[:rows].set(fresh_policy)
            values = values.at[:rows].set(fresh_value)

        value_targets = jax.vmap(
            lambda r, te, tr, v, fv: nstep_value_targets(
                r,
                te,
                tr,
                v,
                fv,
                discount=self.signed_discount,
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
        return {
            "policy": policy[:, :positions],
            "policy_mask": masks["same_episode"],
            "value": value_targets,
            "value_probs": self.value_support.scalar_to_probs(value_targets),
            "value_mask": masks["value"],
            "reward_probs": self.reward_support.scalar_to_probs(reward),
            "terminal": terminal.astype(jnp.float32),
            "model_mask": masks["model"][:, 1:],
        }

    def unroll(self, params, obs: jax.Array, actions: jax.Array) -> dict:
        """Unrolls the model K steps from observations `[B, ...]` with actions `[B, K]`.

        The dynamics run step by step; the prediction, reward and termination heads then run
        once on all positions. Returns logits: policy `[B, K+1, A]`, value `[B, K+1, atoms]`,
        reward `[B, K, atoms]`, terminal `[B, K]`.
        """
        net = self.network
        scale = self.config.loss.dynamics_gradient_scale
        latent = net.apply(params, obs, method=MuZeroNetwork.represent)
        latents, features = [latent], []
        for k in range(actions.shape[1]):
            latent, feature = net.apply(
                params, latent, actions[:, k], method=MuZeroNetwork.dynamics_step
            )
            latent = _scale_gradient(latent, scale)
            latents.append(latent)
            features.append(feature)
        latents = jnp.stack(latents, axis=1)
        policy_logits, value_logits = net.apply(params, latents, method=MuZeroNetwork.predict)
        reward_logits, terminal_logits = net.apply(
            params, jnp.stack(features, axis=1), method=MuZeroNetwork.transition_heads
        )
        return {
            "policy_logits": policy_logits,
            "value_logits": value_logits,
            "reward_logits": reward_logits,
            "terminal_logits": terminal_logits,
        }

    def loss(self, params, targets: dict, batch: dict) -> tuple[jax.Array, dict]:
        unroll_steps = self.config.loss.unroll_steps
        out = self.unroll(params, batch["obs"][:, 0], batch["action"][:, :unroll_steps])
        total, parts = losses.total_loss(out, targets, self.config.loss.weights, batch["weight"])
        predicted = self.value_support.logits_to_scalar(out["value_logits"][:, 0])
        return total, {"parts": parts, "value_error": jnp.abs(predicted - targets["value"][:, 0])}

    def update(self, state: MuZeroState, batch: dict, key: jax.Array) -> tuple[MuZeroState, dict]:
        """One SGD step on a batch of windows.

        Returns the new state and metrics: `loss`, `loss/<term>` for each active term,
        `grad_norm`, and `priority` `[B]` (|value target - predicted value| at position 0,
        for prioritized replay).
        """
        targets = self.compute_targets(state.target_params, batch, key)
        targets = jax.lax.stop_gradient(targets)
        nan_at = self.config.loss.inject_nan_at_update
        if nan_at:
            poison = jnp.where(state.num_updates + 1 == nan_at, jnp.nan, 1.0)
            targets = dict(targets, value_probs=targets["value_probs"] * poison)
        (loss, aux), grads = jax.value_and_grad(self.loss, has_aux=True)(
            state.params, targets, batch
        )
        updates, opt_state = self.optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        num_updates = state.num_updates + 1
        copy = num_updates % self.config.optim.target_update_period == 0
        target_params = jax.tree.map(
            lambda p, t: jnp.where(copy, p, t), params, state.target_params
        )
        metrics = {"loss": loss, "grad_norm": optax.global_norm(grads)}
        metrics.update({f"loss/{k}": v for k, v in aux["parts"].items()})
        metrics["priority"] = aux["value_error"]
        new_state = MuZeroState(params, target_params, opt_state, num_updates)
        return new_state, metrics
