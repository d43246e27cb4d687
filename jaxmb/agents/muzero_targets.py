"""MuZero's learning targets: search targets (reanalyse) or a one-step lookahead, per
`agent.search.for_targets` (see `compute_targets`).

A mixin of `jaxmb.agents.muzero.MuZero`: the methods read the agent's config, networks and
recurrent fns.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import mctx

from jaxmb import search
from jaxmb.targets import nstep_value_targets, one_step_policy_target, unroll_masks


class MuZeroTargets:
    """Target computation for `MuZero` (see the module docstring)."""

    def _target_positions(self) -> tuple[int, ...]:
        """Window positions whose policy (0..K) or bootstrap value (n..n+K) targets read."""
        unroll, td = self.config.loss.unroll_steps, self.config.loss.td_steps
        return tuple(sorted(set(range(unroll + 1)) | set(range(td, td + unroll + 1))))

    def _reanalyse(self, target_params, batch: dict, key: jax.Array, rows: int):
        """Fresh search on the first `rows` windows, with target params, at the positions
        targets read (`_target_positions`).

        Returns the improved policies `[rows, L, A]`, root values `[rows, L]` (zeros at the
        positions not searched) and the simulations run `[]`.
        """
        index = jnp.array(self._target_positions())
        obs = batch["obs"][:rows, index]
        flat_obs = obs.reshape((-1, *obs.shape[2:]))
        root = self.initial_inference(target_params, flat_obs)
        mask = batch["action_mask"][:rows, index].reshape((-1, self.num_actions))
        out = search.run_search(
            target_params,
            key,
            root,
            self.search_recurrent_fn,
            self.config.search,
            num_simulations=self.config.search.num_simulations,
            invalid_actions=~mask,
            greedy=True,
        )
        shape = obs.shape[:2]
        length = batch["obs"].shape[1]
        policy = jnp.zeros((rows, length, self.num_actions), jnp.float32)
        policy = policy.at[:, index].set(out.action_weights.reshape((*shape, self.num_actions)))
        value = jnp.zeros((rows, length), jnp.float32)
        value = value.at[:, index].set(search.root_value(out).reshape(shape))
        return policy, value, jnp.sum(search.num_simulations_run(out))

    def one_step_q_values(self, params, obs: jax.Array) -> tuple[jax.Array, mctx.RootFnOutput]:
        """Q(s, a) = r(s, a) + discount * v(s') for every action, one model step each.

        `discount` is the model's: 0 after a predicted termination, negated in two-player
        games. Returns Q `[N, A]` for observations `[N, ...]`, and the root inference.
        """
        root = self.initial_inference(params, obs)
        count = root.value.shape[0]

        def one_action(action):
            step, _ = self.recurrent_fn(
                params, None, jnp.full((count,), action, jnp.int32), root.embedding
            )
            return step.reward + step.discount * step.value

        q_values = jax.vmap(one_action, out_axes=1)(jnp.arange(self.num_actions))
        return q_values, root

    def _one_step_policy(self, target_params, batch: dict) -> jax.Array:
        """The one-step lookahead policy targets (search.for_targets off) of positions
        0..K, from the target network's model: `[B, K+1, A]`."""
        cfg = self.config.search
        positions = self.config.loss.unroll_steps + 1
        obs = batch["obs"][:, :positions]
        q_values, root = self.one_step_q_values(target_params, obs.reshape((-1, *obs.shape[2:])))
        legal = batch["action_mask"][:, :positions].reshape((-1, self.num_actions))
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
        return policy.reshape((*obs.shape[:2], self.num_actions))

    def compute_targets(self, target_params, batch: dict, key: jax.Array) -> dict:
        """Policy, value, reward and termination targets and their masks (see losses.py).

        With `search.for_targets` on, the policy targets are search policies: fresh ones
        (reanalyse with the target params) for the first `loss.reanalyse_fraction` of the
        batch, whose values then bootstrap from the fresh search root values; the rest use
        the policies and values stored when acting. Off, no tree is built: the policy target
        is `one_step_policy_target` of the target network's one-step Q-values, and values
        bootstrap from the target network's value head. The dict's `simulations` counts the
        simulations run for these targets.
        """
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
        simulations = jnp.zeros((), jnp.int32)
        if self.config.search.for_targets:
            rows = int(round(loss_cfg.reanalyse_fraction * policy.shape[0]))
            if rows:
                fresh_policy, fresh_value, simulations = self._reanalyse(
                    target_params, batch, key, rows
                )
                policy = policy.at[:rows].set(fresh_policy)
                values = values.at[:rows].set(fresh_value)
        else:
            policy = self._one_step_policy(target_params, batch)

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
            "simulations": simulations,
        }
