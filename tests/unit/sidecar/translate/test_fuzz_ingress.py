"""Hostile client bodies against every ingress adapter, the capability step and every
egress builder, exactly in the order the pipeline runs them:

    check_request -> request_model / request_streams / features_used
    -> decide (each tier's profile) -> same protocol and no structural edit:
           prepare_passthrough -> build_passthrough_call
       otherwise: parse_request -> apply_to_request -> build_call (each egress)

Only ``RequestError`` may come out (the pipeline answers it as a 400 in the client's
protocol); anything else would be a 500. Bodies are golden requests with random edits
and arbitrary JSON objects (see tests/fuzzing.py for the budget and how to run long).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fuzzing import EGRESS, FUZZ, INGRESS, json_values, mutants, request_seeds
from switchyard.api.capabilities import builtin_profiles
from switchyard.api.models import FEATURE_NAMES
from switchyard.compiler.compile import _flatten
from switchyard.sidecar.contract.config import CompiledProfile, CompiledTier
from switchyard.sidecar.routing.profile import apply_to_request, decide
from switchyard.sidecar.translate.base import RequestError, adapter_for

_PROVIDER = {"openai-chat": "openai", "anthropic-messages": "anthropic", "gemini": "gemini", "openai-responses": "openai"}
_AUTH = {"openai-chat": "bearer", "anthropic-messages": "x-api-key", "gemini": "x-goog-api-key", "openai-responses": "bearer"}


def _tier(protocol: str, profile: CompiledProfile, index: int = 0) -> CompiledTier:
    return CompiledTier(
        index=index, source=f"s-{profile.name}", provider=_PROVIDER[protocol], protocol=protocol,  # type: ignore[arg-type]
        base_url="https://upstream.example/v1" if protocol in ("openai-chat", "openai-responses") else "https://upstream.example",
        model="upstream-model", auth=_AUTH[protocol], credential="sk-fuzz", profile=profile,  # type: ignore[arg-type]
    )


def _bare(protocol: str, action: str) -> CompiledProfile:
    """Supports nothing; every feature gets `action` (strip or map): every edit path runs."""
    features: dict[str, Any] = {f: False for f in FEATURE_NAMES if f != "unknownFields"}
    features.update(stopSequences=1, maxOutputTokens=8, maxContextTokens=64, reasoning="none")
    return CompiledProfile(name=f"bare-{action}", protocol=protocol, features=features,  # type: ignore[arg-type]
                           on_unsupported={f: action for f in FEATURE_NAMES})  # type: ignore[misc]


TIERS: list[CompiledTier] = [
    *(_tier(p.spec.protocol.value, _flatten(p)) for p in builtin_profiles().values()),
    *(_tier(proto, _bare(proto, action)) for proto in EGRESS for action in ("strip", "map")),
]


def run_pipeline_steps(protocol: str, body: Any) -> None:
    """What the pipeline does with a parsed JSON object, minus the network."""
    if not isinstance(body, dict):
        return  # read_json answers a non-object body before any adapter sees it
    ingress = adapter_for(protocol)
    if protocol == "gemini":  # the Gemini routes choose stream/sse from the URL
        from switchyard.sidecar.translate import gemini

        views = [ingress, gemini.SSE_STREAM, gemini.ARRAY_STREAM]
    else:
        views = [ingress]
    try:
        ingress.check_request(body)
    except RequestError:
        return
    for view in views:
        model = view.request_model(body)
        assert model is None or isinstance(model, str)
        stream = bool(view.request_streams(body))
        used = view.features_used(body)
        assert isinstance(used, dict)
        parsed = None
        parse_error: RequestError | None = None
        for tier in TIERS:
            cross = tier.protocol != protocol
            extras = None
            if cross:
                if parsed is None and parse_error is None:
                    try:
                        parsed = view.parse_request(body, path_model="alias" if protocol == "gemini" else None, stream=stream)
                    except RequestError as exc:
                        parse_error = exc
                if parse_error is not None:
                    continue
                assert parsed is not None
                if parsed.origin != tier.protocol and parsed.extras:
                    extras = sorted(parsed.extras)
            decision = decide(used, tier.profile, extras=extras)
            if decision.reject or decision.skip is not None:
                continue
            try:
                if not cross and not decision.structural:
                    out = view.prepare_passthrough(body, tier, decision.edits)
                    assert isinstance(out, dict)
                    call = view.build_passthrough_call(out, tier, {})
                else:
                    if parsed is None:
                        parsed = view.parse_request(body, path_model="alias" if protocol == "gemini" else None, stream=stream)
                    req = apply_to_request(parsed, decision.edits)
                    if stream and "streaming" in decision.edits:
                        req = dataclasses.replace(req, stream=False)
                    call = adapter_for(tier.protocol).build_call(req, tier, None if cross else {})
            except RequestError:
                continue
            assert isinstance(call.body, bytes) and call.url.startswith("https://upstream.example")
            assert "sk-fuzz" not in call.url


TOP_KEYS = sorted({
    "model", "messages", "contents", "input", "stream", "tools", "system", "max_tokens", "generationConfig",
    "tool_choice", "response_format", "thinking", "reasoning", "instructions", "systemInstruction", "toolConfig",
})


def bodies(protocol: str) -> st.SearchStrategy[Any]:
    """Real requests with random edits, and arbitrary objects with the protocols' top-level keys."""
    return st.one_of(mutants(request_seeds(protocol)), st.dictionaries(st.sampled_from(TOP_KEYS), json_values(12), max_size=6))


