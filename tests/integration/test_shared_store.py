"""The shared store on Ray's real KV store, and two router replicas' spill reports."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from autoscaling.signals import read_spilled
from cluster.ray_internals import kv_get, kv_put
from cluster.store import REAP_AFTER_S, RayKVStore
from router._health import refresh
from router._state import ModelStates
from tests.conftest import RunningGarden

pytestmark = pytest.mark.integration


def test_ray_kv_store_keeps_the_contract(garden: RunningGarden) -> None:
    store = RayKVStore()
    prefix = f"store-probe-{uuid.uuid4().hex}:"
    store.put(prefix + "short", "x", ttl_s=1)
    store.put(prefix + "kept", "y")
    assert store.items(prefix) == {prefix + "short": "x", prefix + "kept": "y"}
    time.sleep(1.2)
    assert store.get(prefix + "short") is None
    assert store.items(prefix) == {prefix + "kept": "y"}
    store.delete(prefix + "kept")
    assert store.items(prefix) == {}


def test_a_garbled_entry_neither_hides_nor_stops_the_others(garden: RunningGarden) -> None:
    clock = [time.time()]
    store = RayKVStore(clock=lambda: clock[0])
    prefix = f"store-probe-{uuid.uuid4().hex}:"
    kv_put(prefix + "a", "not json", store.namespace)
    store.put(prefix + "b", "old", ttl_s=1)
    store.put(prefix + "c", "live")
    clock[0] += 1 + REAP_AFTER_S
    assert store.items(prefix) == {prefix + "c": "live"}
    assert kv_get(prefix + "b", store.namespace) is None  # reaped
    assert kv_get(prefix + "a", store.namespace) == "not json"
    for key in ("a", "c"):
        store.delete(prefix + key)


def test_two_router_replicas_spills_add_up(garden: RunningGarden) -> None:
    """Two routers' refreshes (the code each router replica runs): spills and requests add up."""
    app = f"spill-probe-{uuid.uuid4().hex}"  # no such application: only the reports matter
    routers = [ModelStates({"law": 4, "generalist": 8}) for _ in range(2)]
    for states, spills in zip(routers, (3, 2), strict=True):
        for _ in range(spills):
            states.begin("generalist", spilled_from="law")

    async def both() -> None:
        await asyncio.gather(*(refresh(s, app, f"router-{n}") for n, s in enumerate(routers)))

    asyncio.run(both())
    assert read_spilled(app) == {"law": 5.0, "generalist": 0.0}
    asyncio.run(both())  # each has now read the other's report
    # Each router counts the other's requests at the generalist against its capacity.
    assert [r.snapshot()["generalist"].outstanding for r in routers] == [5, 5]
    routers[0].end("generalist", spilled_from="law")
    asyncio.run(refresh(routers[0], app, "router-0"))
    assert read_spilled(app)["law"] == 4.0
    asyncio.run(refresh(routers[1], app, "router-1"))
    assert routers[1].snapshot()["generalist"].outstanding == 4
