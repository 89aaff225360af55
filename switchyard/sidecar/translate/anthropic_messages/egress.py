"""Anthropic Messages as a tier speaks it: the egress face.

A neutral request becomes a ``POST {base}/v1/messages`` call (``x-api-key``,
``anthropic-version``, the client's ``anthropic-beta`` on same-protocol calls):
``max_tokens`` always set, thinking fitted to the tier's profile, structured output
as a forced tool (``_wire.FORMAT_TOOL``), tool ids made Anthropic-safe. A whole answer
is read back into a neutral ``Response``; ``read_error`` reads Anthropic's error body;
``count_call``/``read_count`` are the ``count_tokens`` call and answer.

Streamed answers are read by ``stream.StreamDecoder``; the pieces shared with the
ingress face live in ``_wire``.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import re
from collections.abc import Mapping
from typing import Any

import orjson

from switchyard.sidecar.contract.config import CompiledTier
from switchyard.sidecar.errors import clip

from .. import neutral as n
from ..base import RequestError, UpstreamCall, UpstreamErrorInfo, UpstreamFormatError, Verdict, auth_headers
from ..common import args_object, args_text, budget_to_effort, clamp, effort_to_budget, new_id
from ._wire import FORMAT_TOOL, MIN_THINKING_BUDGET, PROTOCOL, _finish_in, _usage_in

API_VERSION = "2023-06-01"

# Default answer size when the request names none (see the package docstring).
DEFAULT_MAX_TOKENS = 8192
EFFORT_OUT = {"minimal": "low", "low": "low", "medium": "medium", "high": "high"}

_TOOL_ID = re.compile(r"[^a-zA-Z0-9_-]")

# Client headers kept on same-protocol calls, so a client's beta flags reach the tier.
# Credentials (x-api-key, authorization) never are: the tier's key is injected.
ADAPTER_FORWARD_HEADERS = frozenset({"anthropic-version", "anthropic-beta"})


def _tool_id(raw: str) -> str:
    """Anthropic tool ids match ^[a-zA-Z0-9_-]+$; other providers' ids may not (the
    same substitution on tool_use and tool_result keeps them paired)."""
    return _TOOL_ID.sub("_", raw) or "toolu_empty"


def _source(p: n.Image | n.Document) -> dict[str, Any]:
    if p.url:
        return {"type": "url", "url": p.url}
    return {"type": "base64", "media_type": p.media_type or "application/octet-stream", "data": p.data or ""}


def _document_out(d: n.Document) -> dict[str, Any]:
    if d.text is not None:
        source: dict[str, Any] = {"type": "text", "media_type": "text/plain", "data": d.text}
    elif d.url:
        source = {"type": "url", "url": d.url}
    elif (d.media_type or "").startswith("text/"):
        try:
            text = base64.b64decode(d.data or "", validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise RequestError(f"a {d.media_type} document is not valid base64 UTF-8 text", "messages") from exc
        source = {"type": "text", "media_type": "text/plain", "data": text}
    elif (d.media_type or "application/pdf") == "application/pdf":
        source = {"type": "base64", "media_type": "application/pdf", "data": d.data or ""}
    else:
        raise RequestError(f"Anthropic tiers take PDF and plain-text documents, not {d.media_type}", "messages")
    out: dict[str, Any] = {"type": "document", "source": source}
    if d.title:
        out["title"] = d.title
    return out


def _text_out(t: n.Text) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "text", "text": t.text}
    if t.cache_control:
        block["cache_control"] = t.cache_control
    return block


def _part_out(p: n.Part) -> dict[str, Any] | None:
    if isinstance(p, n.Text):
        return _text_out(p) if p.text else None  # Anthropic rejects empty text blocks
    if isinstance(p, n.Image):
        return {"type": "image", "source": _source(p)}
    if isinstance(p, n.Document):
        return _document_out(p)
    if isinstance(p, n.Audio):
        raise RequestError("Anthropic tiers take no audio input (the tier's profile should strip or skip it)", "messages")
    if isinstance(p, n.ToolCall):
        return {"type": "tool_use", "id": _tool_id(p.id), "name": p.name, "input": args_object(p.arguments)}
    if isinstance(p, n.ToolResult):
        block: dict[str, Any] = {"type": "tool_result", "tool_use_id": _tool_id(p.tool_call_id)}
        inner = [b for b in (_part_out(x) for x in p.content if not isinstance(x, (n.ToolResult, n.ToolCall, n.Thinking))) if b]
        if len(inner) == 1 and inner[0]["type"] == "text" and "cache_control" not in inner[0]:
            block["content"] = inner[0]["text"]
        elif inner:
            block["content"] = inner
        if p.is_error:
            block["is_error"] = True
        return block
    if isinstance(p, n.Thinking):
        # Only thoughts Anthropic issued go back to it, with their signature intact.
        if p.origin != PROTOCOL:
            return None
        if p.redacted is not None:
            return {"type": "redacted_thinking", "data": p.redacted}
        if p.signature:
            return {"type": "thinking", "thinking": p.text, "signature": p.signature}
    return None


def _messages_out(req: n.Request) -> list[dict[str, Any]]:
    """Strict user/assistant alternation: consecutive same-role turns are merged, and a
    user turn's tool_result blocks come first (Anthropic requires both)."""
    out: list[dict[str, Any]] = []
    for m in req.messages:
        if m.role == "system":  # the API takes system turns inside messages: in place
            texts = [{"type": "text", "text": p.text} for p in m.parts if isinstance(p, n.Text)]
            if texts:
                out.append({"role": "system", "content": texts})
            continue
        blocks = [b for b in (_part_out(p) for p in m.parts) if b is not None]
        if not blocks:
            continue
        if out and out[-1]["role"] == m.role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": m.role, "content": blocks})
    for msg in out:
        if msg["role"] == "user":
            content = msg["content"]
            msg["content"] = [b for b in content if b["type"] == "tool_result"] + [b for b in content if b["type"] != "tool_result"]
    return out


