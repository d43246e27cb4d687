"""Agents: pure functions over explicit state (`init`, `act`, `update`)."""

from jaxmb.agents.muzero import MuZero, MuZeroState

__all__ = ["MuZero", "MuZeroState"]
