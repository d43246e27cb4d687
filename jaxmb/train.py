"""The compiled loop: `make_train(config) -> train(key) -> (final_state, metrics)`.

One `lax.scan` over iterations. Each iteration

1. steps `num_envs` environments `rollout_steps` times, acting with the agent (search);
2. writes those steps to the in-graph replay;
3. once the replay holds `replay.min_size` transitions, runs `updates_per_iteration` SGD
   updates, each on a fresh sample of windows;
4. every `train.eval_every` env steps, runs greedy evaluation episodes on separate envs.

Everything is one pure function of the key: `jax.jit(jax.vmap(make_train(cfg)))(keys)` trains
several seeds in one program. Metrics, progress and checkpoints leave the program through
`jax.debug.callback` at the configured interval, never per step.

Metrics (`metrics` dict, each `[num_iterations]`, with a leading seed axis under vmap):
  `env_steps`                environment steps taken so far (all training envs);
  `train/episode_return`     mean return of the training episodes that ended in the
                             iteration (NaN if none ended);
  `train/episodes`           number of training episodes that ended in the iteration;
  `eval/episode_return`      mean greedy return over `num_eval_envs` episodes, at the
                             iterations that evaluate (NaN elsewhere);
  `learning`                 1 where SGD ran in the iteration;
  `loss`, `loss/<term>`, `grad_norm`   means over the iteration's SGD updates (NaN before
                             learning starts).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp

from jaxmb import envs as _envs_pkg  # noqa: F401  (registers the namespace package)
from jaxmb import replay as replay_lib
from jaxmb.agents.muzero import MuZero, MuZeroState
from jaxmb.config import Config
from jaxmb.envs import EpisodeStatistics, VectorEnv, make

Callback = Callable[[dict[str, Any]], None]


@flax.struct.dataclass
class TrainState:
    agent: MuZeroState
    replay: replay_lib.ReplayState
    env_state: Any  # batched env state [N, ...]
    obs: jax.Array  # [N, *obs_shape]
    key: jax.Array
    iteration: jax.Array  # [] int32
    last_train_return: jax.Array  # [] float32, carried for progress reports
    last_eval_return: jax.Array  # [] float32


def build_env(config: Config):
    """The env and its params with the config's overrides applied."""
    return make(config.env.id, **dict(config.env.params))


def build_agent(config: Config, env) -> MuZero:
    return MuZero(config.agent, env.observation_space, env.action_space)


def _nanmean_where(values: jax.Array, mask: jax.Array) -> jax.Array:
    count = jnp.sum(mask)
    total = jnp.sum(jnp.where(mask, values, 0.0))
    return jnp.where(count > 0, total / jnp.maximum(count, 1), jnp.nan)


