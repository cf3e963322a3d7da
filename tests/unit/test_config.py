"""The garden config: strict, path-precise errors, and the embedded default."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from cluster.config import GardenConfig, default_config_text, load_config, parse_config
from cluster.exceptions import ConfigError

pytestmark = pytest.mark.unit


def _default() -> dict[str, Any]:
    data = yaml.safe_load(default_config_text())
    assert isinstance(data, dict)
    # YAML aliases share objects between models; a JSON round trip unshares them.
    return dict(json.loads(json.dumps(data)))


def _problems(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    return info.value.problems


def test_embedded_default_has_five_chat_models_and_an_embedder() -> None:
    cfg = load_config(None)
    names = ["medicine", "law", "finance", "code", "generalist", "embedder"]
    assert [m.name for m in cfg.models] == names
    assert [m.name for m in cfg.chat_models] == names[:-1]
    assert [m.name for m in cfg.embedders] == ["embedder"]
    assert cfg.model("embedder").engine_kwargs()["runner"] == "pooling"
    # Tool calling is on in every chat model (vLLM's pythonic parser).
    assert {m.engine.get("tool_call_parser") for m in cfg.chat_models} == {"pythonic"}
    assert cfg.generalist.name == "generalist"
    assert {d for m in cfg.specialists for d in m.domains} == {"medicine", "law", "finance", "code"}


def test_generalist_is_larger_and_costs_more_than_specialists() -> None:
    cfg = load_config(None)
    g = cfg.generalist
    assert g.tiny is not None
    for s in cfg.specialists:
        assert s.tiny is not None
        assert g.tiny.hidden_size * g.tiny.num_layers > s.tiny.hidden_size * s.tiny.num_layers
        assert g.cost_per_hour > s.cost_per_hour


def test_unknown_key_names_its_path() -> None:
    data = _default()
    data["models"][2]["autoscaling"]["max_replicaz"] = 3
    assert _problems(data) == ["models[2].autoscaling.max_replicaz: unknown key"]


def test_bad_value_echoes_path_and_value() -> None:
    data = _default()
    data["models"][1]["autoscaling"]["min_replicas"] = -1
    (line,) = _problems(data)
    assert line.startswith("models[1].autoscaling.min_replicas:")
    assert "(got -1)" in line


def test_wrong_type_is_rejected_with_value() -> None:
    data = _default()
    data["router"]["port"] = "eighty"
    (line,) = _problems(data)
    assert line.startswith("router.port:") and "'eighty'" in line


@pytest.mark.parametrize(
    ("mutate", "expect"),
    [
        (lambda d: d["models"].pop(-2), "exactly one generalist"),
        (lambda d: d["models"][-1].update(domains=["x"]), "takes no ['domains']"),
        (lambda d: d["models"][-1].update(exemplars=["hi"]), "takes no ['exemplars']"),
        (
            lambda d: d["models"][-1]["engine"].update(runner="generate"),
            "engine.runner='generate'",
        ),
        (
            lambda d: d["models"][-1]["autoscaling"].update(policy="garden"),
            "autoscales with Ray's queue-length policy",
        ),
        (lambda d: d["models"][0].update(name="auto"), "router.virtual_models names"),
        (
            lambda d: d["router"].update(virtual_models=[{"name": "a"}, {"name": "a"}]),
            "repeated: ['a']",
        ),
        (
            lambda d: d["router"].update(virtual_models=[{"name": "a", "thresholds": {"x": 1}}]),
            "no specialist owns: ['x']",
        ),
        (
            lambda d: d["router"].update(classifier={"import_path": "no-colon"}),
            "router.classifier.import_path",
        ),
        (lambda d: d["router"].update(first_token_deadline_ms=0), "first_token_deadline_ms"),
        (
            lambda d: d["models"][4].update(autoscaling={"min_replicas": 0, "max_replicas": 2}),
            "cannot scale to zero",
        ),
        (lambda d: d["models"][1].update(name="medicine"), "unique"),
        (lambda d: d["models"][1].update(domains=["medicine"]), "claimed by both"),
        (lambda d: d["models"][0].update(domains=[]), "needs at least one domain"),
        (lambda d: d["models"][4].update(domains=["x"]), "takes every domain"),
        (lambda d: d["models"][0]["tiny"].update(hidden_size=96), "multiple of 64"),
        (
            lambda d: d["models"][0].update(autoscaling={"min_replicas": 3, "max_replicas": 2}),
            "above max_replicas",
        ),
        (lambda d: d["models"][0].update(engine={"model": "x"}), "may not set"),
        (
            lambda d: d["models"][0].update(resources={"cpus": 1, "accelerator_type": "L4"}),
            "needs gpus > 0",
        ),
        (lambda d: d["models"][0].update(name="Bad_Name"), "models[0].name"),
        (lambda d: d.update(budget={"max_cost_per_hour": 0.5}), "below the cost"),
        (
            lambda d: (
                d.update(budget={"max_cost_per_hour": 9}),
                d["models"][2]["autoscaling"].update(policy="ray-default"),
            ),
            "models[2] (finance) autoscale with 'ray-default'",
        ),
        (lambda d: d["models"][0]["autoscaling"].update(policy="ray"), "'garden' or 'ray-default'"),
    ],
)
def test_invalid_shapes(mutate: Any, expect: str) -> None:
    data = _default()
    mutate(data)
    assert any(expect in p for p in _problems(data)), _problems(data)


def test_a_model_may_name_its_own_policy() -> None:
    data = _default()
    data["autoscaling"]["policy"] = "ray-default"
    data["models"][1]["autoscaling"].update(policy="garden", min_replicas=0)
    cfg = parse_config(data)
    assert [cfg.policy_of(m) for m in cfg.models] == ["ray-default", "garden"] + ["ray-default"] * 4


def test_yaml_syntax_error_gives_line(tmp_path: Path) -> None:
    bad = tmp_path / "garden.yaml"
    bad.write_text("models:\n  - name: [unclosed\n")
    with pytest.raises(ConfigError) as info:
        load_config(bad)
    assert "line" in info.value.problems[0]


def test_relative_source_resolves_against_config_file(tmp_path: Path) -> None:
    data = _default()
    data["models"][0].pop("tiny")
    data["models"][0]["source"] = "./ckpt/medicine"
    path = tmp_path / "garden.yaml"
    path.write_text(yaml.safe_dump(data))
    cfg = load_config(path)
    assert cfg.models[0].source == str(tmp_path / "ckpt" / "medicine")


def test_schema_is_json_and_documents_every_field() -> None:
    schema = GardenConfig.model_json_schema()
    json.dumps(schema)
    undocumented = [
        f"{name}.{field}"
        for name, model in schema["$defs"].items()
        for field, spec in model.get("properties", {}).items()
        if "description" not in spec
    ]
    assert undocumented == []
    assert schema["additionalProperties"] is False


def test_data_dir_expands_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GARDEN_DATA_DIR", str(tmp_path))
    assert load_config(None).data_path() == tmp_path


def test_an_embedder_runs_rays_policy_and_a_budget_still_validates() -> None:
    data = _default()
    data["budget"] = {"max_cost_per_hour": 10.0}
    cfg = parse_config(data)
    assert cfg.policy_of(cfg.model("embedder")) == "ray-default"
    assert cfg.policy_of(cfg.model("law")) == "garden"
