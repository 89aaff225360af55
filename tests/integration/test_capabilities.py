"""Capability profiles decide, visibly: skip, strip, reject, unknown fields; and callers."""

from __future__ import annotations

import json

import aiohttp
import anthropic
import pytest

from harness import CLIENT_KEY, GatewayFactory, binding
from switchyard.simulator import Simulator

IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}

LOCAL = """apiVersion: switchyard.dev/v1alpha1
kind: ModelSource
metadata: {name: local}
spec: {provider: openai-compatible, baseURL: "%s", defaultModel: small, credentialRef: {name: keys, key: backup}}
---
"""

STRICT = """apiVersion: switchyard.dev/v1alpha1
kind: CapabilityProfile
metadata: {name: strict-seed}
spec:
  protocol: openai-chat
  features: {seed: false, topK: false}
  onUnsupported: {seed: reject, topK: reject}
---
apiVersion: switchyard.dev/v1alpha1
kind: ModelSource
metadata: {name: strict}
spec:
  provider: openai-compatible
  baseURL: "%s"
  defaultModel: strict-model
  capabilityProfileRef: {name: strict-seed}
---
"""


async def post(url: str, body: dict, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], dict]:
    async with aiohttp.ClientSession() as s:
        async with s.post(url, json=body, headers=headers or {}) as r:
            return r.status, dict(r.headers), json.loads(await r.read())


async def test_an_image_never_lands_on_a_text_only_tier(gateway: GatewayFactory, sim: Simulator) -> None:
    gw = await gateway(LOCAL % sim.base_url("backup") + binding("helper", "local", "claude"))
    body = {"model": "helper", "messages": [{"role": "user", "content": [{"type": "text", "text": "what is it?"}, IMAGE]}]}
    status, headers, answer = await post(gw.api + "/v1/chat/completions", body)
    assert status == 200 and answer["choices"][0]["message"]["content"]
    assert headers["x-switchyard-tier"] == "1"
    assert headers["x-switchyard-fallback-reason"] == "tier0=skip-tier(vision)"
    assert sim.count("backup") == 0
    (seen,) = sim.requests("claude")
    assert seen.body["messages"][0]["content"][1]["type"] == "image"
    # a text-only request is served by the local tier
    status, headers, _ = await post(gw.api + "/v1/chat/completions", {"model": "helper", "messages": [{"role": "user", "content": "hi"}]})
    assert headers["x-switchyard-tier"] == "0"


async def test_unsupported_logprobs_are_stripped_and_reported(gateway: GatewayFactory, sim: Simulator) -> None:
    gw = await gateway(binding("helper", "claude"))
    body = {"model": "helper", "messages": [{"role": "user", "content": "hi"}], "logprobs": True, "top_logprobs": 2}
    status, headers, _ = await post(gw.api + "/v1/chat/completions", body)
    assert status == 200
    assert headers["x-switchyard-degraded"] == "logprobs=strip"
    (seen,) = sim.requests("claude")
    assert "logprobs" not in json.dumps(seen.body)
    async with aiohttp.ClientSession() as s:
        async with s.get(gw.admin + "/metrics") as r:
            metrics = await r.text()
    assert 'switchyard_degraded_fields_total{action="strip",binding="helper",field="logprobs",tier="0"} 1.0' in metrics


async def test_fields_with_no_equivalent_are_reported_not_dropped_silently(gateway: GatewayFactory, sim: Simulator) -> None:
    gw = await gateway(binding("helper", "claude"))
    body = {"model": "helper", "messages": [{"role": "user", "content": "hi"}], "presence_penalty": 0.5, "prediction": {"type": "content", "content": "x"}}
    status, headers, _ = await post(gw.api + "/v1/chat/completions", body)
    assert status == 200
    assert headers["x-switchyard-degraded"] == "unknownFields(prediction,presence_penalty)=strip"


