"""Server-sent events: an incremental decoder with no I/O, and the encoder.

``SSEDecoder.feed(chunk)`` returns the events completed by that chunk; ``flush()``
returns what is left when the stream ends (an event with no trailing blank line is
*incomplete*: the WHATWG spec discards it, and so do we, reporting it through
``flush()``'s ``truncated`` flag so a broken stream is never mistaken for a clean end).

Each event keeps ``raw``: the exact bytes it arrived as, so same-protocol streaming can
forward upstream bytes unchanged (no re-serialisation per chunk). Line endings may be
CRLF, LF or CR and may be split across chunks at any byte: the decoder is tested by
feeding fixtures split at every position.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class SSEEvent:
    event: str | None  # the `event:` field, None when absent (the spec's "message")
    data: str  # `data:` lines joined with "\n"
    raw: bytes  # the event's bytes as received, terminator included
    id: str | None = None


class SSEDecoder:
    """Incremental SSE decoder. ``_buf`` holds the bytes of the event being read (from
    its first line) and ``_line`` is the offset of the unfinished line inside it."""

    __slots__ = ("_buf", "_line", "_event", "_data", "_id", "_skip_lf", "truncated")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._line = 0
        self._event: str | None = None
        self._data: list[str] = []
        self._id: str | None = None
        self._skip_lf = False  # the last line ended in CR: a leading LF finishes that CRLF
        self.truncated = False

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        out: list[SSEEvent] = []
        if not chunk:
            return out
        buf = self._buf
        scan = len(buf)
        buf += chunk
        if self._skip_lf:
            self._skip_lf = False
            if buf[scan] == 0x0A:
                if scan == 0:
                    # The CR closed an event whose raw bytes already got this LF.
                    del buf[0]
                else:
                    scan += 1
                    if self._line == scan - 1:
                        self._line = scan
        n = len(buf)
        i = scan
        # Line ends are found with bytearray.find (C), not byte by byte: a 200-chunk
        # stream went through this loop ~60,000 times. CR is looked for only when the
        # new bytes hold one (Gemini's CRLF); most streams use LF alone.
        crs = buf.find(b"\r", scan) >= 0
        while i < n:
            j = buf.find(b"\n", i)
            if crs:
                k = buf.find(b"\r", i)
                if k >= 0 and (j < 0 or k < j):
                    j = k
            if j < 0:
                break
            c = buf[j]
            line = bytes(buf[self._line : j])
            i = j + 1
            if c == 0x0D:
                if i < n:
                    if buf[i] == 0x0A:
                        i += 1
                else:
                    self._skip_lf = True
            self._line = i
            if line:
                self._field(line)
            elif self._data or self._event is not None or self._id is not None:
                raw = bytes(buf[:i])
                if self._skip_lf:  # ends in a CR whose LF may follow: make it CRLF now
                    raw += b"\n"
                out.append(SSEEvent(self._event, "\n".join(self._data), raw, self._id))
                self._event, self._data, self._id = None, [], None
                del buf[:i]
                n -= i
                i = 0
                self._line = 0
            else:  # a blank line with nothing pending: drop it
                del buf[:i]
                n -= i
                i = 0
                self._line = 0
        return out

    def _field(self, line: bytes) -> None:
        if line[:1] == b":":
            return  # comment
        name, sep, value = line.partition(b":")
        if sep and value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            self._data.append(value.decode("utf-8", "replace"))
        elif name == b"event":
            self._event = value.decode("utf-8", "replace")
        elif name == b"id":
            self._id = value.decode("utf-8", "replace")

    def flush(self) -> list[SSEEvent]:
        """End of stream. An event without its terminating blank line is discarded (as the
        WHATWG spec says) and sets ``truncated``; so does an unfinished non-empty line."""
        if self._data or self._event is not None or bytes(self._buf[self._line :]).strip():
            self.truncated = True
        self._buf.clear()
        self._line = 0
        self._event, self._data, self._id = None, [], None
        return []


def encode(data: bytes | str, event: str | None = None) -> bytes:
    """One SSE event. ``data`` must not contain newlines (JSON from orjson never does)."""
    if isinstance(data, str):
        data = data.encode()
    if event is None:
        return b"data: " + data + b"\n\n"
    return b"event: " + event.encode() + b"\ndata: " + data + b"\n\n"
