"""``garden top --once`` on the session garden, under load: figures from Ray's metrics."""

from __future__ import annotations

import json
import threading

import openai
import pytest
from click.testing import CliRunner

from cluster.cli import _top  # noqa: F401  (registers the command)
from cluster.cli._main import cli
from tests.conftest import TEST_API_KEY, RunningGarden

pytestmark = pytest.mark.e2e

MEDICAL = "What is the first-line treatment for hypertension in adults?"


def test_top_once_shows_the_garden_under_load(garden: RunningGarden) -> None:
    client = openai.OpenAI(base_url=garden.endpoint, api_key=TEST_API_KEY, max_retries=0)
    stop = threading.Event()
    errors: list[BaseException] = []

    def stream() -> None:
        while not stop.is_set():
            try:
                for _ in client.chat.completions.create(
                    model="auto",
                    messages=[{"role": "user", "content": MEDICAL}],
                    max_tokens=32,
                    stream=True,
                    extra_body={"ignore_eos": True},
                ):
                    pass
            except openai.OpenAIError as err:
                errors.append(err)
                return

    users = [threading.Thread(target=stream) for _ in range(4)]
    for user in users:
        user.start()
    try:
        # Longer than Ray's metrics report interval (10 s): every counter has moved.
        as_json = CliRunner().invoke(cli, ["top", "--once", "--window", "21", "--json"])
        table = CliRunner().invoke(cli, ["top", "--once", "--window", "2"])
    finally:
        stop.set()
        for user in users:
            user.join(timeout=120)
    assert errors == []
    assert as_json.exit_code == 0, as_json.output
    view = json.loads(as_json.output)
    models = {m["name"]: m for m in view["models"]}
    assert list(models) == [m.name for m in garden.config.models]
    assert view["routed"] > 0 and view["reasons"]
    served = max(models.values(), key=lambda m: m["route_share"] or 0)
    assert served["replicas_running"] >= 1
    assert served["tokens_per_s"] > 0 and served["ttft_p50_ms"] is not None
    assert 0 < served["ttft_p50_ms"] <= served["ttft_p99_ms"]
    # The table, without a terminal: plain text, every model on its own line.
    assert table.exit_code == 0, table.output
    assert "garden top" in table.output and "routed requests" in table.output
    assert all(name in table.output for name in models)
    assert "\x1b[" not in table.output
