"""``garden route`` and ``garden route-eval``: the routing decision, offline."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click

from cluster.cli._display import console, table
from cluster.cli._main import cli
from cluster.cli._options import config_option, load


def _ready_states(policy: Any) -> dict[str, Any]:
    """Every model of ``policy`` healthy and idle: the decision as the classifier alone makes it."""
    from router.policy import ModelState

    models = {policy.generalist, *policy.owners.values()}
    return {m: ModelState(healthy=True, outstanding=0, queue_limit=1) for m in models}


@cli.command("route")
@config_option
@click.argument("text")
def route_cmd(config_path: str | None, text: str) -> None:
    """Print where TEXT would go (all models healthy) and the per-domain scores.

    \b
    Example:
      garden route "What is the statute of limitations for fraud?"
    """
    from router.routing import Router

    router = Router(load(config_path))
    features, decision = router.route(text, _ready_states(router.policy))
    click.echo(
        f"model={decision.model} domain={decision.domain} "
        f"confidence={decision.confidence:.3f} reason={decision.reason.value} "
        f"stage={features.stage}"
    )
    scores = sorted(features.scores.items(), key=lambda kv: -kv[1])
    console().print(table("domain", "score", rows=[(d, f"{s:.3f}") for d, s in scores], right=1))


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
    "--output-tokens",
    type=click.IntRange(1, 1_000_000),
    default=256,
    show_default=True,
    help="Tokens each answer is taken to have, for the cost per 1,000 requests.",
)
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default=None,
    help="Also write the confusion matrix and confidence histogram to this PNG "
    "(needs the 'eval' extra: matplotlib).",
)
def route_eval_cmd(
    config_path: str | None,
    data: Path,
    as_json: bool,
    output_tokens: int,
    plot_path: Path | None,
) -> None:
    """Measure routing accuracy, safety and decision latency on labelled prompts.

    \b
    Example:
      garden route-eval --data labelled.jsonl --json
    """
    from router.evaluation import route_cost, route_metrics
    from router.routing import Router

    if plot_path is not None:
        from cluster.cli._plot import require_pyplot

        require_pyplot()  # a missing matplotlib fails now, not after the whole evaluation
    rows = _read_rows(data)
    garden = load(config_path)
    router = Router(garden)
    states = _ready_states(router.policy)
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
    request_cost = _request_cost(garden, output_tokens)
    texts = [text for text, _ in rows]
    metrics["cost"] = {
        "output_tokens": output_tokens,
        **route_cost(
            labels,
            decisions,
            router.policy.owners,
            router.policy.generalist,
            lambda model, i: request_cost(model, texts[i]),
        ),
    }
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
    keys = (
        "n",
        "accuracy",
        "macro_recall",
        "wrong_specialist_rate",
        "specialist_coverage",
        "p50_ms",
        "p99_ms",
    )
    out = console()
    out.print(
        table(
            "metric",
            "value",
            rows=[
                (k, f"{metrics[k]:.4f}" if isinstance(metrics[k], float) else metrics[k])
                for k in keys
            ],
            right=1,
        )
    )
    out.print(
        table(
            "domain",
            "precision",
            "recall",
            "n",
            rows=[
                (d, f"{m['precision']:.3f}", f"{m['recall']:.3f}", m["n"])
                for d, m in metrics["per_domain"].items()
            ],
            right=3,
        )
    )
    out.print(
        table(
            "decided by",
            "share",
            "accuracy",
            rows=[
                (stage, f"{share:.3f}", f"{metrics['stage_accuracy'][stage]:.3f}")
                for stage, share in metrics["stage_share"].items()
            ],
            right=2,
        )
    )
    cost = metrics["cost"]
    click.echo(
        f"cost per 1k requests   routed {cost['routed_per_1k']:.4f}  "
        f"all-generalist {cost['generalist_per_1k']:.4f}  oracle {cost['oracle_per_1k']:.4f}  "
        f"({cost['savings']:.2f}x cheaper of a {cost['ceiling']:.2f}x ceiling)"
    )


#: Characters per prompt token, for the cost estimate (no model tokenizer here).
_CHARS_PER_TOKEN = 4


def _request_cost(garden: Any, output_tokens: int) -> Any:
    """``cost(model, text)``: one request's share of a replica's hourly cost.

    From the garden's service profile (``autoscaling.profile``): the prompt's
    prefill time, plus ``output_tokens`` decoded in the largest batch that
    meets the model's TPOT objective, each of the batch's sequences taking
    its share of the replica; times ``cost_per_hour / 3600``. Prompt tokens
    are estimated as characters / 4.
    """
    from autoscaling.profile import load_profiles, token_prices

    prices = token_prices(
        load_profiles(garden.autoscaling.profile),
        # Only models that chat are routed to; an embedder may have no profile.
        [(m.name, m.cost_per_hour, m.slo.tpot_ms / 1000) for m in garden.chat_models],
    )

    def cost(model: str, text: str) -> float:
        prompt = max(1, len(text) // _CHARS_PER_TOKEN)
        return prices[model].of(prompt, output_tokens)

    return cost


@cli.command("route-cv")
@config_option
@click.option(
    "--scheme",
    type=click.Choice(["folds", "sources", "both"]),
    default="both",
    show_default=True,
    help="Random stratified folds, leave-one-source-out, or both.",
)
@click.option("--folds", type=click.IntRange(2, 20), default=5, show_default=True)
@click.option(
    "--max-wrong",
    type=click.FloatRange(0, 1),
    default=0.03,
    show_default=True,
    help="Wrong-specialist budget the suggested thresholds are calibrated to.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def route_cv_cmd(
    config_path: str | None, scheme: str, folds: int, max_wrong: float, as_json: bool
) -> None:
    """Cross-validate the classifier on the garden's exemplars; suggest per-domain thresholds.

    Reports each scheme's routing metrics with the configured thresholds and
    with thresholds calibrated on the out-of-fold predictions of the schemes
    run, and each exemplar source's accuracy.

    \b
    Example:
      garden route-cv --json
    """
    from dataclasses import replace

    from rich.console import Console
    from rich.table import Table

    from router.crossval import accuracy_by_source, calibrate_thresholds, cross_validate
    from router.evaluation import route_metrics
    from router.policy import decide
    from router.routing import policy_config

    garden = load(config_path)
    policy = policy_config(garden)
    states = _ready_states(policy)
    schemes = ["folds", "sources"] if scheme == "both" else [scheme]
    heldout = {s: cross_validate(garden, s, folds=folds) for s in schemes}  # type: ignore[arg-type]
    pooled = [row for rows in heldout.values() for row in rows]
    suggested = calibrate_thresholds(pooled, policy, max_wrong=max_wrong)
    calibrated = replace(policy, thresholds=suggested)

    def metrics(rows: list[Any], pol: Any) -> dict[str, Any]:
        decisions = [decide(r.features, states, pol) for r in rows]
        out = route_metrics([r.label for r in rows], decisions, pol.owners, [])
        return {k: out[k] for k in _CV_KEYS} | {"per_domain": out["per_domain"]}

    report: dict[str, Any] = {
        "suggested_thresholds": suggested,
        "max_wrong": max_wrong,
        **{
            s: {
                "configured": metrics(rows, policy),
                "suggested": metrics(rows, calibrated),
                "per_source_accuracy": accuracy_by_source(rows),
            }
            for s, rows in heldout.items()
        },
    }
    if as_json:
        click.echo(json.dumps(report))
        return
    console = Console()
    table = Table(title="cross-validation on the exemplars")
    table.add_column("scheme")
    table.add_column("thresholds")
    for key in _CV_KEYS:
        table.add_column(key, justify="right")
    for s in schemes:
        for which in ("configured", "suggested"):
            m = report[s][which]
            table.add_row(s, which, *(_cell(m[k]) for k in _CV_KEYS))
    console.print(table)
    sources = Table(title="accuracy per held-out source (top domain)")
    sources.add_column("source")
    for s in schemes:
        sources.add_column(s, justify="right")
    names = sorted({n for s in schemes for n in report[s]["per_source_accuracy"]})
    for name in names:
        sources.add_row(name, *(_cell(report[s]["per_source_accuracy"].get(name)) for s in schemes))
    console.print(sources)
    console.print(f"suggested router.thresholds (max wrong {max_wrong}): {suggested}")


_CV_KEYS = ("n", "accuracy", "wrong_specialist_rate", "specialist_coverage", "macro_recall")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.4f}" if isinstance(value, float) else str(value)
