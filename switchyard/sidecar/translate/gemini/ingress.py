"""Gemini as a client speaks it: the ingress face.

A ``GenerateContentRequest`` body (model and streaming come from the URL) parsed into a
neutral ``Request``, with the client's unknown fields kept in ``extras`` so a Gemini
tier gets them back (``egress.build_body``); the capability features a raw body uses;
the edits of a same-protocol body for a Gemini tier (``prepare_passthrough``); a whole
neutral answer rendered as a ``GenerateContentResponse``; the ``:countTokens`` request
and answer; the pure halves of the model routes (``split_model_method``,
``model_info``, ``model_listing``), which the package exposes for ``sidecar/http``.

Streamed answers are written by ``stream.StreamEncoder``; the pieces shared with the
egress face live in ``_wire``.
"""

from __future__ import annotations

import dataclasses
import re
from collections import deque
from collections.abc import Mapping
from typing import Any

import orjson

from switchyard.sidecar.contract.config import CompiledTier

from .. import neutral as n
from ..base import RequestError, adapter_for
from ..common import args_text, expect
from ._wire import (
    FINISH_OUT,
    PROTOCOL,
    _code_text,
    _get,
    _key,
    _media,
    _media_feature,
    _mime_of,
    _parts_out,
    _snake,
    _usage_out,
)

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
_LEVELS = {"MINIMAL": "minimal", "LOW": "low", "MEDIUM": "medium", "HIGH": "high", "XHIGH": "high"}


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


_JSON_TYPES = frozenset({"string", "integer", "number", "boolean", "object", "array", "null"})
_SUBSCHEMA = ("items", "not", "additionalProperties", "contains", "if", "then", "else")
_SUBSCHEMAS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SCHEMA_MAPS = ("properties", "$defs", "definitions", "patternProperties")


def json_schema_types(schema: Any) -> Any:
    """``responseJsonSchema`` is JSON Schema, but Gemini takes its type names in any case
    and Gemini CLI sends them upper-case (``"OBJECT"``): those are lower-cased, at schema
    positions only (a property named ``type`` is left alone), for destinations that
    validate JSON Schema. Nothing else changes. Never mutates its input."""
    if not isinstance(schema, dict):
        return schema
    out = dict(schema)
    t = out.get("type")
    if isinstance(t, str) and t.lower() in _JSON_TYPES:
        out["type"] = t.lower()
    elif isinstance(t, list):
        out["type"] = [x.lower() if isinstance(x, str) and x.lower() in _JSON_TYPES else x for x in t]
    for k in _SUBSCHEMA:
        if isinstance(out.get(k), dict):
            out[k] = json_schema_types(out[k])
    for k in _SUBSCHEMAS:
        if isinstance(out.get(k), list):
            out[k] = [json_schema_types(x) for x in out[k]]
    for k in _SCHEMA_MAPS:
        if isinstance(out.get(k), dict):
            out[k] = {name: json_schema_types(sub) for name, sub in out[k].items()}
    return out


# ------------------------------------------------------------------------------ parsing


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
    schema = json_schema_types(json_schema) if json_schema is not None else (schema_to_json(_get(gc, "responseSchema")) if _get(gc, "responseSchema") is not None else None)
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


def check_request(body: dict[str, Any]) -> None:
    contents = body.get("contents")
    expect(isinstance(contents, list) and bool(contents), "'contents' must be a non-empty array", "contents")
    for i, c in enumerate(contents):
        expect(isinstance(c, dict) and isinstance(c.get("parts"), list), f"'contents[{i}].parts' must be an array", "contents")


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


# ------------------------------------------------------------------------ rendering out


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


# ------------------------------------------------------------------------- count tokens


def count_request(body: dict[str, Any], path_model: str | None = None) -> n.Request:
    """The request a ``:countTokens`` body asks to count: its ``generateContentRequest``
    when it has one, else its own ``contents``."""
    inner = _get(body, "generateContentRequest")
    req = parse_request(inner if isinstance(inner, dict) else body, path_model=path_model, stream=False)
    return dataclasses.replace(req, extras={}, max_tokens=req.max_tokens or 1024)


