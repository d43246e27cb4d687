"""Loss terms: one registry, one file per family of terms.

A term is a pure function

    term(params, batch, unroll, targets) -> [B]

of the agent's parameters, the sampled batch (replay fields `[B, L, ...]` and `weight [B]`),
the agent's unroll outputs and its targets (dicts of arrays), returning one loss per sampled
window, already averaged over the positions it covers. It declares what it reads from the
unroll and the targets (`needs`, as `"unroll.<key>"` / `"targets.<key>"`), so an agent
computes only what its active terms need, and the config checks that the chosen agent provides
it (`jaxmb.agents.registry.AgentSpec.provides`).

A term may own parameters (a decoder, projection heads) and a target side (embeddings of
future observations by a target encoder). It then registers a *builder* (`build=True`):
`builder(ctx: TermContext) -> TermSetup`, whose `init(key)` makes the term's parameters (the
agent keeps them at `params["terms"][name]`, trains them with its own optimiser, and copies
them into its target and moving-average parameters), whose `targets(target_params, batch)`
returns entries merged into the targets (computed without gradient, from the parameters
`agent.ssl.target` names), and whose `loss` is the term. Such a term needs
`"agent.term_params"`, which only agents that support it provide. The self-supervised terms
(`ssl.py`) are built this way.

The loss of an update is `sum_name weight[name] * mean_b(importance_b * term_b)` over the terms
whose weight is not a Python 0 (`agent.loss.weights`); a term with weight 0 is never called, so
it (and its parameters) is not in the compiled program. A weight may be a tracer (a swept
hyperparameter).

Adding a term means adding a module to this package that calls `register` (every module here is
imported the first time the registry is read), or calling `register` from your own code before
the config is built. MuZero's terms are in `muzero.py`; the Q-learning baseline's in
`q_value.py`; reconstruction, SPR and contrastive in `ssl.py`.
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
class TermContext:
    """What a term's builder knows of the agent it serves."""

    agent: Any  # the `agent` config section (`agent.ssl` holds the SSL terms' settings)
    obs_shape: tuple[int, ...]
    obs_dtype: Any
    num_actions: int
    latent_dim: int
    represent: Callable[[Any, jax.Array], jax.Array]  # (params, obs [..., *obs_shape]) -> latents


@dataclasses.dataclass(frozen=True)
class TermSetup:
    """A built term: its loss, and optionally its own parameters and target side."""

    loss: TermFn
    init: Callable[[jax.Array], Any] | None = None  # key -> params["terms"][name]
    targets: Callable[[Any, dict], dict] | None = None  # (target params, batch) -> entries


@dataclasses.dataclass(frozen=True)
class LossTerm:
    """A registered loss term (see the module docstring)."""

    name: str
    fn: TermFn  # the term, or with `build`, its builder `(TermContext) -> TermSetup`
    needs: frozenset[str]
    description: str = ""
    build: bool = False


_TERMS = plugins.Registry(
    __name__, __path__, what="loss term", key=lambda name: f"agent.loss.weights.{name}"
)


def register(name: str, *, needs: Iterable[str], description: str = "", build: bool = False):
    """Decorator registering `fn(params, batch, unroll, targets) -> [B]` as term `name`, or,
    with `build=True`, a builder `fn(ctx: TermContext) -> TermSetup` (then the term needs
    `agent.term_params` as well)."""
    needs = frozenset(needs) | ({"agent.term_params"} if build else frozenset())
    bad = [n for n in needs if not n.startswith(("unroll.", "targets.", "agent."))]
    if bad:
        raise ValueError(
            f"loss term {name!r}: needs start with 'unroll.', 'targets.' or 'agent.': {bad}"
        )

    def decorate(fn: TermFn) -> TermFn:
        doc = description or (fn.__doc__ or "").split("\n")[0]
        _TERMS.add(name, LossTerm(name, fn, needs, doc, build))
        return fn

    return decorate


def setup(weights: Mapping[str, Any], ctx: TermContext) -> dict[str, TermSetup]:
    """The active terms, built: a plain term is `TermSetup(loss=fn)`."""
    out = {}
    for name in active(weights):
        term = get(name)
        out[name] = term.fn(ctx) if term.build else TermSetup(loss=term.fn)
    return out


def init_params(setups: Mapping[str, TermSetup], key: jax.Array) -> dict:
    """`{name: params}` of the built terms that own parameters (empty when none does)."""
    owners = [name for name, s in setups.items() if s.init is not None]
    keys = jax.random.split(key, max(len(owners), 1))
    return {name: setups[name].init(k) for name, k in zip(owners, keys, strict=False)}


def term_targets(setups: Mapping[str, TermSetup], target_params: Any, batch: dict) -> dict:
    """The entries the built terms' target sides add to the targets."""
    out = {}
    for s in setups.values():
        if s.targets is not None:
            out.update(s.targets(target_params, batch))
    return out


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
    setups: Mapping[str, TermSetup] | None = None,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Weighted sum of the active terms, importance-weighted over the batch.

    `setups` (from `setup`) holds the built terms; without it, every term must be plain.

    Returns:
      the scalar loss and a dict of each active term's (unweighted, batch-mean) value.
    """
    total = jnp.zeros((), jnp.float32)
    parts = {}
    for name in active(weights):
        if setups is not None:
            fn = setups[name].loss
        elif get(name).build:
            raise ValueError(f"loss term {name!r} is built: pass setups=losses.setup(...)")
        else:
            fn = get(name).fn
        per_sequence = fn(params, batch, unroll, targets)
        parts[name] = jnp.mean(per_sequence)
        total = total + weights[name] * jnp.mean(importance * per_sequence)
    return total, parts
