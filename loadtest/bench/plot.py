"""The overhead benchmark's chart: latency and throughput of each setup side by side."""

from __future__ import annotations

from typing import Any

__all__ = ["plot_overhead"]


def plot_overhead(result: dict[str, Any], path: str) -> None:
    """Write a PNG: p50/p99 end-to-end latency and throughput per setup (needs matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(result["setups"])
    rows = [result["setups"][n] for n in names]
    fig, (lat, thr) = plt.subplots(1, 2, figsize=(10, 4))
    xs = range(len(names))
    lat.bar([x - 0.2 for x in xs], [r.get("p50_e2e_ms") or 0 for r in rows], 0.4, label="p50")
    lat.bar([x + 0.2 for x in xs], [r.get("p99_e2e_ms") or 0 for r in rows], 0.4, label="p99")
    lat.set_ylabel("end-to-end latency (ms)")
    lat.legend()
    thr.bar(list(xs), [r.get("throughput_rps") or 0 for r in rows], 0.6, color="tab:green")
    thr.set_ylabel("requests / s")
    for ax in (lat, thr):
        ax.set_xticks(list(xs), names, rotation=20)
    settings = result.get("settings", {})
    fig.suptitle(f"garden bench overhead {settings}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
