"""Gymnasium envs for the host-env tests: CartPoles that raise, or kill their process, at a step.

Importing this module registers them, so `gymnasium.make("host_test_envs:HostTest/...")` works
in a worker process too (with this folder on PYTHONPATH).
"""

import os

import gymnasium
from gymnasium.envs.classic_control.cartpole import CartPoleEnv


class FailingCartPole(CartPoleEnv):
    """Raises `ValueError` on its `fail_at`-th step (counted over episodes)."""

    def __init__(self, fail_at: int = 5, **kwargs):
        super().__init__(**kwargs)
        self.fail_at = fail_at
        self.steps = 0

    def step(self, action):
        self.steps += 1
        if self.steps == self.fail_at:
            raise ValueError(f"boom at step {self.steps}")
        return super().step(action)


class DyingCartPole(FailingCartPole):
    """Ends its process with exit code 3 on its `fail_at`-th step."""

    def step(self, action):
        if self.steps + 1 == self.fail_at:
            os._exit(3)
        return super().step(action)


# v1 fails later, for a training run that must checkpoint first (the config's env.params take
# numbers only, so the step is in the id).
for _name, _cls, _kwargs in (
    ("FailingCartPole-v0", FailingCartPole, {}),
    ("FailingCartPole-v1", FailingCartPole, {"fail_at": 30}),
    ("DyingCartPole-v0", DyingCartPole, {}),
):
    if f"HostTest/{_name}" not in gymnasium.registry:
        gymnasium.register(
            f"HostTest/{_name}", entry_point=_cls, max_episode_steps=500, kwargs=_kwargs
        )
