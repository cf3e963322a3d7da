"""Locust load test of any OpenAI-compatible chat endpoint, with TTFT/TPOT and routing shares.

Run it with plain Locust (the host without ``/v1``)::

    locust -f loadtest/locustfile.py --host http://127.0.0.1:8000
    locust -f loadtest/locustfile.py --host http://127.0.0.1:8000 --headless -u 8 -r 8 -t 60s

or through ``garden loadtest``, which also writes ``summary.json``. Each
user streams chat completions (``stream_options.include_usage``) of prompts
drawn from :mod:`loadtest.prompts` and reports, besides Locust's own
``POST chat`` entry (time to the response headers, and the request's
success or failure), custom request events that appear in Locust's stats,
CSV and HTML, named by the model that served the request:

* ``TTFT`` / ``TPOT`` / ``E2E``: milliseconds (see :mod:`loadtest.stream`);
  ``E2E``'s content size is the request's output tokens;
* ``MODEL`` and ``REASON``: zero-time events, one per request, named by the
  ``x-garden-model`` and ``x-garden-reason`` headers (``explicit`` when the
  response has none, e.g. from a model named explicitly or a plain vLLM).

A non-2xx status, an ``error`` event, or a stream without ``[DONE]`` fails
the request, so Locust exits 1 when any request failed.

Options (``--name`` or the environment variable beside it):

* ``--chat-model`` / ``LOADTEST_MODEL``: the model to ask for (``auto``);
* ``--domain-weights`` / ``LOADTEST_WEIGHTS``: e.g. ``medicine=2,code=1``
  (every domain equally by default);
* ``--max-tokens`` / ``LOADTEST_MAX_TOKENS`` (64) and ``--ignore-eos`` /
  ``LOADTEST_IGNORE_EOS`` (vLLM's extension: always ``max_tokens`` tokens);
* ``--turns`` / ``LOADTEST_TURNS``: turns per conversation (1, the
  default: each request is a new chat). Above 1, each user holds a chat:
  every request carries the earlier turns and their answers, in the domain
  of its first prompt, which is what a replica's prefix cache can reuse;
  each record has its ``turn``;
* ``--arrival-rate`` / ``LOADTEST_RATE``: requests per second for all users
  together (each user paces itself to ``users / rate`` seconds per request);
  0 (default): each user sends its next request as soon as one ends;
* ``--records`` / ``LOADTEST_RECORDS``: a file to append one JSON line per
  request to (:class:`loadtest.stream.RequestRecord`), plus start/stop marks;
* ``LOADTEST_SHAPE=burst`` (an environment variable only: Locust picks shape
  classes when it loads this file, before it parses options): bursts of
  ``-u`` users for ``--burst-s`` / ``LOADTEST_BURST_S`` seconds (10), then no
  user for ``--idle-s`` / ``LOADTEST_IDLE_S`` seconds (10), until ``-t``;
* ``--api-key`` / ``OPENAI_API_KEY``: sent as ``Authorization: Bearer``.

Needs only Locust and the standard library (no Ray, no garden config).
"""

from __future__ import annotations

import json
import os
import random
import sys
import threading
import time
from pathlib import Path
from typing import Any, TextIO

import gevent
from locust import HttpUser, LoadTestShape, events, task
from locust.env import Environment
from locust.stats import CSV_STATS_INTERVAL_SEC
from requests import RequestException

try:
    import loadtest  # noqa: F401  (installed, or the repository root on sys.path)
except ImportError:  # plain `locust -f loadtest/locustfile.py` with another Python
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from loadtest.prompts import Conversation, PromptMix
from loadtest.shapes import BurstSchedule, pacing_wait
from loadtest.stream import RequestRecord, StreamMeter
from loadtest.summary import NO_REASON

__all__ = ["ChatUser"]

#: The load shape, chosen before Locust parses options (see the module's docstring).
SHAPE = os.environ.get("LOADTEST_SHAPE", "steady")
if SHAPE not in ("steady", "burst"):
    raise ValueError(f"LOADTEST_SHAPE must be steady or burst, got {SHAPE!r}")


