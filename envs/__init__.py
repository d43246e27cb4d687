"""Environments for jaxmb: the `Env` protocol, `make`, wrappers and source adapters.

    env, params = jaxmb.envs.make("gymnax:CartPole-v1", max_steps_in_episode=200)
    env = jaxmb.envs.VectorEnv(jaxmb.envs.EpisodeStatistics(env), num_envs=8)

`jaxmb.envs.list` is `list_envs`. It is served by the module `__getattr__` and kept out
of `__all__`, so neither this package nor a star import shadows the builtin `list`.
"""

from typing import Any

from jaxmb.envs.core import Env, num_actions
from jaxmb.envs.registry import (
    EnvInfo,
    EnvSpec,
    MissingDependencyError,
    UnknownEnvError,
    list_envs,
    make,
    register,
)
from jaxmb.envs.wrappers import AutoReset, EpisodeStatistics, VectorEnv, Wrapper

__all__ = [
    "AutoReset",
    "Env",
    "EnvInfo",
    "EnvSpec",
    "EpisodeStatistics",
    "MissingDependencyError",
    "UnknownEnvError",
    "VectorEnv",
    "Wrapper",
    "list_envs",
    "make",
    "num_actions",
    "register",
]


def __getattr__(name: str) -> Any:
    if name == "list":
        return list_envs
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), "list"])
