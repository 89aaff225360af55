"""OpenAI Responses API, ingress only (what Codex CLI and the Vercel AI SDK speak).

``POST /v1/responses`` bodies are parsed into the neutral form; neutral answers and
event streams are rendered back as ``response`` objects and ``response.*`` stream
events that validate against the official OpenAPI spec and parse with the ``openai``
SDK. No CapabilityProfile protocol speaks the Responses API upstream (tiers speak
openai-chat, anthropic-messages or gemini), so every request crosses protocols through
the neutral form and this adapter's egress and passthrough faces refuse to run.

Field notes (checked against the spec in ``shared/specs`` and the Codex client):

- The API is stateful on OpenAI's side (``previous_response_id``, ``conversation``,
  ``background``, stored ``prompt`` templates, ``item_reference`` input items). The
  gateway keeps no such state: those are answered with a 400 naming the field. Codex
  sends ``store: false`` and its full history every turn, so it never needs them.
- Fields with no neutral meaning go to ``Request.extras`` and are reported by the
  pipeline as ``unknownFields`` (promise 3). A field whose value is exactly what the
  gateway does anyway is honoured, not reported: ``store: false`` (nothing is stored),
  ``truncation: "disabled"``, ``service_tier: "auto"``, and the ``include`` value
  ``reasoning.encrypted_content`` (see below). Hosted tools (``web_search``,
  ``file_search``, ``local_shell``, ``custom``, ...) are extras named
  ``tools.<type>``; input items of kinds that only hosted tools produce are extras
  named ``input.<type>`` and are left out of the conversation.
- Reasoning items: thinking is rendered as a ``reasoning`` output item whose summary is
  the thinking text. When the thinking carries an opaque signature (Anthropic
  ``signature``, ``redacted_thinking``), it travels in ``encrypted_content`` as a
  ``switchyard.v1.`` blob naming its origin, so a stateless client (Codex, which asks
  for ``reasoning.encrypted_content``) hands it back on the next turn and the thinking
  tier gets its signed block back. Any other ``encrypted_content`` (a real OpenAI one,
  or a tampered blob) is read as thinking of origin ``openai-responses``, which no
  egress adapter forwards. Streamed thinking takes its origin from
  ``ThinkingDelta.origin`` (set by each egress decoder).
- Streams: ``event: <type>`` + ``data:`` lines, every event with a ``sequence_number``
  counting from 0. A stream ends with ``response.completed`` (or
  ``response.incomplete`` when the answer was cut by ``max_output_tokens`` or a
  content filter); a failure after content ends it with an ``error`` event and
  ``response.failed`` (``response.error`` set), and nothing that looks like completion
  before them.
- Final answers always carry ``usage`` (zero when the upstream reported none): the
  Vercel AI SDK refuses a response without it.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from switchyard.sidecar.contract.config import CompiledTier

from . import neutral as n
from .base import Adapter, RequestError, UpstreamCall, UpstreamErrorInfo
from .common import args_text, expect, new_id, now, opt_number, split_data_url
from .sse import encode

PROTOCOL = "openai-responses"

# Top-level fields this adapter translates or deliberately honours; every other field
# of a body is an extra (reported as unknownFields).
_KNOWN = frozenset(
    {
        "model", "input", "instructions", "tools", "tool_choice", "parallel_tool_calls",
        "max_output_tokens", "temperature", "top_p", "reasoning", "text", "stream",
        "stream_options", "user", "safety_identifier", "metadata", "store", "include",
        "service_tier", "truncation", "background",
    }
)  # fmt: skip

# Fields that need state kept by OpenAI (stored responses, conversations, prompts).
_STATEFUL = {
    "previous_response_id": "it continues a response stored by OpenAI",
    "conversation": "it continues a conversation stored by OpenAI",
    "prompt": "it names a prompt template stored by OpenAI",
}

# Values of honoured fields that the gateway satisfies by doing nothing.
_HONOURED = {"store": (False, None), "truncation": ("disabled", None), "service_tier": ("auto", None), "background": (False, None)}

INCLUDE_ENCRYPTED = "reasoning.encrypted_content"
BLOB_PREFIX = "switchyard.v1."

# Neutral finish reasons that make a response "incomplete", with the API's reason.
_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


class IngressOnly(NotImplementedError):
    """Raised by the egress faces: no upstream speaks the Responses API in Switchyard."""

    def __init__(self, what: str) -> None:
        super().__init__(
            f"{what}: openai-responses is an ingress-only protocol (no CapabilityProfile protocol "
            "speaks it upstream); requests must cross to a tier through the neutral form"
        )


# ====================================================================== ingress


def _where(i: int) -> str:
    return f"input[{i}]"


def _image(part: dict[str, Any], where: str) -> n.Image:
    detail = part.get("detail") if isinstance(part.get("detail"), str) else None
    url = part.get("image_url")
    if isinstance(url, dict):  # tolerate the chat shape {"url": ...}
        url = url.get("url")
    if isinstance(url, str) and url:
        media, data = split_data_url(url)
        return n.Image(data=data, media_type=media, detail=detail) if data else n.Image(url=url, detail=detail)
    if part.get("file_id"):
        raise RequestError(
            f"'{where}' references an uploaded file (file_id); the gateway keeps no file store, "
            "send the image as image_url (a URL or a base64 data URL)",
            where,
        )
    raise RequestError(f"'{where}' needs image_url", where)


def _file(part: dict[str, Any], where: str) -> n.Document:
    title = part.get("filename") if isinstance(part.get("filename"), str) else None
    file_data = part.get("file_data")
    if isinstance(file_data, str) and file_data:
        media, data = split_data_url(file_data)
        return n.Document(data=data or file_data, media_type=media or "application/pdf", title=title)
    if isinstance(part.get("file_url"), str):
        return n.Document(url=part["file_url"], title=title)
    if part.get("file_id"):
        raise RequestError(
            f"'{where}' references an uploaded file (file_id); the gateway keeps no file store, "
            "send it inline as file_data (a base64 data URL) or as file_url",
            where,
        )
    raise RequestError(f"'{where}' needs file_data or file_url", where)


def _parts(content: Any, where: str) -> list[n.Part]:
    """Message content (a string or a list of content parts) as neutral parts."""
    if content is None:
        return []
    if isinstance(content, str):
        return [n.Text(content)] if content else []
    expect(isinstance(content, list), f"'{where}.content' must be a string or an array of content parts", where)
    out: list[n.Part] = []
    for j, part in enumerate(content):
        at = f"{where}.content[{j}]"
        expect(isinstance(part, dict) and isinstance(part.get("type"), str), f"'{at}' must be an object with a type", where)
        kind = part["type"]
        if kind in ("input_text", "output_text", "text", "summary_text", "reasoning_text"):
            expect(isinstance(part.get("text"), str), f"'{at}.text' must be a string", where)
            out.append(n.Text(part["text"]))
        elif kind == "refusal":
            out.append(n.Text(str(part.get("refusal") or "")))
        elif kind == "input_image":
            out.append(_image(part, at))
        elif kind == "input_file":
            out.append(_file(part, at))
        elif kind == "input_audio":
            audio = part.get("input_audio") or {}
            expect(isinstance(audio, dict) and isinstance(audio.get("data"), str), f"'{at}.input_audio.data' must be a string", where)
            out.append(n.Audio(data=audio["data"], format=str(audio.get("format") or "wav")))
        else:
            raise RequestError(f"unsupported content part type '{kind}' in '{where}'", where)
    return out


def _blob(thinking_origin: str | None, signature: str | None, redacted: str | None) -> str:
    raw = orjson.dumps({"o": thinking_origin, "s": signature, "r": redacted})
    return BLOB_PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unblob(value: str) -> dict[str, Any] | None:
    """A ``switchyard.v1.`` blob's fields, or None when the value is not one of ours."""
    if not value.startswith(BLOB_PREFIX):
        return None
    body = value[len(BLOB_PREFIX) :]
    try:
        obj = orjson.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        return None
    return obj if isinstance(obj, dict) else None


