"""Gemini ``generateContent`` API (Google AI ``generativelanguage``), both faces.

Ingress: what Gemini CLI and the ``google-genai`` SDK send to
``POST /v1beta/models/{model}:generateContent`` and ``:streamGenerateContent`` (SSE with
``alt=sse``, else one JSON array written element by element) is parsed into the neutral
form; neutral answers and event streams are rendered back as ``GenerateContentResponse``
objects. The token count (``:countTokens``) and the model list
(``GET /v1beta/models[/{model}]``) have their pure halves here; their routes are in the
sidecar's HTTP layer (``sidecar/http``).

Egress: a neutral request becomes a ``generateContent`` / ``streamGenerateContent?alt=sse``
call with the key in ``x-goog-api-key``; answers and streams (SSE or JSON array) are read
back into neutral form; ``read_error`` reads Google's error body.

Gemini carries the model and the streaming choice in the URL, not in the body. The
pipeline hands those over through ``pipeline.handle(path_model=..., stream=...)``; the
URL facts the adapter itself needs (stream or not, SSE or JSON array) travel in a
*view*: ``ADAPTER`` (whole answers), ``SSE_STREAM`` and ``ARRAY_STREAM``, three
``Adapter`` objects that differ only in those facts. The route handler picks the view;
``adapter_for("gemini")`` gives ``ADAPTER``.

Field notes (checked against ai.google.dev's API reference and the google-genai SDK):

- Proto JSON: every field may be spelled lowerCamelCase or snake_case; both are read.
- Function calls arrive whole (``args`` is an object), never as argument deltas; the
  stream encoder buffers a call's neutral argument deltas and emits one
  ``functionCall`` part when the call is complete.
- ``functionCall.id`` / ``functionResponse.id`` are optional; results are matched by
  function name (in order). Ids are generated when absent (stable: from the position in
  the conversation) and results without an id take the oldest unanswered call of that
  name. Ids are *not* sent upstream: some API versions reject them ("Unknown name id").
- Thought signatures are opaque and only valid for Gemini: they are kept on Gemini
  paths, never sent elsewhere, and a model turn of the active tool loop whose first
  function call has no signature gets Google's documented placeholder
  ``skip_thought_signature_validator`` (Gemini 3 rejects unsigned function calls).
- There is no end-of-stream marker in Gemini SSE: a stream is complete when a chunk with
  ``finishReason`` was seen and the stream ended cleanly (the JSON-array form also needs
  its closing ``]``).

docs/protocols/gemini.md has the field-by-field table.
"""

from __future__ import annotations

import dataclasses
import mimetypes
import re
from collections import deque
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import orjson

from switchyard.sidecar import errors
from switchyard.sidecar.contract.config import CompiledTier
from switchyard.sidecar.errors import ErrorKind, GatewayError, clip

from . import neutral as n
from .base import (
    Adapter,
    DecodedEvent,
    RequestError,
    UpstreamCall,
    UpstreamErrorInfo,
    UpstreamFormatError,
    auth_headers,
)
from .common import args_object, args_text, budget_to_effort, clamp, effort_to_budget, expect, new_id
from .sse import SSEDecoder, encode

PROTOCOL = "gemini"

# Google's documented placeholder for a function call whose thought signature is unknown
# (history from another model or protocol): https://ai.google.dev/gemini-api/docs/thought-signatures
SENTINEL_SIGNATURE = "skip_thought_signature_validator"

_TOP_KNOWN = frozenset({"contents", "systemInstruction", "tools", "toolConfig", "generationConfig", "model"})
_GEN_KNOWN = frozenset(
    {
        "temperature", "topP", "topK", "maxOutputTokens", "stopSequences", "candidateCount", "seed",
        "responseMimeType", "responseSchema", "responseJsonSchema", "thinkingConfig", "responseLogprobs",
        "logprobs",
    }
)  # fmt: skip
# Part members that carry no content of their own (metadata); ignored on the neutral path.
_PART_META = frozenset({"thought", "thoughtSignature", "videoMetadata", "partMetadata", "mediaResolution"})

FINISH_IN: dict[str, n.FinishReason] = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "LANGUAGE": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "IMAGE_PROHIBITED_CONTENT": "content_filter",
    "IMAGE_RECITATION": "content_filter",
    "MALFORMED_FUNCTION_CALL": "error",
    "UNEXPECTED_TOOL_CALL": "error",
    "TOO_MANY_TOOL_CALLS": "error",
    "MISSING_THOUGHT_SIGNATURE": "error",
    "MALFORMED_RESPONSE": "error",
    "OTHER": "stop",
    "FINISH_REASON_UNSPECIFIED": "stop",
}
FINISH_OUT: dict[str | None, str] = {
    "stop": "STOP",
    "length": "MAX_TOKENS",
    "tool_calls": "STOP",
    "content_filter": "SAFETY",
    "pause": "STOP",
    "refusal": "SAFETY",
    "error": "OTHER",
    None: "STOP",
}
_LEVELS = {"MINIMAL": "minimal", "LOW": "low", "MEDIUM": "medium", "HIGH": "high", "XHIGH": "high"}


# ----------------------------------------------------------------------- helpers


@lru_cache(maxsize=512)
def _snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


def _key(d: Mapping[str, Any], name: str) -> str | None:
    """The key ``d`` uses for the proto field ``name`` (lowerCamel or snake_case)."""
    if name in d:
        return name
    s = _snake(name)
    return s if s in d else None


def _get(d: Any, name: str) -> Any:
    if not isinstance(d, dict):
        return None
    v = d.get(name)
    if v is None:
        v = d.get(_snake(name))
    return v


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(w[:1].upper() + w[1:] for w in rest)


def _num(d: dict[str, Any], name: str, where: str, *, integer: bool = False) -> Any:
    v = _get(d, name)
    if v is None:
        return None
    if isinstance(v, str) and integer and re.fullmatch(r"-?\d+", v):
        return int(v)  # proto JSON may quote integers
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise RequestError(f"'{where}.{name}' must be a {'integer' if integer else 'number'}", f"{where}.{name}")
    if integer:
        if isinstance(v, float) and not v.is_integer():
            raise RequestError(f"'{where}.{name}' must be an integer", f"{where}.{name}")
        return int(v)
    return v


def _mime_of(mime: Any, uri: str | None = None) -> str | None:
    if isinstance(mime, str) and mime:
        return mime
    if uri:
        guess, _ = mimetypes.guess_type(uri.split("?")[0])
        return guess
    return None


def _media_feature(mime: str | None) -> str:
    major = (mime or "").split("/")[0]
    return {"image": "vision", "audio": "audio", "video": "video"}.get(major, "documents")


def _audio_format(mime: str) -> str:
    sub = mime.split("/", 1)[-1].split(";")[0]
    return {"mpeg": "mp3", "mp3": "mp3", "x-wav": "wav", "wave": "wav"}.get(sub, sub)


def _media(mime: str | None, *, data: str | None = None, url: str | None = None, title: Any = None) -> n.Part:
    kind = _media_feature(mime)
    if kind == "vision":
        return n.Image(url=url, data=data, media_type=mime)
    if kind == "audio" and data is not None:
        return n.Audio(data=data, format=_audio_format(mime or "audio/wav"))
    return n.Document(url=url, data=data, media_type=mime, title=title if isinstance(title, str) and title else None)


