"""Learning targets for one sampled window, with episode ends handled exactly.

A window holds `L = unroll_steps + td_steps + 1` consecutive steps of one environment.
Transition `i` goes from observation `i` to observation `i + 1`, with reward `rewards[i]`,
`terminated[i]` (the MDP ended: nothing to bootstrap) and `truncated[i]` (a time limit: the
episode was cut, the value of the pre-reset observation is bootstrapped; that value is
`final_values[i]`). A step that is both terminated and truncated counts as terminated.

Functions take unbatched windows (`[L]`) and are `vmap`ped by the caller, as in rlax.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp


def nstep_value_targets(
    rewards: jax.Array,
    terminated: jax.Array,
    truncated: jax.Array,
    values: jax.Array,
    final_values: jax.Array,
    *,
    discount: float,
    td_steps: int,
    num_positions: int,
) -> jax.Array:
    """n-step value targets for positions `0 .. num_positions - 1` of a window.

    For position k, with n = td_steps and the first episode end among transitions
    `k .. k + n - 1` at transition `k + j`:

        z_k = sum_{i <= j} discount^i rewards[k + i]             (+ nothing if terminated)
                                            + discount^(j+1) final_values[k + j]   (if truncated)
    and with no end in that range:
        z_k = sum_{i < n} discount^i rewards[k + i] + discount^n values[k + n].

    Args:
      rewards, terminated, truncated, final_values: `[L]` per transition.
      values: `[L]` value estimates of the window's observations (the bootstrap values).
      discount: the discount.
      td_steps: n.
      num_positions: positions to compute; needs `L >= num_positions + td_steps`.

    Returns:
      `[num_positions]` targets. Positions after an episode end within the window get a
      target computed as if they started a new episode; `unroll_masks` says which to use.
    """
    chex.assert_rank([rewards, terminated, truncated, values, final_values], 1)
    chex.assert_equal_shape([rewards, terminated, truncated, values, final_values])
    if rewards.shape[0] < num_positions + td_steps:
        raise ValueError(
            f"window of {rewards.shape[0]} steps is too short for {num_positions} positions "
            f"and td_steps={td_steps}"
        )
    terminated = terminated.astype(bool)
    truncated_only = truncated.astype(bool) & ~terminated
    done = (terminated | truncated_only).astype(jnp.float32)
    offsets = jnp.arange(td_steps)
    index = jnp.arange(num_positions)[:, None] + offsets[None, :]  # [P, n]
    done_kn = done[index]
    # alive[k, i]: no episode end among transitions k .. k + i - 1.
    alive = jnp.cumprod(jnp.concatenate([jnp.ones_like(done_kn[:, :1]), 1.0 - done_kn], 1), 1)
    powers = discount ** jnp.arange(td_steps + 1, dtype=jnp.float32)
    reward_part = jnp.sum(powers[:td_steps] * alive[:, :td_steps] * rewards[index], axis=1)
    trunc_part = jnp.sum(
        powers[1:] * alive[:, :td_steps] * truncated_only[index] * final_values[index], axis=1
    )
    bootstrap = powers[td_steps] * alive[:, td_steps] * values[index[:, -1] + 1]
    return reward_part + trunc_part + bootstrap


def unroll_masks(terminated: jax.Array, truncated: jax.Array, num_positions: int) -> dict:
    """Which targets of an unroll are valid, and which lie past a termination.

    Position k of the unroll is the model state after k steps from position 0. A window may
    cross an episode end. Then:
      - after a termination, the model state is absorbing: value and reward targets are 0 and
        the termination target is 1 (so search learns that a predicted terminal stays
        terminal); the policy is not trained there;
      - after a truncation, the data belongs to another episode: nothing is trained there.

    Args:
      terminated, truncated: `[L]` per transition.
      num_positions: K + 1.

    Returns:
      dict of `[num_positions]` float arrays:
        `same_episode`: position k is in the episode of position 0 (train policy and value);
        `absorbing`: position k lies after a termination (value target 0);
        `value`: mask of the value loss (`same_episode | absorbing`);
        `model`: mask of the reward/termination loss of the transition *into* position k
          (k >= 1; entry 0 is 0): the transition's source state is in the episode or absorbing.
    """
    terminated = terminated.astype(bool)[:num_positions]
    truncated_only = truncated.astype(bool)[:num_positions] & ~terminated
    done = terminated | truncated_only
    # ended[k]: some end among transitions 0 .. k-1.
    ended = jnp.concatenate([jnp.zeros((1,), bool), jnp.cumsum(done)[:-1] > 0])
    # The first end before k was a termination.
    first_end = jnp.argmax(done)
    first_is_term = terminated[first_end]
    absorbing = ended & first_is_term
    same_episode = ~ended
    value_mask = same_episode | absorbing
    model_mask = jnp.concatenate([jnp.zeros((1,), bool), value_mask[:-1]])
    return {
        "same_episode": same_episode.astype(jnp.float32),
        "absorbing": absorbing.astype(jnp.float32),
        "value": value_mask.astype(jnp.float32),
        "model": model_mask.astype(jnp.float32),
    }


def one_step_policy_target(
    q_values: jax.Array,
    prior_logits: jax.Array,
    value: jax.Array,
    legal: jax.Array,
    *,
    mode: str,
    temperature: float = 1.0,
    value_scale: float = 0.1,
    maxvisit_init: float = 50.0,
) -> jax.Array:
    """The policy target of a one-step lookahead (no tree): a distribution over actions.

    `Q(s, a) = r(s, a) + discount * v(s')` comes from one model step per action; this turns it
    into a policy target over the legal actions:

    - `mode="softmax"`: `softmax(Q / temperature)`;
    - `mode="completed_q"`: Gumbel MuZero's improved policy `softmax(logits + sigma(Q))` with
      every legal action looked at exactly once (Danihelka et al. 2022): sigma rescales the
      completed Q-values to [0, 1] over the actions and multiplies by
      `(maxvisit_init + 1) * value_scale`; illegal actions are completed with the mixed value
      of `value` and the legal Q-values, as `mctx.qtransform_completed_by_mix_value` does. It
      equals `mctx.gumbel_muzero_policy`'s `action_weights` for a search that visits every
      action once (`tests/test_planning.py` checks this).

    Args:
      q_values: `[A]` one-step Q-values.
      prior_logits: `[A]` the policy network's logits (completed_q only).
      value: `[]` the value network's estimate of s (completed_q only).
      legal: `[A]` bool.
      mode: "softmax" or "completed_q".
      temperature, value_scale, maxvisit_init: see above.

    Returns:
      `[A]` probabilities, exactly 0 on illegal actions.
    """
    chex.assert_rank([q_values, prior_logits, legal], 1)
    chex.assert_rank(value, 0)
    chex.assert_equal_shape([q_values, prior_logits, legal])
    if mode == "softmax":
        logits = q_values / temperature
    elif mode == "completed_q":
        masked_logits = jnp.where(legal, prior_logits, -1e9)
        prior = jnp.maximum(jax.nn.softmax(masked_logits), jnp.finfo(jnp.float32).tiny)
        visited = legal.astype(jnp.float32)
        weighted_q = jnp.sum(visited * prior * q_values) / jnp.sum(visited * prior)
        mixed = (value + jnp.sum(visited) * weighted_q) / (jnp.sum(visited) + 1.0)
        completed = jnp.where(legal, q_values, mixed)
        low, high = jnp.min(completed), jnp.max(completed)
        scaled = (completed - low) / jnp.maximum(high - low, 1e-8)
        logits = masked_logits + (maxvisit_init + 1.0) * value_scale * scaled
    else:
        raise ValueError(f"one-step mode must be 'softmax' or 'completed_q', got {mode!r}")
    # A finite mask keeps a (degenerate) all-illegal row NaN-free; exp(-1e9) is exactly 0.
    return jax.nn.softmax(jnp.where(legal, logits, -1e9))
