"""The OpenAI Responses API on the wire (OpenAI, and openai-compatible servers that serve it).

Emulates `POST /v1/responses` (a `response` object, or an SSE stream of `response.*`
events, each `event: <type>` + `data:` with a `sequence_number`), `GET /v1/models` and
`GET /v1/models/{id}`, as the OpenAI API sends them (checked against the official
OpenAPI spec and the `openai` SDK's Responses types):

- a stream opens with `response.created` and `response.in_progress`; each output item
  has `response.output_item.added` / `.done`; text streams as
  `response.output_text.delta` inside `response.content_part.added` / `.done`;
  reasoning summaries as `response.reasoning_summary_text.delta`; function call
  arguments as `response.function_call_arguments.delta`; the stream ends with
  `response.completed` (or `response.incomplete` when cut by `max_output_tokens` or a
  content filter);
- reasoning: scripted thinking is a `reasoning` item, its summary shown when the request
  asks for one (`reasoning.summary`), its `encrypted_content` when the request's
  `include` lists `reasoning.encrypted_content`;
- an in-stream error is an `error` event followed by `response.failed`;
- errors are OpenAI's `{"error": {"message", "type", "param", "code"}}`.

What the real API refuses, and this emulation refuses too (so a gateway that sends it
fails here as it would in production): a missing `model` or `input`; a
`previous_response_id` (nothing is stored here: the API answers `previous_response_not_found`
for an id it does not have); `max_output_tokens` below 16; a `function_call_output`
whose `call_id` matches no `function_call` in the input; a reasoning item with an `id`
when `store` is false (the API looks the id up and answers 404); and a strict function
tool (`strict` true or absent: strict is the default on this API) whose parameters
schema is not strict (`additionalProperties: false` and every property required, on
every object).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import orjson

from .replies import Resolved, split_text
from .wire import GENERATE, GET_MODEL, LIST_MODELS, Call, ErrorResponse, StreamPlan, WireError, next_id
from .wire_openai import OpenAIWire, _error_body

__all__ = ["OpenAIResponsesWire"]

_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}
MIN_OUTPUT_TOKENS = 16
INCLUDE_ENCRYPTED = "reasoning.encrypted_content"


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") in ("input_text", "output_text", "text")]
        return " ".join(t for t in texts if isinstance(t, str))
    return ""


def _strict_schema_problem(schema: Any, where: str = "()") -> str | None:
    """Why a JSON schema is not valid in strict mode, or None (the API's wording)."""
    if not isinstance(schema, dict):
        return None
    if schema.get("type") == "object" or "properties" in schema:
        if schema.get("additionalProperties") is not False:
            return f"In context={where}, 'additionalProperties' is required to be supplied and to be false."
        props = schema.get("properties") or {}
        required = schema.get("required") or []
        missing = [k for k in props if k not in required]
        if missing:
            return f"In context={where}, 'required' is required to be supplied and to be an array including every key in properties. Missing '{missing[0]}'."
        for key, sub in props.items():
            problem = _strict_schema_problem(sub, f"('properties', '{key}')")
            if problem:
                return problem
    if isinstance(schema.get("items"), dict):
        return _strict_schema_problem(schema["items"], where)
    return None


class OpenAIResponsesWire(OpenAIWire):
    flavour = "openai-responses"

    def routes(self) -> list[tuple[str, str, str]]:
        return [
            ("POST", "/v1/responses", GENERATE),
            ("GET", "/v1/models", LIST_MODELS),
            ("GET", "/v1/models/{model:.+}", GET_MODEL),
        ]

    # -- requests -------------------------------------------------------------------

    def _refuse(self, message: str, param: str | None, code: str | None = None, status: int = 400) -> WireError:
        return WireError(ErrorResponse(status, _error_body(message, "invalid_request_error", code, param)))

    def parse(self, endpoint: str, path_model: str, query: Mapping[str, str], body: Any, path: str = "") -> Call:
        if endpoint != GENERATE:
            return Call(endpoint=endpoint, model=path_model)
        if not isinstance(body, dict):
            raise self._refuse("Invalid type for body: expected an object.", None)
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise self._refuse("Missing required parameter: 'model'.", "model", "missing_required_parameter")
        previous = body.get("previous_response_id")
        if previous is not None:
            raise self._refuse(f"Previous response with id '{previous}' not found.", "previous_response_id", "previous_response_not_found")
        items = body.get("input")
        if items is None:
            raise self._refuse("Missing required parameter: 'input'.", "input", "missing_required_parameter")
        if not isinstance(items, (str, list)):
            raise self._refuse("Invalid type for 'input': expected one of a string or an array of input items.", "input", "invalid_type")
        max_out = body.get("max_output_tokens")
        if isinstance(max_out, int) and not isinstance(max_out, bool) and max_out < MIN_OUTPUT_TOKENS:
            raise self._refuse(
                f"Invalid 'max_output_tokens': integer below minimum value. Expected a value >= {MIN_OUTPUT_TOKENS}, but got {max_out} instead.",
                "max_output_tokens", "integer_below_min_value",
            )
        for i, tool in enumerate(body.get("tools") or ()):
            if isinstance(tool, dict) and tool.get("type") == "function" and tool.get("strict", True) is not False:
                problem = _strict_schema_problem(tool.get("parameters") or {"type": "object", "properties": {}})
                if problem:
                    raise self._refuse(f"Invalid schema for function '{tool.get('name')}': {problem}", f"tools[{i}].parameters", "invalid_function_parameters")
        user_text = items if isinstance(items, str) else ""
        if isinstance(items, list):
            calls = {i.get("call_id") for i in items if isinstance(i, dict) and i.get("type") == "function_call"}
            store = body.get("store", True) is not False
            for i, item in enumerate(items):
                if not isinstance(item, dict):
                    raise self._refuse(f"Invalid type for 'input[{i}]': expected an object.", f"input[{i}]", "invalid_type")
                kind = item.get("type", "message")
                if kind == "function_call_output" and item.get("call_id") not in calls:
                    raise self._refuse(f"No tool call found for function call output with call_id {item.get('call_id')}.", "input")
                if kind == "reasoning" and item.get("id") and not store:
                    raise self._refuse(
                        f"Item with id '{item['id']}' not found. Items are not persisted when `store` is set to false. "
                        "Try again with `store` set to true, or remove this item from your input.",
                        "input", status=404,
                    )
                if kind == "message" and item.get("role") not in ("user", "assistant", "system", "developer"):
                    raise self._refuse(f"Invalid value: '{item.get('role')}'. Supported values are: 'assistant', 'system', 'developer', and 'user'.", f"input[{i}].role", "invalid_value")
                if kind == "message" and item.get("role") == "user":
                    user_text = _text_of(item.get("content"))
        reasoning = body.get("reasoning")
        reasoning = reasoning if isinstance(reasoning, dict) else {}
        include = body.get("include") if isinstance(body.get("include"), list) else []
        call = Call(
            endpoint=GENERATE,
            model=model,
            stream=body.get("stream") is True,
            body=body,
            has_tools=any(isinstance(t, dict) and t.get("type") == "function" for t in body.get("tools") or ()),
            wants_thinking=bool(reasoning.get("summary")) and reasoning.get("effort") != "none",
            user_text=user_text,
        )
        call.include_encrypted = INCLUDE_ENCRYPTED in include
        return call

    # -- answers --------------------------------------------------------------------

    @staticmethod
    def _encrypted(reply: Resolved, call: Call) -> str | None:
        if not call.include_encrypted or not reply.signature:
            return None
        return "gAAAAsim" + reply.signature

    def _items(self, reply: Resolved, call: Call) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        enc = self._encrypted(reply, call)
        if reply.thinking or enc:
            item: dict[str, Any] = {"id": f"rs_sim{next_id():020d}", "type": "reasoning",
                                    "summary": [{"type": "summary_text", "text": reply.thinking}] if reply.thinking else []}
            if enc:
                item["encrypted_content"] = enc
            items.append(item)
        status = "incomplete" if reply.finish in _INCOMPLETE else "completed"
        if reply.text or not reply.tool_calls:
            items.append({"id": f"msg_sim{next_id():020d}", "type": "message", "status": status, "role": "assistant",
                          "content": [{"type": "output_text", "text": reply.text, "annotations": [], "logprobs": []}]})
        for tool in reply.tool_calls:
            items.append({"id": f"fc_sim{next_id():020d}", "type": "function_call", "status": "completed",
                          "arguments": tool.arguments_json(), "call_id": tool.id or f"call_sim{next_id():019d}", "name": tool.name})
        return items

    def _response(self, rid: str, call: Call, status: str, output: list[dict[str, Any]], reply: Resolved | None) -> dict[str, Any]:
        body = call.body if isinstance(call.body, dict) else {}
        incomplete = _INCOMPLETE.get(reply.finish) if reply is not None else None
        usage = None
        if reply is not None and status != "in_progress":
            output_tokens = reply.output_tokens + reply.reasoning_tokens
            usage = {
                "input_tokens": reply.input_tokens, "input_tokens_details": {"cached_tokens": reply.cached_tokens},
                "output_tokens": output_tokens, "output_tokens_details": {"reasoning_tokens": reply.reasoning_tokens},
                "total_tokens": reply.input_tokens + output_tokens,
            }
        return {
            "id": rid, "object": "response", "created_at": int(time.time()), "status": status,
            "background": False, "error": None,
            "incomplete_details": {"reason": incomplete} if status == "incomplete" else None,
            "instructions": body.get("instructions"), "max_output_tokens": body.get("max_output_tokens"),
            "model": call.model, "output": output, "parallel_tool_calls": body.get("parallel_tool_calls", True),
            "previous_response_id": None, "reasoning": {"effort": (body.get("reasoning") or {}).get("effort"), "summary": None},
            "service_tier": "default", "store": body.get("store", True), "temperature": 1.0,
            "text": {"format": {"type": "text"}}, "tool_choice": body.get("tool_choice", "auto"), "tools": body.get("tools", []),
            "top_p": 1.0, "truncation": "disabled", "usage": usage, "user": None, "metadata": body.get("metadata") or {},
        }

    def render(self, reply: Resolved, call: Call, provider: str, reasoning_field: str | None) -> bytes:
        status = "incomplete" if reply.finish in _INCOMPLETE else "completed"
        return orjson.dumps(self._response(f"resp_sim{next_id():020d}", call, status, self._items(reply, call), reply))

    def stream(self, reply: Resolved, call: Call, provider: str, reasoning_field: str | None) -> StreamPlan:
        rid = f"resp_sim{next_id():020d}"
        seq = iter(range(1 << 30))

        def event(kind: str, **fields: Any) -> bytes:
            data = {"type": kind, "sequence_number": next(seq), **fields}
            return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"

        plan = StreamPlan()
        start = self._response(rid, call, "in_progress", [], reply)
        plan.head += [event("response.created", response=start), event("response.in_progress", response=start)]
        pending = b""  # structural events glued to the next content chunk
        items = self._items(reply, call)
        for idx, item in enumerate(items):
            kind = item["type"]
            if kind == "reasoning":
                pending += event("response.output_item.added", output_index=idx, item={"id": item["id"], "type": "reasoning", "summary": []})
                if reply.thinking:
                    part = {"type": "summary_text", "text": ""}
                    pending += event("response.reasoning_summary_part.added", item_id=item["id"], output_index=idx, summary_index=0, part=part)
                    for piece in reply.thinking_pieces:
                        plan.chunks.append(pending + event("response.reasoning_summary_text.delta", item_id=item["id"], output_index=idx, summary_index=0, delta=piece))
                        pending = b""
                    pending += event("response.reasoning_summary_text.done", item_id=item["id"], output_index=idx, summary_index=0, text=reply.thinking)
                    pending += event("response.reasoning_summary_part.done", item_id=item["id"], output_index=idx, summary_index=0, part={**part, "text": reply.thinking})
            elif kind == "message":
                added = {"id": item["id"], "type": "message", "status": "in_progress", "content": [], "role": "assistant"}
                pending += event("response.output_item.added", output_index=idx, item=added)
                part = {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}
                pending += event("response.content_part.added", item_id=item["id"], output_index=idx, content_index=0, part=part)
                for piece in reply.text_pieces:
                    plan.chunks.append(pending + event("response.output_text.delta", item_id=item["id"], output_index=idx, content_index=0, delta=piece, logprobs=[]))
                    pending = b""
                pending += event("response.output_text.done", item_id=item["id"], output_index=idx, content_index=0, text=reply.text, logprobs=[])
                pending += event("response.content_part.done", item_id=item["id"], output_index=idx, content_index=0, part={**part, "text": reply.text})
            else:
                pending += event("response.output_item.added", output_index=idx, item={**item, "status": "in_progress", "arguments": ""})
                for piece in split_text(item["arguments"], max(1, len(reply.text_pieces))) or [""]:
                    plan.chunks.append(pending + event("response.function_call_arguments.delta", item_id=item["id"], output_index=idx, delta=piece))
                    pending = b""
                pending += event("response.function_call_arguments.done", item_id=item["id"], output_index=idx, arguments=item["arguments"])
            pending += event("response.output_item.done", output_index=idx, item=item)
        status = "incomplete" if reply.finish in _INCOMPLETE else "completed"
        final = self._response(rid, call, status, items, reply)
        plan.tail.append(pending + event(f"response.{status}", response=final))
        return plan

    # -- errors ---------------------------------------------------------------------

    def error_event(self, status: int, call: Call, message: str | None = None, *, first: bool = False) -> bytes:
        """An `error` event then `response.failed` (its `error` set), as the API ends a
        stream that fails; neither is followed by `response.completed`."""
        err = orjson.loads(self.error(status, call, message).body)["error"]
        code = err.get("code") or ("rate_limit_exceeded" if status == 429 else "server_error")
        data = {"type": "error", "code": code, "message": err["message"], "param": None, "sequence_number": 0}
        failed = self._response(f"resp_sim{next_id():020d}", call, "failed", [], None)
        failed["error"] = {"code": code, "message": err["message"]}
        return (
            b"event: error\ndata: " + orjson.dumps(data) + b"\n\n"
            + b"event: response.failed\ndata: " + orjson.dumps({"type": "response.failed", "sequence_number": 0, "response": failed}) + b"\n\n"
        )

    def malformed_event(self, call: Call, *, first: bool = False) -> bytes:
        return b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","delta":"unterminated\n\n'

    def frame(self, event: Mapping[str, Any], call: Call) -> bytes:
        kind = str(event.get("type") or "message")
        return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"