class _Loop:
    """The pieces of the compiled loop, as functions of explicit state."""

    def __init__(self, config: Config):
        self.config = config
        self.env, self.env_params = build_env(config)
        self.agent = build_agent(config, self.env)
        self.train_env = VectorEnv(EpisodeStatistics(self.env), config.env.num_envs)
        self.eval_env = VectorEnv(self.env, config.env.num_eval_envs)
        loss_cfg = config.agent.loss
        self.window = loss_cfg.unroll_steps + loss_cfg.td_steps + 1
        self.steps_per_env = config.replay.capacity // config.env.num_envs
        self.eval_every = config.every(config.train.eval_every) if config.train.eval_every else 0
        self.log_every = config.every(config.train.log_every)
        ckpt = config.train.checkpoint_every
        self.checkpoint_every = config.every(ckpt) if ckpt else 0

    # --------------------------------------------------------------------------- init

    def init(self, key: jax.Array) -> TrainState:
        agent_key, env_key, key = jax.random.split(key, 3)
        agent_state = self.agent.init(agent_key)
        obs, env_state = self.train_env.reset(env_key, self.env_params)
        example = self._example_step(obs)
        replay = replay_lib.init(example, self.config.env.num_envs, self.steps_per_env)
        nan = jnp.full((), jnp.nan, jnp.float32)
        return TrainState(
            agent=agent_state,
            replay=replay,
            env_state=env_state,
            obs=obs,
            key=key,
            iteration=jnp.zeros((), jnp.int32),
            last_train_return=nan,
            last_eval_return=nan,
        )

    def init_seeds(self, keys: jax.Array) -> TrainState:
        """The seed-batched state (`make_train(..., num_seeds=...)`): leading `[num_seeds]`
        axis everywhere but the counters shared by all seeds."""
        axes = _seed_axes(jax.eval_shape(self.init, keys[0]))
        return jax.vmap(self.init, out_axes=axes)(keys)

    def _example_step(self, obs: jax.Array) -> dict:
        num_actions = self.agent.num_actions
        return {
            "obs": obs[0],
            "action": jnp.zeros((), jnp.int32),
            "reward": jnp.zeros((), jnp.float32),
            "terminated": jnp.zeros((), bool),
            "truncated": jnp.zeros((), bool),
            "policy": jnp.zeros((num_actions,), jnp.float32),
            "value": jnp.zeros((), jnp.float32),
            "final_value": jnp.zeros((), jnp.float32),
            "action_mask": jnp.ones((num_actions,), bool),
        }

    # --------------------------------------------------------------------------- acting

    def collect(self, state: TrainState, key: jax.Array):
        """`rollout_steps` steps of every training env; returns steps `[N, T, ...]`."""
        agent, env, params = self.agent, self.train_env, self.env_params

        def one_step(carry, step_key):
            env_state, obs = carry
            act_key, env_key = jax.random.split(step_key)
            mask = env.action_mask(env_state, params)
            action, info = agent.act(state.agent, obs, act_key, training=True, action_mask=mask)
            next_obs, env_state, reward, terminated, truncated, env_info = env.step(
                env_key, env_state, action, params
            )
            # Value of the observation a time limit cut off: the truncation bootstrap.
            final_value = agent.value(state.agent.params, env_info["final_observation"])
            step = {
                "obs": obs,
                "action": action.astype(jnp.int32),
                "reward": reward.astype(jnp.float32),
                "terminated": terminated,
                "truncated": truncated,
                "policy": info["policy"],
                "value": info["value"],
                "final_value": final_value,
                "action_mask": mask,
            }
            stats = (env_info["episode_done"], env_info["episode_return"])
            return (env_state, next_obs), (step, stats)

        keys = jax.random.split(key, self.config.train.rollout_steps)
        (env_state, obs), (steps, stats) = jax.lax.scan(
            one_step, (state.env_state, state.obs), keys
        )
        steps = jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), steps)  # [T, N] -> [N, T]
        return env_state, obs, steps, stats

    # --------------------------------------------------------------------------- learning

    def learn(self, agent_state: MuZeroState, replay: replay_lib.ReplayState, key: jax.Array):
        """`updates_per_iteration` SGD updates; returns mean metrics."""
        cfg = self.config.replay

        def one_update(carry, update_key):
            agent_state, replay = carry
            sample_key, update_key = jax.random.split(update_key)
            sample = replay_lib.sample(
                replay,
                sample_key,
                cfg.batch_size,
                self.window,
                prioritized=cfg.prioritized,
                priority_exponent=cfg.priority_exponent,
                importance_exponent=cfg.importance_exponent,
            )
            batch = dict(sample.data, weight=sample.weight)
            agent_state, metrics = self.agent.update(agent_state, batch, update_key)
            priority = metrics.pop("priority")
            if cfg.prioritized:
                replay = replay_lib.update_priorities(
                    replay, sample.env_index, sample.start_slot, priority
                )
            return (agent_state, replay), metrics

        keys = jax.random.split(key, self.config.updates_per_iteration)
        (agent_state, replay), metrics = jax.lax.scan(one_update, (agent_state, replay), keys)
        return agent_state, replay, jax.tree.map(jnp.mean, metrics)

    def _metric_template(self, agent_state, replay, key):
        return jax.eval_shape(lambda: self.learn(agent_state, replay, key)[2])

    # --------------------------------------------------------------------------- evaluation

    def evaluate(self, agent_state: MuZeroState, key: jax.Array) -> jax.Array:
        """Mean return of one greedy episode in each of `num_eval_envs` envs."""
        env, params = self.eval_env, self.env_params
        num = self.config.env.num_eval_envs
        reset_key, key = jax.random.split(key)
        obs, env_state = env.reset(reset_key, params)

        def cond(carry):
            t, _, _, _, finished, _ = carry
            return (t < self.config.env.eval_max_steps) & ~jnp.all(finished)

        def body(carry):
            t, env_state, obs, returns, finished, key = carry
            key, act_key, env_key = jax.random.split(key, 3)
            mask = env.action_mask(env_state, params)
            action, _ = self.agent.act(agent_state, obs, act_key, training=False, action_mask=mask)
            obs, env_state, reward, terminated, truncated, _ = env.step(
                env_key, env_state, action, params
            )
            returns = returns + jnp.where(finished, 0.0, reward)
            finished = finished | terminated | truncated
            return t + 1, env_state, obs, returns, finished, key

        carry = (
            jnp.zeros((), jnp.int32),
            env_state,
            obs,
            jnp.zeros((num,), jnp.float32),
            jnp.zeros((num,), bool),
            key,
        )
        returns = jax.lax.while_loop(cond, body, carry)[3]
        return jnp.mean(returns)

    # --------------------------------------------------------------------------- iteration

    def iteration(self, state: TrainState) -> tuple[TrainState, dict]:
        cfg = self.config
        key, collect_key, learn_key, eval_key = jax.random.split(state.key, 4)
        env_state, obs, steps, (episode_done, episode_return) = self.collect(state, collect_key)
        replay = replay_lib.add(state.replay, steps)

        total_written = replay.num_written * cfg.env.num_envs
        can_learn = (total_written >= cfg.replay.min_size) & (
            replay_lib.num_valid_starts(replay, self.window) > 0
        )
        template = self._metric_template(state.agent, replay, learn_key)

        def skip(agent_state, replay, key):
            nan_metrics = jax.tree.map(lambda s: jnp.full(s.shape, jnp.nan, s.dtype), template)
            return agent_state, replay, nan_metrics

        agent_state, replay, learn_metrics = jax.lax.cond(
            can_learn, self.learn, skip, state.agent, replay, learn_key
        )

        iteration = state.iteration + 1
        last = iteration == cfg.num_iterations
        nan = jnp.full((), jnp.nan, jnp.float32)
        if self.eval_every:
            do_eval = (iteration % self.eval_every == 0) | last
            eval_return = jax.lax.cond(
                do_eval, lambda: self.evaluate(agent_state, eval_key), lambda: nan
            )
        else:
            do_eval, eval_return = jnp.zeros((), bool), nan
        train_return = _nanmean_where(episode_return, episode_done)
        metrics = {
            "env_steps": iteration * cfg.steps_per_iteration,
            "train/episode_return": train_return,
            "train/episodes": jnp.sum(episode_done).astype(jnp.int32),
            "eval/episode_return": eval_return,
            "learning": can_learn.astype(jnp.int32),
            **learn_metrics,
        }
        new_state = TrainState(
            agent=agent_state,
            replay=replay,
            env_state=env_state,
            obs=obs,
            key=key,
            iteration=iteration,
            last_train_return=jnp.where(
                jnp.isnan(train_return), state.last_train_return, train_return
            ),
            last_eval_return=jnp.where(do_eval, eval_return, state.last_eval_return),
        )
        return new_state, metrics


