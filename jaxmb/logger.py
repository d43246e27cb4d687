"""Where metrics go on the host: metrics.jsonl, TensorBoard and the progress display.

`RunLogger` is the callback `make_train` calls every `train.log_every` env steps. It receives
one dict of arrays (a leading `[num_seeds]` axis when seeds are trained together) and turns it
into one JSON line per seed, TensorBoard scalars and a progress update. Nothing here runs
per environment step.

Progress is a rich bar on an interactive terminal (or in Jupyter). Anywhere else (a log
captured from `make run`, CI, `| tee`) a bar is cut to a few characters or redrawn as
escape codes, so each log interval prints one plain line instead:

    train 2,048/19,968 env steps | return 21.3 | eval - | loss 1.234 | 210 steps/s | 0:00:09 elapsed
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from typing import Any, TextIO

import numpy as np


def _scalar(x: Any) -> float | int | None:
    value = np.asarray(x).item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _mean(report: dict[str, np.ndarray], key: str, digits: int) -> str:
    """The members' mean of one metric, or "-" when no member has a finite value yet."""
    values = report.get(key, np.array([np.nan])).astype(np.float64).reshape(-1)
    return f"{np.nanmean(values):.{digits}f}" if np.isfinite(values).any() else "-"


def _clock(seconds: float) -> str:
    """H:MM:SS, as rich's elapsed-time column shows it."""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def _progress_bar(console):
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    return Progress(
        TextColumn("[bold]train"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("env steps"),
        TimeElapsedColumn(),
        TextColumn("{task.fields[status]}"),
        console=console,
    )


class RunLogger:
    """Host-side sink for the metrics callback.

    Args:
      run_dir: the run directory (metrics.jsonl and TensorBoard events go here).
      total_env_steps: for the progress bar.
      num_seeds: members trained together (the leading axis of every metric), or None.
      tensorboard: write TensorBoard events.
      progress: show progress (env steps, episode return, eval return, loss, steps/s,
        elapsed time): a rich bar on an interactive terminal, one plain line per log
        interval on any other stream.
      stream: where progress goes (default: `sys.stdout` when the logger is made).
    """

    def __init__(
        self,
        run_dir: str,
        total_env_steps: int,
        *,
        num_seeds: int | None = None,
        tensorboard: bool = True,
        progress: bool = True,
        stream: TextIO | None = None,
    ):
        self.run_dir = run_dir
        self.num_seeds = num_seeds
        self.total_env_steps = total_env_steps
        self._jsonl = open(os.path.join(run_dir, "metrics.jsonl"), "a", buffering=1)
        self._writer = None
        if tensorboard:
            from tensorboardX import SummaryWriter

            self._writer = SummaryWriter(os.path.join(run_dir, "tensorboard"))
        self._stream = sys.stdout if stream is None else stream
        self._progress = None  # the rich bar, on a terminal
        self._task = None
        self._lines = False  # one plain line per log interval, anywhere else
        if progress:
            from rich.console import Console

            console = Console(file=self._stream)
            if console.is_interactive or console.is_jupyter:
                self._progress = _progress_bar(console)
            else:
                self._lines = True
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
        if self._progress is None and not self._lines:
            return
        elapsed = max(time.perf_counter() - (self._start_time or time.perf_counter()), 1e-9)
        rate = members * (steps - self._start_steps) / elapsed
        status = (
            f"return {_mean(report, 'progress/train_return', 1)}"
            f" | eval {_mean(report, 'progress/eval_return', 1)}"
            f" | loss {_mean(report, 'loss', 3)} | {rate:,.0f} steps/s"
        )
        if self._lines:
            line = (
                f"train {steps:,}/{self.total_env_steps:,} env steps | {status}"
                f" | {_clock(elapsed)} elapsed"
            )
            print(line, file=self._stream, flush=True)
        elif self._task is not None:
            self._progress.update(self._task, completed=steps, status=status)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
        if self._writer is not None:
            self._writer.close()
        self._jsonl.close()
