"""Builds configs under an address-space limit and reports how each ended: a helper that
tests/test_memory.py and tests/test_config_fuzz.py run in a subprocess, so that a config that
slips past the memory check fails a test instead of taking the machine down.

    python tests/memory_limited.py HEADROOM_BYTES < cases.json   # one JSON line out per case
    results = run_limited(cases)                                 # the same, from a test

Each case is `{"via": "make_train" | "cli", "overrides": [...]}` over the TINY config.
`make_train` builds the program and traces it whole (`jax.eval_shape(make_train(config),
key)`, as the config fuzz test does); `cli` runs `python -m jaxmb train`'s `main` (a case
that fits would train: give it only cases that must not). The limit (`RLIMIT_AS`) is set
once JAX has started, to the address space mapped then plus HEADROOM_BYTES, so that JAX's
own reservations do not count against the run.

Outcomes: `{"outcome": "config_error", "key", "message"}`, `{"outcome": "built"}`,
`{"outcome": "exit", "code", "stderr"}` (the CLI, without a ConfigError's line) or
`{"outcome": "error", "error"}` (anything else: a MemoryError, an XLA error, ...).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


#: Address space the subprocess may map once JAX has started: the runs below trace, but never
#: compile or allocate, so this is far more than a check needs.
HEADROOM = 3 * 2**30


def run_limited(cases: list[dict], headroom: int = HEADROOM, timeout: int = 900) -> list[dict]:
    """`tests/memory_limited.py` on `cases`: one outcome per case, in order."""
    env = dict(os.environ, JAX_PLATFORMS="cpu", MALLOC_ARENA_MAX="2")
    proc = subprocess.run(
        [sys.executable, os.path.abspath(__file__), str(headroom)],
        input=json.dumps(cases),
        capture_output=True,
        text=True,
        env=env,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        timeout=timeout,
    )
    results = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert proc.returncode == 0 and len(results) == len(cases), (
        f"the subprocess ended with {proc.returncode} after {len(results)} of {len(cases)} "
        f"cases (killed for memory?):\n{proc.stderr[-3000:]}"
    )
    return results


def _mapped() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize in /proc/self/status")


def _run(case: dict, root: str) -> dict:
    from tiny_config import TINY

    from jaxmb import config as config_lib
    from jaxmb.config import ConfigError

    overrides = [*TINY, *case["overrides"]]
    try:
        if case.get("via", "make_train") == "cli":
            from jaxmb.__main__ import main

            err = io.StringIO()
            argv = ["train", *overrides, f"run.root={root}", "--quiet", "--name", "limited"]
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                code = main(argv)
            text = err.getvalue().strip()
            if code == 2 and text.startswith("error: "):
                line = text.splitlines()[-1][len("error: ") :]
                key, _, message = line.partition(": ")
                return {"outcome": "config_error", "key": key, "message": message}
            return {"outcome": "exit", "code": code, "stderr": text[-2000:]}
        import jax

        from jaxmb.train import make_train

        config = config_lib.load(None, overrides)
        jax.eval_shape(make_train(config), jax.random.key(0))
        return {"outcome": "built"}
    except ConfigError as err:
        return {"outcome": "config_error", "key": err.key, "message": err.message}
    except BaseException as err:  # MemoryError, XlaRuntimeError, ...: what must not happen
        return {"outcome": "error", "error": f"{type(err).__name__}: {str(err)[:2000]}"}


def main() -> None:
    headroom = int(float(sys.argv[1]))
    cases = json.load(sys.stdin)
    import jax

    jax.devices()  # start the CPU client (its threads) before the limit
    import jaxmb.loop  # noqa: F401  (the imports, before the limit too)

    limit = _mapped() + headroom
    resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
    with tempfile.TemporaryDirectory() as root:
        for case in cases:
            start = time.perf_counter()
            result = _run(case, root)
            result.update(case=case, seconds=round(time.perf_counter() - start, 2))
            print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