def _report(state: TrainState, metrics: dict) -> dict:
    """What a callback receives: this iteration's metrics plus the carried returns."""
    return dict(
        metrics,
        iteration=state.iteration,
        **{"progress/train_return": state.last_train_return},
        **{"progress/eval_return": state.last_eval_return},
    )


def _seed_axes(state: TrainState) -> TrainState:
    """vmap axes of a seed-batched `TrainState`: 0 everywhere but the shared counters."""
    axes = jax.tree.map(lambda _: 0, state)
    return axes.replace(iteration=None, replay=axes.replay.replace(num_written=None))


def make_train(
    config: Config,
    *,
    callback: Callback | None = None,
    checkpoint_callback: Callable[[TrainState], None] | None = None,
    num_seeds: int | None = None,
):
    """Builds the training program.

    Args:
      config: the run's config.
      callback: called on the host every `train.log_every` env steps (and at the last
        iteration) with a dict of this iteration's metrics (see the module docstring) plus
        `iteration`, `progress/train_return`, `progress/eval_return`. Under a user's `vmap` it
        is called once per member.
      checkpoint_callback: called on the host with the whole `TrainState` every
        `train.checkpoint_every` env steps (if > 0).
      num_seeds: if given, `train` takes keys `[num_seeds]` and vmaps the iteration inside the
        scan, so callbacks receive every member's metrics at once (leading axis `[num_seeds]`).

    Returns:
      `train(key) -> (final TrainState, metrics)`, a pure function to `jax.jit`.
    """
    loop = _Loop(config)

    def hooks(state: TrainState, metrics: dict) -> None:
        it = state.iteration
        if callback is not None:
            report = (it % loop.log_every == 0) | (it == config.num_iterations) | (it == 1)
            jax.lax.cond(
                report,
                lambda: jax.debug.callback(callback, _report(state, metrics)),
                lambda: None,
            )
        if checkpoint_callback is not None and loop.checkpoint_every:
            jax.lax.cond(
                it % loop.checkpoint_every == 0,
                lambda: jax.debug.callback(checkpoint_callback, state),
                lambda: None,
            )

    if num_seeds is None:

        def train(key: jax.Array):
            def body(state, _):
                state, metrics = loop.iteration(state)
                hooks(state, metrics)
                return state, metrics

            return jax.lax.scan(body, loop.init(key), None, length=config.num_iterations)

    else:

        def train(keys: jax.Array):
            # The iteration counter and the replay's write counter are the same for every
            # seed; keeping them unbatched keeps `lax.cond` (when to learn, when to evaluate)
            # a real branch instead of a select that would run both sides.
            axes = _seed_axes(jax.eval_shape(loop.init, keys[0]))
            iteration = jax.vmap(loop.iteration, in_axes=(axes,), out_axes=(axes, 0))

            def body(state, _):
                state, metrics = iteration(state)
                hooks(state, metrics)
                return state, metrics

            state, metrics = jax.lax.scan(
                body, loop.init_seeds(keys), None, length=config.num_iterations
            )
            return state, jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), metrics)

    train.loop = loop  # the env, agent and helpers, for callers that need them
    return train
