"""A tiny env without auto-reset, for testing wrappers apart from any real source.

A plain module rather than part of conftest.py, which test modules cannot import reliably.
"""

import flax
import gymnasium
import jax
import jax.numpy as jnp
import numpy as np


@flax.struct.dataclass
class WalkParams:
    max_steps: int = 6  # time limit: truncated when reached
    goal: int = 3  # terminated when the position reaches +goal


@flax.struct.dataclass
class WalkState:
    position: jax.Array  # [] int32
    time: jax.Array  # [] int32


class RandomWalkEnv:
    """A walk on the integers: action a moves by a - 1 and earns reward a.

    Its `step` never resets (the case `AutoReset` exists for), is deterministic (the key is
    ignored), and forbids action 0 at position <= -2, so masks are not trivially all True.
    Observations are `[position, time]`.
    """

    id = "test:RandomWalk-v0"
    observation_space = gymnasium.spaces.Box(-np.inf, np.inf, (2,), np.float32)
    action_space = gymnasium.spaces.Discrete(3, dtype=np.int32)
    num_actions = 3

    def default_params(self) -> WalkParams:
        return WalkParams()

    def _obs(self, state: WalkState) -> jax.Array:
        return jnp.stack([state.position, state.time]).astype(jnp.float32)

    def reset(self, key, params):
        del params
        state = WalkState(
            position=jax.random.randint(key, (), -1, 2, dtype=jnp.int32),
            time=jnp.zeros((), jnp.int32),
        )
        return self._obs(state), state

    def step(self, key, state, action, params):
        del key
        state = WalkState(position=state.position + action - 1, time=state.time + 1)
        reward = jnp.asarray(action, jnp.float32)
        terminated = state.position >= params.goal
        truncated = jnp.logical_and(state.time >= params.max_steps, ~terminated)
        obs = self._obs(state)
        return obs, state, reward, terminated, truncated, {"final_observation": obs}

    def action_mask(self, state, params):
        del params
        return jnp.array([True, True, True]).at[0].set(state.position > -2)
