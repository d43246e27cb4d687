"""The compiled loop, under its earlier name: see `jaxmb.loop`, which it re-exports."""

from jaxmb import loop as _loop
from jaxmb.loop import *  # noqa: F403

__all__ = _loop.__all__
