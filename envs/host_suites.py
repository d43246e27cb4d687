"""The host suites behind `gym:`, `ale:`, `procgen:`, `metaworld:` and `robodesk:` ids.

Each suite has a params dataclass. Host env params are static: they decide how the host envs
are made, hold no arrays, and are registered as leafless pytrees (`jax.tree_util.register_static`)
so that the loop can pass them wherever JAX params go. Override them as any env's:

    env, params = jaxmb.envs.make("procgen:coinrun", num_levels=200, distribution_mode="easy")
    # YAML: env: {id: procgen:coinrun, params: {num_levels: 200, distribution_mode: easy}}

Every suite takes `num_workers` (0: step in this process; k: each pool of envs is spread over up
to k worker processes) and `python` (the workers' interpreter; "" means this one, or the
suite's worker venv for Procgen and Meta-World, see `worker_venvs`).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
from collections.abc import Mapping
from typing import Any

import jax

from jaxmb.envs import worker_venvs
from jaxmb.envs.host import HostEnv, HostSpec, options_tuple
from jaxmb.envs.registry import MissingDependencyError, UnknownEnvError


def _static(cls: type) -> type:
    cls = dataclasses.dataclass(frozen=True)(cls)
    return jax.tree_util.register_static(cls)


class _Frozen:
    """Turns mapping and list fields into tuples, so that params stay hashable."""

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            integral = isinstance(value, float) and value.is_integer()
            if integral and str(field.type).startswith("int"):
                object.__setattr__(self, field.name, int(value))  # YAML params come as floats
            elif isinstance(value, Mapping):
                object.__setattr__(self, field.name, options_tuple(value))
            elif isinstance(value, list):
                object.__setattr__(self, field.name, tuple(value))


@_static
class GymParams(_Frozen):
    """`gym:<id>`: `gymnasium.make(id, max_episode_steps=..., **kwargs)`."""

    max_episode_steps: int | None = None
    kwargs: tuple = ()  # extra keyword arguments of gymnasium.make (a mapping in YAML)
    num_workers: int = 0
    python: str = ""


@_static
class AtariParams(_Frozen):
    """`ale:<Game>-v5` with the MuZero papers' preprocessing (EfficientZero's defaults: 96x96
    grey frames, 4 stacked), sticky actions and no no-ops (Machado et al. 2018)."""

    screen_size: int = 96
    grayscale: bool = True
    frame_stack: int = 4
    frame_skip: int = 4
    noop_max: int = 0
    sticky_action_probability: float = 0.25
    max_frames: int = 108_000  # emulator frames (27k agent steps), reported as truncation
    full_action_space: bool = False
    num_workers: int = 0
    python: str = ""


@_static
class ProcgenParams(_Frozen):
    """`procgen:<game>`; level control as Procgen defines it (`num_levels=0`: unlimited)."""

    num_levels: int = 0
    start_level: int = 0
    distribution_mode: str = "hard"
    kwargs: tuple = ()  # other ProcgenGym3Env options, e.g. {use_backgrounds: false}
    num_workers: int = 1
    python: str = ""


@_static
class MetaWorldParams(_Frozen):
    """`metaworld:<task>-v3`; `task_set`: `mt1` (MT1's goals), `train` or `test` (ML1's split)."""

    task_set: str = "mt1"
    benchmark_seed: int = 0
    max_episode_steps: int | None = None  # None: Meta-World's 500
    num_workers: int = 1
    python: str = ""


@_static
class RobodeskParams(_Frozen):
    """`robodesk:<task>`; the observation is RoboDesk's `image` (`[image_size]*2 + [3]` uint8)."""

    reward: str = "dense"
    action_repeat: int = 1
    episode_length: int = 500
    image_size: int = 64
    observation: str = "image"
    num_workers: int = 0
    python: str = ""


PARAMS = {
    "gym": GymParams,
    "ale": AtariParams,
    "procgen": ProcgenParams,
    "metaworld": MetaWorldParams,
    "robodesk": RobodeskParams,
}
"""Suite -> its params class."""

# The module each suite needs in the interpreter its envs run in.
_SUITE_MODULES = {
    "gym": "gymnasium",
    "ale": "ale_py",
    "procgen": "procgen",
    "metaworld": "metaworld",
    "robodesk": "robodesk",
}
_EXTRAS = {"ale": "atari", "robodesk": "robodesk"}


def _python_for(suite: str, params: Any) -> str:
    """The workers' interpreter, checking that it exists; "" means this interpreter."""
    if params.python:
        python = params.python
    elif suite in worker_venvs.WORKER_VENVS and importlib.util.find_spec(suite) is None:
        python = worker_venvs.venv_python(suite)
    else:
        return ""
    if not os.path.exists(python):
        raise MissingDependencyError(
            f"{suite} envs run in a worker venv of their own ({python} does not exist); run: "
            + worker_venvs.create_command(suite)
        )
    return python


def build(suite: str, name: str, params: Any = None) -> HostEnv:
    """The `HostEnv` for `<suite>:<name>` made with `params` (the suite's defaults if None)."""
    params = PARAMS[suite]() if params is None else params
    env_id = f"{suite}:{name}"
    python = _python_for(suite, params)
    num_workers = params.num_workers
    if not python:  # the envs run under this interpreter: their suite must be installed here
        module = _SUITE_MODULES[suite]
        if importlib.util.find_spec(module) is None:
            if suite in worker_venvs.WORKER_VENVS:
                command = worker_venvs.create_command(suite)
            else:
                command = f'pip install "jaxmb[{_EXTRAS[suite]}]"'
            raise MissingDependencyError(f"{env_id} needs {module}; run: {command}")
    if python and not num_workers:
        num_workers = 1  # another interpreter means a worker
    options = {
        k: v for k, v in dataclasses.asdict(params).items() if k not in ("num_workers", "python")
    }
    spec = HostSpec(env_id, suite, name, options_tuple(options), num_workers, python)
    if suite == "gym":
        _check_gym_id(name)
    return HostEnv(spec, params)


def _check_gym_id(name: str) -> None:
    import gymnasium

    if ":" in name:  # "module:Env-v0": gymnasium.make imports the module, which registers the id
        return

    if name.startswith("ALE/"):
        if importlib.util.find_spec("ale_py") is None:
            raise MissingDependencyError(
                f'gym:{name} needs ale_py; run: pip install "jaxmb[atari]"'
            )
        import ale_py

        gymnasium.register_envs(ale_py)
    try:
        gymnasium.spec(name)
    except gymnasium.error.Error as err:
        raise UnknownEnvError(f"gym:{name}: {err}") from err
