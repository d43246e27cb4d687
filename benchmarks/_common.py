"""What every benchmark records next to its figures: when, where, on which commit."""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def metadata() -> dict:
    """Date (UTC), machine, jax version, commit, whether the tree was dirty, load average."""
    import jax

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()

    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {os.cpu_count()} cpus, {jax.devices()[0].device_kind}",
        "jax": jax.__version__,
        "commit": git("rev-parse", "--short", "HEAD"),
        "dirty": bool(git("status", "--porcelain")),
        "load_average_start": os.getloadavg(),
    }


def write(results: dict, name: str, out: str | None = None) -> str:
    """Writes `results` (with the load average at the end added) as JSON to `out`, default
    `benchmarks/results/<name>-<date>.json`; returns the path."""
    results["load_average_end"] = os.getloadavg()
    date = datetime.date.today().isoformat()
    out = out or os.path.join(ROOT, "benchmarks", "results", f"{name}-{date}.json")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        json.dump(results, f, indent=2)
    print(f"wrote {out}")
    return out
