"""LoRA adapters (``models[].lora``): the config, Ray Serve LLM's LLMConfig, the chart, the router.

The LLMConfig checks build Ray's own ``LLMConfig`` (its validators run), and
the chart check renders the CI values with Helm and builds every model's
LLMConfig from the rendered ``serveConfigV2``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from cluster.config import GardenConfig, ModelSpec, load_config, parse_config
from tests._ingress import serve_router

pytestmark = pytest.mark.unit

LORA = {"dynamic_lora_loading_path": "s3://adapters/law", "max_lora_rank": 32, "max_loras": 2}


def _garden(data_dir: Path, lora: dict[str, Any] | None = LORA, **engine: Any) -> GardenConfig:
    data = load_config(None).model_dump(mode="json")
    data["data_dir"] = str(data_dir)
    data["router"]["classifier"]["options"] = {"semantic": False}
    law = next(m for m in data["models"] if m["name"] == "law")
    law["lora"] = lora
    law["engine"].update(engine)
    return GardenConfig.model_validate(data)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One data_dir for the module: the router's fitted classifier is cached there."""
    return tmp_path_factory.mktemp("garden-data")


# -- config -------------------------------------------------------------------------


def test_lora_is_off_by_default() -> None:
    assert all(m.lora is None for m in load_config(None).models)