@pytest.mark.parametrize("protocol", INGRESS)
def test_hostile_bodies_raise_only_request_errors(protocol: str) -> None:
    @FUZZ
    @given(body=bodies(protocol))
    def run(body: Any) -> None:
        try:  # exactly what read_json hands over: orjson's view of the bytes
            body = orjson.loads(orjson.dumps(body))
        except orjson.JSONEncodeError:
            return
        run_pipeline_steps(protocol, body)

    run()


EMBED_SEEDS: dict[str, list[Any]] = {
    "openai-chat": [{"model": "m", "input": ["a", "b"], "dimensions": 8, "encoding_format": "base64", "user": "u"}],
    "gemini": [
        {"content": {"parts": [{"text": "a"}]}, "taskType": "RETRIEVAL_QUERY", "outputDimensionality": 8},
        {"requests": [{"model": "models/m", "content": {"parts": [{"text": "a"}]}, "title": "t"}]},
    ],
}


@pytest.mark.parametrize("protocol", sorted(EMBED_SEEDS))
def test_hostile_embeddings_bodies_raise_only_request_errors(protocol: str) -> None:
    """embed_request, then every egress's embed_call (pipeline/embed.py's order)."""
    ingress = adapter_for(protocol)
    assert ingress.embed_request is not None

    @FUZZ
    @given(body=st.one_of(mutants(EMBED_SEEDS[protocol]), st.dictionaries(st.text(max_size=8), json_values(6), max_size=4)))
    def run(body: Any) -> None:
        try:
            body = orjson.loads(orjson.dumps(body))
        except orjson.JSONEncodeError:
            return
        if not isinstance(body, dict):
            return
        try:
            req = ingress.embed_request(body, "m")  # type: ignore[misc]
        except RequestError:
            return
        assert req.inputs and all(isinstance(t, str) and t for t in req.inputs)
        for egress in EGRESS:
            tier = CompiledTier(
                index=0, source="s", provider="p", protocol=egress, base_url="https://x.example/v1", model="m",
                profile=CompiledProfile(name="p", protocol=egress, features={}, on_unsupported={}),
            )  # fmt: skip
            try:
                call = adapter_for(egress).embed_call(tier, req)
            except RequestError:
                continue
            if call is not None:
                assert isinstance(call.body, bytes)

    run()
