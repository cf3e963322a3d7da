"""The CLI's rich output without a terminal: plain tables at a fixed width, step lines."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from cluster.cli._display import PLAIN_WIDTH, StepProgress, TimedProgress, console, table

pytestmark = pytest.mark.unit


def test_without_a_terminal_tables_are_plain_and_uncut(capsys: pytest.CaptureFixture[str]) -> None:
    out = console()
    assert not out.is_terminal and out.width == PLAIN_WIDTH
    long = "x" * 120
    out.print(table("model", "where", "n", rows=[("law", long, 3)], right=1))
    text = capsys.readouterr().out
    assert long in text and "law" in text  # no column was cut
    assert "\x1b[" not in text


def test_step_progress_prints_each_new_step_once(capsys: pytest.CaptureFixture[str]) -> None:
    now = [100.0]
    with StepProgress("bench overhead", clock=lambda: now[0]) as progress:
        progress("starting servers", 0, None)
        now[0] += 61
        progress("round 1/2: vllm", 0, 4)
        progress("round 1/2: vllm", 0, 4)
        progress("round 2/2: garden_auto", 3, 4)
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        "[     0s] bench overhead: starting servers",
        "[    61s] bench overhead: round 1/2: vllm (0/4)",
        "[    61s] bench overhead: round 2/2: garden_auto (3/4)",
    ]


def test_timed_progress_prints_a_line_every_few_seconds(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with TimedProgress("loadtest", every_s=10) as progress:
        for second in range(1, 26):
            progress(float(second), 60.0, f"requests {second * 3}")
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        "[    1/60 s] loadtest: requests 3",
        "[   11/60 s] loadtest: requests 33",
        "[   21/60 s] loadtest: requests 63",
    ]


def test_in_a_terminal_the_bars_draw_live(monkeypatch: pytest.MonkeyPatch) -> None:
    from cluster.cli import _display

    out = io.StringIO()
    monkeypatch.setattr(
        _display, "console", lambda stderr=False: Console(file=out, force_terminal=True, width=100)
    )
    with TimedProgress("soak") as timed:
        timed(30.0, 60.0, "requests 90  failures 0")
    with StepProgress("rayservice/garden", unit="deployments healthy") as step:
        step("Ready is False", 2, 3)
    text = out.getvalue()
    assert "\x1b[" in text  # escape codes: a live display, not lines
    assert "30/60 s" in text and "requests 90" in text
    assert "Ready is False" in text and "2/3" in text
