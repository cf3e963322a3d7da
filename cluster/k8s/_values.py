"""The Helm chart's cluster-side values: image, Ray head and worker groups, ingress, ...

The chart's values are these keys plus the garden keys of ``garden.yaml``
(``name``, ``data_dir``, ``models``, ``router``, ``autoscaling``, ``budget``,
``telemetry``), so a ``garden.yaml`` is itself a values file. The defaults
here are the chart's ``values.yaml`` (a unit test keeps the two equal), and
``values.schema.json`` is generated from these models (``garden k8s schema``).

Defaults inside list items (``workerGroups[]``) are zero-like or required:
Helm applies no defaults inside a user's list, and the chart's ``default``
treats zero as unset, so any other default would differ between the chart and
``garden k8s render``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from pydantic.alias_generators import to_camel

__all__ = [
    "DNS_LABEL",
    "ChartValues",
    "ClusterUpgradeOptions",
    "GcsFaultTolerance",
    "HeadGroup",
    "Ingress",
    "Resources",
    "WorkerGroup",
]

#: RFC 1123 label, as Kubernetes names and KubeRay group names must be.
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"

#: A Kubernetes resource quantity ("500m", "8Gi", 2).
Quantity = (
    int
    | Annotated[
        str,
        StringConstraints(
            pattern=r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
            r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
        ),
    ]
)
ResourceList = dict[Literal["cpu", "memory", "ephemeral-storage"], Quantity]
Labels = dict[Annotated[str, StringConstraints(min_length=1, max_length=253)], str]


class _Values(BaseModel):
    """Strict camelCase node: unknown keys are errors, as in values.schema.json."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True
    )


class Resources(_Values):
    """Container requests and limits; the chart adds ``nvidia.com/gpu`` itself."""

    requests: ResourceList = Field(default_factory=dict, description="cpu, memory requests.")
    limits: ResourceList = Field(default_factory=dict, description="cpu, memory limits.")


class Toleration(_Values):
    """A pod toleration (Kubernetes' own shape)."""

    key: str | None = None
    operator: Literal["Exists", "Equal"] | None = None
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = None


class _Placement(_Values):
    """Where a group's pods run and what they reserve."""

    resources: Resources = Field(default_factory=Resources, description="Container resources.")
    node_selector: Labels = Field(default_factory=dict, description="Pod nodeSelector.")
    tolerations: list[Toleration] = Field(default_factory=list, description="Pod tolerations.")
    affinity: dict[str, Any] = Field(default_factory=dict, description="Pod affinity.")
    ray_start_params: dict[str, str] = Field(
        default_factory=dict, description="Extra `ray start` flags (string values)."
    )


class HeadGroup(_Placement):
    """The Ray head pod: GCS, Serve controller, dashboard; no replicas by default."""

    resources: Resources = Field(
        default_factory=lambda: Resources(
            requests={"cpu": 2, "memory": "8Gi"}, limits={"cpu": 2, "memory": "8Gi"}
        ),
        description="Head container resources.",
    )
    # num-cpus 0 keeps model and router replicas off the head, whose loss
    # (without GCS fault tolerance) restarts the whole cluster anyway.
    ray_start_params: dict[str, str] = Field(
        default_factory=lambda: {"num-cpus": "0"},
        description="Extra `ray start` flags of the head (string values).",
    )


class WorkerGroup(_Placement):
    """One KubeRay worker group: pods of one accelerator type (or CPU only)."""

    name: Annotated[str, StringConstraints(pattern=DNS_LABEL, max_length=63)] = Field(
        description="KubeRay groupName."
    )
    accelerator_type: Annotated[str, StringConstraints(min_length=1)] | None = Field(
        None,
        description="Ray accelerator type of the group's GPUs (e.g. L4, H100): models with "
        "resources.accelerator_type need a group with that type.",
    )
    gpus: int = Field(0, ge=0, le=16, description="nvidia.com/gpu per pod (0: CPU-only group).")
    replicas: int | None = Field(None, ge=0, description="Pods at creation (default minReplicas).")
    min_replicas: int = Field(0, ge=0, le=1000, description="Fewest pods (Ray autoscaler).")
    max_replicas: int = Field(ge=1, le=1000, description="Most pods (Ray autoscaler).")


class ImageValues(_Values):
    """The container image: Ray plus model-garden installed (see docs/kubernetes.md)."""

    repository: str = Field("model-garden", min_length=1, description="Image repository.")
    tag: str = Field("", description="Image tag; empty: the chart's appVersion.")
    pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"


class ClusterUpgradeOptions(_Values):
    """KubeRay's NewClusterWithIncrementalUpgrade options (Gateway API traffic shift)."""

    gateway_class_name: str = Field(min_length=1)
    step_size_percent: int = Field(ge=1, le=100)
    interval_seconds: int = Field(ge=1)
    max_surge_percent: int = Field(100, ge=1, le=100)


class UpgradeStrategy(_Values):
    """How KubeRay rolls out a new RayCluster spec."""

    type: Literal["NewCluster", "NewClusterWithIncrementalUpgrade", "None"] = Field(
        "NewCluster",
        description="NewCluster: zero-downtime blue/green; NewClusterWithIncrementalUpgrade: "
        "gradual traffic shift (needs clusterUpgradeOptions); None: in place.",
    )
    cluster_upgrade_options: ClusterUpgradeOptions | None = None


