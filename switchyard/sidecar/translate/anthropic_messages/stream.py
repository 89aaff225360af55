"""Anthropic SSE, both directions, in one module because they share the event grammar:
``message_start``, per block ``content_block_start`` / ``content_block_delta``... /
``content_block_stop``, ``message_delta`` (stop reason, usage), ``message_stop``;
``error`` events mid-stream.

- ``StreamEncoder`` is the ingress side: neutral events -> an Anthropic client's SSE.
- ``StreamDecoder`` is the egress side: an Anthropic tier's SSE -> neutral events, each
  with its exact bytes for same-protocol relay; ``ERROR_TYPES`` maps an in-stream
  error's type to a status.

Usage both ways, stop reasons and message ids come from ``_wire``, as whole answers use
them in ``ingress`` and ``egress``.
"""

from __future__ import annotations

from typing import Any

import orjson

from switchyard.sidecar.errors import ErrorKind, GatewayError, anthropic_error_body, clip

from .. import neutral as n
from ..base import DecodedEvent
from ..common import args_text, new_id
from ..sse import SSEDecoder, encode
from ._wire import FORMAT_TOOL, PROTOCOL, _finish_in, _message_id, _stop_out, _usage_in, _usage_out

# Anthropic error type -> (HTTP status, sidecar ErrorKind value), for in-stream errors.
ERROR_TYPES: dict[str, tuple[int, str]] = {
    "invalid_request_error": (400, "invalid_request"),
    "authentication_error": (401, "authentication"),
    "billing_error": (402, "permission"),
    "permission_error": (403, "permission"),
    "not_found_error": (404, "not_found"),
    "request_too_large": (413, "request_too_large"),
    "rate_limit_error": (429, "rate_limited"),
    "api_error": (500, "upstream"),
    "timeout_error": (504, "timeout"),
    "overloaded_error": (529, "overloaded"),
}


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return encode(orjson.dumps(data), event)


