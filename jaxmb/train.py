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

The state carries everything a run needs to continue (params, optimiser, target params,
replay, env states, keys, counters, and the metric history), so `train.run(restored_state)`
resumes a checkpoint through the same compiled program. A NaN guard skips any SGD update whose
loss terms or gradient norm are not finite and freezes learning from then on
(`TrainState.halted`); `check_finite` turns that into an error naming the update and terms.

Metrics (`metrics` dict = `final_state.history`, each `[num_iterations]`, with a leading seed
axis under vmap; iterations not run hold NaN, or -1 for integer metrics):
  `env_steps`                environment steps taken so far (all training envs);
  `train/episode_return`     mean return of the training episodes that ended in the
                             iteration (NaN if none ended);
  `train/episodes`           number of training episodes that ended in the iteration;
  `eval/episode_return`      mean greedy return over `num_eval_envs` episodes, at the
                             iterations that evaluate (NaN elsewhere); for two-player
                             games, the agent's mean outcome (+1 win, -1 loss) against a
                             uniform random legal player;
  `eval/win_rate`, `eval/win_rate_previous`   two-player games only: the share of games
                             won against the random player, and against the params of the
                             previous evaluation (a frozen earlier checkpoint);
  `search/acting_simulations`  simulations the training envs' searches ran in the
                             iteration, read from the trees (0 with for_acting_train off);
  `search/target_simulations`  simulations run for the targets of one SGD update (reanalyse;
                             0 with for_targets off or reanalyse_fraction 0), mean over the
                             iteration's updates;
  `learning`                 1 where SGD ran in the iteration;
  `loss`, `loss/<term>`, `grad_norm`   means over the iteration's SGD updates (NaN before
                             learning starts).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import flax.struct
import gymnasium
import jax
import jax.numpy as jnp

from jaxmb import envs as _envs_pkg  # noqa: F401  (registers the namespace package)
from jaxmb import hparams as hparams_lib
from jaxmb import replay as replay_lib
from jaxmb.agents.muzero import MuZero, MuZeroState
from jaxmb.config import Config, ConfigError
from jaxmb.envs import (
    ActionRepeat,
    EpisodeStatistics,
    HostEnv,
    MissingDependencyError,
    UnknownEnvError,
    VectorEnv,
    make,
)

Callback = Callable[[dict[str, Any]], None]


@flax.struct.dataclass
class TrainState:
    agent: MuZeroState
    replay: replay_lib.ReplayState
    env_state: Any  # batched env state [N, ...]
    obs: jax.Array  # [N, *obs_shape]
    key: jax.Array
    iteration: jax.Array  # [] int32: iterations done
    last_train_return: jax.Array  # [] float32, carried for progress reports
    last_eval_return: jax.Array  # [] float32
    history: dict  # metric name -> [num_iterations], filled as iterations run
    halted: jax.Array  # [] bool: a non-finite loss or gradient stopped learning
    nan_update: jax.Array  # [] int32: the SGD update that was non-finite (-1: none)
    nan_terms: jax.Array  # [] int32: bit i set if `_Loop.guarded_terms[i]` was non-finite
    # Two-player envs: the params of the last evaluation, the "previous checkpoint" opponent
    # (None for one-player envs).
    opponent_params: Any = None


def build_env(config: Config):
    """The env and its params with the config's overrides applied.

    Raises:
      ConfigError: naming `env.id` (an unknown id, with the close ones; a missing optional
        package, with the `pip install` to run) or `env.params` (a param the env lacks).
    """
    try:
        env, params = make(config.env.id, **dict(config.env.params))
    except (UnknownEnvError, MissingDependencyError) as err:  # before ValueError: a subclass
        raise ConfigError(str(err), "env.id") from err
    except (ValueError, TypeError) as err:
        raise ConfigError(str(err), "env.params") from err
    discretize = config.env.discretize
    if discretize.mode != "none":
        from jaxmb.envs.discretize import Discretize

        try:
            env = Discretize(
                env,
                mode=discretize.mode,
                values_per_dim=discretize.values_per_dim,
                push=discretize.push,
            )
        except (ValueError, TypeError) as err:
            raise ConfigError(str(err), "env.discretize") from err
    if config.env.action_repeat > 1:
        if isinstance(env, HostEnv):
            raise ConfigError(
                f"{config.env.id} is stepped on the host, where action repeat would cost a "
                "host round trip per repeated step; use the suite's own frame skip where it "
                "has one (ale: takes env.params={frame_skip: 4})",
                "env.action_repeat",
            )
        try:
            env = ActionRepeat(env, config.env.action_repeat)
        except ValueError as err:
            raise ConfigError(str(err), "env.action_repeat") from err
    return env, params


