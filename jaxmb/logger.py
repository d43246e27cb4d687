"""Where metrics go on the host: metrics.jsonl, TensorBoard and a rich progress bar.

`RunLogger` is the callback `make_train` calls every `train.log_every` env steps. It receives
one dict of arrays (a leading `[num_seeds]` axis when seeds are trained together) and turns it
into one JSON line per seed, TensorBoard scalars and a progress-bar update. Nothing here runs
per environment step.
"""

from __future__ import annotations

import json
import math
import os
import time
from typing import Any

import numpy as np


def _scalar(x: Any) -> float | int | None:
    value = np.asarray(x).item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class RunLogger:
    """Host-side sink for the metrics callback.

    Args:
      run_dir: the run directory (metrics.jsonl and TensorBoard events go here).
      total_env_steps: for the progress bar.
      num_seeds: members trained together (the leading axis of every metric), or None.
      tensorboard: write TensorBoard events.
      progress: show a rich progress bar (env steps, episode return, loss, steps/s).
    """

    def __init__(
        self,
        run_dir: str,
        total_env_steps: int,
        *,
        num_seeds: int | None = None,
        tensorboard: bool = True,
        progress: bool = True,
    ):
        self.run_dir = run_dir
        self.num_seeds = num_seeds
        self.total_env_steps = total_env_steps
        self._jsonl = open(os.path.join(run_dir, "metrics.jsonl"), "a", buffering=1)
        self._writer = None
        if tensorboard:
            from tensorboardX import SummaryWriter

            self._writer = SummaryWriter(os.path.join(run_dir, "tensorboard"))
        self._progress = None
        self._task = None
        if progress:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self._progress = Progress(
                TextColumn("[bold]train"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("env steps"),
                TimeElapsedColumn(),
                TextColumn("{task.fields[status]}"),
            )
        self._start_time: float | None = None
        self._start_steps = 0

    def start(self) -> None:
        """Call right before running the compiled program (steps/s excludes compile)."""
        self._start_time = time.perf_counter()
        if self._progress is not None:
            self._progress.start()
            self._task = self._progress.add_task(
                "train", total=self.total_env_steps, status="compiled; collecting data"
            )

    def __call__(self, report: dict) -> None:
        report = {k: np.asarray(v) for k, v in report.items()}
        members = 1 if self.num_seeds is None else self.num_seeds
        rows = []
        for i in range(members):
            row = {
                k: _scalar(v if self.num_seeds is None or v.ndim == 0 else v[i])
                for k, v in report.items()
            }
            if self.num_seeds is not None:
                row["seed_index"] = i
            rows.append(row)
        for row in rows:
            self._jsonl.write(json.dumps(row) + "\n")
        steps = int(rows[0]["env_steps"])
        if self._writer is not None:
            for key, value in report.items():
                if key in ("iteration", "env_steps"):
                    continue
                values = value.astype(np.float64).reshape(-1)
                if np.isfinite(values).any():
                    self._writer.add_scalar(key, float(np.nanmean(values)), steps)
            self._writer.flush()
        if self._progress is not None and self._task is not None:
            elapsed = max(time.perf_counter() - (self._start_time or time.perf_counter()), 1e-9)
            rate = members * (steps - self._start_steps) / elapsed

            def mean(key: str) -> str:
                values = report[key].astype(np.float64).reshape(-1)
                return f"{np.nanmean(values):.1f}" if np.isfinite(values).any() else "-"

            def mean_loss() -> str:
                values = report.get("loss", np.array([np.nan])).astype(np.float64).reshape(-1)
                return f"{np.nanmean(values):.3f}" if np.isfinite(values).any() else "-"

            status = (
                f"return {mean('progress/train_return')} | eval {mean('progress/eval_return')}"
                f" | loss {mean_loss()} | {rate:,.0f} steps/s"
            )
            self._progress.update(self._task, completed=steps, status=status)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
        if self._writer is not None:
            self._writer.close()
        self._jsonl.close()
