"""Anthropic Messages, both faces: what Claude Code and the ``anthropic`` SDK speak.

Ingress: ``POST /v1/messages`` bodies (Claude Code adds ``?beta=true``; the query does
not matter) into the neutral form; neutral answers and event streams back into a
``message`` object and the exact Anthropic SSE sequence. Also
``POST /v1/messages/count_tokens``, answered by the binding's first resolvable tier
when it can count (Anthropic, Gemini) and refused clearly otherwise. Egress: neutral
requests into ``POST {base}/v1/messages`` for Anthropic tiers, the answers and SSE
streams back into neutral form.

Field notes (checked against the Messages API reference and the ``anthropic`` SDK's
own types; docs/protocols/anthropic.md has the field-by-field table):

- Usage: Anthropic's ``input_tokens`` *excludes* cache reads and cache writes (total
  input = input + cache_read + cache_creation). The neutral ``Usage.input_tokens`` is
  the total (OpenAI's ``prompt_tokens`` semantics), so the adapters add and subtract.
- Streams have explicit block boundaries; neutral events do not. The encoder opens a
  block when a different kind of content starts and closes it when the next starts or
  at the finish. ``message_delta`` (stop reason + usage) is held back until
  ``finish()`` because OpenAI-style upstreams report usage after the finish reason.
- Thinking signatures are only meaningful to Anthropic. Thinking of another origin, or
  without a signature, is never sent to an Anthropic upstream; a foreign thought shown
  to an Anthropic client carries ``signature: ""`` and is dropped when the client sends
  it back (neutral path and same-protocol passthrough alike).
- Structured output (``response_format``) has no JSON mode on the Messages API that
  every model takes, so it becomes a forced tool whose ``input_schema`` is the schema;
  the answer's tool call is turned back into text, as OpenAI would return it.
- ``max_tokens`` is required by Anthropic: the request's, else the tier profile's
  ``maxOutputTokens`` capped at 8192 (a size every current Claude model accepts and
  that answers most chat turns; the cap keeps an unset client from reserving a
  64k-token answer). A thinking budget must be >= 1024 and < max_tokens: when it is
  not, max_tokens is raised to budget + the visible allowance (the docs page says so).

Only the bottom section (HTTP endpoints) does I/O, through ``Runtime.upstreams``; it is
registered on ``routes.EXTRA_ROUTES`` when this module is imported.
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
from switchyard.sidecar.errors import ErrorKind, GatewayError, anthropic_error_body, clip

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
from .common import (
    args_object,
    args_text,
    budget_to_effort,
    clamp,
    effort_to_budget,
    expect,
    new_id,
    opt_number,
)
from .sse import SSEDecoder, encode

PROTOCOL = "anthropic-messages"
API_VERSION = "2023-06-01"

# The reserved tool that carries structured output (response_format) to Anthropic.
FORMAT_TOOL = "switchyard_structured_output"

# Default answer size when the request names none (see the module docstring).
DEFAULT_MAX_TOKENS = 8192
MIN_THINKING_BUDGET = 1024

# Top-level fields this adapter understands; everything else in a body is an "extra".
_KNOWN = frozenset(
    {
        "model", "messages", "system", "max_tokens", "temperature", "top_p", "top_k",
        "stop_sequences", "stream", "metadata", "tools", "tool_choice", "thinking",
        "output_config", "output_format",
    }
)  # fmt: skip

# Custom-tool fields carried by the neutral form (cache_control is a cost hint: dropped
# on the neutral path without report). Any other field is reported as "tools.<field>".
_TOOL_FIELDS = frozenset({"name", "description", "input_schema", "type", "strict", "cache_control"})

STOP_IN: dict[str, n.FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "refusal",
    "pause_turn": "pause",
}
STOP_OUT: dict[str | None, str] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
    "refusal": "refusal",
    "pause": "pause_turn",
    "error": "end_turn",
    None: "end_turn",
}

EFFORT_IN = {"low": "low", "medium": "medium", "high": "high", "xhigh": "high", "max": "high"}
EFFORT_OUT = {"minimal": "low", "low": "low", "medium": "medium", "high": "high"}

# Anthropic error type -> (HTTP status, sidecar ErrorKind value), for in-stream errors.
ERROR_TYPES: dict[str, tuple[int, str]] = {
    "invalid_request_error": (400, "invalid_request"),
    "authentication_error": (401, "authentication"),
    "billing_error": (402, "permission"),
    "permission_error": (403, "permission"),
    "not_found_error": (404, "not_found"),
    "request_too_large": (413, "request_too_large"),
    "rate_limit_error": (429, "rate_limited"),
    "api_error": (500, "upstream"),
    "timeout_error": (504, "timeout"),
    "overloaded_error": (529, "overloaded"),
}

_TOOL_ID = re.compile(r"[^a-zA-Z0-9_-]")

# Client headers kept on same-protocol calls, so a client's beta flags reach the tier.
# Credentials (x-api-key, authorization) never are: the tier's key is injected.
ADAPTER_FORWARD_HEADERS = frozenset({"anthropic-version", "anthropic-beta"})


# ====================================================================== ingress


def _text_block(block: dict[str, Any], where: str) -> n.Text:
    expect(isinstance(block.get("text"), str), f"'{where}.text' must be a string", where)
    cc = block.get("cache_control")
    return n.Text(block["text"], cc if isinstance(cc, dict) else None)


def _image(block: dict[str, Any], where: str) -> n.Image:
    src = block.get("source")
    expect(isinstance(src, dict), f"'{where}.source' must be an object", where)
    kind = src.get("type")
    if kind == "base64":
        expect(isinstance(src.get("data"), str) and isinstance(src.get("media_type"), str), f"'{where}.source' needs media_type and data", where)
        return n.Image(data=src["data"], media_type=src["media_type"])
    if kind == "url":
        expect(isinstance(src.get("url"), str), f"'{where}.source.url' must be a string", where)
        return n.Image(url=src["url"])
    if kind == "file":
        raise RequestError(f"'{where}' references an uploaded file (file_id); only inline or URL images can be routed", where)
    raise RequestError(f"'{where}.source.type' must be base64, url or file", where)


def _document(block: dict[str, Any], where: str, extras: dict[str, Any]) -> n.Document:
    src = block.get("source")
    expect(isinstance(src, dict), f"'{where}.source' must be an object", where)
    title = block.get("title") if isinstance(block.get("title"), str) else None
    for key in ("citations", "context"):
        if block.get(key):
            _note(extras, f"documents.{key}")
    kind = src.get("type")
    if kind == "base64":
        expect(isinstance(src.get("data"), str), f"'{where}.source.data' must be a string", where)
        return n.Document(data=src["data"], media_type=str(src.get("media_type") or "application/pdf"), title=title)
    if kind == "text":
        expect(isinstance(src.get("data"), str), f"'{where}.source.data' must be a string", where)
        return n.Document(text=src["data"], media_type=str(src.get("media_type") or "text/plain"), title=title)
    if kind == "url":
        expect(isinstance(src.get("url"), str), f"'{where}.source.url' must be a string", where)
        return n.Document(url=src["url"], media_type="application/pdf", title=title)
    if kind == "content":
        content = src.get("content")
        if isinstance(content, str):
            return n.Document(text=content, media_type="text/plain", title=title)
        expect(isinstance(content, list), f"'{where}.source.content' must be a string or an array", where)
        texts = []
        for i, b in enumerate(content):
            ok = isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"), str)
            expect(ok, f"'{where}.source.content[{i}]': only text blocks can be routed inside a content document", where)
            texts.append(b["text"])
        return n.Document(text="\n\n".join(texts), media_type="text/plain", title=title)
    if kind == "file":
        raise RequestError(f"'{where}' references an uploaded file (file_id); only inline or URL documents can be routed", where)
    raise RequestError(f"'{where}.source.type' must be base64, text, url, content or file", where)


def _note(extras: dict[str, Any], key: str) -> None:
    """Count a detail the neutral form cannot carry (reported as unknownFields(key))."""
    extras[key] = int(extras.get(key, 0)) + 1


def _blocks(content: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    expect(isinstance(content, list), f"'{where}.content' must be a string or an array of content blocks", where)
    for i, b in enumerate(content):
        expect(isinstance(b, dict) and isinstance(b.get("type"), str), f"'{where}.content[{i}]' must be an object with a type", where)
    return content


def _tool_result(block: dict[str, Any], where: str, names: dict[str, str], extras: dict[str, Any]) -> n.ToolResult:
    tid = block.get("tool_use_id")
    expect(isinstance(tid, str) and bool(tid), f"'{where}.tool_use_id' is required", where)
    parts: list[n.Part] = []
    content = block.get("content")
    if content is not None:
        for i, b in enumerate(_blocks(content, where)):
            sub = f"{where}.content[{i}]"
            kind = b["type"]
            if kind == "text":
                parts.append(_text_block(b, sub))
            elif kind == "image":
                parts.append(_image(b, sub))
            elif kind == "document":
                parts.append(_document(b, sub, extras))
            else:  # search_result, tool_reference, ...: no neutral meaning
                _note(extras, f"tool_result.{kind}")
    return n.ToolResult(tid, parts, is_error=block.get("is_error") is True, name=names.get(tid))


def _message_parts(m: dict[str, Any], where: str, names: dict[str, str], extras: dict[str, Any]) -> list[n.Part]:
    role = m["role"]
    parts: list[n.Part] = []
    for i, b in enumerate(_blocks(m.get("content"), where)):
        sub = f"{where}.content[{i}]"
        kind = b["type"]
        if kind == "text":
            parts.append(_text_block(b, sub))
        elif kind == "image":
            parts.append(_image(b, sub))
        elif kind == "document":
            parts.append(_document(b, sub, extras))
        elif kind == "tool_use" and role == "assistant":
            tid, name = b.get("id"), b.get("name")
            expect(isinstance(tid, str) and isinstance(name, str), f"'{sub}' needs an id and a name", sub)
            expect(b.get("input") is None or isinstance(b.get("input"), dict), f"'{sub}.input' must be an object", sub)
            names[tid] = name
            parts.append(n.ToolCall(tid, name, args_text(b.get("input") or {})))
        elif kind == "tool_result" and role == "user":
            parts.append(_tool_result(b, sub, names, extras))
        elif kind == "thinking" and role == "assistant":
            expect(isinstance(b.get("thinking"), str), f"'{sub}.thinking' must be a string", sub)
            sig = b.get("signature")
            signed = isinstance(sig, str) and bool(sig)
            # An empty signature marks a thought another protocol produced (see the
            # module docstring): it has no origin Anthropic would accept.
            parts.append(n.Thinking(b["thinking"], sig if signed else None, origin=PROTOCOL if signed else None))
        elif kind == "redacted_thinking" and role == "assistant":
            expect(isinstance(b.get("data"), str), f"'{sub}.data' must be a string", sub)
            parts.append(n.Thinking(redacted=b["data"], origin=PROTOCOL))
        elif kind in ("tool_use", "tool_result", "thinking", "redacted_thinking"):
            raise RequestError(f"'{sub}': a {kind} block cannot appear in a {role} message", sub)
        else:  # server tool blocks, search results, container uploads, ...
            _note(extras, f"messages.{kind}")
    return parts


def _system(system: Any) -> list[n.Text]:
    if system is None:
        return []
    if isinstance(system, str):
        return [n.Text(system)] if system else []
    expect(isinstance(system, list), "'system' must be a string or an array of text blocks", "system")
    out = []
    for i, b in enumerate(system):
        expect(isinstance(b, dict) and b.get("type") == "text", f"'system[{i}]' must be a text block", "system")
        out.append(_text_block(b, f"system[{i}]"))
    return out


def _tools(raw: Any, extras: dict[str, Any]) -> tuple[list[n.Tool], list[Any]]:
    if raw is None:
        return [], []
    expect(isinstance(raw, list), "'tools' must be an array", "tools")
    tools: list[n.Tool] = []
    server: list[Any] = []
    for i, t in enumerate(raw):
        expect(isinstance(t, dict), f"'tools[{i}]' must be an object", "tools")
        if t.get("type") not in (None, "custom"):
            server.append(t)  # web_search, bash, text_editor, code_execution, ...: Anthropic-hosted
            continue
        expect(isinstance(t.get("name"), str) and bool(t["name"]), f"'tools[{i}].name' is required", "tools")
        schema = t.get("input_schema")
        expect(isinstance(schema, dict), f"'tools[{i}].input_schema' must be an object", "tools")
        for key in t:
            if key not in _TOOL_FIELDS:
                _note(extras, f"tools.{key}")
        strict = t.get("strict") if isinstance(t.get("strict"), bool) else None
        desc = t.get("description") if isinstance(t.get("description"), str) else None
        tools.append(n.Tool(t["name"], desc, schema, strict))
    return tools, server


def _tool_choice(tc: Any) -> tuple[n.ToolChoice | None, bool | None]:
    if tc is None:
        return None, None
    expect(isinstance(tc, dict), "'tool_choice' must be an object", "tool_choice")
    kind = tc.get("type")
    parallel = False if tc.get("disable_parallel_tool_use") is True else None
    if kind == "auto":
        return n.ToolChoice("auto"), parallel
    if kind == "any":
        return n.ToolChoice("required"), parallel
    if kind == "none":
        return n.ToolChoice("none"), None
    if kind == "tool":
        expect(isinstance(tc.get("name"), str), "'tool_choice.name' is required for type tool", "tool_choice")
        return n.ToolChoice("tool", tc["name"]), parallel
    raise RequestError("'tool_choice.type' must be auto, any, tool or none", "tool_choice")


_THINKING_ON = ("enabled", "adaptive", "between_tools")


def _reasoning(thinking: Any, effort: Any) -> n.Reasoning | None:
    """``thinking`` (+ ``output_config.effort`` when thinking is on) -> neutral reasoning.

    Effort without thinking steers how much Claude writes, not how much it thinks: it
    stays an Anthropic-only field (``output_config`` in extras)."""
    if thinking is None:
        return None
    expect(isinstance(thinking, dict), "'thinking' must be an object", "thinking")
    level = None
    if effort is not None:
        expect(isinstance(effort, str) and effort in EFFORT_IN, "'output_config.effort' must be low, medium, high, xhigh or max", "output_config")
        level = EFFORT_IN[effort]
    kind = thinking.get("type")
    summary = thinking.get("display") != "omitted"
    if kind == "disabled":
        return n.Reasoning(enabled=False)
    if kind == "enabled":
        budget = thinking.get("budget_tokens")
        ok = isinstance(budget, int) and not isinstance(budget, bool) and budget > 0
        expect(ok, "'thinking.budget_tokens' must be a positive integer", "thinking")
        return n.Reasoning(effort=level, budget_tokens=budget, summary=summary)  # type: ignore[arg-type]
    if kind in ("adaptive", "between_tools"):
        # The model decides how much to think; an effort level steers it.
        return n.Reasoning(effort=level, summary=summary)  # type: ignore[arg-type]
    raise RequestError("'thinking.type' must be enabled, adaptive or disabled", "thinking")


def _response_format(fmt: Any, where: str) -> n.ResponseFormat | None:
    if fmt is None:
        return None
    ok = isinstance(fmt, dict) and fmt.get("type") == "json_schema" and isinstance(fmt.get("schema"), dict)
    expect(ok, f"'{where}' must be {{\"type\": \"json_schema\", \"schema\": {{...}}}}", where.split(".")[0])
    # Not marked strict: OpenAI's strict mode refuses schemas with optional properties,
    # which Anthropic's structured outputs accept.
    return n.ResponseFormat("json_schema", fmt["schema"])


def parse_request(body: dict[str, Any], *, path_model: str | None = None, stream: bool | None = None) -> n.Request:
    model = body.get("model")
    expect(isinstance(model, str) and bool(model), "'model' is required and must be a string", "model")
    max_tokens = opt_number(body, "max_tokens", integer=True)
    expect(max_tokens is not None and max_tokens >= 0, "'max_tokens' is required and must be a non-negative integer", "max_tokens")
    messages = body.get("messages")
    expect(isinstance(messages, list) and bool(messages), "'messages' must be a non-empty array", "messages")

    extras: dict[str, Any] = {k: v for k, v in body.items() if k not in _KNOWN}
    system = _system(body.get("system"))
    out: list[n.Message] = []
    names: dict[str, str] = {}
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        expect(isinstance(m, dict), f"'{where}' must be an object", where)
        role = m.get("role")
        if role == "system":  # the newest API takes system turns inside messages
            system.extend(_system(m.get("content")))
            continue
        expect(role in ("user", "assistant"), f"'{where}.role' must be user or assistant", where)
        expect("content" in m, f"'{where}.content' is required", where)
        out.append(n.Message(role, _message_parts(m, where, names, extras)))

    tools, server_tools = _tools(body.get("tools"), extras)
    if server_tools:
        extras["tools"] = server_tools
    tool_choice, parallel = _tool_choice(body.get("tool_choice"))

    stop = body.get("stop_sequences")
    ok = stop is None or (isinstance(stop, list) and all(isinstance(s, str) for s in stop))
    expect(ok, "'stop_sequences' must be an array of strings", "stop_sequences")

    oc = body.get("output_config")
    expect(oc is None or isinstance(oc, dict), "'output_config' must be an object", "output_config")
    oc = oc or {}
    thinking = body.get("thinking")
    thinks = isinstance(thinking, dict) and thinking.get("type") in _THINKING_ON
    rest = {k: v for k, v in oc.items() if k != "format" and not (k == "effort" and thinks)}
    if rest:
        extras["output_config"] = rest
    response_format = _response_format(oc.get("format"), "output_config.format") or _response_format(
        body.get("output_format"), "output_format"
    )

    meta = body.get("metadata")
    expect(meta is None or isinstance(meta, dict), "'metadata' must be an object", "metadata")
    user = (meta or {}).get("user_id")
    expect(user is None or isinstance(user, str), "'metadata.user_id' must be a string", "metadata")
    meta_rest = {k: v for k, v in (meta or {}).items() if k != "user_id"}
    if meta_rest:
        extras["metadata"] = meta_rest

    return n.Request(
        model=model,  # type: ignore[arg-type]
        messages=out,
        system=system,
        tools=tools,
        tool_choice=tool_choice,
        parallel_tool_calls=parallel,
        max_tokens=max_tokens,
        temperature=opt_number(body, "temperature"),
        top_p=opt_number(body, "top_p"),
        top_k=opt_number(body, "top_k", integer=True),
        stop=list(stop or []),
        reasoning=_reasoning(thinking, oc.get("effort") if thinks else None),
        response_format=response_format,
        stream=bool(body.get("stream")) if stream is None else stream,
        user=user,
        extras=extras,
        origin=PROTOCOL,
    )


def request_model(body: dict[str, Any]) -> str | None:
    m = body.get("model")
    return m if isinstance(m, str) else None


def request_streams(body: dict[str, Any]) -> bool:
    return body.get("stream") is True


def _scan_media(blocks: Any, used: dict[str, Any]) -> None:
    if not isinstance(blocks, list):
        return
    for b in blocks:
        kind = b.get("type") if isinstance(b, dict) else None
        if kind == "image":
            used["vision"] = True
        elif kind == "document":
            used["documents"] = True
        elif kind == "tool_result":
            _scan_media(b.get("content"), used)


def features_used(body: dict[str, Any]) -> dict[str, Any]:
    """Capability features a raw body uses: one pass over the messages, no parsing.

    ``parallelToolCalls`` is not reported: Anthropic has no opt-in for parallel calls
    (they are the default, ``disable_parallel_tool_use`` only turns them off), and the
    OpenAI adapter likewise reports the feature only when a client asks for it."""
    used: dict[str, Any] = {}
    if body.get("stream") is True:
        used["streaming"] = True
    if body.get("tools"):
        used["tools"] = True
    if body.get("system"):
        used["systemPrompt"] = True
    messages = body.get("messages")
    if isinstance(messages, list):
        for m in messages:
            if isinstance(m, dict):
                if m.get("role") == "system":
                    used["systemPrompt"] = True
                _scan_media(m.get("content"), used)
    thinking = body.get("thinking")
    oc = body.get("output_config")
    oc = oc if isinstance(oc, dict) else {}
    if isinstance(thinking, dict) and thinking.get("type") in _THINKING_ON:
        used["reasoning"] = True
    if isinstance(oc.get("format"), dict) or isinstance(body.get("output_format"), dict):
        used["structuredOutput"] = True
    stop = body.get("stop_sequences")
    if isinstance(stop, list) and stop:
        used["stopSequences"] = len(stop)
    if body.get("top_k") is not None:
        used["topK"] = True
    mt = body.get("max_tokens")
    if isinstance(mt, int) and not isinstance(mt, bool):
        used["maxOutputTokens"] = mt
    return used


_MEDIA_BLOCK = {"vision": "image", "documents": "document"}


def prepare_passthrough(body: dict[str, Any], tier: CompiledTier, edits: Mapping[str, Any], notes: list[tuple[str, str]] | None = None) -> dict[str, Any]:
    """A shallow copy for a same-protocol tier: its model, the profile's edits, unknown
    fields kept. Nested values are copied only where they change (never mutates ``body``).

    Thoughts another protocol produced (``signature: ""``, see the module docstring) are
    removed: Anthropic rejects a thinking block whose signature it did not issue. What that
    and the budget fit change in the client's thinking is appended to ``notes``."""
    notes = [] if notes is None else notes
    out = dict(body)
    out["model"] = tier.model
    for feature, value in edits.items():
        if feature == "stopSequences":
            stops = out.get("stop_sequences")
            if value and isinstance(stops, list):
                out["stop_sequences"] = stops[:value]
            else:
                out.pop("stop_sequences", None)
        elif feature == "maxOutputTokens" and value is not None:
            out["max_tokens"] = value
        elif feature == "tools":
            out.pop("tools", None)
            out.pop("tool_choice", None)
        elif feature == "reasoning":
            out.pop("thinking", None)
            _pop_sub(out, "output_config", "effort")
        elif feature in ("jsonMode", "structuredOutput"):
            _pop_sub(out, "output_config", "format")
            out.pop("output_format", None)
        elif feature == "topK":
            out.pop("top_k", None)
        elif feature == "systemPrompt":
            out.pop("system", None)
            if isinstance(out.get("messages"), list):
                out["messages"] = [m for m in out["messages"] if not (isinstance(m, dict) and m.get("role") == "system")]
        elif feature == "streaming":
            out.pop("stream", None)  # the pipeline serves the stream from a whole answer
        elif feature in _MEDIA_BLOCK and isinstance(out.get("messages"), list):
            out["messages"] = _without_blocks(out["messages"], _MEDIA_BLOCK[feature])
    if isinstance(out.get("messages"), list):
        out["messages"], dropped_last = _without_foreign_thinking(out["messages"])
        thinking = out.get("thinking")
        if dropped_last and isinstance(thinking, dict) and thinking.get("type") == "enabled":
            # Manual thinking needs the last assistant turn of a tool loop to start with
            # a thinking block; with the foreign one gone, think again next turn instead.
            out.pop("thinking", None)
            notes.append(("reasoning", "strip"))
    _fit_thinking_budget(out, notes)
    return out


