"""From a measured batching curve to the simulator's profile (pure; no garden)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from autoscaling.simulate import Profile, load_profiles
from cluster.cli import _profile  # noqa: F401  (registers the command)
from cluster.cli._main import cli
from loadtest.bench.batching import Sample, _point, to_profile

pytestmark = pytest.mark.unit


def _samples(ttft_s: float, decode_s: float, n: int) -> list[Sample]:
    return [Sample(ttft_s, decode_s, prompt_tokens=500, completion_tokens=33)] * n


def test_a_point_summarises_its_requests() -> None:
    point = _point(2, _samples(0.25, 0.5, 4), wall_s=2.0)
    assert point.requests == 4 and point.prompt_tokens == 500
    assert point.ttft_p50_ms == pytest.approx(250)
    assert point.decode_tokens_per_s == pytest.approx(64)  # 32 tokens after the first / 0.5 s
    assert point.output_tokens_per_s == pytest.approx(66)  # 4 x 33 tokens / 2 s
    assert point.prefill_tokens_per_s == pytest.approx(2000)


def test_the_profile_takes_prefill_from_the_lowest_concurrency() -> None:
    curve = [
        _point(4, _samples(1.0, 1.0, 4), wall_s=2.0),
        _point(1, _samples(0.1, 0.4, 2), wall_s=1.0),
    ]
    profile = to_profile(curve, max_batch=32, cold_start_s=41.26, kv_cache_tokens=65536)
    assert profile["prefill_tokens_per_s"] == 5000
    assert profile["decode_tokens_per_s_at_batch"] == {4: 32.0, 1: 80.0}
    loaded = Profile.model_validate(profile)  # what `garden simulate --profile` reads
    assert loaded.decode_rate(1) == 80 and loaded.cold_start_s == 41.3
    assert loaded.kv_cache_tokens == 65536


def test_an_empty_curve_has_no_profile() -> None:
    with pytest.raises(ValueError, match="empty curve"):
        to_profile([], max_batch=8, cold_start_s=1.0)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--concurrency", "1,x"], "comma-separated integers"),
        (["--model", "astrology"], "no such model"),
    ],
)
def test_bad_profile_options_are_named(args: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, ["profile", *args])
    assert result.exit_code == 2
    assert message in result.output


def test_the_shipped_measured_profile_covers_the_default_garden() -> None:
    from importlib import resources

    from cluster.config import load_config

    path = resources.files("autoscaling").joinpath("profiles", "cpu-tiny.yaml")
    profiles = load_profiles(str(path))
    for spec in load_config(None).chat_models:
        assert profiles.for_model(spec.name).decode_rate(1) > 0