class StreamEncoder:
    """Neutral events -> Anthropic SSE for one response.

    Sequence: ``message_start`` (sent at the first content or finish, so usage known by
    then is in it), per block ``content_block_start`` / ``content_block_delta``... /
    ``content_block_stop``, then at ``finish()`` ``message_delta`` (stop reason,
    stop sequence, cumulative usage) and ``message_stop``. Only choice 0 is rendered
    (Anthropic has one answer per message)."""

    def __init__(self, *, alias: str, request: n.Request | None) -> None:
        self.id: str | None = None
        self.model = alias
        self.usage: n.Usage | None = None
        self.started = False
        self.index = -1  # index of the open block, -1 when none is open
        self.kind: tuple[Any, ...] | None = None  # ("text",) | ("thinking",) | ("tool", call)
        self.next_index = 0
        self.call_blocks: dict[int, int] = {}  # neutral call -> block index
        self.signed = False  # the open thinking block already got its signature
        self.called_tools = False
        self.reason: n.FinishReason | None = None
        self.stop_sequence: str | None = None

    def start(self) -> bytes:
        return b""

    def _message_start(self) -> bytes:
        if self.started:
            return b""
        self.started = True
        message = {
            "id": _message_id(self.id or ""),
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": _usage_out(self.usage),
        }
        return _sse("message_start", {"type": "message_start", "message": message})

    def _close(self) -> bytes:
        if self.kind is None:
            return b""
        out = _sse("content_block_stop", {"type": "content_block_stop", "index": self.index})
        self.kind = None
        return out

    def _open(self, kind: tuple[Any, ...], block: dict[str, Any]) -> bytes:
        out = self._close()
        self.index = self.next_index
        self.next_index += 1
        self.kind = kind
        self.signed = False
        return out + _sse("content_block_start", {"type": "content_block_start", "index": self.index, "content_block": block})

    def _delta(self, delta: dict[str, Any], index: int | None = None) -> bytes:
        i = self.index if index is None else index
        return _sse("content_block_delta", {"type": "content_block_delta", "index": i, "delta": delta})

    def encode(self, ev: n.Event) -> bytes:
        if isinstance(ev, n.StreamStart):
            self.id = self.id or ev.id
            if ev.model:
                self.model = ev.model
            return b""
        if isinstance(ev, n.StreamUsage):
            self.usage = ev.usage
            return b""
        if getattr(ev, "choice", 0) != 0 or isinstance(ev, n.StreamError):
            return b""
        out = self._message_start()
        if isinstance(ev, n.TextDelta):
            if not ev.text:
                return out
            if self.kind != ("text",):
                out += self._open(("text",), {"type": "text", "text": ""})
            return out + self._delta({"type": "text_delta", "text": ev.text})
        if isinstance(ev, n.ThinkingDelta):
            return out + self._thinking(ev)
        if isinstance(ev, n.ToolCallStart):
            self.called_tools = True
            out += self._open(("tool", ev.call), {"type": "tool_use", "id": ev.id, "name": ev.name, "input": {}})
            self.call_blocks[ev.call] = self.index
            return out
        if isinstance(ev, n.ToolCallDelta):
            if not ev.arguments:
                return out
            if ev.call not in self.call_blocks:  # arguments before the call's start: open it
                self.called_tools = True
                out += self._open(("tool", ev.call), {"type": "tool_use", "id": new_id("toolu_"), "name": "", "input": {}})
                self.call_blocks[ev.call] = self.index
            # A delta for a call whose block is already closed (an upstream interleaving
            # parallel calls) keeps that block's index: the SDK accumulates by index.
            return out + self._delta({"type": "input_json_delta", "partial_json": ev.arguments}, self.call_blocks[ev.call])
        if isinstance(ev, n.StreamFinish):
            self.reason = ev.reason
            self.stop_sequence = ev.stop_sequence
            return out + self._close()
        return out

    def _thinking(self, ev: n.ThinkingDelta) -> bytes:
        ours = ev.origin == PROTOCOL
        out = b""
        if ev.redacted is not None:
            if ours:  # opaque data only Anthropic can read back
                out += self._open(("redacted",), {"type": "redacted_thinking", "data": ev.redacted})
                out += self._close()
            return out
        if ev.text:
            if self.kind != ("thinking",) or self.signed:
                out += self._open(("thinking",), {"type": "thinking", "thinking": "", "signature": ""})
            out += self._delta({"type": "thinking_delta", "thinking": ev.text})
        if ev.signature and ours:
            if self.kind != ("thinking",) or self.signed:
                out += self._open(("thinking",), {"type": "thinking", "thinking": "", "signature": ""})
            out += self._delta({"type": "signature_delta", "signature": ev.signature})
            self.signed = True
        return out

    def finish(self) -> bytes:
        out = self._message_start() + self._close()
        stop = _stop_out(self.reason, self.stop_sequence, self.called_tools)
        usage = _usage_out(self.usage)
        delta = {"stop_reason": stop, "stop_sequence": self.stop_sequence if stop == "stop_sequence" else None}
        out += _sse("message_delta", {"type": "message_delta", "delta": delta, "usage": usage})
        return out + _sse("message_stop", {"type": "message_stop"})

    def error(self, status: int, kind: str, message: str) -> bytes:
        try:
            ek = ErrorKind(kind)
        except ValueError:
            ek = ErrorKind.UPSTREAM
        body = anthropic_error_body(GatewayError(ek, message, status=status))
        return _sse("error", body)


def _stream_error(err: Any) -> n.StreamError:
    err = err if isinstance(err, dict) else {}
    status, kind = ERROR_TYPES.get(str(err.get("type") or ""), (502, "upstream"))
    return n.StreamError(status, kind, clip(str(err.get("message") or err.get("type") or "error")))


