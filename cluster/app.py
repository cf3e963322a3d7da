"""Build the garden's Ray Serve application from its config.

The same model list yields the same application everywhere: ``garden up``
deploys it locally, and the Kubernetes path renders the same deployments.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from cluster.config import GardenConfig, ModelSpec
from cluster.exceptions import ConfigError
from cluster.ray_internals import with_code_version

if TYPE_CHECKING:
    from ray.serve.deployment import Application, Deployment

__all__ = ["ROUTER_DEPLOYMENT", "build_app", "code_version", "garden_app", "router_env"]

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


def profile_check(garden: GardenConfig) -> None:
    """Raise ConfigError unless every model on the garden policy has a service profile.

    The garden policy sizes replicas from ``autoscaling.profile``'s entry for
    its model; Serve's controller builds the policy, so a missing entry would
    otherwise fail inside the controller after the deploy has begun, and
    stall it. Checked before anything starts.
    """
    from autoscaling.profile import ProfileError, load_profiles

    on_policy = [
        (i, spec) for i, spec in enumerate(garden.models) if garden.policy_of(spec) == "garden"
    ]
    if not on_policy:
        return
    profile = garden.autoscaling.profile
    try:
        profiles = load_profiles(profile)
    except (ProfileError, OSError) as err:
        raise ConfigError("(autoscaling)", [f"autoscaling.profile: {profile!r}: {err}"]) from err
    problems = []
    for i, spec in on_policy:
        try:
            profiles.for_model(spec.name)
        except ProfileError as err:
            problems.append(
                f"models[{i}] ({spec.name!r}) is on the 'garden' autoscaling policy, but "
                f"autoscaling.profile {profile!r} has no profile for it ({err}); add one, "
                "or set models[].autoscaling.policy: ray-default"
            )
    if problems:
        raise ConfigError("(autoscaling)", problems)


#: The packages whose files are the garden's code (what its replicas run).
_PACKAGES = ("cluster", "router", "deployments", "autoscaling")


@functools.cache
def _code_digest() -> str:
    """A hash of the garden's code: every file of its packages, and Ray's version."""
    import ray

    digest = hashlib.sha256(ray.__version__.encode())
    for package in _PACKAGES:
        found = importlib.util.find_spec(package)
        for root in (found.submodule_search_locations or []) if found else []:
            for path in sorted(Path(root).rglob("*")):
                if path.is_file() and "__pycache__" not in path.parts:
                    digest.update(f"{package}/{path.relative_to(root)}".encode())
                    digest.update(path.read_bytes())
    return digest.hexdigest()


def code_version(kind: str, what: Any) -> str:
    """The code version of a deployment running ``kind`` on ``what`` (its arguments, as JSON).

    A hash of the garden's code and of ``what``: a redeploy restarts a
    deployment's replicas only when one of them changed (or Serve's own
    triggers did: actor options, placement); config Serve applies in place
    (autoscaling, limits) is not in it. ``serve.run`` would give every
    deployment a random version, so each ``garden up`` on a running garden
    would restart every replica.
    """
    encoded = json.dumps([_code_digest(), kind, what], sort_keys=True, default=str)
    return hashlib.sha256(encoded.encode()).hexdigest()[:32]


def _held(spec: ModelSpec) -> ModelSpec:
    # At zero replicas, and free to stay there: Serve starts none until the real config.
    scaling = spec.autoscaling.model_copy(update={"min_replicas": 0, "initial_replicas": 0})
    return spec.model_copy(update={"autoscaling": scaling})


def _model_deployment(garden: GardenConfig, spec: ModelSpec, held: bool) -> Application:
    from deployments.model import build_llm_config, build_model_deployment

    # The replica's arguments but its deployment config (autoscaling, limits),
    # which Serve updates in place.
    what = build_llm_config(garden, spec).model_dump(exclude={"deployment_config"})
    app = build_model_deployment(garden, _held(spec) if held else spec)
    return cast("Application", with_code_version(app, code_version("model", what)))


def build_app(
    garden: GardenConfig,
    *,
    env: Mapping[str, str] | None = None,
    held: Collection[str] = (),
) -> Application:
    """The garden's Serve application: one deployment per model behind the router.

    ``env`` becomes environment variables of the router's replicas (Ray's
    ``runtime_env``; see :func:`router_env`); without it the router sees its
    node's environment (on Kubernetes, the container's). The models named
    in ``held`` are deployed at zero replicas: deploying the application
    again without them starts their replicas, and restarts nothing else
    (every deployment's code version is pinned, :func:`code_version`).
    Raises :class:`~cluster.exceptions.ModelSourceError` when a model's local
    checkpoint is missing, and ConfigError when a model on the garden
    policy has no service profile (:func:`profile_check`), before anything
    is deployed.
    """
    from router.ingress import Router

    profile_check(garden)
    models = {
        spec.name: _model_deployment(garden, spec, spec.name in held) for spec in garden.models
    }
    router = garden.router
    actor: dict[str, Any] = {"num_cpus": router.cpus}
    if router.custom_resources:
        actor["resources"] = dict(router.custom_resources)
    if env:
        actor["runtime_env"] = {"env_vars": dict(env)}
    ingress = cast("Deployment", Router)  # @serve.deployment made it a Deployment
    config = garden.model_dump(mode="json")
    app = ingress.options(
        name=ROUTER_DEPLOYMENT,
        num_replicas=router.num_replicas,
        max_ongoing_requests=router.max_ongoing_requests,
        ray_actor_options=actor,
    ).bind(models, config)
    return cast("Application", with_code_version(app, code_version("router", config)))


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
