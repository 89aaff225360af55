"""Gemini (Google AI `generativelanguage` API) on the wire.

Emulates, under `/v1beta` (and `/v1`):
`POST models/{model}:generateContent`, `:streamGenerateContent` (with `alt=sse`: SSE
frames `data: {...}` ended by CRLF CRLF, no terminator event; without it: one JSON
array written element by element, `[{…}\\n,\\r\\n{…}\\n]`), `:countTokens`,
`GET models` and `GET models/{model}` — as the Gemini API sends them (checked against
Google's docs, observed traffic and the `google-genai` SDK's stream parser):

- a response is `{"candidates": [{"content": {"parts": [...], "role": "model"},
  "finishReason", "index": 0}], "usageMetadata", "modelVersion", "responseId"}`;
  zero-valued counts are omitted, as proto3 JSON does;
- parts are `{"text"}`, thought summaries `{"text", "thought": true}` (only when
  `thinkingConfig.includeThoughts` is set), and `{"functionCall": {"name", "args"}}`;
  a signature rides on the first function call (else the first text) as
  `thoughtSignature`, even when thoughts are hidden;
- in a stream every chunk carries `usageMetadata`, cumulative (the last one has the
  totals), and the last content chunk carries `finishReason`;
- an empty answer is a candidate whose content has no `parts` (seen in the wild);
- errors are `{"error": {"code", "message", "status", "details"?}}`; a 429 is
  `RESOURCE_EXHAUSTED` with `QuotaFailure`/`Help` details and, when a retry delay is
  known, a `google.rpc.RetryInfo` `retryDelay`. Gemini sends no `Retry-After` header.
- a wrong API key is a 400 `INVALID_ARGUMENT` (`API_KEY_INVALID`), a missing one a 403
  `PERMISSION_DENIED`: Gemini never answers 401 for API keys (401 `UNAUTHENTICATED`
  is for OAuth tokens, and is what the `401` fault sends).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from .replies import Resolved
from .wire import (
    COUNT_TOKENS,
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
)

__all__ = ["GeminiWire"]

_FINISH = {
    "stop": "STOP",
    "length": "MAX_TOKENS",
    "tool_calls": "STOP",
    "content_filter": "SAFETY",
    "stop_sequence": "STOP",
}

_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
    529: "UNAVAILABLE",
}

_MESSAGES = {
    400: "Request contains an invalid argument.",
    401: (
        "Request had invalid authentication credentials. Expected OAuth 2 access token, login "
        "cookie or other valid authentication credential. See "
        "https://developers.google.com/identity/sign-in/web/devconsole-project."
    ),
    403: "The caller does not have permission",
    404: (
        "models/{model} is not found for API version {version}, or is not supported for "
        "generateContent. Call ListModels to see the list of available models and their "
        "supported methods."
    ),
    429: (
        "You exceeded your current quota, please check your plan and billing details. For more "
        "information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits."
    ),
    500: (
        "An internal error has occurred. Please retry or report in "
        "https://developers.generativeai.google/guide/troubleshooting"
    ),
    503: "The model is overloaded. Please try again later.",
    504: "Deadline expired before operation could complete.",
}

_ACTIONS = {
    "generateContent": (GENERATE, False),
    "streamGenerateContent": (GENERATE, True),
    "countTokens": (COUNT_TOKENS, False),
    "embedContent": (EMBED, False),
    "batchEmbedContents": (EMBED, False),
}

_ARRAY_SEP = b"\n,\r\n"
_INDENT = orjson.OPT_INDENT_2


def _field(data: Mapping[str, Any], camel: str, snake: str) -> Any:
    """A request field by either JSON name: Google APIs accept both (the google-genai
    SDK itself sends `thinkingConfig.include_thoughts`)."""
    value = data.get(camel)
    return data.get(snake) if value is None else value


def _duration(seconds: float) -> str:
    """protobuf Duration JSON: "5s", "1.5s"."""
    if float(seconds).is_integer():
        return f"{int(seconds)}s"
    return f"{seconds:.3f}".rstrip("0") + "s"


class GeminiWire(Wire):
    flavour = "gemini"
    json_type = "application/json; charset=UTF-8"
    stream_type = "text/event-stream"
    request_id_header = ""
    default_models = ("gemini-2.5-flash", "gemini-3.1-pro", "gemini-3.1-flash-lite")

    def routes(self) -> list[tuple[str, str, str]]:
        routes = []
        for version in ("v1beta", "v1"):
            routes += [
                ("POST", f"/{version}/models/{{model}}", "dispatch"),
                ("GET", f"/{version}/models", LIST_MODELS),
                ("GET", f"/{version}/models/{{model}}", GET_MODEL),
            ]
        return routes

    def stream_content_type(self, call: Call) -> str:
        return self.stream_type if call.sse else self.json_type

    # -- requests -------------------------------------------------------------------

    def parse(self, endpoint: str, path_model: str, query: Mapping[str, str], body: Any, path: str = "") -> Call:
        version = "v1" if "/v1/models" in path else "v1beta"
        if endpoint != "dispatch":
            return Call(endpoint=endpoint, model=path_model.removeprefix("models/"), api_version=version)
        model, _, action = path_model.rpartition(":")
        kind = _ACTIONS.get(action)
        if not model or kind is None:
            call = Call(endpoint=GENERATE, model=model or path_model, api_version=version)
            raise WireError(self.error(404, call, f"Method not found: {action or path_model}"))
        endpoint, stream = kind
        if not isinstance(body, dict):
            raise WireError(self.error(400, Call(endpoint, model, api_version=version), "Invalid JSON payload received. Expected an object."))
        if endpoint == EMBED:
            return self._parse_embed(model, body, version, single=action == "embedContent")
        if endpoint == COUNT_TOKENS:
            request = _field(body, "generateContentRequest", "generate_content_request")
            request = request if isinstance(request, dict) else body
        else:
            request = body
        contents = request.get("contents")
        if endpoint == GENERATE and not isinstance(contents, list):
            raise WireError(self.error(400, Call(endpoint, model, api_version=version), "* GenerateContentRequest.contents: contents is not specified\n"))
        user_text = ""
        for content in reversed(contents or ()):
            if isinstance(content, dict) and content.get("role", "user") == "user":
                parts = content.get("parts") or ()
                user_text = " ".join(
                    p["text"] for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str)
                )
                break
        config = _field(request, "generationConfig", "generation_config")
        thinking = _field(config, "thinkingConfig", "thinking_config") if isinstance(config, dict) else None
        return Call(
            endpoint=endpoint,
            model=model,
            stream=stream,
            body=body,
            sse=query.get("alt") == "sse",
            has_tools=bool(request.get("tools")),
            wants_thinking=isinstance(thinking, dict) and _field(thinking, "includeThoughts", "include_thoughts") is True,
            user_text=user_text,
            api_version=version,
        )

    def _parse_embed(self, model: str, body: dict[str, Any], version: str, *, single: bool) -> Call:
        """`:embedContent` / `:batchEmbedContents`, refused as Gemini refuses them: no
        content, a content without text, more than 100 requests, a request naming
        another model, an outputDimensionality that is not positive."""
        call = Call(EMBED, model, api_version=version, single=single)

        def bad(message: str) -> WireError:
            return WireError(self.error(400, call, message))

        if single:
            requests, where = [body], "EmbedContentRequest"
        else:
            requests, where = _field(body, "requests", "requests"), "BatchEmbedContentsRequest.requests"
            if not isinstance(requests, list) or not requests:
                raise bad(f"* {where}: requests is not specified\n")
            if len(requests) > 100:
                raise bad(f"* {where}: at most 100 requests can be in one batch\n")
        inputs, dims = [], None
        for i, r in enumerate(requests):
            at = where if single else f"{where}[{i}]"
            if not isinstance(r, dict):
                raise bad(f"Invalid JSON payload received. Expected an object at {at}.")
            named = r.get("model")
            if not single and named != f"models/{model}":
                raise bad(f"* {at}.model: model in the request ({named}) does not match the model in the path (models/{model})\n")
            content = r.get("content")
            parts = content.get("parts") if isinstance(content, dict) else None
            texts = [p["text"] for p in parts or () if isinstance(p, dict) and isinstance(p.get("text"), str)]
            if not texts or not "".join(texts):
                raise bad(f"* {at}.content: contents is not specified\n")
            inputs.append(" ".join(texts))
            d = _field(r, "outputDimensionality", "output_dimensionality")
            if d is not None and (type(d) is not int or d < 1):
                raise bad(f"* {at}.output_dimensionality: must be positive\n")
            dims = d if d is not None else dims
        return Call(EMBED, model, body=body, api_version=version, inputs=tuple(inputs), dimensions=dims, single=single)

    def embeddings(self, call: Call, size: int) -> bytes | ErrorResponse:
        if call.dimensions is not None and call.dimensions > size:
            return self.error(400, call, f"* output_dimensionality: must be at most {size}\n")
        vectors = [{"values": embedding_vector(call.model, t, size, call.dimensions)} for t in call.inputs]
        return orjson.dumps({"embedding": vectors[0]} if call.single else {"embeddings": vectors}, option=_INDENT)

    def check_key(self, headers: Mapping[str, str], query: Mapping[str, str], key: str) -> ErrorResponse | None:
        given = headers.get("x-goog-api-key") or query.get("key")
        if given == key:
            return None
        if not given:
            return ErrorResponse(403, self._error_body(
                403,
                "Method doesn't allow unregistered callers (callers without established identity). "
                "Please use API Key or other form of API consumer identity to call this API.",
            ))
        message = "API key not valid. Please pass a valid API key."
        return ErrorResponse(400, self._error_body(400, message, [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
                "metadata": {"service": "generativelanguage.googleapis.com"},
            },
            {"@type": "type.googleapis.com/google.rpc.LocalizedMessage", "locale": "en-US", "message": message},
        ]))

    def bad_json(self, detail: str) -> ErrorResponse:
        return ErrorResponse(400, self._error_body(400, f"Invalid JSON payload received. {detail}"))

    # -- answers --------------------------------------------------------------------

    @staticmethod
    def _usage(r: Resolved, share: float = 1.0) -> dict[str, Any]:
        """usageMetadata after `share` of the answer: counts are cumulative in a stream,
        so the last chunk's are the totals (summing them would be wrong, as upstream)."""
        output = -(-r.output_tokens * share // 1) if share < 1 else r.output_tokens
        thoughts = r.reasoning_tokens if share >= 1 else 0
        usage: dict[str, Any] = {"promptTokenCount": r.input_tokens}
        if output:
            usage["candidatesTokenCount"] = int(output)
        usage["totalTokenCount"] = r.input_tokens + int(output) + thoughts
        if r.cached_tokens:
            usage["cachedContentTokenCount"] = r.cached_tokens
        usage["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": r.input_tokens}]
        if thoughts:
            usage["thoughtsTokenCount"] = thoughts
        return usage

    @staticmethod
    def _calls(reply: Resolved) -> list[dict[str, Any]]:
        parts = []
        for tool in reply.tool_calls:
            call: dict[str, Any] = {"name": tool.name, "args": tool.arguments_object()}
            if tool.id:
                call["id"] = tool.id
            parts.append({"functionCall": call})
        return parts

    def _response(self, parts: list[dict[str, Any]] | None, finish: str | None, usage: dict[str, Any], call: Call, response_id: str) -> dict[str, Any]:
        content: dict[str, Any] = {"parts": parts, "role": "model"} if parts else {"role": "model"}
        candidate: dict[str, Any] = {"content": content}
        if finish:
            candidate["finishReason"] = finish
        candidate["index"] = 0
        return {
            "candidates": [candidate],
            "usageMetadata": usage,
            "modelVersion": call.model,
            "responseId": response_id,
        }

    def render(self, reply: Resolved, call: Call, provider: str, reasoning_field: str | None) -> bytes:
        parts: list[dict[str, Any]] = []
        if reply.thinking:
            parts.append({"text": reply.thinking, "thought": True})
        calls = self._calls(reply)
        if reply.text:
            parts.append({"text": reply.text})
        parts += calls
        if reply.signature:
            target = calls[0] if calls else next((p for p in parts if not p.get("thought")), None)
            if target is None:
                target = {"text": ""}
                parts.append(target)
            target["thoughtSignature"] = reply.signature
        body = self._response(parts, _FINISH.get(reply.finish, reply.finish), self._usage(reply), call, f"sim{next_id():020d}")
        return orjson.dumps(body, option=_INDENT)

    def stream(self, reply: Resolved, call: Call, provider: str, reasoning_field: str | None) -> StreamPlan:
        response_id = f"sim{next_id():020d}"
        pieces: list[list[dict[str, Any]]] = [[{"text": p, "thought": True}] for p in reply.thinking_pieces]
        text_start = len(pieces)
        pieces += [[{"text": p}] for p in reply.text_pieces]
        calls = self._calls(reply)
        if calls:
            pieces.append(calls)
        if reply.signature:
            if calls:
                calls[0]["thoughtSignature"] = reply.signature
            elif len(pieces) > text_start:
                pieces[text_start][0]["thoughtSignature"] = reply.signature
            else:
                pieces.append([{"text": "", "thoughtSignature": reply.signature}])
        finish = _FINISH.get(reply.finish, reply.finish)
        plan = StreamPlan()
        if not call.sse:
            plan.head.append(b"[")
        if not pieces:
            pieces.append([])  # the envelope: a candidate with no parts
        last = len(pieces) - 1
        # SSE chunks before the last differ only in parts and usage: a prebuilt frame.
        suffix = b',"modelVersion":%b,"responseId":"%b"}\r\n\r\n' % (orjson.dumps(call.model), response_id.encode())
        for index, parts in enumerate(pieces):
            usage = self._usage(reply, (index + 1) / (last + 1))
            if call.sse and index < last:
                frame = b'data: {"candidates":[{"content":{"parts":%b,"role":"model"},"index":0}],"usageMetadata":%b%b' % (
                    orjson.dumps(parts), orjson.dumps(usage), suffix,
                )
            else:
                body = self._response(parts, finish if index == last else None, usage, call, response_id)
                if call.sse:
                    frame = b"data: " + orjson.dumps(body) + b"\r\n\r\n"
                else:
                    frame = (_ARRAY_SEP if index else b"") + orjson.dumps(body, option=_INDENT)
            (plan.chunks if parts else plan.tail).append(frame)
        if not call.sse:
            plan.tail.append(b"\n]")
        return plan

    # -- errors ---------------------------------------------------------------------

    @staticmethod
    def _error_body(status: int, message: str, details: list[dict[str, Any]] | None = None, *, indent: bool = True) -> bytes:
        error: dict[str, Any] = {"code": status, "message": message, "status": _STATUS.get(status, "INTERNAL" if status >= 500 else "INVALID_ARGUMENT")}
        if details:
            error["details"] = details
        return orjson.dumps({"error": error}, option=_INDENT if indent else 0)

    def _error_parts(self, status: int, call: Call, message: str | None, reset_seconds: float | None) -> tuple[str, list[dict[str, Any]] | None]:
        text = message or _MESSAGES.get(status, f"Simulated error {status}.").format(
            model=call.model or "gemini-2.5-flash", version=call.api_version
        )
        details = None
        if status == 429:
            if reset_seconds is not None and not message:
                text += f" Please retry in {_duration(reset_seconds)}."
            details = [
                {
                    "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                    "violations": [{
                        "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                        "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
                        "quotaDimensions": {"location": "global", "model": call.model or "gemini-2.5-flash"},
                        "quotaValue": "10",
                    }],
                },
                {
                    "@type": "type.googleapis.com/google.rpc.Help",
                    "links": [{"description": "Learn more about Gemini API quotas", "url": "https://ai.google.dev/gemini-api/docs/rate-limits"}],
                },
            ]
            if reset_seconds is not None:
                details.append({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": _duration(reset_seconds)})
        return text, details

    def error(self, status: int, call: Call, message: str | None = None, reset_seconds: float | None = None) -> ErrorResponse:
        text, details = self._error_parts(status, call, message, reset_seconds)
        return ErrorResponse(status, self._error_body(status, text, details))

    def error_event(self, status: int, call: Call, message: str | None = None, *, first: bool = False) -> bytes:
        text, details = self._error_parts(status, call, message, None)
        if call.sse:
            return b"data: " + self._error_body(status, text, details, indent=False) + b"\r\n\r\n"
        return (b"" if first else _ARRAY_SEP) + self._error_body(status, text, details) + b"\n]"

    def malformed_event(self, call: Call, *, first: bool = False) -> bytes:
        broken = b'{"candidates": [{"content": {"parts": [{"text": "unterminated'
        if call.sse:
            return b"data: " + broken + b"\r\n\r\n"
        return (b"" if first else _ARRAY_SEP) + broken

    def frame(self, event: Mapping[str, Any], call: Call) -> bytes:
        return b"data: " + orjson.dumps(event) + b"\r\n\r\n"

    # -- catalogue ------------------------------------------------------------------

    @staticmethod
    def _model(model: str) -> dict[str, Any]:
        return {
            "name": f"models/{model}",
            "version": "001",
            "displayName": model.replace("-", " ").title(),
            "description": f"Simulated {model}.",
            "inputTokenLimit": 1048576,
            "outputTokenLimit": 65536,
            "supportedGenerationMethods": ["generateContent", "countTokens", "createCachedContent", "batchGenerateContent"],
            "temperature": 1,
            "topP": 0.95,
            "topK": 64,
            "maxTemperature": 2,
            "thinking": True,
        }

    def list_models(self, models: tuple[str, ...]) -> bytes:
        return orjson.dumps({"models": [self._model(m) for m in models]}, option=_INDENT)

    def get_model(self, model: str) -> bytes:
        return orjson.dumps(self._model(model.removeprefix("models/")), option=_INDENT)

    def model_not_found(self, call: Call) -> ErrorResponse:
        if call.endpoint == GET_MODEL:
            return ErrorResponse(404, self._error_body(404, f"models/{call.model} is not found for API version {call.api_version}, or is not supported for get. Call ListModels to see the list of available models and their supported methods."))
        return self.error(404, call)

    def count_tokens(self, call: Call, tokens: int) -> bytes:
        return orjson.dumps({"totalTokens": tokens, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": tokens}]}, option=_INDENT)
