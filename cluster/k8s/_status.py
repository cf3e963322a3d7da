"""A RayService's status as the garden reads it: conditions, applications, deployments.

Pure functions over the custom object (a dict, as the API returns it), so
``garden k8s status`` and ``wait`` are tested without a cluster.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["ApplicationStatus", "RayServiceStatus", "summarise"]


@dataclass(frozen=True)
class ApplicationStatus:
    """One Serve application: its status and each deployment's ``(status, message)``."""

    status: str
    message: str = ""
    deployments: dict[str, dict[str, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class RayServiceStatus:
    """What ``garden k8s status`` shows; ``ready`` is what ``wait`` waits for."""

    name: str
    namespace: str
    ready: bool
    reason: str
    conditions: list[dict[str, str]]
    service_status: str | None
    active_cluster: str | None
    pending_cluster: str | None
    applications: dict[str, ApplicationStatus]
    pending_applications: dict[str, ApplicationStatus]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (``garden k8s status --json``)."""
        return asdict(self)


def _applications(service_status: dict[str, Any] | None) -> dict[str, ApplicationStatus]:
    apps = (service_status or {}).get("applicationStatuses") or {}
    return {
        name: ApplicationStatus(
            status=str(app.get("status", "UNKNOWN")),
            message=str(app.get("message", "")),
            deployments={
                dep: {
                    "status": str(d.get("status", "UNKNOWN")),
                    "message": str(d.get("message", "")),
                }
                for dep, d in (app.get("serveDeploymentStatuses") or {}).items()
            },
        )
        for name, app in apps.items()
    }


def _readiness(obj: dict[str, Any], apps: dict[str, ApplicationStatus]) -> tuple[bool, str]:
    """Ready, or why not: the latest spec is observed, Ready holds, every app runs."""
    status = obj.get("status") or {}
    generation = (obj.get("metadata") or {}).get("generation")
    observed = status.get("observedGeneration")
    # Right after an apply, the status still describes the previous spec.
    if generation is not None and observed is not None and observed < generation:
        return False, f"the operator has not yet seen generation {generation} (at {observed})"
    conditions = {c.get("type"): c for c in status.get("conditions") or []}
    if conditions:
        upgrading = conditions.get("UpgradeInProgress", {})
        if upgrading.get("status") == "True":
            return False, f"upgrade in progress ({upgrading.get('reason', '')})"
        ready = conditions.get("Ready", {})
        if ready.get("status") != "True":
            return False, f"Ready is {ready.get('status', 'absent')} ({ready.get('reason', '')})"
    elif status.get("serviceStatus") != "Running":  # KubeRay before conditions
        return False, f"serviceStatus is {status.get('serviceStatus') or 'unset'}"
    if not apps:
        return False, "no Serve application reported yet"
    waiting = sorted(name for name, app in apps.items() if app.status != "RUNNING")
    if waiting:
        return False, "applications not RUNNING: " + ", ".join(
            f"{n} ({apps[n].status})" for n in waiting
        )
    return True, "ready"


def summarise(obj: dict[str, Any]) -> RayServiceStatus:
    """The status of a RayService custom object."""
    meta = obj.get("metadata") or {}
    status = obj.get("status") or {}
    active = status.get("activeServiceStatus") or {}
    pending = status.get("pendingServiceStatus") or {}
    apps = _applications(active)
    ready, reason = _readiness(obj, apps)
    return RayServiceStatus(
        name=str(meta.get("name", "")),
        namespace=str(meta.get("namespace", "")),
        ready=ready,
        reason=reason,
        conditions=[
            {k: str(c.get(k, "")) for k in ("type", "status", "reason", "message")}
            for c in status.get("conditions") or []
        ],
        service_status=status.get("serviceStatus"),
        active_cluster=active.get("rayClusterName") or None,
        pending_cluster=pending.get("rayClusterName") or None,
        applications=apps,
        pending_applications=_applications(pending),
    )
