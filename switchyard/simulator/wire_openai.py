"""OpenAI Chat Completions on the wire (also OpenRouter and openai-compatible servers).

Emulates `POST /v1/chat/completions` (a `chat.completion` object, or an SSE stream of
`chat.completion.chunk` objects ended by `data: [DONE]`), `GET /v1/models` and
`GET /v1/models/{id}`, as the OpenAI API sends them (checked against the official
OpenAPI spec and the `openai` SDK's stream parser):

- the first chunk carries `delta.role`; text deltas carry `delta.content`; tool calls
  start with `{index, id, type: "function", function: {name, arguments: ""}}` and
  continue with `{index, function: {arguments: piece}}`; the last choice chunk has an
  empty delta and `finish_reason`;
- with `stream_options.include_usage` every chunk has `"usage": null` and one extra
  chunk with `"choices": []` carries the usage before `[DONE]`;
- chunks carry `obfuscation` unless `stream_options.include_obfuscation` is false;
- an in-stream error is `data: {"error": {...}}` with no `[DONE]` after it (what the
  SDK raises on);
- errors are `{"error": {"message", "type", "param", "code"}}`; a 429 can carry
  `x-ratelimit-*` headers.

Reasoning text is not part of OpenAI's Chat Completions; openai-compatible servers put
it in `reasoning_content` (vLLM, DeepSeek) or `reasoning` (OpenRouter). A mount with
`reasoning_field` set sends scripted thinking in that field.
"""

from __future__ import annotations

import base64
import struct
import time
from collections.abc import Mapping
from typing import Any

import orjson

from .replies import Resolved, split_text
from .wire import (
    EMBED,
    GENERATE,
    GET_MODEL,
    LIST_MODELS,
    Call,
    ErrorResponse,
    StreamPlan,
    Wire,
    WireError,
    embedding_vector,
    next_id,
    text_of,
)

__all__ = ["OpenAIWire"]

_FINISH = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "content_filter": "content_filter",
    "stop_sequence": "stop",
}

_DONE = b"data: [DONE]\n\n"
_FINGERPRINT = "fp_sim"

_MESSAGES = {
    400: ("invalid_request_error", None, "Simulated bad request."),
    401: (
        "invalid_request_error",
        "invalid_api_key",
        "Incorrect API key provided: sk-sim***********. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
    ),
    403: ("invalid_request_error", "model_not_found", "Project `proj_sim` does not have access to model `{model}`"),
    404: ("invalid_request_error", "model_not_found", "The model `{model}` does not exist or you do not have access to it."),
    429: (
        "requests",
        "rate_limit_exceeded",
        "Rate limit reached for {model} in organization org-sim on requests per min (RPM): "
        "Limit 3, Used 3, Requested 1. Please try again in {retry}. "
        "Visit https://platform.openai.com/account/rate-limits to learn more.",
    ),
    500: ("server_error", None, "The server had an error while processing your request. Sorry about that!"),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
}


