"""`garden k8s apply|status|wait|delete` against a fake API server, through the real client.

The fake speaks HTTP on loopback, so the official ``kubernetes`` client runs
its whole path (kubeconfig, bearer auth, JSON serialization, status codes to
exceptions) and the garden turns each failure into an error that says what to
do next.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from cluster.cli._main import cli
from tests._fake_kube import TOKEN, FakeKube
from tests._kube import CI_VALUES

pytestmark = pytest.mark.unit

CONFIG = str(next(p for p in CI_VALUES if p.name == "cpu-values.yaml"))


@pytest.fixture
def kube() -> Iterator[FakeKube]:
    fake = FakeKube().start()
    yield fake
    fake.stop()


def _garden(kube: FakeKube, tmp_path: Path, *args: str) -> Result:
    from cluster.cli import _k8s  # noqa: F401  (registers `garden k8s`)

    kubeconfig = str(kube.kubeconfig(tmp_path))
    return CliRunner().invoke(cli, ["k8s", *args, "--kubeconfig", kubeconfig])


def _status(*, generation: int = 1, ready: bool, app: str = "RUNNING") -> dict[str, Any]:
    deployments = {
        "router": {"status": "HEALTHY"},
        "code": {"status": "HEALTHY" if ready else "UPDATING", "message": ""},
        "generalist": {"status": "HEALTHY"},
    }
    return {
        "observedGeneration": generation,
        "conditions": [
            {
                "type": "Ready",
                "status": "True" if ready else "False",
                "reason": "NonZeroServeEndpoints" if ready else "Initializing",
                "message": "",
            },
            {
                "type": "UpgradeInProgress",
                "status": "False",
                "reason": "NoPendingCluster",
                "message": "",
            },
        ],
        "activeServiceStatus": {
            "rayClusterName": "model-garden-raycluster-x2k9f",
            "applicationStatuses": {
                "garden": {"status": app, "message": "", "serveDeploymentStatuses": deployments}
            },
        },
    }


def test_apply_creates_then_server_side_applies(kube: FakeKube, tmp_path: Path) -> None:
    first = _garden(kube, tmp_path, "apply", "--config", CONFIG)
    assert first.exit_code == 0, first.output
    assert "rayservice/model-garden created in namespace ml" in first.output
    post = next(r for r in kube.requests if r.method == "POST")
    assert post.path == "/apis/ray.io/v1/namespaces/ml/rayservices"
    assert post.headers["authorization"] == f"Bearer {TOKEN}"
    assert post.body["kind"] == "RayService" and post.body["metadata"]["namespace"] == "ml"
    assert post.query["fieldManager"] == ["model-garden"]

    second = _garden(kube, tmp_path, "apply", "--config", CONFIG, "-n", "ml")
    assert second.exit_code == 0, second.output
    assert "rayservice/model-garden configured" in second.output
    patch = next(r for r in kube.requests if r.method == "PATCH")
    assert patch.path == "/apis/ray.io/v1/namespaces/ml/rayservices/model-garden"
    assert patch.headers["content-type"] == "application/apply-patch+yaml"
    # The client writes "True" (kubernetes 36) or "true" (37); the API server parses both.
    assert [v.lower() for v in patch.query["force"]] == ["true"]
    assert patch.query["fieldManager"] == ["model-garden"]
    assert kube.objects["ml", "model-garden"]["metadata"]["generation"] == 2


def test_status_table_and_json(kube: FakeKube, tmp_path: Path) -> None:
    assert _garden(kube, tmp_path, "apply", "--config", CONFIG).exit_code == 0
    kube.statuses = [_status(ready=True)]
    table = _garden(kube, tmp_path, "status")
    assert table.exit_code == 0, table.output
    assert "RayService model-garden (namespace ml): READY" in table.output
    rows = {line.split("│")[1].strip(): line for line in table.output.splitlines() if "│" in line}
    assert "NonZeroServeEndpoints" in rows["Ready"]  # the conditions table
    generalist = [line for line in table.output.splitlines() if "generalist" in line]
    assert len(generalist) == 1 and "garden" in generalist[0] and "RUNNING" in generalist[0]
    assert "HEALTHY" in generalist[0] and "active" in generalist[0]

    out = _garden(kube, tmp_path, "status", "--json")
    data = json.loads(out.output)
    assert data["ready"] is True
    assert data["active_cluster"] == "model-garden-raycluster-x2k9f"
    assert data["applications"]["garden"]["deployments"]["code"]["status"] == "HEALTHY"


def test_wait_shows_progress_until_ready(kube: FakeKube, tmp_path: Path) -> None:
    assert _garden(kube, tmp_path, "apply", "--config", CONFIG).exit_code == 0
    kube.statuses = [
        {},  # the operator has not written a status yet
        _status(ready=False, app="DEPLOYING"),
        _status(ready=False, app="DEPLOYING"),
        _status(ready=True),
    ]
    result = _garden(kube, tmp_path, "wait", "--interval", "0.01", "--timeout", "30")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()  # without a terminal: a line per new step
    assert lines[0].endswith("rayservice/model-garden: serviceStatus is unset")
    assert lines[1].endswith("Ready is False (Initializing) (2/3 deployments healthy)")
    assert lines[-1].endswith("rayservice/model-garden: ready (3/3 deployments healthy)")
    assert len(lines) == 3


def test_wait_ignores_a_status_of_the_previous_spec(kube: FakeKube, tmp_path: Path) -> None:
    assert _garden(kube, tmp_path, "apply", "--config", CONFIG).exit_code == 0
    assert _garden(kube, tmp_path, "apply", "--config", CONFIG).exit_code == 0  # generation 2
    kube.statuses = [_status(generation=1, ready=True), _status(generation=2, ready=True)]
    result = _garden(kube, tmp_path, "wait", "--interval", "0.01")
    assert result.exit_code == 0, result.output
    assert "not yet seen generation 2" in result.output


def test_wait_times_out_with_the_reason(kube: FakeKube, tmp_path: Path) -> None:
    assert _garden(kube, tmp_path, "apply", "--config", CONFIG).exit_code == 0
    kube.statuses = [_status(ready=False, app="DEPLOYING")]
    result = _garden(kube, tmp_path, "wait", "--interval", "0.01", "--timeout", "0.05")
    assert result.exit_code == 1
    assert "not ready after 0.05s" in result.output
    assert "garden k8s status --name model-garden -n ml" in result.output


def test_wait_fails_fast_on_a_failed_deploy(kube: FakeKube, tmp_path: Path) -> None:
    assert _garden(kube, tmp_path, "apply", "--config", CONFIG).exit_code == 0
    failed = _status(ready=False, app="DEPLOY_FAILED")
    failed["activeServiceStatus"]["applicationStatuses"]["garden"]["message"] = (
        "model 'code': no checkpoint at /models/code"
    )
    kube.statuses = [failed]
    result = _garden(kube, tmp_path, "wait", "--interval", "0.01")
    assert result.exit_code == 1
    assert "deploy failed (garden: model 'code': no checkpoint at /models/code)" in result.output


def test_delete_then_status_says_it_is_gone(kube: FakeKube, tmp_path: Path) -> None:
    assert _garden(kube, tmp_path, "apply", "--config", CONFIG).exit_code == 0
    deleted = _garden(kube, tmp_path, "delete", "--release", "model-garden")
    assert deleted.exit_code == 0, deleted.output
    assert "rayservice/model-garden deleted from namespace ml" in deleted.output
    assert not kube.objects
    gone = _garden(kube, tmp_path, "status")
    assert gone.exit_code == 1
    assert "no RayService 'model-garden' in namespace 'ml'" in gone.output


def test_no_kuberay_crd_is_a_clear_error(tmp_path: Path) -> None:
    kube = FakeKube(crd_installed=False).start()
    try:
        result = _garden(kube, tmp_path, "apply", "--config", CONFIG)
    finally:
        kube.stop()
    assert result.exit_code == 1
    assert "no RayService resource (ray.io/v1)" in result.output
    assert "Install the KubeRay operator" in result.output
    assert not [r for r in kube.requests if r.method == "POST"]


def test_forbidden_is_a_clear_error(tmp_path: Path) -> None:
    kube = FakeKube(forbidden=True).start()
    try:
        result = _garden(kube, tmp_path, "status", "--name", "prod", "-n", "team-a")
    finally:
        kube.stop()
    assert result.exit_code == 1
    assert "forbidden: cannot get rayservices.ray.io/prod in namespace 'team-a'" in result.output
    assert 'User "dev" cannot get resource "rayservices"' in result.output


def test_no_kubeconfig_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cluster.cli import _k8s  # noqa: F401

    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    result = CliRunner().invoke(cli, ["k8s", "status"])
    assert result.exit_code == 1
    assert f"no kubeconfig at {tmp_path / 'absent'} and not running in a pod" in result.output


def test_unreachable_api_server_is_a_clear_error(kube: FakeKube, tmp_path: Path) -> None:
    kubeconfig = kube.kubeconfig(tmp_path)
    kube.stop()
    from cluster.cli import _k8s  # noqa: F401

    result = CliRunner().invoke(cli, ["k8s", "status", "--kubeconfig", str(kubeconfig)])
    assert result.exit_code == 1
    assert f"cannot reach the API server at {kube.url}" in result.output
    kube.start()  # the fixture stops it again
