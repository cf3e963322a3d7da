"""Driver of ``garden loadtest``: Locust headless in a subprocess, then ``summary.json``.

:func:`run_loadtest` starts ``python -m locust -f loadtest/locustfile.py
--headless`` against a base URL, with Locust's CSV (``locust_stats.csv``,
``locust_stats_history.csv``, ``locust_failures.csv``,
``locust_exceptions.csv``), HTML report (``locust.html``) and log
(``locust.log``) in the output folder, and the per-request records in
``records.jsonl`` (the locustfile's ``LOADTEST_RECORDS``). While it runs,
``progress(elapsed_s, duration_s, note)`` hears once a second how far it is,
with a note on the records so far. When Locust
exits, :func:`loadtest.summary.summarize` turns the records into
``summary.json``, with the SLOs of the garden's models for goodput.

Locust runs in its own process because it monkey-patches the standard
library with gevent; this process never imports it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cluster.exceptions import ClusterError
from loadtest.summary import SLO, percentile, read_records, summarize

__all__ = ["LoadTest", "Progress", "parse_duration", "progress_note", "run_loadtest"]

LOCUSTFILE = Path(__file__).with_name("locustfile.py")

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([hms]?)")
_UNIT_S = {"h": 3600, "m": 60, "s": 1, "": 1}


def parse_duration(text: str) -> float:
    """Seconds of ``"90"``, ``"60s"``, ``"2m"``, ``"1h30m"``; ValueError if malformed or 0."""
    compact = text.replace(" ", "").lower()
    parts = _DURATION.findall(compact)
    if not compact or "".join(n + u for n, u in parts) != compact:
        raise ValueError(f"expected a duration such as 60s, 2m or 1h30m, got {text!r}")
    seconds = sum(float(n) * _UNIT_S[u] for n, u in parts)
    if seconds <= 0:
        raise ValueError(f"duration must be positive, got {text!r}")
    return seconds


@dataclass(frozen=True)
class LoadTest:
    """What to run: Locust's users and spawn rate, and the locustfile's options."""

    host: str  # base URL without /v1
    users: int = 4
    duration_s: float = 60.0
    rate: float = 0.0  # requests/s for all users; 0: back to back
    shape: str = "steady"  # or burst
    model: str = "auto"
    weights: str = ""
    max_tokens: int = 64
    turns: int = 1  # per conversation; 1: every request a new chat
    ignore_eos: bool = True
    burst_s: float = 10.0
    idle_s: float = 10.0
    api_key: str = ""

    def command(self, out: Path) -> list[str]:
        """The Locust command line, writing its reports under ``out``."""
        return [
            sys.executable, "-m", "locust",
            "-f", str(LOCUSTFILE),
            "--headless",
            "--host", self.host,
            "--users", str(self.users),
            "--spawn-rate", str(self.users),
            "--run-time", f"{max(1, round(self.duration_s))}s",
            "--stop-timeout", "60",  # in-flight streams finish at the end
            "--csv", str(out / "locust"),
            "--csv-full-history",
            "--html", str(out / "locust.html"),
            "--only-summary",
            "--loglevel", "INFO",
        ]  # fmt: skip

    def env(self, records: Path) -> dict[str, str]:
        """The locustfile's settings, on top of this process's environment."""
        env = dict(os.environ)
        env.update(
            LOADTEST_RECORDS=str(records),
            LOADTEST_SHAPE=self.shape,
            LOADTEST_MODEL=self.model,
            LOADTEST_WEIGHTS=self.weights,
            LOADTEST_MAX_TOKENS=str(self.max_tokens),
            LOADTEST_TURNS=str(self.turns),
            LOADTEST_IGNORE_EOS="true" if self.ignore_eos else "false",
            LOADTEST_RATE=str(self.rate),
            LOADTEST_BURST_S=str(self.burst_s),
            LOADTEST_IDLE_S=str(self.idle_s),
        )
        if self.api_key:
            env["OPENAI_API_KEY"] = self.api_key
        return env


#: ``progress(elapsed_s, duration_s, note)``: seconds run, seconds planned, the records so far.
Progress = Callable[[float, float, str], None]


def progress_note(rows: list[dict[str, Any]]) -> str:
    """A note on the records so far: requests, failures, median TTFT."""
    requests = [r for r in rows if "kind" not in r]
    failed = sum(1 for r in requests if not r.get("ok"))
    ttfts = [r["ttft_ms"] for r in requests if r.get("ok") and r.get("ttft_ms") is not None]
    ttft = f"{percentile(ttfts, 50):.0f} ms" if ttfts else "-"
    return f"requests {len(requests)}  failures {failed}  ttft p50 {ttft}"


def run_loadtest(
    test: LoadTest,
    out: Path,
    slos: Mapping[str, SLO],
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Run ``test``, write its reports and ``summary.json`` under ``out``; return the summary.

    The summary also holds ``locust_exit_code``. Raises ClusterError when
    Locust could not run at all (it wrote no record and exited non-zero).
    """
    out.mkdir(parents=True, exist_ok=True)
    records = out / "records.jsonl"
    records.unlink(missing_ok=True)
    started = time.monotonic()
    with (out / "locust.log").open("w") as log:
        proc = subprocess.Popen(
            test.command(out), env=test.env(records), stdout=log, stderr=subprocess.STDOUT
        )
        try:
            while proc.poll() is None:
                time.sleep(1)
                if progress is not None:
                    elapsed = time.monotonic() - started
                    progress(elapsed, test.duration_s, progress_note(read_records(records)))
        finally:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=30)
    rows = read_records(records)
    if proc.returncode != 0 and not [r for r in rows if "kind" not in r]:
        tail = (out / "locust.log").read_text()[-2000:]
        raise ClusterError(f"locust exited {proc.returncode} without a request:\n{tail}")
    summary = summarize(rows, slos)
    summary["settings"] = {
        "host": test.host,
        "users": test.users,
        "rate": test.rate,
        "shape": test.shape,
        "duration_s": test.duration_s,
        "model": test.model,
        "weights": test.weights or "equal",
        "max_tokens": test.max_tokens,
        "ignore_eos": test.ignore_eos,
    }
    if test.shape == "burst":
        summary["settings"].update(burst_s=test.burst_s, idle_s=test.idle_s)
    summary["locust_exit_code"] = proc.returncode
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
