"""The compiled loop: `make_train(config) -> train(key) -> (final_state, metrics)`.

The loop names no agent. It builds the one `config.agent.kind` names (`jaxmb.agents.make`) and
uses it only through the protocol of `jaxmb.agents.base` (`init`, `act`, `bootstrap_value`,
`update`, the replay record spec, the window length, metrics). Its modules:

    program.py     `Loop` (one iteration: collect, learn, evaluate) and `make_train`
    collect.py     the training envs stepped with the agent, records for replay
    learn.py       SGD updates on sampled windows, the reward transform, the NaN guard
    evaluation.py  greedy episodes; two-player games against random and the last params
    state.py       `TrainState` and its seed-batched layout
    build.py       `build_env`: the env a config names, with its wrappers

One `lax.scan` over iterations. Each iteration

1. steps `num_envs` environments `rollout_steps` times, acting with the agent;
2. writes those steps to the in-graph replay;
3. once the replay holds `replay.min_size` transitions, runs `updates_per_iteration` SGD
   updates, each on a fresh sample of windows whose rewards the reward transform may mix
   with intrinsic rewards (`jaxmb.rewards`);
4. every `train.eval_every` env steps, runs greedy evaluation episodes on separate envs.

Everything is one pure function of the key: `jax.jit(jax.vmap(make_train(cfg)))(keys)` trains
several seeds in one program. Metrics, progress and checkpoints leave the program through
`jax.debug.callback` at the configured interval, never per step.

The state carries everything a run needs to continue (params, optimiser, target params,
replay, env states, the reward transform's state, keys, counters, and the metric history),
so `train.run(restored_state)`
resumes a checkpoint through the same compiled program. A NaN guard skips any SGD update whose
loss terms or gradient norm are not finite and freezes learning from then on
(`TrainState.halted`); `check_finite` turns that into an error naming the update and terms.

Metrics (`metrics` dict = `final_state.history`, each `[num_iterations]`, with a leading seed
axis under vmap; iterations not run hold NaN, or -1 for integer metrics):
  `env_steps`                environment steps taken so far (all training envs);
  `train/episode_return`     mean return of the training episodes that ended in the
                             iteration (NaN if none ended);
  `train/episodes`           number of training episodes that ended in the iteration;
  `train/achievements/<name>`   envs that declare achievements only (`achievement_info_keys`,
                             `jaxmb.envs.core.Env`; Craftax): how many of those episodes
                             unlocked the achievement. Counts per iteration: a run's success
                             rates sum them over every iteration of the history
                             (`jaxmb.run.achievement_success_rates`), not over the iterations
                             `metrics.jsonl` samples;
  `eval/episode_return`      mean greedy return over `num_eval_envs` episodes, at the
                             iterations that evaluate (NaN elsewhere); for two-player
                             games, the agent's mean outcome (+1 win, -1 loss) against a
                             uniform random legal player;
  `eval/win_rate`, `eval/win_rate_previous`   two-player games only: the share of games
                             won against the random player, and against the params of the
                             previous evaluation (a frozen earlier checkpoint);
  `eval/unseen_episode_return`   with `env.eval_unseen_levels` only: the same on levels
                             outside the training range (`loop.evaluation.unseen_levels`);
  `learning`                 1 where SGD ran in the iteration;
  `loss`, `loss/<term>`, `grad_norm`   means over the iteration's SGD updates (NaN before
                             learning starts);
  `reward/env`, `reward/intrinsic`, `reward/trained`   with a reward transform only: the mean
                             env, intrinsic and trained (mixed) reward of the sampled steps;
  and the agent's own: MuZero adds
  `search/acting_simulations`  simulations the training envs' searches ran in the
                             iteration, read from the trees (0 with for_acting_train off);
  `search/target_simulations`  simulations run for the targets of one SGD update (reanalyse;
                             0 with for_targets off or reanalyse_fraction 0), mean over the
                             iteration's updates.
"""

from jaxmb.loop.build import build_env
from jaxmb.loop.collect import record_template
from jaxmb.loop.learn import NonFiniteLossError
from jaxmb.loop.program import Loop, build_agent, check_finite, make_train
from jaxmb.loop.state import TrainState

__all__ = [
    "Loop",
    "NonFiniteLossError",
    "TrainState",
    "build_agent",
    "build_env",
    "check_finite",
    "make_train",
    "record_template",
]
