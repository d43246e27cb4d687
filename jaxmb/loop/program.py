"""The program: one iteration of the loop, and `make_train` around it.

`Loop` assembles the pieces (`collect.py`, `learn.py`, `evaluation.py`) for one config and
names no agent: the agent comes from the registry (`jaxmb.agents.make`, by `agent.kind`) and
is used only through the protocol of `jaxmb.agents.base`.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jaxmb import agents as agents_lib
from jaxmb import hparams as hparams_lib
from jaxmb import memory as memory_lib
from jaxmb import replay as replay_lib
from jaxmb import rewards as rewards_lib
from jaxmb import transfer as transfer_lib
from jaxmb.config import Config, ConfigError
from jaxmb.envs import EpisodeStatistics, VectorEnv
from jaxmb.loop import collect as collect_lib
from jaxmb.loop import learn as learn_lib
from jaxmb.loop.build import build_env
from jaxmb.loop.evaluation import Evaluator, unseen_levels
from jaxmb.loop.state import (
    TrainState,
    missing,
    nanmean_where,
    seed_axes,
    with_seed_axis,
    without_seed_axis,
)

Callback = Callable[[dict[str, Any]], None]


def build_agent(config: Config, env, env_params=None):
    """The agent `config.agent.kind` names (`jaxmb.agents.make`)."""
    return agents_lib.make(config, env, env_params)


class Loop:
    """The pieces of the compiled loop for one config, as functions of explicit state.

    `config` decides the program's structure; `hp` is the config whose numeric leaves may be
    traced hyperparameters (`with_hparams`; see `jaxmb.hparams`), which the agent, the replay
    sampler and the reward mix read.

    Attributes: `env`, `env_params`, `agent`, `evaluator`, `transform` (the reward transform,
    None for the identity), `symmetries` (`replay.augment_symmetries`), `two_player`.
    """

    def __init__(self, config: Config):
        self.config = config
        self.hp = config
        self.env, self.env_params = build_env(config)
        self.agent = build_agent(config, self.env, self.env_params)
        self.train_env = VectorEnv(EpisodeStatistics(self.env), config.env.num_envs)
        self.evaluator = Evaluator(
            self.agent,
            self.env,
            self.env_params,
            num_envs=config.env.num_eval_envs,
            max_steps=config.env.eval_max_steps,
            unseen_params=(
                unseen_levels(self.env_params, config.env.id)
                if config.env.eval_unseen_levels
                else None
            ),
        )
        self.transform = rewards_lib.make(config, self.agent)
        self.steps_per_env = config.replay.capacity // config.env.num_envs
        self.eval_every = config.every(config.train.eval_every) if config.train.eval_every else 0
        self.log_every = config.every(config.train.log_every)
        ckpt = config.train.checkpoint_every
        self.checkpoint_every = config.every(ckpt) if ckpt else 0
        self.two_player = self.evaluator.two_player
        self.symmetries = self._symmetries()
        self._shape_cache: dict[str, Any] = {}  # see `_cached_shapes`
        # `iteration` and `learn` are traced twice in a program: for their shapes (the
        # history's metrics, the skip branch's NaN metrics) and for real. As nested jits, the
        # second call reuses the first one's trace (same function, same shapes), which halves
        # the time to build a program. A loop with traced hparams closes over tracers, so its
        # copies call the plain methods (`with_hparams`).
        self._iteration = jax.jit(self.iteration)
        self._learn = jax.jit(self.learn)

    def _symmetries(self):
        if not self.config.replay.augment_symmetries:
            return None
        symmetries = getattr(self.env, "symmetries", None)
        if symmetries is None:
            raise ConfigError(
                f"{self.config.env.id} has no symmetries to augment with (an env offers them "
                "as its `symmetries`, as pgx:go_9x9 does)",
                "replay.augment_symmetries",
            )
        return symmetries

    @property
    def window(self) -> int:
        return self.agent.window

    def with_hparams(self, hparams: dict[str, Any]) -> Loop:
        """This loop with an agent that reads `hparams` (traced scalars) in place of the
        config's values. Everything else, the envs included, is shared: envs must not be built
        inside a trace (some compute their spaces with jnp). The shape cache is shared too:
        hparams change values, never shapes."""
        loop = copy.copy(self)
        loop.hp = hparams_lib.substitute(self.config, hparams)
        loop.agent = build_agent(loop.hp, self.env, self.env_params)
        loop.evaluator = copy.copy(self.evaluator)
        loop.evaluator.agent = loop.agent
        loop._iteration, loop._learn = loop.iteration, loop.learn
        return loop

    # --------------------------------------------------------------------------- init

    @functools.cached_property
    def transfer_source(self) -> transfer_lib.Source | None:
        """The parts `agent.init_from` copies, loaded from disk on first use (never on a
        resumed run, which restores its own state instead)."""
        return transfer_lib.load_source(self.config, self.agent)

    def init(self, key: jax.Array, source_params: Any = None) -> TrainState:
        """A fresh state; `source_params` (one member's transferred groups, see
        `jaxmb.transfer`) replace those parts of the fresh parameters."""
        agent_key, env_key, key = jax.random.split(key, 3)
        agent_state = self.agent.init(agent_key)
        if source_params is not None:
            agent_state = transfer_lib.apply(agent_state, source_params)
        obs, env_state = self.train_env.reset(env_key, self.env_params)
        example = collect_lib.record_template(self.agent, obs)
        replay = replay_lib.init(example, self.config.env.num_envs, self.steps_per_env)
        reward_state = None
        if self.transform is not None:
            key, reward_key = jax.random.split(key)
            reward_state = self.transform.init(reward_key, obs[0])
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
            reward=reward_state,
        )
        shapes = self._cached_shapes("iteration", lambda: self._iteration(state)[1])
        history = {
            name: jnp.full((self.config.num_iterations,), missing(shape.dtype), shape.dtype)
            for name, shape in shapes.items()
        }
        return state.replace(history=history)

    def init_seeds(self, keys: jax.Array, *, transfer: bool = True) -> TrainState:
        """The seed-batched state (`make_train(..., num_seeds=...)`): leading `[num_seeds]`
        axis everywhere but the counters shared by all seeds. With `transfer` (and
        `agent.init_from` set), member i starts from the source run's member i (or its only
        member)."""
        num_seeds = keys.shape[0]
        source = None
        if transfer and self.transfer_source is not None:
            source = self.transfer_source.for_members(num_seeds)
        one = None if source is None else jax.tree.map(lambda x: x[0], source)
        if num_seeds == 1:  # no vmap of one: see `make_train`
            return with_seed_axis(self.init(keys[0], one))
        axes = seed_axes(self._cached_shapes("init", lambda: self.init(keys[0], one)))
        return jax.vmap(self.init, in_axes=(0, 0), out_axes=axes)(keys, source)

    def init_single(self, key: jax.Array) -> TrainState:
        """One seed's fresh state, transferred parts included (member 0 of the source)."""
        source = None
        if self.transfer_source is not None:
            source = jax.tree.map(lambda x: x[0], self.transfer_source.for_members(1))
        return self.init(key, source)

    # --------------------------------------------------------------------------- pieces

    def collect(self, state: TrainState, key: jax.Array):
        return collect_lib.collect(
            self.agent,
            self.train_env,
            self.env_params,
            state.agent,
            state.env_state,
            state.obs,
            key,
            rollout_steps=self.config.train.rollout_steps,
            random_action_prob=self._random_action_prob(),
        )

    def _random_action_prob(self):
        """`train.random_action_prob`, or None where it is a plain 0 (not swept): the program
        then has no random-action code at all."""
        prob = self.hp.train.random_action_prob
        if isinstance(prob, int | float) and prob == 0:
            return None
        return prob

    def learn(self, agent_state, replay, key, guard, reward_state=None, env_steps=None):
        """`updates_per_iteration` SGD updates (`jaxmb.loop.learn.learn`)."""
        return learn_lib.learn(
            self.agent,
            agent_state,
            replay,
            key,
            guard,
            replay_config=self.hp.replay,
            num_updates=self.config.updates_per_iteration,
            symmetries=self.symmetries,
            transform=self.transform,
            reward_state=reward_state,
            reward_config=self.hp.reward,
            env_steps=env_steps,
        )

    def evaluate(self, agent_state, key: jax.Array) -> jax.Array:
        return self.evaluator.evaluate(agent_state, key)

    def evaluate_two_player(self, agent_state, key, opponent_params=None):
        return self.evaluator.evaluate_two_player(agent_state, key, opponent_params)

    def _metric_template(self, agent_state, replay, key, reward_state, env_steps):
        guard = (jnp.zeros((), bool), jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))
        return self._cached_shapes(
            "learn",
            lambda: self._learn(agent_state, replay, key, guard, reward_state, env_steps)[2],
        )

    def _cached_shapes(self, name: str, fn) -> Any:
        """`jax.eval_shape(fn)`, computed once per loop. The shapes of a seed's state and of
        an iteration's metrics depend on the config only, but tracing `iteration` (and the
        `learn` inside it) takes seconds: without this, building the program traced them
        several times over."""
        if name not in self._shape_cache:
            self._shape_cache[name] = jax.eval_shape(fn)
        return self._shape_cache[name]

    # --------------------------------------------------------------------------- iteration

    def iteration(self, state: TrainState) -> tuple[TrainState, dict]:
        cfg = self.config
        key, collect_key, learn_key, eval_key = jax.random.split(state.key, 4)
        env_state, obs, steps, stats, infos = self.collect(state, collect_key)
        episode_done, episode_return, unlocked = stats
        replay = replay_lib.add(state.replay, steps)
        reward_state = state.reward
        if self.transform is not None:
            reward_state = self.transform.observe(reward_state, steps)
        iteration = state.iteration + 1
        env_steps = iteration * cfg.steps_per_iteration

        total_written = replay.num_written * cfg.env.num_envs
        can_learn = (total_written >= cfg.replay.min_size) & (
            replay_lib.num_valid_starts(replay, self.window) > 0
        )
        template = self._metric_template(state.agent, replay, learn_key, reward_state, env_steps)

        def skip(agent_state, replay, key, guard, reward_state, env_steps):
            nan_metrics = jax.tree.map(lambda s: jnp.full(s.shape, jnp.nan, s.dtype), template)
            return agent_state, replay, nan_metrics, guard, reward_state

        guard = (state.halted, state.nan_update, state.nan_terms)
        agent_state, replay, learn_metrics, guard, reward_state = jax.lax.cond(
            can_learn,
            self._learn,
            skip,
            state.agent,
            replay,
            learn_key,
            guard,
            reward_state,
            env_steps,
        )
        halted, nan_update, nan_terms = guard

        last = iteration == cfg.num_iterations
        nan = jnp.full((), jnp.nan, jnp.float32)
        no_eval = {k: nan for k in self.evaluator.metric_names}
        if self.eval_every:
            do_eval = (iteration % self.eval_every == 0) | last
            eval_metrics = jax.lax.cond(
                do_eval,
                lambda: self.evaluator.metrics(agent_state, eval_key, state.opponent_params),
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
        train_return = nanmean_where(episode_return, episode_done)
        metrics = {
            "env_steps": env_steps,
            "train/episode_return": train_return,
            "train/episodes": jnp.sum(episode_done).astype(jnp.int32),
            **{
                collect_lib.achievement_metric(name): jnp.sum(flags).astype(jnp.int32)
                for name, flags in unlocked.items()
            },
            **eval_metrics,
            **self.agent.acting_metrics(infos),
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
            reward=reward_state,
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
                k: jnp.full((), missing(v.dtype), v.dtype) for k, v in state.history.items()
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


def make_train(
    config: Config,
    *,
    callback: Callback | None = None,
    checkpoint_callback: Callable[[TrainState], None] | None = None,
    num_seeds: int | None = None,
    memory_check: bool | None = None,
    source: transfer_lib.Source | None = None,
):
    """Builds the training program.

    Memory is checked before anything is traced or allocated (`jaxmb.memory`): the peak a
    run needs (the train state from `jax.eval_shape`, search trees and other working buffers
    from the config) is compared with the memory the device, or the host, has, and a run
    that does not fit raises `ConfigError` naming the key that contributes the most (e.g.
    `replay.capacity`, `agent.search.num_simulations`). `train.memory_estimate()` returns
    the estimate by part. The check covers one call of `train`: under a `vmap` of your own,
    use `num_seeds`, or check `memory_estimate()` times the members yourself. It traces the
    iteration's shapes here, once (the trace the program then reuses), so anything patched
    into the agent must be in place before `make_train`.

    Args:
      config: the run's config.
      callback: called on the host every `train.log_every` env steps (and at the last
        iteration) with a dict of this iteration's metrics (see `jaxmb.loop`) plus
        `iteration`, `progress/train_return`, `progress/eval_return`. Under a user's `vmap` it
        is called once per member.
      checkpoint_callback: called on the host with the whole `TrainState` every
        `train.checkpoint_every` env steps (if > 0).
      num_seeds: if given, `train` takes keys `[num_seeds]` and vmaps the iteration inside the
        scan, so callbacks receive every member's metrics at once (leading axis `[num_seeds]`).
        `num_seeds=1` runs the single-seed program with that axis added, without a vmap.
      memory_check: check the estimated peak memory against the machine's (see above);
        default `config.run.memory_check` (true). False skips it, for experts who know better.
      source: the transferred parts (`jaxmb.transfer.Source`, e.g. `mixed_source` for a
        source per member) in place of `agent.init_from`'s.

    Returns:
      `train(key, hparams=None) -> (final TrainState, metrics)`, a pure function to
      `jax.jit`. `hparams` maps sweepable config keys to traced scalars (see
      `jaxmb.hparams`): `jax.jit(jax.vmap(train))(keys, hparams)` sweeps them in one program,
      and with `num_seeds=S` they are `[S]` arrays, one value per member. Attached:
      `train.loop` (the `Loop`), `train.init` (key(s) -> fresh state, transferred parts
      included), `train.run` (state, hparams -> final state, metrics: resumes a restored
      state), `train.state_shapes` (key(s) -> the state's shapes, reading nothing from disk)
      and `train.memory_estimate()` (the `jaxmb.memory.Estimate`, computed once).
    """
    loop = Loop(config)
    if source is not None:
        loop.transfer_source = source  # in place of the cached `agent.init_from` source
    members = 1 if num_seeds is None else num_seeds
    if memory_check is None:
        memory_check = config.run.memory_check
    if memory_check:
        # From the config alone, before anything of the loop is traced: mctx builds its Gumbel
        # table in Python while tracing, so an absurd search would exhaust memory there.
        memory_lib.check_search(config, loop, members=members)

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

    def loop_for(hparams: dict | None) -> Loop:
        """The loop reading `hparams` (traced scalars); the static one when there are none."""
        if not hparams:
            return loop
        hparams_lib.check_keys(config, hparams)
        return loop.with_hparams(hparams)

    def check_hparams(hparams: dict | None, batch: int | None) -> None:
        if not hparams:
            return
        hparams_lib.check_keys(config, hparams)
        for key in hparams:
            if key.startswith("reward.") and loop.transform is None:
                raise ConfigError(
                    "reward.transform is identity, which reads no reward weights; set a "
                    "transform to sweep them",
                    key,
                )
        for key, value in hparams.items():
            shape = jnp.shape(value)
            want = () if batch is None else (batch,)
            if shape != want:
                raise ValueError(
                    f"hparams[{key!r}] has shape {shape}; train takes "
                    + ("scalars (vmap train to sweep)" if batch is None else f"[{batch}] arrays")
                )

    if num_seeds is None:
        init = loop.init_single

        def state_shapes(key):
            return jax.eval_shape(loop.init, key)

        def step(state, hparams):
            return loop_for(hparams).step(state)
    else:
        init = loop.init_seeds

        def state_shapes(keys):
            return jax.eval_shape(functools.partial(loop.init_seeds, transfer=False), keys)

        if num_seeds == 1:
            # One member runs the single-seed program with a leading [1] axis added, not a
            # vmap of one: on a CPU that vmap made every matmul a batched one and ran at 0.73x
            # the single-seed speed (benchmarks/RESULTS.md), and batching the traced iteration
            # took seconds of every build. The state, metrics and callbacks look the same
            # either way.
            def step(state, hparams):
                hparams = None if not hparams else {k: v[0] for k, v in hparams.items()}
                active = ~jnp.all(state.halted)
                new_state, metrics = loop_for(hparams).step(without_seed_axis(state), active)
                return with_seed_axis(new_state), jax.tree.map(lambda x: x[None], metrics)
        else:

            def step(state, hparams):
                # The iteration counter and the replay's write counter are the same for every
                # seed; keeping them unbatched keeps `lax.cond` (when to learn, when to
                # evaluate) a real branch instead of a select that would run both sides.
                axes = seed_axes(state)
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
    train.state_shapes = state_shapes  # key(s) -> shapes of a fresh state, nothing read

    @functools.cache
    def memory_estimate() -> memory_lib.Estimate:
        key = jax.random.key(0)
        keys = key if num_seeds is None else jax.random.split(key, num_seeds)
        return memory_lib.estimate(
            config,
            loop,
            state_shapes(keys),
            members=members,
            checkpoints=checkpoint_callback is not None,
        )

    train.memory_estimate = memory_estimate  # () -> jaxmb.memory.Estimate
    if memory_check:
        memory_lib.check(memory_estimate())
    return train


def check_finite(loop: Loop, state: TrainState) -> None:
    """`learn.check_finite` with the loop's agent's guarded metrics."""
    learn_lib.check_finite(loop.agent.guarded_metrics, state)