def build_agent(config: Config, env, env_params=None) -> MuZero:
    """The agent for `env`; `env_params` are needed for `agent.search.model=env`."""
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
    return MuZero(
        config.agent,
        env.observation_space,
        env.action_space,
        num_players=getattr(env, "num_players", 1),
        env=env if env_model else None,
        env_params=env_params if env_model else None,
    )


def _missing(dtype) -> float | int:
    """The history's value for iterations not run yet: NaN, or -1 for integer metrics."""
    return jnp.nan if jnp.issubdtype(dtype, jnp.floating) else -1


def _nanmean_where(values: jax.Array, mask: jax.Array) -> jax.Array:
    count = jnp.sum(mask)
    total = jnp.sum(jnp.where(mask, values, 0.0))
    return jnp.where(count > 0, total / jnp.maximum(count, 1), jnp.nan)


class _Loop:
    """The pieces of the compiled loop, as functions of explicit state.

    `config` decides the program's structure; `hparams` (dotted key -> scalar, possibly a
    tracer; see `jaxmb.hparams`) replaces numeric leaves in what the agent and the replay
    sampler read (`self.hp`).
    """

    def __init__(self, config: Config):
        self.config = config
        self.hp = config
        self.env, self.env_params = build_env(config)
        self.agent = build_agent(config, self.env, self.env_params)
        self.train_env = VectorEnv(EpisodeStatistics(self.env), config.env.num_envs)
        self.eval_env = VectorEnv(self.env, config.env.num_eval_envs)
        loss_cfg = config.agent.loss
        self.window = loss_cfg.unroll_steps + loss_cfg.td_steps + 1
        self.steps_per_env = config.replay.capacity // config.env.num_envs
        self.eval_every = config.every(config.train.eval_every) if config.train.eval_every else 0
        self.log_every = config.every(config.train.log_every)
        ckpt = config.train.checkpoint_every
        self.checkpoint_every = config.every(ckpt) if ckpt else 0
        weights = config.agent.loss.weights
        #: What the NaN guard checks, in the bit order of `TrainState.nan_terms`.
        self.guarded_terms = (*(t for t, w in weights.items() if w), "grad_norm")
        self.two_player = getattr(self.env, "num_players", 1) == 2
        self.symmetries = None
        if config.replay.augment_symmetries:
            self.symmetries = getattr(self.env, "symmetries", None)
            if self.symmetries is None:
                raise ConfigError(
                    f"{config.env.id} has no symmetries to augment with (an env offers them "
                    "as its `symmetries`, as pgx:go_9x9 does)",
                    "replay.augment_symmetries",
                )
        self._shape_cache: dict[str, Any] = {}  # see `_cached_shapes`
        # `iteration` and `learn` are traced twice in a program: for their shapes (the
        # history's metrics, the skip branch's NaN metrics) and for real. As nested jits, the
        # second call reuses the first one's trace (same function, same shapes), which halves
        # the time to build a program. A loop with traced hparams closes over tracers, so its
        # copies call the plain methods (`with_hparams`).
        self._iteration = jax.jit(self.iteration)
        self._learn = jax.jit(self.learn)

    def with_hparams(self, hparams: dict[str, Any]) -> _Loop:
        """This loop with an agent that reads `hparams` (traced scalars) in place of the
        config's values. Everything else, the envs included, is shared: envs must not be built
        inside a trace (some compute their spaces with jnp). The shape cache is shared too:
        hparams change values, never shapes."""
        loop = copy.copy(self)
        loop.hp = hparams_lib.substitute(self.config, hparams)
        loop.agent = build_agent(loop.hp, self.env, self.env_params)
        loop._iteration, loop._learn = loop.iteration, loop.learn
        return loop

    # --------------------------------------------------------------------------- init

    def init(self, key: jax.Array) -> TrainState:
        agent_key, env_key, key = jax.random.split(key, 3)
        agent_state = self.agent.init(agent_key)
        obs, env_state = self.train_env.reset(env_key, self.env_params)
        example = self._example_step(obs)
        replay = replay_lib.init(example, self.config.env.num_envs, self.steps_per_env)
        nan = jnp.full((), jnp.nan, jnp.float32)
        state = TrainState(
            agent=agent_state,
            replay=replay,
            env_state=env_state,
            obs=obs,
            key=key,
            iteration=jnp.zeros((), jnp.int32),
            last_train_return=nan,
            last_eval_return=nan,
            history={},
            halted=jnp.zeros((), bool),
            nan_update=jnp.full((), -1, jnp.int32),
            nan_terms=jnp.zeros((), jnp.int32),
            opponent_params=agent_state.params if self.two_player else None,
        )
        shapes = self._cached_shapes("iteration", lambda: self._iteration(state)[1])
        history = {
            name: jnp.full((self.config.num_iterations,), _missing(shape.dtype), shape.dtype)
            for name, shape in shapes.items()
        }
        return state.replace(history=history)

    def init_seeds(self, keys: jax.Array) -> TrainState:
        """The seed-batched state (`make_train(..., num_seeds=...)`): leading `[num_seeds]`
        axis everywhere but the counters shared by all seeds."""
        if keys.shape[0] == 1:  # no vmap of one: see `make_train`
            return _with_seed_axis(self.init(keys[0]))
        axes = _seed_axes(self._cached_shapes("init", lambda: self.init(keys[0])))
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
            action, info = agent.act(
                state.agent,
                obs,
                act_key,
                training=True,
                action_mask=mask,
                env_state=env_state.env_state,  # under EpisodeStatistics: the env's own
            )
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
            stats = (env_info["episode_done"], env_info["episode_return"], info["simulations"])
            return (env_state, next_obs), (step, stats)

        keys = jax.random.split(key, self.config.train.rollout_steps)
        (env_state, obs), (steps, stats) = jax.lax.scan(
            one_step, (state.env_state, state.obs), keys
        )
        steps = jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), steps)  # [T, N] -> [N, T]
        return env_state, obs, steps, stats

    # --------------------------------------------------------------------------- learning

    def learn(
        self,
        agent_state: MuZeroState,
        replay: replay_lib.ReplayState,
        key: jax.Array,
        guard: tuple[jax.Array, jax.Array, jax.Array],
    ):
        """`updates_per_iteration` SGD updates.

        The NaN guard: an update whose loss terms or gradient norm are not finite is not
        applied, and once `guard = (halted, nan_update, nan_terms)` says halted (see
        `TrainState`), no later update is either. Returns the agent state, the replay, mean
        metrics and the new guard.
        """
        cfg = self.hp.replay
        names = self.guarded_terms

        def one_update(carry, update_key):
            agent_state, replay, guard = carry
            halted, nan_update, nan_terms = guard
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
            data = sample.data
            if self.symmetries is not None:
                update_key, augment_key = jax.random.split(update_key)
                data = replay_lib.apply_symmetries(data, self.symmetries, augment_key)
            batch = dict(data, weight=sample.weight)
            new_state, metrics = self.agent.update(agent_state, batch, update_key)
            priority = metrics.pop("priority")
            values = [metrics["grad_norm" if n == "grad_norm" else f"loss/{n}"] for n in names]
            bad = jnp.stack([~jnp.isfinite(v) for v in values])
            ok = ~jnp.any(bad) & ~halted
            first_bad = ~ok & ~halted
            nan_update = jnp.where(first_bad, new_state.num_updates, nan_update)
            nan_terms = jnp.where(
                first_bad, jnp.sum(bad.astype(jnp.int32) << jnp.arange(len(names))), nan_terms
            )
            agent_state = jax.tree.map(
                lambda new, old: jnp.where(ok, new, old), new_state, agent_state
            )
            if cfg.prioritized:
                updated = replay_lib.update_priorities(
                    replay, sample.env_index, sample.start_slot, priority
                )
                replay = jax.tree.map(lambda new, old: jnp.where(ok, new, old), updated, replay)
            return (agent_state, replay, (halted | ~ok, nan_update, nan_terms)), metrics

        keys = jax.random.split(key, self.config.updates_per_iteration)
        (agent_state, replay, guard), metrics = jax.lax.scan(
            one_update, (agent_state, replay, guard), keys
        )
        return agent_state, replay, jax.tree.map(jnp.mean, metrics), guard

    def _metric_template(self, agent_state, replay, key):
        guard = (jnp.zeros((), bool), jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))
        return self._cached_shapes("learn", lambda: self._learn(agent_state, replay, key, guard)[2])

    def _cached_shapes(self, name: str, fn) -> Any:
        """`jax.eval_shape(fn)`, computed once per loop. The shapes of a seed's state and of
        an iteration's metrics depend on the config only, but tracing `iteration` (and the
        `learn` inside it) takes seconds: without this, building the program traced them
        several times over."""
        if name not in self._shape_cache:
            self._shape_cache[name] = jax.eval_shape(fn)
        return self._shape_cache[name]

    # --------------------------------------------------------------------------- evaluation

    def _play_episodes(self, key: jax.Array, choose) -> jax.Array:
        """One episode in each of the `num_eval_envs` eval envs (capped at `eval_max_steps`).

        `choose(env_state, obs, mask, key) -> (actions [N], credit [N])` picks the actions;
        each step's reward is added to an env's total times its `credit` (1 for one player;
        +1 or -1 in a two-player game, by whose move it was). Returns the totals `[N]`.
        """
        env, params = self.eval_env, self.env_params
        num = self.config.env.num_eval_envs
        reset_key, key = jax.random.split(key)
        obs, env_state = env.reset(reset_key, params)

        def cond(carry):
            t, _, _, _, finished, _ = carry
            return (t < self.config.env.eval_max_steps) & ~jnp.all(finished)

        def body(carry):
            t, env_state, obs, totals, finished, key = carry
            key, act_key, env_key = jax.random.split(key, 3)
            mask = env.action_mask(env_state, params)
            action, credit = choose(env_state, obs, mask, act_key)
            obs, env_state, reward, terminated, truncated, _ = env.step(
                env_key, env_state, action, params
            )
            totals = totals + jnp.where(finished, 0.0, credit * reward)
            finished = finished | terminated | truncated
            return t + 1, env_state, obs, totals, finished, key

        carry = (
            jnp.zeros((), jnp.int32),
            env_state,
            obs,
            jnp.zeros((num,), jnp.float32),
            jnp.zeros((num,), bool),
            key,
        )
        return jax.lax.while_loop(cond, body, carry)[3]

    def evaluate(self, agent_state: MuZeroState, key: jax.Array) -> jax.Array:
        """Mean return of one greedy episode in each of `num_eval_envs` envs."""

        def choose(env_state, obs, mask, key):
            action, _ = self.agent.act(
                agent_state, obs, key, training=False, action_mask=mask, env_state=env_state
            )
            return action, jnp.ones(action.shape, jnp.float32)

        return jnp.mean(self._play_episodes(key, choose))

    def evaluate_two_player(
        self, agent_state: MuZeroState, key: jax.Array, opponent_params: Any | None = None
    ) -> tuple[jax.Array, jax.Array]:
        """Games of the agent against a uniform random legal player (`opponent_params`
        None; the agent acts greedily) or against the agent with `opponent_params` (both
        sides act as when training, so that the games differ). The agent is player id 0,
        which pgx gives black or white at random.

        Returns the agent's mean outcome (+1 win, -1 loss, 0 unfinished) and win rate over
        `num_eval_envs` games.
        """
        to_play = jax.vmap(self.env.to_play)
        against_random = opponent_params is None

        def choose(env_state, obs, mask, key):
            agent_key, other_key = jax.random.split(key)
            mover = to_play(env_state)
            mine, _ = self.agent.act(
                agent_state,
                obs,
                agent_key,
                training=not against_random,
                action_mask=mask,
                env_state=env_state,
            )
            if against_random:
                theirs = jax.random.categorical(other_key, jnp.where(mask, 0.0, -jnp.inf))
            else:
                opponent = agent_state.replace(params=opponent_params)
                theirs, _ = self.agent.act(
                    opponent, obs, other_key, training=True, action_mask=mask, env_state=env_state
                )
            # Rewards are the mover's: the agent's outcome is minus the opponent's reward.
            return jnp.where(mover == 0, mine, theirs), jnp.where(mover == 0, 1.0, -1.0)

        outcome = self._play_episodes(key, choose)
        return jnp.mean(outcome), jnp.mean((outcome > 0).astype(jnp.float32))

    @property
    def eval_metric_names(self) -> tuple[str, ...]:
        """The keys `evaluate_metrics` returns (each a float32 scalar)."""
        if self.two_player:
            return ("eval/episode_return", "eval/win_rate", "eval/win_rate_previous")
        return ("eval/episode_return",)

    def evaluate_metrics(
        self, agent_state: MuZeroState, key: jax.Array, opponent_params: Any = None
    ) -> dict:
        """The `eval/*` metrics of one evaluation (see the module docstring)."""
        if not self.two_player:
            return {"eval/episode_return": self.evaluate(agent_state, key)}
        random_key, previous_key = jax.random.split(key)
        outcome, win_rate = self.evaluate_two_player(agent_state, random_key)
        _, win_rate_previous = self.evaluate_two_player(agent_state, previous_key, opponent_params)
        return {
            "eval/episode_return": outcome,
            "eval/win_rate": win_rate,
            "eval/win_rate_previous": win_rate_previous,
        }

    # --------------------------------------------------------------------------- iteration

    def iteration(self, state: TrainState) -> tuple[TrainState, dict]:
        cfg = self.config
        key, collect_key, learn_key, eval_key = jax.random.split(state.key, 4)
        env_state, obs, steps, stats = self.collect(state, collect_key)
        episode_done, episode_return, acting_simulations = stats
        replay = replay_lib.add(state.replay, steps)

        total_written = replay.num_written * cfg.env.num_envs
        can_learn = (total_written >= cfg.replay.min_size) & (
            replay_lib.num_valid_starts(replay, self.window) > 0
        )
        template = self._metric_template(state.agent, replay, learn_key)

        def skip(agent_state, replay, key, guard):
            nan_metrics = jax.tree.map(lambda s: jnp.full(s.shape, jnp.nan, s.dtype), template)
            return agent_state, replay, nan_metrics, guard

        guard = (state.halted, state.nan_update, state.nan_terms)
        agent_state, replay, learn_metrics, (halted, nan_update, nan_terms) = jax.lax.cond(
            can_learn, self._learn, skip, state.agent, replay, learn_key, guard
        )

        iteration = state.iteration + 1
        last = iteration == cfg.num_iterations
        nan = jnp.full((), jnp.nan, jnp.float32)
        no_eval = {k: nan for k in self.eval_metric_names}
        if self.eval_every:
            do_eval = (iteration % self.eval_every == 0) | last
            eval_metrics = jax.lax.cond(
                do_eval,
                lambda: self.evaluate_metrics(agent_state, eval_key, state.opponent_params),
                lambda: no_eval,
            )
        else:
            do_eval, eval_metrics = jnp.zeros((), bool), no_eval
        eval_return = eval_metrics["eval/episode_return"]
        opponent_params = state.opponent_params
        if self.two_player:  # the next evaluation plays against this one's params
            opponent_params = jax.tree.map(
                lambda new, old: jnp.where(do_eval, new, old), agent_state.params, opponent_params
            )
        train_return = _nanmean_where(episode_return, episode_done)
        metrics = {
            "env_steps": iteration * cfg.steps_per_iteration,
            "train/episode_return": train_return,
            "train/episodes": jnp.sum(episode_done).astype(jnp.int32),
            **eval_metrics,
            "search/acting_simulations": jnp.sum(acting_simulations).astype(jnp.int32),
            "learning": can_learn.astype(jnp.int32),
            **learn_metrics,
        }
        new_state = state.replace(
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
            halted=halted,
            nan_update=nan_update,
            nan_terms=nan_terms,
            opponent_params=opponent_params,
        )
        return new_state, metrics

    def step(self, state: TrainState, active: jax.Array | None = None):
        """One iteration, recorded in `state.history`.

        A no-op once all iterations are done, so a resumed run compiles the same program.
        `active` may add a condition; it must not differ between the members of a vmap, or
        the branch becomes a select that runs both sides. (That is why a halted seed is not
        skipped here: its NaN guard keeps its parameters, and the seed-batched program stops
        when every seed has halted.)
        """

        def run(state):
            # Without the history: the same shapes as `init`'s call, so one trace serves both.
            new_state, metrics = self._iteration(state.replace(history={}))
            index = state.iteration
            history = {k: v.at[index].set(metrics[k]) for k, v in state.history.items()}
            return new_state.replace(history=history), metrics

        def idle(state):
            # Every metric is a scalar per iteration; the history already knows names and dtypes.
            return state, {
                k: jnp.full((), _missing(v.dtype), v.dtype) for k, v in state.history.items()
            }

        running = state.iteration < self.config.num_iterations
        if active is not None:
            running = running & active
        return jax.lax.cond(running, run, idle, state)


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


