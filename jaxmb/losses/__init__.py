"""Loss terms: one registry, one file per family of terms.

A term is a pure function

    term(params, batch, unroll, targets) -> [B]

of the agent's parameters, the sampled batch (replay fields `[B, L, ...]` and `weight [B]`),
the agent's unroll outputs and its targets (dicts of arrays), returning one loss per sampled
window, already averaged over the positions it covers. It declares what it reads from the
unroll and the targets (`needs`, as `"unroll.<key>"` / `"targets.<key>"`), so an agent
computes only what its active terms need, and the config checks that the chosen agent provides
it (`jaxmb.agents.registry.AgentSpec.provides`).

The loss of an update is `sum_name weight[name] * mean_b(importance_b * term_b)` over the terms
whose weight is not a Python 0 (`agent.loss.weights`); a term with weight 0 is never called, so
it is not in the compiled program. A weight may be a tracer (a swept hyperparameter).

Adding a term means adding a module to this package that calls `register` (every module here is
imported the first time the registry is read), or calling `register` from your own code before
the config is built. MuZero's terms are in `muzero.py`; the Q-learning baseline's in
`q_value.py`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import jax
import jax.numpy as jnp

from jaxmb import plugins
from jaxmb.configlib import ConfigError

#: `(params, batch, unroll, targets) -> [B]`.
TermFn = Callable[[Any, dict, dict, dict], jax.Array]


@dataclasses.dataclass(frozen=True)
class LossTerm:
    """A registered loss term (see the module docstring)."""

    name: str
    fn: TermFn
    needs: frozenset[str]
    description: str = ""


_TERMS = plugins.Registry(
    __name__, __path__, what="loss term", key=lambda name: f"agent.loss.weights.{name}"
)


def register(name: str, *, needs: Iterable[str], description: str = ""):
    """Decorator registering `fn(params, batch, unroll, targets) -> [B]` as term `name`."""
    needs = frozenset(needs)
    bad = [n for n in needs if not n.startswith(("unroll.", "targets."))]
    if bad:
        raise ValueError(f"loss term {name!r}: needs start with 'unroll.' or 'targets.': {bad}")

    def decorate(fn: TermFn) -> TermFn:
        _TERMS.add(
            name, LossTerm(name, fn, needs, description or (fn.__doc__ or "").split("\n")[0])
        )
        return fn

    return decorate


def unregister(name: str) -> None:
    """Removes term `name` (e.g. a term a test registered)."""
    _TERMS.remove(name)


def names() -> tuple[str, ...]:
    """Every registered term."""
    return _TERMS.names()


def get(name: str) -> LossTerm:
    """The term `name`; a `ConfigError` naming `agent.loss.weights.<name>` if unknown."""
    return _TERMS.get(name)


def active(weights: Mapping[str, Any]) -> tuple[str, ...]:
    """The terms in the program: those whose weight is not a Python 0 (a traced weight is
    always active)."""
    return tuple(
        name
        for name, weight in weights.items()
        if not (isinstance(weight, int | float) and weight == 0.0)
    )


def needs(weights: Mapping[str, Any]) -> frozenset[str]:
    """What the active terms read from the unroll and the targets."""
    return frozenset().union(*(get(name).needs for name in active(weights)))


def check(weights: Mapping[str, float], provides: frozenset[str], kind: str) -> None:
    """A `ConfigError` for a weight naming an unknown term, a negative weight, or an active
    term that reads what agent `kind` does not provide."""
    for name, weight in weights.items():
        term = get(name)
        key = f"agent.loss.weights.{name}"
        if not weight >= 0.0:
            raise ConfigError(f"must be >= 0, got {weight}", key)
        missing = sorted(term.needs - provides)
        if weight and missing:
            raise ConfigError(
                f"the term reads {', '.join(missing)}, which agent.kind={kind} does not compute; "
                "give it weight 0 or remove it",
                key,
            )


def total_loss(
    params: Any,
    batch: dict,
    unroll: dict,
    targets: dict,
    weights: Mapping[str, Any],
    importance: jax.Array,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Weighted sum of the active terms, importance-weighted over the batch.

    Returns:
      the scalar loss and a dict of each active term's (unweighted, batch-mean) value.
    """
    total = jnp.zeros((), jnp.float32)
    parts = {}
    for name in active(weights):
        per_sequence = get(name).fn(params, batch, unroll, targets)
        parts[name] = jnp.mean(per_sequence)
        total = total + weights[name] * jnp.mean(importance * per_sequence)
    return total, parts
