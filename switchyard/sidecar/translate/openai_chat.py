"""OpenAI Chat Completions, both faces (also OpenRouter and openai-compatible runtimes).

Ingress: ``POST /v1/chat/completions`` bodies into the neutral form, neutral answers and
event streams back into ``chat.completion`` / ``chat.completion.chunk`` objects that
validate against the official OpenAPI spec. Egress: neutral requests into a Chat
Completions call for a tier, its answers and SSE chunks back into neutral form.

Field notes (checked against the OpenAI API reference):
- ``max_completion_tokens`` replaced ``max_tokens`` on api.openai.com (reasoning models
  refuse the old name); OpenRouter and local runtimes know ``max_tokens``. The egress
  side sends the name the provider takes.
- A stream ends with ``data: [DONE]``; an error inside a stream is a ``data:`` chunk
  holding ``{"error": {...}}`` and is never followed by ``[DONE]``.
- ``reasoning_content`` (DeepSeek, vLLM, llama.cpp) carries thinking text on
  compatible runtimes; it is read as thinking and written on the way out so a client
  of a thinking tier sees it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from switchyard.sidecar.contract.config import CompiledTier
from switchyard.sidecar.errors import ErrorKind, GatewayError, clip, openai_error_object

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
    args_text,
    budget_to_effort,
    clamp,
    data_url,
    expect,
    new_id,
    now,
    opt_number,
    split_data_url,
)
from .sse import SSEDecoder, encode

PROTOCOL = "openai-chat"

# Fields this adapter understands; everything else in a body is an "extra".
_KNOWN = frozenset(
    {
        "model", "messages", "tools", "tool_choice", "parallel_tool_calls", "max_tokens",
        "max_completion_tokens", "temperature", "top_p", "top_k", "stop", "n", "seed",
        "logprobs", "top_logprobs", "reasoning_effort", "response_format", "stream",
        "stream_options", "user", "functions", "function_call",
    }
)  # fmt: skip

FINISH_IN = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}
FINISH_OUT = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "content_filter": "content_filter",
    "pause": "stop",
    "refusal": "content_filter",
    "error": "stop",
    None: None,
}


# ====================================================================== ingress


def _parts(content: Any, where: str) -> list[n.Part]:
    if content is None:
        return []
    if isinstance(content, str):
        return [n.Text(content)] if content else []
    expect(isinstance(content, list), f"'{where}.content' must be a string or an array of parts", where)
    out: list[n.Part] = []
    for i, part in enumerate(content):
        expect(isinstance(part, dict) and isinstance(part.get("type"), str), f"'{where}.content[{i}]' must be an object with a type", where)
        kind = part["type"]
        if kind == "text":
            expect(isinstance(part.get("text"), str), f"'{where}.content[{i}].text' must be a string", where)
            out.append(n.Text(part["text"]))
        elif kind == "image_url":
            img = part.get("image_url")
            url = img.get("url") if isinstance(img, dict) else img
            expect(isinstance(url, str), f"'{where}.content[{i}].image_url.url' must be a string", where)
            media, data = split_data_url(url)
            detail = img.get("detail") if isinstance(img, dict) else None
            out.append(n.Image(data=data, media_type=media, detail=detail) if data else n.Image(url=url, detail=detail))
        elif kind == "input_audio":
            audio = part.get("input_audio")
            expect(isinstance(audio, dict) and isinstance(audio.get("data"), str), f"'{where}.content[{i}].input_audio.data' must be a string", where)
            out.append(n.Audio(data=audio["data"], format=str(audio.get("format") or "wav")))
        elif kind == "file":
            f = part.get("file")
            expect(isinstance(f, dict), f"'{where}.content[{i}].file' must be an object", where)
            file_data = f.get("file_data")
            if isinstance(file_data, str):
                media, data = split_data_url(file_data)
                out.append(n.Document(data=data or file_data, media_type=media or "application/pdf", title=f.get("filename")))
            else:
                raise RequestError(
                    f"'{where}.content[{i}]' references an uploaded file (file_id); only inline file_data can be routed",
                    where,
                )
        elif kind == "refusal":
            out.append(n.Text(str(part.get("refusal") or "")))
        else:
            raise RequestError(f"unsupported content part type '{kind}' in '{where}'", where)
    return out


def _tool_result_text(content: Any, where: str) -> list[n.Part]:
    return _parts(content, where)


def parse_request(body: dict[str, Any], *, path_model: str | None = None, stream: bool | None = None) -> n.Request:
    model = body.get("model")
    expect(isinstance(model, str) and bool(model), "'model' is required and must be a string", "model")
    messages = body.get("messages")
    expect(isinstance(messages, list) and bool(messages), "'messages' must be a non-empty array", "messages")

    system: list[n.Text] = []
    out: list[n.Message] = []
    call_names: dict[str, str] = {}
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        expect(isinstance(m, dict), f"'{where}' must be an object", where)
        role = m.get("role")
        if role in ("system", "developer"):
            system.extend(p for p in _parts(m.get("content"), where) if isinstance(p, n.Text))
        elif role == "user":
            out.append(n.Message("user", _parts(m.get("content"), where), m.get("name")))
        elif role == "assistant":
            parts: list[n.Part] = []
            reasoning = m.get("reasoning_content")
            if isinstance(reasoning, str) and reasoning:
                parts.append(n.Thinking(text=reasoning, origin=PROTOCOL))
            parts.extend(_parts(m.get("content"), where))
            if m.get("refusal"):
                parts.append(n.Text(str(m["refusal"])))
            calls = m.get("tool_calls") or []
            expect(isinstance(calls, list), f"'{where}.tool_calls' must be an array", where)
            for j, c in enumerate(calls):
                fn = c.get("function") if isinstance(c, dict) else None
                expect(isinstance(fn, dict) and isinstance(fn.get("name"), str), f"'{where}.tool_calls[{j}].function.name' is required", where)
                cid = str(c.get("id") or f"call_{i}_{j}")
                call_names[cid] = fn["name"]
                parts.append(n.ToolCall(cid, fn["name"], args_text(fn.get("arguments"))))
            fc = m.get("function_call")
            if isinstance(fc, dict) and fc.get("name"):
                cid = f"call_{i}_fc"
                call_names[cid] = fc["name"]
                parts.append(n.ToolCall(cid, fc["name"], args_text(fc.get("arguments"))))
            out.append(n.Message("assistant", parts))
        elif role in ("tool", "function"):
            if role == "tool":
                cid = m.get("tool_call_id")
                expect(isinstance(cid, str), f"'{where}.tool_call_id' is required", where)
                name = call_names.get(cid)
            else:  # legacy function result: matched by name
                name = m.get("name")
                cid = next((k for k, v in reversed(call_names.items()) if v == name), f"call_{i}")
            result = n.ToolResult(cid, _tool_result_text(m.get("content"), where), name=name)
            if out and out[-1].role == "user" and out[-1].parts and all(isinstance(p, n.ToolResult) for p in out[-1].parts):
                out[-1] = n.Message("user", [*out[-1].parts, result])
            else:
                out.append(n.Message("user", [result]))
        else:
            raise RequestError(f"'{where}.role' must be system, developer, user, assistant or tool", where)

    tools, extra_tools = _tools(body)
    stop = body.get("stop")
    if isinstance(stop, str):
        stop = [stop]
    expect(stop is None or (isinstance(stop, list) and all(isinstance(s, str) for s in stop)), "'stop' must be a string or an array of strings", "stop")

    extras = {k: v for k, v in body.items() if k not in _KNOWN}
    if extra_tools:
        extras["tools"] = extra_tools
    so = body.get("stream_options")
    do_stream = bool(body.get("stream")) if stream is None else stream
    return n.Request(
        model=model,
        messages=out,
        system=system,
        tools=tools,
        tool_choice=_tool_choice(body),
        parallel_tool_calls=body.get("parallel_tool_calls"),
        max_tokens=opt_number(body, "max_completion_tokens", integer=True) or opt_number(body, "max_tokens", integer=True),
        temperature=opt_number(body, "temperature"),
        top_p=opt_number(body, "top_p"),
        top_k=opt_number(body, "top_k", integer=True),
        stop=list(stop or []),
        n=opt_number(body, "n", integer=True),
        seed=opt_number(body, "seed", integer=True),
        logprobs=body.get("logprobs"),
        top_logprobs=opt_number(body, "top_logprobs", integer=True),
        reasoning=_reasoning(body.get("reasoning_effort")),
        response_format=_response_format(body.get("response_format")),
        stream=do_stream,
        stream_usage=bool(isinstance(so, dict) and so.get("include_usage")),
        user=body.get("user") if isinstance(body.get("user"), str) else None,
        extras=extras,
        origin=PROTOCOL,
    )


def _tools(body: dict[str, Any]) -> tuple[list[n.Tool], list[Any]]:
    tools: list[n.Tool] = []
    other: list[Any] = []
    raw = body.get("tools")
    if raw is None and isinstance(body.get("functions"), list):  # legacy functions
        raw = [{"type": "function", "function": f} for f in body["functions"]]
    if raw is None:
        return tools, other
    expect(isinstance(raw, list), "'tools' must be an array", "tools")
    for i, t in enumerate(raw):
        expect(isinstance(t, dict), f"'tools[{i}]' must be an object", "tools")
        if t.get("type") == "function":
            fn = t.get("function")
            expect(isinstance(fn, dict) and isinstance(fn.get("name"), str), f"'tools[{i}].function.name' is required", "tools")
            params = fn.get("parameters")
            expect(params is None or isinstance(params, dict), f"'tools[{i}].function.parameters' must be an object", "tools")
            desc, strict = fn.get("description"), fn.get("strict")
            tools.append(n.Tool(fn["name"], desc if isinstance(desc, str) else None, params, strict if isinstance(strict, bool) else None))
        else:
            other.append(t)
    return tools, other


def _tool_choice(body: dict[str, Any]) -> n.ToolChoice | None:
    tc = body.get("tool_choice", body.get("function_call"))
    if tc is None:
        return None
    if isinstance(tc, str):
        expect(tc in ("auto", "none", "required"), "'tool_choice' must be auto, none, required or a function", "tool_choice")
        return n.ToolChoice(tc)  # type: ignore[arg-type]
    if isinstance(tc, dict):
        fn = tc.get("function") if "function" in tc else tc
        name = fn.get("name") if isinstance(fn, dict) else None
        expect(isinstance(name, str), "'tool_choice.function.name' is required", "tool_choice")
        return n.ToolChoice("tool", name)
    raise RequestError("'tool_choice' must be a string or an object", "tool_choice")


def _reasoning(effort: Any) -> n.Reasoning | None:
    if effort is None:
        return None
    expect(isinstance(effort, str), "'reasoning_effort' must be a string", "reasoning_effort")
    if effort == "none":
        return n.Reasoning(enabled=False)
    level = {"xhigh": "high"}.get(effort, effort)
    expect(level in ("minimal", "low", "medium", "high"), "'reasoning_effort' must be none, minimal, low, medium or high", "reasoning_effort")
    return n.Reasoning(effort=level)  # type: ignore[arg-type]


def _response_format(rf: Any) -> n.ResponseFormat | None:
    if rf is None:
        return None
    expect(isinstance(rf, dict) and rf.get("type") in ("text", "json_object", "json_schema"), "'response_format.type' must be text, json_object or json_schema", "response_format")
    if rf["type"] == "json_schema":
        js = rf.get("json_schema")
        expect(isinstance(js, dict) and isinstance(js.get("name"), str), "'response_format.json_schema.name' is required", "response_format")
        expect(js.get("schema") is None or isinstance(js.get("schema"), dict), "'response_format.json_schema.schema' must be an object", "response_format")
        return n.ResponseFormat("json_schema", js.get("schema"), js["name"], js.get("strict"))
    if rf["type"] == "text":
        return None
    return n.ResponseFormat("json_object")


def request_model(body: dict[str, Any]) -> str | None:
    m = body.get("model")
    return m if isinstance(m, str) else None


def request_streams(body: dict[str, Any]) -> bool:
    return body.get("stream") is True


_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


def check_request(body: dict[str, Any]) -> None:
    messages = body.get("messages")
    expect(isinstance(messages, list) and bool(messages), "'messages' must be a non-empty array", "messages")
    for i, m in enumerate(messages):
        role = m.get("role") if isinstance(m, dict) else None
        expect(isinstance(role, str) and role in _ROLES, f"'messages[{i}]' must be an object with a valid role", "messages")
    stream = body.get("stream")
    expect(stream is None or isinstance(stream, bool), "'stream' must be a boolean", "stream")


def features_used(body: dict[str, Any]) -> dict[str, Any]:
    used: dict[str, Any] = {}
    if body.get("stream") is True:
        used["streaming"] = True
    if body.get("tools") or body.get("functions"):
        used["tools"] = True
        if body.get("parallel_tool_calls") is True:
            used["parallelToolCalls"] = True
    messages = body.get("messages")
    if isinstance(messages, list):
        for m in messages:
            if not isinstance(m, dict):
                continue
            role = m.get("role")
            if role in ("system", "developer"):
                used["systemPrompt"] = True
            content = m.get("content")
            if isinstance(content, list):
                for p in content:
                    kind = p.get("type") if isinstance(p, dict) else None
                    if kind == "image_url":
                        used["vision"] = True
                    elif kind == "file":
                        used["documents"] = True
                    elif kind == "input_audio":
                        used["audio"] = True
    if body.get("reasoning_effort") not in (None, "none"):
        used["reasoning"] = True
    rf = body.get("response_format")
    if isinstance(rf, dict):
        if rf.get("type") == "json_object":
            used["jsonMode"] = True
        elif rf.get("type") == "json_schema":
            used["structuredOutput"] = True
    stop = body.get("stop")
    if stop:
        used["stopSequences"] = 1 if isinstance(stop, str) else len(stop)
    if body.get("logprobs"):
        used["logprobs"] = True
    nn = body.get("n")
    if isinstance(nn, int) and nn > 1:
        used["multipleChoices"] = nn
    if body.get("seed") is not None:
        used["seed"] = True
    if body.get("top_k") is not None:
        used["topK"] = True
    mt = body.get("max_completion_tokens") or body.get("max_tokens")
    if isinstance(mt, int):
        used["maxOutputTokens"] = mt
    return used


_MEDIA_PART = {"vision": "image_url", "documents": "file", "audio": "input_audio"}


def prepare_passthrough(body: dict[str, Any], tier: CompiledTier, edits: Mapping[str, Any], notes: list[tuple[str, str]] | None = None) -> dict[str, Any]:
    out = dict(body)
    out["model"] = tier.model
    for feature, value in edits.items():
        if feature == "stopSequences":
            stop = out.get("stop")
            stops = [stop] if isinstance(stop, str) else list(stop or [])
            if value:
                out["stop"] = stops[:value]
            else:
                out.pop("stop", None)
        elif feature == "maxOutputTokens":
            key = "max_completion_tokens" if "max_completion_tokens" in out else "max_tokens"
            out[key] = value
        elif feature == "tools":
            for k in ("tools", "tool_choice", "parallel_tool_calls", "functions", "function_call"):
                out.pop(k, None)
        elif feature == "parallelToolCalls":
            out.pop("parallel_tool_calls", None)
        elif feature == "reasoning":
            out.pop("reasoning_effort", None)
        elif feature in ("jsonMode", "structuredOutput"):
            out.pop("response_format", None)
        elif feature == "logprobs":
            out.pop("logprobs", None)
            out.pop("top_logprobs", None)
        elif feature == "multipleChoices":
            out.pop("n", None)
        elif feature == "seed":
            out.pop("seed", None)
        elif feature == "topK":
            out.pop("top_k", None)
        elif feature in _MEDIA_PART:
            out["messages"] = _without_parts(out.get("messages") or [], _MEDIA_PART[feature])
    return out


def _without_parts(messages: list[Any], kind: str) -> list[Any]:
    out = []
    for m in messages:
        content = m.get("content") if isinstance(m, dict) else None
        if isinstance(content, list) and any(isinstance(p, dict) and p.get("type") == kind for p in content):
            m = {**m, "content": [p for p in content if not (isinstance(p, dict) and p.get("type") == kind)]}
        out.append(m)
    return out


def _usage_out(u: n.Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": u.input_tokens,
        "completion_tokens": u.output_tokens,
        "total_tokens": u.input_tokens + u.output_tokens,
        "prompt_tokens_details": {"cached_tokens": u.cached_input_tokens},
        "completion_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
    }


def _message_out(choice: n.Choice) -> dict[str, Any]:
    text = "".join(p.text for p in choice.parts if isinstance(p, n.Text))
    thinking = "".join(p.text for p in choice.parts if isinstance(p, n.Thinking) and p.text)
    calls = [
        {"id": p.id, "type": "function", "function": {"name": p.name, "arguments": p.arguments}}
        for p in choice.parts
        if isinstance(p, n.ToolCall)
    ]
    msg: dict[str, Any] = {"role": "assistant", "content": text or None, "refusal": None}
    if choice.finish_reason == "refusal":
        msg["refusal"], msg["content"] = text or "refused", None
    if calls:
        msg["tool_calls"] = calls
    if thinking:
        msg["reasoning_content"] = thinking
    return msg


def render_response(resp: n.Response, *, alias: str, request: n.Request | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": resp.id if resp.id.startswith("chatcmpl") else f"chatcmpl-{resp.id}",
        "object": "chat.completion",
        "created": resp.created or now(),
        "model": resp.model,
        "choices": [
            {
                "index": i,
                "message": _message_out(c),
                "finish_reason": FINISH_OUT.get(c.finish_reason, "stop") or "stop",
                "logprobs": None,
            }
            for i, c in enumerate(resp.choices)
        ],
    }
    if resp.usage is not None:
        out["usage"] = _usage_out(resp.usage)
    return out


class StreamEncoder:
    """Neutral events -> ``chat.completion.chunk`` SSE, for one response."""

    def __init__(self, *, alias: str, request: n.Request | None) -> None:
        self.id = new_id("chatcmpl-")
        self.model = alias
        self.created = now()
        self.include_usage = bool(request and request.stream_usage)
        self.usage: n.Usage | None = None
        self.started: set[int] = set()
        self.finished = False
        self._head = b""

    def _chunk(self, choices: list[dict[str, Any]], **extra: Any) -> bytes:
        body = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
            **extra,
        }
        return encode(orjson.dumps(body))

    def _delta(self, choice: int, delta: dict[str, Any], finish: str | None = None) -> bytes:
        pre = b""
        if choice not in self.started:
            self.started.add(choice)
            delta = {"role": "assistant", **delta}
        return pre + self._chunk([{"index": choice, "delta": delta, "finish_reason": finish, "logprobs": None}])

    def start(self) -> bytes:
        return b""

    def encode(self, ev: n.Event) -> bytes:
        if isinstance(ev, n.StreamStart):
            if ev.model:
                self.model = ev.model
            return b""
        if isinstance(ev, n.TextDelta):
            return self._delta(ev.choice, {"content": ev.text}) if ev.text else b""
        if isinstance(ev, n.ThinkingDelta):
            return self._delta(ev.choice, {"reasoning_content": ev.text}) if ev.text else b""
        if isinstance(ev, n.ToolCallStart):
            call = {"index": ev.call, "id": ev.id, "type": "function", "function": {"name": ev.name, "arguments": ""}}
            return self._delta(ev.choice, {"tool_calls": [call]})
        if isinstance(ev, n.ToolCallDelta):
            if not ev.arguments:
                return b""
            return self._delta(ev.choice, {"tool_calls": [{"index": ev.call, "function": {"arguments": ev.arguments}}]})
        if isinstance(ev, n.StreamFinish):
            return self._delta(ev.choice, {}, FINISH_OUT.get(ev.reason, "stop") or "stop")
        if isinstance(ev, n.StreamUsage):
            self.usage = ev.usage
            return b""
        return b""

    def finish(self) -> bytes:
        out = b""
        if self.include_usage and self.usage is not None:
            out += self._chunk([], usage=_usage_out(self.usage))
        return out + b"data: [DONE]\n\n"

    def error(self, status: int, kind: str, message: str) -> bytes:
        err = GatewayError(ErrorKind(kind), message, status=status)
        return encode(orjson.dumps({"error": openai_error_object(err)}))


# ======================================================================= egress


def _content_out(parts: list[n.Part]) -> str | list[dict[str, Any]]:
    if all(isinstance(p, n.Text) for p in parts):
        return "".join(p.text for p in parts if isinstance(p, n.Text))
    out: list[dict[str, Any]] = []
    for p in parts:
        if isinstance(p, n.Text):
            out.append({"type": "text", "text": p.text})
        elif isinstance(p, n.Image):
            url = p.url if p.url else data_url(p.media_type, p.data or "")
            img: dict[str, Any] = {"url": url}
            if p.detail:
                img["detail"] = p.detail
            out.append({"type": "image_url", "image_url": img})
        elif isinstance(p, n.Document):
            if p.text is not None:
                out.append({"type": "text", "text": p.text})
            elif p.data is None:
                # A document by URL: Chat Completions takes files inline only.
                out.append({"type": "text", "text": f"[document: {p.url}]"})
            else:
                f: dict[str, Any] = {
                    "file_data": data_url(p.media_type or "application/pdf", p.data),
                    "filename": p.title or "document.pdf",
                }
                out.append({"type": "file", "file": f})
        elif isinstance(p, n.Audio):
            out.append({"type": "input_audio", "input_audio": {"data": p.data, "format": p.format}})
    return out


def _tool_result_content(r: n.ToolResult) -> str:
    text = "".join(p.text for p in r.content if isinstance(p, n.Text))
    return text


def _messages_out(req: n.Request) -> list[dict[str, Any]]:
    msgs: list[dict[str, Any]] = []
    if req.system:
        msgs.append({"role": "system", "content": "\n\n".join(t.text for t in req.system)})
    for m in req.messages:
        if m.role == "assistant":
            text = "".join(p.text for p in m.parts if isinstance(p, n.Text))
            calls = [
                {"id": p.id, "type": "function", "function": {"name": p.name, "arguments": p.arguments}}
                for p in m.parts
                if isinstance(p, n.ToolCall)
            ]
            out: dict[str, Any] = {"role": "assistant", "content": text or None}
            if calls:
                out["tool_calls"] = calls
            msgs.append(out)
            continue
        results = [p for p in m.parts if isinstance(p, n.ToolResult)]
        for r in results:
            msgs.append({"role": "tool", "tool_call_id": r.tool_call_id, "content": _tool_result_content(r)})
        rest = [p for p in m.parts if not isinstance(p, (n.ToolResult, n.Thinking, n.ToolCall))]
        if rest or not results:
            user: dict[str, Any] = {"role": "user", "content": _content_out(rest)}
            if m.name:
                user["name"] = m.name
            msgs.append(user)
    return msgs


def build_body(req: n.Request, tier: CompiledTier) -> dict[str, Any]:
    body: dict[str, Any] = {"model": tier.model, "messages": _messages_out(req)}
    if req.origin == PROTOCOL:
        for k, v in req.extras.items():
            body.setdefault(k, v)
    if req.tools:
        body["tools"] = [
            {
                "type": "function",
                "function": {
                    k: v
                    for k, v in (
                        ("name", t.name),
                        ("description", t.description),
                        ("parameters", t.parameters or {"type": "object", "properties": {}}),
                        ("strict", t.strict),
                    )
                    if v is not None
                },
            }
            for t in req.tools
        ]
        if req.tool_choice is not None:
            tc = req.tool_choice
            body["tool_choice"] = (
                {"type": "function", "function": {"name": tc.name}} if tc.mode == "tool" else tc.mode
            )
        if req.parallel_tool_calls is not None:
            body["parallel_tool_calls"] = req.parallel_tool_calls
    if req.max_tokens is not None:
        body["max_completion_tokens" if tier.provider == "openai" else "max_tokens"] = req.max_tokens
    if req.temperature is not None:
        body["temperature"] = clamp(req.temperature, 0.0, 2.0)
    if req.top_p is not None:
        body["top_p"] = clamp(req.top_p, 0.0, 1.0)
    if req.top_k is not None:
        body["top_k"] = req.top_k
    if req.stop:
        body["stop"] = list(req.stop)
    if req.n is not None:
        body["n"] = req.n
    if req.seed is not None:
        body["seed"] = req.seed
    if req.logprobs:
        body["logprobs"] = True
        if req.top_logprobs is not None:
            body["top_logprobs"] = req.top_logprobs
    if req.reasoning is not None:
        r = req.reasoning
        effort = "none" if not r.enabled else (r.effort or budget_to_effort(r.budget_tokens))
        if effort:
            body["reasoning_effort"] = effort
    rf = req.response_format
    if rf is not None:
        if rf.type == "json_schema":
            js: dict[str, Any] = {"name": rf.name or "response", "schema": rf.schema or {}}
            if rf.strict is not None:
                js["strict"] = rf.strict
            body["response_format"] = {"type": "json_schema", "json_schema": js}
        elif rf.type == "json_object":
            body["response_format"] = {"type": "json_object"}
    user = req.user or (req.metadata or {}).get("user_id")
    if isinstance(user, str):
        body["user"] = user
    if req.stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


def _url(tier: CompiledTier) -> str:
    return f"{tier.base_url}/chat/completions"


def _headers(tier: CompiledTier, stream: bool) -> dict[str, str]:
    h = {"Content-Type": "application/json", "Accept": "text/event-stream" if stream else "application/json"}
    h.update(tier.headers)
    h.update(auth_headers(tier))
    return h


def build_call(req: n.Request, tier: CompiledTier, client_headers: Mapping[str, str] | None = None) -> UpstreamCall:
    body = build_body(req, tier)
    return UpstreamCall("POST", _url(tier), _headers(tier, req.stream), orjson.dumps(body), req.stream)


def build_passthrough_call(body: dict[str, Any], tier: CompiledTier, client_headers: Mapping[str, str]) -> UpstreamCall:
    stream = body.get("stream") is True
    return UpstreamCall("POST", _url(tier), _headers(tier, stream), orjson.dumps(body), stream)


def _usage_in(u: Any) -> n.Usage | None:
    if not isinstance(u, dict):
        return None
    pd = u.get("prompt_tokens_details") or {}
    cd = u.get("completion_tokens_details") or {}
    return n.Usage(
        input_tokens=int(u.get("prompt_tokens") or 0),
        output_tokens=int(u.get("completion_tokens") or 0),
        cached_input_tokens=int((pd.get("cached_tokens") if isinstance(pd, dict) else 0) or 0),
        reasoning_tokens=int((cd.get("reasoning_tokens") if isinstance(cd, dict) else 0) or 0),
    )


def parse_response(body: dict[str, Any]) -> n.Response:
    choices = body.get("choices")
    if not isinstance(choices, list):
        raise UpstreamFormatError("chat completion without a choices array")
    out: list[n.Choice] = []
    for c in choices:
        msg = c.get("message") if isinstance(c, dict) else None
        if not isinstance(msg, dict):
            raise UpstreamFormatError("chat completion choice without a message")
        parts: list[n.Part] = []
        reasoning = msg.get("reasoning_content") or msg.get("reasoning")
        if isinstance(reasoning, str) and reasoning:
            parts.append(n.Thinking(text=reasoning, origin=PROTOCOL))
        if isinstance(msg.get("content"), str) and msg["content"]:
            parts.append(n.Text(msg["content"]))
        finish = FINISH_IN.get(c.get("finish_reason") or "", None)
        if msg.get("refusal"):
            parts.append(n.Text(str(msg["refusal"])))
            finish = "refusal"
        for call in msg.get("tool_calls") or []:
            fn = call.get("function") or {}
            parts.append(n.ToolCall(str(call.get("id") or new_id("call_")), str(fn.get("name") or ""), args_text(fn.get("arguments"))))
        out.append(n.Choice(parts, finish))  # type: ignore[arg-type]
    return n.Response(
        id=str(body.get("id") or new_id("chatcmpl-")),
        model=str(body.get("model") or ""),
        choices=out,
        usage=_usage_in(body.get("usage")),
        created=body.get("created") if isinstance(body.get("created"), int) else None,
    )


class StreamDecoder:
    """``chat.completion.chunk`` SSE -> neutral events, keeping each event's raw bytes."""

    def __init__(self) -> None:
        self._sse = SSEDecoder()
        self._started = False
        self._calls: dict[tuple[int, int], bool] = {}
        self._finished = False
        self.complete = False

    def feed(self, chunk: bytes) -> list[DecodedEvent]:
        return [self._event(e.data, e.raw) for e in self._sse.feed(chunk)]

    def close(self) -> list[DecodedEvent]:
        self._sse.flush()
        if self._finished and not self._sse.truncated:
            self.complete = True  # finish_reason seen and a clean end, even without [DONE]
        return []

    def _event(self, data: str, raw: bytes) -> DecodedEvent:
        if data == "[DONE]":
            self.complete = True
            return DecodedEvent([], raw, terminal=True)
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            return DecodedEvent([n.StreamError(502, "upstream", "upstream sent a malformed stream chunk")], b"")  # not forwardable: the client gets our error event
        if not isinstance(obj, dict):
            return DecodedEvent([], raw)
        if "error" in obj:
            err = obj["error"] if isinstance(obj["error"], dict) else {"message": str(obj["error"])}
            status = 429 if err.get("type") in ("rate_limit_error", "insufficient_quota") else 502
            return DecodedEvent([n.StreamError(status, "rate_limited" if status == 429 else "upstream", clip(str(err.get("message") or "error")))], raw)
        events: list[n.Event] = []
        if not self._started:
            self._started = True
            events.append(n.StreamStart(str(obj.get("id") or ""), str(obj.get("model") or "")))
        for c in obj.get("choices") or ():
            idx = int(c.get("index") or 0)
            delta = c.get("delta") or {}
            reasoning = delta.get("reasoning_content") or delta.get("reasoning")
            if isinstance(reasoning, str) and reasoning:
                events.append(n.ThinkingDelta(reasoning, choice=idx, origin=PROTOCOL))
            content = delta.get("content")
            if isinstance(content, str) and content:
                events.append(n.TextDelta(content, idx))
            if delta.get("refusal"):
                events.append(n.TextDelta(str(delta["refusal"]), idx))
            for tc in delta.get("tool_calls") or ():
                ci = int(tc.get("index") or 0)
                fn = tc.get("function") or {}
                if (idx, ci) not in self._calls:
                    self._calls[(idx, ci)] = True
                    events.append(n.ToolCallStart(ci, str(tc.get("id") or new_id("call_")), str(fn.get("name") or ""), idx))
                if fn.get("arguments"):
                    events.append(n.ToolCallDelta(ci, str(fn["arguments"]), idx))
            fr = c.get("finish_reason")
            if fr:
                self._finished = True
                events.append(n.StreamFinish(FINISH_IN.get(fr, "stop"), idx))  # type: ignore[arg-type]
        usage = _usage_in(obj.get("usage"))
        if usage is not None:
            events.append(n.StreamUsage(usage))
        return DecodedEvent(events, raw)


def read_error(status: int, body: bytes, headers: Mapping[str, str]) -> UpstreamErrorInfo:
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        return UpstreamErrorInfo(clip(body.decode("utf-8", "replace")) or f"HTTP {status}")
    err = obj.get("error") if isinstance(obj, dict) else None
    if isinstance(err, str):
        return UpstreamErrorInfo(clip(err))
    if not isinstance(err, dict):
        return UpstreamErrorInfo(clip(body.decode("utf-8", "replace")))
    code = str(err.get("code") or "")
    kind = str(err.get("type") or code or "")
    return UpstreamErrorInfo(
        message=clip(str(err.get("message") or kind or f"HTTP {status}")),
        kind=kind or None,
        quota=code == "insufficient_quota" or kind == "insufficient_quota",
        model_not_found=code == "model_not_found",
    )


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
    stream_decoder=StreamDecoder,
    read_error=read_error,
)
