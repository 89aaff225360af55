"""Gemini as a tier speaks it: the egress face.

A neutral request becomes the body and URL of a ``generateContent`` /
``streamGenerateContent?alt=sse`` call (``x-goog-api-key``), with the active tool loop's
function calls signed (``SENTINEL_SIGNATURE``) and a thinking budget or level chosen
from the tier's profile; a same-protocol body is sent as it is but for the URL. A whole
answer is read back into a neutral ``Response``; ``read_error`` reads Google's error
body (and its ``RetryInfo`` delay); ``count_call``/``read_count`` are the
``:countTokens`` call and answer.

Streamed answers are read by ``stream.StreamDecoder``; the pieces shared with the
ingress face live in ``_wire``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

import orjson

from switchyard.sidecar.contract.config import CompiledTier
from switchyard.sidecar.errors import clip

from .. import neutral as n
from ..base import RequestError, UpstreamCall, UpstreamErrorInfo, UpstreamFormatError, Verdict, upstream_headers
from ..common import budget_to_effort, clamp, effort_to_budget, new_id, vector_in
from ._wire import PROTOCOL, _answer_parts, _finish_in, _get, _key, _parts_out, _usage_in

# Google's documented placeholder for a function call whose thought signature is unknown
# (history from another model or protocol): https://ai.google.dev/gemini-api/docs/thought-signatures
SENTINEL_SIGNATURE = "skip_thought_signature_validator"


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
        if m.role == "system":
            continue  # Gemini takes instructions only at the start: build_body folds them into systemInstruction
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


def build_body(req: n.Request, tier: CompiledTier, notes: list[tuple[str, str]] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"contents": _contents_out(req)}
    system = [t.text for t in req.system]
    turns = [p.text for m in req.messages if m.role == "system" for p in m.parts if isinstance(p, n.Text)]
    if turns:  # system turns inside the conversation: Gemini has instructions only at the start
        system += turns
        if notes is not None:
            notes.append(("systemTurns", "map(systemInstruction)"))
    if system:
        body["systemInstruction"] = {"parts": [{"text": t} for t in system]}
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


def build_call(req: n.Request, tier: CompiledTier, client_headers: Mapping[str, str] | None = None) -> UpstreamCall:
    notes: list[tuple[str, str]] = []
    body = build_body(req, tier, notes)
    method = "streamGenerateContent" if req.stream else "generateContent"
    url = _url(tier, method, sse=req.stream)
    return UpstreamCall("POST", url, upstream_headers(tier, req.stream), orjson.dumps(body), req.stream, notes)


def build_passthrough_call(
    body: dict[str, Any], tier: CompiledTier, client_headers: Mapping[str, str], *, stream: bool = False, sse: bool = True
) -> UpstreamCall:
    method = "streamGenerateContent" if stream else "generateContent"
    url = _url(tier, method, sse=stream and sse)
    headers = upstream_headers(tier, stream)
    if stream and not sse:
        headers["Accept"] = "application/json"
    return UpstreamCall("POST", url, headers, orjson.dumps(body), stream)


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


_TEXT_PART_KEYS = frozenset({"text", "thought", "thoughtSignature"})


def verdict(body: dict[str, Any]) -> Verdict | None:
    """``parse_response``'s verdict on the usual answer (one candidate of text and thought
    parts) without building it; None for anything else (function calls, media, code,
    several candidates, snake_case names, an odd type)."""
    candidates = body.get("candidates")
    if type(candidates) is not list or len(candidates) != 1 or type(candidates[0]) is not dict:
        return None
    candidate = candidates[0]
    parts = _get(_get(candidate, "content"), "parts")
    if type(parts) is not list:
        return None
    content = False
    for p in parts:
        if type(p) is not dict or type(p.get("text")) is not str or not p.keys() <= _TEXT_PART_KEYS:
            return None
        content = content or (p["text"] != "" and p.get("thought") is not True)
    reason = _get(candidate, "finishReason")
    finish = _finish_in(reason, False) if isinstance(reason, str) else None
    return Verdict(content, finish, _usage_in(_get(body, "usageMetadata")))


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


# ------------------------------------------------------------------------- count tokens


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
        return UpstreamCall("POST", _url(tier, "countTokens"), upstream_headers(tier, False), orjson.dumps(out), False)
    assert request is not None
    built = build_body(dataclasses.replace(request, stream=False), tier)
    built["model"] = _model_path(tier.model)
    return UpstreamCall("POST", _url(tier, "countTokens"), upstream_headers(tier, False), orjson.dumps({"generateContentRequest": built}), False)


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


# --------------------------------------------------------------------------- embeddings

MAX_EMBED_BATCH = 100  # Gemini refuses larger batches


def _embed_entry(tier: CompiledTier, text: str, request: n.EmbedRequest, *, model: bool) -> dict[str, Any]:
    entry: dict[str, Any] = dict(request.extras) if request.origin == PROTOCOL else {}
    if model:
        entry["model"] = _model_path(tier.model)
    entry["content"] = {"parts": [{"text": text}]}
    if request.dimensions is not None:
        entry["outputDimensionality"] = request.dimensions
    return entry


def embed_call(tier: CompiledTier, request: n.EmbedRequest) -> UpstreamCall:
    """``:embedContent`` for one input, ``:batchEmbedContents`` for more (at most
    100, Gemini's limit: more is a RequestError). ``taskType`` and ``title`` go along
    for a Gemini client."""
    headers = upstream_headers(tier, False)
    if len(request.inputs) == 1:
        body = _embed_entry(tier, request.inputs[0], request, model=False)
        return UpstreamCall("POST", _url(tier, "embedContent"), headers, orjson.dumps(body), False)
    if len(request.inputs) > MAX_EMBED_BATCH:
        raise RequestError(
            f"tier {tier.source}/{tier.model} (Gemini) embeds at most {MAX_EMBED_BATCH} inputs per request, "
            f"not {len(request.inputs)}; send fewer",
            "input",
        )
    body = {"requests": [_embed_entry(tier, t, request, model=True) for t in request.inputs]}
    return UpstreamCall("POST", _url(tier, "batchEmbedContents"), headers, orjson.dumps(body), False)


def read_embeddings(raw: bytes) -> tuple[list[list[float]], n.Usage | None]:
    """``{"embedding": {"values"}}`` or ``{"embeddings": [{"values"}, ...]}``."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise UpstreamFormatError("embeddings answer is not JSON") from exc
    if not isinstance(obj, dict):
        raise UpstreamFormatError("embeddings answer is not an object")
    one = _get(obj, "embedding")
    many = [one] if one is not None else _get(obj, "embeddings")
    if not isinstance(many, list) or not many:
        raise UpstreamFormatError("embeddings answer without embedding or embeddings")
    vectors = [vector_in(_get(e, "values"), f"embedding {i}") for i, e in enumerate(many)]
    tokens = _get(_get(obj, "usageMetadata"), "promptTokenCount")
    return vectors, n.Usage(input_tokens=tokens) if type(tokens) is int else None
