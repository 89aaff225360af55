"""The Gemini adapter: parsing, passthrough, streams (SSE and JSON array), and the SDK's view.

Golden fixtures (tests/golden/*gemini*) pin whole translations; these tests pin the rules
around them: which inputs are refused and with which ``param``, what a raw body reports
as features, that a same-protocol body keeps what Switchyard does not know and is never
mutated, that both stream decoders do not depend on chunking, that the JSON-array
encoder writes valid JSON, and that the ``google-genai`` SDK's own types read what the
encoder writes. The last section runs the real routes on loopback against a fake upstream
with the official SDK as the client.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import orjson
import pytest
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestServer
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from switchyard.sidecar.contract.config import CompiledBinding, CompiledConfig, CompiledProfile, CompiledTier
from switchyard.sidecar.translate import gemini as g
from switchyard.sidecar.translate.gemini import _wire as gw
from switchyard.sidecar.translate.gemini import egress as ge
from switchyard.sidecar.translate.gemini import ingress as gi
from switchyard.sidecar.translate.gemini import stream as gs
from switchyard.sidecar.translate import neutral as n
from switchyard.sidecar.translate.base import RequestError
from switchyard.sidecar.translate.sse import SSEDecoder

SIG = "c2lnbmF0dXJlLTE="


def tier(protocol: str = "gemini", base_url: str | None = None, **features: Any) -> CompiledTier:
    return CompiledTier(
        index=0,
        source="src",
        provider={"gemini": "gemini", "openai-chat": "openai", "anthropic-messages": "anthropic"}[protocol],
        protocol=protocol,
        base_url=base_url or {"gemini": "https://generativelanguage.googleapis.com", "openai-chat": "https://api.openai.com/v1",
                              "anthropic-messages": "https://api.anthropic.com"}[protocol],
        model="gemini-tier-model",
        auth={"gemini": "x-goog-api-key", "openai-chat": "bearer", "anthropic-messages": "x-api-key"}[protocol],
        credential="sk-tier-key",
        profile=CompiledProfile(name="p", protocol=protocol, features=features, on_unsupported={}),
    )


def user(*parts: dict[str, Any]) -> dict[str, Any]:
    return {"role": "user", "parts": list(parts)}


def model(*parts: dict[str, Any]) -> dict[str, Any]:
    return {"role": "model", "parts": list(parts)}


def cli_body() -> dict[str, Any]:
    """Shaped like what Gemini CLI sends (observed, see notes/real-clients.md)."""
    return {
        "contents": [
            user({"text": "List the src folder"}),
            model({"text": "Planning.", "thought": True},
                  {"functionCall": {"id": "fc-1", "name": "list_directory", "args": {"path": "src"}}, "thoughtSignature": SIG}),
            user({"functionResponse": {"id": "fc-1", "name": "list_directory", "response": {"output": "a.py\nb.py"}}}),
        ],
        "systemInstruction": {"role": "user", "parts": [{"text": "You are Gemini CLI."}]},
        "tools": [{"functionDeclarations": [
            {"name": "list_directory", "description": "List", "parametersJsonSchema": {"type": "object", "properties": {"path": {"type": "string"}}}},
            {"name": "read_file", "description": "Read", "parametersJsonSchema": {"type": "object", "properties": {"absolute_path": {"type": "string"}}}},
        ]}],
        "generationConfig": {"temperature": 0, "topP": 1, "thinkingConfig": {"includeThoughts": True, "thinkingLevel": "HIGH"}},
        "session_hint": {"opaque": True},
    }


# =========================================================================== parsing


@pytest.mark.parametrize(
    ("raw", "param", "words"),
    [
        ({}, "contents", "'contents' must be a non-empty array"),
        ({"contents": []}, "contents", "non-empty array"),
        ({"contents": [{"role": "system", "parts": [{"text": "x"}]}]}, "contents[0]", "role' must be user or model"),
        ({"contents": [{"role": "user"}]}, "contents[0]", "'contents[0].parts' must be an array"),
        ({"contents": [user({"functionCall": {"args": {}}})]}, "contents[0].parts[0]", "functionCall.name' is required"),
        ({"contents": [user({"functionCall": {"name": "f", "args": "[1]"}})]}, "contents[0].parts[0]", "args' must be an object"),
        ({"contents": [user({"functionResponse": {"response": {}}})]}, "contents[0].parts[0]", "functionResponse.name' is required"),
        ({"contents": [user({"inlineData": {"data": "AAAA"}})]}, "contents[0].parts[0]", "inlineData.mimeType' is required"),
        ({"contents": [user({"fileData": {"mimeType": "image/png"}})]}, "contents[0].parts[0]", "fileData.fileUri' is required"),
        ({"contents": [user({"hologram": {"x": 1}})]}, "contents[0].parts[0]", "unsupported part in 'contents[0].parts[0]' (hologram)"),
        ({"contents": [user({"text": 5})]}, "contents[0].parts[0]", "text' must be a string"),
        ({"contents": [user({"text": "x"})], "generationConfig": "hot"}, "generationConfig", "'generationConfig' must be an object"),
        ({"contents": [user({"text": "x"})], "generationConfig": {"temperature": "hot"}}, "generationConfig.temperature", "must be a number"),
        ({"contents": [user({"text": "x"})], "generationConfig": {"maxOutputTokens": 1.5}}, "generationConfig.maxOutputTokens", "must be an integer"),
        ({"contents": [user({"text": "x"})], "generationConfig": {"stopSequences": [1]}}, "generationConfig", "stopSequences' must be an array of strings"),
        ({"contents": [user({"text": "x"})], "generationConfig": {"thinkingConfig": {"thinkingLevel": "ULTRA"}}}, "generationConfig.thinkingConfig", "MINIMAL, LOW, MEDIUM or HIGH"),
        ({"contents": [user({"text": "x"})], "toolConfig": {"functionCallingConfig": {"mode": "SOMETIMES"}}}, "toolConfig", "AUTO, ANY, NONE or VALIDATED"),
        ({"contents": [user({"text": "x"})], "tools": [{"functionDeclarations": [{"description": "d"}]}]}, "tools", "functionDeclarations[0].name' is required"),
        ({"contents": [user({"text": "x"})], "tools": {"functionDeclarations": []}}, "tools", "'tools' must be an array"),
        ({"contents": [user({"text": "x"})], "systemInstruction": {"parts": [{"inlineData": {}}]}}, "systemInstruction", "must be a text part"),
    ],
)
def test_parse_errors_name_the_field(raw: dict[str, Any], param: str, words: str) -> None:
    with pytest.raises(RequestError) as info:
        gi.parse_request(raw, path_model="m")
    assert words in info.value.message
    assert info.value.param == param


def test_parse_what_gemini_cli_sends() -> None:
    req = gi.parse_request(cli_body(), path_model="models/assistant", stream=True)
    assert req.model == "assistant" and req.stream and req.origin == "gemini"
    assert [t.text for t in req.system] == ["You are Gemini CLI."]
    assert [t.name for t in req.tools] == ["list_directory", "read_file"]
    assert req.tools[0].parameters == {"type": "object", "properties": {"path": {"type": "string"}}}
    assert req.reasoning == n.Reasoning(effort="high", summary=True)
    assert req.temperature == 0 and req.top_p == 1
    thought, sig, call = req.messages[1].parts
    assert thought == n.Thinking(text="Planning.", origin="gemini")
    assert sig == n.Thinking(signature=SIG, origin="gemini")  # a signature riding on the call
    assert call == n.ToolCall("fc-1", "list_directory", '{"path":"src"}')
    (result,) = req.messages[2].parts
    assert result == n.ToolResult("fc-1", [n.Text("a.py\nb.py")], False, "list_directory")
    assert req.extras == {"session_hint": {"opaque": True}}


def test_results_match_calls_by_name_in_order_and_ids_are_stable() -> None:
    body = {"contents": [
        user({"text": "go"}),
        model({"functionCall": {"name": "f", "args": {"n": 1}}}, {"functionCall": {"name": "f", "args": {"n": 2}}},
              {"functionCall": {"name": "h"}}),
        user({"functionResponse": {"name": "h", "response": {"error": "boom"}}},
             {"functionResponse": {"name": "f", "response": {"output": "one"}}},
             {"functionResponse": {"name": "f", "response": {"result": {"deep": [1]}}}},
             {"functionResponse": {"name": "orphan", "response": {}}}),
    ]}
    first, second = gi.parse_request(body), gi.parse_request(copy.deepcopy(body))
    assert first == second, "ids come from positions, never from randomness"
    calls = first.messages[1].parts
    assert [c.id for c in calls] == ["call_g1_0", "call_g1_1", "call_g1_2"]  # type: ignore[union-attr]
    h, f1, f2, orphan = first.messages[2].parts
    assert (h.tool_call_id, h.is_error, h.content) == ("call_g1_2", True, [n.Text("boom")])  # type: ignore[union-attr]
    assert (f1.tool_call_id, f1.content) == ("call_g1_0", [n.Text("one")])  # type: ignore[union-attr]
    assert (f2.tool_call_id, f2.content) == ("call_g1_1", [n.Text('{"result":{"deep":[1]}}')])  # type: ignore[union-attr]
    assert orphan.tool_call_id == "call_g2_3"  # type: ignore[union-attr]


def test_parse_snake_case_schemas_media_and_code_parts() -> None:
    body = {
        "contents": [user(
            {"text": "look"},
            {"inline_data": {"mime_type": "image/webp", "data": "UklGR"}},
            {"file_data": {"file_uri": "https://example.com/a.pdf"}},
            {"inlineData": {"mimeType": "audio/mpeg", "data": "SUQz"}},
            {"executableCode": {"language": "PYTHON", "code": "print(1)"}},
            {"codeExecutionResult": {"outcome": "OUTCOME_OK", "output": "1\n"}},
            {"videoMetadata": {"fps": 1}},
        )],
        "tools": [{"function_declarations": [{"name": "f", "parameters": {
            "type": "OBJECT", "properties": {"xs": {"type": "ARRAY", "items": {"type": "STRING"}, "max_items": "3", "nullable": True}},
            "propertyOrdering": ["xs"]}}]}, {"google_search": {}}],
        "generation_config": {"max_output_tokens": 10, "top_k": 40.0, "candidate_count": 2, "response_logprobs": True, "logprobs": 3,
                              "response_mime_type": "application/json", "response_schema": {"type": "STRING", "enum": ["a", "b"]}},
        "safety_settings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
    }
    req = gi.parse_request(body)
    assert req.messages[0].parts == [
        n.Text("look"),
        n.Image(data="UklGR", media_type="image/webp"),
        n.Document(url="https://example.com/a.pdf", media_type="application/pdf"),
        n.Audio(data="SUQz", format="mp3"),
        n.Text("```python\nprint(1)\n```"),
        n.Text("1\n"),
    ]
    assert req.tools[0].parameters == {
        "type": "object", "properties": {"xs": {"type": ["array", "null"], "items": {"type": "string"}, "maxItems": 3}}}
    assert (req.max_tokens, req.top_k, req.n, req.logprobs, req.top_logprobs) == (10, 40, 2, True, 3)
    assert req.response_format == n.ResponseFormat("json_schema", {"type": "string", "enum": ["a", "b"]}, "response")
    assert req.extras == {"safety_settings": body["safety_settings"], "tools": [{"google_search": {}}]}, "kept as spelled"


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"thinkingBudget": 0}, n.Reasoning(enabled=False)),
        ({"thinkingBudget": -1, "includeThoughts": True}, n.Reasoning(summary=True)),
        ({"thinkingBudget": 2048}, n.Reasoning(budget_tokens=2048)),
        ({"thinkingLevel": "low"}, n.Reasoning(effort="low")),
        ({"thinking_level": "XHIGH"}, n.Reasoning(effort="high")),
        ({"includeThoughts": True}, n.Reasoning(summary=True)),
    ],
)
def test_parse_thinking_config(config: dict[str, Any], expected: n.Reasoning) -> None:
    req = gi.parse_request({"contents": [user({"text": "x"})], "generationConfig": {"thinkingConfig": config}})
    assert req.reasoning == expected


def test_tool_config_modes() -> None:
    decls = [{"functionDeclarations": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}]

    def choice(fcc: dict[str, Any]) -> tuple[n.ToolChoice | None, list[str]]:
        req = gi.parse_request({"contents": [user({"text": "x"})], "tools": decls, "toolConfig": {"functionCallingConfig": fcc}})
        return req.tool_choice, [t.name for t in req.tools]

    assert choice({"mode": "AUTO"}) == (n.ToolChoice("auto"), ["a", "b", "c"])
    assert choice({"mode": "VALIDATED"}) == (n.ToolChoice("auto"), ["a", "b", "c"])
    assert choice({"mode": "NONE"}) == (n.ToolChoice("none"), ["a", "b", "c"])
    assert choice({"mode": "ANY"}) == (n.ToolChoice("required"), ["a", "b", "c"])
    assert choice({"mode": "ANY", "allowedFunctionNames": ["b"]}) == (n.ToolChoice("tool", "b"), ["a", "b", "c"])
    assert choice({"mode": "ANY", "allowedFunctionNames": ["a", "c"]}) == (n.ToolChoice("required"), ["a", "c"])


# ====================================================================== features


def test_features_used_reads_the_raw_body() -> None:
    assert g.SSE_STREAM.features_used(cli_body()) == {"streaming": True, "tools": True, "systemPrompt": True, "reasoning": True}
    assert g.ADAPTER.features_used(cli_body()) == {"tools": True, "systemPrompt": True, "reasoning": True}
    body = {
        "contents": [user({"text": "x"}, {"inlineData": {"mimeType": "image/png", "data": ""}},
                          {"fileData": {"fileUri": "gs://b/report.pdf"}}, {"inline_data": {"mime_type": "audio/wav", "data": ""}},
                          {"fileData": {"mimeType": "video/mp4", "fileUri": "https://youtu.be/x"}})],
        "tools": [{"googleSearch": {}}],
        "generationConfig": {"stopSequences": ["a", "b", "c"], "maxOutputTokens": 99, "candidateCount": 3, "seed": 1,
                             "topK": 5, "responseLogprobs": True, "responseMimeType": "application/json",
                             "thinkingConfig": {"thinkingBudget": 0}},
    }
    assert g.ARRAY_STREAM.features_used(body) == {
        "streaming": True, "vision": True, "documents": True, "audio": True, "video": True, "stopSequences": 3,
        "maxOutputTokens": 99, "multipleChoices": 3, "seed": True, "topK": True, "logprobs": True, "jsonMode": True,
    }  # hosted tools alone are not function tools; a zero budget asks for no reasoning
    schema = {"contents": [user({"text": "x"})], "generationConfig": {"responseMimeType": "application/json", "responseJsonSchema": {}}}
    assert gi.features_used(schema) == {"structuredOutput": True}


# =================================================================== passthrough


def test_passthrough_keeps_unknown_fields_and_never_mutates() -> None:
    body = cli_body()
    body["generationConfig"]["stopSequences"] = ["x", "y", "z"]
    body["generationConfig"]["futureKnob"] = 1
    body["contents"][0]["parts"].append({"inlineData": {"mimeType": "image/png", "data": "AAAA"}})
    body["contents"][0]["parts"].append({"inlineData": {"mimeType": "application/pdf", "data": "JVBE"}})
    before = copy.deepcopy(body)
    out = gi.prepare_passthrough(body, tier(), {})
    assert out == body and "model" not in out, "the model is in the URL, never the body"
    out = gi.prepare_passthrough(body, tier(), {"stopSequences": 1, "maxOutputTokens": 64, "reasoning": None, "vision": None, "systemPrompt": None})
    assert body == before, "prepare_passthrough never mutates its input"
    assert out["session_hint"] == {"opaque": True} and out["generationConfig"]["futureKnob"] == 1
    assert out["generationConfig"]["stopSequences"] == ["x"] and out["generationConfig"]["maxOutputTokens"] == 64
    assert "thinkingConfig" not in out["generationConfig"] and "systemInstruction" not in out
    assert [list(p) for p in out["contents"][0]["parts"]] == [["text"], ["inlineData"]]  # the PDF stays, the image goes
    stripped = gi.prepare_passthrough(body, tier(), {"tools": None, "topK": None})
    assert "tools" not in stripped and "toolConfig" not in stripped and stripped["contents"] == body["contents"]


def test_passthrough_edits_snake_case_fields() -> None:
    body = {"contents": [user({"text": "x"})], "generation_config": {"max_output_tokens": 10, "seed": 3, "response_mime_type": "application/json"}}
    out = gi.prepare_passthrough(body, tier(), {"maxOutputTokens": 5, "seed": None, "jsonMode": None})
    assert out == {"contents": body["contents"], "generation_config": {"max_output_tokens": 5}}
    assert body["generation_config"] == {"max_output_tokens": 10, "seed": 3, "response_mime_type": "application/json"}


def test_passthrough_call_per_view_and_credentials() -> None:
    t = tier()
    whole = g.ADAPTER.build_passthrough_call({"contents": []}, t, {"x-goog-api-key": "client-key"})
    sse = g.SSE_STREAM.build_passthrough_call({"contents": []}, t, {})
    array = g.ARRAY_STREAM.build_passthrough_call({"contents": []}, t, {})
    base = "https://generativelanguage.googleapis.com/v1beta/models/gemini-tier-model"
    assert (whole.url, whole.stream) == (base + ":generateContent", False)
    assert (sse.url, sse.stream) == (base + ":streamGenerateContent?alt=sse", True)
    assert (array.url, array.stream) == (base + ":streamGenerateContent", True)
    assert whole.headers["x-goog-api-key"] == "sk-tier-key"
    assert orjson.loads(whole.body or b"") == {"contents": []}
    assert (g.SSE_STREAM.sse_content_type, g.ARRAY_STREAM.sse_content_type) == ("text/event-stream", "application/json")


def test_urls_respect_versioned_base_urls_and_model_paths() -> None:
    req = n.Request(model="a", messages=[n.Message("user", [n.Text("x")])])
    t = tier(base_url="http://localhost:9/v1alpha/").model_copy(update={"model": "tunedModels/mine"})
    assert ge.build_call(req, t).url == "http://localhost:9/v1alpha/tunedModels/mine:generateContent"
    t = tier().model_copy(update={"model": "models/gemini-2.5-pro"})
    assert ge.build_call(req, t).url.endswith("/v1beta/models/gemini-2.5-pro:generateContent")


# ======================================================================== egress


def _body(req: n.Request, t: CompiledTier | None = None) -> dict[str, Any]:
    return orjson.loads(ge.build_call(req, t or tier()).body or b"")


def test_egress_tool_results_take_the_name_of_their_call() -> None:
    req = n.Request(model="a", messages=[
        n.Message("user", [n.Text("go")]),
        n.Message("assistant", [n.ToolCall("call_1", "lookup", '{"q":"x"}'), n.ToolCall("call_2", "lookup", "not json")]),
        n.Message("user", [n.ToolResult("call_1", [n.Text("found")]), n.ToolResult("call_2", [n.Text("bad")], is_error=True),
                           n.Image(data="AAAA", media_type="image/png")]),
    ])
    contents = _body(req)["contents"]
    assert contents[1]["parts"] == [
        {"functionCall": {"name": "lookup", "args": {"q": "x"}}, "thoughtSignature": ge.SENTINEL_SIGNATURE},
        {"functionCall": {"name": "lookup", "args": {"_raw": "not json"}}},
    ]
    assert contents[2]["parts"] == [
        {"functionResponse": {"name": "lookup", "response": {"output": "found"}}},
        {"functionResponse": {"name": "lookup", "response": {"error": "bad"}}},
        {"inlineData": {"mimeType": "image/png", "data": "AAAA"}},
    ]
    orphan = n.Request(model="a", messages=[n.Message("user", [n.ToolResult("call_9", [n.Text("x")])])])
    with pytest.raises(RequestError, match="names no function and no earlier tool call"):
        ge.build_call(orphan, tier())


def test_egress_signatures_only_gemini_ones_and_placeholder_in_the_active_loop() -> None:
    req = n.Request(model="a", messages=[
        n.Message("user", [n.Text("first task")]),
        n.Message("assistant", [n.ToolCall("c1", "f", "{}")]),  # an earlier turn: left alone
        n.Message("user", [n.ToolResult("c1", [n.Text("ok")])]),
        n.Message("assistant", [n.Text("done")]),
        n.Message("user", [n.Text("second task")]),
        n.Message("assistant", [n.Thinking("anthropic thought", "anthropic-sig", origin="anthropic-messages"),
                                n.Thinking("gemini thought", origin="gemini"), n.Thinking(signature=SIG, origin="gemini"),
                                n.ToolCall("c2", "f", "{}")]),
        n.Message("user", [n.ToolResult("c2", [n.Text("ok")])]),
        n.Message("assistant", [n.Text("calling again"), n.ToolCall("c3", "f", "{}"), n.ToolCall("c4", "f", "{}")]),
        n.Message("user", [n.ToolResult("c3", [n.Text("ok")]), n.ToolResult("c4", [n.Text("ok")])]),
    ])
    contents = _body(req)["contents"]
    assert contents[1]["parts"] == [{"functionCall": {"name": "f", "args": {}}}]
    assert contents[5]["parts"] == [
        {"text": "gemini thought", "thought": True},
        {"functionCall": {"name": "f", "args": {}}, "thoughtSignature": SIG},  # the real one, kept
    ]
    assert contents[7]["parts"] == [
        {"text": "calling again"},
        {"functionCall": {"name": "f", "args": {}}, "thoughtSignature": ge.SENTINEL_SIGNATURE},
        {"functionCall": {"name": "f", "args": {}}},
    ]


@pytest.mark.parametrize(
    ("reasoning", "mode", "expected"),
    [
        (n.Reasoning(effort="high"), "budget", {"thinkingBudget": 24576}),
        (n.Reasoning(budget_tokens=3000, summary=True), "budget", {"thinkingBudget": 3000, "includeThoughts": True}),
        (n.Reasoning(enabled=False, summary=True), "budget", {"thinkingBudget": 0}),
        (n.Reasoning(summary=True), None, {"includeThoughts": True}),
        (n.Reasoning(effort="medium"), "effort", {"thinkingLevel": "MEDIUM"}),
        (n.Reasoning(budget_tokens=30000), "effort", {"thinkingLevel": "HIGH"}),
        (n.Reasoning(enabled=False), "effort", {"thinkingLevel": "LOW"}),
        (n.Reasoning(effort="high"), "none", None),
    ],
)
def test_egress_thinking_config_follows_the_profile(reasoning: n.Reasoning, mode: str | None, expected: dict[str, Any] | None) -> None:
    req = n.Request(model="a", messages=[n.Message("user", [n.Text("x")])], reasoning=reasoning)
    t = tier(reasoning=mode) if mode else tier()
    assert _body(req, t).get("generationConfig", {}).get("thinkingConfig") == expected


def test_egress_sampling_ranges_and_formats() -> None:
    req = n.Request(model="a", messages=[n.Message("user", [n.Text("x")])], temperature=3.5, top_p=1.5, top_k=20,
                    logprobs=True, top_logprobs=2, n=2, response_format=n.ResponseFormat("json_object"),
                    user="u", metadata={"k": "v"}, extras={"frequency_penalty": 1}, origin="openai-chat")
    body = _body(req)
    assert body == {"contents": [{"role": "user", "parts": [{"text": "x"}]}], "generationConfig": {
        "temperature": 2.0, "topP": 1.0, "topK": 20, "candidateCount": 2, "responseLogprobs": True, "logprobs": 2,
        "responseMimeType": "application/json"}}, "another protocol's extras and user/metadata never reach Gemini"


def test_egress_media_parts() -> None:
    req = n.Request(model="a", messages=[n.Message("user", [
        n.Image(url="https://example.com/a.png"), n.Image(data="AAAA"), n.Image(url="https://example.com/noext"),
        n.Document(data="JVBE"), n.Document(text="plain notes"), n.Document(url="gs://bucket/doc.pdf"),
        n.Audio(data="UklG", format="wav"),
    ])])
    assert _body(req)["contents"][0]["parts"] == [
        {"fileData": {"mimeType": "image/png", "fileUri": "https://example.com/a.png"}},
        {"inlineData": {"mimeType": "image/png", "data": "AAAA"}},
        {"fileData": {"fileUri": "https://example.com/noext"}},
        {"inlineData": {"mimeType": "application/pdf", "data": "JVBE"}},
        {"text": "plain notes"},
        {"fileData": {"mimeType": "application/pdf", "fileUri": "gs://bucket/doc.pdf"}},
        {"inlineData": {"mimeType": "audio/wav", "data": "UklG"}},
    ]


# ===================================================================== responses


@pytest.mark.parametrize(
    ("reason", "calls", "expected"),
    [
        ("STOP", False, "stop"), ("STOP", True, "tool_calls"), ("MAX_TOKENS", False, "length"),
        ("SAFETY", False, "content_filter"), ("RECITATION", False, "content_filter"), ("BLOCKLIST", False, "content_filter"),
        ("PROHIBITED_CONTENT", False, "content_filter"), ("SPII", False, "content_filter"),
        ("MALFORMED_FUNCTION_CALL", False, "error"), ("OTHER", False, "stop"), ("SOMETHING_NEW", True, "tool_calls"),
    ],
)
def test_parse_response_finish_reasons(reason: str, calls: bool, expected: str) -> None:
    parts: list[dict[str, Any]] = [{"text": "x"}] + ([{"functionCall": {"name": "f", "args": {}}}] if calls else [])
    resp = ge.parse_response({"candidates": [{"content": {"parts": parts, "role": "model"}, "finishReason": reason, "index": 0}]})
    assert resp.choices[0].finish_reason == expected


def test_parse_response_usage_ids_and_blocked_prompt() -> None:
    resp = ge.parse_response({
        "candidates": [{"content": {"parts": [{"text": "hm", "thought": True, "thoughtSignature": SIG},
                                              {"functionCall": {"id": "x1", "name": "f", "args": {"a": [1]}}}], "role": "model"},
                        "finishReason": "STOP"}],
        "usageMetadata": {"promptTokenCount": 100, "candidatesTokenCount": 10, "thoughtsTokenCount": 5,
                          "cachedContentTokenCount": 60, "toolUsePromptTokenCount": 7, "totalTokenCount": 122},
        "modelVersion": "gemini-2.5-pro", "responseId": "r1",
    })
    assert resp.id == "r1" and resp.model == "gemini-2.5-pro"
    assert resp.choices[0].parts == [n.Thinking("hm", SIG, origin="gemini"), n.ToolCall("x1", "f", '{"a":[1]}')]
    assert resp.usage == n.Usage(input_tokens=107, output_tokens=15, cached_input_tokens=60, reasoning_tokens=5)
    blocked = ge.parse_response({"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}})
    assert blocked.choices == [n.Choice([], "content_filter")]
    assert ge.parse_response({"candidates": [{"content": {"role": "model"}, "finishReason": "STOP"}]}).choices[0].parts == []
    code = ge.parse_response({"candidates": [{"content": {"parts": [
        {"executableCode": {"language": "PYTHON", "code": "print(2)"}, "thoughtSignature": SIG},
        {"codeExecutionResult": {"outcome": "OUTCOME_OK", "output": "2\n"}}]}, "finishReason": "STOP"}]})
    assert code.choices[0].parts == [n.Thinking(signature=SIG, origin="gemini"), n.Text("```python\nprint(2)\n```"), n.Text("2\n")]


RATE = {"error": {"code": 429, "message": "You exceeded your current quota. Please retry in 37.2s.", "status": "RESOURCE_EXHAUSTED",
                  "details": [{"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": []},
                              {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "37s"}]}}


@pytest.mark.parametrize(
    ("status", "raw", "kind", "quota", "missing"),
    [
        (429, RATE, "RESOURCE_EXHAUSTED", True, False),
        (429, [RATE], "RESOURCE_EXHAUSTED", True, False),  # the JSON-array endpoint wraps errors in a list
        (404, {"error": {"code": 404, "message": "models/gemini-9 is not found for API version v1beta, or is not supported for generateContent.",
                         "status": "NOT_FOUND"}}, "NOT_FOUND", False, True),
        (400, {"error": {"code": 400, "message": "API key not valid. Please pass a valid API key.", "status": "INVALID_ARGUMENT",
                         "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}]}},
         "INVALID_ARGUMENT", False, False),
        (503, {"error": {"code": 503, "message": "The model is overloaded. Please try again later.", "status": "UNAVAILABLE"}}, "UNAVAILABLE", False, False),
    ],
)
def test_read_error(status: int, raw: Any, kind: str, quota: bool, missing: bool) -> None:
    info = ge.read_error(status, orjson.dumps(raw), {})
    assert (info.kind, info.quota, info.model_not_found) == (kind, quota, missing)
    first = raw[0] if isinstance(raw, list) else raw
    assert info.message == first["error"]["message"]


def test_read_error_of_a_non_json_body_and_the_retry_delay() -> None:
    info = ge.read_error(502, b"<html>Bad   gateway</html>", {})
    assert info.message == "<html>Bad gateway</html>" and info.kind is None
    assert ge.retry_delay_seconds(orjson.dumps(RATE)) == 37.0
    assert ge.retry_delay_seconds(orjson.dumps([RATE])) == 37.0
    nested = {"error": {"details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "0.250s"}]}}
    assert ge.retry_delay_seconds(orjson.dumps(nested)) == 0.25
    assert ge.retry_delay_seconds(b"{}") is None and ge.retry_delay_seconds(b"nope") is None


# ====================================================================== decoders


def chunk(parts: list[dict[str, Any]] | None, finish: str | None = None, usage: dict[str, Any] | None = None) -> dict[str, Any]:
    cand: dict[str, Any] = {"content": {"parts": parts, "role": "model"} if parts else {"role": "model"}, "index": 0}
    if finish:
        cand["finishReason"] = finish
    out: dict[str, Any] = {"candidates": [cand]}
    out["usageMetadata"] = usage or {"promptTokenCount": 9, "totalTokenCount": 9}
    out["modelVersion"] = "gemini-2.5-flash"
    out["responseId"] = "resp-1"
    return out


CHUNKS = [
    chunk([{"text": "Think \"]}[{ hard", "thought": True}]),
    chunk([{"text": "Hé, \\\"ok\\\" ]"}]),
    chunk([{"functionCall": {"name": "f", "args": {"s": "}]"}}, "thoughtSignature": SIG}, {"functionCall": {"name": "g"}}], "STOP",
          {"promptTokenCount": 9, "candidatesTokenCount": 4, "thoughtsTokenCount": 2, "totalTokenCount": 15}),
]
SSE_STREAM = b"".join(b"data: " + orjson.dumps(c) + b"\r\n\r\n" for c in CHUNKS)
ARRAY_STREAM = b"[" + b"\n,\r\n".join(orjson.dumps(c, option=orjson.OPT_INDENT_2) for c in CHUNKS) + b"\n]"


def decode(raw: bytes, splits: list[int]) -> tuple[list[n.Event], bytes, bool]:
    d = gs.StreamDecoder()
    events: list[n.Event] = []
    raws = b""
    bounds = [0, *splits, len(raw)]
    for a, b in zip(bounds, bounds[1:]):
        for item in d.feed(raw[a:b]):
            events += item.events
            raws += item.raw
    for item in d.close():
        events += item.events
        raws += item.raw
    return events, raws, d.complete


def test_decoder_events() -> None:
    events, _, complete = decode(SSE_STREAM, [])
    ids = [e.id for e in events if isinstance(e, n.ToolCallStart)]
    assert events == [
        n.StreamStart("resp-1", "gemini-2.5-flash"),
        n.ThinkingDelta('Think "]}[{ hard', origin=gw.PROTOCOL),
        n.TextDelta('Hé, \\"ok\\" ]'),
        n.ThinkingDelta(signature=SIG, origin=gw.PROTOCOL),
        n.ToolCallStart(0, ids[0], "f"), n.ToolCallDelta(0, '{"s":"}]"}'),
        n.ToolCallStart(1, ids[1], "g"), n.ToolCallDelta(1, "{}"),
        n.StreamFinish("tool_calls"),
        n.StreamUsage(n.Usage(input_tokens=9, output_tokens=6, reasoning_tokens=2)),
    ]
    assert complete and len(set(ids)) == 2


def same_bytes(raws: bytes, stream: bytes) -> bool:
    """Raw bytes of the events are the stream as received, at every split."""
    return raws == stream


@pytest.mark.parametrize("stream", [SSE_STREAM, ARRAY_STREAM], ids=["sse", "json-array"])
def test_decoder_at_every_byte_split(stream: bytes) -> None:
    whole, raws, complete = decode(stream, [])
    assert complete and raws == stream, "raw bytes of the events are the stream as received"
    strip = lambda evs: [e for e in evs if not isinstance(e, (n.ToolCallStart, n.ToolCallDelta))]  # noqa: E731
    for i in range(1, len(stream)):
        events, raws, complete = decode(stream, [i])
        assert strip(events) == strip(whole), i
        assert same_bytes(raws, stream) and complete, i
    for i in range(1, len(stream), 7):  # byte-by-byte feeding from a position on
        events, raws, complete = decode(stream, list(range(i, len(stream))))
        assert strip(events) == strip(whole) and same_bytes(raws, stream) and complete, i


def test_decoder_complete_needs_a_finish_and_a_clean_end() -> None:
    assert decode(b"data: " + orjson.dumps(chunk([{"text": "x"}])) + b"\r\n\r\n", [])[2] is False, "no finishReason"
    assert decode(SSE_STREAM[:-2], [])[2] is False, "an unterminated SSE event"
    assert decode(ARRAY_STREAM[:-1], [])[2] is False, "no closing bracket"
    assert decode(ARRAY_STREAM[:-30], [])[2] is False, "cut inside an element"
    assert decode(b"", [])[2] is False and decode(b"  \r\n", [])[2] is False


def test_decoder_usage_from_an_earlier_chunk_when_the_last_has_none() -> None:
    last = chunk(None, "MAX_TOKENS")
    del last["usageMetadata"]
    events, _, complete = decode(b"".join(b"data: " + orjson.dumps(c) + b"\n\n" for c in (chunk([{"text": "x"}]), last)), [])
    assert complete and events[-2:] == [n.StreamFinish("length"), n.StreamUsage(n.Usage(input_tokens=9))]


def test_decoder_reads_errors_and_closes_the_relayed_array() -> None:
    err = {"error": {"code": 429, "message": "Resource has been exhausted", "status": "RESOURCE_EXHAUSTED"}}
    events, _, complete = decode(b"data: " + orjson.dumps(chunk([{"text": "x"}])) + b"\n\ndata: " + orjson.dumps(err) + b"\n\n", [])
    assert events[-1] == n.StreamError(429, "rate_limited", "Resource has been exhausted") and not complete
    d = gs.StreamDecoder()
    items = d.feed(b"[" + orjson.dumps(chunk([{"text": "x"}])) + b",\r\n" + orjson.dumps({"error": {"code": 500, "message": "boom", "status": "INTERNAL"}}) + b"\n]")
    assert items[1].events == [n.StreamError(500, "upstream", "boom")]
    relayed = b"".join(i.raw for i in items[:2])
    assert isinstance(json.loads(relayed), list), "the client's array is closed right after the error element"
    assert items[2].raw == b"" and d.close() == [] and not d.complete
    bad = decode(b"data: {not json\n\n", [])[0]
    assert isinstance(bad[0], n.StreamError) and bad[0].status == 502


# ====================================================================== encoders


def neutral_stream(*, usage: bool = True) -> list[n.Event]:
    events: list[n.Event] = [
        n.StreamStart("up-1", "upstream-model"),
        n.ThinkingDelta("Reasoning."), n.ThinkingDelta(signature="anthropic-signature"),
        n.TextDelta("Checking "), n.TextDelta("both."),
        n.ToolCallStart(0, "call_a", "get_weather"), n.ToolCallDelta(0, '{"city":'), n.ToolCallDelta(0, '"Paris"}'),
        n.ToolCallStart(1, "call_b", "get_time"), n.ToolCallDelta(1, ""),
        n.StreamFinish("tool_calls"),
    ]
    if usage:
        events.append(n.StreamUsage(n.Usage(input_tokens=50, output_tokens=20, cached_input_tokens=10, reasoning_tokens=5)))
    return events


def encode_all(enc: gs.StreamEncoder, events: list[n.Event]) -> bytes:
    out = enc.start()
    for ev in events:
        out += enc.encode(ev)
    return out + enc.finish()


def sse_chunks(raw: bytes) -> list[dict[str, Any]]:
    d = SSEDecoder()
    out = [json.loads(e.data) for e in d.feed(raw)]
    d.flush()
    assert not d.truncated
    return out


def test_sse_encoder_chunks_parse_as_sdk_responses() -> None:
    raw = encode_all(gs.StreamEncoder(alias="assistant", request=None), neutral_stream())
    chunks = [types.GenerateContentResponse.model_validate(c) for c in sse_chunks(raw)]
    assert [c.candidates[0].content.parts[0].thought for c in chunks[:1]] == [True]
    assert "".join(c.text or "" for c in chunks[1:3]) == "Checking both."
    last = chunks[-1]
    assert [(fc.id, fc.name, fc.args) for fc in last.function_calls or []] == [
        ("call_a", "get_weather", {"city": "Paris"}), ("call_b", "get_time", {})]
    assert last.candidates[0].finish_reason == types.FinishReason.STOP
    um = last.usage_metadata
    assert (um.prompt_token_count, um.candidates_token_count, um.thoughts_token_count, um.cached_content_token_count,
            um.total_token_count) == (50, 15, 5, 10, 70)
    assert all(c.model_version == "upstream-model" and c.response_id == chunks[0].response_id for c in chunks)
    assert b"anthropic-signature" not in raw, "a signature of unknown origin is never echoed to a Gemini client"
    assert all(c.candidates[0].finish_reason is None for c in chunks[:-1]), "only the last chunk finishes"


def test_json_array_encoder_writes_one_valid_array() -> None:
    raw = encode_all(gs.StreamEncoder(alias="assistant", request=None, sse=False), neutral_stream(usage=False))
    assert raw.startswith(b"[{") and raw.endswith(b"}]") and b",\r\n" in raw
    items = json.loads(raw)
    responses = [types.GenerateContentResponse.model_validate(x) for x in items]
    assert len(responses) == 4 and responses[-1].candidates[0].finish_reason == types.FinishReason.STOP
    assert responses[-1].usage_metadata is None
    single = encode_all(gs.StreamEncoder(alias="assistant", request=None, sse=False), [n.TextDelta("hi"), n.StreamFinish("length")])
    assert [x["candidates"][0].get("finishReason") for x in json.loads(single)] == [None, "MAX_TOKENS"]


def test_encoder_flushes_calls_before_later_text_and_per_choice() -> None:
    enc = gs.StreamEncoder(alias="a", request=None)
    raw = encode_all(enc, [
        n.ToolCallStart(0, "c1", "f"), n.ToolCallDelta(0, '{"x":1}'), n.TextDelta("after"),
        n.TextDelta("other", choice=1), n.StreamFinish("stop", choice=1), n.StreamFinish("tool_calls", choice=0),
    ])
    chunks = sse_chunks(raw)
    assert chunks[0]["candidates"] == [{"content": {"parts": [{"functionCall": {"id": "c1", "name": "f", "args": {"x": 1}}}], "role": "model"}, "index": 0}]
    assert chunks[1]["candidates"][0]["content"]["parts"] == [{"text": "after"}]
    assert chunks[2]["candidates"][0]["index"] == 1
    assert [(c["index"], c["finishReason"]) for c in chunks[-1]["candidates"]] == [(0, "STOP"), (1, "STOP")]


def test_error_rendering_in_both_stream_forms_never_finishes_cleanly() -> None:
    enc = gs.StreamEncoder(alias="a", request=None)
    raw = enc.start() + enc.encode(n.TextDelta("partial")) + enc.encode(n.StreamFinish("stop"))
    raw += enc.error(502, "upstream", "the upstream connection broke mid-stream")
    chunks = sse_chunks(raw)
    assert chunks[-1] == {"error": {"code": 502, "message": "the upstream connection broke mid-stream", "status": "INTERNAL"}}
    assert all("finishReason" not in c.get("candidates", [{}])[0] for c in chunks), "no clean finish before the error"

    arr = gs.StreamEncoder(alias="a", request=None, sse=False)
    raw = arr.start() + arr.encode(n.TextDelta("partial")) + arr.error(504, "timeout", "too slow")
    items = json.loads(raw)
    assert items[-1] == {"error": {"code": 504, "message": "too slow", "status": "DEADLINE_EXCEEDED"}}
    assert not any("finishReason" in c for x in items[:-1] for c in x["candidates"])
    empty = gs.StreamEncoder(alias="a", request=None, sse=False)
    assert json.loads(empty.start() + empty.error(429, "rate_limited", "slow down"))[0]["error"]["status"] == "RESOURCE_EXHAUSTED"
    relay = gs.StreamEncoder(alias="a", request=None, sse=False)  # after forwarded upstream elements (passthrough)
    upstream = b"[" + orjson.dumps(chunk([{"text": "x"}]))
    assert json.loads(upstream + relay.error(502, "upstream", "cut"))[-1]["error"]["code"] == 502


def test_render_response_validates_as_an_sdk_response() -> None:
    resp = n.Response(id="r-1", model="upstream-model", usage=n.Usage(7, 3, 2, 0, 1), choices=[
        n.Choice([n.Thinking("mine", SIG, origin="gemini"), n.Thinking(signature="foreign", origin="anthropic-messages"),
                  n.Thinking("theirs", "foreign", origin="anthropic-messages"), n.Text("Hello"),
                  n.Thinking(signature=SIG, origin="gemini"), n.ToolCall("call_1", "f", '{"a":1}')], "tool_calls"),
        n.Choice([n.Text("cut")], "length"),
        n.Choice([], "content_filter"),
    ])
    body = gi.render_response(resp, alias="assistant")
    sdk = types.GenerateContentResponse.model_validate(body)
    parts = body["candidates"][0]["content"]["parts"]
    assert parts == [
        {"text": "mine", "thought": True, "thoughtSignature": SIG},
        {"text": "theirs", "thought": True},
        {"text": "Hello"},
        {"functionCall": {"id": "call_1", "name": "f", "args": {"a": 1}}, "thoughtSignature": SIG},
    ]
    assert [c.finish_reason for c in sdk.candidates] == [types.FinishReason.STOP, types.FinishReason.MAX_TOKENS, types.FinishReason.SAFETY]
    assert sdk.usage_metadata.total_token_count == 10 and sdk.usage_metadata.thoughts_token_count == 1
    assert sdk.response_id == "r-1" and sdk.model_version == "upstream-model"
    assert gi.render_response(n.Response(id="x", model="", choices=[]), alias="assistant")["modelVersion"] == "assistant"


# ================================================================== count tokens


def test_count_tokens_call_per_tier_protocol() -> None:
    from switchyard.sidecar.translate import anthropic_messages, openai_chat

    body = {"contents": [user({"text": "hi"})]}
    call = ge.count_call(tier(), body=body)
    assert call is not None and call.url.endswith("/v1beta/models/gemini-tier-model:countTokens")
    assert orjson.loads(call.body or b"") == body and call.headers["x-goog-api-key"] == "sk-tier-key"
    wrapped = {"generateContentRequest": {"model": "models/assistant", "contents": body["contents"], "generationConfig": {"seed": 1}}}
    call = ge.count_call(tier(), body=wrapped)
    assert orjson.loads(call.body or b"")["generateContentRequest"]["model"] == "models/gemini-tier-model"  # type: ignore[union-attr]
    assert wrapped["generateContentRequest"]["model"] == "models/assistant", "input not mutated"
    assert openai_chat.ADAPTER.count_call(tier("openai-chat"), request=gi.count_request(body, "assistant")) is None
    with_system = {**body, "systemInstruction": {"parts": [{"text": "sys"}]}}
    anthropic = anthropic_messages.ADAPTER.count_call(tier("anthropic-messages"), request=gi.count_request(with_system, "a"))
    assert anthropic is not None
    sent = orjson.loads(anthropic.body or b"")
    assert anthropic.url == "https://api.anthropic.com/v1/messages/count_tokens"
    assert set(sent) <= {"model", "messages", "system", "tools", "tool_choice", "thinking"} and "max_tokens" not in sent
    assert ge.read_count(b'{"promptTokensDetails": []}')[1] == {"promptTokensDetails": [], "totalTokens": 0}
    assert gi.render_count(anthropic_messages.read_count(b'{"input_tokens": 12}')[0]) == {"totalTokens": 12}


# ======================================================= the real routes, loopback


class FakeUpstream:
    """Records what reached it; answers like the Gemini or OpenAI API."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, dict[str, str], dict[str, Any]]] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1beta/models/{name}", self.gemini)
        app.router.add_post("/v1/chat/completions", self.chat)
        return app

    async def gemini(self, request: web.Request) -> web.StreamResponse:
        data = await request.json()
        self.seen.append((request.path, request.query_string, dict(request.headers), data))
        method = request.match_info["name"].rpartition(":")[2]
        if method == "countTokens":
            return web.json_response({"totalTokens": 31, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 31}]})
        chunks = [chunk([{"text": "Hello "}]), chunk([{"text": "from Gemini"}], "STOP",
                                                    {"promptTokenCount": 4, "candidatesTokenCount": 3, "totalTokenCount": 7})]
        if method == "generateContent":
            return web.json_response(chunks[1] | {"candidates": [chunks[1]["candidates"][0] | {"content": {"parts": [{"text": "Hello from Gemini"}], "role": "model"}}]})
        resp = web.StreamResponse(headers={"content-type": "text/event-stream" if request.query.get("alt") == "sse" else "application/json"})
        await resp.prepare(request)
        if request.query.get("alt") == "sse":
            for c in chunks:
                await resp.write(b"data: " + orjson.dumps(c) + b"\r\n\r\n")
        else:
            await resp.write(b"[" + orjson.dumps(chunks[0]))
            await resp.write(b"\n,\r\n" + orjson.dumps(chunks[1]) + b"\n]")
        return resp

    async def chat(self, request: web.Request) -> web.StreamResponse:
        data = await request.json()
        self.seen.append((request.path, request.query_string, dict(request.headers), data))
        if not data.get("stream"):
            return web.json_response({"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-x", "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "Hello from OpenAI"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}})
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        for c in [
            {"choices": [{"index": 0, "delta": {"role": "assistant", "content": "Let me check."}, "finish_reason": None}]},
            {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": ""}}]}, "finish_reason": None}]},
            {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{\"a\": 1}"}}]}, "finish_reason": None}]},
            {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
            {"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13}},
        ]:
            await resp.write(b"data: " + orjson.dumps({"id": "chatcmpl-x", "object": "chat.completion.chunk", "created": 1, "model": "gpt-x", **c}) + b"\n\n")
        await resp.write(b"data: [DONE]\n\n")
        return resp


@pytest.fixture
async def gateway() -> Any:
    from switchyard.sidecar.app import build_api_app
    from switchyard.sidecar.state import Runtime

    fake = FakeUpstream()
    upstream = TestServer(fake.app())
    await upstream.start_server()
    base = str(upstream.make_url("")).rstrip("/")

    def t(protocol: str) -> CompiledTier:
        return tier(protocol, base_url=base + ("/v1" if protocol == "openai-chat" else ""), maxContextTokens=1000, reasoning="budget")

    rt = Runtime()
    rt.install(CompiledConfig(bindings=[
        CompiledBinding(name="gem", aliases=["gem", "gemini-2.5.flash-like"], tiers=[t("gemini")]),
        CompiledBinding(name="gpt", aliases=["gpt"], tiers=[t("openai-chat")]),
        CompiledBinding(name="wild", aliases=["wild-*"], tiers=[t("gemini")]),
    ]).with_version())
    sidecar = TestServer(build_api_app(rt))
    await sidecar.start_server()
    root = str(sidecar.make_url("")).rstrip("/")
    client = genai.Client(api_key="client-key", http_options=types.HttpOptions(base_url=root))
    async with ClientSession() as http:
        yield client, fake, root, http
    await sidecar.close()
    await rt.upstreams.close()
    await upstream.close()


async def test_generate_content_same_protocol_keeps_unknown_fields(gateway: Any) -> None:
    client, fake, _, _ = gateway
    resp = await client.aio.models.generate_content(
        model="gemini-2.5.flash-like", contents="hi",
        config=types.GenerateContentConfig(system_instruction="be brief", http_options=types.HttpOptions(extra_body={"futureField": 1})),
    )
    assert resp.text == "Hello from Gemini" and resp.usage_metadata.total_token_count == 7
    path, query, headers, sent = fake.seen[-1]
    assert path == "/v1beta/models/gemini-tier-model:generateContent" and query == ""
    assert headers["x-goog-api-key"] == "sk-tier-key", "the tier's key, never the client's"
    assert sent["futureField"] == 1 and "model" not in sent and sent["systemInstruction"]["parts"] == [{"text": "be brief"}]


async def test_stream_same_protocol_relays_sse(gateway: Any) -> None:
    client, fake, _, _ = gateway
    chunks = [c async for c in await client.aio.models.generate_content_stream(model="gem", contents="hi")]
    assert "".join(c.text or "" for c in chunks) == "Hello from Gemini"
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP
    assert fake.seen[-1][0].endswith(":streamGenerateContent") and fake.seen[-1][1] == "alt=sse"


async def test_cross_protocol_whole_and_streamed_tool_call_in_the_sdk(gateway: Any) -> None:
    client, fake, _, _ = gateway
    resp = await client.aio.models.generate_content(model="gpt", contents="hi", config=types.GenerateContentConfig(max_output_tokens=20))
    assert resp.text == "Hello from OpenAI" and resp.candidates[0].finish_reason == types.FinishReason.STOP
    assert fake.seen[-1][0] == "/v1/chat/completions" and fake.seen[-1][3]["max_completion_tokens"] == 20
    tool = types.Tool(function_declarations=[types.FunctionDeclaration(name="f", parameters_json_schema={"type": "object"})])
    stream = await client.aio.models.generate_content_stream(model="gpt", contents="call f", config=types.GenerateContentConfig(tools=[tool]))
    chunks = [c async for c in stream]
    assert chunks[0].text == "Let me check."
    calls = [fc for c in chunks for fc in c.function_calls or []]
    assert [(fc.id, fc.name, fc.args) for fc in calls] == [("call_1", "f", {"a": 1})]
    assert chunks[-1].usage_metadata.prompt_token_count == 9
    assert fake.seen[-1][3]["stream"] is True and fake.seen[-1][3]["tools"][0]["function"]["name"] == "f"


async def test_json_array_streams_same_and_cross_protocol(gateway: Any) -> None:
    _, fake, root, http = gateway
    body = {"contents": [user({"text": "hi"})]}
    async with http.post(f"{root}/v1beta/models/gem:streamGenerateContent", json=body) as r:
        assert r.status == 200 and r.headers["content-type"].startswith("application/json")
        raw = await r.read()
    assert fake.seen[-1][1] == "", "the upstream is asked for the same (array) form"
    items = json.loads(raw)
    assert "".join(p["text"] for x in items for p in x["candidates"][0]["content"].get("parts", [])) == "Hello from Gemini"
    async with http.post(f"{root}/v1beta/models/gpt:streamGenerateContent", json=body) as r:
        items = json.loads(await r.read())
    assert items[0]["candidates"][0]["content"]["parts"] == [{"text": "Let me check."}]
    assert items[-1]["candidates"][0]["finishReason"] == "STOP"
    assert [types.GenerateContentResponse.model_validate(x).response_id for x in items]


async def test_count_tokens_route(gateway: Any) -> None:
    client, fake, root, http = gateway
    counted = await client.aio.models.count_tokens(model="gem", contents="hello there")
    assert counted.total_tokens == 31
    assert fake.seen[-1][0] == "/v1beta/models/gemini-tier-model:countTokens"
    before = len(fake.seen)
    with pytest.raises(genai_errors.ClientError) as info:
        await client.aio.models.count_tokens(model="gpt", contents="hello")
    assert info.value.code == 400 and info.value.status == "INVALID_ARGUMENT"
    assert "openai-chat" in info.value.message and "no token-counting endpoint" in info.value.message
    assert len(fake.seen) == before, "no prompt sent to a generation endpoint"
    async with http.post(f"{root}/v1beta/models/nope:countTokens", json={"contents": []}) as r:
        assert r.status == 404 and (await r.json())["error"]["status"] == "NOT_FOUND"


async def test_models_list_get_and_unknown_names(gateway: Any) -> None:
    default, _, root, http = gateway
    # The Python SDK defaults to /v1, whose GET /v1/models is OpenAI's list (routes.py);
    # Gemini CLI (JS SDK) and this client use /v1beta, where the list is Gemini's.
    client = genai.Client(api_key="client-key", http_options=types.HttpOptions(base_url=root, api_version="v1beta"))
    names = [m.name async for m in await client.aio.models.list()]
    assert names == ["models/gem", "models/gemini-2.5.flash-like", "models/gpt"], "prefix aliases are not models"
    got = await client.aio.models.get(model="gem")
    assert got.input_token_limit == 1000 and got.thinking is True and "generateContent" in got.supported_actions
    with pytest.raises(genai_errors.ClientError) as info:
        await client.aio.models.get(model="missing")
    assert info.value.code == 404
    with pytest.raises(genai_errors.ClientError) as info:
        await default.aio.models.generate_content(model="missing", contents="hi")
    assert info.value.code == 404 and info.value.status == "NOT_FOUND"
    async with http.get(f"{root}/v1beta/models", params={"pageSize": "2"}) as r:
        page = await r.json()
    assert len(page["models"]) == 2 and page["nextPageToken"] == "2"
    async with http.post(f"{root}/v1beta/models/gem:predict", json={}) as r:
        assert r.status == 404 and "embedContent" in (await r.json())["error"]["message"]  # the methods served are named
    async with http.post(f"{root}/v1beta/models/gem:embedContent", json={}) as r:  # served now (pipeline/embed.py)
        assert r.status == 400 and (await r.json())["error"]["status"] == "INVALID_ARGUMENT"
    async with http.post(f"{root}/v1beta/models/gem", json={}) as r:
        assert r.status == 404 and (await r.json())["error"]["status"] == "NOT_FOUND"
    async with http.post(f"{root}/v1beta/models/gpt:generateContent", json={"contents": "nope"}) as r:
        err = await r.json()
    assert r.status == 400 and err["error"] == {"code": 400, "message": "'contents' must be a non-empty array", "status": "INVALID_ARGUMENT"}


def test_response_json_schema_type_names_are_lower_cased_at_schema_positions_only() -> None:
    """Gemini CLI's routing call sends responseJsonSchema with Gemini's upper-case type names;
    they reached an OpenAI tier verbatim and an Anthropic tier refused them (found by the
    real-CLI tier)."""
    from switchyard.sidecar.translate.gemini import ingress as gi

    schema = {"type": "OBJECT", "properties": {"type": {"type": "STRING"}, "n": {"type": ["INTEGER", "NULL"]},
                                               "xs": {"type": "ARRAY", "items": {"type": "NUMBER"}}}, "required": ["type"]}
    req = gi.parse_request({"contents": [user({"text": "hi"})], "generationConfig": {"responseMimeType": "application/json",
                                                                                   "responseJsonSchema": schema}}, path_model="m")
    assert req.response_format is not None and req.response_format.schema == {
        "type": "object", "required": ["type"],
        "properties": {"type": {"type": "string"}, "n": {"type": ["integer", "null"]}, "xs": {"type": "array", "items": {"type": "number"}}},
    }
    assert schema["type"] == "OBJECT", "input not mutated"