def _with_seed_axis(state: TrainState) -> TrainState:
    """One seed's state as a seed-batched state of one member (`_seed_axes` layout)."""
    return _map_seed_leaves(lambda x: x[None], state)


def _without_seed_axis(state: TrainState) -> TrainState:
    """The inverse of `_with_seed_axis`."""
    return _map_seed_leaves(lambda x: x[0], state)


def _map_seed_leaves(fn, state: TrainState) -> TrainState:
    """`fn` on every leaf with a seed axis in `_seed_axes`; the shared counters stay."""
    return jax.tree.map(
        lambda axis, x: x if axis is None else fn(x),
        _seed_axes(state),
        state,
        is_leaf=lambda axis: axis is None,
    )


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
        `num_seeds=1` runs the single-seed program with that axis added, without a vmap.

    Returns:
      `train(key, hparams=None) -> (final TrainState, metrics)`, a pure function to
      `jax.jit`. `hparams` maps sweepable config keys to traced scalars (see
      `jaxmb.hparams`): `jax.jit(jax.vmap(train))(keys, hparams)` sweeps them in one program,
      and with `num_seeds=S` they are `[S]` arrays, one value per member.
    """
    loop = _Loop(config)

    def hooks(state: TrainState, metrics: dict, active: jax.Array) -> None:
        it = state.iteration
        if callback is not None:
            report = (it % loop.log_every == 0) | (it == config.num_iterations) | (it == 1)
            jax.lax.cond(
                report & active,
                lambda: jax.debug.callback(callback, _report(state, metrics)),
                lambda: None,
            )
        if checkpoint_callback is not None and loop.checkpoint_every:
            # A halted state is never checkpointed: the last good checkpoint stays the latest.
            jax.lax.cond(
                (it % loop.checkpoint_every == 0) & active & ~jnp.any(state.halted),
                lambda: jax.debug.callback(checkpoint_callback, state),
                lambda: None,
            )

    def loop_for(hparams: dict | None) -> _Loop:
        """The loop reading `hparams` (traced scalars); the static one when there are none."""
        if not hparams:
            return loop
        hparams_lib.check_keys(config, hparams)
        return loop.with_hparams(hparams)

    def check_hparams(hparams: dict | None, batch: int | None) -> None:
        if not hparams:
            return
        hparams_lib.check_keys(config, hparams)
        for key, value in hparams.items():
            shape = jnp.shape(value)
            want = () if batch is None else (batch,)
            if shape != want:
                raise ValueError(
                    f"hparams[{key!r}] has shape {shape}; train takes "
                    + ("scalars (vmap train to sweep)" if batch is None else f"[{batch}] arrays")
                )

    if num_seeds is None:
        init = loop.init

        def step(state, hparams):
            return loop_for(hparams).step(state)
    elif num_seeds == 1:
        # One member runs the single-seed program with a leading [1] axis added, not a vmap
        # of one: on a CPU that vmap made every matmul a batched one and ran at 0.73x the
        # single-seed speed (benchmarks/RESULTS.md), and batching the traced iteration took
        # seconds of every build. The state, metrics and callbacks look the same either way.
        init = loop.init_seeds

        def step(state, hparams):
            hparams = None if not hparams else {k: v[0] for k, v in hparams.items()}
            active = ~jnp.all(state.halted)
            new_state, metrics = loop_for(hparams).step(_without_seed_axis(state), active)
            return _with_seed_axis(new_state), jax.tree.map(lambda x: x[None], metrics)
    else:
        init = loop.init_seeds

        def step(state, hparams):
            # The iteration counter and the replay's write counter are the same for every
            # seed; keeping them unbatched keeps `lax.cond` (when to learn, when to evaluate)
            # a real branch instead of a select that would run both sides.
            axes = _seed_axes(state)
            active = ~jnp.all(state.halted)  # one value for all seeds: a real branch
            return jax.vmap(
                lambda s, h, a: loop_for(h).step(s, a),
                in_axes=(axes, 0, None),
                out_axes=(axes, 0),
            )(state, hparams, active)

    def run(state: TrainState, hparams: dict | None = None) -> tuple[TrainState, dict]:
        """Runs the iterations left in `state` (all of them for a fresh state).

        `hparams` (optional) maps sweepable config keys (`jaxmb.hparams.sweepable_keys`) to
        scalars, or to `[num_seeds]` arrays for a seed-batched `train`: one value per member.
        """
        check_hparams(hparams, num_seeds)
        hparams = (
            None if not hparams else {k: jnp.asarray(v, jnp.float32) for k, v in hparams.items()}
        )

        def body(state, _):
            active = state.iteration < config.num_iterations
            state, metrics = step(state, hparams)
            hooks(state, metrics, active)
            return state, None

        state, _ = jax.lax.scan(body, state, None, length=config.num_iterations)
        return state, state.history

    def train(key: jax.Array, hparams: dict | None = None) -> tuple[TrainState, dict]:
        return run(init(key), hparams)

    train.loop = loop  # the env, agent and helpers, for callers that need them
    train.init = init  # key(s) -> fresh state
    train.run = run  # (state, hparams=None) -> (final state, metrics): resumes a restored state
    return train


class NonFiniteLossError(FloatingPointError):
    """Training stopped because a loss term or the gradient norm was not finite."""


def check_finite(loop: _Loop, state: TrainState) -> None:
    """Raises `NonFiniteLossError` naming the SGD update and the loss terms if the NaN guard
    halted any seed of `state` (single or seed-batched)."""
    halted = jax.device_get(state.halted).reshape(-1)
    if not halted.any():
        return
    updates = jax.device_get(state.nan_update).reshape(-1)
    bits = jax.device_get(state.nan_terms).reshape(-1)
    lines = []
    for seed in map(int, halted.nonzero()[0]):
        terms = [n for i, n in enumerate(loop.guarded_terms) if int(bits[seed]) >> i & 1]
        lines.append(f"seed {seed}: SGD update {int(updates[seed])}, non-finite {', '.join(terms)}")
    raise NonFiniteLossError(
        "non-finite loss; training stopped before applying it ("
        + "; ".join(lines)
        + "). The parameters and checkpoints keep the last finite update."
    )