async def test_what_the_anthropic_api_refuses_with_thinking_is_reported(gateway: GatewayFactory, sim: Simulator) -> None:
    """An OpenAI client asking for reasoning and sampling on a Claude tier: thinking refuses
    temperature and top_p, so they are left out, and the header says so (no silent drop)."""
    gw = await gateway(binding("helper", "claude"))
    body = {"model": "helper", "messages": [{"role": "user", "content": "hi"}], "reasoning_effort": "low",
            "temperature": 0.3, "top_p": 0.5}
    status, headers, _ = await post(gw.api + "/v1/chat/completions", body)
    assert status == 200
    assert headers["x-switchyard-degraded"] == "temperature=strip, topP=strip"
    (seen,) = sim.requests("claude")
    assert seen.body["thinking"]["type"] in ("enabled", "adaptive")
    assert "temperature" not in seen.body and "top_p" not in seen.body
    async with aiohttp.ClientSession() as s:
        async with s.get(gw.admin + "/metrics") as r:
            metrics = await r.text()
    assert 'switchyard_degraded_fields_total{action="strip",binding="helper",field="temperature",tier="0"} 1.0' in metrics


async def test_a_same_protocol_thinking_budget_cut_is_reported(gateway: GatewayFactory, sim: Simulator) -> None:
    """Anthropic in, Anthropic out (pass-through): a budget that does not fit under
    max_tokens is cut to fit, and the header says so."""
    gw = await gateway(binding("helper", "claude"))
    body = {"model": "helper", "max_tokens": 2000, "messages": [{"role": "user", "content": "hi"}],
            "thinking": {"type": "enabled", "budget_tokens": 4000}}
    status, headers, _ = await post(gw.api + "/v1/messages", body, {"anthropic-version": "2023-06-01"})
    assert status == 200 and headers["x-switchyard-degraded"] == "reasoning=map(1999)"
    (seen,) = sim.requests("claude")
    assert seen.body["thinking"] == {"type": "enabled", "budget_tokens": 1999}


async def test_stop_sequences_beyond_the_destination_limit_are_mapped(gateway: GatewayFactory, sim: Simulator) -> None:
    gw = await gateway(binding("helper", "gem"))  # Gemini takes at most 5
    body = {"model": "helper", "messages": [{"role": "user", "content": "hi"}], "stop": ["a", "b", "c", "d"]}
    status, headers, _ = await post(gw.api + "/v1/chat/completions", body)
    assert status == 200 and "x-switchyard-degraded" not in headers
    body = {**body, "messages": [{"role": "user", "content": "hi"}], "stop": list("abcdefg")}
    # OpenAI clients cannot send more than 4; an Anthropic client can
    status, headers, _ = await post(
        gw.api + "/v1/messages",
        {"model": "helper", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}], "stop_sequences": list("abcdefg")},
        {"anthropic-version": "2023-06-01"},
    )
    assert status == 200 and headers["x-switchyard-degraded"] == "stopSequences=map(5)"
    assert sim.requests("gem")[-1].body["generationConfig"]["stopSequences"] == list("abcde")


@pytest.mark.parametrize(
    ("path", "body", "headers", "shape"),
    [
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "seed": 7}, {}, "openai"),
        ("/v1/messages", {"max_tokens": 20, "messages": [{"role": "user", "content": "hi"}], "top_k": 5},
         {"anthropic-version": "2023-06-01"}, "anthropic"),
        ("/v1beta/models/helper:generateContent", {"contents": [{"role": "user", "parts": [{"text": "hi"}]}], "generationConfig": {"seed": 7}}, {}, "gemini"),
    ],
)
async def test_a_rejected_feature_is_the_clients_own_4xx(
    gateway: GatewayFactory, sim: Simulator, path: str, body: dict, headers: dict, shape: str
) -> None:
    gw = await gateway(STRICT % sim.base_url("backup") + binding("helper", "strict", "claude"))
    status, h, answer = await post(gw.api + path, {"model": "helper", **body}, headers)
    assert status == 400
    feature = "topK" if shape == "anthropic" else "seed"
    if shape == "openai":
        assert answer["error"]["type"] == "invalid_request_error" and answer["error"]["param"] == "seed"
        assert answer["error"]["code"] == "unsupported_feature"
    elif shape == "anthropic":
        assert answer["type"] == "error" and answer["error"]["type"] == "invalid_request_error"
    else:
        assert answer["error"]["status"] == "INVALID_ARGUMENT"
    assert f"does not support {feature}" in json.dumps(answer)
    assert sim.count("backup") == 0 and sim.count("claude") == 0


