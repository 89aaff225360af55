"""Anthropic Messages on the wire.

Emulates `POST /v1/messages` (a `message` object, or the SSE event stream),
`POST /v1/messages/count_tokens`, `GET /v1/models` and `GET /v1/models/{id}` as the
Anthropic API sends them (checked against Anthropic's streaming docs and the
`anthropic` SDK's stream parser, which ignores any event without an `event:` line):

    event: message_start          {"type":"message_start","message":{... "content":[] ...}}
    event: content_block_start    {"type":"content_block_start","index":0,"content_block":{...}}
    event: ping                   {"type": "ping"}
    event: content_block_delta    text_delta | thinking_delta | signature_delta | input_json_delta
    event: content_block_stop     {"type":"content_block_stop","index":0}
    event: message_delta          {"delta":{"stop_reason":...,"stop_sequence":...},"usage":{...}}
    event: message_stop           {"type":"message_stop"}
    event: error                  {"type":"error","error":{"type":"overloaded_error",...}}

Blocks come in the order thinking, text, tool_use. Errors are
`{"type":"error","error":{"type","message"},"request_id"}`; 529 is `overloaded_error`;
a 429 can carry `anthropic-ratelimit-*` headers whose `-reset` values are RFC 3339
times. Like the real API, a request without `anthropic-version` is refused (400), and
`model`, `max_tokens` and `messages` are required — the classic translation slips.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta, UTC
from typing import Any

import orjson

from .replies import Resolved, split_text
from .wire import (
    COUNT_TOKENS,
    GENERATE,
    GET_MODEL,
    LIST_MODELS,
    Call,
    ErrorResponse,
    StreamPlan,
    Wire,
    WireError,
    next_id,
    text_of,
)

__all__ = ["AnthropicWire"]

_FINISH = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
    "stop_sequence": "stop_sequence",
}

_ERRORS = {
    400: ("invalid_request_error", "Simulated bad request."),
    401: ("authentication_error", "invalid x-api-key"),
    403: ("permission_error", "Your API key does not have permission to use the specified resource."),
    404: ("not_found_error", "model: {model}"),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: (
        "rate_limit_error",
        "This request would exceed the rate limit for your organization (sim) of 50 requests "
        "per minute. For details, refer to: https://docs.claude.com/en/api/rate-limits. You can "
        "see the response headers for current usage. Please reduce the prompt length or the "
        "maximum tokens requested, or try again later.",
    ),
    500: ("api_error", "Internal server error"),
    529: ("overloaded_error", "Overloaded"),
}

_PING = b'event: ping\ndata: {"type": "ping"}\n\n'
_MESSAGE_STOP = b'event: message_stop\ndata: {"type":"message_stop"}\n\n'


def _event(name: bytes, data: Any) -> bytes:
    return b"event: " + name + b"\ndata: " + orjson.dumps(data) + b"\n\n"


_TEXT_DELTA = (b'event: content_block_delta\ndata: {"type":"content_block_delta","index":', b',"delta":{"type":"text_delta","text":', b"}}\n\n")


def _delta_frame(index: int, delta: dict[str, Any]) -> bytes:
    """A `content_block_delta` event; text deltas (the bulk of a long stream) from a
    prebuilt template, the others through orjson."""
    if delta["type"] == "text_delta":
        start, middle, end = _TEXT_DELTA
        return b"%b%d%b%b%b" % (start, index, middle, orjson.dumps(delta["text"]), end)
    return _event(b"content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})


def _error(status: int, type_: str, message: str) -> ErrorResponse:
    """An error response whose body `request_id` matches its `request-id` header."""
    request_id = f"req_sim{next_id():018d}"
    body = orjson.dumps({"type": "error", "error": {"type": type_, "message": message}, "request_id": request_id})
    return ErrorResponse(status, body, {"request-id": request_id})


def _rfc3339(seconds_from_now: float) -> str:
    moment = datetime.now(UTC) + timedelta(seconds=seconds_from_now)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class AnthropicWire(Wire):
    flavour = "anthropic"
    json_type = "application/json"
    stream_type = "text/event-stream; charset=utf-8"
    request_id_header = "request-id"
    default_models = ("claude-sonnet-5-5", "claude-haiku-5-5", "claude-opus-5-5")
    #: The in-stream error Anthropic sends most: `overloaded_error`.
    stream_error_status = 529

    def routes(self) -> list[tuple[str, str, str]]:
        return [
            ("POST", "/v1/messages", GENERATE),
            ("POST", "/v1/messages/count_tokens", COUNT_TOKENS),
            ("GET", "/v1/models", LIST_MODELS),
            ("GET", "/v1/models/{model}", GET_MODEL),
        ]

    # -- requests -------------------------------------------------------------------

    def check_headers(self, headers: Mapping[str, str]) -> ErrorResponse | None:
        if "anthropic-version" not in headers:
            return _error(400, "invalid_request_error", "anthropic-version: header is required")
        return None

    def parse(self, endpoint: str, path_model: str, query: Mapping[str, str], body: Any, path: str = "") -> Call:
        if endpoint not in (GENERATE, COUNT_TOKENS):
            return Call(endpoint=endpoint, model=path_model)
        if not isinstance(body, dict):
            raise WireError(self._bad("body: Input should be a valid dictionary"))
        required = ("model", "messages") if endpoint == COUNT_TOKENS else ("model", "max_tokens", "messages")
        for name in required:
            if name not in body:
                raise WireError(self._bad(f"{name}: Field required"))
        model, messages = body["model"], body["messages"]
        if not isinstance(model, str) or not model:
            raise WireError(self._bad("model: Input should be a valid string"))
        if not isinstance(messages, list):
            raise WireError(self._bad("messages: Input should be a valid list"))
        if endpoint == GENERATE and (not isinstance(body["max_tokens"], int) or isinstance(body["max_tokens"], bool)):
            raise WireError(self._bad("max_tokens: Input should be a valid integer"))
        user_text = ""
        for message in reversed(messages):
            if isinstance(message, dict) and message.get("role") == "user":
                user_text = text_of(message.get("content"))
                break
        thinking = body.get("thinking")
        return Call(
            endpoint=endpoint,
            model=model,
            stream=body.get("stream") is True,
            body=body,
            has_tools=bool(body.get("tools")),
            wants_thinking=isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive"),
            user_text=user_text,
        )

    def check_key(self, headers: Mapping[str, str], query: Mapping[str, str], key: str) -> ErrorResponse | None:
        given = headers.get("x-api-key")
        if given is None:
            auth = headers.get("Authorization", "")
            given = auth[7:].strip() if auth[:7].lower() == "bearer " else None
        if given == key:
            return None
        message = "x-api-key header is required" if given is None else "invalid x-api-key"
        return _error(401, "authentication_error", message)

    def _bad(self, message: str) -> ErrorResponse:
        return _error(400, "invalid_request_error", message)

    def bad_json(self, detail: str) -> ErrorResponse:
        return self._bad(f"There was an issue with your request body: invalid JSON ({detail})")

    # -- answers --------------------------------------------------------------------

    @staticmethod
    def _usage(r: Resolved, *, in_message: bool) -> dict[str, Any]:
        """Usage as in a message (`in_message`) or in the stream's `message_delta`."""
        usage: dict[str, Any] = {
            "input_tokens": r.input_tokens,
            "cache_creation_input_tokens": r.cache_write_tokens,
            "cache_read_input_tokens": r.cached_tokens,
            "output_tokens": r.output_tokens + r.reasoning_tokens,
        }
        if in_message:
            usage["cache_creation"] = {"ephemeral_5m_input_tokens": r.cache_write_tokens, "ephemeral_1h_input_tokens": 0}
            usage["service_tier"] = "standard"
        return usage

    def render(self, reply: Resolved, call: Call, provider: str, reasoning_field: str | None) -> bytes:
        content: list[dict[str, Any]] = []
        if reply.thinking:
            content.append({"type": "thinking", "thinking": reply.thinking, "signature": reply.signature or ""})
        if reply.text:
            content.append({"type": "text", "text": reply.text})
        for tool in reply.tool_calls:
            content.append({
                "type": "tool_use",
                "id": tool.id or f"toolu_sim{next_id():016d}",
                "name": tool.name,
                "input": tool.arguments_object(),
            })
        stop_reason = _FINISH.get(reply.finish, reply.finish)
        return orjson.dumps({
            "model": call.model,
            "id": f"msg_sim{next_id():018d}",
            "type": "message",
            "role": "assistant",
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": reply.stop_sequence if stop_reason == "stop_sequence" else None,
            "usage": self._usage(reply, in_message=True),
        })

    def stream(self, reply: Resolved, call: Call, provider: str, reasoning_field: str | None) -> StreamPlan:
        start_usage = self._usage(reply, in_message=True)
        start_usage["output_tokens"] = 1
        plan = StreamPlan(head=[_event(b"message_start", {
            "type": "message_start",
            "message": {
                "model": call.model,
                "id": f"msg_sim{next_id():018d}",
                "type": "message",
                "role": "assistant",
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": start_usage,
            },
        })])
        # Each block: (content_block, [delta, ...]); its start frame joins the first
        # chunk and its stop frame the last, so every chunk carries content.
        blocks: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
        if reply.thinking:
            deltas = [{"type": "thinking_delta", "thinking": p} for p in reply.thinking_pieces]
            deltas.append({"type": "signature_delta", "signature": reply.signature or ""})
            blocks.append(({"type": "thinking", "thinking": "", "signature": ""}, deltas))
        if reply.text_pieces:
            blocks.append(({"type": "text", "text": ""}, [{"type": "text_delta", "text": p} for p in reply.text_pieces]))
        pieces = max(1, len(reply.text_pieces))
        for tool in reply.tool_calls:
            args = tool.arguments_json()
            deltas = [{"type": "input_json_delta", "partial_json": ""}]
            deltas += [{"type": "input_json_delta", "partial_json": p} for p in split_text(args, pieces)]
            blocks.append((
                {"type": "tool_use", "id": tool.id or f"toolu_sim{next_id():016d}", "name": tool.name, "input": {}},
                deltas,
            ))
        if not blocks:
            plan.head.append(_PING)
        for index, (block, deltas) in enumerate(blocks):
            frames = [_delta_frame(index, d) for d in deltas]
            start = _event(b"content_block_start", {"type": "content_block_start", "index": index, "content_block": block})
            if index == 0:
                start += _PING
            if block["type"] == "tool_use" and len(frames) > 1:
                frames[1] = start + frames[0] + frames[1]
                del frames[0]
            else:
                frames[0] = start + frames[0]
            frames[-1] += _event(b"content_block_stop", {"type": "content_block_stop", "index": index})
            plan.chunks.extend(frames)
        stop_reason = _FINISH.get(reply.finish, reply.finish)
        plan.tail.append(_event(b"message_delta", {
            "type": "message_delta",
            "delta": {
                "stop_reason": stop_reason,
                "stop_sequence": reply.stop_sequence if stop_reason == "stop_sequence" else None,
            },
            "usage": self._usage(reply, in_message=False),
        }))
        plan.tail.append(_MESSAGE_STOP)
        return plan

    # -- errors ---------------------------------------------------------------------

    def _error_parts(self, status: int, call: Call, message: str | None) -> tuple[str, str]:
        type_, template = _ERRORS.get(status, ("invalid_request_error" if status < 500 else "api_error", f"Simulated error {status}."))
        return type_, message or template.format(model=call.model or "claude-sonnet-5-5")

    def error(self, status: int, call: Call, message: str | None = None, reset_seconds: float | None = None) -> ErrorResponse:
        type_, text = self._error_parts(status, call, message)
        response = _error(status, type_, text)
        if reset_seconds is not None:
            reset = _rfc3339(reset_seconds)
            for kind, limit in (("requests", "50"), ("tokens", "90000"), ("input-tokens", "50000"), ("output-tokens", "40000")):
                response.headers[f"anthropic-ratelimit-{kind}-limit"] = limit
                response.headers[f"anthropic-ratelimit-{kind}-remaining"] = "0" if kind == "requests" else limit
                response.headers[f"anthropic-ratelimit-{kind}-reset"] = reset
        return response

    def error_event(self, status: int, call: Call, message: str | None = None, *, first: bool = False) -> bytes:
        type_, text = self._error_parts(status, call, message)
        return _event(b"error", {"type": "error", "error": {"type": type_, "message": text}})

    def malformed_event(self, call: Call, *, first: bool = False) -> bytes:
        return b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"unterminated\n\n'

    def frame(self, event: Mapping[str, Any], call: Call) -> bytes:
        return _event(str(event.get("type", "message")).encode(), event)

    # -- catalogue ------------------------------------------------------------------

    @staticmethod
    def _model(model: str) -> dict[str, Any]:
        return {
            "type": "model",
            "id": model,
            "display_name": model.replace("-", " ").title(),
            "created_at": "2025-09-29T00:00:00Z",
            "lifecycle": "active",
            "deprecated_at": None,
            "retires_at": None,
            "max_input_tokens": 200000,
            "max_tokens": 64000,
        }

    def list_models(self, models: tuple[str, ...]) -> bytes:
        return orjson.dumps({
            "data": [self._model(m) for m in models],
            "has_more": False,
            "first_id": models[0] if models else None,
            "last_id": models[-1] if models else None,
        })

    def get_model(self, model: str) -> bytes:
        return orjson.dumps(self._model(model))

    def count_tokens(self, call: Call, tokens: int) -> bytes:
        return orjson.dumps({"input_tokens": tokens})

