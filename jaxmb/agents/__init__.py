"""Agents: pure functions over explicit state behind one protocol (`base.Agent`), picked by
`agent.kind` from a registry (`registry.py`) that imports them on first use.

    agent = jaxmb.agents.make(config, env, env_params)
"""

from jaxmb.agents.base import LOOP_FIELDS, Agent
from jaxmb.agents.registry import kinds, make, register

__all__ = ["LOOP_FIELDS", "Agent", "MuZero", "MuZeroState", "kinds", "make", "register"]


def __getattr__(name: str):
    # MuZero imports mctx and flax: loaded when first asked for, like every registered agent.
    if name in ("MuZero", "MuZeroState"):
        from jaxmb.agents import muzero

        return getattr(muzero, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
