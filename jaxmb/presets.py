"""YAML presets by name: `muzero/cartpole` is the file `configs/muzero/cartpole.yaml`.

The repository's `configs/` folder ships inside the package as `jaxmb/configs/`
(`[tool.setuptools.package-dir]` in pyproject.toml), so a project that depends on jaxmb has the
presets too; in a source checkout or an editable install they are read from `configs/` itself.
A name is `<folder>/<file stem>`: `muzero/...`, `q_learning/...` and `experiments/...`::

    jaxmb.config.load("muzero/cartpole")                 # by name
    jaxmb.config.load("configs/muzero/cartpole.yaml")    # by path
    python -m jaxmb presets                              # every name, with its description

:func:`resolve` reads an existing file first and a name second. A repository path
(`configs/muzero/cartpole.yaml`) that is not there, as outside the repository, reads as its
name: the experiment YAMLs give their `base` that way and work from a wheel. Anything else is
a `ConfigError` that lists the close names.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

from jaxmb.configlib import ConfigError

__all__ = ["description", "names", "path", "resolve", "root", "table"]

_PACKAGE = Path(__file__).resolve().parent
_SUFFIXES = (".yaml", ".yml")


def root() -> Path:
    """The presets folder: `jaxmb/configs/` when installed from a wheel, else the repository's
    `configs/` (a source checkout, or an editable install, which runs the repository's files)."""
    shipped = _PACKAGE / "configs"
    return shipped if shipped.is_dir() else _PACKAGE.parent / "configs"


def names(group: str | None = None) -> list[str]:
    """Every preset name (`muzero/cartpole`, ...), sorted; only those of folder `group` if given."""
    folder = root()
    found = (p for suffix in _SUFFIXES for p in folder.glob(f"*/*{suffix}") if p.is_file())
    out = sorted({f"{p.parent.name}/{p.stem}" for p in found})
    return [n for n in out if group is None or n.startswith(f"{group}/")]


def path(name: str) -> Path:
    """The file of preset `name`.

    Raises:
      ConfigError: When no preset has that name; the message lists the close ones.
    """
    file = _file(name)
    if file is None:
        raise _no_match(name, name, None, file_too=False)
    return file


def resolve(path_or_name: str | os.PathLike[str], *, group: str | None = None) -> Path:
    """The file to read for a config argument: an existing file, else a preset.

    Args:
      path_or_name: A YAML file, or a preset name (`muzero/cartpole`). A repository path
        `configs/<name>.yaml` that does not exist here reads as `<name>`.
      group: A folder that may be left out of a name (`experiments`: `planning` is then
        `experiments/planning`).

    Returns:
      The path of the file to read.

    Raises:
      ConfigError: When neither a file nor a preset matches; the message lists the close names.
    """
    given = os.fspath(path_or_name)
    if Path(given).is_file():
        return Path(given)
    name = _as_name(given)
    for candidate in (name, f"{group}/{name}" if group else None):
        file = _file(candidate) if candidate else None
        if file is not None:
            return file
    raise _no_match(given, name, group)


def description(name: str) -> str:
    """A preset's one-line description: the head of its file's first comment line.

    A line that ends a sentence (`.` or `:`) is kept whole; one that runs on to the next line
    is cut at its first `": "`, or where a parenthesis it leaves open begins.
    """
    for line in path(name).read_text(encoding="utf-8").splitlines():
        text = line.strip()
        if text.startswith("#"):
            return _head(text.lstrip("#").strip())
        if text:
            break
    return ""


def table(group: str | None = None) -> str:
    """Every preset name with its description, one a line, for `python -m jaxmb presets`."""
    rows = [(n, description(n)) for n in names(group)]
    width = max((len(n) for n, _ in rows), default=0)
    return "\n".join(f"{n.ljust(width)}  {text}".rstrip() for n, text in rows)


def _file(name: str) -> Path | None:
    # Only listed names: a name never reaches a file outside the folder (`../x`).
    if name not in names():
        return None
    folder = root()
    return next(f for s in _SUFFIXES if (f := folder / f"{name}{s}").is_file())


def _as_name(given: str) -> str:
    name = given.replace(os.sep, "/").removeprefix("./").removeprefix("configs/")
    for suffix in _SUFFIXES:
        name = name.removesuffix(suffix)
    return name


def _close(name: str, group: str | None) -> list[str]:
    """Up to 5 names whose file stem is near `name`'s, those in its folder first."""
    folder, _, stem = name.rpartition("/")
    folder = folder or group
    stems = {n: n.rsplit("/", 1)[-1] for n in names()}
    near = difflib.get_close_matches(stem, set(stems.values()), n=5, cutoff=0.6)
    found = [n for n, s in stems.items() if s in near]
    found.sort(key=lambda n: (near.index(stems[n]), not n.startswith(f"{folder}/")))
    return found[:5]


def _no_match(given: str, name: str, group: str | None, *, file_too: bool = True) -> ConfigError:
    if not file_too:
        what = f"no preset named {name!r}"
    elif given != name:  # it reads as a path: `configs/...` or `*.yaml`
        what = f"no config file {given!r} and no preset named {name!r}"
    else:
        what = f"no preset named {given!r} (and no such file)"
    close = _close(name, group)
    if close:
        hint = "did you mean " + ", ".join(map(repr, close)) + "?"
    else:
        hint = "`python -m jaxmb presets` lists the presets"
    return ConfigError(f"{what}; {hint}")


def _head(line: str) -> str:
    if line.endswith((".", ":")):
        return line[:-1]
    depth, opened = 0, None
    for i, char in enumerate(line):
        if char == "(":
            opened = i if depth == 0 else opened
            depth += 1
        elif char == ")":
            depth = max(0, depth - 1)
        elif char == ":" and depth == 0 and line[i + 1 : i + 2] == " ":
            return line[:i]
    return line[:opened].rstrip() if depth and opened is not None else line
