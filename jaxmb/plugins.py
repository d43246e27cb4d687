"""What the registries (agents, loss terms, reward transforms) share: importing every module of
a plugin package, and the error for a name that is not registered."""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from collections.abc import Iterable

from jaxmb.configlib import ConfigError


def import_modules(package: str, path: Iterable[str]) -> None:
    """Imports every module of `package` (whose `__path__` is `path`): each registers itself."""
    for module in pkgutil.iter_modules(path):
        importlib.import_module(f"{package}.{module.name}")


def unknown_name(name: str, known: Iterable[str], *, what: str, key: str) -> ConfigError:
    """A `ConfigError` on `key` for an unregistered `name`: the closest match and every
    registered name."""
    known = tuple(known)
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return ConfigError(f"unknown {what} '{name}'; {hint}registered: {', '.join(known)}", key)


class Registry:
    """Named items, filled by the modules of a plugin package (imported on the first read)
    and by `add` calls from anywhere.

    Args:
      package, path: the plugin package's `__name__` and `__path__`.
      what: what an item is, for errors ("loss term").
      key: the config key an unknown name is reported on, from the name.
    """

    def __init__(self, package: str, path: Iterable[str], *, what: str, key):
        self._package, self._path, self._what, self._key = package, path, what, key
        self._items: dict = {}
        self._imported = False

    def add(self, name: str, item) -> None:
        self._items[name] = item

    def remove(self, name: str) -> None:
        self._items.pop(name, None)

    def _import(self) -> None:
        if not self._imported:
            self._imported = True
            import_modules(self._package, self._path)

    def names(self) -> tuple[str, ...]:
        self._import()
        return tuple(self._items)

    def get(self, name: str):
        self._import()
        if name not in self._items:
            raise unknown_name(name, self._items, what=self._what, key=self._key(name))
        return self._items[name]
