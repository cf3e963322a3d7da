"""``garden route`` and ``garden route-eval``: the routing decision, offline."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click

from cluster.cli._main import cli
from cluster.cli._options import config_option, load


def _ready_states(router: Any) -> dict[str, Any]:
    from router.policy import ModelState

    models = {router.policy.generalist, *router.policy.owners.values()}
    return {m: ModelState(healthy=True, queued=0, queue_limit=1) for m in models}


@cli.command("route")
@config_option
@click.argument("text")
def route_cmd(config_path: str | None, text: str) -> None:
    """Print where TEXT would go (all models healthy) and the per-domain scores."""
    from router.routing import Router

    router = Router(load(config_path))
    features, decision = router.route(text, _ready_states(router))
    click.echo(
        f"model={decision.model} domain={decision.domain} "
        f"confidence={decision.confidence:.3f} reason={decision.reason.value} "
        f"stage={features.stage}"
    )
    for domain, score in sorted(features.scores.items(), key=lambda kv: -kv[1]):
        click.echo(f"  {domain:<10} {score:.3f}")


def _read_rows(path: Path) -> list[tuple[str, str]]:
    """(request text, domain) of each row: ``{"prompt", "domain"}`` or ``{"messages", "domain"}``.

    A ``messages`` row is read as the router reads a chat request (its last
    user turn, with a little earlier context).
    """
    from cluster.exceptions import DataFileError
    from cluster.jsonl import json_lines
    from router.classify import request_text

    rows = []
    try:
        for n, row in json_lines(path):
            if (
                not isinstance(row, dict)
                or "domain" not in row
                or not (isinstance(row.get("prompt"), str) or isinstance(row.get("messages"), list))
            ):
                raise click.UsageError(
                    f'{path}:{n}: rows need "domain" and a "prompt" string or a "messages" list'
                )
            body = {"messages": row["messages"]} if "messages" in row else row
            rows.append((request_text(body), str(row["domain"])))
    except DataFileError as err:
        raise click.UsageError(str(err)) from err
    return rows


@cli.command("route-eval")
@config_option
@click.option(
    "--data",
    "data",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help='JSONL rows {"prompt", "domain"} or {"messages", "domain"} (a chat, decided by '
    'its last user turn); domain is a configured domain or "general".',
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default=None,
    help="Also write the confusion matrix and confidence histogram to this PNG "
    "(needs the 'eval' extra: matplotlib).",
)
def route_eval_cmd(
    config_path: str | None, data: Path, as_json: bool, plot_path: Path | None
) -> None:
    """Measure routing accuracy, safety and decision latency on labelled prompts."""
    from router.evaluation import route_metrics
    from router.routing import Router

    if plot_path is not None:
        from cluster.cli._plot import require_pyplot

        require_pyplot()  # a missing matplotlib fails now, not after the whole evaluation
    rows = _read_rows(data)
    router = Router(load(config_path))
    states = _ready_states(router)
    decisions, features, latencies = [], [], []
    for text, _ in rows:  # one query at a time: the latency a request would see
        start = time.perf_counter()
        feature, decision = router.route(text, states)
        latencies.append((time.perf_counter() - start) * 1000)
        decisions.append(decision)
        features.append(feature)
    labels = [domain for _, domain in rows]
    metrics = route_metrics(
        labels, decisions, router.policy.owners, latencies, stages=[f.stage for f in features]
    )
    if plot_path is not None:
        from cluster.cli._plot import plot_route_eval

        model_domain = {m: d for d, m in router.policy.owners.items()}
        correct = [
            model_domain.get(d.model, "general") == t
            for d, t in zip(decisions, labels, strict=True)
        ]
        plot_route_eval(plot_path, metrics["confusion"], [f.confidence for f in features], correct)
    if as_json:
        click.echo(json.dumps(metrics))
        return
    for key in (
        "n",
        "accuracy",
        "macro_recall",
        "wrong_specialist_rate",
        "specialist_coverage",
        "p50_ms",
        "p99_ms",
    ):
        value = metrics[key]
        click.echo(f"{key:<22} {value:.4f}" if isinstance(value, float) else f"{key:<22} {value}")
    for domain, m in metrics["per_domain"].items():
        click.echo(
            f"  {domain:<10} precision {m['precision']:.3f}  recall {m['recall']:.3f}  n={m['n']}"
        )
    for stage, share in metrics["stage_share"].items():
        accuracy = metrics["stage_accuracy"][stage]
        click.echo(f"  decided by {stage:<9} share {share:.3f}  accuracy {accuracy:.3f}")