@pytest.mark.parametrize(
    ("lora", "engine", "expected"),
    [
        ({"dynamic_lora_loading_path": "/data/adapters"}, {}, "/data/adapters"),
        ({"dynamic_lora_loading_path": "file:///x"}, {}, "file:///x"),
        ({**LORA, "max_lora_rank": 12}, {}, "max_lora_rank"),
        ({**LORA, "max_loras": 32}, {}, "max_loras=32 is above max_num_adapters_per_replica=16"),
        ({**LORA, "adapters": ["x"]}, {}, "adapters"),
        (LORA, {"enable_lora": True, "max_loras": 8}, "lora sets ['enable_lora', 'max_loras']"),
    ],
    ids=["local-path", "file-url", "rank", "batch-above-resident", "unknown-key", "engine-too"],
)
def test_bad_lora_names_the_key_and_value(
    data_dir: Path, lora: dict[str, Any], engine: dict[str, Any], expected: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        _garden(data_dir, lora, **engine)
    assert "models.1" in str(caught.value)
    assert expected in str(caught.value)


# -- Ray Serve LLM's LLMConfig --------------------------------------------------------


def _llm_config(garden: GardenConfig, spec: ModelSpec, monkeypatch: pytest.MonkeyPatch) -> Any:
    from deployments import model

    monkeypatch.setattr(model, "resolve_source", lambda _g, s: s.source or "org/name")
    return model.build_llm_config(garden, spec)


def test_lora_becomes_rays_lora_config_and_vllms_engine_args(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ray.serve.llm import LLMConfig

    garden = _garden(data_dir)
    config = _llm_config(garden, garden.model("law"), monkeypatch)
    assert isinstance(config, LLMConfig)  # Ray's own validators ran
    lora = config.lora_config
    assert lora.dynamic_lora_loading_path == "s3://adapters/law"
    assert lora.max_num_adapters_per_replica == 16
    assert (lora.download_timeout_s, lora.max_download_tries) == (30, 3)
    assert config.multiplex_config().max_num_models_per_replica == 16
    engine = config.engine_kwargs
    assert (engine["enable_lora"], engine["max_lora_rank"], engine["max_loras"]) == (True, 32, 2)
    assert engine["max_model_len"] == 2048  # the model's own engine args stay
    plain = _llm_config(garden, garden.model("code"), monkeypatch)
    assert plain.lora_config is None and "enable_lora" not in plain.engine_kwargs


def test_every_lora_field_is_a_field_of_rays_lora_config() -> None:
    from ray.llm._internal.serve.core.configs.llm_config import LoraConfig

    from cluster.config import LoraSpec

    spec = LoraSpec.model_validate(LORA)
    assert set(spec.lora_config()) <= set(LoraConfig.model_fields)
    LoraConfig.model_validate(spec.lora_config())


def test_the_chart_renders_lora_into_serve_config_as_ray_accepts_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests._kube import CHART, load_values, one, render_chart, serve_config_problems

    values = load_values(CHART / "ci" / "gpu-full-values.yaml")
    text = one(render_chart(values), "RayService")["spec"]["serveConfigV2"]
    assert serve_config_problems(text) == []
    (app,) = yaml.safe_load(text)["applications"]
    garden = parse_config(app["args"]["config"], source="serveConfigV2")
    with_lora = [m for m in garden.models if m.lora is not None]
    assert [m.name for m in with_lora] == ["law"]
    for spec in garden.models:
        config = _llm_config(garden, spec, monkeypatch)
        assert (config.lora_config is not None) == (spec.lora is not None)


# -- the router -------------------------------------------------------------------------


def test_the_router_sends_an_adapter_to_its_models_replicas_multiplexed(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with serve_router(_garden(data_dir), monkeypatch) as (http, handles):
        body = {"model": "law:contracts", "messages": [{"role": "user", "content": "Hi"}]}
        answer = http.post("/v1/chat/completions", json=body)
        assert answer.status_code == 200, answer.text
        assert answer.json()["model"] == "law:contracts"
        ((sent, options),) = handles["law"].sent
        assert sent["model"] == "law:contracts"
        assert options["multiplexed_model_id"] == "law:contracts"
        plain = http.post("/v1/chat/completions", json={**body, "model": "law"})
        assert plain.status_code == 200
        assert "multiplexed_model_id" not in handles["law"].sent[1][1]  # base: any replica


@pytest.mark.parametrize("model", ["code:contracts", "law:../finance", "law:", "nope:x"])
def test_adapters_only_of_lora_models_and_with_safe_names(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, model: str
) -> None:
    with serve_router(_garden(data_dir), monkeypatch) as (http, handles):
        body = {"model": model, "messages": [{"role": "user", "content": "Hi"}]}
        answer = http.post("/v1/chat/completions", json=body)
        assert answer.status_code == 404
        assert answer.json()["error"]["code"] == "model_not_found"
        assert all(not h.sent for h in handles.values())


# -- adapters that own domains ----------------------------------------------------------

TAX = [
    "How do I report capital gains tax on shares I sold this year?",
    "Which deductions can a sole proprietor claim on Schedule C?",
    "Is my home office deductible for income tax purposes?",
    "What is the VAT registration threshold for a small business?",
    "How is a tax-loss harvesting sale reported on form 8949?",
    "When is the deadline for quarterly estimated tax payments?",
    "income tax brackets married filing jointly",
    "Do I owe gift tax if I give my daughter $30,000?",
    "How are stock options taxed when I exercise them, ISO versus NSO?",
    "Can I amend last year's tax return to claim a missed credit?",
    "What triggers alternative minimum tax for a salaried employee?",
    "withholding tax on dividends for a foreign investor",
]
ADAPTER = {"name": "tax", "domains": ["tax"], "exemplars": TAX, "description": "Taxation."}


def _tax_garden(data_dir: Path, **adapter: Any) -> GardenConfig:
    return _garden(data_dir, {**LORA, "adapters": [{**ADAPTER, **adapter}]})


def test_an_adapter_owns_its_domains_and_teaches_the_router(data_dir: Path) -> None:
    from router.classify import training_rows
    from router.virtual import virtual_policies

    garden = _tax_garden(data_dir)
    assert garden.domain_owners()["tax"] == "law:tax"
    assert garden.domain_owners()["law"] == "law"
    policy = virtual_policies(garden)["auto"]
    assert policy.owners["tax"] == "law:tax"
    assert policy.capabilities["law:tax"] == policy.capabilities["law"]
    rows, labels = training_rows(garden)
    taught = [r.text for r, label in zip(rows, labels, strict=True) if label == "tax"]
    assert taught == [*TAX, "Taxation."]


@pytest.mark.parametrize(
    ("adapter", "expected"),
    [
        ({"domains": ["law"]}, "domain 'law' is claimed by both 'law' and 'law:tax'"),
        ({"domains": []}, "domains"),
        ({"exemplars": [], "description": ""}, "gives the router nothing to learn them from"),
        ({"name": "../x"}, "name"),
    ],
)
def test_bad_adapters_name_the_key_and_value(
    data_dir: Path, adapter: dict[str, Any], expected: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        _tax_garden(data_dir, **adapter)
    assert expected in str(caught.value)


def test_thresholds_may_name_an_adapters_domain(data_dir: Path) -> None:
    garden = _tax_garden(data_dir)
    data = garden.model_dump(mode="json")
    data["router"]["thresholds"]["tax"] = 0.8
    assert GardenConfig.model_validate(data).router.thresholds["tax"] == 0.8


def test_an_adapter_exemplars_file_is_read_relative_to_the_config(tmp_path: Path) -> None:
    from cluster.exceptions import ConfigError

    (tmp_path / "tax.jsonl").write_text('{"text": "How is VAT charged?", "source": "q"}\n')
    data = load_config(None).model_dump(mode="json")
    law = next(m for m in data["models"] if m["name"] == "law")
    law["lora"] = {**LORA, "adapters": [{"name": "tax", "domains": ["tax"],
                                         "exemplars_file": "tax.jsonl"}]}  # fmt: skip
    path = tmp_path / "garden.yaml"
    path.write_text(yaml.safe_dump(data))
    adapter = load_config(str(path)).model("law").lora.adapters[0]  # type: ignore[union-attr]
    assert adapter.exemplars_file == str(tmp_path / "tax.jsonl")
    (tmp_path / "tax.jsonl").write_text('{"text": ""}\n')
    with pytest.raises(ConfigError) as caught:
        load_config(str(path))
    assert caught.value.problems[0].startswith("models[1].lora.adapters[0].exemplars_file: ")


def test_auto_routes_an_adapters_domain_to_the_adapter_on_its_base_model(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with serve_router(_tax_garden(data_dir), monkeypatch) as (http, handles):
        question = "How are stock options taxed when I exercise them, and what about AMT?"
        body = {"model": "auto", "messages": [{"role": "user", "content": question}]}
        answer = http.post("/v1/chat/completions", json=body)
        assert answer.status_code == 200, answer.text
        assert answer.headers["x-garden-model"] == "law:tax"
        assert answer.headers["x-garden-domain"] == "tax"
        assert answer.json()["model"] == "law:tax"
        ((sent, options),) = handles["law"].sent
        assert sent["model"] == "law:tax" and options["multiplexed_model_id"] == "law:tax"


def test_the_generalists_adapters_cannot_own_domains(data_dir: Path) -> None:
    data = load_config(None).model_dump(mode="json")
    generalist = next(m for m in data["models"] if m["role"] == "generalist")
    generalist["lora"] = {**LORA, "adapters": [ADAPTER]}
    with pytest.raises(ValidationError) as caught:
        GardenConfig.model_validate(data)
    assert "every domain's fallback: its adapters cannot own domains" in str(caught.value)
