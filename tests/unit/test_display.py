"""The CLI's rich output without a terminal: plain tables at a fixed width, step lines."""

from __future__ import annotations

import pytest

from cluster.cli._display import PLAIN_WIDTH, StepProgress, console, table

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
    with StepProgress("bench overhead") as progress:
        progress("starting servers", 0, None)
        progress("round 1/2: vllm", 0, 4)
        progress("round 1/2: vllm", 0, 4)
        progress("round 2/2: garden_auto", 3, 4)
    lines = capsys.readouterr().err.splitlines()
    assert lines == ["starting servers", "round 1/2: vllm (0/4)", "round 2/2: garden_auto (3/4)"]