def schema_to_json(schema: Any) -> Any:
    """A Gemini ``Schema`` (OpenAPI 3.0 subset: upper-case types, ``nullable``, int64 as
    strings) as JSON Schema, for destinations that take JSON Schema."""
    if isinstance(schema, list):
        return [schema_to_json(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for k, v in schema.items():
        k = _camel(k)
        if k == "type":
            if isinstance(v, str) and v.upper() != "TYPE_UNSPECIFIED":
                out["type"] = v.lower()
        elif k in ("nullable", "propertyOrdering", "example"):
            continue
        elif k == "properties" and isinstance(v, dict):
            out[k] = {name: schema_to_json(sub) for name, sub in v.items()}
        elif k in ("items", "not") or (k == "additionalProperties" and isinstance(v, dict)):
            out[k] = schema_to_json(v)
        elif k in ("anyOf", "oneOf", "allOf", "prefixItems"):
            out[k] = schema_to_json(v)
        elif k in ("minItems", "maxItems", "minLength", "maxLength", "minProperties", "maxProperties") and isinstance(v, str) and v.isdigit():
            out[k] = int(v)
        else:
            out[k] = v
    if schema.get("nullable") is True and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


# ====================================================================== ingress


class _CallIds:
    """Tool-call ids for one Gemini conversation: the client's when it sent them, else
    stable ones made from the position; a result without an id answers the oldest
    unanswered call of its function name (Gemini matches by name, in order)."""

    def __init__(self) -> None:
        self.pending: dict[str, deque[str]] = {}

    def call(self, given: Any, name: str, i: int, j: int) -> str:
        cid = given if isinstance(given, str) and given else f"call_g{i}_{j}"
        self.pending.setdefault(name, deque()).append(cid)
        return cid

    def result(self, given: Any, name: str, i: int, j: int) -> str:
        queue = self.pending.get(name)
        if isinstance(given, str) and given:
            if queue and given in queue:
                queue.remove(given)
            return given
        if queue:
            return queue.popleft()
        return f"call_g{i}_{j}"


def _result_content(response: Any) -> tuple[list[n.Part], bool]:
    """``functionResponse.response`` as neutral content. Google's convention: the output
    under "output", an error under "error"; anything else is kept whole as JSON text."""
    if response is None:
        return [], False
    if isinstance(response, dict) and len(response) == 1:
        (k, v), = response.items()
        if k in ("output", "error"):
            text = v if isinstance(v, str) else orjson.dumps(v).decode()
            return ([n.Text(text)] if text else []), k == "error"
    return [n.Text(orjson.dumps(response).decode())], False


def _code_text(p: dict[str, Any]) -> n.Text | None:
    """Code execution parts (Gemini runs the code) as text other protocols can carry."""
    if (code := _get(p, "executableCode")) is not None:
        lang = str(_get(code, "language") or "").lower().replace("language_unspecified", "")
        return n.Text(f"```{lang}\n{_get(code, 'code') or ''}\n```")
    output = _get(_get(p, "codeExecutionResult"), "output")
    return n.Text(str(output)) if output else None


def _parse_part(p: Any, where: str, ids: _CallIds, i: int, j: int, out: list[n.Part]) -> None:
    expect(isinstance(p, dict), f"'{where}' must be an object", where)
    sig = _get(p, "thoughtSignature")
    sig = sig if isinstance(sig, str) and sig else None
    text = p.get("text")
    if isinstance(text, str):
        if _get(p, "thought") is True:
            out.append(n.Thinking(text=text, signature=sig, origin=PROTOCOL))
            return
        if sig:  # a signature riding on an answer part: the thought before it
            out.append(n.Thinking(signature=sig, origin=PROTOCOL))
        if text:
            out.append(n.Text(text))
        return
    expect(text is None, f"'{where}.text' must be a string", where)
    if sig:
        out.append(n.Thinking(signature=sig, origin=PROTOCOL))
    if (fc := _get(p, "functionCall")) is not None:
        expect(isinstance(fc, dict) and isinstance(fc.get("name"), str) and bool(fc["name"]), f"'{where}.functionCall.name' is required", where)
        args = fc.get("args")
        expect(args is None or isinstance(args, dict), f"'{where}.functionCall.args' must be an object", where)
        out.append(n.ToolCall(ids.call(fc.get("id"), fc["name"], i, j), fc["name"], args_text(args)))
    elif (fr := _get(p, "functionResponse")) is not None:
        expect(isinstance(fr, dict) and isinstance(fr.get("name"), str) and bool(fr["name"]), f"'{where}.functionResponse.name' is required", where)
        response = fr.get("response")
        expect(response is None or isinstance(response, dict), f"'{where}.functionResponse.response' must be an object", where)
        content, is_error = _result_content(response)
        for k, mp in enumerate(fr.get("parts") or []):
            media: list[n.Part] = []
            _parse_part(mp, f"{where}.functionResponse.parts[{k}]", ids, i, j, media)
            content.extend(x for x in media if not isinstance(x, (n.ToolCall, n.ToolResult, n.Thinking)))
        out.append(n.ToolResult(ids.result(fr.get("id"), fr["name"], i, j), content, is_error, fr["name"]))
    elif (inline := _get(p, "inlineData")) is not None:
        data = _get(inline, "data")
        expect(isinstance(data, str), f"'{where}.inlineData.data' must be a base64 string", where)
        mime = _mime_of(_get(inline, "mimeType"))
        expect(mime is not None, f"'{where}.inlineData.mimeType' is required", where)
        out.append(_media(mime, data=data, title=_get(inline, "displayName")))
    elif (fd := _get(p, "fileData")) is not None:
        uri = _get(fd, "fileUri")
        expect(isinstance(uri, str) and bool(uri), f"'{where}.fileData.fileUri' is required", where)
        out.append(_media(_mime_of(_get(fd, "mimeType"), uri), url=uri, title=_get(fd, "displayName")))
    elif _get(p, "executableCode") is not None or _get(p, "codeExecutionResult") is not None:
        if (code := _code_text(p)) is not None:
            out.append(code)
    else:
        unknown = sorted(k for k in p if _camel(k) not in _PART_META)
        if unknown:
            raise RequestError(f"unsupported part in '{where}' ({', '.join(unknown)})", where)


def _parse_contents(contents: Any) -> list[n.Message]:
    expect(isinstance(contents, list) and bool(contents), "'contents' must be a non-empty array", "contents")
    ids = _CallIds()
    messages: list[n.Message] = []
    for i, c in enumerate(contents):
        where = f"contents[{i}]"
        expect(isinstance(c, dict), f"'{where}' must be an object", where)
        role = c.get("role") or "user"
        expect(role in ("user", "model", "function"), f"'{where}.role' must be user or model", where)
        raw = c.get("parts")
        expect(isinstance(raw, list), f"'{where}.parts' must be an array", where)
        parts: list[n.Part] = []
        for j, p in enumerate(raw):
            _parse_part(p, f"{where}.parts[{j}]", ids, i, j, parts)
        messages.append(n.Message("assistant" if role == "model" else "user", parts))
    return messages


def _parse_system(si: Any) -> list[n.Text]:
    if si is None:
        return []
    if isinstance(si, str):
        return [n.Text(si)] if si else []
    expect(isinstance(si, dict) and isinstance(si.get("parts"), list), "'systemInstruction' must be a Content object with parts", "systemInstruction")
    out: list[n.Text] = []
    for j, p in enumerate(si["parts"]):
        expect(isinstance(p, dict) and isinstance(p.get("text"), str), f"'systemInstruction.parts[{j}]' must be a text part", "systemInstruction")
        if p["text"]:
            out.append(n.Text(p["text"]))
    return out


def _parse_tools(raw: Any) -> tuple[list[n.Tool], list[dict[str, Any]]]:
    tools: list[n.Tool] = []
    hosted: list[dict[str, Any]] = []
    if raw is None:
        return tools, hosted
    expect(isinstance(raw, list), "'tools' must be an array", "tools")
    for i, t in enumerate(raw):
        expect(isinstance(t, dict), f"'tools[{i}]' must be an object", "tools")
        decls = _get(t, "functionDeclarations")
        if decls is not None:
            expect(isinstance(decls, list), f"'tools[{i}].functionDeclarations' must be an array", "tools")
            for k, d in enumerate(decls):
                where = f"tools[{i}].functionDeclarations[{k}]"
                expect(isinstance(d, dict) and isinstance(d.get("name"), str) and bool(d["name"]), f"'{where}.name' is required", "tools")
                pjs = _get(d, "parametersJsonSchema")
                params = _get(d, "parameters")
                schema = pjs if pjs is not None else (schema_to_json(params) if params is not None else None)
                expect(schema is None or isinstance(schema, dict), f"'{where}.parameters' must be an object", "tools")
                desc = d.get("description")
                tools.append(n.Tool(d["name"], desc if isinstance(desc, str) else None, schema))
        rest = {k: v for k, v in t.items() if _camel(k) != "functionDeclarations"}
        if rest:
            hosted.append(rest)  # googleSearch, codeExecution, urlContext, ...: Gemini-only tools
    return tools, hosted


def _parse_tool_config(tc: Any, tools: list[n.Tool], extras: dict[str, Any]) -> tuple[n.ToolChoice | None, list[n.Tool]]:
    if tc is None:
        return None, tools
    expect(isinstance(tc, dict), "'toolConfig' must be an object", "toolConfig")
    for k, v in tc.items():
        if _camel(k) != "functionCallingConfig":
            extras[f"toolConfig.{k}"] = v
    fcc = _get(tc, "functionCallingConfig")
    if fcc is None:
        return None, tools
    expect(isinstance(fcc, dict), "'toolConfig.functionCallingConfig' must be an object", "toolConfig")
    mode = str(_get(fcc, "mode") or "MODE_UNSPECIFIED").upper()
    allowed = _get(fcc, "allowedFunctionNames") or []
    expect(isinstance(allowed, list) and all(isinstance(a, str) for a in allowed), "'toolConfig.functionCallingConfig.allowedFunctionNames' must be an array of strings", "toolConfig")
    if mode == "NONE":
        return n.ToolChoice("none"), tools
    if mode in ("AUTO", "VALIDATED"):
        return n.ToolChoice("auto"), tools
    if mode == "ANY":
        if len(allowed) == 1:
            return n.ToolChoice("tool", allowed[0]), tools
        if allowed:  # "call one of these": the same as offering only these, required
            return n.ToolChoice("required"), [t for t in tools if t.name in allowed]
        return n.ToolChoice("required"), tools
    expect(mode == "MODE_UNSPECIFIED", "'toolConfig.functionCallingConfig.mode' must be AUTO, ANY, NONE or VALIDATED", "toolConfig")
    return None, tools


def _parse_reasoning(tc: Any) -> n.Reasoning | None:
    if tc is None:
        return None
    expect(isinstance(tc, dict), "'generationConfig.thinkingConfig' must be an object", "generationConfig.thinkingConfig")
    where = "generationConfig.thinkingConfig"
    budget = _num(tc, "thinkingBudget", where, integer=True)
    level = _get(tc, "thinkingLevel")
    summary = _get(tc, "includeThoughts") is True
    if level is not None:
        expect(isinstance(level, str) and level.upper() in (*_LEVELS, "THINKING_LEVEL_UNSPECIFIED"), f"'{where}.thinkingLevel' must be MINIMAL, LOW, MEDIUM or HIGH", where)
        effort = _LEVELS.get(level.upper())
        return n.Reasoning(effort=effort, summary=summary)  # type: ignore[arg-type]
    if budget == 0:
        return n.Reasoning(enabled=False)
    if budget is not None and budget > 0:
        return n.Reasoning(budget_tokens=budget, summary=summary)
    return n.Reasoning(summary=summary)  # -1 (dynamic) or no budget: the model decides


def _parse_response_format(gc: dict[str, Any], extras: dict[str, Any]) -> n.ResponseFormat | None:
    mime = _get(gc, "responseMimeType")
    json_schema = _get(gc, "responseJsonSchema")
    schema = json_schema if json_schema is not None else (schema_to_json(_get(gc, "responseSchema")) if _get(gc, "responseSchema") is not None else None)
    if mime in (None, "", "text/plain") and schema is None:
        return None
    if mime not in (None, "application/json"):  # text/x.enum and friends: Gemini-only modes
        extras["generationConfig.responseMimeType"] = mime
        for name in ("responseSchema", "responseJsonSchema"):
            if _get(gc, name) is not None:
                extras[f"generationConfig.{name}"] = _get(gc, name)
        return None
    if schema is not None:
        expect(isinstance(schema, dict), "'generationConfig.responseJsonSchema' must be an object", "generationConfig")
        return n.ResponseFormat("json_schema", schema, "response")
    return n.ResponseFormat("json_object")


def parse_request(body: dict[str, Any], *, path_model: str | None = None, stream: bool | None = None) -> n.Request:
    """A ``GenerateContentRequest`` body; the model and streaming come from the URL."""
    model = path_model if path_model is not None else (body.get("model") if isinstance(body.get("model"), str) else "")
    model = model.removeprefix("models/")
    messages = _parse_contents(_get(body, "contents"))
    system = _parse_system(_get(body, "systemInstruction"))
    extras: dict[str, Any] = {}
    for k, v in body.items():
        if _camel(k) not in _TOP_KNOWN:
            extras[k] = v  # the client's own spelling: it goes back as it came
    tools, hosted = _parse_tools(_get(body, "tools"))
    if hosted:
        extras["tools"] = hosted
    tool_choice, tools = _parse_tool_config(_get(body, "toolConfig"), tools, extras)

    gc = _get(body, "generationConfig")
    if gc is None:
        gc = {}
    expect(isinstance(gc, dict), "'generationConfig' must be an object", "generationConfig")
    where = "generationConfig"
    for k, v in gc.items():
        if _camel(k) not in _GEN_KNOWN:
            extras[f"generationConfig.{k}"] = v
    stop = _get(gc, "stopSequences")
    expect(stop is None or (isinstance(stop, list) and all(isinstance(s, str) for s in stop)), "'generationConfig.stopSequences' must be an array of strings", where)
    top_k = _get(gc, "topK")
    logprobs = _get(gc, "responseLogprobs")
    return n.Request(
        model=model,
        messages=messages,
        system=system,
        tools=tools,
        tool_choice=tool_choice,
        max_tokens=_num(gc, "maxOutputTokens", where, integer=True),
        temperature=_num(gc, "temperature", where),
        top_p=_num(gc, "topP", where),
        top_k=int(_num(gc, "topK", where)) if top_k is not None else None,
        stop=list(stop or []),
        n=_num(gc, "candidateCount", where, integer=True),
        seed=_num(gc, "seed", where, integer=True),
        logprobs=logprobs if isinstance(logprobs, bool) else None,
        top_logprobs=_num(gc, "logprobs", where, integer=True),
        reasoning=_parse_reasoning(_get(gc, "thinkingConfig")),
        response_format=_parse_response_format(gc, extras),
        stream=bool(stream),
        extras=extras,
        origin=PROTOCOL,
    )


def request_model(body: dict[str, Any]) -> str | None:
    """Gemini names the model in the URL; a body never decides the binding."""
    return None


def features_used(body: dict[str, Any], *, stream: bool = False) -> dict[str, Any]:
    used: dict[str, Any] = {}
    if stream:
        used["streaming"] = True
    tools = _get(body, "tools")
    if isinstance(tools, list) and any(_get(t, "functionDeclarations") for t in tools):
        used["tools"] = True
    if _get(body, "systemInstruction"):
        used["systemPrompt"] = True
    contents = _get(body, "contents")
    if isinstance(contents, list):
        for c in contents:
            parts = c.get("parts") if isinstance(c, dict) else None
            if not isinstance(parts, list):
                continue
            for p in parts:
                if not isinstance(p, dict) or "text" in p:
                    continue
                for media in _media_of_part(p):
                    used[media] = True
    gc = _get(body, "generationConfig")
    if isinstance(gc, dict):
        stop = _get(gc, "stopSequences")
        if isinstance(stop, list) and stop:
            used["stopSequences"] = len(stop)
        mot = _get(gc, "maxOutputTokens")
        if isinstance(mot, int) and not isinstance(mot, bool):
            used["maxOutputTokens"] = mot
        cc = _get(gc, "candidateCount")
        if isinstance(cc, int) and cc > 1:
            used["multipleChoices"] = cc
        if _get(gc, "seed") is not None:
            used["seed"] = True
        if _get(gc, "topK") is not None:
            used["topK"] = True
        if _get(gc, "responseLogprobs") is True:
            used["logprobs"] = True
        if _get(gc, "responseSchema") is not None or _get(gc, "responseJsonSchema") is not None:
            used["structuredOutput"] = True
        elif _get(gc, "responseMimeType") == "application/json":
            used["jsonMode"] = True
        tc = _get(gc, "thinkingConfig")
        if isinstance(tc, dict) and _get(tc, "thinkingBudget") != 0:
            used["reasoning"] = True
    return used


def _media_of_part(p: dict[str, Any]) -> list[str]:
    if (inline := _get(p, "inlineData")) is not None:
        return [_media_feature(_mime_of(_get(inline, "mimeType")))]
    if (fd := _get(p, "fileData")) is not None:
        uri = _get(fd, "fileUri")
        return [_media_feature(_mime_of(_get(fd, "mimeType"), uri if isinstance(uri, str) else None))]
    if (fr := _get(p, "functionResponse")) is not None and isinstance(fr, dict):
        return [m for sub in fr.get("parts") or () if isinstance(sub, dict) for m in _media_of_part(sub)]
    return []


_GEN_EDITS = {
    "stopSequences": ("stopSequences",),
    "reasoning": ("thinkingConfig",),
    "jsonMode": ("responseMimeType", "responseSchema", "responseJsonSchema"),
    "structuredOutput": ("responseMimeType", "responseSchema", "responseJsonSchema"),
    "multipleChoices": ("candidateCount",),
    "seed": ("seed",),
    "topK": ("topK",),
    "logprobs": ("responseLogprobs", "logprobs"),
}


def prepare_passthrough(body: dict[str, Any], tier: CompiledTier, edits: Mapping[str, Any], notes: list[tuple[str, str]] | None = None) -> dict[str, Any]:
    """A copy of a Gemini body for a Gemini tier. The model lives in the URL
    (``build_passthrough_call``), so the body gets no model field; unknown fields stay."""
    out = dict(body)
    gc_key = _key(out, "generationConfig") or "generationConfig"
    gc: dict[str, Any] | None = dict(out[gc_key]) if isinstance(out.get(gc_key), dict) else None
    for feature, value in edits.items():
        if feature == "stopSequences" and value and gc is not None:
            k = _key(gc, "stopSequences")
            if k and isinstance(gc[k], list):
                gc[k] = gc[k][:value]
        elif feature == "maxOutputTokens":
            gc = gc if gc is not None else {}
            gc[_key(gc, "maxOutputTokens") or "maxOutputTokens"] = value
        elif feature in _GEN_EDITS and gc is not None:
            for name in _GEN_EDITS[feature]:
                for k in (name, _snake(name)):
                    gc.pop(k, None)
        elif feature == "tools":
            for name in ("tools", "toolConfig"):
                for k in (name, _snake(name)):
                    out.pop(k, None)
        elif feature == "systemPrompt" and value is None:
            for k in ("systemInstruction", "system_instruction"):
                out.pop(k, None)
        elif feature in ("vision", "documents", "audio", "video") and value is None:
            ck = _key(out, "contents")
            if ck and isinstance(out[ck], list):
                out[ck] = _without_media(out[ck], feature)
    if gc is not None:
        out[gc_key] = gc
    return out


def _without_media(contents: list[Any], feature: str) -> list[Any]:
    out = []
    for c in contents:
        parts = c.get("parts") if isinstance(c, dict) else None
        if isinstance(parts, list):
            kept = [p for p in parts if not (isinstance(p, dict) and "text" not in p and feature in _media_of_part(p) and not _get(p, "functionResponse"))]
            if len(kept) != len(parts):
                c = {**c, "parts": kept}
        out.append(c)
    return out


# ------------------------------------------------------------------ rendering out


def _usage_out(u: n.Usage) -> dict[str, Any]:
    """Neutral counts (output includes reasoning, input includes cache reads) as Gemini's:
    ``candidatesTokenCount`` excludes thoughts, which are ``thoughtsTokenCount``."""
    thoughts = u.reasoning_tokens
    out: dict[str, Any] = {
        "promptTokenCount": u.input_tokens,
        "candidatesTokenCount": max(0, u.output_tokens - thoughts),
        "totalTokenCount": u.input_tokens + max(u.output_tokens, thoughts),
    }
    if u.cached_input_tokens:
        out["cachedContentTokenCount"] = u.cached_input_tokens
    if thoughts:
        out["thoughtsTokenCount"] = thoughts
    return out


def _blob(p: n.Image | n.Document | n.Audio) -> dict[str, Any] | None:
    if isinstance(p, n.Audio):
        return {"inlineData": {"mimeType": f"audio/{p.format}", "data": p.data}}
    if isinstance(p, n.Document) and p.text is not None:
        return {"text": p.text}
    default = "image/png" if isinstance(p, n.Image) else "application/pdf"
    if p.data is not None:
        return {"inlineData": {"mimeType": p.media_type or default, "data": p.data}}
    if p.url:
        fd: dict[str, Any] = {}
        mime = _mime_of(p.media_type, p.url)
        if mime:
            fd["mimeType"] = mime
        fd["fileUri"] = p.url
        return {"fileData": fd}
    return None


def _parts_out(parts: list[n.Part], *, upstream: bool, names: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """Neutral parts as Gemini parts. ``upstream``: for a request to Gemini (tool results
    allowed, thinking of other origins dropped, no call ids); else for a Gemini client.

    A Gemini thought signature with no thought text rides on the next part, as Gemini
    sends it; with nothing after it, on an empty text part."""
    out: list[dict[str, Any]] = []
    pending_sig: str | None = None
    for p in parts:
        part: dict[str, Any] | None = None
        extra: list[dict[str, Any]] = []
        if isinstance(p, n.Thinking):
            sig = p.signature if p.origin == PROTOCOL else None
            if p.text and (p.origin == PROTOCOL or not upstream):
                part = {"text": p.text, "thought": True}
                if sig:
                    part["thoughtSignature"] = sig
                out.append(part)
            elif sig:
                pending_sig = sig
            continue
        if isinstance(p, n.Text):
            if p.text:
                part = {"text": p.text}
        elif isinstance(p, n.ToolCall):
            call: dict[str, Any] = {} if upstream else {"id": p.id}
            call["name"] = p.name
            call["args"] = args_object(p.arguments)
            part = {"functionCall": call}
        elif isinstance(p, n.ToolResult):
            if not upstream:
                continue
            name = p.name or (names or {}).get(p.tool_call_id)
            if not name:
                raise RequestError(
                    f"the tool result for call {p.tool_call_id!r} names no function and no earlier tool call has that id; "
                    "Gemini matches tool results by function name",
                    "messages",
                )
            text = "".join(x.text for x in p.content if isinstance(x, n.Text))
            response = _response_object(text, p.is_error)
            part = {"functionResponse": {"name": name, "response": response}}
            extra = [b for x in p.content if isinstance(x, (n.Image, n.Document, n.Audio)) and (b := _blob(x))]
        elif isinstance(p, (n.Image, n.Document, n.Audio)):
            part = _blob(p)
        if part is None:
            continue
        if pending_sig:
            part["thoughtSignature"] = pending_sig
            pending_sig = None
        out.append(part)
        out.extend(extra)
    if pending_sig:
        out.append({"text": "", "thoughtSignature": pending_sig})
    return out


def _response_object(text: str, is_error: bool) -> dict[str, Any]:
    if is_error:
        return {"error": text}
    if text.startswith("{"):
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError:
            value = None
        if isinstance(value, dict):
            return value  # a tool that answered a JSON object: give Gemini the object
    return {"output": text}


def render_response(resp: n.Response, *, alias: str, request: n.Request | None = None) -> dict[str, Any]:
    candidates = []
    for i, c in enumerate(resp.choices):
        parts = _parts_out(c.parts, upstream=False)
        content: dict[str, Any] = {"parts": parts, "role": "model"} if parts else {"role": "model"}
        candidates.append({"content": content, "finishReason": FINISH_OUT.get(c.finish_reason, "STOP"), "index": i})
    out: dict[str, Any] = {"candidates": candidates}
    if resp.usage is not None:
        out["usageMetadata"] = _usage_out(resp.usage)
    out["modelVersion"] = resp.model or alias
    out["responseId"] = resp.id
    return out


class StreamEncoder:
    """Neutral events -> Gemini stream chunks, each a whole ``GenerateContentResponse``
    holding the new parts. SSE (``alt=sse``) or the JSON-array form (``[`` + elements
    separated by ``,\\r\\n`` + ``]``).

    Function calls are buffered until complete and sent as whole ``functionCall`` parts
    (parallel calls together); the finish reasons are held back so the last chunk
    carries them with ``usageMetadata``. Thought signatures in a stream are not
    forwarded: a neutral stream event does not say which protocol made them, and a
    foreign signature echoed back to Gemini is rejected (see the module docstring)."""

    def __init__(self, *, alias: str, request: n.Request | None, sse: bool = True) -> None:
        self.sse = sse
        self.id = new_id("")
        self.model = alias
        self.started = False
        self.elements = 0
        self.calls: dict[int, list[list[Any]]] = {}  # choice -> [[id, name, [fragments]]]
        self.by_index: dict[tuple[int, int], list[Any]] = {}
        self.finishes: dict[int, str] = {}
        self.choices: set[int] = set()
        self.usage: n.Usage | None = None

    def _frame(self, body: dict[str, Any]) -> bytes:
        data = orjson.dumps(body)
        if self.sse:
            return encode(data)
        sep = b",\r\n" if self.elements else b""
        self.elements += 1
        return sep + data

    def _chunk(self, candidates: list[dict[str, Any]], usage: n.Usage | None = None) -> bytes:
        body: dict[str, Any] = {"candidates": candidates}
        if usage is not None:
            body["usageMetadata"] = _usage_out(usage)
        body["modelVersion"] = self.model
        body["responseId"] = self.id
        return self._frame(body)

    def _parts(self, choice: int, parts: list[dict[str, Any]]) -> bytes:
        self.choices.add(choice)
        return self._flush_calls(choice) + self._chunk([{"content": {"parts": parts, "role": "model"}, "index": choice}])

    def _call_parts(self, choice: int) -> list[dict[str, Any]]:
        return [
            {"functionCall": {"id": cid, "name": name, "args": args_object("".join(frags))}}
            for cid, name, frags in self.calls.pop(choice, [])
        ]

    def _flush_calls(self, choice: int) -> bytes:
        parts = self._call_parts(choice)
        if not parts:
            return b""
        return self._chunk([{"content": {"parts": parts, "role": "model"}, "index": choice}])

    def start(self) -> bytes:
        self.started = True
        return b"" if self.sse else b"["

    def encode(self, ev: n.Event) -> bytes:
        if isinstance(ev, n.StreamStart):
            if ev.model:
                self.model = ev.model
            return b""
        if isinstance(ev, n.TextDelta):
            return self._parts(ev.choice, [{"text": ev.text}]) if ev.text else b""
        if isinstance(ev, n.ThinkingDelta):
            # Signatures are not re-rendered on the neutral path: Gemini attaches them to
            # the part that follows (text or functionCall), which a delta cannot say.
            # Same-protocol streams relay the upstream's bytes, signatures included.
            return self._parts(ev.choice, [{"text": ev.text, "thought": True}]) if ev.text else b""
        if isinstance(ev, n.ToolCallStart):
            self.choices.add(ev.choice)
            entry: list[Any] = [ev.id, ev.name, []]
            self.calls.setdefault(ev.choice, []).append(entry)
            self.by_index[(ev.choice, ev.call)] = entry
            return b""
        if isinstance(ev, n.ToolCallDelta):
            entry = self.by_index.get((ev.choice, ev.call))
            if entry is not None and ev.arguments:
                entry[2].append(ev.arguments)
            return b""
        if isinstance(ev, n.StreamFinish):
            self.finishes[ev.choice] = FINISH_OUT.get(ev.reason, "STOP")
            return b""
        if isinstance(ev, n.StreamUsage):
            self.usage = ev.usage
        return b""

    def finish(self) -> bytes:
        candidates = []
        for c in sorted(self.choices | set(self.finishes)) or [0]:
            parts = self._call_parts(c)
            content: dict[str, Any] = {"parts": parts, "role": "model"} if parts else {"role": "model"}
            candidates.append({"content": content, "finishReason": self.finishes.get(c, "STOP"), "index": c})
        return self._chunk(candidates, self.usage) + (b"" if self.sse else b"]")

    def error(self, status: int, kind: str, message: str) -> bytes:
        err = GatewayError(ErrorKind(kind), message, status=status)
        data = orjson.dumps(errors.gemini_error_body(err))
        if self.sse:
            return encode(data)
        # JSON array: an error element, then the closing bracket. An encoder that never
        # started follows forwarded upstream elements (same-protocol relay).
        sep = b",\r\n" if (self.elements or not self.started) else b""
        return sep + data + b"]"


# ======================================================================= egress


def _active_loop_start(contents: list[dict[str, Any]]) -> int:
    """Index of the last user turn that answers no function call (a new prompt): the
    model turns after it are the current tool loop, where Gemini 3 checks signatures."""
    for i in range(len(contents) - 1, -1, -1):
        c = contents[i]
        if c["role"] == "user" and not any("functionResponse" in p for p in c["parts"]):
            return i
    return 0


def _sign_active_loop(contents: list[dict[str, Any]]) -> None:
    for c in contents[_active_loop_start(contents) :]:
        if c["role"] != "model":
            continue
        first = next((p for p in c["parts"] if "functionCall" in p), None)
        if first is not None and "thoughtSignature" not in first:
            first["thoughtSignature"] = SENTINEL_SIGNATURE


def _contents_out(req: n.Request) -> list[dict[str, Any]]:
    names = {p.id: p.name for m in req.messages for p in m.parts if isinstance(p, n.ToolCall)}
    contents: list[dict[str, Any]] = []
    for m in req.messages:
        role = "model" if m.role == "assistant" else "user"
        parts = _parts_out(m.parts, upstream=True, names=names)
        if not parts:
            continue
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].extend(parts)  # Gemini alternates roles: merge
        else:
            contents.append({"role": role, "parts": parts})
    _sign_active_loop(contents)
    return contents


def _thinking_config(r: n.Reasoning, mode: Any) -> dict[str, Any]:
    """Neutral reasoning as ``thinkingConfig``. A tier whose profile says ``reasoning:
    effort`` (Gemini 3 family) gets ``thinkingLevel``; otherwise ``thinkingBudget``, which
    Gemini 2.5 needs and Gemini 3 still accepts. The two are mutually exclusive."""
    tc: dict[str, Any] = {}
    if mode == "effort":
        if not r.enabled:
            tc["thinkingLevel"] = "LOW"  # Gemini 3 Pro cannot turn thinking off; LOW is its floor
        else:
            effort = r.effort or budget_to_effort(r.budget_tokens)
            if effort:
                tc["thinkingLevel"] = effort.upper()
    elif not r.enabled:
        tc["thinkingBudget"] = 0
    elif r.budget_tokens is not None:
        tc["thinkingBudget"] = r.budget_tokens
    elif r.effort:
        tc["thinkingBudget"] = effort_to_budget(r.effort)
    if r.summary and r.enabled:
        tc["includeThoughts"] = True
    return tc


def build_body(req: n.Request, tier: CompiledTier) -> dict[str, Any]:
    body: dict[str, Any] = {"contents": _contents_out(req)}
    if req.system:
        body["systemInstruction"] = {"parts": [{"text": t.text} for t in req.system]}
    if req.tools:
        decls = []
        for t in req.tools:
            d: dict[str, Any] = {"name": t.name}
            if t.description:
                d["description"] = t.description
            if t.parameters is not None:
                d["parametersJsonSchema"] = t.parameters
            decls.append(d)
        body["tools"] = [{"functionDeclarations": decls}]
        tc = req.tool_choice
        if tc is not None:
            mode = {"auto": "AUTO", "none": "NONE", "required": "ANY", "tool": "ANY"}[tc.mode]
            fcc: dict[str, Any] = {"mode": mode}
            if tc.mode == "tool" and tc.name:
                fcc["allowedFunctionNames"] = [tc.name]
            body["toolConfig"] = {"functionCallingConfig": fcc}
    gc: dict[str, Any] = {}
    if req.temperature is not None:
        gc["temperature"] = clamp(req.temperature, 0.0, 2.0)
    if req.top_p is not None:
        gc["topP"] = clamp(req.top_p, 0.0, 1.0)
    if req.top_k is not None:
        gc["topK"] = req.top_k
    if req.max_tokens is not None:
        gc["maxOutputTokens"] = req.max_tokens
    if req.stop:
        gc["stopSequences"] = list(req.stop)
    if req.n is not None:
        gc["candidateCount"] = req.n
    if req.seed is not None:
        gc["seed"] = req.seed
    if req.logprobs:
        gc["responseLogprobs"] = True
        if req.top_logprobs is not None:
            gc["logprobs"] = req.top_logprobs
    rf = req.response_format
    if rf is not None and rf.type in ("json_object", "json_schema"):
        gc["responseMimeType"] = "application/json"
        if rf.type == "json_schema" and rf.schema is not None:
            gc["responseJsonSchema"] = rf.schema
    mode = tier.profile.features.get("reasoning")
    if req.reasoning is not None and mode != "none":  # a model without thinking rejects thinkingConfig
        tc_out = _thinking_config(req.reasoning, mode)
        if tc_out:
            gc["thinkingConfig"] = tc_out
    if req.origin == PROTOCOL:  # a Gemini client's own fields go back where they were
        for k, v in req.extras.items():
            if k == "tools":
                body.setdefault("tools", []).extend(v)
            elif k.startswith("generationConfig."):
                gc.setdefault(k.split(".", 1)[1], v)
            elif k.startswith("toolConfig."):
                body.setdefault("toolConfig", {}).setdefault(k.split(".", 1)[1], v)
            else:
                body.setdefault(k, v)
    if gc:
        body["generationConfig"] = gc
    return body


def _api_root(tier: CompiledTier) -> str:
    base = tier.base_url.rstrip("/")
    return base if re.search(r"/v1(alpha|beta)?$", base) else f"{base}/v1beta"


def _model_path(model: str) -> str:
    m = model.strip("/")
    return m if "/" in m else f"models/{m}"  # "models/x", "tunedModels/x" kept as given


def _url(tier: CompiledTier, method: str, *, sse: bool = False) -> str:
    url = f"{_api_root(tier)}/{_model_path(tier.model)}:{method}"
    return url + "?alt=sse" if sse else url


def _headers(tier: CompiledTier, stream: bool) -> dict[str, str]:
    h = {"Content-Type": "application/json", "Accept": "text/event-stream" if stream else "application/json"}
    h.update(tier.headers)
    h.update(auth_headers(tier))
    return h


def build_call(req: n.Request, tier: CompiledTier, client_headers: Mapping[str, str] | None = None) -> UpstreamCall:
    body = build_body(req, tier)
    method = "streamGenerateContent" if req.stream else "generateContent"
    return UpstreamCall("POST", _url(tier, method, sse=req.stream), _headers(tier, req.stream), orjson.dumps(body), req.stream)


def build_passthrough_call(
    body: dict[str, Any], tier: CompiledTier, client_headers: Mapping[str, str], *, stream: bool = False, sse: bool = True
) -> UpstreamCall:
    method = "streamGenerateContent" if stream else "generateContent"
    url = _url(tier, method, sse=stream and sse)
    headers = _headers(tier, stream)
    if stream and not sse:
        headers["Accept"] = "application/json"
    return UpstreamCall("POST", url, headers, orjson.dumps(body), stream)


def _usage_in(u: Any) -> n.Usage | None:
    if not isinstance(u, dict):
        return None
    prompt = int(_get(u, "promptTokenCount") or 0) + int(_get(u, "toolUsePromptTokenCount") or 0)
    thoughts = int(_get(u, "thoughtsTokenCount") or 0)
    return n.Usage(
        input_tokens=prompt,
        output_tokens=int(_get(u, "candidatesTokenCount") or 0) + thoughts,
        cached_input_tokens=int(_get(u, "cachedContentTokenCount") or 0),
        reasoning_tokens=thoughts,
    )


def _finish_in(reason: str, had_calls: bool) -> n.FinishReason:
    mapped = FINISH_IN.get(reason.upper(), "stop")
    return "tool_calls" if mapped == "stop" and had_calls else mapped


def _answer_parts(raw: Any) -> list[n.Part]:
    """Parts of a model answer as neutral parts (ids made for calls that have none)."""
    out: list[n.Part] = []
    for p in raw if isinstance(raw, list) else ():
        if not isinstance(p, dict):
            continue
        sig = _get(p, "thoughtSignature")
        sig = sig if isinstance(sig, str) and sig else None
        text = p.get("text")
        if isinstance(text, str) and _get(p, "thought") is True:
            out.append(n.Thinking(text=text, signature=sig, origin=PROTOCOL))
            continue
        if sig:
            out.append(n.Thinking(signature=sig, origin=PROTOCOL))
        if isinstance(text, str):
            if text:
                out.append(n.Text(text))
        elif isinstance(fc := _get(p, "functionCall"), dict):
            cid = fc.get("id") if isinstance(fc.get("id"), str) and fc.get("id") else new_id("call_")
            out.append(n.ToolCall(cid, str(fc.get("name") or ""), args_text(fc.get("args"))))
        elif isinstance(inline := _get(p, "inlineData"), dict):
            mime = _mime_of(_get(inline, "mimeType")) or "application/octet-stream"
            if isinstance(_get(inline, "data"), str):
                out.append(_media(mime, data=_get(inline, "data")))
        elif (code := _code_text(p)) is not None:
            out.append(code)
    return out


def parse_response(body: dict[str, Any]) -> n.Response:
    candidates = body.get("candidates")
    if candidates is not None and not isinstance(candidates, list):
        raise UpstreamFormatError("generateContent answer whose candidates is not an array")
    choices: list[n.Choice] = []
    for c in candidates or ():
        if not isinstance(c, dict):
            raise UpstreamFormatError("generateContent candidate that is not an object")
        parts = _answer_parts(_get(_get(c, "content"), "parts"))
        reason = _get(c, "finishReason")
        had_calls = any(isinstance(p, n.ToolCall) for p in parts)
        finish = _finish_in(reason, had_calls) if isinstance(reason, str) else None
        choices.append(n.Choice(parts, finish))
    if not choices and _get(_get(body, "promptFeedback"), "blockReason"):
        choices.append(n.Choice([], "content_filter"))  # the prompt itself was blocked
    return n.Response(
        id=str(_get(body, "responseId") or new_id("")),
        model=str(_get(body, "modelVersion") or ""),
        choices=choices,
        usage=_usage_in(_get(body, "usageMetadata")),
    )


class _ArraySplitter:
    """Splits Gemini's JSON-array stream (``[{…}\\n,\\r\\n{…}\\n]``) into its elements,
    incrementally, keeping exact bytes: each element's ``raw`` holds the separators before
    it, so the raws concatenated are the stream as received."""

    _IN_STRING = re.compile(rb'["\\]')
    _OUTSIDE = re.compile(rb'["{}\[\]]')

    def __init__(self) -> None:
        self.buf = bytearray()
        self.scan = 0
        self.depth = 0
        self.in_string = False
        self.escaped = False
        self.opened = False
        self.closed = False
        self.start = -1

    def feed(self, chunk: bytes) -> list[tuple[bytes | None, bytes]]:
        """-> [(element JSON, raw)], with (None, raw) for the closing bracket."""
        out: list[tuple[bytes | None, bytes]] = []
        if self.closed:
            return out
        buf = self.buf
        buf += chunk
        i = self.scan
        while i < len(buf):
            if self.in_string:
                if self.escaped:
                    self.escaped = False
                    i += 1
                    continue
                m = self._IN_STRING.search(buf, i)
                if m is None:
                    i = len(buf)
                    break
                i = m.start()
                if buf[i] == 0x5C:  # backslash
                    self.escaped = True
                else:
                    self.in_string = False
                i += 1
                continue
            m = self._OUTSIDE.search(buf, i)
            if m is None:
                i = len(buf)
                break
            i = m.start()
            c = buf[i]
            if c == 0x22:
                self.in_string = True
            elif c in (0x7B, 0x5B):  # { [
                if c == 0x5B and self.depth == 0 and not self.opened:
                    self.opened = True
                else:
                    if self.depth == 0:
                        self.start = i
                    self.depth += 1
            elif self.depth == 0:  # } or ] at the top
                if c == 0x5D and self.opened:
                    self.closed = True
                    out.append((None, bytes(buf[: i + 1])))
                    del buf[: i + 1]
                    self.scan = 0
                    return out
            else:
                self.depth -= 1
                if self.depth == 0:
                    out.append((bytes(buf[self.start : i + 1]), bytes(buf[: i + 1])))
                    del buf[: i + 1]
                    i = 0
                    self.start = -1
                    continue
            i += 1
        self.scan = i
        return out

    @property
    def partial(self) -> bool:
        """Bytes of an unfinished element are waiting (a cut stream)."""
        return self.depth > 0 or self.in_string


class StreamDecoder:
    """Gemini stream chunks -> neutral events, keeping each chunk's raw bytes. Reads SSE
    (``alt=sse``) or the JSON-array form, whichever arrives (the first byte tells)."""

    def __init__(self) -> None:
        self._mode: str | None = None
        self._head = bytearray()
        self._sse = SSEDecoder()
        self._array = _ArraySplitter()
        self._started = False
        self._calls: dict[int, int] = {}  # choice -> function calls seen
        self._finished = False
        self._usage: n.Usage | None = None
        self._usage_sent = False
        self._errored = False
        self.complete = False

    def feed(self, chunk: bytes) -> list[DecodedEvent]:
        if self._mode is None:
            self._head += chunk
            lead = bytes(self._head).lstrip()
            if not lead:
                return []
            self._mode = "array" if lead[:1] == b"[" else "sse"
            chunk = bytes(self._head)
            self._head.clear()
        if self._mode == "sse":
            return [self._decode(e.data, e.raw) for e in self._sse.feed(chunk) if e.data]
        out = []
        for data, raw in self._array.feed(chunk):
            if data is None:
                out.append(DecodedEvent([], b"" if self._errored else raw, terminal=True))
            else:
                errored = self._errored
                ev = self._decode(data, raw)
                if self._errored and not errored:  # close the client's array after the error element
                    ev.raw += b"\n]"
                out.append(ev)
        return out

    def close(self) -> list[DecodedEvent]:
        if self._mode == "sse":
            self._sse.flush()
            clean = not self._sse.truncated
        elif self._mode == "array":
            clean = self._array.closed and not self._array.partial
        else:
            clean = False
        self.complete = self._finished and clean and not self._errored
        if self._finished and self._usage is not None and not self._usage_sent:
            self._usage_sent = True
            return [DecodedEvent([n.StreamUsage(self._usage)], b"")]
        return []

    def _decode(self, data: str | bytes, raw: bytes) -> DecodedEvent:
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            return DecodedEvent([n.StreamError(502, "upstream", "upstream sent a malformed stream chunk")], b"")  # not forwardable: the client gets our error event
        if not isinstance(obj, dict):
            return DecodedEvent([], raw)
        if "error" in obj:
            self._errored = True
            err = obj["error"] if isinstance(obj["error"], dict) else {"message": str(obj["error"])}
            code = err.get("code")
            status = code if isinstance(code, int) and 400 <= code < 600 else 502
            if err.get("status") == "RESOURCE_EXHAUSTED":
                status = 429
            kind = errors.kind_for_status(status).value
            return DecodedEvent([n.StreamError(status, kind, clip(str(err.get("message") or err.get("status") or "error")))], raw)
        return DecodedEvent(self._events(obj), raw)

    def _events(self, obj: dict[str, Any]) -> list[n.Event]:
        events: list[n.Event] = []
        if not self._started:
            self._started = True
            events.append(n.StreamStart(str(_get(obj, "responseId") or ""), str(_get(obj, "modelVersion") or "")))
        candidates = obj.get("candidates") or []
        finished_now = False
        for c in candidates if isinstance(candidates, list) else ():
            if not isinstance(c, dict):
                continue
            idx = int(c.get("index") or 0)
            for p in _answer_parts(_get(_get(c, "content"), "parts")):
                if isinstance(p, n.Thinking):
                    events.append(n.ThinkingDelta(p.text, p.signature, choice=idx, origin=PROTOCOL))
                elif isinstance(p, n.Text):
                    events.append(n.TextDelta(p.text, idx))
                elif isinstance(p, n.ToolCall):
                    k = self._calls.get(idx, 0)
                    self._calls[idx] = k + 1
                    events.append(n.ToolCallStart(k, p.id, p.name, idx))
                    events.append(n.ToolCallDelta(k, p.arguments, idx))
            reason = _get(c, "finishReason")
            if isinstance(reason, str) and reason:
                self._finished = finished_now = True
                events.append(n.StreamFinish(_finish_in(reason, self._calls.get(idx, 0) > 0), idx))
        if not candidates and _get(_get(obj, "promptFeedback"), "blockReason"):
            self._finished = finished_now = True
            events.append(n.StreamFinish("content_filter", 0))
        usage = _usage_in(_get(obj, "usageMetadata"))
        if usage is not None:
            self._usage = usage
            if self._finished:  # Gemini repeats running counts on every chunk: report the final ones
                events.append(n.StreamUsage(usage))
                self._usage_sent = True
        elif finished_now and self._usage is not None:
            events.append(n.StreamUsage(self._usage))
            self._usage_sent = True
        return events


_DELAY = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")


def retry_delay_seconds(body: bytes) -> float | None:
    """The ``google.rpc.RetryInfo`` ``retryDelay`` of a Gemini error body (Gemini sends no
    Retry-After header; a 429 says how long to stay away here), in seconds."""
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if isinstance(obj, list) and obj:
        obj = obj[0]
    err = obj.get("error") if isinstance(obj, dict) else None
    details = err.get("details") if isinstance(err, dict) else None
    for d in details if isinstance(details, list) else ():
        if isinstance(d, dict) and str(d.get("@type", "")).endswith("google.rpc.RetryInfo"):
            delay = d.get("retryDelay")
            if isinstance(delay, str) and (m := _DELAY.match(delay)):
                return float(m.group(1))
            if isinstance(delay, dict):
                return float(delay.get("seconds") or 0) + float(delay.get("nanos") or 0) / 1e9
    return None


def read_error(status: int, body: bytes, headers: Mapping[str, str]) -> UpstreamErrorInfo:
    """Google's ``{"error": {"code", "message", "status", "details"}}`` (the JSON-array
    endpoint wraps it in a list). The RetryInfo delay is read by ``retry_delay_seconds``:
    it becomes ``UpstreamErrorInfo.retry_after``. A refused key is a 400 with reason
    ``API_KEY_INVALID``: flagged ``auth`` so the tier, not the client, is blamed."""
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        return UpstreamErrorInfo(clip(body.decode("utf-8", "replace")) or f"HTTP {status}")
    if isinstance(obj, list) and obj:
        obj = obj[0]
    err = obj.get("error") if isinstance(obj, dict) else None
    if not isinstance(err, dict):
        return UpstreamErrorInfo(clip(body.decode("utf-8", "replace")) or f"HTTP {status}")
    gstatus = str(err.get("status") or "")
    message = clip(str(err.get("message") or gstatus or f"HTTP {status}"))
    not_found = status == 404 or gstatus == "NOT_FOUND"
    return UpstreamErrorInfo(
        message=message,
        kind=gstatus or None,
        quota=gstatus == "RESOURCE_EXHAUSTED",
        model_not_found=not_found and "model" in message.lower(),
        auth=gstatus in ("UNAUTHENTICATED", "PERMISSION_DENIED") or b"API_KEY_INVALID" in body,
        retry_after=retry_delay_seconds(body),
    )


# ================================================================ count tokens


def count_request(body: dict[str, Any], path_model: str | None = None) -> n.Request:
    """The request a ``:countTokens`` body asks to count: its ``generateContentRequest``
    when it has one, else its own ``contents``."""
    inner = _get(body, "generateContentRequest")
    req = parse_request(inner if isinstance(inner, dict) else body, path_model=path_model, stream=False)
    return dataclasses.replace(req, extras={}, max_tokens=req.max_tokens or 1024)


def render_count(tokens: int) -> dict[str, Any]:
    return {"totalTokens": tokens}


def count_call(
    tier: CompiledTier,
    *,
    body: dict[str, Any] | None = None,
    request: n.Request | None = None,
    client_headers: Mapping[str, str] | None = None,
) -> UpstreamCall:
    """Gemini's ``:countTokens``: a same-protocol body as is (a wrapped
    ``generateContentRequest`` names the tier's model), or the whole request this adapter
    would build for a neutral one, wrapped."""
    if body is not None:
        out = dict(body)
        inner = _get(body, "generateContentRequest")
        if isinstance(inner, dict):
            key = _key(out, "generateContentRequest") or "generateContentRequest"
            out[key] = {**inner, "model": _model_path(tier.model)}
        return UpstreamCall("POST", _url(tier, "countTokens"), _headers(tier, False), orjson.dumps(out), False)
    assert request is not None
    built = build_body(dataclasses.replace(request, stream=False), tier)
    built["model"] = _model_path(tier.model)
    return UpstreamCall("POST", _url(tier, "countTokens"), _headers(tier, False), orjson.dumps({"generateContentRequest": built}), False)


def read_count(raw: bytes) -> tuple[int, dict[str, Any]]:
    """A ``CountTokensResponse``; proto3 JSON omits a zero ``totalTokens``."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise UpstreamFormatError("token count answer is not JSON") from exc
    if not isinstance(obj, dict):
        raise UpstreamFormatError("token count answer is not an object")
    total = _get(obj, "totalTokens")
    if total is not None and (not isinstance(total, int) or isinstance(total, bool)):
        raise UpstreamFormatError("countTokens answer without an integer totalTokens")
    return int(total or 0), {**obj, "totalTokens": int(total or 0)}


# ======================================================================= models


def model_info(alias: str, binding: Any) -> dict[str, Any]:
    """One alias in Gemini's ``Model`` shape; limits from the primary tier's profile."""
    info: dict[str, Any] = {
        "name": f"models/{alias}",
        "baseModelId": alias,
        "version": "switchyard",
        "displayName": alias,
        "description": f"Switchyard binding {binding.name}",
        "supportedGenerationMethods": ["generateContent", "countTokens"],
    }
    tiers = getattr(binding, "tiers", None) or []
    if tiers:
        features = tiers[0].profile.features
        if isinstance(features.get("maxContextTokens"), int):
            info["inputTokenLimit"] = features["maxContextTokens"]
        if isinstance(features.get("maxOutputTokens"), int):
            info["outputTokenLimit"] = features["maxOutputTokens"]
        if features.get("reasoning") not in (None, "none", False):
            info["thinking"] = True
    return info


def model_listing(snapshot: Any, *, page_size: int | None = None, page_token: str | None = None) -> dict[str, Any]:
    """``GET /v1beta/models``: the gateway's aliases (prefix aliases excluded), paged."""
    aliases = [a for a in snapshot.aliases() if not a.endswith("*")] if snapshot is not None else []
    size = min(1000, page_size) if page_size and page_size > 0 else 50
    start = int(page_token) if page_token and page_token.isdigit() else 0
    page = aliases[start : start + size]
    out: dict[str, Any] = {"models": [model_info(a, snapshot.resolve(a)) for a in page]}
    if start + size < len(aliases):
        out["nextPageToken"] = str(start + size)
    return out


# ====================================================================== adapter


def check_request(body: dict[str, Any]) -> None:
    contents = body.get("contents")
    expect(isinstance(contents, list) and bool(contents), "'contents' must be a non-empty array", "contents")
    for i, c in enumerate(contents):
        expect(isinstance(c, dict) and isinstance(c.get("parts"), list), f"'contents[{i}].parts' must be an array", "contents")


def split_model_method(name: str) -> tuple[str, str] | None:
    """``gemini-2.5-flash:generateContent`` -> (model, method); the last ':' splits."""
    model, sep, method = name.rpartition(":")
    if not sep or not model or not method:
        return None
    return model.removeprefix("models/"), method


ADAPTER = Adapter(
    protocol=PROTOCOL,
    sse_content_type="text/event-stream",
    forward_headers=frozenset(),
    parse_request=parse_request,
    request_model=request_model,
    request_streams=lambda body: False,
    check_request=check_request,
    features_used=features_used,
    prepare_passthrough=prepare_passthrough,
    render_response=render_response,
    stream_encoder=lambda *, alias, request: StreamEncoder(alias=alias, request=request, sse=True),
    build_call=build_call,
    build_passthrough_call=build_passthrough_call,
    parse_response=parse_response,
    stream_decoder=StreamDecoder,
    read_error=read_error,
    count_request=count_request,
    render_count=render_count,
    count_call=count_call,
    read_count=read_count,
)


def _stream_view(*, sse: bool) -> Adapter:
    """The adapter as the ingress of a streamed request: Gemini says "stream" in the URL
    (``:streamGenerateContent``, ``?alt=sse`` for SSE, else one JSON array), not the body."""
    return dataclasses.replace(
        ADAPTER,
        sse_content_type="text/event-stream" if sse else "application/json",
        request_streams=lambda body: True,
        features_used=lambda body: features_used(body, stream=True),
        stream_encoder=lambda *, alias, request: StreamEncoder(alias=alias, request=request, sse=sse),
        build_passthrough_call=lambda body, tier, client_headers: build_passthrough_call(body, tier, client_headers, stream=True, sse=sse),
    )


SSE_STREAM = _stream_view(sse=True)
ARRAY_STREAM = _stream_view(sse=False)
