"""The MuZero agent: pure functions over an explicit state pytree (`jaxmb.agents.base.Agent`).

    agent = MuZero.from_config(config, env, env_params)    # or jaxmb.agents.make(...)
    state = agent.init(key)
    action, info = agent.act(state, obs, key, training=True)
    state, metrics = agent.update(state, batch, key)

`act` searches (mctx) with the learned model, or the env itself with `search.model=env`, or,
with search switched off, samples the policy network's prior. `update` computes targets for a
batch of replayed windows (`muzero_targets.py`: search policies, stored or reanalysed, with
`search.for_targets` on; a one-step lookahead with the model off; n-step value returns),
unrolls the model K steps, sums the active loss terms (`jaxmb.losses`) and applies one optax
step.

A batch (`dict`, leaves `[B, L, ...]` with `L = unroll_steps + td_steps + 1`) holds the loop's
record fields (`obs`, `action`, `reward`, `terminated`, `truncated`, `action_mask`,
`final_value`), MuZero's own (`policy`: the acting policy, the search's improved policy;
`value`: the value estimate when acting), and `weight` `[B]`, the importance weights.
"""

from __future__ import annotations

from typing import ClassVar

import flax.struct
import gymnasium
import jax
import jax.numpy as jnp
import mctx
import optax

from jaxmb import losses, search, search_variants
from jaxmb.agents import common
from jaxmb.agents import muzero_targets as targets_lib
from jaxmb.config import AgentConfig, ConfigError
from jaxmb.envs import HostEnv
from jaxmb.networks import MuZeroNetwork, encoder_settings


@flax.struct.dataclass
class MuZeroState:
    params: dict  # flax variables {"params": {group: ...}}
    target_params: dict  # same structure, updated every `target_update_period` updates
    opt_state: optax.OptState
    num_updates: jax.Array  # [] int32
    # The moving average of `params` that the SSL terms' target side reads
    # (`agent.ssl.target=ema` with such a term active), else None.
    ema_params: dict | None = None


def _scale_gradient(x: jax.Array, scale: float) -> jax.Array:
    return x * scale + jax.lax.stop_gradient(x) * (1.0 - scale)


def build_network(config: AgentConfig, obs_shape: tuple[int, ...], num_actions: int):
    """The representation, dynamics and prediction networks of `agent.network`."""
    net = config.network
    return MuZeroNetwork(
        num_actions=num_actions,
        **encoder_settings(net, obs_shape),
        dynamics_hidden_sizes=net.dynamics_hidden_sizes,
        head_hidden_sizes=net.head_hidden_sizes,
        value_atoms=net.value_support.num_atoms,
        reward_atoms=net.reward_support.num_atoms,
    )


