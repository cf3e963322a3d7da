"""The chart, rendered by Helm's own library, checked offline against every schema that applies.

Cases: the chart's defaults, every CI values file (``helm/model-garden/ci``)
and the embedded garden.yaml used as a values file. Each rendered object must
pass ``helm lint --strict``, Kubernetes' schemas (built-in objects and pod
templates), KubeRay's RayService CRD with unknown fields as errors, KubeRay's
own rules, and Ray Serve's ``ServeDeploySchema`` without ignored keys.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from cluster.config import default_config_text, parse_config
from tests._kube import (
    CHART,
    CI_VALUES,
    CRD,
    builtin_problems,
    crd_problems,
    kuberay_rule_problems,
    load_values,
    one,
    pod_templates,
    render_chart,
    serve_config_problems,
)

pytestmark = [
    pytest.mark.unit,
    pytest.mark.skipif(not CRD.is_file(), reason=f"KubeRay's CRD is not at {CRD}"),
]


def _garden_yaml_values() -> dict[str, Any]:
    values = dict(yaml.safe_load(default_config_text()))
    values["workerGroups"] = [{"name": "cpu", "maxReplicas": 4}]
    return values


CASES: dict[str, dict[str, Any] | None] = {
    "defaults": None,
    **{path.stem: load_values(path) for path in CI_VALUES},
    "garden-yaml": _garden_yaml_values(),
}


@pytest.fixture(scope="module", params=sorted(CASES))
def rendered(request: pytest.FixtureRequest) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    values = CASES[request.param]
    return values, render_chart(values)


def test_there_are_several_ci_values_files() -> None:
    assert len(CI_VALUES) >= 3


@pytest.mark.parametrize("case", sorted(CASES))
def test_lint_strict_passes(case: str) -> None:
    import helm_python

    report = helm_python.lint(CHART, CASES[case], strict=True, kube_version="v1.30.0")
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


_CRD_KINDS = {"ServiceMonitor", "PrometheusRule", "HTTPRoute"}
#: The default values' GPU group, and a router resource as KubeRay's rayStartParams give it.
_L4 = {"name": "l4", "acceleratorType": "L4", "gpus": 1, "maxReplicas": 8}
_OFFER = '"{\\"garden_router\\": 4}"'


def test_builtin_objects_match_kubernetes_schemas(rendered: Any) -> None:
    _, objects = rendered
    builtins = [o for o in objects if o["apiVersion"] != "ray.io/v1"]
    # CRDs (the Prometheus Operator's, the Gateway API's): checked below.
    builtins = [o for o in builtins if o["kind"] not in _CRD_KINDS]
    builtins += pod_templates(one(objects, "RayService"))
    problems = [p for o in builtins for p in builtin_problems(o)]
    assert problems == []


def test_rayservice_matches_kuberay_crd_and_rules(rendered: Any) -> None:
    _, objects = rendered
    rayservice = one(objects, "RayService")
    assert crd_problems(rayservice) == []
    assert kuberay_rule_problems(rayservice) == []


def test_serve_config_is_ray_serve_schema_and_the_garden(rendered: Any) -> None:
    values, objects = rendered
    text = one(objects, "RayService")["spec"]["serveConfigV2"]
    assert serve_config_problems(text) == []
    (app,) = yaml.safe_load(text)["applications"]
    assert app["import_path"] == "cluster.app:garden_app"
    config = app["args"]["config"]
    garden = parse_config(config, source="serveConfigV2")  # garden up's own validation
    assert app["name"] == garden.name
    if values is not None:
        assert config["models"] == values["models"]  # exactly the models given, unchanged


def test_every_object_is_labelled_and_namespaced(rendered: Any) -> None:
    _, objects = rendered
    for obj in objects:
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/instance"] == "garden"
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert obj["metadata"]["namespace"] == "ml"


def test_optional_objects_follow_their_switches() -> None:
    kinds = {o["kind"] for o in render_chart(None)}
    assert kinds == {"RayService", "ConfigMap", "PodDisruptionBudget", "ServiceAccount"}
    full = render_chart(CASES["gpu-full-values"])
    monitor = one(full, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    metrics = next(o for o in full if o["kind"] == "Service")
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= metrics["metadata"]["labels"].items()
    )
    assert monitor["spec"]["endpoints"] == [{"port": "metrics", "interval": "15s"}]
    dashboard = next(o for o in full if o["metadata"]["name"].endswith("-dashboard"))
    assert "ray_garden_route_total" in dashboard["data"]["model-garden.json"]
    ingress = one(full, "Ingress")
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "garden-prod-serve-svc", "port": {"number": 8000}}
    assert ingress["spec"]["tls"] == [
        {"hosts": ["garden.example.com"], "secretName": "garden-example-com-tls"}
    ]


def test_proxy_location_follows_the_router_config() -> None:
    def where(values: dict[str, Any] | None) -> str:
        text = one(render_chart(values), "RayService")["spec"]["serveConfigV2"]
        return str(yaml.safe_load(text)["proxy_location"])

    assert where(None) == "EveryNode"
    values = copy.deepcopy(_garden_yaml_values())
    values["router"]["proxy_location"] = "HeadOnly"
    assert where(values) == "HeadOnly"


def _pods(values: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """Each Ray pod spec of the rendered RayService, by group name (the head as 'head')."""
    cluster = one(render_chart(values), "RayService")["spec"]["rayClusterConfig"]
    pods = {"head": cluster["headGroupSpec"]["template"]["spec"]}
    pods.update({g["groupName"]: g["template"]["spec"] for g in cluster["workerGroupSpecs"]})
    return pods


def test_api_keys_reach_the_routers_pods_only() -> None:
    pods = _pods(CASES["gpu-full-values"])
    for name, pod in pods.items():
        (container,) = pod["containers"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        mounts = {m["name"]: m for m in container["volumeMounts"]}
        env_from = [e.get("secretRef", {}).get("name") for e in container.get("envFrom", [])]
        # HF_TOKEN (extraEnv) reaches every container; the API keys only the router group's.
        assert any(e["name"] == "HF_TOKEN" for e in container["env"]), name
        if name == "router":
            assert volumes["api-keys"]["secret"] == {"secretName": "garden-named-keys"}
            assert mounts["api-keys"] == {
                "name": "api-keys",
                "mountPath": "/etc/model-garden/keys",
                "readOnly": True,
            }
            assert env_from == ["garden-api-keys"]
        else:
            assert "api-keys" not in volumes and "api-keys" not in mounts, name
            assert "garden-api-keys" not in env_from, name
    # Ray places the router there: the group offers the resource the router asks for.
    text = one(render_chart(CASES["gpu-full-values"]), "RayService")["spec"]["serveConfigV2"]
    config = yaml.safe_load(text)["applications"][0]["args"]["config"]
    assert config["router"]["custom_resources"] == {"garden_router": 1}
    plain = _pods(None)["head"]
    assert "api-keys" not in {v["name"] for v in plain["volumes"]}


def test_pods_run_as_the_charts_account_unprivileged() -> None:
    values = CASES["gpu-full-values"]
    objects = render_chart(values)
    account = one(objects, "ServiceAccount")
    assert account["metadata"]["name"] == "garden-prod"
    assert account["metadata"]["annotations"] == values["serviceAccount"]["annotations"]
    for name, pod in _pods(values).items():
        assert pod["serviceAccountName"] == "garden-prod"
        # Only the head mounts the token: KubeRay's in-tree autoscaler uses it.
        assert pod["automountServiceAccountToken"] is (name == "head")
        assert pod["securityContext"]["runAsNonRoot"] is True
        (container,) = pod["containers"]
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    other = copy.deepcopy(values)
    other["serviceAccount"] = {"create": False, "name": "platform-ray"}
    assert "ServiceAccount" not in {o["kind"] for o in render_chart(other)}
    assert {p["serviceAccountName"] for p in _pods(other).values()} == {"platform-ray"}


def test_worker_pods_spread_by_their_own_group() -> None:
    pods = _pods(CASES["gpu-full-values"])
    assert "topologySpreadConstraints" not in pods["head"]
    for name in ("l4", "h100", "router"):
        (spread,) = pods[name]["topologySpreadConstraints"]
        assert spread["topologyKey"] == "topology.kubernetes.io/zone"
        assert spread["labelSelector"]["matchLabels"]["model-garden/group"] == name


def test_the_http_route_and_the_slo_alerts() -> None:
    values = CASES["gpu-full-values"]
    objects = render_chart(values)
    route = one(objects, "HTTPRoute")
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert route["spec"]["parentRefs"] == values["httpRoute"]["parentRefs"]
    (rule,) = route["spec"]["rules"]
    assert rule["backendRefs"] == [{"name": "garden-prod-serve-svc", "port": 8000}]
    alerts = one(objects, "PrometheusRule")["spec"]["groups"][0]["rules"]
    ttft = {a["labels"].get("model"): a for a in alerts if a["alert"] == "GardenTTFTOverSLO"}
    assert set(ttft) == {m["name"] for m in values["models"]}
    assert "> 0.8" in ttft["law"]["expr"]  # law's slo.ttft_ms: 800
    assert "> 2" in ttft["code"]["expr"]  # the config's default, 2000 ms
    names = {a["alert"] for a in alerts}
    assert {"GardenFallbackRateHigh", "GardenBudgetCapped"} <= names
    for alert in alerts:  # every expression names a series the garden exports
        assert "ray_gen_ai_server_time_to_first_token_bucket" in alert["expr"] or (
            "ray_garden_route_total" in alert["expr"]
        )


def test_worker_groups_carry_gpus_selectors_and_tolerations() -> None:
    rayservice = one(render_chart(CASES["gpu-full-values"]), "RayService")
    groups = {g["groupName"]: g for g in rayservice["spec"]["rayClusterConfig"]["workerGroupSpecs"]}
    h100 = groups["h100"]["template"]["spec"]
    assert h100["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 2
    assert h100["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-h100-80gb"}
    assert h100["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert groups["h100"]["replicas"] == 1 and groups["l4"]["replicas"] == 2
    config = rayservice["spec"]["rayClusterConfig"]
    assert config["gcsFaultToleranceOptions"]["redisPassword"]["valueFrom"]["secretKeyRef"] == {
        "name": "garden-redis",
        "key": "redis-password",
    }
    assert rayservice["spec"]["upgradeStrategy"]["type"] == "NewClusterWithIncrementalUpgrade"


def test_one_template_serves_any_number_of_models() -> None:
    templates = [p.name for p in (CHART / "templates").iterdir()]
    looping = [
        t
        for t in templates
        if "range $i, $m := .Values.models" in (CHART / "templates" / t).read_text()
    ]
    assert looping == ["rayservice.yaml"]
    values = load_values(CHART / "values.yaml")
    two = copy.deepcopy(values)
    two["models"] = [m for m in values["models"] if m["name"] in ("code", "generalist")]
    assert [o["kind"] for o in render_chart(two)] == [o["kind"] for o in render_chart(values)]


# -- bad values are rejected, with the key path and the constraint ----------------


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        (
            {"workerGroups": [{"name": "a", "maxReplicas": 2, "minReplicas": -1}]},
            "'/workerGroups/0/minReplicas': minimum: got -1, want 0",
        ),
        (
            {
                "models": [
                    {
                        "name": "g",
                        "role": "generalist",
                        "source": "x",
                        "autoscaling": {"max_replicas": -3},
                    }
                ]
            },
            "'/models/0/autoscaling/max_replicas': minimum: got -3, want 1",
        ),
        ({"bogus": 1}, "additional properties 'bogus' not allowed"),
        ({"router": {"prot": 8000}}, "at '/router': additional properties 'prot' not allowed"),
        (
            {"workerGroups": [{"name": "a", "maxReplicas": 2, "gpus": "1"}]},
            "'/workerGroups/0/gpus': got string, want integer",
        ),
        (
            {
                "models": [
                    {"name": "g", "role": "generalist", "source": "x", "resources": {"gpus": "1"}}
                ]
            },
            "'/models/0/resources/gpus': got string, want number",
        ),
        ({"upgradeStrategy": {"type": "Rolling"}}, "'/upgradeStrategy/type'"),
    ],
    ids=[
        "negative-worker-replicas",
        "negative-model-replicas",
        "unknown-key",
        "unknown-nested-key",
        "gpu-count-string",
        "model-gpus-string",
        "upgrade-enum",
    ],
)
def test_schema_rejects_bad_values(patch: dict[str, Any], expected: str) -> None:
    import helm_python

    with pytest.raises(
        helm_python.HelmValuesError, match="values don't meet the specifications"
    ) as err:
        render_chart(patch)
    assert expected in str(err.value)


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        ({"fullnameOverride": "a" * 48}, "has 48 characters; KubeRay allows at most 47"),
        ({"fullnameOverride": "Garden"}, "is not a DNS label"),
        (
            {
                "models": [
                    {
                        "name": "g",
                        "role": "generalist",
                        "source": "x",
                        "resources": {"gpus": 1, "accelerator_type": "H100"},
                    }
                ]
            },
            'models[0].resources.accelerator_type: no worker group has acceleratorType "H100"',
        ),
        (
            {
                "models": [
                    {"name": "g", "role": "generalist", "source": "x", "resources": {"gpus": 4}}
                ]
            },
            "models[0].resources.gpus: 4 GPUs per replica, but its worker groups have at most 1",
        ),
        (
            {"models": [{"name": "g", "role": "specialist", "domains": ["law"], "source": "x"}]},
            "models: exactly one generalist is needed, got []",
        ),
        (
            {"upgradeStrategy": {"type": "NewClusterWithIncrementalUpgrade"}},
            "upgradeStrategy.clusterUpgradeOptions: required",
        ),
        ({"gcsFaultTolerance": {"enabled": True}}, "gcsFaultTolerance.redisAddress: required"),
        ({"ingress": {"enabled": True, "tls": {"enabled": True}}}, "ingress.tls: TLS needs"),
        (
            {"workerGroups": [{"name": "a", "minReplicas": 3, "maxReplicas": 2}]},
            "workerGroups[0].minReplicas: 3 is above maxReplicas=2",
        ),
        (
            {"router": {"auth": {"api_keys_env": "GARDEN_API_KEYS"}}},
            'router.auth.api_keys_env: "GARDEN_API_KEYS" must come from the Secret named by '
            "apiKeys.existingSecret",
        ),
        (
            {"apiKeys": {"keysSecret": "named"}},
            'apiKeys.keysSecret: "named" is mounted at router.auth.keys_dir, which is not set',
        ),
        (
            {"apiKeys": {"existingSecret": "keys"}},
            "workerGroups: the API keys (apiKeys) reach only the router's pods",
        ),
        (
            {
                "apiKeys": {"existingSecret": "keys"},
                "workerGroups": [_L4, {"name": "router", "maxReplicas": 2, "router": True}],
            },
            "router.custom_resources: required with apiKeys",
        ),
        (
            {
                "apiKeys": {"existingSecret": "keys"},
                "router": {"custom_resources": {"garden_router": 1}},
                "workerGroups": [_L4, {"name": "router", "maxReplicas": 2, "router": True}],
            },
            'workerGroups[1].rayStartParams.resources: the router group "router" must offer '
            'router.custom_resources "garden_router"',
        ),
        (
            {
                "apiKeys": {"existingSecret": "keys"},
                "router": {"custom_resources": {"garden_router": 1}},
                "workerGroups": [
                    {**_L4, "rayStartParams": {"resources": _OFFER}},
                    {
                        "name": "router",
                        "maxReplicas": 2,
                        "router": True,
                        "rayStartParams": {"resources": _OFFER},
                    },
                ],
            },
            'workerGroups[0].rayStartParams.resources: "l4" offers the router\'s resource',
        ),
        (
            {"httpRoute": {"enabled": True}},
            "httpRoute.parentRefs: name at least one Gateway",
        ),
    ],
    ids=[
        "name-too-long",
        "name-not-dns",
        "no-accelerator-group",
        "too-few-gpus",
        "no-generalist",
        "incremental-without-options",
        "gcs-without-redis",
        "tls-without-host",
        "min-above-max",
        "api-keys-without-secret",
        "keys-secret-without-dir",
        "api-keys-without-router-group",
        "router-group-without-resource",
        "router-group-not-offering",
        "other-group-offering",
        "http-route-without-gateway",
    ],
)
def test_chart_fails_on_cross_key_problems(patch: dict[str, Any], expected: str) -> None:
    import helm_python

    with pytest.raises(helm_python.HelmRenderError) as err:
        render_chart(patch)
    assert expected in str(err.value)


def test_chart_files_exist() -> None:
    for name in (
        "Chart.yaml",
        "values.yaml",
        "values.schema.json",
        "README.md",
        "templates/NOTES.txt",
        "templates/_helpers.tpl",
    ):
        assert (CHART / name).is_file(), name
    assert Path(CHART / "dashboards" / "garden.json").is_file()


def test_notes_tell_clients_about_api_keys() -> None:
    import helm_python

    def notes(values: dict[str, Any] | None) -> str:
        with helm_python.Chart.load(CHART) as chart:
            rendered = chart.render(values, name="garden", namespace="ml", is_install=True)
        return next(text for path, text in rendered.items() if path.endswith("NOTES.txt"))

    assert "Authorization" not in notes(None)
    text = notes(CASES["gpu-full-values"])
    assert 'needs "Authorization: Bearer <key>", a key from GARDEN_API_KEYS' in text
    assert "Secret garden-api-keys" in text
