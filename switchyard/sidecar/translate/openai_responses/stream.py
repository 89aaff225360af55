"""Responses streams, both directions: ``response.*`` events (``event:`` + ``data:``
lines, each with a ``sequence_number``), ending with ``response.completed``,
``response.incomplete`` or, after a failure, ``error`` + ``response.failed``.

- ``StreamEncoder`` is the ingress side: neutral events -> a Responses client's events.
- ``StreamDecoder`` is the egress side: a Responses tier's events -> neutral events,
  each with its exact bytes for same-protocol relay.

The ``response`` snapshot and item shapes come from ``_wire``, as ``ingress`` builds the
same ones for a whole answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from switchyard.sidecar.errors import clip

from .. import neutral as n
from ..base import DecodedEvent
from ..common import new_id, now
from ..sse import SSEDecoder, encode
from ._wire import (
    _INCOMPLETE,
    FINISH_IN_INCOMPLETE,
    PROTOCOL,
    _blob,
    _call_item,
    _echo,
    _message_item,
    _reasoning_item,
    _response,
    summary_text,
    usage_in,
)


@dataclass(slots=True)
class _Item:
    """One output item being streamed."""

    kind: str  # "message" | "reasoning" | "function_call"
    id: str
    index: int
    text: str = ""
    call_id: str = ""
    name: str = ""
    origin: str | None = None
    signature: str | None = None
    redacted: str | None = None
    summary_open: bool = False
    status: str = "in_progress"  # "completed" or "incomplete" once its done events are out

    def body(self, status: str) -> dict[str, Any]:
        if self.kind == "message":
            return _message_item(self.id, self.text, status)
        if self.kind == "function_call":
            return _call_item(self.id, self.call_id, self.name, self.text or "{}", status)
        blob = _blob(self.origin, self.signature, self.redacted) if self.signature or self.redacted else None
        return _reasoning_item(self.id, self.text, blob)


class StreamEncoder:
    """Neutral events -> ``response.*`` SSE events, for one response.

    Output items are streamed one at a time, in the order their content arrives: a
    reasoning item while thinking arrives, a message while text arrives, one
    function_call item per tool call. An item is closed (its ``*.done`` events) when
    the next one opens or the stream finishes.
    """

    def __init__(self, *, alias: str, request: n.Request | None) -> None:
        self.id = new_id("resp_")
        self.created_at = now()
        self.model = alias
        self.echo = _echo(request)
        self.seq = 0
        self.opened = False
        self.items: list[_Item] = []
        self.current: _Item | None = None
        self.calls: dict[int, _Item] = {}
        self.reason: n.FinishReason | None = None
        self.usage: n.Usage | None = None

    # ---- framing

    def _ev(self, kind: str, **fields: Any) -> bytes:
        body = {"type": kind, "sequence_number": self.seq, **fields}
        self.seq += 1
        return encode(orjson.dumps(body), event=kind)

    def _snapshot(self, status: str, **kw: Any) -> dict[str, Any]:
        # items still open in a final snapshot were cut short (a failed stream)
        output = [it.body("incomplete" if it.status == "in_progress" else it.status) for it in self.items]
        if status == "in_progress":
            output = []
        return _response(rid=self.id, created_at=self.created_at, model=self.model, status=status, output=output, echo=self.echo, **kw)

    def _open(self) -> bytes:
        if self.opened:
            return b""
        self.opened = True
        snap = self._snapshot("in_progress")
        return self._ev("response.created", response=snap) + self._ev("response.in_progress", response=snap)

    def _new(self, kind: str, prefix: str) -> _Item:
        item = _Item(kind, new_id(prefix), len(self.items))
        self.items.append(item)
        return item

    def _added(self, item: _Item) -> bytes:
        added: dict[str, Any]
        if item.kind == "message":
            added = {"id": item.id, "type": "message", "status": "in_progress", "role": "assistant", "content": []}
        elif item.kind == "function_call":
            added = _call_item(item.id, item.call_id, item.name, "", "in_progress")
        else:
            added = {"id": item.id, "type": "reasoning", "summary": []}
        return self._ev("response.output_item.added", output_index=item.index, item=added)

    def _close(self, status: str = "completed") -> bytes:
        item, self.current = self.current, None
        if item is None or item.status != "in_progress":
            return b""
        item.status = status
        out = b""
        if item.kind == "message":
            part = {"type": "output_text", "text": item.text, "annotations": [], "logprobs": []}
            out += self._ev("response.output_text.done", item_id=item.id, output_index=item.index, content_index=0, text=item.text, logprobs=[])
            out += self._ev("response.content_part.done", item_id=item.id, output_index=item.index, content_index=0, part=part)
        elif item.kind == "function_call":
            out += self._ev(
                "response.function_call_arguments.done", item_id=item.id, output_index=item.index, name=item.name, arguments=item.text or "{}"
            )
        elif item.summary_open:
            part = {"type": "summary_text", "text": item.text}
            out += self._ev("response.reasoning_summary_text.done", item_id=item.id, output_index=item.index, summary_index=0, text=item.text)
            out += self._ev("response.reasoning_summary_part.done", item_id=item.id, output_index=item.index, summary_index=0, part=part)
        return out + self._ev("response.output_item.done", output_index=item.index, item=item.body(status))

    # ---- the StreamEncoder contract

    def start(self) -> bytes:
        return b""

    def encode(self, ev: n.Event) -> bytes:
        if isinstance(ev, n.StreamStart):
            if ev.model and not self.opened:
                self.model = ev.model
            return self._open()
        if isinstance(ev, (n.StreamUsage,)):
            self.usage = ev.usage
            return b""
        if isinstance(ev, n.StreamError) or getattr(ev, "choice", 0) != 0:
            return b""  # errors are the pipeline's; a Responses answer has one choice
        if isinstance(ev, n.StreamFinish):
            self.reason = ev.reason
            return b""
        out = self._open()
        if isinstance(ev, n.TextDelta):
            if not ev.text:
                return out
            if self.current is None or self.current.kind != "message":
                out += self._close()
                self.current = self._new("message", "msg_")
                out += self._added(self.current)
                part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
                out += self._ev("response.content_part.added", item_id=self.current.id, output_index=self.current.index, content_index=0, part=part)
            item = self.current
            item.text += ev.text
            return out + self._ev(
                "response.output_text.delta", item_id=item.id, output_index=item.index, content_index=0, delta=ev.text, logprobs=[]
            )
        if isinstance(ev, n.ThinkingDelta):
            return out + self._thinking(ev)
        if isinstance(ev, n.ToolCallStart):
            out += self._close()
            item = self._new("function_call", "fc_")
            item.call_id, item.name = ev.id, ev.name
            self.calls[ev.call] = item
            self.current = item
            return out + self._added(item)
        if isinstance(ev, n.ToolCallDelta):
            item = self.calls.get(ev.call)
            if item is None or not ev.arguments:
                return out
            item.text += ev.arguments
            return out + self._ev("response.function_call_arguments.delta", item_id=item.id, output_index=item.index, delta=ev.arguments)
        return out

    def _thinking(self, ev: n.ThinkingDelta) -> bytes:
        out = b""
        cur = self.current
        if ev.redacted and ev.origin == PROTOCOL and cur is not None and cur.kind == "reasoning" and cur.origin == PROTOCOL and not (cur.signature or cur.redacted):
            # a Responses tier's encrypted content ends the reasoning item whose summary
            # was streamed: one item, as the tier sent it
            cur.redacted = ev.redacted
            return out + self._close()
        if ev.redacted:  # a redacted block is a reasoning item of its own, with no text
            out += self._close()
            item = self._new("reasoning", "rs_")
            item.redacted, item.origin = ev.redacted, ev.origin
            self.current = item
            out += self._added(item)
            return out + self._close()
        if not ev.text and not ev.signature:
            return out
        # a signature ends a thinking block: text after it starts a new reasoning item
        if cur is None or cur.kind != "reasoning" or (ev.text and (cur.signature or cur.redacted)):
            out += self._close()
            cur = self._new("reasoning", "rs_")
            cur.origin = ev.origin
            self.current = cur
            out += self._added(cur)
        if ev.text:
            if not cur.summary_open:
                cur.summary_open = True
                out += self._ev(
                    "response.reasoning_summary_part.added",
                    item_id=cur.id,
                    output_index=cur.index,
                    summary_index=0,
                    part={"type": "summary_text", "text": ""},
                )
            cur.text += ev.text
            out += self._ev("response.reasoning_summary_text.delta", item_id=cur.id, output_index=cur.index, summary_index=0, delta=ev.text)
        if ev.signature:
            cur.signature = (cur.signature or "") + ev.signature
        return out

    def finish(self) -> bytes:
        incomplete = _INCOMPLETE.get(self.reason or "")
        out = self._open() + self._close("incomplete" if incomplete else "completed")  # the open item was cut short, or not
        usage = self.usage or n.Usage()  # clients (the AI SDK) require usage; zero when unreported
        if incomplete:
            snap = self._snapshot("incomplete", usage=usage, incomplete=incomplete)
            return out + self._ev("response.incomplete", response=snap)
        return out + self._ev("response.completed", response=self._snapshot("completed", usage=usage))

    def error(self, status: int, kind: str, message: str) -> bytes:
        """An ``error`` event (what the Vercel AI SDK reads) then ``response.failed`` (what
        Codex and the openai SDK read). Open items stay open: they were cut short.

        An encoder that encoded nothing opens no response of its own: the pipeline uses a
        fresh encoder only to end a same-protocol stream (a Responses tier's events
        relayed as they are, its ``response.created`` among them), which a second
        ``response.created`` would confuse."""
        code = "rate_limit_exceeded" if kind == "rate_limited" or status == 429 else "server_error"
        out = b""
        self.current = None
        out += self._ev("error", code=code, message=message, param=None)
        snap = self._snapshot("failed", usage=self.usage, error={"code": code, "message": message})
        return out + self._ev("response.failed", response=snap)


class StreamDecoder:
    """A Responses tier's ``response.*`` SSE -> neutral events, keeping each event's raw
    bytes. ``complete`` only after ``response.completed`` or ``response.incomplete``:
    ``response.failed`` and ``error`` are errors, and a stream cut before its final
    event is a broken one."""

    def __init__(self) -> None:
        self._sse = SSEDecoder()
        self._started = False
        self._calls: dict[int, int] = {}  # output_index -> neutral call number
        self._args_seen: set[int] = set()  # output_index of calls that had argument deltas
        self._summary: dict[int, int] = {}  # output_index -> last summary_index seen
        self._thought: set[int] = set()  # output_index of reasoning items that streamed text
        self._texted: set[int] = set()  # output_index of messages that streamed text
        self._refusal = False
        self.complete = False

    def feed(self, chunk: bytes) -> list[DecodedEvent]:
        return [self._event(e.data, e.raw) for e in self._sse.feed(chunk)]

    def close(self) -> list[DecodedEvent]:
        self._sse.flush()
        return []

    def _start(self, events: list[n.Event], resp: Any) -> None:
        if not self._started:
            self._started = True
            r = resp if isinstance(resp, dict) else {}
            events.append(n.StreamStart(str(r.get("id") or ""), str(r.get("model") or "")))

    def _call(self, events: list[n.Event], index: int, item: dict[str, Any]) -> int:
        call = self._calls.get(index)
        if call is None:
            call = self._calls[index] = len(self._calls)
            cid = item.get("call_id") or item.get("id") or new_id("call_")
            events.append(n.ToolCallStart(call, str(cid), str(item.get("name") or "")))
        return call

    def _event(self, data: str, raw: bytes) -> DecodedEvent:
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            return DecodedEvent([n.StreamError(502, "upstream", "upstream sent a malformed stream event")], b"")
        if not isinstance(obj, dict):
            return DecodedEvent([], raw)
        kind = obj.get("type")
        events: list[n.Event] = []
        index = obj.get("output_index")
        index = index if isinstance(index, int) and not isinstance(index, bool) else -1
        if kind in ("response.created", "response.in_progress"):
            self._start(events, obj.get("response"))
            return DecodedEvent(events, raw)
        if kind == "error" or kind == "response.failed":
            err: Any = obj if kind == "error" else (obj.get("response") or {}).get("error")
            err = err if isinstance(err, dict) else {}
            code = str(err.get("code") or err.get("type") or "")
            limited = code in ("rate_limit_exceeded", "insufficient_quota", "rate_limit_error")
            message = clip(str(err.get("message") or code or "upstream response failed"))
            return DecodedEvent([n.StreamError(429 if limited else 502, "rate_limited" if limited else "upstream", message)], raw)
        self._start(events, None)
        if kind == "response.output_text.delta":
            delta = obj.get("delta")
            if isinstance(delta, str) and delta:
                self._texted.add(index)
                events.append(n.TextDelta(delta))
        elif kind == "response.refusal.delta":
            delta = obj.get("delta")
            self._refusal = True
            if isinstance(delta, str) and delta:
                self._texted.add(index)
                events.append(n.TextDelta(delta))
        elif kind == "response.output_item.added":
            item = obj.get("item")
            if isinstance(item, dict) and item.get("type") == "function_call":
                self._call(events, index, item)
        elif kind == "response.function_call_arguments.delta":
            delta = obj.get("delta")
            if index in self._calls and isinstance(delta, str) and delta:
                self._args_seen.add(index)
                events.append(n.ToolCallDelta(self._calls[index], delta))
        elif kind in ("response.reasoning_summary_text.delta", "response.reasoning_text.delta"):
            delta = obj.get("delta")
            if isinstance(delta, str) and delta:
                part = obj.get("summary_index", obj.get("content_index", 0))
                last = self._summary.get(index)
                if last is not None and part != last:
                    events.append(n.ThinkingDelta("\n\n", origin=PROTOCOL))  # parts are joined as a whole answer joins them
                self._summary[index] = part
                self._thought.add(index)
                events.append(n.ThinkingDelta(delta, origin=PROTOCOL))
        elif kind == "response.output_item.done":
            item = obj.get("item")
            if isinstance(item, dict):
                events.extend(self._item_done(index, item))
        elif kind in ("response.completed", "response.incomplete"):
            resp = obj.get("response")
            resp = resp if isinstance(resp, dict) else {}
            reason: n.FinishReason = "stop"
            if kind == "response.incomplete":
                details = resp.get("incomplete_details")
                why = details.get("reason") if isinstance(details, dict) else None
                reason = FINISH_IN_INCOMPLETE.get(why or "", "length")  # type: ignore[assignment]
            elif self._refusal:
                reason = "refusal"
            elif self._calls:
                reason = "tool_calls"
            events.append(n.StreamFinish(reason))
            usage = usage_in(resp.get("usage"))
            if usage is not None:
                events.append(n.StreamUsage(usage))
            self.complete = True
            return DecodedEvent(events, raw, terminal=True)
        return DecodedEvent(events, raw)

    def _item_done(self, index: int, item: dict[str, Any]) -> list[n.Event]:
        events: list[n.Event] = []
        kind = item.get("type")
        if kind == "function_call":
            call = self._call(events, index, item)
            args = item.get("arguments")
            if index not in self._args_seen and isinstance(args, str) and args:
                self._args_seen.add(index)  # a server that sends the arguments whole
                events.append(n.ToolCallDelta(call, args))
        elif kind == "reasoning":
            if index not in self._thought:  # a server that sends the summary whole
                text = summary_text(item)
                if text:
                    events.append(n.ThinkingDelta(text, origin=PROTOCOL))
            enc = item.get("encrypted_content")
            if isinstance(enc, str) and enc:
                events.append(n.ThinkingDelta(redacted=enc, origin=PROTOCOL))
        elif kind == "message" and index not in self._texted:  # a server that sends the text whole
            for c in item.get("content") or ():
                if isinstance(c, dict) and c.get("type") == "output_text" and isinstance(c.get("text"), str) and c["text"]:
                    events.append(n.TextDelta(c["text"]))
        return events
