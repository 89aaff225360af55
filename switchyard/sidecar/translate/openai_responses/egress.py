"""OpenAI Responses as a tier speaks it: the egress face (OpenAI, and OpenAI-compatible
servers that serve ``POST /v1/responses``).

A neutral request becomes a ``POST {base}/responses`` call (bearer key): the system
prompt as ``instructions``, the conversation as ``input`` items (messages,
``function_call`` / ``function_call_output``, and ``reasoning`` items carrying their
``encrypted_content`` back when that thinking came from this protocol), function tools,
``tool_choice``, ``reasoning.effort``, ``text.format``, ``max_output_tokens``, and
``store: false`` (the gateway is stateless; a Responses client that asked for
``store: true`` gets it back through ``extras``). A same-protocol body is sent as it is.
A whole ``response`` object is read back into a neutral ``Response`` (reasoning items
as thinking of origin ``openai-responses`` whose ``redacted`` is the item's
``encrypted_content``); ``read_error`` reads OpenAI's error body. There is no
token-count endpoint (the adapter's count faces keep their defaults).

Streamed answers are read by ``stream.StreamDecoder``.

Field notes (checked against the spec in ``shared/specs``):

- Function tools are ``strict`` by default on this API (unlike Chat Completions): a
  schema written for chat (optional properties, no ``additionalProperties: false``)
  is refused in strict mode, so a tool whose strictness the client did not state is
  sent with ``strict: false``.
- ``max_output_tokens`` below 16 is refused by the API: a smaller value is raised to 16
  and the change reported (``maxOutputTokens``: ``map``).
- Reasoning items are sent without an ``id`` (as Codex sends them; the spec marks it
  required, the API does not): with ``store: false`` an id makes the API look the item
  up and answer 404. An item without ``encrypted_content`` cannot be
  sent at all (the API needs one or the other), so thinking that has none (thinking
  text of another protocol, a summary alone) is left out, as other egress adapters
  leave out thinking they cannot carry.
- ``include: ["reasoning.encrypted_content"]`` is asked for when the tier's profile
  says the model reasons, the request asks for reasoning, or encrypted reasoning is
  sent back: without it a stateless client could not hand the reasoning back next
  turn. It is not asked for otherwise (models that do not reason refuse it).
- No ``stop``, ``n``, ``seed``, ``top_k`` or ``logprobs`` on this API: the built-in
  profile says so (the capability step strips them first); any that reach here are
  dropped and reported.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from switchyard.sidecar.contract.config import CompiledTier

from .. import neutral as n
from ..base import UpstreamCall, UpstreamFormatError, upstream_headers
from ..common import args_text, budget_to_effort, clamp, data_url, new_id, read_openai_error
from ._wire import FINISH_IN_INCOMPLETE, PROTOCOL, joins, summary_text, usage_in

MIN_OUTPUT_TOKENS = 16
INCLUDE_ENCRYPTED = "reasoning.encrypted_content"


# ------------------------------------------------------------------------ request out


def _content_in(parts: list[n.Part]) -> list[dict[str, Any]]:
    """User-side parts as input content parts."""
    out: list[dict[str, Any]] = []
    for p in parts:
        if isinstance(p, n.Text):
            out.append({"type": "input_text", "text": p.text})
        elif isinstance(p, n.Image):
            img: dict[str, Any] = {"type": "input_image", "image_url": p.url or data_url(p.media_type, p.data or "")}
            img["detail"] = p.detail or "auto"
            out.append(img)
        elif isinstance(p, n.Document):
            if p.text is not None:
                out.append({"type": "input_text", "text": p.text})
            elif p.data is not None:
                out.append(
                    {
                        "type": "input_file",
                        "file_data": data_url(p.media_type or "application/pdf", p.data),
                        "filename": p.title or "document.pdf",
                    }
                )
            else:
                out.append({"type": "input_file", "file_url": p.url})
        elif isinstance(p, n.Audio):
            out.append({"type": "input_audio", "input_audio": {"data": p.data, "format": p.format}})
    return out


def _tool_output(r: n.ToolResult) -> str | list[dict[str, Any]]:
    if all(isinstance(p, n.Text) for p in r.content):
        return "".join(p.text for p in r.content if isinstance(p, n.Text))
    return [p for p in _content_in(r.content) if p["type"] in ("input_text", "input_image", "input_file")]


def _reasoning_item(t: n.Thinking) -> dict[str, Any] | None:
    """Thinking this protocol issued, handed back: its encrypted content and summary."""
    if t.origin != PROTOCOL or not t.redacted:
        return None
    summary = [{"type": "summary_text", "text": t.text}] if t.text else []
    return {"type": "reasoning", "summary": summary, "encrypted_content": t.redacted}


def _assistant_items(parts: list[n.Part], items: list[dict[str, Any]]) -> bool:
    """An assistant turn as output items appended to ``items`` in order (text runs as
    one message each, reasoning items, function calls); True when reasoning was sent."""
    text: list[str] = []
    reasoning = False

    def flush() -> None:
        if text:  # string content: the spec's input message (output_text parts need an id)
            items.append({"type": "message", "role": "assistant", "content": "".join(text)})
            text.clear()

    prev: n.Part | None = None
    for p in parts:
        if isinstance(p, n.Thinking) and joins(prev, p):
            assert isinstance(prev, n.Thinking)
            p = n.Thinking(text=prev.text, redacted=p.redacted, origin=PROTOCOL)
        prev = p
        if isinstance(p, n.Text):
            if p.text:
                text.append(p.text)
        elif isinstance(p, n.Thinking):
            item = _reasoning_item(p)
            if item is not None:
                flush()
                items.append(item)
                reasoning = True
        elif isinstance(p, n.ToolCall):
            flush()
            items.append({"type": "function_call", "call_id": p.id, "name": p.name, "arguments": p.arguments or "{}"})
    flush()
    return reasoning


def _input(req: n.Request) -> tuple[list[dict[str, Any]], bool]:
    """The conversation as input items, and whether reasoning items are among them."""
    items: list[dict[str, Any]] = []
    reasoning = False
    for m in req.messages:
        if m.role == "system":  # an instruction inside the conversation, in place
            text = "".join(p.text for p in m.parts if isinstance(p, n.Text))
            items.append({"type": "message", "role": "system", "content": [{"type": "input_text", "text": text}]})
            continue
        if m.role == "assistant":
            reasoning = _assistant_items(m.parts, items) or reasoning
            continue
        results = [p for p in m.parts if isinstance(p, n.ToolResult)]
        for r in results:
            items.append({"type": "function_call_output", "call_id": r.tool_call_id, "output": _tool_output(r)})
        rest = [p for p in m.parts if not isinstance(p, (n.ToolResult, n.Thinking, n.ToolCall))]
        if rest or not results:
            items.append({"type": "message", "role": "user", "content": _content_in(rest)})
    return items, reasoning


def _tools(req: n.Request) -> list[dict[str, Any]]:
    out = []
    for t in req.tools:
        tool: dict[str, Any] = {
            "type": "function",
            "name": t.name,
            "parameters": t.parameters or {"type": "object", "properties": {}},
            "strict": bool(t.strict),  # strict is this API's default: say when it is not wanted
        }
        if t.description is not None:
            tool["description"] = t.description
        out.append(tool)
    return out


def _put_back_extras(body: dict[str, Any], req: n.Request, notes: list[tuple[str, str]]) -> None:
    """A Responses client's fields with no neutral meaning, back where they were."""
    dropped = False
    for k, v in req.extras.items():
        if k.startswith("tools."):
            body.setdefault("tools", []).extend(v if isinstance(v, list) else [v])
        elif k.startswith("input."):
            dropped = True  # hosted-tool items: their place in the conversation is lost
        elif k.startswith(("reasoning.", "text.")):
            head, _, sub = k.partition(".")
            body.setdefault(head, {}).setdefault(sub, v)
        elif k == "store":
            body["store"] = v  # the client asked the tier to store it: its call
        elif k == "include":
            body["include"] = [*body.get("include", []), *(v if isinstance(v, list) else [v])]
        elif k == "tool_choice.allowed_tools":
            tc = body.get("tool_choice")
            mode = tc if tc in ("auto", "required") else "auto"
            body["tool_choice"] = {"type": "allowed_tools", "mode": mode, "tools": v}
        else:
            body.setdefault(k, v)
    if dropped:
        notes.append(("unknownFields", "strip"))