def _thinking(item: dict[str, Any], where: str) -> n.Thinking:
    texts: list[str] = []
    for key in ("content", "summary"):  # full reasoning text when given, else its summary
        parts = item.get(key)
        if isinstance(parts, list) and parts:
            texts = [str(p.get("text") or "") for p in parts if isinstance(p, dict)]
            break
    text = "\n\n".join(t for t in texts if t)
    enc = item.get("encrypted_content")
    if isinstance(enc, str) and enc:
        ours = _unblob(enc)
        if ours is not None:
            origin = ours.get("o") if isinstance(ours.get("o"), str) else PROTOCOL
            sig = ours.get("s") if isinstance(ours.get("s"), str) else None
            red = ours.get("r") if isinstance(ours.get("r"), str) else None
            return n.Thinking(text=text, signature=sig, redacted=red, origin=origin)
        return n.Thinking(text=text, redacted=enc, origin=PROTOCOL)
    return n.Thinking(text=text, origin=PROTOCOL)


def _tool_output(output: Any, where: str) -> list[n.Part]:
    if isinstance(output, str):
        return [n.Text(output)] if output else []
    if isinstance(output, list):
        return _parts(output, where)
    raise RequestError(f"'{where}.output' must be a string or an array of content parts", where)


def _input(body: dict[str, Any], extras: dict[str, Any]) -> tuple[list[n.Text], list[n.Message]]:
    """``input`` as (system texts, conversation). Consecutive assistant-side items
    (messages, reasoning, function calls) form one assistant turn; consecutive tool
    outputs one user turn, as every destination protocol wants them."""
    raw = body.get("input")
    if isinstance(raw, str):
        expect(bool(raw), "'input' must not be empty", "input")
        return [], [n.Message("user", [n.Text(raw)])]
    expect(isinstance(raw, list) and bool(raw), "'input' is required: a string or a non-empty array of items", "input")
    system: list[n.Text] = []
    out: list[n.Message] = []
    names: dict[str, str] = {}
    skipped: dict[str, list[Any]] = {}

    def add(role: str, parts: list[n.Part], merge: bool) -> None:
        if merge and out and out[-1].role == role:
            out[-1] = n.Message(role, [*out[-1].parts, *parts])  # type: ignore[arg-type]
        else:
            out.append(n.Message(role, parts))  # type: ignore[arg-type]

    for i, item in enumerate(raw):
        where = _where(i)
        expect(isinstance(item, dict), f"'{where}' must be an object", where)
        kind = item.get("type", "message" if "role" in item else None)
        if kind == "message":
            role = item.get("role")
            if role in ("system", "developer"):
                parts = _parts(item.get("content"), where)
                if any(not isinstance(p, n.Text) for p in parts):
                    raise RequestError(f"'{where}': a {role} message can only hold text", where)
                system.extend(p for p in parts if isinstance(p, n.Text))
            elif role == "user":
                add("user", _parts(item.get("content"), where), merge=False)
            elif role == "assistant":
                add("assistant", _parts(item.get("content"), where), merge=True)
            else:
                raise RequestError(f"'{where}.role' must be user, assistant, system or developer", where)
        elif kind == "function_call":
            cid, name = item.get("call_id"), item.get("name")
            expect(isinstance(cid, str) and bool(cid), f"'{where}.call_id' is required", where)
            expect(isinstance(name, str) and bool(name), f"'{where}.name' is required", where)
            names[cid] = name
            add("assistant", [n.ToolCall(cid, name, args_text(item.get("arguments")))], merge=True)
        elif kind == "function_call_output":
            cid = item.get("call_id")
            expect(isinstance(cid, str) and bool(cid), f"'{where}.call_id' is required", where)
            name = item.get("name") if isinstance(item.get("name"), str) else names.get(cid)
            result = n.ToolResult(cid, _tool_output(item.get("output"), where), name=name)
            if out and out[-1].role == "user" and out[-1].parts and all(isinstance(p, n.ToolResult) for p in out[-1].parts):
                out[-1] = n.Message("user", [*out[-1].parts, result])
            else:
                out.append(n.Message("user", [result]))
        elif kind == "reasoning":
            add("assistant", [_thinking(item, where)], merge=True)
        elif kind == "item_reference":
            raise RequestError(
                f"'{where}' is an item_reference: it points at an item stored by OpenAI, and the gateway "
                "keeps no stored items; send the item itself (with store: false, as Codex does)",
                where,
            )
        elif isinstance(kind, str):
            skipped.setdefault(f"input.{kind}", []).append(item)
        else:
            raise RequestError(f"'{where}' needs a type (message, function_call, function_call_output, reasoning)", where)
    extras.update(skipped)
    return system, out


