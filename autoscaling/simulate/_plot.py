"""Draw a replay's demand against its replicas, one panel per model (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["plot_comparison", "plot_replay"]


def plot_replay(report: dict[str, Any], path: str | Path, title: str = "") -> None:
    """Write a PNG of ``report``'s series: demand in replicas (demand / per-replica target).

    Raises ImportError when matplotlib is not installed.
    """
    import matplotlib

    matplotlib.use("Agg")  # files only: no display, no GUI toolkit
    import matplotlib.pyplot as plt

    series = report["series"]
    minutes = [t / 60.0 for t in series["t"]]
    names = list(series["models"])
    fig, axes = plt.subplots(len(names), 1, sharex=True, figsize=(8, 1.5 * len(names) + 0.8))
    for ax, name in zip(axes, names, strict=True):
        row = series["models"][name]
        target = report["models"][name]["target_ongoing_requests"] or 1.0
        demand = [d / target for d in row["demand"]]
        ax.fill_between(
            minutes, demand, step="post", color="tab:orange", alpha=0.35, label="demand / target"
        )
        ax.step(minutes, row["replicas"], where="post", color="tab:blue", label="running replicas")
        ax.step(
            minutes, row["target"], where="post", color="tab:blue", linestyle=":", label="target"
        )
        ax.set_ylabel(name, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.set_ylim(bottom=0)
    axes[0].legend(fontsize=7, loc="upper right", ncol=3)
    axes[-1].set_xlabel("minutes")
    fig.suptitle(title or f"policy {report['policy']}: demand vs replicas", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def plot_comparison(result: dict[str, Any], path: str | Path, title: str = "") -> None:
    """Write a PNG of each policy's cost against its attainment (both SLO rules).

    ``result`` is :func:`~autoscaling.simulate.compare_policies`' output; the
    ``ray-tuned`` grid is drawn faintly behind. Raises ImportError without
    matplotlib.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    grid = result["policies"]["ray-tuned"].get("tuning", {}).get("grid", [])
    ax.scatter(
        [p["cost_total"] for p in grid],
        [p["ttft_slo_attainment_sized"] for p in grid],
        s=10, color="0.8", label="ray-tuned grid (sized)",
    )  # fmt: skip
    for name, r in result["policies"].items():
        ax.scatter(r["cost_total"], r["ttft_slo_attainment_sized"], s=60, label=f"{name} (sized)")
        ax.scatter(r["cost_total"], r["ttft_slo_attainment"], s=25, marker="x", color="0.3")
        ax.annotate(name, (r["cost_total"], r["ttft_slo_attainment_sized"]), fontsize=7)
    ax.set_xlabel("cost")
    ax.set_ylabel("TTFT-SLO attainment (dot: sized, x: flat)")
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title(title or "cost against attainment", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
