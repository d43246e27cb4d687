"""Shared test settings: CPU only, fast compiles, one compilation cache per test run, and
hypothesis profiles that fit a 2-core CI box."""

import atexit
import os
import shutil
import tempfile

os.environ.setdefault("JAX_PLATFORMS", "cpu")

# Many tests compile the same program (the TINY config's train step, a run resumed in a
# subprocess, the CLI's processes): JAX's persistent compilation cache lets the second compile
# be a read. The folder is made by the first process of a `pytest` run and inherited through
# the environment by its xdist workers and the subprocesses they start, so a run never reads
# what an earlier run compiled. Set JAX_COMPILATION_CACHE_DIR yourself to keep one.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    _cache = tempfile.mkdtemp(prefix="jaxmb-tests-jit-")
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _cache
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "1")
    atexit.register(shutil.rmtree, _cache, ignore_errors=True)

import pytest  # noqa: E402
from hypothesis import settings  # noqa: E402
from jax._src import compiler as _compiler  # noqa: E402

settings.register_profile("ci", max_examples=30, deadline=None)
settings.load_profile("ci")

# Fast compiles. Most tests run their programs for a moment, so compiling is their cost: XLA's
# CPU backend without its LLVM optimisations and fusion emitters compiles the TINY train
# program in under half the time (9.8 s instead of 22 s here) and runs it about 3x
# slower. Tests marked `slow` (learning tests, end-to-end runs) run long programs and keep
# full optimisation. Subprocesses running TINY programs get the same through XLA_FLAGS
# (`tiny_config.FAST_XLA_FLAGS`).
_fast = {"on": True}
_get_compile_options = _compiler.get_compile_options


def _compile_options(*args, **kwargs):
    options = _get_compile_options(*args, **kwargs)
    if _fast["on"]:
        debug = options.executable_build_options.debug_options
        debug.xla_backend_optimization_level = 0
        debug.xla_llvm_disable_expensive_passes = True
        overrides = list(options.env_option_overrides)
        if not any(name == "xla_cpu_use_fusion_emitters" for name, _ in overrides):
            overrides.append(("xla_cpu_use_fusion_emitters", False))
        options.env_option_overrides = overrides
    return options


_compiler.get_compile_options = _compile_options


@pytest.fixture(autouse=True)
def _full_optimisation_for_slow_tests(request):
    slow = request.node.get_closest_marker("slow") is not None
    _fast["on"] = not slow
    yield
    _fast["on"] = True
