"""OpenAI Chat Completions as a client speaks it: the ingress face.

A ``/v1/chat/completions`` body (legacy ``functions``/``function_call`` included)
parsed into a neutral ``Request``, with unknown fields kept in ``extras`` for a Chat
Completions tier (``egress.build_body``); the capability features a raw body uses; the
edits of a same-protocol body for a Chat Completions tier (``prepare_passthrough``);
a whole neutral answer rendered as a ``chat.completion`` object.

Streamed answers are written by ``stream.StreamEncoder``; the pieces shared with the
egress face live in ``_wire``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from switchyard.sidecar.contract.config import CompiledTier

from .. import neutral as n
from ..base import RequestError
from ..common import args_text, expect, now, opt_number, split_data_url, vector_base64
from ._wire import FINISH_OUT, PROTOCOL, _usage_out

# Fields this adapter understands; everything else in a body is an "extra".
_KNOWN = frozenset(
    {
        "model", "messages", "tools", "tool_choice", "parallel_tool_calls", "max_tokens",
        "max_completion_tokens", "temperature", "top_p", "top_k", "stop", "n", "seed",
        "logprobs", "top_logprobs", "reasoning_effort", "response_format", "stream",
        "stream_options", "user", "functions", "function_call",
    }
)  # fmt: skip


# ------------------------------------------------------------------------------ parsing


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


# ------------------------------------------------------------------------ rendering out


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


# ------------------------------------------------------------------------ embeddings

MAX_EMBED_INPUTS = 2048  # OpenAI's own limit on inputs per request
_EMBED_KNOWN = frozenset({"model", "input", "encoding_format", "dimensions"})


def embed_request(body: dict[str, Any], path_model: str | None = None) -> n.EmbedRequest:
    """``POST /v1/embeddings``: ``input`` a string or a list of strings. Token arrays (a
    list of integers, or of lists of them) are refused: a tier of another model or
    protocol could not read them."""
    raw = body.get("input")
    if isinstance(raw, str):
        inputs: tuple[str, ...] = (raw,)
    elif isinstance(raw, list) and raw and all(isinstance(x, str) for x in raw):
        inputs = tuple(raw)
    elif isinstance(raw, list) and raw and all(isinstance(x, int) or isinstance(x, list) for x in raw):
        raise RequestError(
            "'input' as token arrays is not accepted by this gateway: a fallback tier may be another model "
            "or protocol, whose tokens differ; send the text (a string or a list of strings)",
            "input",
        )
    else:
        raise RequestError("'input' must be a non-empty string or a non-empty list of strings", "input")
    expect(len(inputs) <= MAX_EMBED_INPUTS, f"'input' may hold at most {MAX_EMBED_INPUTS} strings, not {len(inputs)}", "input")
    expect(all(inputs), "'input' must not contain an empty string", "input")
    encoding = body.get("encoding_format")
    expect(encoding in (None, "float", "base64"), "'encoding_format' must be 'float' or 'base64'", "encoding_format")
    dims = body.get("dimensions")
    expect(
        dims is None or (type(dims) is int and 1 <= dims <= 65536), "'dimensions' must be a positive integer", "dimensions"
    )
    return n.EmbedRequest(
        inputs=inputs,
        dimensions=dims,
        extras={k: v for k, v in body.items() if k not in _EMBED_KNOWN and v is not None},
        origin=PROTOCOL,
        encoding="base64" if encoding == "base64" else "float",
    )


def render_embeddings(
    vectors: list[list[float]], usage: n.Usage | None, *, alias: str, request: n.EmbedRequest
) -> dict[str, Any]:
    """An OpenAI ``list`` of ``embedding`` objects; base64 vectors when the client asked."""
    b64 = request.encoding == "base64"
    tokens = usage.input_tokens if usage is not None else 0
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": vector_base64(v) if b64 else v} for i, v in enumerate(vectors)
        ],
        "model": alias,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