def _tools(body: dict[str, Any], extras: dict[str, Any]) -> list[n.Tool]:
    raw = body.get("tools")
    if raw is None:
        return []
    expect(isinstance(raw, list), "'tools' must be an array", "tools")
    tools: list[n.Tool] = []
    for i, t in enumerate(raw):
        expect(isinstance(t, dict) and isinstance(t.get("type"), str), f"'tools[{i}]' must be an object with a type", "tools")
        if t["type"] == "function":
            name = t.get("name")
            expect(isinstance(name, str) and bool(name), f"'tools[{i}].name' is required", "tools")
            params = t.get("parameters")
            expect(params is None or isinstance(params, dict), f"'tools[{i}].parameters' must be an object", "tools")
            strict = t.get("strict")
            tools.append(n.Tool(name, t.get("description"), params, strict if isinstance(strict, bool) else None))
        else:  # hosted or custom tools: nothing neutral can carry them
            extras.setdefault(f"tools.{t['type']}", []).append(t)
    return tools


def _tool_choice(body: dict[str, Any], extras: dict[str, Any]) -> n.ToolChoice | None:
    tc = body.get("tool_choice")
    if tc is None:
        return None
    if isinstance(tc, str):
        expect(tc in ("auto", "none", "required"), "'tool_choice' must be auto, none, required or an object", "tool_choice")
        return n.ToolChoice(tc)  # type: ignore[arg-type]
    expect(isinstance(tc, dict) and isinstance(tc.get("type"), str), "'tool_choice' must be a string or an object with a type", "tool_choice")
    if tc["type"] == "function":
        expect(isinstance(tc.get("name"), str), "'tool_choice.name' is required", "tool_choice")
        return n.ToolChoice("tool", tc["name"])
    if tc["type"] == "allowed_tools":  # the mode maps; the restriction to a subset does not
        extras["tool_choice.allowed_tools"] = tc.get("tools")
        mode = tc.get("mode")
        return n.ToolChoice(mode) if mode in ("auto", "required") else None  # type: ignore[arg-type]
    extras["tool_choice"] = tc  # a hosted tool, custom or MCP tool
    return None


