"""List-models requests and answers per provider, and the credential verdict (pure)."""

from __future__ import annotations

import json

import pytest

from switchyard.operator.catalog import Outcome, normalise, not_checked, parse_page, request_for


@pytest.mark.parametrize(
    "provider, base, url, header",
    [
        ("openai", "https://api.openai.com/v1", "https://api.openai.com/v1/models", ("Authorization", "Bearer k")),
        ("openrouter", "https://openrouter.ai/api/v1/", "https://openrouter.ai/api/v1/models", ("Authorization", "Bearer k")),
        ("openai-compatible", "http://ollama:11434/v1", "http://ollama:11434/v1/models", ("Authorization", "Bearer k")),
        ("anthropic", "https://api.anthropic.com", "https://api.anthropic.com/v1/models?limit=1000", ("x-api-key", "k")),
        ("gemini", "https://generativelanguage.googleapis.com", "https://generativelanguage.googleapis.com/v1beta/models?pageSize=1000", ("x-goog-api-key", "k")),
    ],
)
def test_request_per_provider(provider: str, base: str, url: str, header: tuple[str, str]) -> None:
    got_url, headers = request_for(provider, base, "k")
    assert got_url == url
    assert headers[header[0]] == header[1]
    assert "k" not in got_url  # the key travels in a header, never in the URL
    if provider == "anthropic":
        assert headers["anthropic-version"] == "2023-06-01"


def test_keyless_request_has_no_auth_header() -> None:
    _, headers = request_for("openai-compatible", "http://llama:8080/v1", None)
    assert "Authorization" not in headers


def test_parse_openai_and_compatible() -> None:
    page = parse_page("openai", 200, json.dumps({"object": "list", "data": [{"id": "gpt-4o"}, {"id": "o3"}]}).encode())
    assert page.ok and page.ids == ("gpt-4o", "o3") and page.next_query is None


def test_parse_anthropic_pages_and_aliases() -> None:
    body = {"data": [{"id": "claude-sonnet-4-5-20250929", "type": "model"}], "has_more": True, "last_id": "claude-sonnet-4-5-20250929"}
    page = parse_page("anthropic", 200, json.dumps(body).encode())
    assert page.next_query == {"after_id": "claude-sonnet-4-5-20250929"}
    assert normalise("anthropic", list(page.ids)) == [
        "claude-sonnet-4-5-20250929", "claude-sonnet-4-5", "claude-sonnet-4-5-latest"]
    url, _ = request_for("anthropic", "https://api.anthropic.com", "k", page.next_query)
    assert url.endswith("/v1/models?limit=1000&after_id=claude-sonnet-4-5-20250929")


def test_parse_gemini_strips_the_models_prefix_and_pages() -> None:
    body = {"models": [{"name": "models/gemini-2.5-pro"}, {"name": "models/gemini-2.5-flash"}], "nextPageToken": "t2"}
    page = parse_page("gemini", 200, json.dumps(body).encode())
    assert page.ids == ("gemini-2.5-pro", "gemini-2.5-flash") and page.next_query == {"pageToken": "t2"}


def test_errors_keep_the_code_never_the_message() -> None:
    leaky = {"error": {"message": "Incorrect API key provided: sk-proj-abc***xyz", "code": "invalid_api_key", "type": "invalid_request_error"}}
    page = parse_page("openai", 401, json.dumps(leaky).encode())
    assert not page.ok and page.status == 401 and page.code == "invalid_api_key"
    page = parse_page("anthropic", 403, b'{"type":"error","error":{"type":"permission_error","message":"key sk-ant-..."}}')
    assert page.code == "permission_error"
    page = parse_page("gemini", 400, b'{"error":{"code":400,"status":"INVALID_ARGUMENT","message":"API key not valid"}}')
    assert page.code == "INVALID_ARGUMENT"
    assert parse_page("openai", 502, b"<html>bad gateway</html>").code is None
    assert parse_page("openai", 200, b"not json").code == "not-json"


def test_verdicts() -> None:
    url = "https://api.openai.com/v1/models"
    ok = Outcome(ok=True, ids=("a",), count=1, status=200).check(url, keyless=False)
    assert (ok.credential, ok.credential_reason, ok.catalog_ready) == ("True", "Accepted", True)
    assert Outcome(ok=True, count=0).check(url, keyless=True).credential_reason == "NoCredentialNeeded"
    refused = Outcome(ok=False, status=401, code="invalid_api_key").check(url, keyless=False)
    assert (refused.credential, refused.credential_reason) == ("False", "Unauthorized")
    assert refused.credential_message == "GET https://api.openai.com/v1/models answered 401 (invalid_api_key): the credential was refused"
    assert Outcome(ok=False, status=403).check(url, keyless=False).credential_reason == "Forbidden"
    down = Outcome(ok=False, error="timeout").check(url, keyless=False)
    assert (down.credential, down.catalog_reason) == ("Unknown", "Unreachable")
    assert Outcome(ok=False, status=404).check(url, keyless=False).catalog_reason == "NoCatalogEndpoint"
    assert Outcome(ok=False, status=429).check(url, keyless=False).catalog_reason == "RateLimited"
    missing = not_checked("SecretNotFound", "Secret k not found")
    assert (missing.credential, missing.catalog_reason) == ("False", "CredentialMissing")
