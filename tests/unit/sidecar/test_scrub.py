"""The one scrubber (sidecar/upstream.py): a tier's key never survives in upstream text
that can reach a client, a log line or a status, whole, truncated or cut by clipping."""

from __future__ import annotations

import orjson
import pytest
from pydantic import SecretStr

from switchyard.sidecar.contract.config import CompiledProfile, CompiledTier
from switchyard.sidecar.translate.base import adapter_for
from switchyard.sidecar.upstream import error_text, scrub, scrub_str

KEY = "sk-live-0123456789abcdefghijklmnopqrstuvwxyz"


def tier(protocol: str = "openai-chat", key: str | None = KEY) -> CompiledTier:
    profile = CompiledProfile(name="p", protocol=protocol, features={}, on_unsupported={})  # type: ignore[arg-type]
    return CompiledTier(
        index=0, source="s", provider="openai", protocol=protocol, base_url="http://127.0.0.1:9", model="m",  # type: ignore[arg-type]
        credential=SecretStr(key) if key else None, profile=profile,
    )  # fmt: skip


@pytest.mark.parametrize(
    "text",
    [
        f"Incorrect API key provided: {KEY}.",
        f"Incorrect API key provided: {KEY[:12]}****wxyz.",  # what OpenAI echoes: a prefix
        f"key={KEY[:8]}",
        f"{KEY}{KEY}",
        f'{{"error": "bad key {KEY[:20]}"}}',
    ],
)
def test_the_key_and_any_8_character_prefix_of_it_are_removed(text: str) -> None:
    out = scrub(text.encode(), [KEY]).decode()
    assert KEY[:8] not in out and "***" in out


def test_fewer_than_8_characters_of_the_key_are_a_coincidence() -> None:
    assert scrub(b"sk-live keys start so", [KEY]) == b"sk-live keys start so"
    assert scrub(b"x sk-live- y", [KEY]) == b"x *** y"


@pytest.mark.parametrize("protocol", ["openai-chat", "anthropic-messages", "gemini"])
def test_a_key_across_the_clip_boundary_leaves_no_prefix(protocol: str) -> None:
    """Upstream error text is clipped to 300 characters; scrubbing after the clip left the
    first characters of a key that straddled it."""
    message = "x" * 293 + " " + KEY + " tail"  # the clip (299 + "…") keeps 5 characters of it
    body = {
        "openai-chat": {"error": {"message": message, "type": "invalid_request_error"}},
        "anthropic-messages": {"type": "error", "error": {"type": "invalid_request_error", "message": message}},
        "gemini": {"error": {"code": 400, "message": message, "status": "INVALID_ARGUMENT"}},
    }[protocol]
    t = tier(protocol)
    info = adapter_for(protocol).read_error(400, error_text(orjson.dumps(body), t), {})
    assert KEY[:4] not in info.message
    unscrubbed = adapter_for(protocol).read_error(400, orjson.dumps(body), {})
    assert KEY[:4] in unscrubbed.message, "the case is real: clipping alone keeps a prefix"


def test_no_credential_no_change() -> None:
    assert error_text(b"anything " + KEY.encode(), tier(key=None)) == b"anything " + KEY.encode()
    assert scrub_str(f"in-stream: {KEY}", tier()) == "in-stream: ***"


def test_every_key_of_a_tier_with_several_is_scrubbed_whichever_was_sent() -> None:
    from switchyard.sidecar.contract.config import CompiledKey

    other = "sk-live-ZYXWVUTSRQPONMLKJIHGFEDCBA9876543210"
    keyed = tier().model_copy(update={"keys": [
        CompiledKey(index=0, credential=SecretStr(KEY)), CompiledKey(index=1, credential=SecretStr(other)),
        CompiledKey(index=2, problem="SecretKeyMissing: Secret k has no key c"),
    ]})
    sending_1 = keyed.with_key(keyed.keys[1])  # type: ignore[index]
    text = f"bad key {KEY[:12]}..., also {other}"
    for t in (keyed, sending_1):
        out = scrub_str(text, t)
        assert KEY[:8] not in out and other[:8] not in out
        assert KEY[:8].encode() not in error_text(text.encode(), t)
    assert sending_1.fingerprint() == keyed.fingerprint()  # one identity whichever key an attempt sends
