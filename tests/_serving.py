"""What the session garden serves the moment ``garden up`` reports it serving.

``up`` starts the router and the generalist first and releases the other
models when those two are healthy (``on_serving``). This probe runs right
then, inside ``up``: it sends ``auto`` a question of a specialist's domain
until the routers know the specialist is starting (reason ``cold_start``;
``unhealthy`` before their next look at Serve), then names the specialist,
which must be refused with 503 ``model_starting`` and ``Retry-After``. The
e2e test (``tests/e2e/test_progressive.py``) reads what it saw.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from router.semconv import HEADER_FALLBACK_FROM, HEADER_REASON

#: The specialist the probe asks about, and a question of its domain.
SPECIALIST = "medicine"
QUESTION = "What is the first-line treatment for type 2 diabetes, and what are its side effects?"


@dataclass
class ServingProbe:
    """What the probe saw: every ``auto`` reply, then the named request's."""

    base_url: str
    api_key: str
    #: Seconds the routers may take to see the released specialist starting.
    patience_s: float = 30.0
    routed: list[dict[str, Any]] = field(default_factory=list)
    named: dict[str, Any] | None = None
    #: An HTTP failure of the probe itself, if any.
    error: str | None = None

    def __call__(self) -> None:
        try:
            self._probe()
        except httpx.HTTPError as err:  # recorded: the test reports it, up goes on
            self.error = repr(err)

    def _probe(self) -> None:
        headers = {"authorization": f"Bearer {self.api_key}"}
        body = {"messages": [{"role": "user", "content": QUESTION}], "max_tokens": 4}
        with httpx.Client(base_url=self.base_url, headers=headers, timeout=60) as http:
            deadline = time.monotonic() + self.patience_s
            while time.monotonic() < deadline:
                reply = http.post("/v1/chat/completions", json={**body, "model": "auto"})
                self.routed.append(
                    {
                        "status": reply.status_code,
                        "model": reply.json().get("model") if reply.status_code == 200 else None,
                        "reason": reply.headers.get(HEADER_REASON),
                        "fallback_from": reply.headers.get(HEADER_FALLBACK_FROM),
                    }
                )
                if self.routed[-1]["reason"] == "cold_start":
                    break
                time.sleep(0.5)
            time.sleep(2.0)  # every router replica has looked at Serve since
            named = http.post(
                "/v1/chat/completions", json={**body, "model": SPECIALIST}, timeout=20
            )
            error = named.json().get("error", {}) if named.status_code != 200 else {}
            self.named = {
                "status": named.status_code,
                "code": error.get("code"),
                "retry_after": named.headers.get("retry-after"),
            }