def _reasoning(body: dict[str, Any], extras: dict[str, Any]) -> n.Reasoning | None:
    r = body.get("reasoning")
    if r is None:
        return None
    expect(isinstance(r, dict), "'reasoning' must be an object", "reasoning")
    for k in r:
        if k not in ("effort", "summary", "generate_summary"):
            extras[f"reasoning.{k}"] = r[k]
    effort = r.get("effort")
    summary = r.get("summary", r.get("generate_summary"))
    expect(summary is None or summary in ("auto", "concise", "detailed"), "'reasoning.summary' must be auto, concise or detailed", "reasoning")
    if effort is None:
        return n.Reasoning(summary=True) if summary else None
    expect(isinstance(effort, str), "'reasoning.effort' must be a string", "reasoning")
    if effort == "none":
        return n.Reasoning(enabled=False)
    level = {"xhigh": "high"}.get(effort, effort)
    expect(level in ("minimal", "low", "medium", "high"), "'reasoning.effort' must be none, minimal, low, medium, high or xhigh", "reasoning")
    return n.Reasoning(effort=level, summary=bool(summary))  # type: ignore[arg-type]


def _text_format(body: dict[str, Any], extras: dict[str, Any]) -> n.ResponseFormat | None:
    text = body.get("text")
    if text is None:
        return None
    expect(isinstance(text, dict), "'text' must be an object", "text")
    for k in text:
        if k != "format" and text[k] is not None:
            extras[f"text.{k}"] = text[k]  # verbosity has no neutral meaning
    fmt = text.get("format")
    if fmt is None:
        return None
    expect(isinstance(fmt, dict) and fmt.get("type") in ("text", "json_object", "json_schema"), "'text.format.type' must be text, json_object or json_schema", "text")
    if fmt["type"] == "json_schema":
        expect(isinstance(fmt.get("name"), str), "'text.format.name' is required for json_schema", "text")
        expect(isinstance(fmt.get("schema"), dict), "'text.format.schema' must be an object", "text")
        strict = fmt.get("strict")
        return n.ResponseFormat("json_schema", fmt["schema"], fmt["name"], strict if isinstance(strict, bool) else None)
    if fmt["type"] == "json_object":
        return n.ResponseFormat("json_object")
    return None


def parse_request(body: dict[str, Any], *, path_model: str | None = None, stream: bool | None = None) -> n.Request:
    model = body.get("model")
    expect(isinstance(model, str) and bool(model), "'model' is required and must be a string", "model")
    for key, why in _STATEFUL.items():
        if body.get(key) is not None:
            raise RequestError(
                f"'{key}' is not supported by this gateway: {why}, and the gateway keeps no server-side state. "
                "Send the full conversation in 'input' with store: false instead",
                key,
            )
    if body.get("background") is True:
        raise RequestError(
            "'background' is not supported by this gateway: a background response is polled later by id, "
            "and the gateway keeps no stored responses",
            "background",
        )
    extras: dict[str, Any] = {k: v for k, v in body.items() if k not in _KNOWN}
    for key, fine in _HONOURED.items():
        if key in body and body[key] not in fine:
            extras[key] = body[key]
    include = body.get("include")
    if include is not None:
        expect(isinstance(include, list), "'include' must be an array", "include")
        rest = [v for v in include if v != INCLUDE_ENCRYPTED]
        if rest:
            extras["include"] = rest

    instructions = body.get("instructions")
    expect(instructions is None or isinstance(instructions, str), "'instructions' must be a string", "instructions")
    system, messages = _input(body, extras)
    if instructions:
        system = [n.Text(instructions), *system]
    user = body.get("safety_identifier") or body.get("user")
    metadata = body.get("metadata")
    do_stream = bool(body.get("stream")) if stream is None else stream
    return n.Request(
        model=model,
        messages=messages,
        system=system,
        tools=_tools(body, extras),
        tool_choice=_tool_choice(body, extras),
        parallel_tool_calls=body.get("parallel_tool_calls") if isinstance(body.get("parallel_tool_calls"), bool) else None,
        max_tokens=opt_number(body, "max_output_tokens", integer=True),
        temperature=opt_number(body, "temperature"),
        top_p=opt_number(body, "top_p"),
        reasoning=_reasoning(body, extras),
        response_format=_text_format(body, extras),
        stream=do_stream,
        stream_usage=do_stream,  # a Responses stream always ends with its usage
        user=user if isinstance(user, str) else None,
        metadata=metadata if isinstance(metadata, dict) else None,
        extras=extras,
        origin=PROTOCOL,
    )


