"""The agent registry: `agent.kind` in the config picks an agent by name.

    agent = jaxmb.agents.make(config, env, env_params)   # config.agent.kind -> the agent

Entries name their class by import path and are imported on first use, so the core never
imports `jaxmb.baselines` (or any other agent) unless a config asks for it. An entry also
carries what the config needs to know without importing the agent: its default loss terms, what
its unroll and targets provide to loss terms, and the `agent.*` keys it does not read. A key
the agent does not read must stay at its default: `check_config` refuses any other value, so a
setting is never silently dropped.

A new agent registers with `register("name", "package.module:Class", ...)`; its class implements
`jaxmb.agents.base.Agent` and has a `from_config(config, env, env_params)` constructor.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Mapping
from typing import Any

from jaxmb import plugins
from jaxmb.configlib import ConfigError


@dataclasses.dataclass(frozen=True)
class AgentSpec:
    """A registry entry (see the module docstring)."""

    kind: str
    target: str  # "package.module:Class"
    loss_weights: Mapping[str, float]  # default agent.loss.weights
    provides: frozenset[str]  # "unroll.<key>" / "targets.<key>" the agent computes for terms
    parts: tuple[str, ...]  # transferable parameter parts (agent.init_from.parts)
    unread: tuple[str, ...] = ()  # dotted keys under `agent.` (sections or leaves) not read
    description: str = ""


_AGENTS: dict[str, AgentSpec] = {}


def register(
    kind: str,
    target: str,
    *,
    loss_weights: Mapping[str, float],
    provides: frozenset[str] | set[str] = frozenset(),
    parts: tuple[str, ...] = (),
    unread: tuple[str, ...] = (),
    description: str = "",
) -> AgentSpec:
    """Registers an agent under `kind` (replacing an entry of that name)."""
    spec = AgentSpec(
        kind, target, dict(loss_weights), frozenset(provides), tuple(parts), unread, description
    )
    _AGENTS[kind] = spec
    return spec


def kinds() -> tuple[str, ...]:
    """The registered kinds, in registration order."""
    return tuple(_AGENTS)


def spec(kind: str) -> AgentSpec:
    """The entry of `kind`; a `ConfigError` on `agent.kind` listing the registered kinds."""
    if kind not in _AGENTS:
        raise plugins.unknown_name(kind, _AGENTS, what="agent kind", key="agent.kind")
    return _AGENTS[kind]


def agent_class(kind: str) -> type:
    """The class registered as `kind`, imported on first use."""
    module, _, name = spec(kind).target.partition(":")
    return getattr(importlib.import_module(module), name)


def make(config: Any, env: Any, env_params: Any = None) -> Any:
    """The agent `config.agent.kind` names, for `env` (`env_params` are needed by agents
    that search in the env itself)."""
    return agent_class(config.agent.kind).from_config(config, env, env_params)


def check_config(agent_config: Any) -> None:
    """Refuses `agent.*` keys that the chosen agent does not read and that differ from their
    defaults, naming the first such leaf. Called when an `AgentConfig` is built."""
    entry = spec(agent_config.kind)
    for dotted in entry.unread:
        have, want = _get(agent_config, dotted), _default(type(agent_config), dotted)
        if have != want:
            dotted, have, want = _first_difference(dotted, have, want)
            raise ConfigError(
                f"agent.kind={entry.kind} does not read this key "
                f"({entry.description or entry.kind}); leave it at its default ({want!r}) "
                f"instead of {have!r}",
                f"agent.{dotted}",
            )


def unread_keys(kind: str) -> tuple[str, ...]:
    """The dotted `agent.*` keys (sections or leaves) agent `kind` does not read."""
    return tuple(f"agent.{dotted}" for dotted in spec(kind).unread)


def _first_difference(dotted: str, have: Any, want: Any) -> tuple[str, Any, Any]:
    """The first leaf under `dotted` where two config sections differ."""
    if dataclasses.is_dataclass(have) and dataclasses.is_dataclass(want):
        for f in dataclasses.fields(have):
            a, b = getattr(have, f.name), getattr(want, f.name)
            if a != b:
                return _first_difference(f"{dotted}.{f.name}", a, b)
    return dotted, have, want


#: MuZero's terms; `agent.loss.weights` defaults to them (jaxmb.config).
MUZERO_LOSS_WEIGHTS = {"policy": 1.0, "value": 0.25, "reward": 1.0, "terminal": 1.0}


def _default(cls: type, dotted: str) -> Any:
    """The default of `cls`'s dotted field (its section's default, then the attributes)."""
    first, _, rest = dotted.partition(".")
    field = {f.name: f for f in dataclasses.fields(cls)}[first]
    if field.default is not dataclasses.MISSING:
        value = field.default
    else:
        value = field.default_factory()
    return _get(value, rest) if rest else value


def _get(node: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        node = getattr(node, part)
    return node


MUZERO_PROVIDES = frozenset(
    {
        "agent.term_params",  # a term's own parameters and target-side function (jaxmb.losses)
        "unroll.latents",
        "unroll.policy_logits",
        "unroll.value_logits",
        "unroll.reward_logits",
        "unroll.terminal_logits",
        "targets.policy",
        "targets.policy_mask",
        "targets.value",
        "targets.value_probs",
        "targets.value_mask",
        "targets.reward_probs",
        "targets.terminal",
        "targets.model_mask",
        "targets.target_latents",
    }
)

register(
    "muzero",
    "jaxmb.agents.muzero:MuZero",
    loss_weights=MUZERO_LOSS_WEIGHTS,
    provides=MUZERO_PROVIDES,
    parts=("encoder", "prior_heads", "model", "dynamics_heads"),
    unread=("q_learning",),
    description="MuZero planning with a learned model through mctx",
)
register(
    "q_learning",
    "jaxmb.baselines.q_learning:QLearning",
    loss_weights={"q": 1.0},
    # unroll.latents: the encoder's latents of the observed obs[0..K] (no model predicts them).
    provides=frozenset(
        {"unroll.latents", "unroll.q_logits", "targets.q_probs", "targets.value", "targets.q_mask"}
    ),
    parts=("encoder", "q_head"),
    unread=(
        "search",
        "ssl",
        "network.dynamics_hidden_sizes",
        "network.reward_support",
        "loss.bootstrap",
        "loss.reanalyse_fraction",
        "loss.dynamics_gradient_scale",
        "loss.terminal_threshold",
    ),
    description="the model-free control: MuZero's encoder, replay and n-step targets with a "
    "Q head, no model and no search",
)


def with_kind(config: Any, kind: str) -> Any:
    """`config` (a whole `Config`) for agent `kind`: the keys that agent does not read are
    reset to their defaults, and loss weights to its default terms. For comparing agents from
    one base config (the matched benchmark, the transfer experiment's model-free controls)."""
    from jaxmb import configlib

    entry = spec(kind)
    data = configlib.to_dict(config)
    agent = data["agent"]
    agent["kind"] = kind
    agent["loss"]["weights"] = dict(entry.loss_weights)
    agent_cls = type(config.agent)
    for dotted in entry.unread:
        node = agent
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node[part]
        value = _default(agent_cls, dotted)
        node[leaf] = configlib.to_dict(value) if dataclasses.is_dataclass(value) else value
    return configlib.from_dict(type(config), data)