def _pop_sub(body: dict[str, Any], key: str, sub: str) -> None:
    value = body.get(key)
    if isinstance(value, dict) and sub in value:
        rest = {k: v for k, v in value.items() if k != sub}
        if rest:
            body[key] = rest
        else:
            body.pop(key)


def _fit_thinking_budget(body: dict[str, Any], notes: list[tuple[str, str]]) -> None:
    """Manual thinking needs 1024 <= budget_tokens < max_tokens; a mapped max_tokens
    may break that, so the budget follows (and thinking goes if it cannot fit)."""
    thinking, mt = body.get("thinking"), body.get("max_tokens")
    if not (isinstance(thinking, dict) and thinking.get("type") == "enabled" and isinstance(mt, int)):
        return
    budget = thinking.get("budget_tokens")
    if isinstance(budget, int) and budget >= mt:
        if mt - 1 >= MIN_THINKING_BUDGET:
            body["thinking"] = {**thinking, "budget_tokens": mt - 1}
            notes.append(("reasoning", f"map({mt - 1})"))
        else:
            body.pop("thinking")
            notes.append(("reasoning", "strip"))


def _without_blocks(messages: list[Any], kind: str) -> list[Any]:
    out = []
    for m in messages:
        content = m.get("content") if isinstance(m, dict) else None
        if isinstance(content, list):
            kept = [_strip_nested(b, kind) for b in content if not (isinstance(b, dict) and b.get("type") == kind)]
            if kept != content:
                m = {**m, "content": kept}
        out.append(m)
    return out


