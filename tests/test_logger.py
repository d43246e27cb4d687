"""The progress display: a rich bar on a terminal, one plain line per log interval elsewhere.

A log captured from `make run` or CI used to show the bar cut to a few characters
(`train ━━━ 19… env steps 0:…`, issue 21). These feed `RunLogger` reports shaped as
`jaxmb.loop.program._report` makes them (`[num_seeds]` arrays, as `train_run` gets them).
"""

import io
import json
import re

import numpy as np
import pytest

from jaxmb.logger import RunLogger


class _Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def _report(env_steps: int, train_return, eval_return, loss) -> dict:
    """Two members' metrics at one log interval."""
    return {
        "iteration": np.array([env_steps // 16] * 2, np.int32),
        "env_steps": np.array([env_steps] * 2, np.int32),
        "loss": np.asarray(loss, np.float32),
        "progress/train_return": np.asarray(train_return, np.float32),
        "progress/eval_return": np.asarray(eval_return, np.float32),
    }


_REPORTS = [
    _report(16, [np.nan, np.nan], [np.nan, np.nan], [np.nan, np.nan]),
    _report(1600, [20.0, 24.0], [np.nan, np.nan], [1.5, 2.5]),
    _report(3200, [30.0, 50.0], [100.0, np.nan], [1.0, 1.25]),
]

_LINE = re.compile(
    r"train (?P<steps>[\d,]+)/3,200 env steps \| return (?P<ret>\S+) \| eval (?P<eval>\S+)"
    r" \| loss (?P<loss>\S+) \| (?P<rate>[\d,]+) steps/s \| \d+:\d\d:\d\d elapsed$"
)


def _run(tmp_path, stream, **kwargs) -> RunLogger:
    logger = RunLogger(str(tmp_path), 3200, num_seeds=2, tensorboard=False, stream=stream, **kwargs)
    logger.start()
    for report in _REPORTS:
        logger(report)
    logger.close()
    return logger


@pytest.fixture(autouse=True)
def _no_forced_terminal(monkeypatch):
    """rich reads these before `isatty`; a CI runner may set them."""
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "TERM"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")


def test_a_stream_that_is_not_a_terminal_gets_one_plain_line_per_log_interval(tmp_path):
    stream = io.StringIO()
    _run(tmp_path, stream)
    lines = stream.getvalue().splitlines()
    assert len(lines) == len(_REPORTS)
    assert "\x1b" not in stream.getvalue()  # no escape codes in a captured log
    fields = [_LINE.match(line) for line in lines]
    assert all(fields), lines
    # The members' means; "-" until some member has a value.
    assert [f["steps"] for f in fields] == ["16", "1,600", "3,200"]
    assert [f["ret"] for f in fields] == ["-", "22.0", "40.0"]
    assert [f["eval"] for f in fields] == ["-", "-", "100.0"]
    assert [f["loss"] for f in fields] == ["-", "2.000", "1.125"]
    assert int(fields[-1]["rate"].replace(",", "")) > 0


def test_a_terminal_gets_the_rich_bar_and_no_plain_lines(tmp_path):
    stream = _Terminal()
    logger = _run(tmp_path, stream)
    assert logger._progress is not None
    out = stream.getvalue()
    assert "\x1b" in out  # the bar is drawn (and redrawn) with escape codes
    assert "env steps" in out and "loss 1.125" in out
    assert not any(_LINE.match(line) for line in out.splitlines())


@pytest.mark.parametrize("stream", [io.StringIO, _Terminal])
def test_progress_false_prints_nothing_but_still_logs_metrics(tmp_path, stream):
    out = stream()
    _run(tmp_path, out, progress=False)
    assert out.getvalue() == ""
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2 * len(_REPORTS)
    assert [r["seed_index"] for r in rows[-2:]] == [0, 1]
    assert rows[-1]["loss"] == 1.25 and rows[0]["loss"] is None  # NaN is written as null


def test_the_default_stream_is_stdout_at_construction(tmp_path, capsys):
    """`train_run` makes its logger without a stream: under pytest stdout is captured,
    not a terminal, so it prints plain lines there."""
    _run(tmp_path, None)
    assert len(capsys.readouterr().out.splitlines()) == len(_REPORTS)
