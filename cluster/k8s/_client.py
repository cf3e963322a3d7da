"""RayService objects through the official ``kubernetes`` client, with errors that say what to do.

Every call goes through :class:`RayServices`, which turns the client's
exceptions into the garden's: no credentials (:class:`KubeconfigError`), no
KubeRay CRD (:class:`KubeRayMissingError`, the 404 on ``ray.io/v1``), 403
(:class:`KubeForbiddenError`), a missing object
(:class:`RayServiceNotFoundError`) and anything else (:class:`KubernetesError`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cluster.exceptions import (
    KubeconfigError,
    KubeForbiddenError,
    KubeRayMissingError,
    KubernetesError,
    RayServiceNotFoundError,
)

__all__ = ["FIELD_MANAGER", "GROUP", "PLURAL", "VERSION", "RayServices", "connect"]

GROUP, VERSION, PLURAL = "ray.io", "v1", "rayservices"
#: Who server-side apply records as the owner of the fields ``garden k8s apply`` sets.
FIELD_MANAGER = "model-garden"
#: Seconds one API call may take before it fails (a dead server should not hang the CLI).
_TIMEOUT_S = 30
_SA_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def connect(kubeconfig: str | None, context: str | None) -> tuple[Any, str]:
    """An ``ApiClient`` and the default namespace: the kubeconfig's, else in-cluster.

    ``kubeconfig`` None means ``$KUBECONFIG`` (``:``-separated), then
    ``~/.kube/config``; inside a pod without one, the service account.
    """
    from kubernetes import client
    from kubernetes import config as kube_config

    config: Any = kube_config  # its loaders are untyped
    path = kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
    files = [Path(p).expanduser() for p in path.split(os.pathsep) if p]
    if any(f.is_file() for f in files):
        try:
            api = config.new_client_from_config(config_file=path, context=context)
            contexts, active = config.list_kube_config_contexts(config_file=path)
        except (config.ConfigException, OSError, ValueError) as err:
            raise KubeconfigError(f"kubeconfig {path}: {err}") from err
        if context is not None:
            active = next(c for c in contexts if c["name"] == context)
        api.configuration.retries = 1  # a refused connection fails now, not after 3 tries
        return api, (active.get("context") or {}).get("namespace") or "default"
    if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
        configuration = client.Configuration()
        try:
            config.load_incluster_config(client_configuration=configuration)
        except config.ConfigException as err:
            raise KubeconfigError(f"in-cluster credentials: {err}") from err
        namespace = _SA_NAMESPACE.read_text().strip() if _SA_NAMESPACE.is_file() else "default"
        return client.ApiClient(configuration), namespace
    raise KubeconfigError(
        f"no kubeconfig at {path} and not running in a pod. Point --kubeconfig or "
        "$KUBECONFIG at one (e.g. from your cloud's `get-credentials` command)."
    )


def _detail(err: Any) -> str:
    """The API server's message from a Status body, else the HTTP reason."""
    try:
        body = json.loads(err.body or "")
    except (TypeError, ValueError):
        body = None
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    return f"HTTP {err.status} {err.reason}"


class RayServices:
    """The RayService objects of one namespace."""

    def __init__(self, api_client: Any, namespace: str) -> None:
        from kubernetes import client

        self.namespace = namespace
        # Typed as Any: custom objects come back as plain dicts, typed `object`.
        self._api: Any = client.CustomObjectsApi(api_client)
        self._host = api_client.configuration.host
        self._crd_checked = False

    @contextmanager
    def _errors(self, verb: str, name: str | None = None) -> Iterator[None]:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        resource = f"rayservices.ray.io{f'/{name}' if name else ''}"
        try:
            yield
        except ApiException as err:
            if err.status == 403:
                raise KubeForbiddenError(verb, resource, self.namespace, _detail(err)) from err
            if err.status == 401:
                raise KubernetesError(
                    f"unauthorized at {self._host}: the credentials were rejected "
                    f"({_detail(err)}); refresh them (e.g. your cloud's get-credentials)"
                ) from err
            if err.status == 404 and name is not None:
                raise RayServiceNotFoundError(name, self.namespace) from err
            raise KubernetesError(f"{verb} {resource}: {_detail(err)}") from err
        except HTTPError as err:
            raise KubernetesError(f"cannot reach the API server at {self._host}: {err}") from err

    def _call(self, verb: str, name: str | None, fn: Callable[[], Any]) -> dict[str, Any]:
        self.check_crd()
        with self._errors(verb, name):
            result = fn()
        return result if isinstance(result, dict) else {}

    def check_crd(self) -> None:
        """Raise :class:`KubeRayMissingError` unless the API serves ``ray.io/v1`` rayservices."""
        if self._crd_checked:
            return
        from kubernetes.client.exceptions import ApiException

        try:
            with self._errors("discover", None):
                try:
                    found = self._api.get_api_resources(GROUP, VERSION, _request_timeout=_TIMEOUT_S)
                except ApiException as err:
                    if err.status == 404:
                        raise KubeRayMissingError(f"{GROUP}/{VERSION} is not served") from err
                    raise
        except KubeForbiddenError:
            return  # discovery hidden from this identity; the real call will tell
        names = {r.name for r in found.resources or []}
        if PLURAL not in names:
            raise KubeRayMissingError(f"{GROUP}/{VERSION} serves {sorted(names)}, not {PLURAL}")
        self._crd_checked = True

    def get(self, name: str) -> dict[str, Any]:
        """The RayService called ``name``; :class:`RayServiceNotFoundError` if none."""
        return self._call(
            "get",
            name,
            lambda: self._api.get_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, name, _request_timeout=_TIMEOUT_S
            ),
        )

    def apply(self, manifest: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """Create the RayService, or server-side apply it over the existing one.

        Returns ``("created" | "configured", object)``. Server-side apply with
        ``force`` takes over the fields it sets (from Helm too), and drops
        fields this manager set before but no longer sets.
        """
        name = manifest["metadata"]["name"]
        body = {**manifest, "metadata": {**manifest["metadata"], "namespace": self.namespace}}
        try:
            self.get(name)
        except RayServiceNotFoundError:
            created = self._call(
                "create",
                None,
                lambda: self._api.create_namespaced_custom_object(
                    GROUP,
                    VERSION,
                    self.namespace,
                    PLURAL,
                    body,
                    field_manager=FIELD_MANAGER,
                    _request_timeout=_TIMEOUT_S,
                ),
            )
            return "created", created
        patched = self._call(
            "patch",
            name,
            lambda: self._api.patch_namespaced_custom_object(
                GROUP,
                VERSION,
                self.namespace,
                PLURAL,
                name,
                body,
                field_manager=FIELD_MANAGER,
                force=True,
                _content_type="application/apply-patch+yaml",
                _request_timeout=_TIMEOUT_S,
            ),
        )
        return "configured", patched

    def delete(self, name: str) -> None:
        """Delete the RayService (KubeRay then deletes its RayClusters and Services)."""
        self._call(
            "delete",
            name,
            lambda: self._api.delete_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, name, _request_timeout=_TIMEOUT_S
            ),
        )
