"""The shared store's contract, and spill reports summed over router replicas."""

from __future__ import annotations

import pytest

from autoscaling.signals import SPILL_TTL_S, publish_spilled, read_spilled
from cluster.store import REAP_AFTER_S, MemoryStore, SharedStore
from tests._clock import Clock

pytestmark = pytest.mark.unit


def test_entries_expire_and_prefixes_list_only_live_ones() -> None:
    clock = Clock(1_000.0)
    store = MemoryStore(clock)
    assert isinstance(store, SharedStore)
    store.put("a:1", "x", ttl_s=5)
    store.put("a:2", "y")
    store.put("b:1", "z", ttl_s=50)
    assert store.items("a:") == {"a:1": "x", "a:2": "y"}
    clock.now += 5
    assert store.get("a:1") is None  # expired at its ttl
    assert store.items("a:") == {"a:2": "y"}
    store.put("a:1", "x2", ttl_s=5)  # renewed just after it lapsed: the fresh one stands
    assert store.items("a:") == {"a:1": "x2", "a:2": "y"}
    assert store.get("b:1") == "z"
    store.delete("a:2")
    store.delete("never-set")
    assert store.items("a:") == {"a:1": "x2"}
    with pytest.raises(ValueError, match="ttl_s must be > 0, got 0"):
        store.put("c", "v", ttl_s=0)


@pytest.mark.parametrize("garbled", ["not json", '{"v": "x"}', "[1, 2]", '"text"'])
def test_a_garbled_entry_neither_hides_nor_stops_the_others(garbled: str) -> None:
    """Something else wrote under the prefix: skipped and kept; the rest listed and reaped."""
    clock = Clock(1_000.0)
    store = MemoryStore(clock)
    store._entries["a:0"] = garbled  # as a foreign writer would leave it
    store.put("a:1", "old", ttl_s=1)
    store.put("a:2", "live")
    clock.now += 1 + REAP_AFTER_S
    assert store.items("a:") == {"a:2": "live"}
    assert set(store._entries) == {"a:0", "a:2"}  # the expired one was reaped
    assert store.get("a:2") == "live"


def test_spills_of_two_router_replicas_are_summed_not_overwritten() -> None:
    store = MemoryStore(Clock(1_000.0))
    publish_spilled("g", {"law": 3, "code": 1}, "router-a", store)
    publish_spilled("g", {"law": 2}, "router-b", store)
    assert read_spilled("g", store) == {"law": 5.0, "code": 1.0}
    publish_spilled("g", {"law": 0, "code": 1}, "router-a", store)  # a renews its own only
    assert read_spilled("g", store) == {"law": 2.0, "code": 1.0}
    assert read_spilled("other-garden", store) == {}


def test_a_dead_routers_last_report_lapses() -> None:
    clock = Clock(1_000.0)
    store = MemoryStore(clock)
    publish_spilled("g", {"law": 4}, "dead", store)
    for _ in range(30):  # the live router renews every refresh; the dead one never again
        publish_spilled("g", {"law": 1}, "live", store)
        clock.now += 1.0
    assert read_spilled("g", store) == {"law": 1.0}
    clock.now += SPILL_TTL_S
    assert read_spilled("g", store) == {}
    clock.now += REAP_AFTER_S
    assert store.items("g:") == {} and not store._entries  # long-dead reports are reaped
