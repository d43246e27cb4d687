"""jaxmb as a dependency: the wheel built from this tree, installed into a fresh virtual
environment and used from a folder outside the repository.

The environment is made with `python -m venv --without-pip` and sees this project's
environment through a `.pth` file naming its site-packages: the dependencies (JAX, flax, ...)
come from there, and the wheel installs with `--no-deps` on top, in seconds and offline. The
new environment's own site-packages comes first on `sys.path`, so `import jaxmb` finds the
wheel's copy; the project environment's editable install is not active there, since Python
runs the `.pth` files of site directories only, not those of folders a `.pth` file adds. The
test asserts both (`jaxmb.__file__`, `jaxmb.presets.root()` inside the new environment).

The wheel is built from a copy of the files the build reads, so the repository gets no
`build/` folder. Building uses pip's build isolation (setuptools>=77 from the package index),
as `pip install` does.
"""

import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest
from tiny_config import TINY, fast_subprocess_env

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
PACKAGE_DIRS = PYPROJECT["tool"]["setuptools"]["package-dir"]  # {"jaxmb.envs": "envs", ...}

# Imports every public module of the installed package (no `_` in its dotted name), checks
# where it comes from, and loads a preset by name and an experiment whose `base` is a
# repository path (`configs/muzero/cartpole.yaml`), which must read as the shipped preset.
CHECK_IMPORTS = """
import importlib, pkgutil, sys
from pathlib import Path
import jaxmb, jaxmb.presets
prefix = Path(sys.prefix).resolve()
assert prefix in Path(jaxmb.__file__).resolve().parents, jaxmb.__file__
assert prefix in jaxmb.presets.root().resolve().parents, jaxmb.presets.root()
names = []
for info in pkgutil.walk_packages(jaxmb.__path__, "jaxmb."):
    if not any(part.startswith("_") for part in info.name.split(".")):
        importlib.import_module(info.name)
        names.append(info.name)
from jaxmb import config
from jaxmb.experiments import planning
assert config.load("muzero/minipacman").env.id == "jaxmb:MiniPacman-v0"
spec = planning.load_spec("planning_cartpole_cpu")
assert spec.base == "configs/muzero/cartpole.yaml", spec.base
assert planning.variant_config(spec, "one_step").env.id == "gymnax:CartPole-v1"
print(" ".join(names))
"""


def _source_modules() -> set[str]:
    """Every public module and package of the source tree under its installed name, but
    `jaxmb` itself (what `pkgutil.walk_packages(jaxmb.__path__, "jaxmb.")` should yield)."""
    found = set()
    for name, folder in PACKAGE_DIRS.items():
        for file in (ROOT / folder).rglob("*.py"):
            parts = file.relative_to(ROOT / folder).with_suffix("").parts
            parts = parts[:-1] if parts[-1] == "__init__" else parts
            if not any(part.startswith("_") for part in parts):
                found.add(".".join([name, *parts]))
    return found - {"jaxmb"}


def _expected_packages() -> set[str]:
    """Every package of the source tree under its installed name (`jaxmb.envs`, ...): the
    folders with an `__init__.py` under each folder that `package-dir` maps."""
    found = set()
    for name, folder in PACKAGE_DIRS.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            found.add(".".join([name, *rel.parts]))
    return found


def _run(args, *, cwd, timeout=300, env=None):
    result = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=env or fast_subprocess_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, (args, result.stdout[-3000:], result.stderr[-3000:])
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel built from a copy of the package sources, pyproject.toml and the readme."""
    source = tmp_path_factory.mktemp("source")
    shutil.copy2(ROOT / "pyproject.toml", source)
    shutil.copy2(ROOT / PYPROJECT["project"]["readme"], source)
    for folder in set(PACKAGE_DIRS.values()):
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
        shutil.copytree(ROOT / folder, source / folder, ignore=ignore)
    dist = tmp_path_factory.mktemp("dist")
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", dist, source]
    _run(pip_wheel, cwd=source, env=dict(os.environ))
    (built,) = dist.glob("jaxmb-*.whl")
    return built


@pytest.fixture(scope="module")
def venv_python(wheel, tmp_path_factory) -> Path:
    """A fresh virtual environment with the wheel installed, its dependencies from ours."""
    venv = tmp_path_factory.mktemp("venv")
    _run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=venv, env=dict(os.environ))
    python = venv / "bin" / "python"
    purelib = _run(
        [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], cwd=venv
    )
    ours = dict.fromkeys([sysconfig.get_path("purelib"), sysconfig.get_path("platlib")])
    (Path(purelib.stdout.strip()) / "project_dependencies.pth").write_text("\n".join(ours) + "\n")
    install = ["-m", "pip", "install", "--no-deps", "--no-index", "--ignore-installed", "--quiet"]
    _run([python, *install, wheel], cwd=venv, env=dict(os.environ))
    return python


def test_wheel_holds_every_package_and_the_presets(wheel):
    files = zipfile.ZipFile(wheel).namelist()
    packages = {
        f.removesuffix("/__init__.py").replace("/", ".")
        for f in files
        if f.endswith("/__init__.py")
    }
    expected = _expected_packages()
    assert expected <= packages, sorted(expected - packages)
    for name in ("agents", "baselines", "envs", "experiments", "loop", "losses", "rewards"):
        assert f"jaxmb.{name}" in packages, name
    tops = {f.split("/", 1)[0] for f in files}
    assert tops == {"jaxmb", wheel.name.split("-py3")[0] + ".dist-info"}, tops
    presets = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "configs").rglob("*.yaml"))
    assert len(presets) > 10
    for preset in presets:
        assert f"jaxmb/{preset}" in files, preset


@pytest.mark.slow
def test_installed_package_outside_the_repository(venv_python, tmp_path):
    work = tmp_path / "elsewhere"  # no configs/ here: presets must come from the wheel
    work.mkdir()

    imported = _run([venv_python, "-c", CHECK_IMPORTS], cwd=work)
    assert set(imported.stdout.split()) == _source_modules()

    helped = _run([venv_python, "-m", "jaxmb", "experiment", "--help"], cwd=work)
    assert "planning-generalisation" in helped.stdout

    listed = _run([venv_python, "-m", "jaxmb", "presets"], cwd=work)
    assert "muzero/cartpole" in listed.stdout and "experiments/planning" in listed.stdout

    train = [venv_python, "-m", "jaxmb", "train", "muzero/cartpole", *TINY]
    train += ["run.tensorboard=false", f"run.root={work / 'runs'}", "--name", "tiny", "--quiet"]
    trained = _run(train, cwd=work, timeout=600)
    assert "run directory:" in trained.stdout
    assert (work / "runs" / "tiny" / "summary.json").is_file()