def request_model(body: dict[str, Any]) -> str | None:
    m = body.get("model")
    return m if isinstance(m, str) else None


def request_streams(body: dict[str, Any]) -> bool:
    return body.get("stream") is True


def features_used(body: dict[str, Any]) -> dict[str, Any]:
    used: dict[str, Any] = {}
    if body.get("stream") is True:
        used["streaming"] = True
    tools = body.get("tools")
    if isinstance(tools, list) and any(isinstance(t, dict) and t.get("type") == "function" for t in tools):
        used["tools"] = True
        if body.get("parallel_tool_calls") is True:
            used["parallelToolCalls"] = True
    if body.get("instructions"):
        used["systemPrompt"] = True
    items = body.get("input")
    if isinstance(items, list):
        for item in items:
            if not isinstance(item, dict):
                continue
            if item.get("role") in ("system", "developer"):
                used["systemPrompt"] = True
            contents = [item.get("content"), item.get("output")]
            for content in contents:
                if not isinstance(content, list):
                    continue
                for p in content:
                    kind = p.get("type") if isinstance(p, dict) else None
                    if kind == "input_image":
                        used["vision"] = True
                    elif kind == "input_file":
                        used["documents"] = True
                    elif kind == "input_audio":
                        used["audio"] = True
    r = body.get("reasoning")
    if isinstance(r, dict) and r.get("effort") != "none" and (r.get("effort") or r.get("summary")):
        used["reasoning"] = True
    text = body.get("text")
    fmt = text.get("format") if isinstance(text, dict) else None
    if isinstance(fmt, dict):
        if fmt.get("type") == "json_object":
            used["jsonMode"] = True
        elif fmt.get("type") == "json_schema":
            used["structuredOutput"] = True
    mt = body.get("max_output_tokens")
    if isinstance(mt, int) and not isinstance(mt, bool):
        used["maxOutputTokens"] = mt
    return used


def prepare_passthrough(body: dict[str, Any], tier: CompiledTier, strip: Mapping[str, Any], notes: list[tuple[str, str]] | None = None) -> dict[str, Any]:
    raise IngressOnly("prepare_passthrough")


# ------------------------------------------------------------------- rendering


def _echo(req: n.Request | None) -> dict[str, Any]:
    """The request parameters a ``response`` object repeats back."""
    if req is None:
        return {
            "instructions": None,
            "tools": [],
            "tool_choice": "auto",
            "parallel_tool_calls": True,
            "temperature": None,
            "top_p": None,
            "max_output_tokens": None,
            "reasoning": {"effort": None, "summary": None},
            "text": {"format": {"type": "text"}},
            "metadata": {},
        }
    tc = req.tool_choice
    rf = req.response_format
    fmt: dict[str, Any] = {"type": "text"}
    if rf is not None and rf.type == "json_object":
        fmt = {"type": "json_object"}
    elif rf is not None and rf.type == "json_schema":
        fmt = {"type": "json_schema", "name": rf.name or "response", "schema": rf.schema or {}, "strict": rf.strict}
    r = req.reasoning
    effort = None if r is None else ("none" if not r.enabled else r.effort)
    out: dict[str, Any] = {
        "instructions": None,  # the neutral form folds instructions into the system prompt
        "tools": [
            {"type": "function", "name": t.name, "description": t.description, "parameters": t.parameters, "strict": t.strict}
            for t in req.tools
        ],
        "tool_choice": "auto" if tc is None else ({"type": "function", "name": tc.name} if tc.mode == "tool" else tc.mode),
        "parallel_tool_calls": True if req.parallel_tool_calls is None else req.parallel_tool_calls,
        "temperature": req.temperature,
        "top_p": req.top_p,
        "max_output_tokens": req.max_tokens,
        "reasoning": {"effort": effort, "summary": "auto" if r is not None and r.summary else None},
        "text": {"format": fmt},
        "metadata": dict(req.metadata or {}),
    }
    if req.user is not None:
        out["user"] = req.user
    return out


