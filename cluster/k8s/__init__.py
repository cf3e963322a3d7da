"""The garden on Kubernetes: the chart rendered by Helm's library, and its RayService managed.

:func:`render_chart` renders ``helm/model-garden`` (the one chart) for a
garden config and values files, as ``helm template`` would;
:class:`RayServices` applies, reads and deletes the RayService through the
official ``kubernetes`` client; :func:`summarise` reads its status. The
``kubernetes`` and ``helm-python-sdk`` packages (the ``k8s`` extra) are
imported only when used.
"""

from cluster.k8s._chart import (
    CHART_ENV,
    GARDEN_KEYS,
    Rendered,
    chart_dir,
    render_chart,
    stack_values,
)
from cluster.k8s._client import FIELD_MANAGER, RayServices, connect
from cluster.k8s._names import CHART_NAME, fullname
from cluster.k8s._status import ApplicationStatus, RayServiceStatus, summarise
from cluster.k8s._values_schema import schema_text, values_schema

__all__ = [
    "CHART_ENV",
    "CHART_NAME",
    "FIELD_MANAGER",
    "GARDEN_KEYS",
    "ApplicationStatus",
    "RayServiceStatus",
    "RayServices",
    "Rendered",
    "chart_dir",
    "connect",
    "fullname",
    "render_chart",
    "schema_text",
    "stack_values",
    "summarise",
    "values_schema",
]
