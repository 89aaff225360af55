"""OpenAI Responses as a client speaks it: the ingress face.

A ``/v1/responses`` body parsed into a neutral ``Request``: ``input`` items into
messages (reasoning items with a Switchyard blob back into signed thinking, any other
``encrypted_content`` into thinking of origin ``openai-responses``), hosted tools and
other fields with no neutral meaning into ``extras``, stateful fields refused with a 400
(the neutral path keeps no state); the capability features a raw body uses; the edits
of a same-protocol body for a Responses tier (``prepare_passthrough``: everything the
gateway does not touch travels as it is, stateful fields included, since that tier
keeps the state); a whole neutral answer rendered as a ``response`` object.

Streamed answers are written by ``stream.StreamEncoder``; the object and item shapes
both build live in ``_wire``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from switchyard.sidecar.contract.config import CompiledTier

from .. import neutral as n
from ..base import RequestError
from ..common import args_text, expect, new_id, now, opt_number, split_data_url
from ._wire import (
    BLOB_PREFIX,
    PROTOCOL,
    joins,
    _INCOMPLETE,
    _blob,
    _call_item,
    _echo,
    _message_item,
    _reasoning_item,
    _response,
    _unblob,
)

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
    # A previous_response_id the sidecar's own store holds is taken out of the body before
    # the parse (pipeline/conversation.py); one that reaches the parse is not the gateway's.
    "previous_response_id": "it continues a response this gateway does not hold (stored by OpenAI, or expired here)",
    "conversation": "it continues a conversation stored by OpenAI",
    "prompt": "it names a prompt template stored by OpenAI",
}

# Values of honoured fields that the gateway satisfies by doing nothing.
_HONOURED = {"store": (False, True, None), "truncation": ("disabled", None), "service_tier": ("auto", None), "background": (False, None)}

INCLUDE_ENCRYPTED = "reasoning.encrypted_content"


# ------------------------------------------------------------------------------ parsing


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


def check_request(body: dict[str, Any]) -> None:
    """What a body needs before it reaches a Responses tier as it is (the same-protocol
    path never runs the full parse): a model, and an ``input`` (a string or an array)
    unless the body continues state kept by that tier (``previous_response_id``,
    ``conversation``, ``prompt``), which only the same-protocol path can serve."""
    model = body.get("model")
    expect(isinstance(model, str) and bool(model), "'model' is required and must be a string", "model")
    raw = body.get("input")
    if raw is None:
        stateful = any(body.get(k) is not None for k in _STATEFUL)
        expect(stateful, "'input' is required: a string or a non-empty array of items", "input")
        return
    expect(isinstance(raw, (str, list)), "'input' must be a string or an array of items", "input")
    if isinstance(raw, list):
        for i, item in enumerate(raw):
            expect(isinstance(item, dict), f"'{_where(i)}' must be an object", _where(i))


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


_MEDIA_PART = {"vision": "input_image", "documents": "input_file", "audio": "input_audio"}


def _without_parts(items: Any, kind: str) -> Any:
    """``input`` without content parts of ``kind`` (in messages and tool outputs)."""
    if not isinstance(items, list):
        return items
    out = []
    for item in items:
        if isinstance(item, dict):
            for key in ("content", "output"):
                c = item.get(key)
                if isinstance(c, list) and any(isinstance(p, dict) and p.get("type") == kind for p in c):
                    item = {**item, key: [p for p in c if not (isinstance(p, dict) and p.get("type") == kind)]}
        out.append(item)
    return out


def _without_include(out: dict[str, Any], value: str) -> None:
    inc = out.get("include")
    if isinstance(inc, list) and value in inc:
        out["include"] = [v for v in inc if v != value]


def _foreign_reasoning(item: Any) -> bool:
    """A reasoning item whose encrypted_content is a switchyard blob (see ``_wire``)."""
    if not (isinstance(item, dict) and item.get("type") == "reasoning"):
        return False
    enc = item.get("encrypted_content")
    return isinstance(enc, str) and enc.startswith(BLOB_PREFIX)


def prepare_passthrough(body: dict[str, Any], tier: CompiledTier, edits: Mapping[str, Any], notes: list[tuple[str, str]] | None = None) -> dict[str, Any]:
    """A Responses body for a Responses tier: a shallow copy with the tier's model and
    the profile's edits. Everything else travels untouched, Switchyard knows it or not:
    ``store``, ``include``, ``previous_response_id``, hosted tools, and reasoning items
    with their ``encrypted_content``; but for reasoning items carrying a switchyard blob
    (thinking of another protocol, which the tier could not read)."""
    out = dict(body)
    out["model"] = tier.model
    items = out.get("input")
    if isinstance(items, list) and any(_foreign_reasoning(i) for i in items):
        # Thinking another tier produced (an earlier turn served by Anthropic, say),
        # carried in a switchyard blob: the gateway's own wrapping, which no Responses
        # tier could decrypt (it would refuse the request). Left out, as every egress
        # adapter leaves out thinking of another protocol.
        out["input"] = [i for i in items if not _foreign_reasoning(i)]
    for feature, value in edits.items():
        if feature == "maxOutputTokens":
            out["max_output_tokens"] = value
        elif feature == "tools":
            tools = out.get("tools")
            hosted = [t for t in tools if not (isinstance(t, dict) and t.get("type") == "function")] if isinstance(tools, list) else []
            if hosted:
                out["tools"] = hosted
            else:
                out.pop("tools", None)
                out.pop("tool_choice", None)
                out.pop("parallel_tool_calls", None)
        elif feature == "parallelToolCalls":
            out.pop("parallel_tool_calls", None)
        elif feature == "reasoning":
            out.pop("reasoning", None)
            _without_include(out, INCLUDE_ENCRYPTED)
        elif feature in ("jsonMode", "structuredOutput"):
            text = out.get("text")
            if isinstance(text, dict) and "format" in text:
                rest = {k: v for k, v in text.items() if k != "format"}
                if rest:
                    out["text"] = rest
                else:
                    out.pop("text")
        elif feature == "logprobs":
            out.pop("top_logprobs", None)
            _without_include(out, "message.output_text.logprobs")
        elif feature == "systemPrompt":
            out.pop("instructions", None)
            items = out.get("input")
            if isinstance(items, list):
                out["input"] = [i for i in items if not (isinstance(i, dict) and i.get("role") in ("system", "developer"))]
        elif feature in _MEDIA_PART:
            out["input"] = _without_parts(out.get("input"), _MEDIA_PART[feature])
    return out


# ---------------------------------------------------------------------------- rendering


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

    last: n.Part | None = None
    for p in choice.parts:
        prev, last = last, p
        if isinstance(p, n.Thinking) and joins(prev, p) and items and items[-1]["type"] == "reasoning":
            items[-1]["encrypted_content"] = _thinking_blob(p)  # a Responses tier's item, whole again
            continue
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