def _usage(u: n.Usage) -> dict[str, Any]:
    return {
        "input_tokens": u.input_tokens,
        "input_tokens_details": {"cached_tokens": u.cached_input_tokens, "cache_write_tokens": u.cache_creation_tokens},
        "output_tokens": u.output_tokens,
        "output_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
        "total_tokens": u.input_tokens + u.output_tokens,
    }


def _response(
    *,
    rid: str,
    created_at: int,
    model: str,
    status: str,
    output: list[dict[str, Any]],
    echo: dict[str, Any],
    usage: n.Usage | None = None,
    incomplete: str | None = None,
    error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": rid,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "error": error,
        "incomplete_details": {"reason": incomplete} if incomplete else None,
        "model": model,
        "output": output,
        **echo,
    }
    if status == "completed":
        body["completed_at"] = now()
    if usage is not None:
        body["usage"] = _usage(usage)
    return body


def _message_item(mid: str, text: str, status: str, refusal: bool = False) -> dict[str, Any]:
    part: dict[str, Any] = (
        {"type": "refusal", "refusal": text} if refusal else {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
    )
    return {"id": mid, "type": "message", "status": status, "role": "assistant", "content": [part]}


def _reasoning_item(rid: str, text: str, blob: str | None) -> dict[str, Any]:
    item: dict[str, Any] = {"id": rid, "type": "reasoning", "summary": [{"type": "summary_text", "text": text}] if text else []}
    if blob is not None:
        item["encrypted_content"] = blob
    return item


def _call_item(fid: str, call_id: str, name: str, arguments: str, status: str) -> dict[str, Any]:
    return {"id": fid, "type": "function_call", "status": status, "call_id": call_id, "name": name, "arguments": arguments}


def _thinking_blob(t: n.Thinking) -> str | None:
    if not (t.signature or t.redacted):
        return None
    return _blob(t.origin, t.signature, t.redacted)


def _output_items(choice: n.Choice) -> list[dict[str, Any]]:
    """A choice's parts as output items, in order: consecutive thinking parts with
    text form one reasoning item, consecutive text one message, each call one item."""
    items: list[dict[str, Any]] = []
    refusal = choice.finish_reason == "refusal"
    text: list[str] = []

    def flush_text() -> None:
        if text:
            items.append(_message_item(new_id("msg_"), "".join(text), "completed", refusal))
            text.clear()

    for p in choice.parts:
        if isinstance(p, n.Text):
            if p.text:
                text.append(p.text)
        elif isinstance(p, n.Thinking):
            flush_text()
            blob = _thinking_blob(p)
            if p.text or blob:
                items.append(_reasoning_item(new_id("rs_"), p.text, blob))
        elif isinstance(p, n.ToolCall):
            flush_text()
            items.append(_call_item(new_id("fc_"), p.id, p.name, p.arguments or "{}", "completed"))
    flush_text()
    if choice.finish_reason in _INCOMPLETE and items:
        items[-1]["status"] = "incomplete"
    return items


def render_response(resp: n.Response, *, alias: str, request: n.Request | None = None) -> dict[str, Any]:
    """A neutral answer as a ``response`` object. ``request`` (when the caller has it)
    fills the echoed parameters; without it they take the API's defaults."""
    choice = resp.choices[0] if resp.choices else n.Choice([], "stop")
    incomplete = _INCOMPLETE.get(choice.finish_reason or "")
    rid = resp.id if resp.id.startswith("resp_") else new_id("resp_")
    return _response(
        rid=rid,
        created_at=resp.created or now(),
        model=resp.model or alias,
        status="incomplete" if incomplete else "completed",
        output=_output_items(choice),
        echo=_echo(request),
        usage=resp.usage or n.Usage(),  # clients (the AI SDK) require usage; zero when unreported
        incomplete=incomplete,
    )


# ------------------------------------------------------------------- streaming


@dataclass(slots=True)
class _Item:
    """One output item being streamed."""

    kind: str  # "message" | "reasoning" | "function_call"
    id: str
    index: int
    text: str = ""
    call_id: str = ""
    name: str = ""
    origin: str | None = None
    signature: str | None = None
    redacted: str | None = None
    summary_open: bool = False
    status: str = "in_progress"  # "completed" or "incomplete" once its done events are out

    def body(self, status: str) -> dict[str, Any]:
        if self.kind == "message":
            return _message_item(self.id, self.text, status)
        if self.kind == "function_call":
            return _call_item(self.id, self.call_id, self.name, self.text or "{}", status)
        blob = _blob(self.origin, self.signature, self.redacted) if self.signature or self.redacted else None
        return _reasoning_item(self.id, self.text, blob)


class StreamEncoder:
    """Neutral events -> ``response.*`` SSE events, for one response.

    Output items are streamed one at a time, in the order their content arrives: a
    reasoning item while thinking arrives, a message while text arrives, one
    function_call item per tool call. An item is closed (its ``*.done`` events) when
    the next one opens or the stream finishes.
    """

    def __init__(self, *, alias: str, request: n.Request | None) -> None:
        self.id = new_id("resp_")
        self.created_at = now()
        self.model = alias
        self.echo = _echo(request)
        self.seq = 0
        self.opened = False
        self.items: list[_Item] = []
        self.current: _Item | None = None
        self.calls: dict[int, _Item] = {}
        self.reason: n.FinishReason | None = None
        self.usage: n.Usage | None = None

    # ---- framing

    def _ev(self, kind: str, **fields: Any) -> bytes:
        body = {"type": kind, "sequence_number": self.seq, **fields}
        self.seq += 1
        return encode(orjson.dumps(body), event=kind)

    def _snapshot(self, status: str, **kw: Any) -> dict[str, Any]:
        # items still open in a final snapshot were cut short (a failed stream)
        output = [it.body("incomplete" if it.status == "in_progress" else it.status) for it in self.items]
        if status == "in_progress":
            output = []
        return _response(rid=self.id, created_at=self.created_at, model=self.model, status=status, output=output, echo=self.echo, **kw)

    def _open(self) -> bytes:
        if self.opened:
            return b""
        self.opened = True
        snap = self._snapshot("in_progress")
        return self._ev("response.created", response=snap) + self._ev("response.in_progress", response=snap)

    def _new(self, kind: str, prefix: str) -> _Item:
        item = _Item(kind, new_id(prefix), len(self.items))
        self.items.append(item)
        return item

    def _added(self, item: _Item) -> bytes:
        added: dict[str, Any]
        if item.kind == "message":
            added = {"id": item.id, "type": "message", "status": "in_progress", "role": "assistant", "content": []}
        elif item.kind == "function_call":
            added = _call_item(item.id, item.call_id, item.name, "", "in_progress")
        else:
            added = {"id": item.id, "type": "reasoning", "summary": []}
        return self._ev("response.output_item.added", output_index=item.index, item=added)

    def _close(self, status: str = "completed") -> bytes:
        item, self.current = self.current, None
        if item is None or item.status != "in_progress":
            return b""
        item.status = status
        out = b""
        if item.kind == "message":
            part = {"type": "output_text", "text": item.text, "annotations": [], "logprobs": []}
            out += self._ev("response.output_text.done", item_id=item.id, output_index=item.index, content_index=0, text=item.text, logprobs=[])
            out += self._ev("response.content_part.done", item_id=item.id, output_index=item.index, content_index=0, part=part)
        elif item.kind == "function_call":
            out += self._ev(
                "response.function_call_arguments.done", item_id=item.id, output_index=item.index, name=item.name, arguments=item.text or "{}"
            )
        elif item.summary_open:
            part = {"type": "summary_text", "text": item.text}
            out += self._ev("response.reasoning_summary_text.done", item_id=item.id, output_index=item.index, summary_index=0, text=item.text)
            out += self._ev("response.reasoning_summary_part.done", item_id=item.id, output_index=item.index, summary_index=0, part=part)
        return out + self._ev("response.output_item.done", output_index=item.index, item=item.body(status))

    # ---- the StreamEncoder contract

    def start(self) -> bytes:
        return b""

    def encode(self, ev: n.Event) -> bytes:
        if isinstance(ev, n.StreamStart):
            if ev.model and not self.opened:
                self.model = ev.model
            return self._open()
        if isinstance(ev, (n.StreamUsage,)):
            self.usage = ev.usage
            return b""
        if isinstance(ev, n.StreamError) or getattr(ev, "choice", 0) != 0:
            return b""  # errors are the pipeline's; a Responses answer has one choice
        if isinstance(ev, n.StreamFinish):
            self.reason = ev.reason
            return b""
        out = self._open()
        if isinstance(ev, n.TextDelta):
            if not ev.text:
                return out
            if self.current is None or self.current.kind != "message":
                out += self._close()
                self.current = self._new("message", "msg_")
                out += self._added(self.current)
                part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
                out += self._ev("response.content_part.added", item_id=self.current.id, output_index=self.current.index, content_index=0, part=part)
            item = self.current
            item.text += ev.text
            return out + self._ev(
                "response.output_text.delta", item_id=item.id, output_index=item.index, content_index=0, delta=ev.text, logprobs=[]
            )
        if isinstance(ev, n.ThinkingDelta):
            return out + self._thinking(ev)
        if isinstance(ev, n.ToolCallStart):
            out += self._close()
            item = self._new("function_call", "fc_")
            item.call_id, item.name = ev.id, ev.name
            self.calls[ev.call] = item
            self.current = item
            return out + self._added(item)
        if isinstance(ev, n.ToolCallDelta):
            item = self.calls.get(ev.call)
            if item is None or not ev.arguments:
                return out
            item.text += ev.arguments
            return out + self._ev("response.function_call_arguments.delta", item_id=item.id, output_index=item.index, delta=ev.arguments)
        return out

    def _thinking(self, ev: n.ThinkingDelta) -> bytes:
        out = b""
        cur = self.current
        if ev.redacted:  # a redacted block is a reasoning item of its own, with no text
            out += self._close()
            item = self._new("reasoning", "rs_")
            item.redacted, item.origin = ev.redacted, ev.origin
            self.current = item
            out += self._added(item)
            return out + self._close()
        if not ev.text and not ev.signature:
            return out
        # a signature ends a thinking block: text after it starts a new reasoning item
        if cur is None or cur.kind != "reasoning" or (ev.text and (cur.signature or cur.redacted)):
            out += self._close()
            cur = self._new("reasoning", "rs_")
            cur.origin = ev.origin
            self.current = cur
            out += self._added(cur)
        if ev.text:
            if not cur.summary_open:
                cur.summary_open = True
                out += self._ev(
                    "response.reasoning_summary_part.added",
                    item_id=cur.id,
                    output_index=cur.index,
                    summary_index=0,
                    part={"type": "summary_text", "text": ""},
                )
            cur.text += ev.text
            out += self._ev("response.reasoning_summary_text.delta", item_id=cur.id, output_index=cur.index, summary_index=0, delta=ev.text)
        if ev.signature:
            cur.signature = (cur.signature or "") + ev.signature
        return out

    def finish(self) -> bytes:
        incomplete = _INCOMPLETE.get(self.reason or "")
        out = self._open() + self._close("incomplete" if incomplete else "completed")  # the open item was cut short, or not
        usage = self.usage or n.Usage()  # clients (the AI SDK) require usage; zero when unreported
        if incomplete:
            snap = self._snapshot("incomplete", usage=usage, incomplete=incomplete)
            return out + self._ev("response.incomplete", response=snap)
        return out + self._ev("response.completed", response=self._snapshot("completed", usage=usage))

    def error(self, status: int, kind: str, message: str) -> bytes:
        """An ``error`` event (what the Vercel AI SDK reads) then ``response.failed`` (what
        Codex and the openai SDK read). Open items stay open: they were cut short."""
        code = "rate_limit_exceeded" if kind == "rate_limited" or status == 429 else "server_error"
        out = self._open()
        self.current = None
        out += self._ev("error", code=code, message=message, param=None)
        snap = self._snapshot("failed", usage=self.usage, error={"code": code, "message": message})
        return out + self._ev("response.failed", response=snap)


# ======================================================================= egress


def build_call(request: n.Request, tier: CompiledTier, client_headers: Mapping[str, str] | None = None) -> UpstreamCall:
    raise IngressOnly("build_call")


def build_passthrough_call(body: dict[str, Any], tier: CompiledTier, client_headers: Mapping[str, str]) -> UpstreamCall:
    raise IngressOnly("build_passthrough_call")


def parse_response(body: dict[str, Any]) -> n.Response:
    raise IngressOnly("parse_response")


def read_error(status: int, body: bytes, headers: Mapping[str, str]) -> UpstreamErrorInfo:
    raise IngressOnly("read_error")


def check_request(body: dict[str, Any]) -> None:
    """Nothing cheap to add: every Responses request takes the full parse (no tier
    speaks this protocol) before anything is sent."""


def stream_decoder() -> Any:
    raise IngressOnly("stream_decoder")


ADAPTER = Adapter(
    protocol=PROTOCOL,
    sse_content_type="text/event-stream",
    forward_headers=frozenset(),
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
    stream_decoder=stream_decoder,
    read_error=read_error,
)
