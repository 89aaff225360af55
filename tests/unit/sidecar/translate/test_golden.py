"""Golden translation fixtures: tests/golden/<ingress>__<egress>/<case>/.

Each case folder holds what a client sent and what must reach the upstream, and
optionally an upstream answer (whole or streamed) and what the client must get back:

    client_request.json      the client's body, in the ingress protocol
    upstream_request.json    the body the egress adapter must build (exact match)
    upstream_call.json       optional: {"url_suffix": "...", "headers": {...}} subset checks
    upstream_response.json   optional: a whole upstream answer ...
    client_response.json     ... and the client's body it must become
    upstream_stream.sse      optional: an upstream event stream ...
    client_stream.sse        ... and the client's stream it must become (checked as a
                             list of SSE events with their JSON parsed)
    tier.json                optional: overrides for the tier (provider, model, ...)

Generated ids and timestamps are made deterministic (a counter and a fixed clock) for
the duration of each case, so fixtures compare exactly. The stream
is also fed split at every byte boundary of a few positions, to prove the decoders do
not depend on chunking. Set SWITCHYARD_UPDATE_GOLDEN=1 to (re)write the expected files
from the current output, then read the diff before committing it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from switchyard.sidecar.contract.config import CompiledProfile, CompiledTier
from switchyard.sidecar.translate import common
from switchyard.sidecar.translate.base import adapter_for
from switchyard.sidecar.translate.sse import SSEDecoder

GOLDEN = Path(__file__).resolve().parents[3] / "golden"
UPDATE = os.environ.get("SWITCHYARD_UPDATE_GOLDEN") == "1"

PROVIDER_FOR = {
    "openai-chat": "openai",
    "anthropic-messages": "anthropic",
    "gemini": "gemini",
    "openai-responses": "openai",
}
AUTH_FOR = {"openai-chat": "bearer", "anthropic-messages": "x-api-key", "gemini": "x-goog-api-key", "openai-responses": "bearer"}
BASE_FOR = {
    "openai-chat": "https://api.openai.com/v1",
    "openai-responses": "https://api.openai.com/v1",
    "anthropic-messages": "https://api.anthropic.com",
    "gemini": "https://generativelanguage.googleapis.com",
}


def cases() -> list[Path]:
    return sorted(p for p in GOLDEN.glob("*__*/*") if (p / "client_request.json").exists())


def tier_for(egress: str, case: Path) -> CompiledTier:
    data: dict[str, Any] = {
        "index": 0,
        "source": "golden",
        "provider": PROVIDER_FOR[egress],
        "protocol": egress,
        "base_url": BASE_FOR[egress],
        "model": "upstream-model",
        "auth": AUTH_FOR[egress],
        "credential": "sk-golden-test-key",
        "profile": CompiledProfile(name="golden", protocol=egress, features={}, on_unsupported={}),
    }
    extra = case / "tier.json"
    if extra.exists():
        data.update(json.loads(extra.read_text()))
    return CompiledTier(**data)


@pytest.fixture(autouse=True)
def deterministic(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(common, "entropy", common.entropy)
    monkeypatch.setattr(common, "clock", lambda: 1767225600.0)  # 2026-01-01T00:00:00Z
    reseed()


def reseed() -> None:
    """Restart generated ids at 1: every translation of a case makes the same ids."""
    counter = iter(range(1, 1 << 30))
    common.entropy = lambda n: next(counter).to_bytes(n, "big")


def normalise(value: Any) -> Any:
    return value


def sse_events(raw: bytes) -> list[dict[str, Any]]:
    d = SSEDecoder()
    out = []
    for ev in d.feed(raw):
        try:
            data: Any = json.loads(ev.data)
        except json.JSONDecodeError:
            data = ev.data
        out.append({"event": ev.event, "data": normalise(data)})
    d.flush()
    assert not d.truncated, "the stream must end with a complete event"
    return out


def check(path: Path, actual: Any) -> None:
    if UPDATE:
        path.write_text(json.dumps(actual, indent=2, ensure_ascii=False) + "\n")
        return
    assert path.exists(), f"{path} missing (run with SWITCHYARD_UPDATE_GOLDEN=1 and review)"
    expected = json.loads(path.read_text())
    assert normalise(actual) == normalise(expected)


def translate_stream(ingress: Any, egress: Any, request: Any, raw: bytes, splits: list[int]) -> bytes:
    reseed()
    decoder = egress.stream_decoder()
    encoder = ingress.stream_encoder(alias=request.model, request=request)
    out = encoder.start()
    bounds = [0, *sorted(s for s in splits if 0 < s < len(raw)), len(raw)]
    for a, b in zip(bounds, bounds[1:]):
        for d in decoder.feed(raw[a:b]):
            for ev in d.events:
                out += encoder.encode(ev)
    for d in decoder.close():
        for ev in d.events:
            out += encoder.encode(ev)
    assert decoder.complete, "the upstream fixture stream must end cleanly"
    return out + encoder.finish()


@pytest.mark.parametrize("case", cases(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_golden(case: Path) -> None:
    ingress_name, egress_name = case.parent.name.split("__")
    ingress, egress = adapter_for(ingress_name), adapter_for(egress_name)
    body = json.loads((case / "client_request.json").read_text())
    request = ingress.parse_request(body)
    tier = tier_for(egress_name, case)
    call = egress.build_call(request, tier)
    check(case / "upstream_request.json", json.loads(call.body or b"null"))
    meta = case / "upstream_call.json"
    if meta.exists():
        want = json.loads(meta.read_text())
        if "url_suffix" in want:
            assert call.url.endswith(want["url_suffix"]), call.url
        for k, v in want.get("headers", {}).items():
            assert {h.lower(): x for h, x in call.headers.items()}.get(k.lower()) == v, k

    whole = case / "upstream_response.json"
    if whole.exists():
        reseed()
        answer = egress.parse_response(json.loads(whole.read_text()))
        check(case / "client_response.json", ingress.render_response(answer, alias=request.model, request=request))

    stream = case / "upstream_stream.sse"
    if stream.exists():
        raw = stream.read_bytes()
        once = translate_stream(ingress, egress, request, raw, [])
        expected_path = case / "client_stream.sse"
        if UPDATE:
            expected_path.write_bytes(once)
        expected = sse_events(expected_path.read_bytes())
        assert sse_events(once) == expected
        step = max(1, len(raw) // 7)
        for start in range(1, min(len(raw), 60)):  # every boundary near the start, then strided
            assert sse_events(translate_stream(ingress, egress, request, raw, [start, start + step])) == expected
