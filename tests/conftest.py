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
from tiny_config import FAST_COMPILE_OPTIONS  # noqa: E402

settings.register_profile("ci", max_examples=30, deadline=None)
settings.load_profile("ci")

# Fast compiles. Most tests run their programs for a moment, so compiling is their cost:
# every compile gets `tiny_config.FAST_COMPILE_OPTIONS` (as if passed to `jax.jit`'s
# `compiler_options`; options a caller passed win). Tests marked `slow` (learning tests,
# end-to-end runs) run long programs and keep full optimisation.
_fast = {"on": True}
_get_compile_options = _compiler.get_compile_options


def _compile_options(*args, **kwargs):
    options = _get_compile_options(*args, **kwargs)
    if _fast["on"]:
        overrides = list(options.env_option_overrides)
        given = {name for name, _ in overrides}
        overrides += [(k, v) for k, v in FAST_COMPILE_OPTIONS.items() if k not in given]
        options.env_option_overrides = overrides
    return options


_compiler.get_compile_options = _compile_options


@pytest.fixture(autouse=True)
def _full_optimisation_for_slow_tests(request):
    slow = request.node.get_closest_marker("slow") is not None
    _fast["on"] = not slow
    yield
    _fast["on"] = True


def pytest_collection_modifyitems(config, items):
    """Longest first: the learning tests, then the other `slow` ones, then the rest, each
    group in collection order. xdist's `worksteal` hands each worker a contiguous half and
    rebalances by stealing from the ends of the queues, so a minutes-long test collected late
    would otherwise start late and leave one worker running it alone at the end."""

    def rank(item) -> int:
        if item.path.name.startswith("test_learning"):
            return 0
        return 1 if item.get_closest_marker("slow") is not None else 2

    items.sort(key=rank)  # stable: modules stay contiguous within a group
