"""The API listener's one route table, and unknown paths answered in the caller's protocol
(in-process aiohttp test server: no socket to an upstream, no config needed)."""

from __future__ import annotations

from collections import Counter

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from switchyard.sidecar.app import build_api_app
from switchyard.sidecar.http import routes
from switchyard.sidecar.state import Runtime

DOCUMENTED = {
    ("POST", "/v1/chat/completions"),
    ("POST", "/chat/completions"),
    ("POST", "/v1/responses"),
    ("POST", "/responses"),
    ("POST", "/v1/messages"),
    ("POST", "/v1/messages/count_tokens"),
    ("POST", "/v1/embeddings"),
    ("POST", "/embeddings"),
    ("POST", "/v1beta/models/{name:.+}"),
    ("POST", "/v1/models/{name:.+}"),
    ("POST", "/v1alpha/models/{name:.+}"),
    ("GET", "/v1/models"),
    ("GET", "/v1beta/models"),
    ("GET", "/"),
}


def table() -> list[tuple[str, str]]:
    return [(r.method, r.path) for r in routes.api_routes()]


def test_every_documented_path_is_in_the_table_once() -> None:
    counts = Counter(table())
    assert DOCUMENTED <= set(counts), DOCUMENTED - set(counts)
    assert all(n == 1 for n in counts.values()), [k for k, n in counts.items() if n > 1]


def test_building_the_table_twice_gives_the_same_table() -> None:
    assert table() == table(), "nothing is registered as a side effect"


@pytest.fixture
async def client() -> TestClient:
    app = build_api_app(Runtime())
    async with TestClient(TestServer(app)) as c:
        yield c


@pytest.mark.parametrize(
    ("path", "protocol"),
    [
        ("/v1/nope", "openai-chat"),
        ("/v1/messages/nope", "anthropic-messages"),
        ("/v1beta/nope", "gemini"),
        ("/v1/responses/x/y/z", "openai-responses"),
    ],
)
async def test_an_unknown_path_is_answered_in_the_protocol_of_its_prefix(client: TestClient, path: str, protocol: str) -> None:
    r = await client.post(path, data=b"{}", headers={"Content-Type": "application/json"})
    body = orjson.loads(await r.read())
    assert r.status == 404
    if protocol == "anthropic-messages":
        assert body["type"] == "error" and body["error"]["type"] == "not_found_error"
    elif protocol == "gemini":
        assert body["error"]["status"] == "NOT_FOUND" and body["error"]["code"] == 404
    else:
        assert body["error"]["code"] == "unknown_route"


async def test_a_wrong_method_is_a_405_in_the_protocol(client: TestClient) -> None:
    r = await client.get("/v1/messages")
    assert r.status == 405 and orjson.loads(await r.read())["type"] == "error"


async def test_before_any_config_every_protocol_gets_a_retryable_503(client: TestClient) -> None:
    r = await client.post("/v1/messages/count_tokens", json={"model": "a", "messages": []})
    assert r.status == 503 and r.headers["Retry-After"] == "5"
    assert orjson.loads(await r.read())["error"]["type"] == "api_error"
    r = await client.post("/v1beta/models/a:countTokens", json={"contents": []})
    assert r.status == 503 and orjson.loads(await r.read())["error"]["status"] == "UNAVAILABLE"
    r = await client.post("/v1/chat/completions", json={"model": "a", "messages": []})
    assert r.status == 503 and orjson.loads(await r.read())["error"]["code"] == "not_configured"


async def test_a_wrong_method_on_a_gemini_path_is_a_405_in_geminis_shape(client: TestClient) -> None:
    r = await client.post("/v1beta/models", data=b"{}", headers={"Content-Type": "application/json"})
    body = orjson.loads(await r.read())
    assert r.status == 405 and body["error"]["code"] == 405


@pytest.mark.parametrize("path", ["/v1/nope", "/v1/messages"])  # unknown path; known path, wrong method
async def test_the_browser_guard_stands_before_unknown_routes_too(client: TestClient, path: str) -> None:
    r = await client.get(path, headers={"Host": "attacker.example"})
    assert r.status == 421


async def test_a_handler_bug_is_a_500_in_the_callers_protocol_without_the_traceback(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(request):  # type: ignore[no-untyped-def]
        raise KeyError("secret-internal-detail")

    monkeypatch.setattr(routes.api, "messages_count_tokens", broken)
    async with TestClient(TestServer(build_api_app(Runtime()))) as c:
        r = await c.post("/v1/messages/count_tokens", json={"model": "a", "messages": []})
        raw = await r.read()
    body = orjson.loads(raw)
    assert r.status == 500 and body["type"] == "error" and body["error"]["type"] == "api_error"
    assert b"secret-internal-detail" not in raw and b"Traceback" not in raw
    assert "secret-internal-detail" in caplog.text  # logged for the operator


def test_the_api_listener_runs_no_middleware() -> None:
    """aiohttp builds a middleware chain per request; the API's routes wrap their handlers
    once instead (issue 18)."""
    assert not build_api_app(Runtime()).middlewares