def _options(parser: Any) -> None:
    group = parser  # Locust's own parser: its argument groups lack is_secret
    group.add_argument("--chat-model", default="auto", env_var="LOADTEST_MODEL",
                       help="Model to request (default auto).")  # fmt: skip
    group.add_argument("--domain-weights", default="", env_var="LOADTEST_WEIGHTS",
                       help="Prompt mix, e.g. medicine=2,law=1 (default: all equal).")  # fmt: skip
    group.add_argument("--max-tokens", type=int, default=64, env_var="LOADTEST_MAX_TOKENS")
    group.add_argument("--ignore-eos", action="store_true", default=False,
                       env_var="LOADTEST_IGNORE_EOS",
                       help="vLLM extension: always generate max_tokens tokens.")  # fmt: skip
    group.add_argument("--turns", type=int, default=1, env_var="LOADTEST_TURNS",
                       help="Turns per conversation (1: every request a new chat).")  # fmt: skip
    group.add_argument("--arrival-rate", type=float, default=0.0, env_var="LOADTEST_RATE",
                       help="Requests/s for all users together (0: back to back).")  # fmt: skip
    group.add_argument("--records", default="", env_var="LOADTEST_RECORDS",
                       help="File to append one JSON line per request to.")  # fmt: skip
    group.add_argument("--burst-s", type=float, default=10.0, env_var="LOADTEST_BURST_S")
    group.add_argument("--idle-s", type=float, default=10.0, env_var="LOADTEST_IDLE_S")
    group.add_argument("--chat-path", default="/v1/chat/completions", env_var="LOADTEST_PATH")
    group.add_argument("--request-timeout", type=float, default=300.0,
                       env_var="LOADTEST_TIMEOUT", help="Seconds per connect/read.")  # fmt: skip
    group.add_argument("--api-key", default="", env_var="OPENAI_API_KEY", is_secret=True)


class _Records:
    """Appends JSON lines to the ``--records`` file (one writer: this process)."""

    def __init__(self) -> None:
        self._file: TextIO | None = None
        self._lock = threading.Lock()

    def open(self, path: str) -> None:
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115  (closed at quit)

    def write(self, row: dict[str, Any]) -> None:
        if self._file is not None:
            with self._lock:
                self._file.write(json.dumps(row) + "\n")
                self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


_records = _Records()


def _on_init(environment: Environment, **_: Any) -> None:
    options = environment.parsed_options
    if options is None:
        return
    # A bad mix or turn count fails now, not in every user.
    Conversation(PromptMix.parse(options.domain_weights), turns=options.turns)
    _records.open(options.records)


def _on_start(**_: Any) -> None:
    _records.write({"kind": "start", "t": time.time()})


def _on_stop(environment: Environment, **_: Any) -> None:
    _records.write({"kind": "stop", "t": time.time()})
    options = environment.parsed_options
    if options is not None and options.csv_prefix:
        # Locust rewrites its CSV once a second and not at exit: wait for one
        # more write, so the CSV holds the requests that ended while stopping.
        gevent.sleep(CSV_STATS_INTERVAL_SEC + 0.2)


def _on_quit(**_: Any) -> None:
    _records.close()


# Listeners (registered by call: Locust's decorators are untyped).
events.init_command_line_parser.add_listener(_options)
events.init.add_listener(_on_init)
events.test_start.add_listener(_on_start)
events.test_stop.add_listener(_on_stop)
events.quit.add_listener(_on_quit)