# ------------------------------------------------------------------------- callers

CLAUDE_ONLY = binding("claude-flows", "claude", "primary", extra="  callers: [claude-code]\n  aliases: [claude-flows]")
EVERYONE = binding("general", "primary", "gem", extra="  aliases: [general]")


async def test_claude_code_is_kept_on_its_binding_whatever_model_it_names(gateway: GatewayFactory, sim: Simulator) -> None:
    gw = await gateway(CLAUDE_ONLY + "---\n" + EVERYONE)
    client = anthropic.AsyncAnthropic(
        base_url=gw.api, api_key=CLIENT_KEY, max_retries=0, default_headers={"User-Agent": "claude-cli/2.1.197 (external, cli)"}
    )
    gw.clients.append(client)
    raw = await client.messages.with_raw_response.create(
        model="claude-opus-4-7", max_tokens=50, messages=[{"role": "user", "content": "hi"}]
    )
    assert raw.headers["x-switchyard-binding"] == "claude-flows"
    assert raw.headers["x-switchyard-source"] == "claude"
    assert (await raw.parse()).content[0].text


async def test_a_binding_restricted_to_callers_refuses_others(gateway: GatewayFactory, sim: Simulator) -> None:
    gw = await gateway(CLAUDE_ONLY + "---\n" + EVERYONE)
    status, _, answer = await post(
        gw.api + "/v1/chat/completions",
        {"model": "claude-flows", "messages": [{"role": "user", "content": "hi"}]},
        {"x-switchyard-caller": "my-batch-job"},
    )
    assert status == 403 and answer["error"]["code"] == "caller_not_allowed"
    assert "serves callers claude-code; this request comes from my-batch-job" in answer["error"]["message"]
    status, headers, _ = await post(gw.api + "/v1/chat/completions", {"model": "general", "messages": [{"role": "user", "content": "hi"}]})
    assert status == 200 and headers["x-switchyard-binding"] == "general"
    assert sum(1 for r in sim.requests("claude")) == 0
    # A self-declared name no binding lists is "other" in the metric (bounded series).
    status, _, _ = await post(
        gw.api + "/v1/chat/completions", {"model": "general", "messages": [{"role": "user", "content": "hi"}]},
        {"x-switchyard-caller": "made-up-42"},
    )
    assert status == 200
    async with aiohttp.ClientSession() as s:
        async with s.get(gw.admin + "/metrics") as r:
            metrics = await r.text()
    served = [line for line in metrics.splitlines() if line.startswith("switchyard_requests_total{") and 'binding="general"' in line]
    assert any('caller="other"' in line for line in served) and not any("made-up-42" in line for line in served), served


async def test_callers_hold_on_every_route(gateway: GatewayFactory, sim: Simulator) -> None:
    """Issue 15, item 7: the x-switchyard-binding header reached a binding whose callers
    excluded the caller, and count_tokens passed no caller (an allowed caller got a 403)."""
    gw = await gateway(CLAUDE_ONLY + "---\n" + EVERYONE)
    chat = {"model": "anything", "messages": [{"role": "user", "content": "hi"}]}
    status, _, answer = await post(gw.api + "/v1/chat/completions", chat, {"x-switchyard-binding": "claude-flows"})
    assert status == 403 and answer["error"]["code"] == "caller_not_allowed", answer
    count = {"model": "claude-flows", "messages": [{"role": "user", "content": "hi"}]}
    ant = {"anthropic-version": "2023-06-01"}
    status, _, answer = await post(gw.api + "/v1/messages/count_tokens", count, {**ant, "x-switchyard-caller": "claude-code"})
    assert status == 200 and answer["input_tokens"] > 0, answer
    status, _, answer = await post(gw.api + "/v1/messages/count_tokens", count, {**ant, "x-switchyard-caller": "my-batch-job"})
    assert status == 403 and answer["error"]["type"] == "permission_error", answer