def build_body(req: n.Request, tier: CompiledTier, notes: list[tuple[str, str]] | None = None) -> dict[str, Any]:
    notes = notes if notes is not None else []
    items, sends_reasoning = _input(req)
    body: dict[str, Any] = {"model": tier.model}
    if req.system:
        body["instructions"] = "\n\n".join(t.text for t in req.system)
    body["input"] = items
    if req.tools:
        body["tools"] = _tools(req)
        tc = req.tool_choice
        if tc is not None:
            body["tool_choice"] = {"type": "function", "name": tc.name} if tc.mode == "tool" else tc.mode
        if req.parallel_tool_calls is not None:
            body["parallel_tool_calls"] = req.parallel_tool_calls
    if req.max_tokens is not None:
        body["max_output_tokens"] = max(MIN_OUTPUT_TOKENS, req.max_tokens)
        if req.max_tokens < MIN_OUTPUT_TOKENS:
            notes.append(("maxOutputTokens", f"map({MIN_OUTPUT_TOKENS})"))
    if req.temperature is not None:
        body["temperature"] = clamp(req.temperature, 0.0, 2.0)
    if req.top_p is not None:
        body["top_p"] = clamp(req.top_p, 0.0, 1.0)
    for feature, present in (
        ("stopSequences", bool(req.stop)),
        ("multipleChoices", (req.n or 1) > 1),
        ("seed", req.seed is not None),
        ("topK", req.top_k is not None),
        ("logprobs", bool(req.logprobs)),
    ):
        if present:
            notes.append((feature, "strip"))
    r = req.reasoning
    asks_reasoning = False
    if r is not None:
        effort = "none" if not r.enabled else (r.effort or budget_to_effort(r.budget_tokens))
        reasoning: dict[str, Any] = {}
        if effort:
            reasoning["effort"] = effort
        if r.summary and r.enabled:
            reasoning["summary"] = "auto"
        if reasoning:
            body["reasoning"] = reasoning
        asks_reasoning = r.enabled
    rf = req.response_format
    if rf is not None and rf.type == "json_schema":
        fmt: dict[str, Any] = {"type": "json_schema", "name": rf.name or "response", "schema": rf.schema or {}}
        if rf.strict is not None:
            fmt["strict"] = rf.strict
        body["text"] = {"format": fmt}
    elif rf is not None and rf.type == "json_object":
        body["text"] = {"format": {"type": "json_object"}}
    if req.origin == PROTOCOL:
        if req.metadata:
            body["metadata"] = dict(req.metadata)
        if req.user is not None:
            body["safety_identifier"] = req.user
    else:
        user = req.user or (req.metadata or {}).get("user_id")
        if isinstance(user, str):
            body["safety_identifier"] = user
    body["store"] = False
    thinks = tier.profile.features.get("reasoning") not in (None, "none", False)
    if sends_reasoning or asks_reasoning or thinks:
        body["include"] = [INCLUDE_ENCRYPTED]
    if req.origin == PROTOCOL:
        _put_back_extras(body, req, notes)
    if req.stream:
        body["stream"] = True
    return body


