"""Simulator inputs: trace readers, service profiles and the domain mix (pure, no replay)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autoscaling.profile import Profile
from autoscaling.simulate import (
    ProfileError,
    TraceError,
    capacity_at_slo,
    load_profiles,
    parse_mix,
    read_trace,
)
from autoscaling.simulate._mix import assign_domains, validate_mix
from cluster.config import load_config

pytestmark = pytest.mark.unit

AZURE_HEADER = "TIMESTAMP,ContextTokens,GeneratedTokens\n"


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_azure_rows_become_seconds_since_the_first(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "t.csv",
        AZURE_HEADER + "2023-11-16 18:17:03.9799600,4808,10\n"
        "2023-11-16 18:17:04.0319600,3180,8\n"
        "\n"
        "2023-11-16 18:18:03.9799601,110,27\n",
    )
    reqs = read_trace(path, "azure")
    assert [(r.input_tokens, r.output_tokens) for r in reqs] == [(4808, 10), (3180, 8), (110, 27)]
    assert reqs[0].arrival_s == 0.0
    assert reqs[1].arrival_s == pytest.approx(0.052, abs=1e-9)
    assert reqs[2].arrival_s == pytest.approx(60.0000001, abs=1e-9)  # 100 ns kept


@pytest.mark.parametrize(
    ("row", "needle"),
    [
        ("2023-11-16 18:17:04,12,x", "GeneratedTokens must be a non-negative integer, got 'x'"),
        ("2023-11-16 18:17:04,-3,1", "ContextTokens must be a non-negative integer, got '-3'"),
        ("16/11/2023 18:17,1,1", "TIMESTAMP must look like"),
        ("2023-02-30 18:17:04,1,1", "is not a date"),
        ("2023-11-16 18:17:04,1", "expected 3 fields, got 2"),
    ],
)
def test_azure_malformed_rows_name_file_line_and_value(
    tmp_path: Path, row: str, needle: str
) -> None:
    path = _write(tmp_path, "bad.csv", AZURE_HEADER + "2023-11-16 18:17:03,1,1\n" + row + "\n")
    with pytest.raises(TraceError, match=f"^{path}:3: ") as err:
        read_trace(path, "azure")
    assert needle in str(err.value)


def test_azure_header_must_name_the_columns(tmp_path: Path) -> None:
    path = _write(tmp_path, "h.csv", "time,in,out\n2023-11-16 18:17:03,1,1\n")
    with pytest.raises(TraceError, match=r":1: header .* lacks the columns \['TIMESTAMP'"):
        read_trace(path, "azure")


def test_mooncake_rows_use_millisecond_timestamps(tmp_path: Path) -> None:
    rows = [
        {"timestamp": 250, "input_length": 900, "output_length": 5, "hash_ids": [1, 2]},
        {"timestamp": 0, "input_length": 100, "output_length": 3, "hash_ids": []},
    ]
    path = _write(tmp_path, "m.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n")
    reqs = read_trace(path, "mooncake")
    assert [(r.arrival_s, r.input_tokens, r.output_tokens) for r in reqs] == [
        (0.0, 100, 3),
        (0.25, 900, 5),
    ]


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        ("{not json", "not JSON"),
        ('{"timestamp": 1, "input_length": 3}', "missing ['output_length']"),
        ('{"timestamp": 1, "input_length": 3, "output_length": "x"}', "got 'x'"),
        ('{"timestamp": 1, "input_length": true, "output_length": 2}', "got True"),
        ('{"timestamp": -5, "input_length": 3, "output_length": 2}', "timestamp must be ms"),
        ('{"timestamp": 1, "input_length": 3, "output_length": 2, "hash_ids": 7}', "hash_ids"),
        ("[1, 2]", "expected a JSON object"),
    ],
)
def test_mooncake_malformed_rows_name_file_line_and_value(
    tmp_path: Path, line: str, needle: str
) -> None:
    good = '{"timestamp": 0, "input_length": 1, "output_length": 1}'
    path = _write(tmp_path, "bad.jsonl", good + "\n" + line + "\n")
    with pytest.raises(TraceError, match=f"^{path}:2: ") as err:
        read_trace(path, "mooncake")
    assert needle in str(err.value)


def test_an_empty_trace_and_an_unknown_format_are_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no request"):
        read_trace(_write(tmp_path, "e.csv", AZURE_HEADER), "azure")
    with pytest.raises(ValueError, match="unknown trace format"):
        read_trace(_write(tmp_path, "x.csv", AZURE_HEADER), "sharegpt")  # type: ignore[arg-type]


def _profile(**extra: object) -> Profile:
    data: dict[str, object] = {
        "max_batch": 32,
        "prefill_tokens_per_s": 10_000,
        "decode_tokens_per_s_at_batch": {1: 80, 8: 60, 32: 30},
        "cold_start_s": 60,
    }
    return Profile.model_validate({**data, **extra})


def test_decode_rate_is_interpolated_and_saturates_past_the_last_batch() -> None:
    p = _profile()
    assert p.decode_rate(1) == 80
    assert p.decode_rate(4) == pytest.approx(80 - 20 * 3 / 7)
    assert p.decode_rate(32) == 30
    assert p.decode_rate(64) * 64 == pytest.approx(30 * 32)  # total throughput flat


def test_the_shipped_profiles_cover_the_default_garden() -> None:
    profiles = load_profiles(None)
    for model in load_config(None).chat_models:
        assert profiles.for_model(model.name).prefill_tokens_per_s > 0


def test_profile_errors_name_the_file_and_key(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "p.yaml",
        "models:\n  law: {max_batch: 0, prefill_tokens_per_s: 1,"
        " decode_tokens_per_s_at_batch: {1: 5}, cold_start_s: 1}\n",
    )
    with pytest.raises(ProfileError, match=r"p\.yaml: models\.law\.max_batch: .*got 0"):
        load_profiles(path)
    with pytest.raises(ProfileError, match="no profile for model 'code'"):
        load_profiles(_write(tmp_path, "q.json", '{"models": {}}')).for_model("code")


def test_capacity_at_slo_grows_with_the_slo_within_bounds() -> None:
    p = _profile()
    tight = capacity_at_slo(p, 0.3, 1000, 50)
    loose = capacity_at_slo(p, 3.0, 1000, 50)
    assert 1.0 <= tight < loose <= p.max_batch
    assert capacity_at_slo(p, 0.05, 1000, 50) == 1.0  # the prompt alone misses the SLO


def test_mix_parsing_validation_and_seeded_draws() -> None:
    garden = load_config(None)
    assert parse_mix("law=2, code=1") == {"law": 2.0, "code": 1.0}
    with pytest.raises(ValueError, match="'law' is not DOMAIN=WEIGHT"):
        parse_mix("law")
    with pytest.raises(ValueError, match="unknown domains \\['astrology'\\]"):
        validate_mix({"astrology": 1.0}, garden)
    mix = validate_mix({"law": 1.0, "code": 0.0, "general": 3.0}, garden)
    draws = assign_domains(2000, mix, seed=7)
    assert draws == assign_domains(2000, mix, seed=7)
    assert "code" not in draws
    assert 0.2 < draws.count("law") / len(draws) < 0.3
