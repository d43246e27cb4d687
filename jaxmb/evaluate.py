"""Evaluation of a finished (or interrupted) run from its directory."""

from __future__ import annotations

import functools
import os
from typing import Any

import jax
import numpy as np

from jaxmb import config as config_lib
from jaxmb import configlib, memory
from jaxmb.checkpoint import Checkpointer
from jaxmb.config import Config, ConfigError
from jaxmb.loop import Loop


def load_run(run_dir: str):
    """The config, loop pieces and latest train state (seed-batched) of a run directory."""
    config_path = os.path.join(run_dir, "config.yaml")
    if not os.path.exists(config_path):
        raise ConfigError(f"{run_dir} is not a run directory (no config.yaml)", "run_dir")
    config = config_lib.load(config_path)
    loop = Loop(config)
    keys = jax.random.split(jax.random.key(0), config.run.num_seeds)
    like = jax.eval_shape(functools.partial(loop.init_seeds, transfer=False), keys)
    checkpointer = Checkpointer(os.path.join(run_dir, "checkpoints"))
    state = checkpointer.restore(like)
    checkpointer.close()
    return config, loop, state


def eval_config(
    config: Config,
    *,
    episodes: int,
    budget: int | None = None,
    env_params: dict[str, Any] | None = None,
    **search: Any,
) -> Config:
    """`config` set up for evaluation: `episodes` eval envs and, optionally, another test-time
    budget (0 acts from the prior; None keeps the config's), env params merged over the
    config's (e.g. unseen levels, or other rules) and other `agent.search` fields
    (`max_depth`, `uct_depth`, `model`, ...)."""
    test = dict(search)
    if budget is not None:
        test.update(for_acting_test=budget > 0, num_simulations_test=budget or None)
    env = configlib.replace(config.env, num_eval_envs=episodes)
    if env_params:
        env = configlib.replace(env, params={**config.env.params, **env_params})
    agent = config.agent
    if test:
        agent = configlib.replace(agent, search=configlib.replace(agent.search, **test))
    return configlib.replace(config, env=env, agent=agent)


def evaluator(
    config: Config,
    *,
    episodes: int,
    budget: int | None = None,
    env_params: dict[str, Any] | None = None,
    win_rates: bool = False,
    **search: Any,
):
    """`jit(vmap(evaluate))(agent_states [S], keys [S]) -> returns [S]` at one test setting
    (`eval_config`'s). Used by `evaluate_run` and the planning experiments.

    For a two-player game the return is the mean outcome against a uniform random legal
    player (+1 win, -1 loss, 0 unfinished); with `win_rates` the function returns
    `(outcomes [S], win_rates [S])` instead.

    Args:
      config: the trained agents' config (network shapes must match theirs).
      episodes: greedy episodes per seed.
      budget: simulations at test time; 0 acts from the prior; None keeps the config's.
      env_params: env params for the evaluation envs (e.g. unseen levels), else the config's.
      win_rates: for a two-player game, also return the win rates (ignored otherwise).
      **search: other `agent.search` fields (`max_depth`, `uct_depth`, `model`, ...).
    """
    cfg = eval_config(config, episodes=episodes, budget=budget, env_params=env_params, **search)
    loop = Loop(cfg)
    if cfg.run.memory_check:  # before tracing: a test budget or episodes too large for memory
        memory.check_search(cfg, loop, members=cfg.run.num_seeds)
    if loop.two_player:
        if win_rates:
            return jax.jit(jax.vmap(loop.evaluate_two_player))
        return jax.jit(jax.vmap(lambda s, k: loop.evaluate_two_player(s, k)[0]))
    return jax.jit(jax.vmap(loop.evaluate))


def evaluate_run(
    run_dir: str,
    *,
    episodes: int = 32,
    seed: int = 12345,
    budget: int | None = None,
    env_params: dict[str, Any] | None = None,
) -> dict:
    """Greedy evaluation of every seed of a run's latest checkpoint.

    Args:
      run_dir: the run directory.
      episodes: episodes (games) per seed.
      seed: PRNG seed of the evaluation.
      budget: test-time simulations (0: act from the prior's argmax); None: as the run's
        `agent.search.for_acting_test` and `num_simulations_test` say.
      env_params: env params merged over the run's (e.g. Go's `no_pass_before=0` for
        standard rules, or unseen levels).

    Returns:
      `{"per_seed": [mean return of each seed], "mean": float}`; in a two-player game the
      return is the mean outcome against a uniform random legal player (+1 win, -1 loss),
      and `"win_rate_per_seed"` and `"win_rate"` are added.
    """
    config, _, state = load_run(run_dir)
    evaluate = evaluator(
        config, episodes=episodes, budget=budget, env_params=env_params, win_rates=True
    )
    keys = jax.random.split(jax.random.key(seed), config.run.num_seeds)
    result = evaluate(state.agent, keys)
    returns = result[0] if isinstance(result, tuple) else result
    per_seed = [float(x) for x in np.asarray(returns)]
    summary = {"per_seed": per_seed, "mean": float(np.mean(per_seed))}
    if isinstance(result, tuple):  # a two-player game
        win_rate = [float(x) for x in np.asarray(result[1])]
        summary.update(win_rate_per_seed=win_rate, win_rate=float(np.mean(win_rate)))
    return summary
