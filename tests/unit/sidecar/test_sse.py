"""The SSE decoder, fed fixtures split at every byte boundary."""

from hypothesis import given
from hypothesis import strategies as st

from switchyard.sidecar.translate.sse import SSEDecoder, encode

STREAM = (
    b"event: message_start\r\ndata: {\"a\":1}\r\n\r\n"
    b": keep-alive comment\n\n"
    b"data: line1\ndata: line2\r\r"
    b"id: 7\nevent: x\ndata:no-space\n\n"
    b"data: [DONE]\n\n"
)
EXPECTED = [("message_start", '{"a":1}'), (None, "line1\nline2"), ("x", "no-space"), (None, "[DONE]")]


def decode(chunks: list[bytes]) -> tuple[list[tuple[str | None, str]], bytes, bool]:
    d = SSEDecoder()
    events = []
    for c in chunks:
        events.extend(d.feed(c))
    d.flush()
    return [(e.event, e.data) for e in events], b"".join(e.raw for e in events), d.truncated


def test_every_single_split() -> None:
    for i in range(len(STREAM) + 1):
        events, _, truncated = decode([STREAM[:i], STREAM[i:]])
        assert events == EXPECTED, i
        assert not truncated


def test_byte_by_byte() -> None:
    events, raw, _ = decode([bytes([b]) for b in STREAM])
    assert events == EXPECTED
    # raw bytes replay to the same events (what same-protocol passthrough relies on)
    assert decode([raw])[0] == EXPECTED


@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=8))
def test_any_chunking(cuts: list[int]) -> None:
    bounds = [0, *sorted(cuts), len(STREAM)]
    chunks = [STREAM[a:b] for a, b in zip(bounds, bounds[1:])]
    assert decode(chunks)[0] == EXPECTED


def test_an_unterminated_event_is_truncation_not_an_event() -> None:
    events, _, truncated = decode([b"data: one\n\ndata: half"])
    assert events == [(None, "one")]
    assert truncated


def test_encode() -> None:
    assert encode(b'{"x":1}') == b'data: {"x":1}\n\n'
    assert encode("{}", "ping") == b"event: ping\ndata: {}\n\n"
