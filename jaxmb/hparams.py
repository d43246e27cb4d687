"""Numeric hyperparameters as traced inputs, so one compiled program sweeps them.

    train = jaxmb.make_train(config)
    hparams = {"agent.optim.learning_rate": jnp.array([1e-3, 3e-3]),
               "agent.loss.weights.value": jnp.array([0.25, 1.0])}
    state, metrics = jax.jit(jax.vmap(train))(keys, hparams)

A key may be swept when its field is declared with `field(..., static=False)` in
`jaxmb/config.py`: learning rate, Adam epsilon, weight decay, gradient clip, discount, loss
weights, the dynamics gradient scale, the terminal threshold, search noise and exploration
constants, prioritized-replay exponents. Everything that shapes the compiled program (network
sizes, `num_simulations`, `unroll_steps`, `td_steps`, batch size, which loss terms exist, ...)
is structural: `train` refuses it with a `ConfigError` naming the key (`jaxmb.sweep` takes
structural keys too, with one compile per structural point). A loss weight may be swept
only for a term the base config keeps (a weight of 0 removes the term from the program).

Inside `train`, the values replace the config's leaves (`substitute`) before the agent is
built, so the agent and the loop read them as they read any config value; they are never
range-checked there (they may be tracers), which is why `jaxmb.sweep` checks each concrete
value with the config's own rules first (`check_values`).
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import typing
from collections.abc import Mapping
from typing import Any

from jaxmb import configlib
from jaxmb.configlib import ConfigError

__all__ = ["all_keys", "check_keys", "check_values", "sweepable_keys", "substitute"]


def _sections(cfg: Any):
    """Yields `(dotted_key, field, value)` for every leaf of a config instance."""
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            for key, leaf, leaf_value in _sections(value):
                yield f"{f.name}.{key}", leaf, leaf_value
        else:
            yield f.name, f, value


def sweepable_keys(config: Any) -> list[str]:
    """Every key of `config` that `train(key, hparams)` accepts, in declaration order.

    A dict-valued field (the loss weights) contributes one key per entry whose value is not
    0 in `config`: `agent.loss.weights.policy`, ...
    """
    keys = []
    unread = _unread(config)
    for key, f, value in _sections(config):
        spec = configlib.field_spec(f)
        if spec is None or spec.static or _under(key, unread):
            continue
        if isinstance(value, Mapping):
            keys.extend(f"{key}.{entry}" for entry, weight in value.items() if weight)
        else:
            keys.append(key)
    return keys


def all_keys(config: Any) -> list[str]:
    """Every key of `config`, sections' leaves and dict entries included, dotted."""
    keys = []
    for key, _, value in _sections(config):
        keys.append(key)
        if isinstance(value, Mapping):
            keys.extend(f"{key}.{entry}" for entry in value)
    return keys


def check_keys(config: Any, keys: typing.Iterable[str]) -> None:
    """Raises `ConfigError` for a key `train(key, hparams)` cannot take.

    The message names the key and says why: not a config key (with the nearest valid ones),
    structural (it shapes the program: run separate configs instead), or a loss term the base
    config removes.
    """
    sweepable = sweepable_keys(config)
    known = all_keys(config)
    unread = _unread(config)
    for key in keys:
        if key in sweepable:
            continue
        if _under(key, unread):
            raise ConfigError(
                f"agent.kind={config.agent.kind} does not read this key, so sweeping it would "
                "change nothing",
                key,
            )
        if key not in known:
            close = difflib.get_close_matches(key, sweepable, n=3, cutoff=0.6)
            hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            raise ConfigError(f"not a config key{hint} Sweepable keys: {', '.join(sweepable)}", key)
        parent = key.rsplit(".", 1)[0]
        if parent in known and isinstance(_get(config, parent), Mapping):
            raise ConfigError(
                "the base config gives this term weight 0, which removes it from the program; "
                "give it a non-zero weight in the base config to sweep it",
                key,
            )
        raise ConfigError(
            "is structural (it decides array shapes or the program itself) and cannot be a "
            "traced hyperparameter; train separate configs to compare its values. Sweepable "
            f"keys: {', '.join(sweepable)}",
            key,
        )


def _unread(config: Any) -> tuple[str, ...]:
    """The keys the config's agent does not read (`jaxmb.agents.registry`)."""
    agent = getattr(config, "agent", None)
    if agent is None or not hasattr(agent, "kind"):
        return ()
    from jaxmb.agents import registry

    return registry.unread_keys(agent.kind)


def _under(key: str, prefixes: tuple[str, ...]) -> bool:
    return any(key == p or key.startswith(p + ".") for p in prefixes)


def check_values(config: Any, values: Mapping[str, typing.Iterable[Any]]) -> None:
    """Checks every concrete value of every key with the config's own rules (type, range,
    cross-field checks), as if each were an override; raises `ConfigError` naming the key."""
    check_keys(config, values)
    for key, column in values.items():
        for value in column:
            configlib.apply_overrides(config, [f"{key}={float(value)!r}"])


def _get(config: Any, dotted: str) -> Any:
    node = config
    for part in dotted.split("."):
        node = node[part] if isinstance(node, Mapping) else getattr(node, part)
    return node


def substitute(config: Any, values: Mapping[str, Any]) -> Any:
    """`config` with the leaves named by `values` replaced, without any checks.

    The values may be JAX tracers (that is the point), so nothing compares them; call
    `check_keys` (and, for concrete values, `check_values`) first. Config classes are frozen,
    so the changed sections are shallow copies set with `object.__setattr__`.
    """
    config = copy.copy(config)
    for dotted, value in values.items():
        parts = dotted.split(".")
        node = config
        for name in parts[:-1]:
            child = getattr(node, name) if not isinstance(node, dict) else node[name]
            child = dict(child) if isinstance(child, Mapping) else copy.copy(child)
            if isinstance(node, dict):
                node[name] = child
            else:
                object.__setattr__(node, name, child)
            node = child
        if isinstance(node, dict):
            node[parts[-1]] = value
        else:
            object.__setattr__(node, parts[-1], value)
    return config