def _mid_tool_loop_without_thinking(messages: list[dict[str, Any]]) -> bool:
    """True when the conversation continues a tool loop whose assistant turn carries no
    thinking block: manual thinking cannot be switched on inside that turn."""
    if len(messages) < 2 or messages[-1]["role"] != "user" or messages[-2]["role"] != "assistant":
        return False
    if not any(b["type"] == "tool_result" for b in messages[-1]["content"]):
        return False
    return not any(b["type"] in ("thinking", "redacted_thinking") for b in messages[-2]["content"])


def _tools_out(req: n.Request) -> list[dict[str, Any]]:
    out = []
    for t in req.tools:
        schema = dict(t.parameters or {})
        schema.setdefault("type", "object")
        if schema["type"] == "object":
            schema.setdefault("properties", {})
        tool: dict[str, Any] = {"name": t.name}
        if t.description:
            tool["description"] = t.description
        tool["input_schema"] = schema
        if t.strict:
            tool["strict"] = True
        out.append(tool)
    return out


def _format_tool(rf: n.ResponseFormat) -> dict[str, Any]:
    if rf.type == "json_schema":
        schema = rf.schema or {"type": "object"}
        if schema.get("type", "object") != "object":
            raise RequestError("structured output for an Anthropic tier needs a JSON schema whose root is an object", "response_format")
        schema = {"type": "object", **schema}
        what = f"the JSON object '{rf.name}'" if rf.name else "the JSON object the user asked for"
    else:
        schema = {"type": "object"}
        what = "a JSON object"
    return {
        "name": FORMAT_TOOL,
        "description": f"Give your final answer by calling this tool: its input is {what}. Do not answer in text.",
        "input_schema": schema,
    }


def _max_tokens(req: n.Request, tier: CompiledTier) -> int:
    if req.max_tokens is not None:
        return req.max_tokens
    limit = tier.profile.features.get("maxOutputTokens")
    if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0:
        return min(limit, DEFAULT_MAX_TOKENS)
    return DEFAULT_MAX_TOKENS


