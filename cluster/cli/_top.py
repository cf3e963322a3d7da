"""``garden top``: a live view of the running garden (``cluster.top``), drawn with rich."""

from __future__ import annotations

import collections
import json
import time
from typing import TYPE_CHECKING

import click

from cluster.cli._display import console
from cluster.cli._main import cli
from cluster.cli._options import config_option, load, running_garden

if TYPE_CHECKING:
    from rich.console import Group

    from cluster.top import Scrape, TopSnapshot

#: Seconds the live view's rates and TTFT quantiles look back (or since it started).
_LIVE_WINDOW_S = 60.0
#: The live view shows rates once its window is this long: Ray's processes
#: report their metrics every 10 s.
_LIVE_MIN_WINDOW_S = 20.0


def _number(value: float | None, digits: int = 0, suffix: str = "") -> str:
    return "-" if value is None else f"{value:,.{digits}f}{suffix}"


def render(view: TopSnapshot) -> Group:
    """The snapshot as rich renderables: a table of models, then routing and budget."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    models = Table(title=f"garden top  (rates and TTFT over {view.window_s:.0f} s)")
    for column in ("model", "role", "status", "replicas"):
        models.add_column(column)
    for column in ("running", "queued", "TTFT p50", "TTFT p99", "tok/s", "KV cache", "routed"):
        models.add_column(column, justify="right")
    for m in view.models:
        healthy = m.status == "HEALTHY"
        models.add_row(
            m.name,
            m.role,
            Text(m.status, style="green" if healthy else "yellow"),
            f"{m.replicas_running}/{m.replicas_target}",
            _number(m.requests_running),
            _number(m.requests_waiting),
            _number(m.ttft_p50_ms, suffix=" ms"),
            _number(m.ttft_p99_ms, suffix=" ms"),
            _number(m.tokens_per_s, 1),
            _number(None if m.kv_cache_use is None else m.kv_cache_use * 100, 1, "%"),
            _number(None if m.route_share is None else m.route_share * 100, 1, "%"),
        )
    reasons = Table(title=f"routed requests: {view.routed:,.0f}", show_edge=False)
    reasons.add_column("reason")
    reasons.add_column("share", justify="right")
    for reason, n in view.reasons.items():
        if n <= 0:
            continue
        reasons.add_row(reason, f"{100 * n / view.routed:.1f}%" if view.routed else "-")
    ceiling = "no budget" if view.budget_per_hour is None else f"of {view.budget_per_hour:g}/h"
    budget = Text(f"cost in use: {view.cost_per_hour:g}/h {ceiling}")
    return Group(models, reasons, budget)


def _replicas(app: str) -> dict[str, tuple[str, int, int]]:
    from cluster.lifecycle import status

    return {p.name: (p.status, p.running, p.target) for p in status(app)}


@cli.command("top")
@config_option
@click.option("--once", is_flag=True, help="Print one snapshot (two scrapes --window apart).")
@click.option("--json", "as_json", is_flag=True, help="Print one snapshot as JSON (with --once).")
@click.option(
    "--window",
    "window_s",
    default=15.0,
    show_default=True,
    type=click.FloatRange(0.5, 600),
    help="Seconds between the two scrapes of --once; keep it above Ray's metrics report "
    "interval (10 s), or a counter may not have moved between them.",
)
@click.option(
    "--interval",
    "interval_s",
    default=1.0,
    show_default=True,
    type=click.FloatRange(0.2, 60),
    help="Seconds between refreshes of the live view.",
)
def top_cmd(
    config_path: str | None, once: bool, as_json: bool, window_s: float, interval_s: float
) -> None:
    """A live view of the running garden, refreshed every second.

    Per model: replicas running/target, requests running and queued (vLLM's
    gauges), TTFT p50/p99 as the router measured it, generated tokens per
    second, KV-cache use, and its share of routed requests; then the route
    reasons and the cost in use against the budget. Everything comes from
    Ray's Prometheus endpoint (telemetry.metrics_port) and Serve's state.
    The live view's rates and quantiles cover the last minute (or since it
    started); --once takes two scrapes --window seconds apart (Ray's
    processes report their metrics every 10 s, so keep it longer).

    \b
    Example:
      garden top --once --window 20 --json
    """
    from rich.live import Live

    from cluster.top import scrape, snapshot

    garden = load(config_path)
    state = running_garden()
    url = state.metrics_url or f"http://127.0.0.1:{garden.telemetry.metrics_port}/metrics"
    if as_json and not once:
        raise click.UsageError("--json prints one snapshot: add --once")
    if once:
        before = scrape(url)
        time.sleep(window_s)
        view = snapshot(garden, before, scrape(url), _replicas(state.app))
        if as_json:
            click.echo(json.dumps(view.to_json(), indent=2))
        else:
            console().print(render(view))
        return
    history: collections.deque[Scrape] = collections.deque([scrape(url)])
    time.sleep(min(interval_s, 1.0))
    with Live(auto_refresh=False, console=console()) as live:
        try:
            while True:
                now = scrape(url)
                while len(history) > 1 and now.at - history[1].at >= _LIVE_WINDOW_S:
                    history.popleft()
                view = snapshot(
                    garden,
                    history[0],
                    now,
                    _replicas(state.app),
                    min_window_s=_LIVE_MIN_WINDOW_S,
                )
                live.update(render(view))
                live.refresh()
                history.append(now)
                time.sleep(interval_s)
        except KeyboardInterrupt:
            return
