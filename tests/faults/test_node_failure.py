"""A node lost under load (issue 15, item 7): a real two-node Ray cluster on one machine.

The head runs the routers and the generalist; a second node (``ray start
--address`` with the custom resource ``spare``) runs the medicine
specialist, placed there by ``models[].resources.custom``. Under Locust
load on ``auto`` (medicine-heavy), the second node is killed whole: its
raylet, its workers and the engine they started, at once, as a machine
failing. The garden must keep answering:

* every ``auto`` request is served (the generalist takes medicine's), none fails;
* an explicit request for the model with no replica gets a 503 in OpenAI's
  shape with Retry-After, at once, instead of waiting;
* when the node is started again, Serve places the specialist there again
  and it takes its routed traffic back.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.faults.conftest import SPECIALIST, fault_garden, finish, records_of

pytestmark = [pytest.mark.faults]

#: A prompt the router sends to the specialist when it is healthy.
PROMPT = "What is the first-line treatment for type 2 diabetes, and what are its side effects?"
#: Seconds of load before the kill; the node stays down this long.
BEFORE_S, DOWN_S = 15.0, 30.0
LOAD_S = 150


def test_a_lost_node_costs_no_auto_request_and_its_model_comes_back(tmp_path: Path) -> None:
    with fault_garden(tmp_path) as garden:
        garden.wait_for(
            "routed medicine traffic on the specialist",
            lambda: garden.model_serving("auto", PROMPT) == SPECIALIST,
            60,
        )
        load = garden.loadtest(LOAD_S, tmp_path / "load")
        time.sleep(BEFORE_S)
        killed_at = time.time()
        killed = garden.cluster.kill_node("spare")

        # Explicit requests for the model: a 503 with Retry-After once the router
        # sees it has no replica (Serve's health check, a second or two).
        def refused() -> bool:
            reply = garden.served_by(SPECIALIST, PROMPT)
            return reply.status_code == 503 and "model_unavailable" in reply.text

        refused_after_s = garden.wait_for("a 503 for the model with no replica", refused, 60)
        started = time.monotonic()
        reply = garden.served_by(SPECIALIST, PROMPT)
        answer_s = time.monotonic() - started
        assert reply.status_code == 503, reply.text
        assert int(reply.headers["retry-after"]) >= 1
        error = reply.json()["error"]
        assert error["code"] == "model_unavailable" and SPECIALIST in error["message"], error
        assert answer_s < 5, f"the 503 took {answer_s:.1f} s"
        routed = garden.served_by("auto", PROMPT)
        assert routed.status_code == 200, routed.text
        assert routed.json()["model"] == "generalist"

        time.sleep(max(0.0, killed_at + DOWN_S - time.time()))
        restarted_at = time.time()
        garden.cluster.start_node("spare")
        back_s = garden.wait_for(
            "the specialist serving its routed traffic again",
            lambda: garden.model_serving("auto", PROMPT) == SPECIALIST,
            240,
            every_s=2,
        )
        summary = finish(load, timeout_s=LOAD_S + 120)

    rows = records_of(tmp_path / "load")
    failed = [r for r in rows if not r["ok"]]
    during = [r for r in rows if killed_at <= r["start"] < restarted_at]
    after = [r for r in rows if r["start"] >= restarted_at + back_s]
    print(
        json.dumps(
            {
                "node_processes_killed": killed,
                "requests": len(rows),
                "served": len(rows) - len(failed),
                "failed": len(failed),
                "while_down": len(during),
                "while_down_by_model": Counter(r["model"] for r in during),
                "explicit_503_after_s": round(refused_after_s, 1),
                "specialist_back_after_restart_s": round(back_s, 1),
                "after_back_by_model": Counter(r["model"] for r in after),
                "summary_failures": summary.get("failures"),
            }
        )
    )
    assert not failed, failed[:5]
    assert during and all(r["model"] == "generalist" for r in during)
    assert len(rows) > 50
