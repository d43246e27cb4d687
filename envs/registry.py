"""Env ids, the factories behind them, and `make`.

An id is `<source>:<name>`, e.g. `gymnax:CartPole-v1`. A source adds its envs by calling
`register` once per id with a builder; a source whose Python package is optional names
the package (`requires`) and the pip extra that installs it (`extra`), so `make` can say
what to install instead of failing inside an import. Builders import their package
lazily, which keeps `import jaxmb.envs` cheap and lets ids of missing sources be listed.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import importlib.util
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import gymnasium

from jaxmb.envs import core

Builder = Callable[[Any], core.Env]
"""`build(params)` returns the env; `params=None` means its defaults. Spaces may depend on
params (bounds), so `make` rebuilds the env when overrides change them."""


class UnknownEnvError(KeyError, ValueError):
    """An id that no source registered; the message suggests the closest valid ids."""

    def __str__(self) -> str:
        # KeyError would print the message quoted, as if it were a key.
        return str(self.args[0]) if self.args else ""


class MissingDependencyError(ImportError):
    """An id whose source needs an optional package that is not installed."""


@dataclasses.dataclass(frozen=True)
class EnvSpec:
    """How to build one registered env.

    Attributes:
        id: `<source>:<name>`.
        build: see `Builder`.
        extra: the `jaxmb[extra]` that installs the source's packages; None when they are
            core dependencies.
        requires: importable module names the builder needs.
        default_params: returns the default params without building the env, for sources
            whose envs are costly to build (host envs start processes); `make` then builds
            the env once. None: `make` builds the default env to ask it.
    """

    id: str
    build: Builder
    extra: str | None = None
    requires: tuple[str, ...] = ()
    default_params: Callable[[], Any] | None = None

    @property
    def source(self) -> str:
        return self.id.split(":", 1)[0]

    @property
    def name(self) -> str:
        return self.id.split(":", 1)[1]

    def missing_modules(self) -> list[str]:
        return [module for module in self.requires if not _importable(module)]


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a dotted name whose parent package is missing
        return False


class EnvInfo(NamedTuple):
    """One row of `list_envs()`; spaces are None when the source is not installed."""

    id: str
    source: str
    observation_space: gymnasium.spaces.Space | None
    action_space: gymnasium.spaces.Space | None
    extra: str | None


_REGISTRY: dict[str, EnvSpec] = {}


@dataclasses.dataclass(frozen=True)
class _Source:
    build: Callable[[str, Any], core.Env]
    extra: str | None
    requires: tuple[str, ...]
    default_params: Callable[[], Any] | None


# Sources whose names are open-ended (`gym:<any registered Gymnasium id>`): `spec` makes an
# `EnvSpec` for any name of theirs, and the builder says if the name does not exist.
_SOURCES: dict[str, _Source] = {}


def register_source(
    source: str,
    build: Callable[[str, Any], core.Env],
    *,
    extra: str | None = None,
    requires: tuple[str, ...] = (),
    default_params: Callable[[], Any] | None = None,
) -> None:
    """Lets `make` build `<source>:<name>` for names that were not registered one by one.

    Args:
        source: the id prefix, e.g. `"gym"`.
        build: `build(name, params) -> Env`; `params=None` means its defaults. It raises
            `UnknownEnvError` for a name the source does not have.
        extra: pip extra of jaxmb that installs `requires`, or None for core dependencies.
        requires: module names that must be importable before `build` is called.
        default_params: see `EnvSpec.default_params`.
    """
    if source in _SOURCES:
        raise ValueError(f"source {source!r} is already registered")
    _SOURCES[source] = _Source(build, extra, tuple(requires), default_params)


def register(
    env_id: str,
    build: Builder,
    *,
    extra: str | None = None,
    requires: tuple[str, ...] = (),
    default_params: Callable[[], Any] | None = None,
) -> None:
    """Adds an id to the registry.

    Args:
        env_id: `<source>:<name>`; both parts non-empty.
        build: `build(params) -> Env`, see `Builder`.
        extra: pip extra of jaxmb that installs `requires`, or None for core dependencies.
        requires: module names that must be importable before `build` is called.
        default_params: see `EnvSpec.default_params`.

    Raises:
        ValueError: for a malformed or already registered id.
    """
    source, sep, name = env_id.partition(":")
    if not (source and sep and name):
        raise ValueError(f"env ids look like '<source>:<name>', got {env_id!r}")
    if env_id in _REGISTRY:
        raise ValueError(f"{env_id!r} is already registered")
    _REGISTRY[env_id] = EnvSpec(
        env_id, build, extra=extra, requires=tuple(requires), default_params=default_params
    )


def _bare_name(env_id: str) -> str:
    return env_id.split(":", 1)[-1]


def _close_ids(env_id: str) -> list[str]:
    """Registered ids that `env_id` probably meant, best first."""
    by_name: dict[str, list[str]] = {}
    for known in sorted(_REGISTRY):
        by_name.setdefault(_bare_name(known).lower(), []).append(known)
    wanted = _bare_name(env_id).lower()
    # A missing or wrong source prefix, or a different case, is an exact match on the name.
    if wanted in by_name:
        names = [wanted]
    else:
        scored = [(difflib.SequenceMatcher(None, wanted, name).ratio(), name) for name in by_name]
        scored = sorted((item for item in scored if item[0] >= 0.6), reverse=True)[:3]
        # Drop runners-up well behind the best match ("Acrobot-v1" for "CartPol-v1").
        names = [name for ratio, name in scored if ratio >= scored[0][0] - 0.1]
    candidates = [known for name in names for known in by_name[name]]
    source = env_id.split(":", 1)[0] if ":" in env_id else None
    return sorted(candidates, key=lambda known: known.split(":", 1)[0] != source)


def _or_list(items: list[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} or {items[-1]}"


def spec(env_id: str) -> EnvSpec:
    """Returns the registration of `env_id`.

    Raises:
        UnknownEnvError: naming the closest valid ids when `env_id` is not registered.
    """
    if not isinstance(env_id, str):
        raise TypeError(f"env ids are strings like 'gymnax:CartPole-v1', got {env_id!r}")
    if env_id in _REGISTRY:
        return _REGISTRY[env_id]
    source, sep, name = env_id.partition(":")
    if sep and name and source in _SOURCES:
        found = _SOURCES[source]
        build = functools.partial(found.build, name)
        return EnvSpec(
            env_id,
            build,
            extra=found.extra,
            requires=found.requires,
            default_params=found.default_params,
        )
    message = f"unknown env id {env_id!r}"
    close = _close_ids(env_id)
    if close:
        message += f"; did you mean {_or_list(close)}?"
    else:
        sources = {known.split(":", 1)[0] for known in _REGISTRY} | set(_SOURCES)
        message += (
            f"; ids look like '<source>:<name>' with source one of "
            f"{', '.join(sorted(sources - HOST_SOURCES))}"
        )
        if sources & HOST_SOURCES:
            message += f", or a host suite: {', '.join(sorted(sources & HOST_SOURCES))}"
    message += " (jaxmb.envs.list_envs() lists every id)"
    raise UnknownEnvError(message)


def _check_installed(env_spec: EnvSpec) -> None:
    missing = env_spec.missing_modules()
    if not missing:
        return
    install = f'pip install "jaxmb[{env_spec.extra}]"' if env_spec.extra else "pip install jaxmb"
    raise MissingDependencyError(
        f"{env_spec.id} needs {', '.join(missing)}, which is not installed; run: {install}"
    )


def _param_names(params: Any) -> list[str]:
    if dataclasses.is_dataclass(params):
        return [field.name for field in dataclasses.fields(params)]
    if isinstance(params, Mapping):
        return list(params)
    return []


def replace_params(params: Any, overrides: Mapping[str, Any], *, env_id: str = "") -> Any:
    """Returns `params` with the fields in `overrides` replaced.

    Args:
        params: a dataclass (gymnax and flax params are) or a mapping.
        overrides: field name to new value.
        env_id: named in error messages.

    Raises:
        ValueError: naming the first unknown key, the closest valid one, and all valid ones.
    """
    valid = _param_names(params)
    for key in overrides:
        if key in valid:
            continue
        where = f" of {env_id}" if env_id else ""
        message = f"unknown param {key!r}{where}"
        close = difflib.get_close_matches(key, valid, n=1)
        if close:
            message += f"; did you mean {close[0]!r}?"
        message += f" Valid params: {', '.join(valid) if valid else '(none)'}"
        raise ValueError(message)
    if isinstance(params, Mapping):
        return {**params, **overrides}
    return dataclasses.replace(params, **overrides)


def make(env_id: str, **overrides: Any) -> tuple[core.Env, core.EnvParams]:
    """Builds a registered env and its params.

    Args:
        env_id: `<source>:<name>`, e.g. `"gymnax:CartPole-v1"`.
        **overrides: fields of the params pytree to replace, e.g.
            `max_steps_in_episode=200`.

    Returns:
        `(env, params)`; `env.default_params()` equals `params`, and the env's spaces
        describe those params.

    Raises:
        UnknownEnvError: for an unregistered id, naming the closest valid ids.
        MissingDependencyError: when the source's optional package is not installed,
            naming the `pip install "jaxmb[extra]"` to run.
        ValueError: for an override key that is not a param, naming the valid ones.
        TypeError: when the registered builder returns something that is not an `Env`.
    """
    env_spec = spec(env_id)
    _check_installed(env_spec)
    if env_spec.default_params is not None:
        params = replace_params(env_spec.default_params(), overrides, env_id=env_id)
        return _checked(env_id, env_spec.build(params)), params
    env = _checked(env_id, env_spec.build(None))
    if not overrides:
        return env, env.default_params()
    params = replace_params(env.default_params(), overrides, env_id=env_id)
    return env_spec.build(params), params


def _checked(env_id: str, env: Any) -> core.Env:
    missing = core.missing_env_members(env)
    if missing:
        raise TypeError(f"the builder of {env_id} returned {env!r}, which lacks {missing}")
    return env


def list_envs(source: str | None = None) -> list[EnvInfo]:
    """Describes every registered env (of one source, if given), sorted by id.

    Builds each installed env once to read its spaces, so call it interactively rather
    than in a hot loop. Host envs (`HOST_SOURCES`) are listed without spaces: making one
    starts its suite (a worker process, an emulator, a renderer).
    """
    rows = []
    for env_id in sorted(_REGISTRY):
        env_spec = _REGISTRY[env_id]
        if source is not None and env_spec.source != source:
            continue
        observation_space = action_space = None
        if env_spec.source not in HOST_SOURCES and not env_spec.missing_modules():
            env = env_spec.build(None)
            observation_space, action_space = env.observation_space, env.action_space
        rows.append(
            EnvInfo(env_id, env_spec.source, observation_space, action_space, env_spec.extra)
        )
    return rows


def _build_gymnax(name: str, params: Any) -> core.Env:
    from jaxmb.envs.gymnax_adapter import GymnaxEnv

    return GymnaxEnv.from_name(name, params)


def _register_gymnax() -> None:
    from jaxmb.envs.gymnax_adapter import GYMNAX_ENV_IDS

    for name in GYMNAX_ENV_IDS:
        register(f"gymnax:{name}", functools.partial(_build_gymnax, name))


_register_gymnax()


def _build_from(module: str, name: str, params: Any) -> core.Env:
    """Imports the adapter module on first use and asks it for env `name`."""
    return importlib.import_module(module).build(name, params)


def _register_module(
    source: str,
    names: tuple[str, ...],
    module: str,
    *,
    extra: str | None = None,
    requires: tuple[str, ...] = (),
) -> None:
    """Registers `<source>:<name>` for each name, built by `module.build(name, params)`."""
    for name in names:
        register(
            f"{source}:{name}",
            functools.partial(_build_from, module, name),
            extra=extra,
            requires=requires,
        )


# Our own JAX envs: core dependencies only.
_register_module("jaxmb", ("Sokoban-v0",), "jaxmb.envs.sokoban")
_register_module("jaxmb", ("MiniPacman-v0",), "jaxmb.envs.minipacman")

CRAFTAX_IDS = (
    "Craftax-Classic-Symbolic-v1",
    "Craftax-Classic-Pixels-v1",
    "Craftax-Symbolic-v1",
)
_register_module(
    "craftax", CRAFTAX_IDS, "jaxmb.envs.craftax_adapter", extra="craftax", requires=("craftax",)
)
_register_module("pgx", ("go_9x9",), "jaxmb.envs.pgx_adapter", extra="pgx", requires=("pgx",))
_register_module(
    "jumanji", ("Sokoban-v0",), "jaxmb.envs.jumanji_adapter", extra="jumanji", requires=("jumanji",)
)

PLAYGROUND_IDS = ("AcrobotSwingupSparse", "CheetahRun", "HumanoidStand")
_register_module(
    "playground",
    PLAYGROUND_IDS,
    "jaxmb.envs.playground_adapter",
    extra="mujoco",
    requires=("mujoco_playground", "mujoco.mjx"),
)
BRAX_IDS = (
    "ant",
    "halfcheetah",
    "hopper",
    "humanoid",
    "humanoidstandup",
    "inverted_pendulum",
    "inverted_double_pendulum",
    "pusher",
    "reacher",
    "swimmer",
    "walker2d",
)
_register_module(
    "brax", BRAX_IDS, "jaxmb.envs.brax_adapter", extra="mujoco", requires=("brax", "mujoco.mjx")
)


# Host envs (envs/host.py): stepped on the host through a callback from inside the compiled
# loop. `gym:` takes any registered Gymnasium id, `ale:` any ALE game; Procgen games, Meta-World
# v3 tasks and RoboDesk tasks are listed.
HOST_SOURCES = frozenset({"gym", "ale", "procgen", "metaworld", "robodesk"})
"""Sources whose envs are stepped on the host (`jaxmb.envs.host`), not in JAX."""


def _build_host(suite: str, name: str, params: Any) -> core.Env:
    return importlib.import_module("jaxmb.envs.host_suites").build(suite, name, params)


def _host_params(suite: str) -> Any:
    return importlib.import_module("jaxmb.envs.host_suites").PARAMS[suite]()


def _register_host_suites() -> None:
    from jaxmb.envs import host_names

    def options(suite: str, extra: str | None = None, requires: tuple[str, ...] = ()) -> dict:
        params = functools.partial(_host_params, suite)
        return {"extra": extra, "requires": requires, "default_params": params}

    register_source("gym", functools.partial(_build_host, "gym"), **options("gym"))
    for suite, names, extra, requires in (
        ("ale", host_names.ATARI_GAMES, "atari", ("ale_py",)),
        ("procgen", host_names.PROCGEN_GAMES, None, ()),  # worker venv: see worker_venvs
        ("metaworld", host_names.METAWORLD_TASKS, None, ()),  # worker venv
        ("robodesk", host_names.ROBODESK_TASKS, "robodesk", ("robodesk",)),
    ):
        for name in names:
            build = functools.partial(_build_host, suite, name)
            register(f"{suite}:{name}", build, **options(suite, extra, requires))
    register_source(
        "ale", functools.partial(_build_host, "ale"), **options("ale", "atari", ("ale_py",))
    )


_register_host_suites()
