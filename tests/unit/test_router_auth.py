"""API keys (``router.auth``): the check itself, the config, and the ingress through ``openai``.

The ingress tests run the router's real FastAPI app (the routes Ray Serve's
``@serve.ingress`` built, its error handlers, ``Router.__init__`` reading the
environment) in-process, with the official ``openai`` client on top. Only
Serve's replica context and the model replicas are stand-ins.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from pydantic import ValidationError
from starlette.testclient import TestClient

from cluster.app import router_env
from cluster.config import AuthSpec, GardenConfig, load_config
from cluster.exceptions import AuthenticationError, ConfigError
from router.auth import ApiKeyCheck, api_key_check, parse_api_keys
from tests._ingress import FakeHandle, FakeMetrics, router_class, serve_router

pytestmark = pytest.mark.unit

KEYS_ENV = "GARDEN_TEST_API_KEYS"
KEYS = ("sk-garden-one", "sk-garden-two")

# -- the check --------------------------------------------------------------------


def test_keys_are_a_comma_separated_list() -> None:
    assert parse_api_keys(" a, b ,,c ,") == ("a", "b", "c")
    assert parse_api_keys(" , ") == ()


@pytest.mark.parametrize("key", KEYS)
def test_any_configured_key_passes(key: str) -> None:
    ApiKeyCheck(KEYS).check(f"Bearer {key}")
    ApiKeyCheck(KEYS).check(f"bearer  {key} ")  # the scheme is case-insensitive


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (None, "You didn't provide an API key"),
        ("", "You didn't provide an API key"),
        ("Bearer ", "You didn't provide an API key"),
        (f"Basic {KEYS[0]}", "You didn't provide an API key"),
        (KEYS[0], "You didn't provide an API key"),
        ("Bearer sk-garden-three", "Incorrect API key provided"),
        (f"Bearer {KEYS[0]}x", "Incorrect API key provided"),
        ("Bearer sk-gärden", "Incorrect API key provided"),
    ],
)
def test_other_headers_get_openais_401(header: str | None, message: str) -> None:
    with pytest.raises(AuthenticationError, match=message) as caught:
        ApiKeyCheck(KEYS).check(header)
    assert caught.value.status_code == 401
    assert caught.value.to_body() == {
        "error": {
            "message": caught.value.message,
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_api_key",
        }
    }
    assert KEYS[0] not in caught.value.message  # never echoes a key


def test_no_auth_lets_everything_through() -> None:
    check = api_key_check(AuthSpec(), {})
    assert not check.enabled
    check.check(None)


def test_keys_come_from_the_named_variable() -> None:
    check = api_key_check(AuthSpec(api_keys_env=KEYS_ENV), {KEYS_ENV: ",".join(KEYS)})
    assert check.enabled
    check.check(f"Bearer {KEYS[1]}")


@pytest.mark.parametrize(("environ", "state"), [({}, "is not set"), ({KEYS_ENV: " , "}, "empty")])
def test_a_configured_variable_without_keys_fails_the_start(
    environ: dict[str, str], state: str
) -> None:
    with pytest.raises(ConfigError, match=rf"router.auth.api_keys_env: .*{KEYS_ENV}.* {state}"):
        api_key_check(AuthSpec(api_keys_env=KEYS_ENV), environ)


# -- the config and garden up -----------------------------------------------------


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One data_dir for the module: the router's fitted classifier is cached there."""
    return tmp_path_factory.mktemp("garden-data")


def _garden(data_dir: Path, **auth: Any) -> GardenConfig:
    data = load_config(None).model_dump(mode="json")
    data["data_dir"] = str(data_dir)
    data["router"]["auth"] = auth
    data["router"]["classifier"]["options"] = {"semantic": False}
    return GardenConfig.model_validate(data)


def test_auth_is_off_by_default() -> None:
    assert load_config(None).router.auth.api_keys_env is None


@pytest.mark.parametrize(
    ("auth", "expected"),
    [
        ({"api_keys_env": "1KEYS"}, "String should match pattern"),
        ({"api_keys_env": "MY-KEYS"}, "MY-KEYS"),
        ({"api_keys": ["sk-1"]}, "api_keys"),
    ],
)
def test_bad_auth_config_names_the_key_and_value(
    data_dir: Path, auth: dict[str, Any], expected: str
) -> None:
    with pytest.raises(ValidationError, match=r"router\.auth") as caught:
        _garden(data_dir, **auth)
    assert expected in str(caught.value)


def test_garden_up_hands_the_drivers_keys_to_the_router(data_dir: Path) -> None:
    garden = _garden(data_dir, api_keys_env=KEYS_ENV)
    assert router_env(garden, {KEYS_ENV: "sk-a,sk-b", "OTHER": "x"}) == {KEYS_ENV: "sk-a,sk-b"}
    assert router_env(_garden(data_dir), {KEYS_ENV: "sk-a"}) == {}
    with pytest.raises(ConfigError, match=KEYS_ENV):
        router_env(garden, {})


