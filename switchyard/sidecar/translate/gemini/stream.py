"""Gemini streams, both directions, in one module because they share the two framings:
SSE (``alt=sse``: one ``data:`` event per chunk) and the JSON array (``[`` + elements
separated by ``,\\r\\n`` + ``]``), each element a whole ``GenerateContentResponse``.

- ``StreamEncoder`` is the ingress side: neutral events -> a Gemini client's chunks
  (the package's ``stream_encoder``; its views pick SSE or the array).
- ``StreamDecoder`` is the egress side: a Gemini tier's chunks -> neutral events, each
  with its exact bytes for same-protocol relay; ``_ArraySplitter`` cuts the array form
  into elements.

The answer-part reader, the finish-reason tables and usage both ways come from
``_wire``, as whole answers use them in ``ingress`` and ``egress``.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from switchyard.sidecar import errors
from switchyard.sidecar.errors import ErrorKind, GatewayError, clip

from .. import neutral as n
from ..base import DecodedEvent
from ..common import args_object, new_id
from ..sse import SSEDecoder, encode
from ._wire import FINISH_OUT, PROTOCOL, _answer_parts, _finish_in, _get, _usage_in, _usage_out


class StreamEncoder:
    """Neutral events -> Gemini stream chunks, each a whole ``GenerateContentResponse``
    holding the new parts. SSE (``alt=sse``) or the JSON-array form (``[`` + elements
    separated by ``,\\r\\n`` + ``]``).

    Function calls are buffered until complete and sent as whole ``functionCall`` parts
    (parallel calls together); the finish reasons are held back so the last chunk
    carries them with ``usageMetadata``. Thought signatures Gemini made (a
    ``ThinkingDelta`` of origin ``gemini``) go back on the part that follows them (the
    decoder emits a part's signature just before the part), as Gemini sent them; a
    signature another protocol made is never sent (Gemini rejects it)."""

    def __init__(self, *, alias: str, request: n.Request | None, sse: bool = True) -> None:
        self.sse = sse
        self.id = new_id("")
        self.model = alias
        self.started = False
        self.elements = 0
        self.calls: dict[int, list[list[Any]]] = {}  # choice -> [[id, name, [fragments]]]
        self.by_index: dict[tuple[int, int], list[Any]] = {}
        self.finishes: dict[int, str] = {}
        self.choices: set[int] = set()
        self.usage: n.Usage | None = None
        self.signature: dict[int, str] = {}  # choice -> a Gemini signature for its next part

    def _frame(self, body: dict[str, Any]) -> bytes:
        data = orjson.dumps(body)
        if self.sse:
            return encode(data)
        sep = b",\r\n" if self.elements else b""
        self.elements += 1
        return sep + data

    def _chunk(self, candidates: list[dict[str, Any]], usage: n.Usage | None = None) -> bytes:
        body: dict[str, Any] = {"candidates": candidates}
        if usage is not None:
            body["usageMetadata"] = _usage_out(usage)
        body["modelVersion"] = self.model
        body["responseId"] = self.id
        return self._frame(body)

    def _parts(self, choice: int, parts: list[dict[str, Any]]) -> bytes:
        self.choices.add(choice)
        return self._flush_calls(choice) + self._chunk([{"content": {"parts": parts, "role": "model"}, "index": choice}])

    def _call_parts(self, choice: int) -> list[dict[str, Any]]:
        out = []
        for cid, name, frags, *sig in self.calls.pop(choice, []):
            part: dict[str, Any] = {"functionCall": {"id": cid, "name": name, "args": args_object("".join(frags))}}
            if sig and sig[0]:
                part["thoughtSignature"] = sig[0]
            out.append(part)
        return out

    def _signed(self, choice: int, part: dict[str, Any]) -> dict[str, Any]:
        sig = self.signature.pop(choice, None)
        return {**part, "thoughtSignature": sig} if sig else part

    def _flush_calls(self, choice: int) -> bytes:
        parts = self._call_parts(choice)
        if not parts:
            return b""
        return self._chunk([{"content": {"parts": parts, "role": "model"}, "index": choice}])

    def start(self) -> bytes:
        self.started = True
        return b"" if self.sse else b"["

    def encode(self, ev: n.Event) -> bytes:
        if isinstance(ev, n.StreamStart):
            if ev.model:
                self.model = ev.model
            return b""
        if isinstance(ev, n.TextDelta):
            return self._parts(ev.choice, [self._signed(ev.choice, {"text": ev.text})]) if ev.text else b""
        if isinstance(ev, n.ThinkingDelta):
            sig = ev.signature if ev.origin == PROTOCOL and ev.signature else None
            if not ev.text:
                if sig:  # Gemini's signature of the part that follows
                    self.signature[ev.choice] = sig
                return b""
            part: dict[str, Any] = {"text": ev.text, "thought": True}
            if sig:
                part["thoughtSignature"] = sig
            return self._parts(ev.choice, [part])
        if isinstance(ev, n.ToolCallStart):
            self.choices.add(ev.choice)
            entry: list[Any] = [ev.id, ev.name, [], self.signature.pop(ev.choice, None)]
            self.calls.setdefault(ev.choice, []).append(entry)
            self.by_index[(ev.choice, ev.call)] = entry
            return b""
        if isinstance(ev, n.ToolCallDelta):
            entry = self.by_index.get((ev.choice, ev.call))
            if entry is not None and ev.arguments:
                entry[2].append(ev.arguments)
            return b""
        if isinstance(ev, n.StreamFinish):
            self.finishes[ev.choice] = FINISH_OUT.get(ev.reason, "STOP")
            return b""
        if isinstance(ev, n.StreamUsage):
            self.usage = ev.usage
        return b""

    def finish(self) -> bytes:
        candidates = []
        for c in sorted(self.choices | set(self.finishes)) or [0]:
            parts = self._call_parts(c)
            content: dict[str, Any] = {"parts": parts, "role": "model"} if parts else {"role": "model"}
            candidates.append({"content": content, "finishReason": self.finishes.get(c, "STOP"), "index": c})
        return self._chunk(candidates, self.usage) + (b"" if self.sse else b"]")

    def error(self, status: int, kind: str, message: str) -> bytes:
        err = GatewayError(ErrorKind(kind), message, status=status)
        data = orjson.dumps(errors.gemini_error_body(err))
        if self.sse:
            return encode(data)
        # JSON array: an error element, then the closing bracket. An encoder that never
        # started follows forwarded upstream elements (same-protocol relay).
        sep = b",\r\n" if (self.elements or not self.started) else b""
        return sep + data + b"]"


class _ArraySplitter:
    """Splits Gemini's JSON-array stream (``[{…}\\n,\\r\\n{…}\\n]``) into its elements,
    incrementally, keeping exact bytes: each element's ``raw`` holds the separators before
    it, so the raws concatenated are the stream as received."""

    _IN_STRING = re.compile(rb'["\\]')
    _OUTSIDE = re.compile(rb'["{}\[\]]')

    def __init__(self) -> None:
        self.buf = bytearray()
        self.scan = 0
        self.depth = 0
        self.in_string = False
        self.escaped = False
        self.opened = False
        self.closed = False
        self.start = -1

    def feed(self, chunk: bytes) -> list[tuple[bytes | None, bytes]]:
        """-> [(element JSON, raw)], with (None, raw) for the closing bracket."""
        out: list[tuple[bytes | None, bytes]] = []
        if self.closed:
            return out
        buf = self.buf
        buf += chunk
        i = self.scan
        while i < len(buf):
            if self.in_string:
                if self.escaped:
                    self.escaped = False
                    i += 1
                    continue
                m = self._IN_STRING.search(buf, i)
                if m is None:
                    i = len(buf)
                    break
                i = m.start()
                if buf[i] == 0x5C:  # backslash
                    self.escaped = True
                else:
                    self.in_string = False
                i += 1
                continue
            m = self._OUTSIDE.search(buf, i)
            if m is None:
                i = len(buf)
                break
            i = m.start()
            c = buf[i]
            if c == 0x22:
                self.in_string = True
            elif c in (0x7B, 0x5B):  # { [
                if c == 0x5B and self.depth == 0 and not self.opened:
                    self.opened = True
                else:
                    if self.depth == 0:
                        self.start = i
                    self.depth += 1
            elif self.depth == 0:  # } or ] at the top
                if c == 0x5D and self.opened:
                    self.closed = True
                    out.append((None, bytes(buf[: i + 1])))
                    del buf[: i + 1]
                    self.scan = 0
                    return out
            else:
                self.depth -= 1
                if self.depth == 0:
                    out.append((bytes(buf[self.start : i + 1]), bytes(buf[: i + 1])))
                    del buf[: i + 1]
                    i = 0
                    self.start = -1
                    continue
            i += 1
        self.scan = i
        return out

    @property
    def partial(self) -> bool:
        """Bytes of an unfinished element are waiting (a cut stream)."""
        return self.depth > 0 or self.in_string


class StreamDecoder:
    """Gemini stream chunks -> neutral events, keeping each chunk's raw bytes. Reads SSE
    (``alt=sse``) or the JSON-array form, whichever arrives (the first byte tells)."""

    def __init__(self) -> None:
        self._mode: str | None = None
        self._head = bytearray()
        self._sse = SSEDecoder()
        self._array = _ArraySplitter()
        self._started = False
        self._calls: dict[int, int] = {}  # choice -> function calls seen
        self._finished = False
        self._usage: n.Usage | None = None
        self._usage_sent = False
        self._errored = False
        self.complete = False

    def feed(self, chunk: bytes) -> list[DecodedEvent]:
        if self._mode is None:
            self._head += chunk
            lead = bytes(self._head).lstrip()
            if not lead:
                return []
            self._mode = "array" if lead[:1] == b"[" else "sse"
            chunk = bytes(self._head)
            self._head.clear()
        if self._mode == "sse":
            return [self._decode(e.data, e.raw) for e in self._sse.feed(chunk) if e.data]
        out = []
        for data, raw in self._array.feed(chunk):
            if data is None:
                out.append(DecodedEvent([], b"" if self._errored else raw, terminal=True))
            else:
                errored = self._errored
                ev = self._decode(data, raw)
                if self._errored and not errored:  # close the client's array after the error element
                    ev.raw += b"\n]"
                out.append(ev)
        return out

    def close(self) -> list[DecodedEvent]:
        if self._mode == "sse":
            self._sse.flush()
            clean = not self._sse.truncated
        elif self._mode == "array":
            clean = self._array.closed and not self._array.partial
        else:
            clean = False
        self.complete = self._finished and clean and not self._errored
        if self._finished and self._usage is not None and not self._usage_sent:
            self._usage_sent = True
            return [DecodedEvent([n.StreamUsage(self._usage)], b"")]
        return []

    def _decode(self, data: str | bytes, raw: bytes) -> DecodedEvent:
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            return DecodedEvent([n.StreamError(502, "upstream", "upstream sent a malformed stream chunk")], b"")  # not forwardable: the client gets our error event
        if not isinstance(obj, dict):
            return DecodedEvent([], raw)
        if "error" in obj:
            self._errored = True
            err = obj["error"] if isinstance(obj["error"], dict) else {"message": str(obj["error"])}
            code = err.get("code")
            status = code if isinstance(code, int) and 400 <= code < 600 else 502
            if err.get("status") == "RESOURCE_EXHAUSTED":
                status = 429
            kind = errors.kind_for_status(status).value
            return DecodedEvent([n.StreamError(status, kind, clip(str(err.get("message") or err.get("status") or "error")))], raw)
        return DecodedEvent(self._events(obj), raw)

    def _events(self, obj: dict[str, Any]) -> list[n.Event]:
        events: list[n.Event] = []
        if not self._started:
            self._started = True
            events.append(n.StreamStart(str(_get(obj, "responseId") or ""), str(_get(obj, "modelVersion") or "")))
        candidates = obj.get("candidates") or []
        finished_now = False
        for c in candidates if isinstance(candidates, list) else ():
            if not isinstance(c, dict):
                continue
            idx = int(c.get("index") or 0)
            for p in _answer_parts(_get(_get(c, "content"), "parts")):
                if isinstance(p, n.Thinking):
                    events.append(n.ThinkingDelta(p.text, p.signature, choice=idx, origin=PROTOCOL))
                elif isinstance(p, n.Text):
                    events.append(n.TextDelta(p.text, idx))
                elif isinstance(p, n.ToolCall):
                    k = self._calls.get(idx, 0)
                    self._calls[idx] = k + 1
                    events.append(n.ToolCallStart(k, p.id, p.name, idx))
                    events.append(n.ToolCallDelta(k, p.arguments, idx))
            reason = _get(c, "finishReason")
            if isinstance(reason, str) and reason:
                self._finished = finished_now = True
                events.append(n.StreamFinish(_finish_in(reason, self._calls.get(idx, 0) > 0), idx))
        if not candidates and _get(_get(obj, "promptFeedback"), "blockReason"):
            self._finished = finished_now = True
            events.append(n.StreamFinish("content_filter", 0))
        usage = _usage_in(_get(obj, "usageMetadata"))
        if usage is not None:
            self._usage = usage
            if self._finished:  # Gemini repeats running counts on every chunk: report the final ones
                events.append(n.StreamUsage(usage))
                self._usage_sent = True
        elif finished_now and self._usage is not None:
            events.append(n.StreamUsage(self._usage))
            self._usage_sent = True
        return events