def _strip_nested(block: Any, kind: str) -> Any:
    if isinstance(block, dict) and block.get("type") == "tool_result" and isinstance(block.get("content"), list):
        inner = [b for b in block["content"] if not (isinstance(b, dict) and b.get("type") == kind)]
        if len(inner) != len(block["content"]):
            return {**block, "content": inner}
    return block


def _without_foreign_thinking(messages: list[Any]) -> tuple[list[Any], bool]:
    """Messages without unsigned thinking blocks; and whether the last assistant turn lost one."""
    out = list(messages)
    last_assistant = max((i for i, m in enumerate(out) if isinstance(m, dict) and m.get("role") == "assistant"), default=-1)
    dropped_last = False
    for i, m in enumerate(out):
        content = m.get("content") if isinstance(m, dict) and m.get("role") == "assistant" else None
        if not isinstance(content, list):
            continue
        kept = [b for b in content if not (isinstance(b, dict) and b.get("type") == "thinking" and not b.get("signature"))]
        if len(kept) != len(content):
            out[i] = {**m, "content": kept}
            dropped_last = dropped_last or i == last_assistant
    return out, dropped_last


# ------------------------------------------------------------------ responses out


def _usage_out(u: n.Usage | None) -> dict[str, Any]:
    if u is None:
        return {"input_tokens": 0, "output_tokens": 0}
    out: dict[str, Any] = {
        "input_tokens": max(0, u.input_tokens - u.cached_input_tokens - u.cache_creation_tokens),
        "output_tokens": u.output_tokens,
        "cache_creation_input_tokens": u.cache_creation_tokens,
        "cache_read_input_tokens": u.cached_input_tokens,
    }
    if u.reasoning_tokens:
        out["output_tokens_details"] = {"thinking_tokens": u.reasoning_tokens}
    return out