class StreamDecoder:
    """Anthropic SSE -> neutral events, keeping each event's raw bytes.

    Reads every event type (``message_start``, ``content_block_start/delta/stop``,
    ``message_delta``, ``message_stop``, ``ping``, ``error``; unknown ones are kept as
    bytes with no meaning). ``complete`` turns true only at ``message_stop``."""

    def __init__(self) -> None:
        self._sse = SSEDecoder()
        self._blocks: dict[int, tuple[str, int]] = {}  # block index -> (kind, call)
        self._calls = 0
        self._real_calls = 0
        self._usage: dict[str, Any] = {}
        self.complete = False

    def feed(self, chunk: bytes) -> list[DecodedEvent]:
        return [self._event(e.data, e.raw) for e in self._sse.feed(chunk)]

    def close(self) -> list[DecodedEvent]:
        self._sse.flush()
        return []

    def _event(self, data: str, raw: bytes) -> DecodedEvent:
        try:
            obj = orjson.loads(data) if data else None
        except orjson.JSONDecodeError:
            return DecodedEvent([n.StreamError(502, "upstream", "upstream sent a malformed stream event")], b"")  # not forwardable: the client gets our error event
        if not isinstance(obj, dict):
            return DecodedEvent([], raw)
        kind = obj.get("type")
        if kind == "content_block_delta":
            return DecodedEvent(self._delta(obj), raw)
        if kind == "content_block_start":
            return DecodedEvent(self._start(obj), raw)
        if kind == "message_start":
            msg = obj.get("message") if isinstance(obj.get("message"), dict) else {}
            self._usage = dict(msg.get("usage") or {})
            events: list[n.Event] = [n.StreamStart(str(msg.get("id") or ""), str(msg.get("model") or ""))]
            usage = _usage_in(self._usage)
            if usage is not None:
                events.append(n.StreamUsage(usage))
            return DecodedEvent(events, raw)
        if kind == "message_delta":
            return DecodedEvent(self._message_delta(obj), raw)
        if kind == "message_stop":
            self.complete = True
            return DecodedEvent([], raw, terminal=True)
        if kind == "error":
            return DecodedEvent([_stream_error(obj.get("error"))], raw)
        return DecodedEvent([], raw)  # ping, content_block_stop, future event types

    def _start(self, obj: dict[str, Any]) -> list[n.Event]:
        index = int(obj.get("index") or 0)
        block = obj.get("content_block") if isinstance(obj.get("content_block"), dict) else {}
        kind = block.get("type")
        if kind == "text":
            self._blocks[index] = ("text", -1)
            return [n.TextDelta(block["text"])] if block.get("text") else []
        if kind == "thinking":
            self._blocks[index] = ("thinking", -1)
            sig = block.get("signature") if isinstance(block.get("signature"), str) else None
            if block.get("thinking") or sig:
                return [n.ThinkingDelta(str(block.get("thinking") or ""), sig or None, origin=PROTOCOL)]
            return []
        if kind == "redacted_thinking":
            self._blocks[index] = ("redacted", -1)
            return [n.ThinkingDelta(redacted=str(block.get("data") or ""), origin=PROTOCOL)]
        if kind == "tool_use":
            args = block.get("input")
            initial = args_text(args) if args else ""
            if block.get("name") == FORMAT_TOOL:
                self._blocks[index] = ("format", -1)
                return [n.TextDelta(initial)] if initial else []
            call = self._calls
            self._calls += 1
            self._real_calls += 1
            self._blocks[index] = ("tool", call)
            events: list[n.Event] = [n.ToolCallStart(call, str(block.get("id") or new_id("toolu_")), str(block.get("name") or ""))]
            if initial:
                events.append(n.ToolCallDelta(call, initial))
            return events
        self._blocks[index] = ("other", -1)  # server tool blocks: Anthropic-hosted, no neutral form
        return []

    def _delta(self, obj: dict[str, Any]) -> list[n.Event]:
        kind, call = self._blocks.get(int(obj.get("index") or 0), ("other", -1))
        delta = obj.get("delta") if isinstance(obj.get("delta"), dict) else {}
        dtype = delta.get("type")
        if dtype == "text_delta" and delta.get("text"):
            return [n.TextDelta(str(delta["text"]))]
        if dtype == "thinking_delta" and delta.get("thinking"):
            return [n.ThinkingDelta(str(delta["thinking"]), origin=PROTOCOL)]
        if dtype == "signature_delta" and delta.get("signature"):
            return [n.ThinkingDelta(signature=str(delta["signature"]), origin=PROTOCOL)]
        if dtype == "input_json_delta" and delta.get("partial_json"):
            if kind == "tool":
                return [n.ToolCallDelta(call, str(delta["partial_json"]))]
            if kind == "format":
                return [n.TextDelta(str(delta["partial_json"]))]
        return []  # citations_delta, empty fragments, deltas of server tool blocks

    def _message_delta(self, obj: dict[str, Any]) -> list[n.Event]:
        delta = obj.get("delta") if isinstance(obj.get("delta"), dict) else {}
        events: list[n.Event] = []
        if "stop_reason" in delta:
            seq = delta.get("stop_sequence")
            events.append(n.StreamFinish(_finish_in(delta.get("stop_reason"), self._real_calls == 0), 0, seq if isinstance(seq, str) else None))
        usage = obj.get("usage")
        if isinstance(usage, dict):
            # message_delta counts are cumulative and may omit what message_start said
            self._usage.update({k: v for k, v in usage.items() if v is not None})
            merged = _usage_in(self._usage)
            if merged is not None:
                events.append(n.StreamUsage(merged))
        return events
