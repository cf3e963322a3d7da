"""Build the garden's Ray Serve application from its config.

The same model list yields the same application everywhere: ``garden up``
deploys it locally, and the Kubernetes path renders the same deployments.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

from cluster.config import GardenConfig
from cluster.exceptions import ConfigError

if TYPE_CHECKING:
    from ray.serve.deployment import Application, Deployment

__all__ = ["ROUTER_DEPLOYMENT", "build_app", "garden_app", "router_env"]

#: Deployment name of the ingress.
ROUTER_DEPLOYMENT = "router"


def router_env(garden: GardenConfig, environ: Mapping[str, str]) -> dict[str, str]:
    """What the router replica needs from this process's environment: its secrets.

    For ``garden up``: the variables ``router.auth`` names (``api_keys_env``,
    each key's ``secret_env``, the Redis URL of a ``redis`` quota store),
    taken from ``environ`` (the driver's), so that the router sees them even
    on a Ray that was started earlier or elsewhere. Raises
    :class:`~cluster.exceptions.ConfigError` when one is configured but
    unset or empty, before anything starts. Empty without ``router.auth``.
    """
    from router.auth import api_key_check

    auth = garden.router.auth
    if not auth.enabled:
        return {}
    api_key_check(auth, environ)  # unset or empty: ConfigError
    names = [auth.api_keys_env, *(k.secret_env for k in auth.keys)]
    if auth.store.kind == "redis":
        if not environ.get(auth.store.redis_url_env):
            raise ConfigError(
                "environment",
                [
                    f"router.auth.store.redis_url_env: the environment variable "
                    f"{auth.store.redis_url_env!r} is not set; put the Redis URL in it"
                ],
            )
        names.append(auth.store.redis_url_env)
    return {name: environ[name] for name in names if name is not None and name in environ}


def build_app(garden: GardenConfig, *, env: Mapping[str, str] | None = None) -> Application:
    """The garden's Serve application: one deployment per model behind the router.

    ``env`` becomes environment variables of the router's replicas (Ray's
    ``runtime_env``; see :func:`router_env`); without it the router sees its
    node's environment (on Kubernetes, the container's).
    Raises :class:`~cluster.exceptions.ModelSourceError` when a model's local
    checkpoint is missing, before anything is deployed.
    """
    from deployments.model import build_model_deployment
    from router.ingress import Router

    models = {spec.name: build_model_deployment(garden, spec) for spec in garden.models}
    router = garden.router
    actor: dict[str, Any] = {"num_cpus": router.cpus}
    if router.custom_resources:
        actor["resources"] = dict(router.custom_resources)
    if env:
        actor["runtime_env"] = {"env_vars": dict(env)}
    ingress = cast("Deployment", Router)  # @serve.deployment made it a Deployment
    return ingress.options(
        name=ROUTER_DEPLOYMENT,
        num_replicas=router.num_replicas,
        max_ongoing_requests=router.max_ongoing_requests,
        ray_actor_options=actor,
    ).bind(models, garden.model_dump(mode="json"))


def garden_app(args: dict[str, Any]) -> Application:
    """Serve's app builder for declarative deploys (``serveConfigV2``, ``serve deploy``).

    ``import_path: cluster.app:garden_app`` with ``args: {config: <garden.yaml
    as a mapping>}``; the config is validated exactly as ``garden up`` does.
    The optional ``args.base_dir`` plays the config file's directory: relative
    ``exemplars_file`` paths are read there, else from the bundled sets (the
    Helm chart mounts its exemplars ConfigMap there).
    """
    from pathlib import Path

    from cluster.config import parse_config

    if not isinstance(args, dict) or "config" not in args:
        raise ConfigError("serve args", ["args.config: required (the garden.yaml mapping)"])
    base_dir = args.get("base_dir")
    if base_dir is not None and not isinstance(base_dir, str):
        raise ConfigError("serve args", [f"args.base_dir: expected a path (got {base_dir!r})"])
    return build_app(
        parse_config(
            args["config"],
            source="serve args",
            base_dir=Path(base_dir) if base_dir is not None else None,
        )
    )