def _stop_out(reason: n.FinishReason | None, stop_sequence: str | None, called_tools: bool) -> str:
    if reason == "stop" and stop_sequence:
        return "stop_sequence"
    if called_tools and reason in ("stop", None):
        return "tool_use"  # Gemini says STOP after function calls; Claude Code waits for tool_use
    return STOP_OUT.get(reason, "end_turn")


def _message_id(upstream_id: str) -> str:
    if upstream_id.startswith("msg_"):
        return upstream_id
    return f"msg_{upstream_id}" if upstream_id else new_id("msg_")


def _content_out(parts: list[n.Part]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for p in parts:
        if isinstance(p, n.Thinking):
            ours = p.origin == PROTOCOL
            if p.redacted is not None:
                if ours:
                    out.append({"type": "redacted_thinking", "data": p.redacted})
            elif p.text or (ours and p.signature):
                out.append({"type": "thinking", "thinking": p.text, "signature": (p.signature or "") if ours else ""})
        elif isinstance(p, n.Text):
            if p.text:
                out.append({"type": "text", "text": p.text})
        elif isinstance(p, n.ToolCall):
            out.append({"type": "tool_use", "id": p.id, "name": p.name, "input": args_object(p.arguments)})
    return out


def render_response(resp: n.Response, *, alias: str, request: n.Request | None = None) -> dict[str, Any]:
    choice = resp.choices[0] if resp.choices else n.Choice([], "stop")
    content = _content_out(choice.parts)
    called = any(b["type"] == "tool_use" for b in content)
    stop = _stop_out(choice.finish_reason, choice.stop_sequence, called)
    return {
        "id": _message_id(resp.id),
        "type": "message",
        "role": "assistant",
        "model": resp.model or alias,
        "content": content,
        "stop_reason": stop,
        "stop_sequence": choice.stop_sequence if stop == "stop_sequence" else None,
        "usage": _usage_out(resp.usage),
    }


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return encode(orjson.dumps(data), event)


class StreamEncoder:
    """Neutral events -> Anthropic SSE for one response.

    Sequence: ``message_start`` (sent at the first content or finish, so usage known by
    then is in it), per block ``content_block_start`` / ``content_block_delta``... /
    ``content_block_stop``, then at ``finish()`` ``message_delta`` (stop reason,
    stop sequence, cumulative usage) and ``message_stop``. Only choice 0 is rendered
    (Anthropic has one answer per message)."""

    def __init__(self, *, alias: str, request: n.Request | None) -> None:
        self.id: str | None = None
        self.model = alias
        self.usage: n.Usage | None = None
        self.started = False
        self.index = -1  # index of the open block, -1 when none is open
        self.kind: tuple[Any, ...] | None = None  # ("text",) | ("thinking",) | ("tool", call)
        self.next_index = 0
        self.call_blocks: dict[int, int] = {}  # neutral call -> block index
        self.signed = False  # the open thinking block already got its signature
        self.called_tools = False
        self.reason: n.FinishReason | None = None
        self.stop_sequence: str | None = None

    def start(self) -> bytes:
        return b""

    def _message_start(self) -> bytes:
        if self.started:
            return b""
        self.started = True
        message = {
            "id": _message_id(self.id or ""),
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": _usage_out(self.usage),
        }
        return _sse("message_start", {"type": "message_start", "message": message})

    def _close(self) -> bytes:
        if self.kind is None:
            return b""
        out = _sse("content_block_stop", {"type": "content_block_stop", "index": self.index})
        self.kind = None
        return out

    def _open(self, kind: tuple[Any, ...], block: dict[str, Any]) -> bytes:
        out = self._close()
        self.index = self.next_index
        self.next_index += 1
        self.kind = kind
        self.signed = False
        return out + _sse("content_block_start", {"type": "content_block_start", "index": self.index, "content_block": block})

    def _delta(self, delta: dict[str, Any], index: int | None = None) -> bytes:
        i = self.index if index is None else index
        return _sse("content_block_delta", {"type": "content_block_delta", "index": i, "delta": delta})

    def encode(self, ev: n.Event) -> bytes:
        if isinstance(ev, n.StreamStart):
            self.id = self.id or ev.id
            if ev.model:
                self.model = ev.model
            return b""
        if isinstance(ev, n.StreamUsage):
            self.usage = ev.usage
            return b""
        if getattr(ev, "choice", 0) != 0 or isinstance(ev, n.StreamError):
            return b""
        out = self._message_start()
        if isinstance(ev, n.TextDelta):
            if not ev.text:
                return out
            if self.kind != ("text",):
                out += self._open(("text",), {"type": "text", "text": ""})
            return out + self._delta({"type": "text_delta", "text": ev.text})
        if isinstance(ev, n.ThinkingDelta):
            return out + self._thinking(ev)
        if isinstance(ev, n.ToolCallStart):
            self.called_tools = True
            out += self._open(("tool", ev.call), {"type": "tool_use", "id": ev.id, "name": ev.name, "input": {}})
            self.call_blocks[ev.call] = self.index
            return out
        if isinstance(ev, n.ToolCallDelta):
            if not ev.arguments:
                return out
            if ev.call not in self.call_blocks:  # arguments before the call's start: open it
                self.called_tools = True
                out += self._open(("tool", ev.call), {"type": "tool_use", "id": new_id("toolu_"), "name": "", "input": {}})
                self.call_blocks[ev.call] = self.index
            # A delta for a call whose block is already closed (an upstream interleaving
            # parallel calls) keeps that block's index: the SDK accumulates by index.
            return out + self._delta({"type": "input_json_delta", "partial_json": ev.arguments}, self.call_blocks[ev.call])
        if isinstance(ev, n.StreamFinish):
            self.reason = ev.reason
            self.stop_sequence = ev.stop_sequence
            return out + self._close()
        return out

    def _thinking(self, ev: n.ThinkingDelta) -> bytes:
        ours = ev.origin == PROTOCOL
        out = b""
        if ev.redacted is not None:
            if ours:  # opaque data only Anthropic can read back
                out += self._open(("redacted",), {"type": "redacted_thinking", "data": ev.redacted})
                out += self._close()
            return out
        if ev.text:
            if self.kind != ("thinking",) or self.signed:
                out += self._open(("thinking",), {"type": "thinking", "thinking": "", "signature": ""})
            out += self._delta({"type": "thinking_delta", "thinking": ev.text})
        if ev.signature and ours:
            if self.kind != ("thinking",) or self.signed:
                out += self._open(("thinking",), {"type": "thinking", "thinking": "", "signature": ""})
            out += self._delta({"type": "signature_delta", "signature": ev.signature})
            self.signed = True
        return out

    def finish(self) -> bytes:
        out = self._message_start() + self._close()
        stop = _stop_out(self.reason, self.stop_sequence, self.called_tools)
        usage = _usage_out(self.usage)
        delta = {"stop_reason": stop, "stop_sequence": self.stop_sequence if stop == "stop_sequence" else None}
        out += _sse("message_delta", {"type": "message_delta", "delta": delta, "usage": usage})
        return out + _sse("message_stop", {"type": "message_stop"})

    def error(self, status: int, kind: str, message: str) -> bytes:
        try:
            ek = ErrorKind(kind)
        except ValueError:
            ek = ErrorKind.UPSTREAM
        body = anthropic_error_body(GatewayError(ek, message, status=status))
        return _sse("error", body)


# ======================================================================= egress


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
    if tier.profile.features.get("reasoning") == "effort":
        return True
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
    if rf is not None and rf.type in ("json_object", "json_schema"):
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


def _usage_in(u: Any) -> n.Usage | None:
    if not isinstance(u, dict):
        return None
    cached = int(u.get("cache_read_input_tokens") or 0)
    created = int(u.get("cache_creation_input_tokens") or 0)
    details = u.get("output_tokens_details")
    return n.Usage(
        input_tokens=int(u.get("input_tokens") or 0) + cached + created,
        output_tokens=int(u.get("output_tokens") or 0),
        cached_input_tokens=cached,
        cache_creation_tokens=created,
        reasoning_tokens=int((details.get("thinking_tokens") if isinstance(details, dict) else 0) or 0),
    )


def _finish_in(stop_reason: Any, only_format_tool: bool) -> n.FinishReason | None:
    if stop_reason == "tool_use" and only_format_tool:
        return "stop"  # the structured-output tool: the answer is its JSON text
    return STOP_IN.get(stop_reason) if isinstance(stop_reason, str) else None


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


def _stream_error(err: Any) -> n.StreamError:
    err = err if isinstance(err, dict) else {}
    status, kind = ERROR_TYPES.get(str(err.get("type") or ""), (502, "upstream"))
    return n.StreamError(status, kind, clip(str(err.get("message") or err.get("type") or "error")))


class StreamDecoder:
    """Anthropic SSE -> neutral events, keeping each event's raw bytes.

    Reads every event type (``message_start``, ``content_block_start/delta/stop``,
    ``message_delta``, ``message_stop``, ``ping``, ``error``; unknown ones are kept as
    bytes with no meaning). ``complete`` turns true only at ``message_stop``."""

    def __init__(self) -> None:
        self._sse = SSEDecoder()
        self._blocks: dict[int, tuple[str, int]] = {}  # block index -> (kind, call)
        self._calls = 0
        self._real_calls = 0
        self._usage: dict[str, Any] = {}
        self.complete = False

    def feed(self, chunk: bytes) -> list[DecodedEvent]:
        return [self._event(e.data, e.raw) for e in self._sse.feed(chunk)]

    def close(self) -> list[DecodedEvent]:
        self._sse.flush()
        return []

    def _event(self, data: str, raw: bytes) -> DecodedEvent:
        try:
            obj = orjson.loads(data) if data else None
        except orjson.JSONDecodeError:
            return DecodedEvent([n.StreamError(502, "upstream", "upstream sent a malformed stream event")], b"")  # not forwardable: the client gets our error event
        if not isinstance(obj, dict):
            return DecodedEvent([], raw)
        kind = obj.get("type")
        if kind == "content_block_delta":
            return DecodedEvent(self._delta(obj), raw)
        if kind == "content_block_start":
            return DecodedEvent(self._start(obj), raw)
        if kind == "message_start":
            msg = obj.get("message") if isinstance(obj.get("message"), dict) else {}
            self._usage = dict(msg.get("usage") or {})
            events: list[n.Event] = [n.StreamStart(str(msg.get("id") or ""), str(msg.get("model") or ""))]
            usage = _usage_in(self._usage)
            if usage is not None:
                events.append(n.StreamUsage(usage))
            return DecodedEvent(events, raw)
        if kind == "message_delta":
            return DecodedEvent(self._message_delta(obj), raw)
        if kind == "message_stop":
            self.complete = True
            return DecodedEvent([], raw, terminal=True)
        if kind == "error":
            return DecodedEvent([_stream_error(obj.get("error"))], raw)
        return DecodedEvent([], raw)  # ping, content_block_stop, future event types

    def _start(self, obj: dict[str, Any]) -> list[n.Event]:
        index = int(obj.get("index") or 0)
        block = obj.get("content_block") if isinstance(obj.get("content_block"), dict) else {}
        kind = block.get("type")
        if kind == "text":
            self._blocks[index] = ("text", -1)
            return [n.TextDelta(block["text"])] if block.get("text") else []
        if kind == "thinking":
            self._blocks[index] = ("thinking", -1)
            sig = block.get("signature") if isinstance(block.get("signature"), str) else None
            if block.get("thinking") or sig:
                return [n.ThinkingDelta(str(block.get("thinking") or ""), sig or None, origin=PROTOCOL)]
            return []
        if kind == "redacted_thinking":
            self._blocks[index] = ("redacted", -1)
            return [n.ThinkingDelta(redacted=str(block.get("data") or ""), origin=PROTOCOL)]
        if kind == "tool_use":
            args = block.get("input")
            initial = args_text(args) if args else ""
            if block.get("name") == FORMAT_TOOL:
                self._blocks[index] = ("format", -1)
                return [n.TextDelta(initial)] if initial else []
            call = self._calls
            self._calls += 1
            self._real_calls += 1
            self._blocks[index] = ("tool", call)
            events: list[n.Event] = [n.ToolCallStart(call, str(block.get("id") or new_id("toolu_")), str(block.get("name") or ""))]
            if initial:
                events.append(n.ToolCallDelta(call, initial))
            return events
        self._blocks[index] = ("other", -1)  # server tool blocks: Anthropic-hosted, no neutral form
        return []

    def _delta(self, obj: dict[str, Any]) -> list[n.Event]:
        kind, call = self._blocks.get(int(obj.get("index") or 0), ("other", -1))
        delta = obj.get("delta") if isinstance(obj.get("delta"), dict) else {}
        dtype = delta.get("type")
        if dtype == "text_delta" and delta.get("text"):
            return [n.TextDelta(str(delta["text"]))]
        if dtype == "thinking_delta" and delta.get("thinking"):
            return [n.ThinkingDelta(str(delta["thinking"]), origin=PROTOCOL)]
        if dtype == "signature_delta" and delta.get("signature"):
            return [n.ThinkingDelta(signature=str(delta["signature"]), origin=PROTOCOL)]
        if dtype == "input_json_delta" and delta.get("partial_json"):
            if kind == "tool":
                return [n.ToolCallDelta(call, str(delta["partial_json"]))]
            if kind == "format":
                return [n.TextDelta(str(delta["partial_json"]))]
        return []  # citations_delta, empty fragments, deltas of server tool blocks

    def _message_delta(self, obj: dict[str, Any]) -> list[n.Event]:
        delta = obj.get("delta") if isinstance(obj.get("delta"), dict) else {}
        events: list[n.Event] = []
        if "stop_reason" in delta:
            seq = delta.get("stop_sequence")
            events.append(n.StreamFinish(_finish_in(delta.get("stop_reason"), self._real_calls == 0), 0, seq if isinstance(seq, str) else None))
        usage = obj.get("usage")
        if isinstance(usage, dict):
            # message_delta counts are cumulative and may omit what message_start said
            self._usage.update({k: v for k, v in usage.items() if v is not None})
            merged = _usage_in(self._usage)
            if merged is not None:
                events.append(n.StreamUsage(merged))
        return events


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


def check_request(body: dict[str, Any]) -> None:
    messages = body.get("messages")
    expect(isinstance(messages, list) and bool(messages), "messages: must be a non-empty array", "messages")
    for i, m in enumerate(messages):
        expect(isinstance(m, dict) and m.get("role") in ("user", "assistant"), f"messages.{i}.role: must be user or assistant", "messages")
    mt = body.get("max_tokens")
    expect(isinstance(mt, int) and not isinstance(mt, bool) and mt > 0, "max_tokens: Field required (a positive integer)", "max_tokens")


# ================================================================ token counting
#
# Pure halves of the one token-count flow (sidecar/pipeline/count.py): what to count,
# the call to the tier's own count endpoint, and reading its answer.

_COUNTED = ("model", "messages", "system", "tools", "tool_choice", "thinking")


def count_request(body: dict[str, Any], path_model: str | None = None) -> n.Request:
    """The request whose input a ``/v1/messages/count_tokens`` body asks to count
    (``max_tokens`` is optional there)."""
    return dataclasses.replace(parse_request({**body, "max_tokens": body.get("max_tokens", 1)}), stream=False)


def render_count(tokens: int) -> dict[str, Any]:
    return {"input_tokens": tokens}


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


ADAPTER = Adapter(
    protocol=PROTOCOL,
    sse_content_type="text/event-stream",
    forward_headers=ADAPTER_FORWARD_HEADERS,
    parse_request=parse_request,
    request_model=request_model,
    request_streams=request_streams,
    check_request=check_request,
    features_used=features_used,
    prepare_passthrough=prepare_passthrough,
    render_response=render_response,
    stream_encoder=StreamEncoder,
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