def _thinking_out(req: n.Request, tier: CompiledTier, body: dict[str, Any], notes: list[tuple[str, str]]) -> None:
    """Neutral reasoning -> ``thinking`` (and ``output_config.effort``).

    A tier whose profile says ``reasoning: effort`` gets adaptive thinking with an
    effort level (Claude Opus 4.6+ style), and so does a same-protocol request that
    asked for adaptive thinking (enabled, no budget); any other gets manual thinking
    with a token budget (effort -> budget via ``common.effort_to_budget``; an
    unspecified amount is the "medium" budget), at least 1024 and below max_tokens,
    which is raised to budget + the answer allowance when needed. What it had to change
    from the client's own numbers is added to ``notes`` (reported as degradations)."""
    r = req.reasoning
    if r is None:
        return
    if not r.enabled:
        body["thinking"] = {"type": "disabled"}
        return
    if _adaptive(req, tier):
        body["thinking"] = {"type": "adaptive"}
        effort = EFFORT_OUT.get(r.effort or "") or _budget_effort(r.budget_tokens)
        if effort:
            body.setdefault("output_config", {})["effort"] = effort
        return
    budget = r.budget_tokens or effort_to_budget(r.effort) or effort_to_budget("medium") or MIN_THINKING_BUDGET
    budget = max(MIN_THINKING_BUDGET, budget)
    limit = tier.profile.features.get("maxOutputTokens")
    if body["max_tokens"] <= budget:
        body["max_tokens"] = budget + body["max_tokens"] if body["max_tokens"] > 0 else budget + DEFAULT_MAX_TOKENS
    if isinstance(limit, int) and not isinstance(limit, bool) and body["max_tokens"] > limit:
        body["max_tokens"] = limit
        budget = min(budget, limit - 1)
    if req.max_tokens is not None and body["max_tokens"] != req.max_tokens:
        notes.append(("maxOutputTokens", f"map({body['max_tokens']})"))  # room for the thinking budget
    if budget < MIN_THINKING_BUDGET:
        notes.append(("reasoning", "strip"))  # no room to think under this tier's output limit
        return
    if r.budget_tokens is not None and budget != r.budget_tokens:
        notes.append(("reasoning", f"map({budget})"))
    body["thinking"] = {"type": "enabled", "budget_tokens": budget}


def _adaptive(req: n.Request, tier: CompiledTier) -> bool:
    r = req.reasoning
    mode = tier.profile.features.get("reasoning")
    if mode == "effort":
        return True
    if mode == "budget":  # the model refuses adaptive thinking: a budget, reported
        return False
    return req.origin == PROTOCOL and r is not None and r.budget_tokens is None


def _budget_effort(budget: int | None) -> str | None:
    return EFFORT_OUT.get(budget_to_effort(budget) or "")