def test_the_router_replica_gets_the_keys_in_its_runtime_env(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cluster import app as app_module
    from cluster.app import build_app

    garden = _garden(data_dir, api_keys_env=KEYS_ENV)
    # Ray Serve LLM's builder would start (or join) a Ray cluster: models are stand-ins here.
    monkeypatch.setattr(app_module, "_model_deployment", lambda _g, spec, _held: spec.name)
    app = build_app(garden, env={KEYS_ENV: "sk-a"})
    options = app._bound_deployment.ray_actor_options
    assert options["runtime_env"] == {"env_vars": {KEYS_ENV: "sk-a"}}
    assert "runtime_env" not in build_app(garden)._bound_deployment.ray_actor_options


# -- the ingress, through the official client ------------------------------------


@pytest.fixture
def ingress(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[TestClient, dict[str, FakeHandle]]]:
    """The router's app, served in-process by a Router with router.auth set."""
    monkeypatch.setenv(KEYS_ENV, ",".join(KEYS))
    with serve_router(_garden(data_dir, api_keys_env=KEYS_ENV), monkeypatch) as served:
        yield served


def _client(http: TestClient, key: str) -> openai.OpenAI:
    return openai.OpenAI(
        base_url="http://testserver/v1", api_key=key, http_client=http, max_retries=0
    )


MESSAGES: Any = [{"role": "user", "content": "What is a tort?"}]


def test_a_known_key_is_served(ingress: tuple[TestClient, dict[str, FakeHandle]]) -> None:
    http, handles = ingress
    client = _client(http, KEYS[1])
    assert [m.id for m in client.models.list().data][:2] == ["auto", "auto-strict"]
    assert client.models.retrieve("law").id == "law"
    reply = client.chat.completions.create(model="law", messages=MESSAGES, max_tokens=4)
    assert reply.choices[0].message.content == "hi"
    assert handles["law"].sent[0][0]["model"] == "law"


@pytest.mark.parametrize("key", ["sk-wrong", " "], ids=["wrong", "blank"])
def test_every_route_refuses_a_wrong_or_missing_key(
    ingress: tuple[TestClient, dict[str, FakeHandle]], key: str
) -> None:
    http, handles = ingress
    client = _client(http, key)
    calls = {
        "models.list": lambda: client.models.list(),
        "models.retrieve": lambda: client.models.retrieve("law"),
        "chat": lambda: client.chat.completions.create(model="law", messages=MESSAGES),
        "completions": lambda: client.completions.create(model="law", prompt="x"),
    }
    for name, call in calls.items():
        with pytest.raises(openai.AuthenticationError) as caught:
            call()
        assert caught.value.status_code == 401, name
        assert caught.value.code == "invalid_api_key", name
        assert caught.value.body == {  # OpenAI's error shape, parsed by its own client
            "message": caught.value.body["message"],  # type: ignore[index]
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_api_key",
        }
    assert all(not h.sent for h in handles.values())  # nothing reached a model


def test_the_check_covers_every_v1_route(ingress: tuple[TestClient, dict[str, FakeHandle]]) -> None:
    from router.ingress import app

    http, _ = ingress
    routes = [(r.path, m) for r in app.routes for m in getattr(r, "methods", ()) or ()]
    v1 = [(path, method) for path, method in routes if path.startswith("/v1/")]
    assert len(v1) >= 4
    for path, method in v1:
        answer = http.request(method, path.replace("{model_id}", "law"), json={"model": "law"})
        assert answer.status_code == 401, (method, path)
        assert answer.json()["error"]["code"] == "invalid_api_key"


def test_a_router_without_its_keys_does_not_start(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    garden = _garden(data_dir, api_keys_env=KEYS_ENV)
    monkeypatch.delenv(KEYS_ENV, raising=False)
    handles = {m.name: FakeHandle() for m in garden.models}
    with pytest.raises(ConfigError, match=KEYS_ENV):
        router_class()(handles, garden.model_dump(mode="json"), metrics=FakeMetrics())


def test_the_check_names_the_key() -> None:
    check = ApiKeyCheck({"sk-a": "alice", "sk-b": "bob"})
    assert check.check("Bearer sk-b") == "bob"
    assert ApiKeyCheck(KEYS).check(f"Bearer {KEYS[0]}") == "default"
    assert ApiKeyCheck(None).check(None) is None


def test_every_named_key_needs_its_secret(tmp_path: Path) -> None:
    spec = AuthSpec(
        keys_dir=str(tmp_path),
        keys=[{"name": "alice", "secret_env": "A_KEY"}, {"name": "bob"}],  # type: ignore[list-item]
    )
    with pytest.raises(ConfigError) as failed:
        api_key_check(spec, {})
    text = str(failed.value)
    assert "router.auth.keys[0].secret_env" in text and "'A_KEY'" in text
    assert "router.auth.keys[1] ('bob')" in text
    (tmp_path / "bob").write_text("sk-bob\n")
    (tmp_path / "carol").write_text("sk-carol")  # a key the config does not name
    check = api_key_check(spec, {"A_KEY": "sk-alice"})
    assert check.names == {"alice", "bob", "carol"}
    assert check.check("Bearer sk-bob") == "bob"


def test_named_keys_need_a_secret_source() -> None:
    with pytest.raises(ValidationError, match="keys_dir is not set"):
        AuthSpec(keys=[{"name": "alice"}])  # type: ignore[list-item]
    with pytest.raises(ValidationError, match="reserved"):
        AuthSpec(keys=[{"name": "default", "secret_env": "X"}])  # type: ignore[list-item]
