"""Environments for jaxmb: the `Env` protocol, `make`, wrappers and source adapters.

    env, params = jaxmb.envs.make("gymnax:CartPole-v1", max_steps_in_episode=200)
    env = jaxmb.envs.VectorEnv(jaxmb.envs.EpisodeStatistics(env), num_envs=8)

Host envs (`gym:<any Gymnasium id>`, `ale:`, `procgen:`, `metaworld:`, `robodesk:`) are
stepped on the host from inside the compiled loop (`jaxmb.envs.host`); any jaxmb env becomes a
Gymnasium env with `to_gymnasium` / `to_gymnasium_vector`, and the JAX sources' ids are
registered with Gymnasium as `jaxmb/<name>` (`gymnasium.make("jaxmb/MiniPacman-v0")`).

`jaxmb.envs.list` is `list_envs`. It is served by the module `__getattr__` and kept out
of `__all__`, so neither this package nor a star import shadows the builtin `list`.
"""

from typing import Any

from jaxmb.envs.core import Env, num_actions
from jaxmb.envs.gymnasium_export import register_gymnasium_ids, to_gymnasium, to_gymnasium_vector
from jaxmb.envs.host import HostEnv, HostEnvError
from jaxmb.envs.registry import (
    EnvInfo,
    EnvSpec,
    MissingDependencyError,
    UnknownEnvError,
    list_envs,
    make,
    register,
)
from jaxmb.envs.wrappers import ActionRepeat, AutoReset, EpisodeStatistics, VectorEnv, Wrapper

__all__ = [
    "ActionRepeat",
    "AutoReset",
    "Env",
    "EnvInfo",
    "EnvSpec",
    "EpisodeStatistics",
    "HostEnv",
    "HostEnvError",
    "MissingDependencyError",
    "UnknownEnvError",
    "VectorEnv",
    "Wrapper",
    "list_envs",
    "make",
    "num_actions",
    "register",
    "to_gymnasium",
    "to_gymnasium_vector",
]

register_gymnasium_ids()


def __getattr__(name: str) -> Any:
    if name == "list":
        return list_envs
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), "list"])