def render_count(tokens: int) -> dict[str, Any]:
    return {"totalTokens": tokens}


# ------------------------------------------------------------------------------- models


def model_info(alias: str, binding: Any) -> dict[str, Any]:
    """One alias in Gemini's ``Model`` shape; limits from the primary tier's profile; the
    embedding methods when a tier can embed."""
    info: dict[str, Any] = {
        "name": f"models/{alias}",
        "baseModelId": alias,
        "version": "switchyard",
        "displayName": alias,
        "description": f"Switchyard binding {binding.name}",
        "supportedGenerationMethods": ["generateContent", "countTokens"],
    }
    tiers = getattr(binding, "tiers", None) or []
    if any(not t.problem and adapter_for(t.protocol).read_embeddings is not None for t in tiers):
        info["supportedGenerationMethods"] += ["embedContent", "batchEmbedContents"]
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


def split_model_method(name: str) -> tuple[str, str] | None:
    """``gemini-2.5-flash:generateContent`` -> (model, method); the last ':' splits."""
    model, sep, method = name.rpartition(":")
    if not sep or not model or not method:
        return None
    return model.removeprefix("models/"), method


# --------------------------------------------------------------------------- embeddings

MAX_EMBED_BATCH = 100  # Gemini's own limit on requests per batchEmbedContents
_EMBED_KEPT = ("taskType", "title")  # kept on Gemini tiers, reported elsewhere


def embed_request(body: dict[str, Any], path_model: str | None = None) -> n.EmbedRequest:
    """``:embedContent`` (one ``content``) or ``:batchEmbedContents`` (``requests``, each
    an EmbedContentRequest). Text parts only (a content's parts are joined by a newline).
    The requests of one batch must agree on ``taskType``, ``title`` and
    ``outputDimensionality``: one embeddings request here has one of each (what the
    google-genai SDK sends for a list of contents)."""
    reqs = _get(body, "requests")
    single = reqs is None
    if single:
        reqs = [body]
    expect(isinstance(reqs, list) and bool(reqs), "'requests' must be a non-empty array", "requests")
    expect(len(reqs) <= MAX_EMBED_BATCH, f"at most {MAX_EMBED_BATCH} requests can be in one batch", "requests")
    inputs: list[str] = []
    shared: tuple[Any, ...] | None = None
    for i, r in enumerate(reqs):
        where = "content" if single else f"requests[{i}].content"
        expect(isinstance(r, dict), f"requests[{i}] must be an object", "requests")
        parts = _get(_get(r, "content"), "parts")
        expect(isinstance(parts, list) and bool(parts), f"{where}.parts must be a non-empty array", where)
        texts = []
        for p in parts:
            text = _get(p, "text")
            expect(isinstance(text, str), f"{where}: only text parts can be embedded through this gateway", where)
            texts.append(text)
        joined = "\n".join(texts)
        expect(bool(joined), f"{where} has no text to embed", where)
        inputs.append(joined)
        dims = _get(r, "outputDimensionality")
        expect(dims is None or (type(dims) is int and 1 <= dims <= 65536), "outputDimensionality must be a positive integer", "outputDimensionality")
        fields = (dims, *(_get(r, k) for k in _EMBED_KEPT))
        expect(shared is None or fields == shared, "the requests of one batch must share taskType, title and outputDimensionality", "requests")
        shared = fields
    assert shared is not None
    dims, *kept = shared
    extras = {k: v for k, v in zip(_EMBED_KEPT, kept, strict=True) if v is not None}
    return n.EmbedRequest(inputs=tuple(inputs), dimensions=dims, extras=extras, origin=PROTOCOL, single=single)


def render_embeddings(
    vectors: list[list[float]], usage: n.Usage | None, *, alias: str, request: n.EmbedRequest
) -> dict[str, Any]:
    """``EmbedContentResponse`` for ``:embedContent``, ``BatchEmbedContentsResponse``
    otherwise."""
    if request.single and len(vectors) == 1:
        return {"embedding": {"values": vectors[0]}}
    return {"embeddings": [{"values": v} for v in vectors]}
