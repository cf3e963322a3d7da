"""The garden on Kubernetes: a KubeRay RayService, as ``helm/model-garden`` renders it.

``render_rayservice`` builds the manifest that the chart builds for the same
values (a unit test renders both and compares them); ``RayServices`` applies,
reads and deletes it through the official ``kubernetes`` client;
``summarise`` reads its status. The ``kubernetes`` package (the ``k8s``
extra) is only imported by ``connect`` and ``RayServices``.
"""

from cluster.k8s._client import FIELD_MANAGER, RayServices, connect
from cluster.k8s._names import CHART_NAME, MAX_RAYSERVICE_NAME, fullname
from cluster.k8s._render import IMPORT_PATH, chart_values, merge_values, render_rayservice
from cluster.k8s._status import ApplicationStatus, RayServiceStatus, format_table, summarise
from cluster.k8s._values import ChartValues
from cluster.k8s._values_schema import GARDEN_KEYS, schema_text, validate_values, values_schema
from cluster.k8s._yaml import dump_yaml

__all__ = [
    "CHART_NAME",
    "FIELD_MANAGER",
    "GARDEN_KEYS",
    "IMPORT_PATH",
    "MAX_RAYSERVICE_NAME",
    "ApplicationStatus",
    "ChartValues",
    "RayServiceStatus",
    "RayServices",
    "chart_values",
    "connect",
    "dump_yaml",
    "format_table",
    "fullname",
    "merge_values",
    "render_rayservice",
    "schema_text",
    "summarise",
    "validate_values",
    "values_schema",
]