class MuZero:
    """MuZero (Schrittwieser et al. 2020) on a discrete action space."""

    kind: ClassVar[str] = "muzero"
    #: Walker et al. 2023's parts -> the network's parameter groups (see networks.py).
    parts: ClassVar[dict[str, tuple[str, ...]]] = {
        "encoder": ("encoder",),
        "prior_heads": ("policy", "value"),
        "model": ("dynamics",),
        "dynamics_heads": ("reward", "terminal"),
    }

    @classmethod
    def from_config(cls, config, env, env_params=None) -> MuZero:
        """MuZero for `env`, with the checks that name the config key to change."""
        if not isinstance(env.action_space, gymnasium.spaces.Discrete):
            raise ConfigError(
                f"MuZero needs discrete actions and {config.env.id} has {env.action_space}; set "
                "env.discretize.mode to grid or codebook",
                "env.discretize.mode",
            )
        env_model = config.agent.search.model == "env"
        if env_model and isinstance(env, HostEnv):
            raise ConfigError(
                f"{config.env.id} is stepped on the host: its state is a handle to a live env, "
                "which a search cannot step; use agent.search.model=learned",
                "agent.search.model",
            )
        return cls(
            config.agent,
            env.observation_space,
            env.action_space,
            num_players=getattr(env, "num_players", 1),
            env=env if env_model else None,
            env_params=env_params if env_model else None,
        )

    def __init__(
        self,
        config: AgentConfig,
        observation_space: gymnasium.spaces.Space,
        action_space: gymnasium.spaces.Space,
        *,
        num_players: int = 1,
        env=None,
        env_params=None,
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
        self.window = config.loss.unroll_steps + config.loss.td_steps + 1
        self.loss_weights = config.loss.weights
        self.needs = losses.needs(self.loss_weights)
        self.guarded_metrics = (
            *(f"loss/{name}" for name in losses.active(self.loss_weights)),
            "grad_norm",
        )
        self.network = build_network(config, tuple(observation_space.shape), self.num_actions)
        # The active loss terms, built: some own parameters (params["terms"]) and a target
        # side, read from the moving average or the target network (`agent.ssl.target`).
        self.term_context = losses.TermContext(
            agent=config,
            obs_shape=tuple(observation_space.shape),
            obs_dtype=observation_space.dtype,
            num_actions=self.num_actions,
            latent_dim=config.network.latent_dim,
            represent=self.represent,
        )
        self.terms = losses.setup(self.loss_weights, self.term_context)
        term_targets = any(t.targets is not None for t in self.terms.values())
        self.uses_ema = term_targets and config.ssl.target == "ema"
        self.value_support = common.support(config.network.value_support)
        self.reward_support = common.support(config.network.reward_support)
        self.recurrent_fn = search.make_recurrent_fn(
            self.network,
            self.value_support,
            self.reward_support,
            discount=self.signed_discount,
            terminal_threshold=config.loss.terminal_threshold,
        )
        # What search plans with: the learned model (or the env itself, `search.model=env`),
        # with rollouts past the tree when `search.rollout_horizon > 0`.
        self.search_recurrent_fn = self._with_rollouts(self.recurrent_fn)
        self.env_recurrent_fn = self._env_model(env, env_params)
        self.optimizer = common.build_optimizer(config.optim)

    def _with_rollouts(self, recurrent_fn: mctx.RecurrentFn) -> mctx.RecurrentFn:
        cfg = self.config.search
        if cfg.rollout_horizon == 0:
            return recurrent_fn
        return search_variants.with_rollouts(
            recurrent_fn,
            horizon=cfg.rollout_horizon,
            mix=cfg.rollout_mix,
            greedy=cfg.rollout_greedy,
        )

    def _env_model(self, env, env_params) -> mctx.RecurrentFn | None:
        """The env as search's model (`search.model=env`), else None."""
        if self.config.search.model != "env":
            return None
        if env is None:
            raise ValueError("agent.search.model=env needs the env: MuZero(..., env=...)")
        return self._with_rollouts(
            search_variants.env_recurrent_fn(
                env, env_params, self._predict, discount=self.signed_discount
            )
        )

    def _predict(self, params, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
        """The prior logits `[B, A]` and value `[B]` of observations `[B, ...]`."""
        root = self.initial_inference(params, obs)
        return root.prior_logits, root.value

    @property
    def target_model(self) -> targets_lib.TargetModel:
        """The functions and supports the targets read (`muzero_targets.py`)."""
        return targets_lib.TargetModel(
            initial_inference=self.initial_inference,
            recurrent_fn=self.recurrent_fn,
            search_recurrent_fn=self.search_recurrent_fn,
            value_support=self.value_support,
            reward_support=self.reward_support,
            discount=self.signed_discount,
            num_actions=self.num_actions,
        )

    # ----------------------------------------------------------------------------- state

    def record_spec(self) -> dict[str, jax.ShapeDtypeStruct]:
        """MuZero's replay fields: the acting policy and value (see the module docstring)."""
        return {
            "policy": jax.ShapeDtypeStruct((self.num_actions,), jnp.float32),
            "value": jax.ShapeDtypeStruct((), jnp.float32),
        }

    def init(self, key: jax.Array) -> MuZeroState:
        obs = jnp.zeros((1, *self.observation_space.shape), self.observation_space.dtype)
        params = self.network.init(key, obs, jnp.zeros((1,), jnp.int32))
        term_params = losses.init_params(self.terms, jax.random.fold_in(key, 1))
        if term_params:
            params = {**params, "terms": term_params}
        return MuZeroState(
            params=params,
            target_params=params,
            opt_state=self.optimizer.init(params),
            num_updates=jnp.zeros((), jnp.int32),
            ema_params=params if self.uses_ema else None,
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

    def bootstrap_value(self, state: MuZeroState, obs: jax.Array) -> jax.Array:
        """The truncation bootstrap: the online value network's estimate `[B]`."""
        return self.value(state.params, obs)

    def act(
        self,
        state: MuZeroState,
        obs: jax.Array,
        key: jax.Array,
        *,
        training: bool = True,
        action_mask: jax.Array | None = None,
        env_state=None,
        num_simulations: int | None = None,
    ) -> tuple[jax.Array, dict]:
        """Chooses actions for a batch of observations.

        Args:
          state: agent state.
          obs: `[B, *obs_shape]`.
          key: PRNG key.
          training: acting to collect data (search.for_acting_train, exploration noise) or to
            evaluate (search.for_acting_test, greedy if search.greedy_eval). Static.
          action_mask: `[B, A]` bool, True where legal.
          env_state: the envs' states `[B, ...]`, the root of search with `search.model=env`.
          num_simulations: a budget in place of the config's (static; 0: act from the prior).

        Returns:
          actions `[B]` and a dict with `policy` `[B, A]` (the improved policy when searching,
          else the prior), `value` `[B]` (the search's root value, else the network's) and
          `simulations` `[B]` int32 (simulations the search ran: the root's visits less its
          own; 0 without search).
        """
        cfg = self.config.search
        root = self.initial_inference(state.params, obs)
        invalid = None if action_mask is None else ~action_mask
        use_search = cfg.for_acting_train if training else cfg.for_acting_test
        budget = cfg.num_simulations if training else cfg.simulations_test
        if num_simulations is not None:
            use_search, budget = num_simulations > 0, num_simulations
        greedy = (not training) and cfg.greedy_eval
        if use_search:
            recurrent_fn = self.search_recurrent_fn
            if cfg.model == "env":
                if env_state is None:
                    raise ValueError("agent.search.model=env: act needs env_state")
                root = root.replace(embedding=env_state)
                recurrent_fn = self.env_recurrent_fn
            out = search.run_search(
                state.params,
                key,
                root,
                recurrent_fn,
                cfg,
                num_simulations=budget,
                invalid_actions=invalid,
                greedy=greedy,
            )
            info = {
                "policy": out.action_weights,
                "value": search.root_value(out),
                "simulations": search.num_simulations_run(out),
            }
            return out.action, info
        logits = search.mask_logits(root.prior_logits, invalid)
        if greedy:
            action = jnp.argmax(logits, axis=-1)
        else:
            action = jax.random.categorical(key, logits)
        info = {
            "policy": jax.nn.softmax(logits),
            "value": root.value,
            "simulations": jnp.zeros(action.shape, jnp.int32),
        }
        return action, info

    def acting_metrics(self, infos: dict) -> dict[str, jax.Array]:
        """`search/acting_simulations`: simulations the iteration's searches ran."""
        return {"search/acting_simulations": jnp.sum(infos["simulations"]).astype(jnp.int32)}

    # ----------------------------------------------------------------------------- learning

    def unroll(self, params, obs: jax.Array, actions: jax.Array) -> dict:
        """Unrolls the model K steps from observations `[B, ...]` with actions `[B, K]`.

        The dynamics run step by step; the prediction heads, and the reward and termination
        heads when an active loss term reads them, then run once on all positions. Returns
        latents `[B, K+1, D]` and logits: policy `[B, K+1, A]`, value `[B, K+1, atoms]`,
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
        out = {"latents": latents, "policy_logits": policy_logits, "value_logits": value_logits}
        if self.needs & {"unroll.reward_logits", "unroll.terminal_logits"}:
            reward_logits, terminal_logits = net.apply(
                params, jnp.stack(features, axis=1), method=MuZeroNetwork.transition_heads
            )
            out.update(reward_logits=reward_logits, terminal_logits=terminal_logits)
        return out

    def represent(self, params, obs: jax.Array) -> jax.Array:
        """Latents `[..., D]` of observations `[..., *obs_shape]`."""
        return self.network.apply(params, obs, method=MuZeroNetwork.represent)

    def compute_targets(self, target_params, batch: dict, key: jax.Array) -> dict:
        """The targets of a batch (`muzero_targets.compute_targets` with this agent's model,
        computing what the active loss terms read)."""
        return targets_lib.compute_targets(
            self.target_model,
            target_params,
            batch,
            key,
            loss_config=self.config.loss,
            search_config=self.config.search,
            needs=self.needs,
            represent=self.represent,
        )

    def targets(self, state: MuZeroState, batch: dict, key: jax.Array) -> dict:
        """Every target of a batch, without gradient: MuZero's (`compute_targets`, from the
        target network) and the built loss terms' target sides (from the moving average or
        the target network, `agent.ssl.target`). Includes `simulations`."""
        targets = self.compute_targets(state.target_params, batch, key)
        side = state.ema_params if self.uses_ema else state.target_params
        targets.update(losses.term_targets(self.terms, side, batch))
        return jax.lax.stop_gradient(targets)

    def loss(self, params, targets: dict, batch: dict) -> tuple[jax.Array, dict]:
        unroll_steps = self.config.loss.unroll_steps
        out = self.unroll(params, batch["obs"][:, 0], batch["action"][:, :unroll_steps])
        total, parts = losses.total_loss(
            params, batch, out, targets, self.loss_weights, batch["weight"], self.terms
        )
        predicted = self.value_support.logits_to_scalar(out["value_logits"][:, 0])
        return total, {"parts": parts, "value_error": jnp.abs(predicted - targets["value"][:, 0])}

    def update(self, state: MuZeroState, batch: dict, key: jax.Array) -> tuple[MuZeroState, dict]:
        """One SGD step on a batch of windows.

        Returns the new state and metrics: `loss`, `loss/<term>` for each active term,
        `grad_norm`, `search/target_simulations` and `priority` `[B]` (|value target -
        predicted value| at position 0, for prioritized replay).
        """
        targets = self.targets(state, batch, key)
        simulations = targets.pop("simulations")
        new, metrics = common.loss_step(
            self.optimizer, self.config.optim, self.loss, state, targets, batch
        )
        metrics["search/target_simulations"] = simulations.astype(jnp.float32)
        ema = state.ema_params
        if self.uses_ema:
            decay = self.config.ssl.ema_decay
            ema = jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, ema, new[0])
        return MuZeroState(*new, ema_params=ema), metrics