class SecretKey(_Values):
    """A key of a Secret."""

    name: str = ""
    key: str = "password"


class GcsFaultTolerance(_Values):
    """GCS fault tolerance through an external Redis: the head can restart in place."""

    enabled: bool = False
    redis_address: str = Field("", description="host:port of the external Redis.")
    redis_password_secret: SecretKey = Field(
        default_factory=SecretKey, description="Secret key holding the Redis password."
    )
    external_storage_namespace: str = Field("", description="Key prefix in Redis (optional).")


class IngressTLS(_Values):
    """TLS of the Ingress."""

    enabled: bool = False
    secret_name: str = Field("", description="Secret with the certificate for `host`.")


class Ingress(_Values):
    """An Ingress to the RayService's Serve service."""

    enabled: bool = False
    class_name: str = Field("", description="ingressClassName; empty: the cluster default.")
    host: str = Field("", description="Host name; empty: any host.")
    path: str = Field("/", pattern=r"^/")
    annotations: Labels = Field(default_factory=dict)
    tls: IngressTLS = Field(default_factory=IngressTLS)


class ApiKeys(_Values):
    """A Secret whose keys become environment variables of every Ray container."""

    existing_secret: str = Field(
        "", description="Secret name (e.g. with HF_TOKEN); not created by the chart."
    )


class Exemplars(_Values):
    """The router's exemplar files, in a ConfigMap mounted on every Ray pod."""

    mount_path: str = Field("/home/ray/garden/exemplars", pattern=r"^/")
    files: dict[Annotated[str, StringConstraints(pattern=r"^[-._a-zA-Z0-9]+$")], str] = Field(
        default_factory=dict,
        description="File name -> prompts (one per line); models name them in exemplars_file.",
    )


class PodDisruptionBudget(_Values):
    """Voluntary disruptions (drains) of the garden's Ray pods."""

    enabled: bool = True
    max_unavailable: int | str = 1


class RayAutoscaler(_Values):
    """KubeRay's in-tree Ray autoscaler: adds worker pods when Serve adds replicas."""

    enabled: bool = True
    idle_timeout_seconds: int = Field(60, ge=0)


class ServiceMonitor(_Values):
    """A Prometheus Operator ServiceMonitor on every Ray pod's metrics port."""

    enabled: bool = False
    interval: str = "30s"
    labels: Labels = Field(default_factory=dict)


class Dashboard(_Values):
    """A Grafana dashboard ConfigMap (picked up by Grafana's sidecar via its labels)."""

    enabled: bool = False
    labels: Labels = Field(default_factory=lambda: {"grafana_dashboard": "1"})


class Metrics(_Values):
    """Prometheus scraping and the Grafana dashboard."""

    service_monitor: ServiceMonitor = Field(default_factory=ServiceMonitor)
    dashboard: Dashboard = Field(default_factory=Dashboard)


class ChartValues(_Values):
    """Every cluster-side value of the chart (the garden keys are ``GardenConfig``'s)."""

    name_override: str = ""
    fullname_override: str = ""
    image: ImageValues = Field(default_factory=ImageValues)
    image_pull_secrets: list[str] = Field(default_factory=list, description="Secret names.")
    ray_version: str = Field("2.60.0", description="Ray version of the image (KubeRay uses it).")
    pod_annotations: Labels = Field(default_factory=dict)
    volumes: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Extra volumes of every Ray pod, e.g. a PersistentVolumeClaim of checkpoints.",
    )
    volume_mounts: list[dict[str, Any]] = Field(
        default_factory=list, description="Extra volumeMounts of every Ray container."
    )
    head: HeadGroup = Field(default_factory=HeadGroup)
    worker_groups: list[WorkerGroup] = Field(
        default_factory=lambda: [
            WorkerGroup(
                name="l4",
                accelerator_type="L4",
                gpus=1,
                min_replicas=1,
                max_replicas=8,
                resources=Resources(
                    requests={"cpu": 8, "memory": "32Gi"}, limits={"cpu": 8, "memory": "32Gi"}
                ),
                tolerations=[Toleration(key="nvidia.com/gpu", operator="Exists")],
            )
        ],
        min_length=1,
        description="KubeRay worker groups, one per accelerator type.",
    )
    ray_autoscaler: RayAutoscaler = Field(default_factory=RayAutoscaler)
    upgrade_strategy: UpgradeStrategy = Field(default_factory=UpgradeStrategy)
    gcs_fault_tolerance: GcsFaultTolerance = Field(default_factory=GcsFaultTolerance)
    ingress: Ingress = Field(default_factory=Ingress)
    api_keys: ApiKeys = Field(default_factory=ApiKeys)
    exemplars: Exemplars = Field(default_factory=Exemplars)
    pod_disruption_budget: PodDisruptionBudget = Field(default_factory=PodDisruptionBudget)
    metrics: Metrics = Field(default_factory=Metrics)

    def dump(self) -> dict[str, Any]:
        """The values as the chart sees them (camelCase, unset optionals left out)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)