def _go_duration(seconds: float) -> str:
    """OpenAI's `x-ratelimit-reset-*` format: "20ms", "1s", "6m0s"."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    minutes, secs = divmod(seconds, 60)
    secs_text = f"{secs:g}s"
    return f"{int(minutes)}m{secs_text}" if minutes else secs_text


def _mask(key: str) -> str:
    return key[:3] + "*" * max(4, len(key) - 7) + key[-4:] if len(key) > 8 else "*" * 8


def _error_body(message: str, type_: str, code: str | None, param: str | None = None) -> bytes:
    return orjson.dumps({"error": {"message": message, "type": type_, "param": param, "code": code}})


def _usage(r: Resolved) -> dict[str, Any]:
    completion = r.output_tokens + r.reasoning_tokens
    return {
        "prompt_tokens": r.input_tokens,
        "completion_tokens": completion,
        "total_tokens": r.input_tokens + completion,
        "prompt_tokens_details": {"cached_tokens": r.cached_tokens, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": r.reasoning_tokens,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


class OpenAIWire(Wire):
    flavour = "openai"
    json_type = "application/json"
    stream_type = "text/event-stream; charset=utf-8"
    request_id_header = "x-request-id"
    default_models = ("gpt-5.4-mini", "gpt-5.5", "gpt-4o-mini")

    def routes(self) -> list[tuple[str, str, str]]:
        return [
            ("POST", "/v1/chat/completions", GENERATE),
            ("POST", "/v1/embeddings", EMBED),
            ("GET", "/v1/models", LIST_MODELS),
            ("GET", "/v1/models/{model:.+}", GET_MODEL),
        ]

    # -- requests -------------------------------------------------------------------

    def parse(self, endpoint: str, path_model: str, query: Mapping[str, str], body: Any, path: str = "") -> Call:
        if endpoint == EMBED:
            return self._parse_embed(body)
        if endpoint != GENERATE:
            return Call(endpoint=endpoint, model=path_model)
        if not isinstance(body, dict):
            raise WireError(self._bad("Invalid type for body: expected an object.", None))
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise WireError(self._bad("you must provide a model parameter", None))
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise WireError(
                ErrorResponse(400, _error_body(
                    "Missing required parameter: 'messages'.", "invalid_request_error",
                    "missing_required_parameter", "messages",
                ))
            )
        user_text = ""
        for message in reversed(messages):
            if isinstance(message, dict) and message.get("role") == "user":
                user_text = text_of(message.get("content"))
                break
        options = body.get("stream_options")
        options = options if isinstance(options, dict) else {}
        return Call(
            endpoint=GENERATE,
            model=model,
            stream=body.get("stream") is True,
            body=body,
            include_usage=options.get("include_usage") is True,
            include_obfuscation=options.get("include_obfuscation") is not False,
            has_tools=bool(body.get("tools") or body.get("functions")),
            user_text=user_text,
        )

    def _parse_embed(self, body: Any) -> Call:
        """`POST /v1/embeddings`, refused as OpenAI refuses it: no model, no or an empty
        input, more than 2048 inputs, an unknown encoding_format, a dimensions that is
        not a positive integer. Token arrays are embedded like text (their numbers)."""
        if not isinstance(body, dict):
            raise WireError(self._bad("Invalid type for body: expected an object.", None))
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise WireError(self._bad("you must provide a model parameter", None))
        raw = body.get("input")
        if raw is None:
            raise WireError(self._bad("'input' is a required property", None))
        items = [raw] if isinstance(raw, str) or (isinstance(raw, list) and raw and isinstance(raw[0], int)) else raw
        if not isinstance(items, list) or not items or any(x == "" or x == [] for x in items):
            raise WireError(self._bad(
                "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.", None
            ))  # fmt: skip
        if len(items) > 2048:
            raise WireError(self._bad("Too many inputs. The max number of inputs is 2048.", "input"))
        encoding = body.get("encoding_format")
        if encoding not in (None, "float", "base64"):
            raise WireError(self._bad(
                f"Invalid value for 'encoding_format' = {encoding}. Supported values are: 'float' and 'base64'.", "encoding_format"
            ))  # fmt: skip
        dims = body.get("dimensions")
        if dims is not None and (type(dims) is not int or dims < 1):
            raise WireError(self._bad(f"Invalid value for 'dimensions' = {dims}. Must be at least 1.", "dimensions"))
        return Call(
            endpoint=EMBED, model=model, body=body, inputs=tuple(x if isinstance(x, str) else str(x) for x in items),
            dimensions=dims,
        )  # fmt: skip

    def embeddings(self, call: Call, size: int) -> bytes | ErrorResponse:
        if call.dimensions is not None and call.dimensions > size:
            return self._bad(f"Invalid value for 'dimensions' = {call.dimensions}. Must be less than or equal to {size}.", "dimensions")
        b64 = isinstance(call.body, dict) and call.body.get("encoding_format") == "base64"
        data = []
        for i, text in enumerate(call.inputs):
            vector = embedding_vector(call.model, text, size, call.dimensions)
            packed = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode() if b64 else vector
            data.append({"object": "embedding", "index": i, "embedding": packed})
        tokens = sum(max(1, len(t) // 4) for t in call.inputs)
        return orjson.dumps(
            {"object": "list", "data": data, "model": call.model, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
        )

    def check_key(self, headers: Mapping[str, str], query: Mapping[str, str], key: str) -> ErrorResponse | None:
        auth = headers.get("Authorization", "")
        given = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
        if given == key:
            return None
        if not given:
            message = (
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), "
                "or as the password field (with blank username) if you're accessing the API "
                "from your browser and are prompted for a username and password. You can "
                "obtain an API key from https://platform.openai.com/account/api-keys."
            )
            return ErrorResponse(401, _error_body(message, "invalid_request_error", None))
        message = (
            f"Incorrect API key provided: {_mask(given)}. You can find your API key at "
            "https://platform.openai.com/account/api-keys."
        )
        return ErrorResponse(401, _error_body(message, "invalid_request_error", "invalid_api_key"))

    def _bad(self, message: str, param: str | None) -> ErrorResponse:
        return ErrorResponse(400, _error_body(message, "invalid_request_error", None, param))

    def bad_json(self, detail: str) -> ErrorResponse:
        return self._bad(
            "We could not parse the JSON body of your request. (HINT: This likely means you "
            "aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, "
            "but what was sent was not valid JSON. If you have trouble figuring out how to fix "
            "this, please contact us through our help center at help.openai.com.)",
            None,
        )

    # -- answers --------------------------------------------------------------------

    def render(self, reply: Resolved, call: Call, provider: str, reasoning_field: str | None) -> bytes:
        message: dict[str, Any] = {
            "role": "assistant",
            "content": reply.text if (reply.text or not reply.tool_calls) else None,
            "refusal": None,
            "annotations": [],
        }
        if reasoning_field and reply.thinking:
            message[reasoning_field] = reply.thinking
        if reply.tool_calls:
            message["tool_calls"] = [
                {
                    "id": tool.id or f"call_sim{next_id():019d}",
                    "type": "function",
                    "function": {"name": tool.name, "arguments": tool.arguments_json()},
                }
                for tool in reply.tool_calls
            ]
        return orjson.dumps({
            "id": f"chatcmpl-sim{next_id():020d}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": call.model,
            "choices": [{
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": _FINISH.get(reply.finish, reply.finish),
            }],
            "usage": _usage(reply),
            "service_tier": "default",
            "system_fingerprint": _FINGERPRINT,
        })

    def stream(self, reply: Resolved, call: Call, provider: str, reasoning_field: str | None) -> StreamPlan:
        prefix = b"".join((
            b'data: {"id":"chatcmpl-sim', b"%020d" % next_id(),
            b'","object":"chat.completion.chunk","created":', b"%d" % int(time.time()),
            b',"model":', orjson.dumps(call.model),
            b',"service_tier":"default","system_fingerprint":"', _FINGERPRINT.encode(),
            b'","choices":[',
        ))
        suffix = b"]"
        if call.include_usage:
            suffix += b',"usage":null'
        if call.include_obfuscation:
            suffix += b',"obfuscation":"sim"'
        suffix += b"}\n\n"

        def frame(delta: bytes, finish: bytes = b"null") -> bytes:
            return b"".join((
                prefix, b'{"index":0,"delta":', delta, b',"logprobs":null,"finish_reason":',
                finish, b"}", suffix,
            ))

        plan = StreamPlan()
        has_text = bool(reply.text_pieces or (reasoning_field and reply.thinking_pieces))
        plan.head.append(frame(
            b'{"role":"assistant","content":"","refusal":null}' if has_text or not reply.tool_calls
            else b'{"role":"assistant","content":null,"refusal":null}'
        ))
        if reasoning_field:
            key = orjson.dumps(reasoning_field)
            for piece in reply.thinking_pieces:
                plan.chunks.append(frame(b"{" + key + b":" + orjson.dumps(piece) + b"}"))
        for piece in reply.text_pieces:
            plan.chunks.append(frame(b'{"content":' + orjson.dumps(piece) + b"}"))
        pieces_per_call = max(1, len(reply.text_pieces))
        for index, tool in enumerate(reply.tool_calls):
            plan.chunks.append(frame(orjson.dumps({"tool_calls": [{
                "index": index,
                "id": tool.id or f"call_sim{next_id():019d}",
                "type": "function",
                "function": {"name": tool.name, "arguments": ""},
            }]})))
            args = tool.arguments_json()
            for piece in split_text(args, pieces_per_call) or [""]:
                plan.chunks.append(frame(orjson.dumps(
                    {"tool_calls": [{"index": index, "function": {"arguments": piece}}]}
                )))
        plan.tail.append(frame(b"{}", orjson.dumps(_FINISH.get(reply.finish, reply.finish))))
        if call.include_usage:
            usage_suffix = b'],"usage":' + orjson.dumps(_usage(reply))
            if call.include_obfuscation:
                usage_suffix += b',"obfuscation":"sim"'
            plan.tail.append(prefix + usage_suffix + b"}\n\n")
        plan.tail.append(_DONE)
        return plan

    # -- errors ---------------------------------------------------------------------

    def error(self, status: int, call: Call, message: str | None = None, reset_seconds: float | None = None) -> ErrorResponse:
        default = ("invalid_request_error", None, f"Simulated error {status}.") if status < 500 else (
            "server_error", None, "The server had an error while processing your request. Sorry about that!"
        )
        type_, code, template = _MESSAGES.get(status, default)
        retry = _go_duration(reset_seconds) if reset_seconds is not None else "20s"
        text = message or template.format(model=call.model or "gpt-4o-mini", retry=retry)
        headers: dict[str, str] = {}
        if reset_seconds is not None:
            headers = {
                "x-ratelimit-limit-requests": "3",
                "x-ratelimit-remaining-requests": "0",
                "x-ratelimit-reset-requests": retry,
                "x-ratelimit-limit-tokens": "40000",
                "x-ratelimit-remaining-tokens": "0" if status == 429 else "40000",
                "x-ratelimit-reset-tokens": retry,
            }
        return ErrorResponse(status, _error_body(text, type_, code), headers)

    def error_event(self, status: int, call: Call, message: str | None = None, *, first: bool = False) -> bytes:
        body = self.error(status, call, message).body
        return b"data: " + body + b"\n\n"

    def malformed_event(self, call: Call, *, first: bool = False) -> bytes:
        return b'data: {"id":"chatcmpl-sim","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"unterminated\n\n'

    def frame(self, event: Mapping[str, Any], call: Call) -> bytes:
        return b"data: " + orjson.dumps(event) + b"\n\n"

    # -- catalogue ------------------------------------------------------------------

    @staticmethod
    def _model(model: str) -> dict[str, Any]:
        return {"id": model, "object": "model", "created": 1715367049, "owned_by": "system"}

    def list_models(self, models: tuple[str, ...]) -> bytes:
        return orjson.dumps({"object": "list", "data": [self._model(m) for m in models]})

    def get_model(self, model: str) -> bytes:
        return orjson.dumps(self._model(model))

    def model_not_found(self, call: Call) -> ErrorResponse:
        if call.endpoint == GENERATE:
            return self.error(404, call)
        return ErrorResponse(404, _error_body(
            f"The model '{call.model}' does not exist", "invalid_request_error", "model_not_found", "model",
        ))
