"""Anthropic Messages as a client speaks it: the ingress face.

A ``/v1/messages`` body parsed into a neutral ``Request`` (unknown fields kept in
``extras``, foreign thinking the client echoes back dropped); the capability features a
raw body uses; the edits of a same-protocol body for an Anthropic tier
(``prepare_passthrough``: model, stripped features, a thinking budget that fits); a
whole neutral answer rendered as a ``message`` object; the ``count_tokens`` request and
answer.

Streamed answers are written by ``stream.StreamEncoder``; the pieces shared with the
egress face live in ``_wire``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from switchyard.sidecar.contract.config import CompiledTier

from .. import neutral as n
from ..base import RequestError
from ..common import args_object, args_text, effort_to_budget, expect, opt_number
from ._wire import MIN_THINKING_BUDGET, PROTOCOL, _message_id, _stop_out, _usage_out

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

EFFORT_IN = {"low": "low", "medium": "medium", "high": "high", "xhigh": "high", "max": "high"}


# ------------------------------------------------------------------------------ parsing


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
            # package docstring): it has no origin Anthropic would accept.
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
        if role == "system":  # the API takes system turns inside messages (Claude Code sends one)
            texts = _system(m.get("content"))
            if out:
                out.append(n.Message("system", list(texts)))  # in place: after a turn
            else:
                system.extend(texts)  # before any turn: the system prompt
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


def check_request(body: dict[str, Any]) -> None:
    messages = body.get("messages")
    expect(isinstance(messages, list) and bool(messages), "messages: must be a non-empty array", "messages")
    for i, m in enumerate(messages):
        expect(isinstance(m, dict) and m.get("role") in ("user", "assistant", "system"), f"messages.{i}.role: must be user, assistant or system", "messages")
    mt = body.get("max_tokens")
    expect(isinstance(mt, int) and not isinstance(mt, bool) and mt > 0, "max_tokens: Field required (a positive integer)", "max_tokens")


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

    Thoughts another protocol produced (``signature: ""``, see the package docstring) are
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
    _budget_for_adaptive(out, tier, notes)
    _fit_thinking_budget(out, notes)
    return out


def _budget_for_adaptive(body: dict[str, Any], tier: CompiledTier, notes: list[tuple[str, str]]) -> None:
    """Adaptive thinking (what Claude Code sends) for a model whose profile says budget
    thinking (it refuses ``adaptive`` with a 400): a token budget from the requested effort
    (``output_config.effort``; "medium" when none), reported as ``reasoning=map(budget N)``."""
    thinking = body.get("thinking")
    if not (isinstance(thinking, dict) and thinking.get("type") == "adaptive"):
        return
    if tier.profile.features.get("reasoning") != "budget":
        return
    oc = body.get("output_config")
    effort = oc.get("effort") if isinstance(oc, dict) else None
    budget = max(MIN_THINKING_BUDGET, effort_to_budget(EFFORT_IN.get(effort, "medium") if isinstance(effort, str) else "medium") or 0)
    body["thinking"] = {"type": "enabled", "budget_tokens": budget}
    _pop_sub(body, "output_config", "effort")
    notes.append(("reasoning", f"map(budget {budget})"))


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


# ------------------------------------------------------------------------ responses out


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


# ----------------------------------------------------------------------- token counting


def count_request(body: dict[str, Any], path_model: str | None = None) -> n.Request:
    """The request whose input a ``/v1/messages/count_tokens`` body asks to count
    (``max_tokens`` is optional there)."""
    return dataclasses.replace(parse_request({**body, "max_tokens": body.get("max_tokens", 1)}), stream=False)


def render_count(tokens: int) -> dict[str, Any]:
    return {"input_tokens": tokens}