def build_body(req: n.Request, tier: CompiledTier, notes: list[tuple[str, str]] | None = None) -> dict[str, Any]:
    """The Messages request for a tier. Fields the API refuses in this combination
    (sampling with thinking, temperature with top_p, thinking with a forced tool) are
    left out, and each such change is appended to ``notes`` as (feature, action), which
    the pipeline reports in ``x-switchyard-degraded`` and the log line like the profile's
    own decisions: never a silent drop."""
    notes = [] if notes is None else notes
    messages = _messages_out(req)
    body: dict[str, Any] = {"model": tier.model, "max_tokens": _max_tokens(req, tier), "messages": messages}
    if req.system:
        body["system"] = [_text_out(t) for t in req.system if t.text]
        if not body["system"]:
            del body["system"]
    same = req.origin == PROTOCOL
    if same:
        for k, v in req.extras.items():
            if "." in k or k in ("tools", "output_config", "metadata"):
                continue  # reports ("documents.citations") or merged below
            body.setdefault(k, v)

    tools = _tools_out(req)
    tc = req.tool_choice
    choice: dict[str, Any] | None = None
    if tc is not None:
        choice = {"type": {"required": "any"}.get(tc.mode, tc.mode)}
        if tc.mode == "tool":
            choice["name"] = tc.name
    rf = req.response_format
    if rf is not None and rf.type == "json_schema" and tier.profile.features.get("structuredOutput") is True:
        # The model has native structured output (output_config.format): no forced tool,
        # so thinking stays on. The answer is the JSON text itself.
        schema = rf.schema or {"type": "object"}
        if schema.get("type", "object") != "object":
            raise RequestError("structured output for an Anthropic tier needs a JSON schema whose root is an object", "response_format")
        body.setdefault("output_config", {})["format"] = {"type": "json_schema", "schema": {"type": "object", **schema}}
    elif rf is not None and rf.type in ("json_object", "json_schema"):
        # Structured output as a forced tool. With tools of the client's own, "any"
        # lets the model call one of them or answer through the format tool.
        client_tools = tools if not (tc and tc.mode == "none") else []
        tools = [*client_tools, _format_tool(rf)]
        if client_tools and not (tc and tc.mode == "tool"):
            choice = {"type": "any"}
        elif not client_tools:
            choice = {"type": "tool", "name": FORMAT_TOOL, "disable_parallel_tool_use": True}
    if same and isinstance(req.extras.get("tools"), list):
        tools = [*tools, *req.extras["tools"]]
    if tools:
        body["tools"] = tools
        if req.parallel_tool_calls is False:
            choice = {**(choice or {"type": "auto"}), "disable_parallel_tool_use": True}
    if choice is not None and tools:
        body["tool_choice"] = choice

    if req.stop:
        for s in req.stop:
            if not s.strip():
                raise RequestError(f"stop sequence {s!r} is empty or whitespace only; Anthropic tiers reject those", "stop")
        body["stop_sequences"] = list(req.stop)

    forced = "tools" in body and choice is not None and choice["type"] in ("any", "tool")
    manual = not _adaptive(req, tier)
    skip = forced or (manual and _mid_tool_loop_without_thinking(messages))
    if req.reasoning is not None and not (req.reasoning.enabled and skip):
        _thinking_out(req, tier, body, notes)
    elif req.reasoning is not None:
        # Thinking is left out (not "disabled") when the call forces a tool use (manual
        # thinking refuses it, some adaptive models too) or when manual thinking would
        # start in the middle of a tool loop whose assistant turn had none.
        notes.append(("reasoning", "strip"))
    thinking = body.get("thinking", {}).get("type") in ("enabled", "adaptive")
    if req.temperature is not None:
        if thinking:
            notes.append(("temperature", "strip"))  # thinking refuses sampling changes
        else:
            body["temperature"] = clamp(req.temperature, 0.0, 1.0)
            if body["temperature"] != req.temperature:
                notes.append(("temperature", f"map({body['temperature']:g})"))  # Anthropic's range is [0, 1]
    if req.top_p is not None:
        # Current Claude models refuse temperature and top_p together (temperature
        # wins); with thinking on, top_p must be within [0.95, 1].
        if "temperature" not in body and (not thinking or req.top_p >= 0.95):
            body["top_p"] = clamp(req.top_p, 0.0, 1.0)
        else:
            notes.append(("topP", "strip"))
    if req.top_k is not None:
        if thinking:
            notes.append(("topK", "strip"))
        else:
            body["top_k"] = req.top_k

    meta = dict(req.extras.get("metadata") or {}) if same else {}
    user = req.user or (req.metadata or {}).get("user_id")
    if isinstance(user, str) and user:
        meta["user_id"] = user
    if meta:
        body["metadata"] = meta
    if same and isinstance(req.extras.get("output_config"), dict):
        body["output_config"] = {**req.extras["output_config"], **body.get("output_config", {})}
    if req.stream:
        body["stream"] = True
    return body


def _url(tier: CompiledTier, path: str = "/v1/messages") -> str:
    base = tier.base_url.rstrip("/")
    if base.endswith("/v1"):
        base = base[:-3]
    return base + path


def _headers(tier: CompiledTier, stream: bool, client_headers: Mapping[str, str] | None = None) -> dict[str, str]:
    h = {
        "Content-Type": "application/json",
        "Accept": "text/event-stream" if stream else "application/json",
        "anthropic-version": API_VERSION,
    }
    for k, v in (client_headers or {}).items():
        if k.lower() in ADAPTER_FORWARD_HEADERS:
            h[k.lower()] = v
    h.update(tier.headers)
    h.update(auth_headers(tier))
    return h


def build_call(req: n.Request, tier: CompiledTier, client_headers: Mapping[str, str] | None = None) -> UpstreamCall:
    notes: list[tuple[str, str]] = []
    body = build_body(req, tier, notes)
    return UpstreamCall("POST", _url(tier), _headers(tier, req.stream, client_headers), orjson.dumps(body), req.stream, notes)


def build_passthrough_call(body: dict[str, Any], tier: CompiledTier, client_headers: Mapping[str, str]) -> UpstreamCall:
    stream = body.get("stream") is True
    return UpstreamCall("POST", _url(tier), _headers(tier, stream, client_headers), orjson.dumps(body), stream)


