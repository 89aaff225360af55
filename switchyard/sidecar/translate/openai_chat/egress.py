"""OpenAI Chat Completions as a tier speaks it: the egress face.

A neutral request becomes a ``POST {base}/chat/completions`` call (bearer key;
``max_completion_tokens`` for api.openai.com, ``max_tokens`` elsewhere; usage asked for
on streams); a same-protocol body is sent as it is. A whole answer is read back into a
neutral ``Response`` (``reasoning_content`` read as thinking); ``read_error`` reads
OpenAI's error body.

Streamed answers are read by ``stream.StreamDecoder``; the pieces shared with the
ingress face live in ``_wire``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from switchyard.sidecar.contract.config import CompiledTier

from .. import neutral as n
from ..base import UpstreamCall, UpstreamFormatError, Verdict, upstream_headers
from ..common import args_text, budget_to_effort, clamp, data_url, new_id, read_openai_error, vector_in
from ._wire import FINISH_IN, PROTOCOL, _usage_in


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


_MEDIA = (n.Image, n.Document, n.Audio)


def _messages_out(req: n.Request, notes: list[tuple[str, str]] | None = None) -> list[dict[str, Any]]:
    msgs: list[dict[str, Any]] = []
    if req.system:
        msgs.append({"role": "system", "content": "\n\n".join(t.text for t in req.system)})
    for m in req.messages:
        if m.role == "system":  # an instruction inside the conversation: a system message in place
            msgs.append({"role": "system", "content": "".join(p.text for p in m.parts if isinstance(p, n.Text))})
            continue
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
        # A tool message carries text only: media a tool returned (a screenshot) follows
        # the tool messages in a user turn, said so, rather than vanish.
        media = [(r.tool_call_id, p) for r in results for p in r.content if isinstance(p, _MEDIA)]
        if media:
            parts: list[n.Part] = []
            for call_id in dict.fromkeys(c for c, _ in media):
                parts.append(n.Text(f"[media returned by tool call {call_id}]"))
                parts.extend(p for c, p in media if c == call_id)
            msgs.append({"role": "user", "content": _content_out(parts)})
            if notes is not None:
                notes.append(("toolResultMedia", "map(user message)"))
        rest = [p for p in m.parts if not isinstance(p, (n.ToolResult, n.Thinking, n.ToolCall))]
        if rest or not results:
            user: dict[str, Any] = {"role": "user", "content": _content_out(rest)}
            if m.name:
                user["name"] = m.name
            msgs.append(user)
    return msgs


def build_body(req: n.Request, tier: CompiledTier, notes: list[tuple[str, str]] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"model": tier.model, "messages": _messages_out(req, notes)}
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


def build_call(req: n.Request, tier: CompiledTier, client_headers: Mapping[str, str] | None = None) -> UpstreamCall:
    notes: list[tuple[str, str]] = []
    body = build_body(req, tier, notes)
    return UpstreamCall("POST", _url(tier), upstream_headers(tier, req.stream), orjson.dumps(body), req.stream, notes)


def build_passthrough_call(body: dict[str, Any], tier: CompiledTier, client_headers: Mapping[str, str]) -> UpstreamCall:
    stream = body.get("stream") is True
    return UpstreamCall("POST", _url(tier), upstream_headers(tier, stream), orjson.dumps(body), stream)


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


def verdict(body: dict[str, Any]) -> Verdict | None:
    """``parse_response``'s verdict on the usual answer (one choice, a text message)
    without building it; None for anything else (tool calls, a refusal, several choices,
    an odd type)."""
    choices = body.get("choices")
    if type(choices) is not list or len(choices) != 1:
        return None
    choice = choices[0]
    msg = choice.get("message") if type(choice) is dict else None
    if type(msg) is not dict or msg.get("tool_calls") or msg.get("refusal"):
        return None
    content, reason = msg.get("content"), choice.get("finish_reason")
    if (content is not None and type(content) is not str) or (reason is not None and type(reason) is not str):
        return None
    return Verdict(bool(content), FINISH_IN.get(reason or "", None), _usage_in(body.get("usage")))  # type: ignore[arg-type]


read_error = read_openai_error  # the same error body as every OpenAI API (translate/common.py)


# ------------------------------------------------------------------------ embeddings


def embed_call(tier: CompiledTier, request: n.EmbedRequest) -> UpstreamCall:
    """``POST {base}/embeddings``, floats asked for (every OpenAI-style server has them;
    not all have base64). A same-protocol client's own fields (``user``...) go along."""
    body: dict[str, Any] = {}
    if request.origin == PROTOCOL:
        body.update(request.extras)
    body.update({"model": tier.model, "input": list(request.inputs), "encoding_format": "float"})
    if request.dimensions is not None:
        body["dimensions"] = request.dimensions
    return UpstreamCall("POST", f"{tier.base_url}/embeddings", upstream_headers(tier, False), orjson.dumps(body), False)


def read_embeddings(raw: bytes) -> tuple[list[list[float]], n.Usage | None]:
    """An OpenAI ``list`` of ``embedding`` objects (floats or base64), put in input order."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise UpstreamFormatError("embeddings answer is not JSON") from exc
    data = obj.get("data") if isinstance(obj, dict) else None
    if not isinstance(data, list) or not data:
        raise UpstreamFormatError("embeddings answer without a data array")
    placed: dict[int, list[float]] = {}
    for pos, item in enumerate(data):
        if not isinstance(item, dict):
            raise UpstreamFormatError("embeddings answer with a data item that is not an object")
        index = item.get("index", pos)
        if type(index) is not int or not 0 <= index < len(data) or index in placed:
            raise UpstreamFormatError("embeddings answer with a wrong or repeated index")
        placed[index] = vector_in(item.get("embedding"), f"embedding {index}")
    usage = obj.get("usage")
    tokens = usage.get("prompt_tokens") if isinstance(usage, dict) else None
    return [placed[i] for i in range(len(data))], n.Usage(input_tokens=tokens) if type(tokens) is int else None
