"""``route-eval --plot``: the confusion matrix and the confidence histogram as one PNG."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click

__all__ = ["plot_route_eval", "require_pyplot"]


def require_pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend; a click error when matplotlib is missing."""
    try:
        import matplotlib
    except ImportError as err:
        raise click.UsageError("--plot needs matplotlib: pip install 'model-garden[eval]'") from err
    matplotlib.use("Agg")  # files only; never a display
    import matplotlib.pyplot as plt

    return plt


def plot_route_eval(
    path: Path,
    confusion: Mapping[str, Mapping[str, int]],
    confidences: Sequence[float],
    correct: Sequence[bool],
) -> None:
    """Write ``path``: routed-vs-true counts, and confidence by right/wrong route."""
    plt = require_pyplot()
    labels = sorted(confusion)
    counts = [[confusion[t].get(g, 0) for g in labels] for t in labels]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 5))
    image = left.imshow(counts, cmap="Blues")
    fig.colorbar(image, ax=left, fraction=0.046)
    left.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    left.set_yticks(range(len(labels)), labels)
    left.set_xlabel("routed to (domain of the model)")
    left.set_ylabel("true domain")
    left.set_title("Confusion matrix")
    peak = max((c for row in counts for c in row), default=0)
    for i, row in enumerate(counts):
        for j, c in enumerate(row):
            left.text(
                j, i, str(c), ha="center", va="center", color="white" if c > peak / 2 else "black"
            )
    bins = [i / 20 for i in range(21)]
    right.hist(
        [
            [c for c, ok in zip(confidences, correct, strict=True) if ok],
            [c for c, ok in zip(confidences, correct, strict=True) if not ok],
        ],
        bins=bins,
        stacked=True,
        label=["routed right", "routed wrong"],
        color=["tab:green", "tab:red"],
    )
    right.set_xlabel("classifier confidence")
    right.set_ylabel("queries")
    right.set_title("Confidence histogram")
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