class ChatUser(HttpUser):
    """Streams one chat completion after another (paced by ``--arrival-rate``).

    With ``--turns`` above 1 the completions are the turns of one
    conversation after another (:class:`~loadtest.prompts.Conversation`).
    """

    def on_start(self) -> None:
        options = self.environment.parsed_options
        self._rng = random.Random()
        mix = PromptMix.parse(options.domain_weights if options else "")
        self._chat = Conversation(mix, turns=options.turns if options else 1)
        self._last_start: float | None = None

    def wait_time(self) -> float:
        options = self.environment.parsed_options
        runner = self.environment.runner
        rate = options.arrival_rate if options else 0.0
        users = runner.user_count if runner is not None else 1
        return pacing_wait(users, rate, self._last_start, time.monotonic())

    @task
    def chat(self) -> None:
        options = self.environment.parsed_options
        assert options is not None, "ChatUser runs under Locust's command line"
        domain, messages = self._chat.ask(self._rng)
        body: dict[str, Any] = {
            "model": options.chat_model,
            "messages": messages,
            "max_tokens": options.max_tokens,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if options.ignore_eos:
            body["ignore_eos"] = True
        headers = {"Authorization": f"Bearer {options.api_key}"} if options.api_key else {}
        self._last_start = time.monotonic()
        record, text = self._stream(options, body, headers)
        record.prompt_domain = domain
        record.turn = self._chat.turn
        _records.write(record.as_dict())
        if record.ok:
            self._chat.answered(text)
            self._report(record)
        else:
            self._chat.failed()

    def _stream(
        self, options: Any, body: dict[str, Any], headers: dict[str, str]
    ) -> tuple[RequestRecord, str]:
        start_epoch, started = time.time(), time.perf_counter()
        meter = StreamMeter(started)
        with self.client.post(
            options.chat_path,
            json=body,
            headers=headers,
            stream=True,
            catch_response=True,
            name="chat",
            timeout=options.request_timeout,
        ) as response:
            status = response.status_code
            detail = ""
            if 200 <= status < 300:
                try:
                    for chunk in response.iter_content(chunk_size=None):
                        meter.feed(chunk, time.perf_counter())
                except (RequestException, OSError) as err:
                    if not meter.done and meter.error is None:
                        meter.error = f"stream broken: {type(err).__name__}: {err}"
            elif status == 0:
                detail = f": {response.error}"
            else:
                detail = f": {response.text[:200]}"
            now = time.perf_counter()
            meter.close(now)
            record = meter.record(status, now, start_epoch)
            if record.error is not None and detail:
                record.error += detail
            header = response.headers
            record.model = header.get("x-garden-model") or record.model
            record.reason = header.get("x-garden-reason")
            record.domain = header.get("x-garden-domain")
            record.fallback_from = header.get("x-garden-fallback-from")
            if record.ok:
                response.success()
            else:
                response.failure(record.error)
        return record, meter.text

    def _report(self, record: RequestRecord) -> None:
        fire = self.environment.events.request.fire
        name = record.model or "unknown"
        timings = (("TTFT", record.ttft_ms, 0), ("TPOT", record.tpot_ms, 0))
        for kind, value, size in (*timings, ("E2E", record.e2e_ms, record.output_tokens)):
            if value is not None:
                fire(request_type=kind, name=name, response_time=value,
                     response_length=size, exception=None, context={})  # fmt: skip
        fire(request_type="MODEL", name=name, response_time=0, response_length=0,
             exception=None, context={})  # fmt: skip
        fire(request_type="REASON", name=record.reason or NO_REASON, response_time=0,
             response_length=0, exception=None, context={})  # fmt: skip


if SHAPE == "burst":

    class BurstShape(LoadTestShape):
        """Bursts of ``-u`` users for ``--burst-s``, none for ``--idle-s``, until ``-t``."""

        use_common_options = True

        def tick(self) -> tuple[int, float] | None:
            assert self.runner is not None
            options = self.runner.environment.parsed_options
            assert options is not None, "BurstShape runs under Locust's command line"
            users = int(options.num_users or 1)
            schedule = BurstSchedule(users, options.burst_s, options.idle_s, options.run_time)
            wanted = schedule.users_at(self.get_run_time())
            if wanted is None:
                return None
            return wanted, float(options.spawn_rate or users)
