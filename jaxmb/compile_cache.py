"""JAX's persistent compilation cache, on by default for runs.

Compiling is a large part of the wall time of a short run (issue 21). JAX can keep compiled
executables on disk, keyed by the lowered program, the compile options, the devices and the
jax/jaxlib versions, so a second run of the same config reads them back instead of compiling.
A changed config, a new JAX or another machine gives other keys: a stale entry is never used,
only left behind. `make run` (the default preset, 2-core CPU) spent 17.9 s compiling the first
time and 2.9 s the second: lowering (about 1 s), which every run still does, and hashing
and loading the stored program (about 1.5 s).

`jaxmb.run.train_run` (and so the CLI, `jaxmb.sweeps` and the experiments) calls `enable`
before anything compiles. The folder is `$XDG_CACHE_HOME/jaxmb/jax-compile-cache` (default
`~/.cache/jaxmb/jax-compile-cache`); it only grows, and deleting it at any time is safe.
A cache the user set up already wins: `JAX_COMPILATION_CACHE_DIR` in the environment, or
`jax.config.update("jax_compilation_cache_dir", ...)` before the run; and so does turning it
off with `JAX_ENABLE_COMPILATION_CACHE=false`. `run.compile_cache=false` leaves JAX's settings
as they are (JAX caches nothing unless a folder is set).

Programs with host callbacks. JAX 0.10 never writes an executable that has host callbacks
("Not writing persistent cache entry ... because it uses host callbacks"), and the training
program reports metrics and saves checkpoints through `jax.debug.callback`: without more,
the one program worth caching (`jit_run`, nearly all of the compile) is compiled every time.
On CPU a callback is an FFI custom call that names its Python function by an index into the
list the executable is loaded with (`emit_python_callback` in jax/_src/callback.py), so the
compiled code holds no pointer and can be stored. `_cache_programs_with_callbacks` lets JAX
write such executables and, on a read, loads them with this process's callbacks: the same
lowered program (the cache key) lists them in the same order. Such an entry gets a key of
its own, which JAX without the patch never asks for: loaded without its callbacks, the
executable would crash the process. This patches four private functions of JAX;
tests/test_compile_cache.py fails loudly when they move. GPUs lower callbacks the same way,
but that has not been checked on one: there JAX's own rule stands.

The setting is per process: JAX opens its cache at most once, at the first compile that
finds a folder set, so a later run in the same process with `run.compile_cache=false` still
reads and writes the folder an earlier run turned on.
"""

from __future__ import annotations

import functools
import os
import threading

import jax
from jax._src import compilation_cache as _jax_cache
from jax._src import compiler as _jax_compiler

#: JAX's default (1 s) skips small programs; the default preset's `train.init` and the
#: small key-handling programs compile in well under a second each, and reading an entry
#: back takes milliseconds.
MIN_COMPILE_SECONDS = 0.0

#: Backends whose programs with callbacks are cached: callbacks there are FFI calls naming
#: their function by index, checked by tests/test_compile_cache.py. (GPUs: unchecked.)
_INDEXED_CALLBACK_PLATFORMS = ("cpu",)


def default_dir() -> str:
    """`$XDG_CACHE_HOME/jaxmb/jax-compile-cache`, default `~/.cache/jaxmb/jax-compile-cache`."""
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(root, "jaxmb", "jax-compile-cache")


def enable(enabled: bool = True) -> str | None:
    """Points JAX's persistent compilation cache at `default_dir()` unless one is set, and
    lets it keep programs with host callbacks.

    Call it before the first compile of the program to cache (compiles before it are not
    cached, but do no harm).

    Args:
      enabled: False leaves JAX's settings alone (`run.compile_cache=false`).

    Returns:
      The cache folder JAX now uses (the user's own when one was set), or None when none.
    """
    if not jax.config.jax_enable_compilation_cache:  # the user turned JAX's cache off
        return None
    path = jax.config.jax_compilation_cache_dir
    if not enabled:
        return path or None
    if not path:
        path = default_dir()
        try:
            os.makedirs(path, exist_ok=True)
        except OSError:
            return None  # an unwritable home: compile as before rather than fail the run
        jax.config.update("jax_compilation_cache_dir", path)
        if "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS" not in os.environ:
            jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
    _cache_programs_with_callbacks()
    return path


# The host callbacks of the compile in progress on this thread.
_compiling = threading.local()

#: Appended to the cache key of a program stored with its callbacks left out. JAX without this
#: module's patch would load such an executable without callbacks, and it crashes (segfault)
#: when it reaches one; with another key, it misses and compiles instead.
_KEY_SUFFIX = "-jaxmb-host-callbacks"


def _callbacks_to_reattach(backend) -> list:
    """The host callbacks of the compile in progress, when they are stored apart."""
    callbacks = getattr(_compiling, "host_callbacks", ())
    return list(callbacks) if backend.platform in _INDEXED_CALLBACK_PLATFORMS else []


@functools.cache  # once per process
def _cache_programs_with_callbacks() -> None:
    """Patches JAX so that its persistent cache keeps executables with host callbacks (on
    CPU), under their own keys, loading them with this process's callbacks on a read."""
    compile_or_get_cached = _jax_compiler.compile_or_get_cached
    cache_write = _jax_compiler._cache_write
    get_cache_key = _jax_cache.get_cache_key
    read = _jax_cache.get_executable_and_time

    @functools.wraps(compile_or_get_cached)
    def compile_keeping_callbacks(
        backend, computation, devices, compile_options, host_callbacks, *args, **kwargs
    ):
        outer = getattr(_compiling, "host_callbacks", ())
        _compiling.host_callbacks = host_callbacks
        try:
            return compile_or_get_cached(
                backend, computation, devices, compile_options, host_callbacks, *args, **kwargs
            )
        finally:
            _compiling.host_callbacks = outer

    @functools.wraps(get_cache_key)
    def key_of_callbacks_apart(module, devices, compile_options, backend, *args, **kwargs):
        key = get_cache_key(module, devices, compile_options, backend, *args, **kwargs)
        return key + _KEY_SUFFIX if _callbacks_to_reattach(backend) else key

    @functools.wraps(cache_write)
    def write_without_callbacks(cache_key, seconds, module_name, backend, executable, callbacks):
        if _callbacks_to_reattach(backend):
            callbacks = ()  # stored without them; `read_with_callbacks` passes them back
        return cache_write(cache_key, seconds, module_name, backend, executable, callbacks)

    @functools.wraps(read)
    def read_with_callbacks(cache_key, compile_options, backend, executable_devices):
        callbacks = _callbacks_to_reattach(backend)
        if not callbacks:
            return read(cache_key, compile_options, backend, executable_devices)
        cache = _jax_cache._get_cache(backend)
        stored = None if cache is None else cache.get(cache_key)
        if stored is None:
            return None, None
        serialized, compile_time = _jax_cache.extract_executable_and_time(
            _jax_cache.decompress_executable(stored)
        )
        executable = backend.deserialize_executable(
            serialized, executable_devices, compile_options, host_callbacks=callbacks
        )
        return executable, compile_time

    _jax_compiler.compile_or_get_cached = compile_keeping_callbacks
    _jax_cache.get_cache_key = key_of_callbacks_apart
    _jax_compiler._cache_write = write_without_callbacks
    _jax_cache.get_executable_and_time = read_with_callbacks
