"""Typed, frozen config trees: fill them from YAML and dotted overrides, check them, list them.

A config is a tree of ``@dataclasses.dataclass(frozen=True, kw_only=True)`` classes whose
leaves are declared with :func:`field`; this module reads those declarations and the type
hints, and knows nothing of any particular config class::

    @dataclasses.dataclass(frozen=True, kw_only=True)
    class SearchConfig:
        num_simulations: int = field(50, help="Simulations per search.", low=1)
        dirichlet_alpha: float = field(0.3, help="Root noise concentration.", gt=0.0)

Every problem a user can cause (a mistyped key, a value of the wrong type or out of range, a
failed cross-field check in ``__post_init__``) raises :class:`ConfigError`, whose message names
the full dotted key and, for unknown keys, the nearest valid ones.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import types
import typing
from collections.abc import Iterator, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

import yaml

__all__ = [
    "ConfigError",
    "FieldSpec",
    "UnknownKeyError",
    "apply_overrides",
    "check",
    "describe",
    "dump_yaml",
    "field",
    "field_spec",
    "flat_keys",
    "from_dict",
    "load",
    "replace",
    "to_dict",
    "to_yaml",
    "validate",
]

T = TypeVar("T")
_MISSING: Any = dataclasses.MISSING
_METADATA_KEY = "jaxmb"
_NONE = type(None)


class ConfigError(ValueError):
    """A config problem the user can fix. Reads ``"{key}: {message}"`` when ``key`` is set.

    Args:
      message: What is wrong, and what was expected.
      key: Dotted key of the offending value, or None when the problem has no single key.
    """

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message, key)
        self.message = message
        self.key = key

    def __str__(self) -> str:
        return f"{self.key}: {self.message}" if self.key else self.message

    def under(self, path: str) -> ConfigError:
        """Returns the same error with its key moved under the dotted section ``path``."""
        return type(self)(self.message, _join(path, self.key)) if path else self


class UnknownKeyError(ConfigError):
    """A key that names no field. ``suggestions`` holds the nearest valid dotted keys."""

    def __init__(
        self, key: str, suggestions: Sequence[str] = (), valid: Sequence[str] = ()
    ) -> None:
        if suggestions:
            quoted = [repr(s) for s in suggestions]
            options = quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"
            hint = f"did you mean {options}?"
        else:
            hint = "valid keys here: " + ", ".join(valid)
        super().__init__(f"unknown config key {key!r}; {hint}")
        self.args = (key, tuple(suggestions), tuple(valid))
        self.key, self.suggestions, self.valid = key, tuple(suggestions), tuple(valid)

    def __str__(self) -> str:
        return self.message

    def under(self, path: str) -> ConfigError:
        """Returns the same error with its key and suggestions moved under ``path``."""
        if not path:
            return self
        return UnknownKeyError(
            _join(path, self.key), [_join(path, s) for s in self.suggestions], self.valid
        )


class _WrongType(ConfigError):
    """A value of the wrong type at exactly this key (a union tries its next option)."""


def check(condition: bool, key: str, message: str) -> None:
    """Raises ``ConfigError(message, key)`` unless ``condition``; for ``__post_init__`` checks.

    When the dataclass is built by :func:`from_dict` or checked by :func:`validate`, ``key``
    is prefixed with the dotted path of that dataclass in the tree.

    Args:
      condition: What must hold.
      key: Field the message is about, relative to the dataclass (e.g. ``"batch_size"``).
      message: What is wrong, with the offending values.
    """
    if not condition:
        raise ConfigError(message, key)


# ----------------------------------------------------------------------------- fields


@dataclasses.dataclass(frozen=True)
class FieldSpec:
    """What :func:`field` records about a config leaf (in the field's metadata).

    Bounds apply to numbers; for a tuple or a dict they apply to each element or value.
    """

    help: str
    low: float | None = None  # inclusive
    high: float | None = None  # inclusive
    gt: float | None = None  # exclusive lower bound
    lt: float | None = None  # exclusive upper bound
    choices: tuple[Any, ...] | None = None
    # False marks a numeric hyperparameter that may arrive traced (vmapped over in a sweep);
    # True (the default) means the value shapes the compiled program.
    static: bool = True

    def in_range(self, x: float) -> bool:
        """Whether ``x`` lies within the bounds (NaN never does when any bound is set)."""
        return not (
            (self.low is not None and not x >= self.low)
            or (self.gt is not None and not x > self.gt)
            or (self.high is not None and not x <= self.high)
            or (self.lt is not None and not x < self.lt)
        )

    def range_text(self) -> str | None:
        """The bounds in words, e.g. ``'in (0.0, 1.0]'`` or ``'>= 1'``; None without bounds."""
        lower = ("[", ">=", self.low) if self.low is not None else ("(", ">", self.gt)
        upper = ("]", "<=", self.high) if self.high is not None else (")", "<", self.lt)
        if lower[2] is not None and upper[2] is not None:
            return f"in {lower[0]}{lower[2]!r}, {upper[2]!r}{upper[0]}"
        if lower[2] is not None:
            return f"{lower[1]} {lower[2]!r}"
        if upper[2] is not None:
            return f"{upper[1]} {upper[2]!r}"
        return None

    def constraint_text(self) -> str | None:
        """All the constraints in words, for listings; None when the field has none."""
        parts = [self.range_text()]
        if self.choices is not None:
            parts.append("one of " + ", ".join(map(repr, self.choices)))
        if not self.static:
            parts.append("sweepable")
        return "; ".join(p for p in parts if p) or None


def field(
    default: Any = _MISSING,
    *,
    help: str,
    low: float | None = None,
    high: float | None = None,
    gt: float | None = None,
    lt: float | None = None,
    choices: Sequence[Any] | None = None,
    static: bool = True,
    default_factory: Any = _MISSING,
) -> Any:
    """Declares a config field: ``dataclasses.field`` plus help text and allowed values.

    Args:
      default: Default value (immutable; use ``default_factory`` for dicts and dataclasses).
      help: One line for ``describe`` and ``--help``.
      low: Inclusive lower bound.
      high: Inclusive upper bound.
      gt: Exclusive lower bound (``gt=0.0`` for "strictly positive"); not with ``low``.
      lt: Exclusive upper bound; not with ``high``.
      choices: The allowed values, for fields whose type does not already list them.
      static: False for a numeric hyperparameter that may be vmapped over (see FieldSpec).
      default_factory: Zero-argument callable making the default.

    Returns:
      A ``dataclasses.Field`` carrying a :class:`FieldSpec` in its metadata.
    """
    if low is not None and gt is not None:
        raise ValueError("give at most one lower bound: low= (inclusive) or gt= (exclusive)")
    if high is not None and lt is not None:
        raise ValueError("give at most one upper bound: high= (inclusive) or lt= (exclusive)")
    spec = FieldSpec(
        help=help,
        low=low,
        high=high,
        gt=gt,
        lt=lt,
        choices=None if choices is None else tuple(choices),
        static=static,
    )
    return dataclasses.field(
        default=default, default_factory=default_factory, metadata={_METADATA_KEY: spec}
    )


def field_spec(f: dataclasses.Field[Any]) -> FieldSpec | None:
    """Returns the :class:`FieldSpec` of a dataclass field, or None if not made by `field`."""
    return f.metadata.get(_METADATA_KEY)


# ----------------------------------------------------------------------------- types


@cache
def _hints(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except NameError as err:
        raise TypeError(
            f"cannot resolve the annotations of {cls.__qualname__} ({err}); "
            "config classes must be defined at module level"
        ) from err


@cache
def _fields(cls: type) -> dict[str, dataclasses.Field[Any]]:
    return {f.name: f for f in dataclasses.fields(cls) if f.init}


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _is_instance(value: Any) -> bool:
    return dataclasses.is_dataclass(value) and not isinstance(value, type)


def _is_union(tp: Any) -> bool:
    return get_origin(tp) in (Union, types.UnionType)


def _section(tp: Any) -> type | None:
    """The dataclass of a section annotation (``Sub`` or ``Sub | None``), else None."""
    if _is_dataclass_type(tp):
        return tp
    if _is_union(tp):
        options = [a for a in get_args(tp) if a is not _NONE]
        if len(options) == 1 and _is_dataclass_type(options[0]):
            return options[0]
    return None


def _is_dict_type(tp: Any) -> bool:
    return tp is dict or get_origin(tp) in (dict, Mapping)


def _type_name(tp: Any) -> str:
    origin, args = get_origin(tp), get_args(tp)
    if tp is _NONE:
        return "None"
    if _is_dataclass_type(tp):
        return tp.__name__
    if origin is Literal:
        return " | ".join(map(repr, args))
    if _is_union(tp):
        return " | ".join(map(_type_name, args))
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"tuple[{_type_name(args[0])}, ...]"
        return f"tuple[{', '.join(map(_type_name, args))}]"
    if origin in (dict, Mapping):
        return f"dict[{', '.join(map(_type_name, args))}]"
    return getattr(tp, "__name__", repr(tp))


def _got(value: Any) -> str:
    text = repr(value)
    return f"{text[:57] + '...' if len(text) > 60 else text} ({type(value).__name__})"


def _join(*parts: str | None) -> str:
    return ".".join(p for p in parts if p)


def _convert(value: Any, tp: Any, key: str, strict: bool, root: tuple[type, str]) -> Any:
    """Checks ``value`` against annotation ``tp`` and returns it in canonical form.

    Unless ``strict``, accepts and converts what YAML gives: ints for floats, integral floats
    for ints, lists for tuples, mappings for dataclasses. ``strict`` (for :func:`validate`)
    accepts only the canonical form and leaves nested dataclasses to the caller.
    """
    origin, args = get_origin(tp), get_args(tp)
    if tp is Any:
        return value
    if tp is _NONE:
        if value is None:
            return None
    elif tp is bool or tp is str:
        if isinstance(value, tp):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if not strict and isinstance(value, float) and value.is_integer():
            return int(value)
    elif tp is float:
        if isinstance(value, float):
            return value
        if not strict and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
    elif origin is Literal:
        if any(type(value) is type(a) and value == a for a in args):
            return value
        raise _WrongType(f"expected one of {', '.join(map(repr, args))}, got {_got(value)}", key)
    elif _is_union(tp):
        if value is None and _NONE in args:
            return None
        errors = []
        for option in (a for a in args if a is not _NONE):
            try:
                return _convert(value, option, key, strict, root)
            except ConfigError as err:
                errors.append(err)
        # A problem deeper inside an option (a tuple element, a section's key) says more.
        deeper = [e for e in errors if not (isinstance(e, _WrongType) and e.key == key)]
        if deeper:
            raise deeper[0]
    elif _is_dataclass_type(tp):
        if isinstance(value, tp):
            return value if strict else _build(tp, to_dict(value), key, root)
        if not strict and isinstance(value, Mapping):
            return _build(tp, value, key, root)
        raise _WrongType(f"expected {tp.__name__} (a mapping), got {_got(value)}", key)
    elif tp is tuple or origin is tuple:
        if isinstance(value, tuple) or (not strict and isinstance(value, list)):
            item_types = args or (Any, Ellipsis)
            if len(item_types) == 2 and item_types[1] is Ellipsis:
                item_types = (item_types[0],) * len(value)
            elif len(value) != len(item_types):
                raise _WrongType(
                    f"expected {_type_name(tp)} ({len(item_types)} items), got {_got(value)}", key
                )
            return tuple(
                _convert(v, t, f"{key}[{i}]", strict, root)
                for i, (v, t) in enumerate(zip(value, item_types, strict=True))
            )
    elif _is_dict_type(tp):
        if isinstance(value, Mapping):
            key_type, value_type = args or (Any, Any)
            out = {}
            for k, v in value.items():
                try:
                    _convert(k, key_type, key, True, root)
                except ConfigError:
                    raise ConfigError(
                        f"keys must be {_type_name(key_type)}, got {_got(k)}", key
                    ) from None
                out[k] = _convert(v, value_type, f"{key}.{k}", strict, root)
            return value if strict else out
    else:
        raise TypeError(f"{key}: unsupported config annotation {tp!r}")
    raise _WrongType(f"expected {_type_name(tp)}, got {_got(value)}", key)


def _check_allowed(value: Any, spec: FieldSpec | None, key: str) -> None:
    if spec is None or value is None or _is_instance(value):
        return
    if isinstance(value, tuple):
        for i, item in enumerate(value):
            _check_allowed(item, spec, f"{key}[{i}]")
    elif isinstance(value, Mapping):
        for k, item in value.items():
            _check_allowed(item, spec, f"{key}.{k}")
    elif spec.choices is not None and value not in spec.choices:
        choices = ", ".join(map(repr, spec.choices))
        raise ConfigError(f"expected one of {choices}, got {value!r}", key)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        if not spec.in_range(value):
            raise ConfigError(f"expected a value {spec.range_text()}, got {value!r}", key)


# ----------------------------------------------------------------------------- building


def _default(f: dataclasses.Field[Any]) -> Any:
    if f.default is not _MISSING:
        return f.default
    if f.default_factory is not _MISSING:
        return f.default_factory()
    return _MISSING


def _is_retired(cls: type, name: Any, value: Any, path: str) -> bool:
    """Whether `name` is a key `cls` no longer has (its `RETIRED_KEYS`), given at its old
    default: saved configs of earlier versions still load. Any other value is an error."""
    retired = getattr(cls, "RETIRED_KEYS", {})
    if name not in retired:
        return False
    if value != retired[name]:
        raise ConfigError(
            f"this key was removed; only its old default {retired[name]!r} is still read (and "
            f"ignored), got {_got(value)}",
            _join(path, name),
        )
    return True


def _build(cls: type[T], data: Any, path: str, root: tuple[type, str]) -> T:
    """Builds ``cls`` from a (partial) mapping; the workhorse of :func:`from_dict`."""
    if not isinstance(data, Mapping):
        raise _WrongType(f"expected {cls.__name__} (a mapping), got {_got(data)}", path or None)
    fields = _fields(cls)
    if any(_is_retired(cls, name, data[name], path) for name in data):
        data = {n: v for n, v in data.items() if not _is_retired(cls, n, v, path)}
    for name in data:
        if not isinstance(name, str):
            raise ConfigError(f"config keys must be strings, got {_got(name)}", path or None)
        if name not in fields:
            raise _unknown_key(root, cls, path, name, ())
    kwargs = {}
    for name, f in fields.items():
        key, tp = _join(path, name), _hints(cls)[name]
        if name in data:
            value = data[name]
            sub = _section(tp)
            if sub is not None and isinstance(value, Mapping):
                # A partial section keeps the values of the enclosing class's default for it,
                # which may differ from the section class's own defaults.
                default = _default(f)
                if isinstance(default, sub):
                    value = _merge(sub, to_dict(default), value, key, root)
        else:
            value = _default(f)
            if value is _MISSING:
                raise ConfigError("missing required config key", key)
        value = _convert(value, tp, key, False, root)
        _check_allowed(value, field_spec(f), key)
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except ConfigError as err:
        raise err.under(path) from err
    except ValueError as err:
        raise ConfigError(f"{cls.__name__}: {err}", path or None) from err


def _merge(
    cls: type,
    base: Mapping[str, Any],
    updates: Mapping[Any, Any],
    path: str,
    root: tuple[type, str],
) -> dict[str, Any]:
    """Returns ``base`` (raw data for ``cls``) with ``updates`` merged into its sections."""
    out = dict(base)
    for name, value in updates.items():
        if not isinstance(name, str):
            raise ConfigError(f"config keys must be strings, got {_got(name)}", path or None)
        _assign(cls, out, [name], value, path, root)
    return out


def _assign(
    cls: type, node: dict[str, Any], parts: list[str], value: Any, path: str, root: tuple[type, str]
) -> None:
    """Sets dotted ``parts`` (relative to ``cls``) in raw data ``node``, merging mappings."""
    name, rest = parts[0], parts[1:]
    if not rest and _is_retired(cls, name, value, path):
        return
    if name not in _fields(cls):
        raise _unknown_key(root, cls, path, name, rest)
    key, tp = _join(path, name), _hints(cls)[name]
    sub = _section(tp)
    child = node.get(name)
    child = dict(child) if isinstance(child, Mapping) else {}
    if sub is not None and rest:
        _assign(sub, child, rest, value, key, root)
        node[name] = child
    elif sub is not None and isinstance(value, Mapping):
        node[name] = _merge(sub, child, value, key, root)
    elif _is_dict_type(tp) and len(rest) == 1:
        if name not in node:  # one entry changes; the others keep their defaults
            default = _default(_fields(cls)[name])
            child = dict(default) if isinstance(default, Mapping) else {}
        child[rest[0]] = value
        node[name] = child
    elif rest:
        full = _join(key, *rest)
        raise ConfigError(
            f"cannot set {full!r}: {key!r} holds a {_type_name(tp)}, not a section of keys"
        )
    else:
        node[name] = value


def _walk_keys(cls: type, prefix: str, seen: frozenset[type]) -> Iterator[tuple[str, bool]]:
    """Yields ``(dotted_key, is_section)`` for every field under ``cls``, depth first."""
    for name in _fields(cls):
        key, sub = _join(prefix, name), _section(_hints(cls)[name])
        yield key, sub is not None
        if sub is not None and sub not in seen:
            yield from _walk_keys(sub, key, seen | {cls})


@cache
def _all_keys(cls: type) -> tuple[str, ...]:
    return tuple(key for key, _ in _walk_keys(cls, "", frozenset()))


def _unknown_key(
    root: tuple[type, str], cls: type, path: str, name: str, rest: Sequence[str]
) -> UnknownKeyError:
    root_cls, root_path = root
    full = ".".join([*filter(None, [path]), name, *rest])  # as given, even with empty parts
    keys = [_join(root_path, k) for k in _all_keys(root_cls)]
    known, names = set(keys), list(_fields(cls))
    tail = ".".join([name, *rest])
    # Most telling first: the same key in another section (agent.num_simulations ->
    # agent.search.num_simulations), names that contain the given one, then near spellings.
    last = (rest or [name])[-1]
    found = [k for k in keys if k == tail or k.endswith("." + tail)]
    found += [_join(path, n) for n in names if len(name) >= 3 and name in n]
    found += [k for k in keys if len(last) >= 3 and last in k.rsplit(".", 1)[-1]]
    for match in difflib.get_close_matches(name, names, n=3):
        fixed = _join(path, match, *rest)
        found.append(fixed if fixed in known else _join(path, match))
    if not found:
        found += [
            k for k in keys if difflib.get_close_matches(last, [k.rsplit(".", 1)[-1]], 1, 0.8)
        ]
        found += difflib.get_close_matches(full, keys, n=3, cutoff=0.75)
    found = [k for k in dict.fromkeys(found) if not full.startswith(k + ".")]  # not a parent
    return UnknownKeyError(full, found[:3], names)


# ----------------------------------------------------------------------------- public API


def from_dict(cls: type[T], data: Mapping[str, Any], *, path: str = "") -> T:
    """Builds and checks a config from a (partial) nested mapping.

    Missing keys keep their defaults; a section given as a partial mapping keeps the
    defaults of the rest of that section.

    Args:
      cls: The config dataclass.
      data: Nested mapping of field names to values, as YAML gives them.
      path: Dotted path of ``cls`` inside a larger tree, used in error messages.

    Returns:
      The frozen config, with lists turned into tuples and ints into floats where declared.

    Raises:
      ConfigError: For an unknown key, a wrong type, a value out of range or a failed
        ``__post_init__`` check; the message names the dotted key.
    """
    if not _is_dataclass_type(cls):
        raise TypeError(f"from_dict needs a dataclass type, got {cls!r}")
    return _build(cls, data, path, (cls, path))


def to_dict(cfg: Any) -> dict[str, Any]:
    """Returns a config as plain nested dicts and lists, which :func:`from_dict` reads back."""
    if not _is_instance(cfg):
        raise TypeError(f"to_dict needs a dataclass instance, got {cfg!r}")
    return {name: _plain(getattr(cfg, name)) for name in _fields(type(cfg))}


def _plain(value: Any) -> Any:
    if _is_instance(value):
        return to_dict(value)
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


def replace(cfg: T, **changes: Any) -> T:
    """Like ``dataclasses.replace``, but converts and checks the new values.

    Args:
      cfg: A config.
      **changes: New values for top-level fields of ``cfg``; a section may be given as a
        dataclass instance or as a (partial) mapping over its defaults.

    Returns:
      The new config.

    Raises:
      ConfigError: As :func:`from_dict`.
    """
    cls, data = type(cfg), to_dict(cfg)
    for name, value in changes.items():
        if name not in _fields(cls):
            raise _unknown_key((cls, ""), cls, "", name, ())
        data[name] = to_dict(value) if _is_instance(value) else value
    return from_dict(cls, data)


def _apply(cls: type, data: dict[str, Any], overrides: Sequence[str]) -> None:
    """Sets each ``key=value`` override in raw data ``data`` for ``cls``."""
    if isinstance(overrides, str):
        raise TypeError("overrides must be a sequence of 'key=value' strings, not one string")
    for text in overrides:
        key, sep, raw = text.partition("=")
        key = key.strip()
        if not sep or not key:
            example = f"{key or 'section.key'}=<value>"
            raise ConfigError(f"override {text!r} is not of the form key=value, e.g. {example!r}")
        try:
            value = yaml.load(raw, Loader=_Loader)
        except yaml.YAMLError as err:
            _assign(cls, {}, key.split("."), None, "", (cls, ""))  # a bad key is the first news
            problem = getattr(err, "problem", None) or type(err).__name__
            raise ConfigError(f"cannot parse {raw!r} as a YAML value ({problem})", key) from err
        _assign(cls, data, key.split("."), value, "", (cls, ""))


def apply_overrides(cfg: T, overrides: Sequence[str]) -> T:
    """Applies dotted ``key=value`` overrides, then checks the result once.

    Values are read as YAML (``true``, ``1e-3``, ``[64, 64]``, ``null``; an empty value is
    null). A mapping given for a section merges into it (``agent.search={num_simulations: 5}``);
    given for a dict-valued field it replaces the dict, and ``field.name=value`` sets one entry.
    Later overrides win; cross-field checks see only the final config.

    Args:
      cfg: The config to start from.
      overrides: Strings such as ``"agent.search.num_simulations=50"``.

    Returns:
      The new config.

    Raises:
      ConfigError: For a malformed override or any problem :func:`from_dict` reports.
    """
    data = to_dict(cfg)
    _apply(type(cfg), data, overrides)
    return from_dict(type(cfg), data)


def load(path: str | os.PathLike[str] | None, overrides: Sequence[str] = (), *, cls: type[T]) -> T:
    """Builds a config from defaults, an optional YAML preset, and overrides, in that order.

    Args:
      path: YAML file holding a (partial) nested mapping, or None for the defaults alone.
      overrides: Dotted ``key=value`` strings, as for :func:`apply_overrides`.
      cls: The config dataclass.

    Returns:
      The checked config.

    Raises:
      ConfigError: For an unreadable or malformed file, or any problem in the values; a note
        on the error names the file.
    """
    data = {} if path is None else _read_yaml(path)
    try:
        _apply(cls, data, overrides)
        return from_dict(cls, data)
    except ConfigError as err:
        if path is not None:
            err.add_note(f"while loading config file {os.fspath(path)!r}")
        raise


def _read_yaml(path: str | os.PathLike[str]) -> dict[str, Any]:
    name = os.fspath(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot read config file {name!r}: {err}") from err
    try:
        data = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {name!r} is not valid YAML: {err}") from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"config file {name!r} must hold a mapping of config keys, got {type(data).__name__}"
        )
    _check_string_keys(data, name, "")
    return data


def _check_string_keys(node: dict[Any, Any], file: str, path: str) -> None:
    for k, v in node.items():
        if not isinstance(k, str):
            where = f"under {path!r}" if path else "at the top level"
            raise ConfigError(f"config file {file!r}: key {_got(k)} {where} is not a string")
        if isinstance(v, dict):
            _check_string_keys(v, file, _join(path, k))


def to_yaml(cfg: Any) -> str:
    """Returns the resolved config as YAML text that :func:`load` reads back to an equal one."""
    # Not allow_unicode=True: with it PyYAML writes U+0085 raw inside quoted scalars and reads
    # it back as a space. Escaped non-ASCII round-trips exactly.
    return yaml.dump(to_dict(cfg), Dumper=_Dumper, sort_keys=False, default_flow_style=False)


def dump_yaml(cfg: Any, path: str | os.PathLike[str]) -> None:
    """Writes the resolved config to ``path`` (creating its folder) for :func:`load`."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(to_yaml(cfg), encoding="utf-8")


def validate(cfg: Any, *, path: str = "") -> None:
    """Checks a config built in Python: types, ranges, choices and every ``__post_init__``.

    Stricter than :func:`from_dict`, which converts: here a tuple field must hold a tuple and a
    float field a float. Do not call it from ``__post_init__`` (it calls ``__post_init__``).

    Args:
      cfg: A config instance.
      path: Dotted path of ``cfg`` inside a larger tree, used in error messages.

    Raises:
      ConfigError: For the first problem found, naming its dotted key.
    """
    cls = type(cfg)
    for name, f in _fields(cls).items():
        key, value = _join(path, name), getattr(cfg, name)
        _convert(value, _hints(cls)[name], key, True, (cls, path))
        _check_allowed(value, field_spec(f), key)
        if _is_instance(value):
            validate(value, path=key)
    post_init = getattr(cfg, "__post_init__", None)
    if post_init is not None:
        try:
            post_init()
        except ConfigError as err:
            raise err.under(path) from err


def flat_keys(cls: type) -> list[str]:
    """Returns every dotted leaf key of a config class, in declaration order."""
    return [key for key, is_section in _walk_keys(cls, "", frozenset()) if not is_section]


def describe(cls: type) -> str:
    """Returns a table of every dotted key with its type, default and help, for ``--help``.

    Defaults are written as an override would type them, and are those in effect: a section's
    leaves show the enclosing class's default for that section. An optional section gets a row
    of its own, since it may be set to null.
    """
    rows = [("key", "type", "default", "help")]
    for key, tp, spec, default in _describe_rows(cls, "", None, frozenset()):
        text = spec.help if spec else ""
        constraint = spec.constraint_text() if spec else None
        if constraint:
            text = f"{text} ({constraint})" if text else f"({constraint})"
        shown = "(required)" if default is _MISSING else _yaml_inline(_plain(default))
        rows.append((key, _type_name(tp), shown, text))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return "\n".join(
        "  ".join(
            [*(cell.ljust(w) for cell, w in zip(row[:3], widths, strict=True)), row[3]]
        ).rstrip()
        for row in rows
    )


def _yaml_inline(value: Any) -> str:
    """One value as it would be typed in an override (``null``, ``[64, 64]``, ``relu``)."""
    text = yaml.dump(value, Dumper=_Dumper, sort_keys=False, default_flow_style=True, width=10**9)
    return text.removesuffix("...\n").strip()


def _describe_rows(
    cls: type, prefix: str, instance: Any, seen: frozenset[type]
) -> Iterator[tuple[str, Any, FieldSpec | None, Any]]:
    for name, f in _fields(cls).items():
        key, tp = _join(prefix, name), _hints(cls)[name]
        default = getattr(instance, name) if instance is not None else _default(f)
        sub = _section(tp)
        if sub is None or sub is not tp:
            yield key, tp, field_spec(f), default
        if sub is not None and sub not in seen:
            inner = default if isinstance(default, sub) else None
            yield from _describe_rows(sub, key, inner, seen | {cls})


# ----------------------------------------------------------------------------- YAML dialect

_FLOAT_TAG = "tag:yaml.org,2002:float"
# PyYAML follows YAML 1.1, where `1e-3` and `1.0e5` are strings: a float needs a dot and a
# signed exponent. Configs are written by people who expect `1e-3` to be a number.
_EXPONENT_FLOAT = re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$")


class _Loader(yaml.SafeLoader):
    """Safe YAML 1.1 loading, except that `1e-3` is a float and dates stay strings."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(_FLOAT_TAG, _EXPONENT_FLOAT, list("-+.0123456789"))


class _Dumper(yaml.SafeDumper):
    """Safe dumping that quotes every string _Loader (or plain YAML 1.1) would not read back."""


_Dumper.add_implicit_resolver(_FLOAT_TAG, _EXPONENT_FLOAT, list("-+.0123456789"))


def _represent_list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.SequenceNode:
    flow = all(not isinstance(item, list | dict) for item in data)  # [64, 64] on one line
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_Dumper.add_representer(list, _represent_list)