def _url(tier: CompiledTier) -> str:
    return f"{tier.base_url}/responses"


def build_call(req: n.Request, tier: CompiledTier, client_headers: Mapping[str, str] | None = None) -> UpstreamCall:
    notes: list[tuple[str, str]] = []
    body = build_body(req, tier, notes)
    return UpstreamCall("POST", _url(tier), upstream_headers(tier, req.stream), orjson.dumps(body), req.stream, notes)


def build_passthrough_call(body: dict[str, Any], tier: CompiledTier, client_headers: Mapping[str, str]) -> UpstreamCall:
    stream = body.get("stream") is True
    return UpstreamCall("POST", _url(tier), upstream_headers(tier, stream), orjson.dumps(body), stream)


# ------------------------------------------------------------------------- answer in


def thinking_of(item: dict[str, Any]) -> list[n.Thinking]:
    """A reasoning item as neutral thinking: its text, then its encrypted content as a
    part of its own, as the stream decoder gives them (a summary streams first, the
    encrypted content comes with the finished item). Kept apart, the text reaches a
    client of any protocol, while the encrypted content is for this protocol only; the
    Responses renderer and ``build_call`` join the two back into one item."""
    out = []
    text = summary_text(item)
    if text:
        out.append(n.Thinking(text=text, origin=PROTOCOL))
    enc = item.get("encrypted_content")
    if isinstance(enc, str) and enc:
        out.append(n.Thinking(redacted=enc, origin=PROTOCOL))
    return out


def parse_response(body: dict[str, Any]) -> n.Response:
    output = body.get("output")
    if not isinstance(output, list):
        raise UpstreamFormatError("response object without an output array")
    parts: list[n.Part] = []
    refusal = False
    for item in output:
        if not isinstance(item, dict):
            continue
        kind = item.get("type")
        if kind == "message":
            for c in item.get("content") or ():
                if not isinstance(c, dict):
                    continue
                if c.get("type") == "output_text" and isinstance(c.get("text"), str):
                    parts.append(n.Text(c["text"]))
                elif c.get("type") == "refusal":
                    parts.append(n.Text(str(c.get("refusal") or "")))
                    refusal = True
        elif kind == "reasoning":
            parts.extend(thinking_of(item))
        elif kind == "function_call":
            call_id = item.get("call_id") or item.get("id") or new_id("call_")
            parts.append(n.ToolCall(str(call_id), str(item.get("name") or ""), args_text(item.get("arguments"))))
        # hosted tool calls (web_search_call, ...) have no neutral meaning: left out
    status = body.get("status")
    finish: n.FinishReason | None
    if status == "incomplete":
        details = body.get("incomplete_details")
        reason = details.get("reason") if isinstance(details, dict) else None
        finish = FINISH_IN_INCOMPLETE.get(reason or "", "length")  # type: ignore[assignment]
    elif status == "failed":
        finish = "error"
    elif refusal:
        finish = "refusal"
    elif any(isinstance(p, n.ToolCall) for p in parts):
        finish = "tool_calls"
    else:
        finish = "stop"
    created = body.get("created_at")
    return n.Response(
        id=str(body.get("id") or new_id("resp_")),
        model=str(body.get("model") or ""),
        choices=[n.Choice(parts, finish)],
        usage=usage_in(body.get("usage")),
        created=int(created) if isinstance(created, (int, float)) and not isinstance(created, bool) else None,
    )


read_error = read_openai_error  # the same error body as every OpenAI API (translate/common.py)
