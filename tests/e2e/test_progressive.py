"""Progressive readiness (issue 17, item 1): the session garden serves before it is complete.

``garden up`` started the router and the generalist first and reported the
garden serving once they were healthy; the session fixture's probe
(``tests/_serving.py``) ran right then, with every specialist still starting.
"""

from __future__ import annotations

import pytest

from tests._serving import SPECIALIST
from tests.conftest import RunningGarden

pytestmark = pytest.mark.e2e


def test_auto_is_served_by_the_generalist_while_a_specialist_starts(
    garden: RunningGarden,
) -> None:
    probe = garden.serving
    assert probe.error is None, probe.error
    assert probe.routed and all(r["status"] == 200 for r in probe.routed), probe.routed
    # The routers learn of the released specialist at their next look at Serve:
    # until then its domain is "unhealthy", then a cold start; never lost.
    assert {r["reason"] for r in probe.routed} <= {"unhealthy", "cold_start"}, probe.routed
    assert probe.routed[-1]["reason"] == "cold_start", probe.routed
    assert all(
        r["model"] == "generalist" and r["fallback_from"] == SPECIALIST for r in probe.routed
    ), probe.routed


def test_a_request_naming_a_starting_specialist_gets_503_with_retry_after(
    garden: RunningGarden,
) -> None:
    named = garden.serving.named
    assert named is not None, garden.serving.error
    assert named["status"] == 503 and named["code"] == "model_starting", named
    assert named["retry_after"] is not None and int(named["retry_after"]) >= 1, named
