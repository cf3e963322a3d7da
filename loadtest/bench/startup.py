"""``garden bench startup``: seconds until the garden serves and is complete, and peak memory.

The clock starts before Ray does. ``serving_s`` is when ``garden up`` reports
the garden serving (the router and the generalist healthy), ``ready_s`` when
it would print the endpoint (every model healthy). A sampler thread reads
the memory of every process of the garden (Ray's daemons and workers, the
model replicas and their vLLM engines) once a second. Two sums are reported:

* ``peak_rss_gib``: the resident memory of the garden as a whole, i.e. each
  resident page counted once however many processes map it (the sum of the
  processes' PSS). Forked engines share pages with their replica, so this is
  the figure that says how much RAM the garden takes.
* ``peak_rss_sum_gib``: the plain sum of per-process RSS, which counts every
  shared page once per process that maps it (an upper bound).

The benchmark driver itself (this process) is not part of the garden and is
not counted.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any

import psutil

from cluster.config import GardenConfig
from cluster.processes import with_descendants

__all__ = ["garden_memory", "run_startup_bench"]

_GIB = 1024**3


def _is_garden_process(proc: psutil.Process) -> bool:
    cmd = " ".join(proc.info["cmdline"] or [])
    name = proc.info["name"] or ""
    return (
        cmd.startswith(("ray::", "VLLM::"))
        or name.startswith(("ray::", "VLLM::", "raylet", "gcs_server"))
        or "site-packages/ray/" in cmd
        or "/ray/core/src/ray/" in cmd
    )


def garden_memory() -> tuple[float, float, int]:
    """(sum of PSS, sum of RSS, process count) over the garden's processes, in bytes."""
    me = os.getpid()
    roots = [
        p
        for p in psutil.process_iter(["pid", "name", "cmdline"])
        if p.pid != me and _is_garden_process(p)
    ]
    seen = with_descendants(roots)
    seen.pop(me, None)
    pss = rss = 0.0
    for pid in seen:
        p_pss, p_rss = _rollup(pid)
        pss += p_pss
        rss += p_rss
    return pss, rss, len(seen)


def _rollup(pid: int) -> tuple[float, float]:
    """(PSS, RSS) of ``pid`` in bytes from the kernel's smaps_rollup.

    Much cheaper than walking /proc/<pid>/smaps (what psutil's
    memory_full_info does), so sampling does not slow the start-up it measures.
    """
    fields = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                key, _, rest = line.partition(":")
                if key in ("Rss", "Pss"):
                    fields[key] = float(rest.split()[0]) * 1024
    except OSError:  # gone, or no smaps_rollup on this kernel
        return 0.0, 0.0
    return fields.get("Pss", 0.0), fields.get("Rss", 0.0)


class _Sampler(threading.Thread):
    def __init__(self, period_s: float = 1.0) -> None:
        super().__init__(daemon=True, name="garden-memory-sampler")
        self.period_s = period_s
        self.peak_pss = self.peak_rss = 0.0
        self.peak_procs = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            pss, rss, n = garden_memory()
            self.peak_pss = max(self.peak_pss, pss)
            self.peak_rss = max(self.peak_rss, rss)
            self.peak_procs = max(self.peak_procs, n)
            self._stop_event.wait(self.period_s)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


def run_startup_bench(
    garden: GardenConfig,
    up: Callable[..., Any],
    down: Callable[[], Any],
    *,
    settle_s: float = 10.0,
) -> dict[str, Any]:
    """Start ``garden`` from nothing with ``up``, measure, and take it down with ``down``.

    ``up`` and ``down`` are the control plane's (``cluster.lifecycle``), so
    that what is timed is what ``garden up`` does: ``serving_s`` when it
    reports the garden serving (``on_serving``: the router and the
    generalist healthy), ``ready_s`` when it returns (every model healthy).
    The caller checks that no garden runs yet. Memory keeps being sampled
    for ``settle_s`` after ready, since engines finish allocating just after
    they report healthy.
    """
    from deployments.tiny import build_missing

    build_missing(garden)  # model building is setup, not start-up
    sampler = _Sampler()
    sampler.start()
    start = time.monotonic()
    serving: list[float] = []
    try:
        up(garden, on_serving=lambda: serving.append(time.monotonic() - start))
        ready_s = time.monotonic() - start
        time.sleep(settle_s)
    finally:
        sampler.stop()
        down()
    return {
        "serving_s": round(serving[0], 1) if serving else None,
        "ready_s": round(ready_s, 1),
        "peak_rss_gib": round(sampler.peak_pss / _GIB, 2),
        "peak_rss_sum_gib": round(sampler.peak_rss / _GIB, 2),
        "processes": sampler.peak_procs,
        "models": len(garden.models),
    }
