"""``garden k8s``: the garden as a KubeRay RayService (render, apply, status, wait, delete)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from cluster.cli._display import StepProgress, console, table
from cluster.cli._main import cli
from cluster.exceptions import StartupError

if TYPE_CHECKING:
    from rich.console import Group

    from cluster.k8s import RayServiceStatus

F = TypeVar("F", bound=Callable[..., Any])

#: The release name `garden k8s` assumes, as in `helm install model-garden ...`.
DEFAULT_RELEASE = "model-garden"


@cli.group("k8s")
def k8s_group() -> None:
    """Run the garden on Kubernetes as a KubeRay RayService (docs/kubernetes.md)."""
    from importlib.util import find_spec

    missing = [m for m in ("kubernetes", "helm_python") if find_spec(m) is None]
    if missing:
        raise click.ClickException(
            f"garden k8s needs {', '.join(missing)}: pip install 'model-garden[k8s]'"
        )


def _cluster_options(fn: F) -> F:
    for option in reversed(
        [
            click.option(
                "--kubeconfig",
                type=click.Path(dir_okay=False),
                default=None,
                help="kubeconfig file (default: $KUBECONFIG, then ~/.kube/config).",
            ),
            click.option("--context", default=None, help="kubeconfig context (default: current)."),
            click.option(
                "--namespace",
                "-n",
                default=None,
                help="Namespace (default: the context's, else 'default').",
            ),
        ]
    ):
        fn = option(fn)
    return fn


def _render_options(fn: F) -> F:
    for option in reversed(
        [
            click.option(
                "--config",
                "config_path",
                default=None,
                envvar="GARDEN_CONFIG",
                type=click.Path(dir_okay=False),
                help="garden.yaml to deploy (default: the embedded garden, as for "
                "`garden up`; env GARDEN_CONFIG).",
            ),
            click.option(
                "--values",
                "values_paths",
                multiple=True,
                type=click.Path(dir_okay=False),
                help="Chart values file(s) for the cluster side (image, workerGroups, "
                "...); later files win, as with helm -f. The garden config is stacked last.",
            ),
            click.option(
                "--release",
                default=DEFAULT_RELEASE,
                show_default=True,
                help="Helm release name the RayService is named after.",
            ),
        ]
    ):
        fn = option(fn)
    return fn


def _name_options(fn: F) -> F:
    fn = click.option("--name", default=None, help="RayService name (default: from --release).")(fn)
    return click.option(
        "--release", default=DEFAULT_RELEASE, show_default=True, help="Helm release name."
    )(fn)


def _render(
    config_path: str | None, values_paths: tuple[str, ...], release: str, namespace: str
) -> Any:
    import yaml

    from cluster.config import DEFAULT_CONFIG_NAME, default_config_text, read_yaml_file
    from cluster.k8s import render_chart

    values = [_mapping(read_yaml_file(path), path) for path in values_paths]
    if config_path is None:
        config_path = DEFAULT_CONFIG_NAME
        garden = _mapping(yaml.safe_load(default_config_text()), config_path)
    else:
        garden = _mapping(read_yaml_file(config_path), config_path)
    for i, model in enumerate(garden.get("models") or []):
        if isinstance(model, dict) and "tiny" in model and "source" not in model:
            click.secho(
                f"warning: models[{i}] ({model.get('name')}) is a tiny model built only "
                "by `garden models build`; on a cluster give it a `source`",
                fg="yellow",
                err=True,
            )
    source = " + ".join([*values_paths, config_path])
    return render_chart(garden, values, release=release, namespace=namespace, source=source)


def _mapping(data: Any, path: str) -> dict[str, Any]:
    from cluster.exceptions import ConfigError

    if not isinstance(data, dict):
        raise ConfigError(path, [f"<root>: expected a mapping (got {type(data).__name__})"])
    return data


def _services(kubeconfig: str | None, context: str | None, namespace: str | None) -> Any:
    from cluster.k8s import RayServices, connect

    api, default_namespace = connect(kubeconfig, context)
    return RayServices(api, namespace or default_namespace)


def _name(name: str | None, release: str) -> str:
    from cluster.k8s import fullname

    return name or fullname(release)


@k8s_group.command("render")
@_render_options
@click.option("--namespace", "-n", default="default", show_default=True, help="Namespace.")
def render(
    config_path: str | None, values_paths: tuple[str, ...], release: str, namespace: str
) -> None:
    """Print the chart's objects for a garden, as `helm template` renders them.

    \b
    Example:
      garden k8s render --values cluster.yaml > garden-k8s.yaml
    """
    click.echo(_render(config_path, values_paths, release, namespace).text(), nl=False)


@k8s_group.command("apply")
@_render_options
@_cluster_options
def apply(
    config_path: str | None,
    values_paths: tuple[str, ...],
    release: str,
    kubeconfig: str | None,
    context: str | None,
    namespace: str | None,
) -> None:
    """Create the garden's RayService, or update it in place (server-side apply).

    The chart's other objects (the exemplars ConfigMap, metrics Service, PDB,
    Ingress, ServiceMonitor) come with `helm install`; the RayService runs
    without them.

    \b
    Example:
      garden k8s apply --config garden.yaml --values cluster.yaml -n ml
    """
    services = _services(kubeconfig, context, namespace)
    manifest = _render(config_path, values_paths, release, services.namespace).one("RayService")
    outcome, _ = services.apply(manifest)
    name = manifest["metadata"]["name"]
    click.echo(f"rayservice/{name} {outcome} in namespace {services.namespace}")
    click.echo(f"follow it with: garden k8s wait --name {name} -n {services.namespace}")


@k8s_group.command("status")
@_name_options
@_cluster_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def status(
    name: str | None,
    release: str,
    kubeconfig: str | None,
    context: str | None,
    namespace: str | None,
    as_json: bool,
) -> None:
    """Show the RayService's conditions, applications and deployments.

    \b
    Example:
      garden k8s status -n ml --json
    """
    from cluster.k8s import summarise

    state = summarise(_services(kubeconfig, context, namespace).get(_name(name, release)))
    if as_json:
        click.echo(json.dumps(state.to_json()))
    else:
        console().print(_status_view(state))


def _status_view(state: RayServiceStatus) -> Group:
    """The verdict, then rich tables of the conditions and of every deployment."""
    from rich.console import Group

    verdict = "READY" if state.ready else f"NOT READY: {state.reason}"
    parts: list[Any] = [
        f"RayService {state.name} (namespace {state.namespace}): {verdict}",
        f"serviceStatus {state.service_status or '-'}; Ray cluster "
        f"active {state.active_cluster or '-'}, pending {state.pending_cluster or '-'}",
    ]
    if state.conditions:
        conditions = [(c["type"], c["status"], c["reason"], c["message"]) for c in state.conditions]
        parts.append(table("condition", "status", "reason", "message", rows=conditions))
    rows = [
        (which, app_name, app.status, dep, d["status"], d["message"] or app.message)
        for which, apps in (("active", state.applications), ("pending", state.pending_applications))
        for app_name, app in sorted(apps.items())
        for dep, d in sorted(app.deployments.items())
    ]
    if rows:
        parts.append(
            table("cluster", "application", "app status", "deployment", "status", "message",
                  rows=rows, title="Serve deployments")
        )  # fmt: skip
    return Group(*parts)


def _healthy(state: RayServiceStatus) -> tuple[int, int]:
    deployments = [d for app in state.applications.values() for d in app.deployments.values()]
    return sum(d["status"] == "HEALTHY" for d in deployments), len(deployments)


@k8s_group.command("wait")
@_name_options
@_cluster_options
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=1800.0,
    show_default=True,
    help="Seconds to wait before failing.",
)
@click.option(
    "--interval",
    type=click.FloatRange(min=0.01),
    default=5.0,
    show_default=True,
    help="Seconds between polls.",
)
def wait(
    name: str | None,
    release: str,
    kubeconfig: str | None,
    context: str | None,
    namespace: str | None,
    timeout: float,
    interval: float,
) -> None:
    """Wait until the RayService serves every application; print progress as it changes.

    \b
    Example:
      garden k8s wait -n ml --timeout 1800
    """
    from cluster.k8s import summarise

    services = _services(kubeconfig, context, namespace)
    target = _name(name, release)
    start = time.monotonic()
    with StepProgress(f"rayservice/{target}", unit="deployments healthy") as progress:
        while True:
            state = summarise(services.get(target))
            elapsed = time.monotonic() - start
            healthy, deployments = _healthy(state)
            progress("ready" if state.ready else state.reason, healthy, deployments or None)
            if state.ready:
                return
            failed = {n: a for n, a in state.applications.items() if a.status == "DEPLOY_FAILED"}
            if failed:
                detail = "; ".join(f"{n}: {a.message}" for n, a in failed.items())
                raise StartupError(f"RayService {target}: deploy failed ({detail})")
            if elapsed >= timeout:
                raise StartupError(
                    f"RayService {target} not ready after {timeout:g}s: {state.reason}. "
                    f"See `garden k8s status --name {target} -n {services.namespace}`."
                )
            time.sleep(min(interval, max(timeout - elapsed, 0.01)))


@k8s_group.command("delete")
@_name_options
@_cluster_options
def delete(
    name: str | None,
    release: str,
    kubeconfig: str | None,
    context: str | None,
    namespace: str | None,
) -> None:
    """Delete the RayService; KubeRay then removes its Ray clusters and Services.

    \b
    Example:
      garden k8s delete -n ml
    """
    services = _services(kubeconfig, context, namespace)
    target = _name(name, release)
    services.delete(target)
    click.echo(f"rayservice/{target} deleted from namespace {services.namespace}")


@k8s_group.command("schema")
def schema() -> None:
    """Print the chart's values.schema.json (cluster values plus garden.yaml's keys).

    \b
    Example:
      garden k8s schema > values.schema.json
    """
    from cluster.k8s import schema_text

    click.echo(schema_text(), nl=False)
