"""Worker venvs: interpreters for host suites whose pins conflict with jaxmb's.

Procgen has no wheel for Python 3.11 but `procgen-mirror`, which needs numpy<2 and the old
`gym`; Meta-World 3.1.1 pins mujoco 3.3.0 against MuJoCo Playground's 3.17. Their host envs run
in worker processes started with the interpreter of a venv of their own, which needs only the
suite (the worker imports nothing of jaxmb; see `host_worker.py`).

    python -m jaxmb.envs.worker_venvs procgen metaworld     # or: make worker-venvs

creates `<root>/<suite>` with `python -m venv` and pip-installs `WORKER_VENVS[suite]` there. The
root is `$JAXMB_WORKER_VENVS`, else `~/.cache/jaxmb/venvs`. `$JAXMB_<SUITE>_PYTHON` (e.g.
`JAXMB_PROCGEN_PYTHON`) or the env param `python` points a suite at any other interpreter.
"""

from __future__ import annotations

import os
import subprocess
import sys

WORKER_VENVS: dict[str, tuple[str, ...]] = {
    # Resolves to numpy 1.26.4, gym 0.26.2, gym3 0.3.3 on Python 3.11.
    "procgen": ("procgen-mirror==0.10.7",),
    # Resolves to mujoco 3.3.0 and gymnasium 1.4.0; gymnasium's mujoco envs need `packaging`.
    "metaworld": ("metaworld==3.1.1", "packaging"),
}
"""Suite -> the pip requirements of its worker venv."""


def venv_root() -> str:
    return os.environ.get("JAXMB_WORKER_VENVS") or os.path.join(
        os.path.expanduser("~"), ".cache", "jaxmb", "venvs"
    )


def venv_python(suite: str) -> str:
    """The interpreter host envs of `suite` run under by default (it may not exist yet)."""
    override = os.environ.get(f"JAXMB_{suite.upper()}_PYTHON")
    if override:
        return override
    return os.path.join(venv_root(), suite, "bin", "python")


def create_command(suite: str) -> str:
    """What to run to create `suite`'s worker venv (named in errors)."""
    return f"make worker-venvs (or: python -m jaxmb.envs.worker_venvs {suite})"


def create(suite: str, *, python: str = sys.executable) -> str:
    """Creates (or updates) `suite`'s worker venv; returns its interpreter."""
    if suite not in WORKER_VENVS:
        raise ValueError(f"no worker venv for {suite!r}; known: {', '.join(WORKER_VENVS)}")
    where = os.path.join(venv_root(), suite)
    interpreter = os.path.join(where, "bin", "python")
    print(f"[jaxmb] {suite} worker venv: {where} <- {' '.join(WORKER_VENVS[suite])}", flush=True)
    if not os.path.exists(interpreter):
        subprocess.run([python, "-m", "venv", where], check=True)
    subprocess.run(
        [interpreter, "-m", "pip", "install", "--quiet", *WORKER_VENVS[suite]], check=True
    )
    return interpreter


def main(argv: list[str] | None = None) -> None:
    suites = (argv if argv is not None else sys.argv[1:]) or list(WORKER_VENVS)
    for suite in suites:
        create(suite)


if __name__ == "__main__":
    main()
