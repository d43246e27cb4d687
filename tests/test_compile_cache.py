"""JAX's persistent compilation cache: on by default for `train_run`, under the user's cache
folder, off with `run.compile_cache=false`, and never over a folder the user chose.

The runs go through `python -m jaxmb train` in a subprocess with its own HOME and
XDG_CACHE_HOME, without the JAX_COMPILATION_CACHE_DIR that conftest.py sets for the suite:
JAX opens its cache once per process, so an in-process run would only see the suite's folder.
"""

import inspect
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax._src import compilation_cache as jax_cache
from jax._src import compiler as jax_compiler
from tiny_config import TINY, fast_subprocess_env

from jaxmb import compile_cache

_QUIET = ["run.tensorboard=false", "--quiet"]


def _train(tmp_path, name: str, *overrides: str, **env_extra: str) -> subprocess.CompletedProcess:
    env = fast_subprocess_env()
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    env.pop("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", None)
    env.update(HOME=str(tmp_path / "home"), XDG_CACHE_HOME=str(tmp_path / "xdg"), **env_extra)
    cmd = [sys.executable, "-m", "jaxmb", "train", *TINY, f"run.root={tmp_path / 'runs'}"]
    done = subprocess.run(
        [*cmd, *overrides, *_QUIET, "--name", name],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _entries(folder) -> list[str]:
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


def test_default_dir_follows_xdg_cache_home(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert compile_cache.default_dir() == str(tmp_path / "jaxmb" / "jax-compile-cache")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert compile_cache.default_dir() == str(tmp_path / "home/.cache/jaxmb/jax-compile-cache")


def test_a_folder_already_set_is_kept():
    """conftest.py sets JAX_COMPILATION_CACHE_DIR for the suite: `enable` must not move it."""
    before = jax.config.jax_compilation_cache_dir
    assert before == os.environ["JAX_COMPILATION_CACHE_DIR"]
    assert compile_cache.enable() == before
    assert compile_cache.enable(False) == before
    assert jax.config.jax_compilation_cache_dir == before


def test_the_jax_private_functions_it_patches_are_where_they_were():
    """`compile_cache._cache_programs_with_callbacks` wraps these (JAX 0.10.2). When this
    fails, JAX moved them: check whether it caches programs with host callbacks by itself."""

    def params(fn):
        return list(inspect.signature(fn).parameters)

    assert params(jax_compiler.compile_or_get_cached)[:5] == [
        "backend", "computation", "devices", "compile_options", "host_callbacks",
    ]  # fmt: skip
    assert params(jax_compiler._cache_write) == [
        "cache_key", "compile_time_secs", "module_name", "backend", "executable",
        "host_callbacks",
    ]  # fmt: skip
    assert params(jax_cache.get_executable_and_time) == [
        "cache_key", "compile_options", "backend", "executable_devices",
    ]  # fmt: skip
    assert params(jax_cache.get_cache_key)[:4] == [
        "module", "devices", "compile_options", "backend",
    ]  # fmt: skip
    for name in ("_get_cache", "decompress_executable", "extract_executable_and_time"):
        assert callable(getattr(jax_cache, name)), name
    assert "host_callbacks" in jax.devices()[0].client.deserialize_executable.__doc__


def test_a_program_with_callbacks_is_read_back_and_calls_this_processs_callbacks(monkeypatch):
    """Written once, then read with the cache in memory cleared and the compiler disabled:
    the loaded executable calls the callbacks of the new trace, in their order."""
    compile_cache.enable()
    min_seconds = jax.config.jax_persistent_cache_min_compile_time_secs
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    seen = []

    def program(x):
        jax.debug.callback(lambda v: seen.append(("sum", float(v))), x.sum())
        y = jnp.cumsum(x) * 3.0
        jax.debug.callback(lambda v: seen.append(("last", float(v))), y[-1])
        return y

    x = jnp.arange(4.0)
    try:
        expected = jax.jit(program)(x)
        jax.effects_barrier()
        assert seen == [("sum", 6.0), ("last", 18.0)]
        seen.clear()
        jax.clear_caches()

        def no_compiling(*args, **kwargs):
            raise AssertionError("compiled instead of reading the persistent cache")

        monkeypatch.setattr(jax_compiler, "backend_compile_and_load", no_compiling)
        again = jax.jit(program)(x)
        jax.effects_barrier()
    finally:
        jax.config.update("jax_persistent_cache_min_compile_time_secs", min_seconds)
    assert seen == [("sum", 6.0), ("last", 18.0)]
    assert np.asarray(again).tolist() == np.asarray(expected).tolist() == [0.0, 3.0, 9.0, 18.0]


_CALLBACK_PROGRAM = """
import sys
import jax, jax.numpy as jnp
jax.config.update("jax_compilation_cache_dir", sys.argv[1])
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
if sys.argv[2] == "patched":
    from jaxmb import compile_cache
    compile_cache.enable()
seen = []
def program(x):
    jax.debug.callback(lambda v: seen.append(float(v)), x.sum())
    return x * 2
print(jax.jit(program)(jnp.arange(3.0)).tolist())
jax.effects_barrier()
print(seen)
"""


def test_jax_without_the_patch_does_not_read_a_program_stored_without_its_callbacks(tmp_path):
    """Loaded without its callbacks, the executable crashes the process (a segfault, seen with
    JAX 0.10.2): the entry's key is one that plain JAX never asks for."""

    def run(how: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", _CALLBACK_PROGRAM, str(tmp_path), how],
            env=fast_subprocess_env(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, (how, done.returncode, done.stderr[-2000:])
        return done.stdout

    assert run("patched") == "[0.0, 2.0, 4.0]\n[3.0]\n"
    assert any(name.startswith("jit_program-") for name in _entries(tmp_path))
    assert run("plain") == "[0.0, 2.0, 4.0]\n[3.0]\n"
    assert run("patched") == "[0.0, 2.0, 4.0]\n[3.0]\n"


@pytest.mark.slow
def test_a_run_fills_the_user_cache_and_compile_cache_false_leaves_it_empty(tmp_path):
    folder = tmp_path / "xdg" / "jaxmb" / "jax-compile-cache"
    _train(tmp_path, "uncached", "run.compile_cache=false")
    assert _entries(folder) == []
    assert not (tmp_path / "home" / ".cache").exists()

    _train(tmp_path, "first")
    first = _entries(folder)
    assert any(name.startswith("jit_run") for name in first), first
    # The same program again is read back: nothing new is written.
    _train(tmp_path, "second")
    assert _entries(folder) == first


# `make test-all`: a subprocess run (about 45 s on 2 cores); the default run covers the rule
# (test_a_folder_already_set_is_kept) and the cache's use (the test above).
@pytest.mark.heavy
def test_the_users_own_cache_folder_wins(tmp_path):
    own = tmp_path / "own-cache"
    _train(tmp_path, "own", JAX_COMPILATION_CACHE_DIR=str(own))
    assert any(name.startswith("jit_run") for name in _entries(own))
    assert _entries(tmp_path / "xdg" / "jaxmb" / "jax-compile-cache") == []
