"""Chat Completions SSE, both directions: ``chat.completion.chunk`` events ended by
``data: [DONE]`` (an error mid-stream is a ``data: {"error": ...}`` chunk, never
followed by ``[DONE]``).

- ``StreamEncoder`` is the ingress side: neutral events -> a Chat Completions client's
  chunks.
- ``StreamDecoder`` is the egress side: a Chat Completions tier's chunks -> neutral
  events, each with its exact bytes for same-protocol relay.

The finish-reason tables and usage both ways come from ``_wire``, as whole answers use
them in ``ingress`` and ``egress``.
"""

from __future__ import annotations

from typing import Any

import orjson

from switchyard.sidecar.errors import ErrorKind, GatewayError, clip, openai_error_object

from .. import neutral as n
from ..base import DecodedEvent
from ..common import new_id, now
from ..sse import SSEDecoder, encode
from ._wire import FINISH_IN, FINISH_OUT, PROTOCOL, _usage_in, _usage_out


class StreamEncoder:
    """Neutral events -> ``chat.completion.chunk`` SSE, for one response."""

    def __init__(self, *, alias: str, request: n.Request | None) -> None:
        self.id = new_id("chatcmpl-")
        self.model = alias
        self.created = now()
        self.include_usage = bool(request and request.stream_usage)
        self.usage: n.Usage | None = None
        self.started: set[int] = set()
        # (choice, call) of tool calls that have had no argument text yet: a call that
        # ends that way is sent "{}" (what the whole answer says; "" breaks json.loads)
        self._no_arguments: set[tuple[int, int]] = set()

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
        if choice not in self.started:
            self.started.add(choice)
            delta = {"role": "assistant", **delta}
        return self._chunk([{"index": choice, "delta": delta, "finish_reason": finish, "logprobs": None}])

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
            self._no_arguments.add((ev.choice, ev.call))
            return self._delta(ev.choice, {"tool_calls": [call]})
        if isinstance(ev, n.ToolCallDelta):
            if not ev.arguments:
                return b""
            self._no_arguments.discard((ev.choice, ev.call))
            return self._delta(ev.choice, {"tool_calls": [{"index": ev.call, "function": {"arguments": ev.arguments}}]})
        if isinstance(ev, n.StreamFinish):
            empty = sorted(c for ch, c in self._no_arguments if ch == ev.choice)
            out = b"".join(
                self._delta(ev.choice, {"tool_calls": [{"index": c, "function": {"arguments": "{}"}}]}) for c in empty
            )
            self._no_arguments -= {(ev.choice, c) for c in empty}
            return out + self._delta(ev.choice, {}, FINISH_OUT.get(ev.reason, "stop") or "stop")
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
