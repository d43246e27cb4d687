"""A trained agent as a plain function of observations, for Gymnasium loops.

    policy = jaxmb.load_policy("runs/<name>")
    env = gymnasium.make("CartPole-v1")            # or jaxmb.envs.to_gymnasium(...)
    obs, _ = env.reset(seed=0)
    while True:
        obs, reward, terminated, truncated, _ = env.step(policy(obs))
        if terminated or truncated:
            break

The policy acts as the run's evaluation does (`training=False`: `search.for_acting_test`, with
`search.num_simulations_test`, greedy when `search.greedy_eval`), from the parameters in the run's
latest checkpoint.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxmb import configlib
from jaxmb.config import Config


class Policy:
    """`policy(obs[, action_mask]) -> action`: one observation gives an int, a batch an array.

    Attributes:
        config: the run's config.
        observation_space, action_space: the env's (one env).
        agent, agent_state: the MuZero agent and the restored state it acts with.
    """

    def __init__(self, config: Config, agent: Any, agent_state: Any, env: Any, *, seed: int = 0):
        self.config = config
        self.agent = agent
        self.agent_state = agent_state
        self.observation_space = env.observation_space
        self.action_space = env.action_space
        self._key = jax.random.key(seed)
        self._act = jax.jit(
            lambda state, obs, key, mask: agent.act(
                state, obs, key, training=False, action_mask=mask
            )[0]
        )

    def __repr__(self) -> str:
        return f"Policy({self.config.env.id!r})"

    def __call__(self, obs: Any, action_mask: Any = None) -> int | np.ndarray:
        """Chooses actions.

        Args:
            obs: one observation `[*obs_shape]` or a batch `[B, *obs_shape]`.
            action_mask: `bool[num_actions]` or `bool[B, num_actions]`, True where legal; all
                legal when None.

        Returns:
            An int for one observation, `int32[B]` for a batch.
        """
        obs_shape = self.observation_space.shape
        obs = jnp.asarray(obs, self.observation_space.dtype)
        single = obs.shape == obs_shape
        if single:
            obs = obs[None]
        if obs.shape[1:] != obs_shape:
            raise ValueError(f"observations of shape {obs.shape}, expected [B, *{obs_shape}]")
        num_actions = self.agent.num_actions
        if action_mask is None:
            mask = jnp.ones((obs.shape[0], num_actions), bool)
        else:
            mask = jnp.asarray(action_mask, bool).reshape((obs.shape[0], num_actions))
        self._key, key = jax.random.split(self._key)
        actions = np.asarray(self._act(self.agent_state, obs, key, mask))
        return int(actions[0]) if single else actions


def load_policy(run_dir: str, *, member: int = 0, seed: int = 0, step: int | None = None) -> Policy:
    """The policy of a run directory (`jaxmb.run.train_run` writes them).

    Only the agent's parameters are read from the checkpoint (its optimiser state is not needed
    to act), so loading does not build the training program.

    Args:
        run_dir: `runs/<name>`, holding `config.yaml` and `checkpoints/`.
        member: which of the run's `run.num_seeds` members to act with.
        seed: seed of the policy's own PRNG key (search samples with it).
        step: the checkpoint (iteration) to load; the latest by default.

    Raises:
        FileNotFoundError: when the directory has no config or no checkpoint.
        ValueError: when the checkpoint's parameters do not fit the run's config.
    """
    from jaxmb.checkpoint import read_saved
    from jaxmb.train import build_agent, build_env

    config_path = os.path.join(run_dir, "config.yaml")
    if not os.path.exists(config_path):
        raise FileNotFoundError(f"{run_dir} is not a run directory (no config.yaml)")
    config = configlib.load(config_path, cls=Config)
    num_seeds = config.run.num_seeds
    if not 0 <= member < num_seeds:
        raise ValueError(f"member {member} of a run with {num_seeds} members")
    env, env_params = build_env(config)
    agent = build_agent(config, env, env_params)
    directory = os.path.abspath(os.path.join(run_dir, "checkpoints"))
    step, saved = read_saved(directory, step)
    saved = saved["agent"]
    # Shapes only: tracing init is much cheaper than running it op by op.
    fresh = jax.eval_shape(agent.init, jax.random.key(0))

    def pick(name: str) -> Any:
        tree = jax.tree.map(lambda x: jnp.asarray(np.asarray(x)[member]), saved[name])
        like = getattr(fresh, name)
        if jax.tree.structure(tree) != jax.tree.structure(like) or any(
            a.shape != b.shape
            for a, b in zip(jax.tree.leaves(tree), jax.tree.leaves(like), strict=True)
        ):
            raise ValueError(f"the {name} in {directory} (step {step}) do not fit the run's config")
        return tree

    agent_state = fresh.replace(
        params=pick("params"),
        target_params=pick("target_params"),
        opt_state=jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), fresh.opt_state),
        num_updates=jnp.asarray(np.asarray(saved["num_updates"])[member]),
    )
    return Policy(config, agent, agent_state, env, seed=seed)
