"""Draw a replay's demand against its replicas, one panel per model (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["plot_replay"]


def plot_replay(report: dict[str, Any], path: str | Path, title: str = "") -> None:
    """Write a PNG of ``report``'s series: demand in replicas (demand / slots) vs replicas.

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
        slots = report["models"][name]["slots"] or 1.0
        demand = [d / slots for d in row["demand"]]
        ax.fill_between(
            minutes, demand, step="post", color="tab:orange", alpha=0.35, label="demand / slots"
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
