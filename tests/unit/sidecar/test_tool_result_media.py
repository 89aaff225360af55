"""Images inside a tool result on OpenAI chat tiers (issue 17, defect 3).

Claude Code's Read tool returns screenshots as an image inside a tool_result. Chat
Completions tool messages carry text only, and the image was dropped with no word of it
(neither the upstream request nor x-switchyard-degraded had it). Now: where the tier sees
images, they follow the tool messages in a user turn and the mapping is reported; where
it does not, the profile's vision rule applies to them like to any image."""

from __future__ import annotations

import orjson

from switchyard.sidecar.contract.config import CompiledProfile, CompiledTier
from switchyard.sidecar.routing.profile import apply_to_request, decide
from switchyard.sidecar.translate import anthropic_messages, openai_chat

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
BODY = {
    "model": "a",
    "max_tokens": 100,
    "messages": [
        {"role": "user", "content": "Look at the screen."},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "screenshot", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": [
            {"type": "text", "text": "Here it is."},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        ]}]},
    ],
}


def tier(**features: object) -> CompiledTier:
    profile = CompiledProfile(name="p", protocol="openai-chat", features=dict(features), on_unsupported={"vision": "strip"})  # type: ignore[arg-type]
    return CompiledTier(index=0, source="s", provider="openai", protocol="openai-chat", base_url="https://api.openai.com/v1",
                        model="gpt", profile=profile)


def test_an_image_in_a_tool_result_reaches_a_tier_that_sees_images() -> None:
    req = anthropic_messages.ADAPTER.parse_request(BODY)
    call = openai_chat.ADAPTER.build_call(req, tier(vision=True))
    msgs = orjson.loads(call.body or b"")["messages"]
    tool = next(m for m in msgs if m["role"] == "tool")
    assert tool["tool_call_id"] == "toolu_1" and tool["content"] == "Here it is."
    after = msgs[msgs.index(tool) + 1]
    assert after["role"] == "user"
    images = [p for p in after["content"] if p["type"] == "image_url"]
    assert images and images[0]["image_url"]["url"].startswith("data:image/png;base64,")
    assert ("toolResultMedia", "map(user message)") in call.notes


def test_without_vision_the_profiles_rule_applies_and_is_reported() -> None:
    req = anthropic_messages.ADAPTER.parse_request(BODY)
    used = anthropic_messages.ADAPTER.features_used(BODY)
    assert used.get("vision")
    t = tier(vision=False)
    decision = decide(used, t.profile)
    assert ("vision", "strip") in decision.degraded
    call = openai_chat.ADAPTER.build_call(apply_to_request(req, decision.edits), t)
    sent = call.body or b""
    assert b"image_url" not in sent and PNG.encode() not in sent