def parse_response(body: dict[str, Any]) -> n.Response:
    content = body.get("content")
    if body.get("type") == "error" or not isinstance(content, list):
        raise UpstreamFormatError("Anthropic answer without a content array")
    parts: list[n.Part] = []
    real_calls = 0
    for b in content:
        kind = b.get("type") if isinstance(b, dict) else None
        if kind == "text":
            parts.append(n.Text(str(b.get("text") or "")))
        elif kind == "thinking":
            sig = b.get("signature") if isinstance(b.get("signature"), str) else None
            parts.append(n.Thinking(str(b.get("thinking") or ""), sig or None, origin=PROTOCOL))
        elif kind == "redacted_thinking":
            parts.append(n.Thinking(redacted=str(b.get("data") or ""), origin=PROTOCOL))
        elif kind == "tool_use":
            if b.get("name") == FORMAT_TOOL:
                parts.append(n.Text(args_text(b.get("input") or {})))
            else:
                real_calls += 1
                parts.append(n.ToolCall(str(b.get("id") or new_id("toolu_")), str(b.get("name") or ""), args_text(b.get("input"))))
        # server_tool_use, web_search_tool_result, ...: Anthropic-hosted, no neutral form
    stop_sequence = body.get("stop_sequence") if isinstance(body.get("stop_sequence"), str) else None
    finish = _finish_in(body.get("stop_reason"), real_calls == 0)
    return n.Response(
        id=str(body.get("id") or new_id("msg_")),
        model=str(body.get("model") or ""),
        choices=[n.Choice(parts, finish, stop_sequence)],
        usage=_usage_in(body.get("usage")),
    )


def verdict(body: dict[str, Any]) -> Verdict | None:
    """``parse_response``'s verdict on the usual answer (text and thinking blocks) without
    building it; None for anything else (tool use, hosted tools, an odd type)."""
    blocks = body.get("content")
    if type(blocks) is not list or body.get("type") == "error":
        return None
    content = False
    for b in blocks:
        kind = b.get("type") if type(b) is dict else None
        if kind == "text":
            text = b.get("text")
            if type(text) is not str:
                return None
            content = content or text != ""
        elif kind != "thinking" and kind != "redacted_thinking":
            return None
    return Verdict(content, _finish_in(body.get("stop_reason"), True), _usage_in(body.get("usage")))


def read_error(status: int, body: bytes, headers: Mapping[str, str]) -> UpstreamErrorInfo:
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        return UpstreamErrorInfo(clip(body.decode("utf-8", "replace")) or f"HTTP {status}")
    err = obj.get("error") if isinstance(obj, dict) else None
    if not isinstance(err, dict):
        return UpstreamErrorInfo(clip(body.decode("utf-8", "replace")) or f"HTTP {status}")
    kind = str(err.get("type") or "") or None
    message = str(err.get("message") or kind or f"HTTP {status}")
    lowered = message.lower()
    return UpstreamErrorInfo(
        message=clip(message),
        kind=kind,
        # Out of credit is a quota problem of this tier (Anthropic answers it as a 400).
        quota=kind in ("rate_limit_error", "billing_error") or "credit balance is too low" in lowered,
        model_not_found=status == 404 and kind == "not_found_error" and "model" in lowered,
    )


#
# Pure halves of the one token-count flow (sidecar/pipeline/count.py): what to count,
# the call to the tier's own count endpoint, and reading its answer.

_COUNTED = ("model", "messages", "system", "tools", "tool_choice", "thinking")


# ----------------------------------------------------------------------- token counting


def count_call(
    tier: CompiledTier,
    *,
    body: dict[str, Any] | None = None,
    request: n.Request | None = None,
    client_headers: Mapping[str, str] | None = None,
) -> UpstreamCall:
    """Anthropic's ``/v1/messages/count_tokens``: a same-protocol body as is (the tier's
    model, no ``stream``), or what ``build_body`` makes of a neutral request, keeping the
    fields the endpoint accepts."""
    url = _url(tier, "/v1/messages/count_tokens")
    if body is not None:
        out = {**body, "model": tier.model}
        out.pop("stream", None)
        return UpstreamCall("POST", url, _headers(tier, False, client_headers), orjson.dumps(out), False)
    assert request is not None
    built = build_body(dataclasses.replace(request, stream=False, max_tokens=request.max_tokens or 1024), tier)
    keep = {k: built[k] for k in _COUNTED if k in built}
    return UpstreamCall("POST", url, _headers(tier, False), orjson.dumps(keep), False)


def read_count(raw: bytes) -> tuple[int, dict[str, Any]]:
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise UpstreamFormatError("count_tokens answer is not JSON") from exc
    tokens = obj.get("input_tokens") if isinstance(obj, dict) else None
    if not isinstance(tokens, int) or isinstance(tokens, bool):
        raise UpstreamFormatError("count_tokens answer without input_tokens")
    return tokens, obj
