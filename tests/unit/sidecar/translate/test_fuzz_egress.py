"""Hostile upstream answers against every egress decoder, and random neutral values
against every ingress renderer and stream encoder.

- Stream decoders (``feed``/``close``) get random bytes, and real upstream streams (the
  golden ``upstream_stream.sse`` files) with their JSON edited at random, split at
  random points. As the pipeline runs them (wrapped in ``GuardedDecoder``) they never
  raise: whatever an upstream sends becomes events, a ``StreamError``, or nothing;
  mid-stream an exception would cut the client's stream without an error event. The
  bare decoders do raise on some wrong-typed fields (``"choices": [false]``,
  ``"index": "x"``): ``test_guard_turns_decoder_exceptions_into_a_stream_error`` pins
  the guard's behaviour on those, and docs/reliability.md lists what the fuzzing found.
- ``parse_response`` may raise only what the pipeline turns into an ``empty-response``
  failure (``UpstreamFormatError``, ``ValueError``, ``TypeError``, ``AttributeError``).
- ``read_error`` never raises, whatever the status, body and headers.
- ``render_response`` and the stream encoders (``start``/``encode``/``finish``/``error``)
  take any well-typed neutral value, in any order, and always produce JSON / SSE the
  client's protocol can read: they never raise.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fuzzing import EGRESS, FUZZ, INGRESS, golden_files, golden_json, json_values, mutants
from switchyard.sidecar.translate import neutral as n
from switchyard.sidecar.translate.base import GuardedDecoder, UpstreamFormatError, adapter_for
from switchyard.sidecar.translate.sse import SSEDecoder

PARSE_RESPONSE_ERRORS = (UpstreamFormatError, ValueError, TypeError, AttributeError)


# ------------------------------------------------------------------ stream decoders


def _stream_seeds(egress: str) -> list[list[Any]]:
    """Each golden upstream stream as a list of event payloads (parsed JSON, or text)."""
    out = []
    for path in golden_files("upstream_stream.sse", egress=egress):
        d = SSEDecoder()
        events: list[Any] = []
        for ev in d.feed(path.read_bytes()):
            try:
                events.append({"event": ev.event, "data": orjson.loads(ev.data)})
            except orjson.JSONDecodeError:
                events.append({"event": ev.event, "data": ev.data})
        out.append(events)
    return out or [[{"event": None, "data": {}}]]


def _encode(events: list[Any], array: bool) -> bytes:
    if array:  # Gemini's JSON-array stream
        return b"[" + b",\r\n".join(orjson.dumps(e.get("data") if isinstance(e, dict) else e) for e in events) + b"]"
    out = b""
    for e in events:
        if not isinstance(e, dict):
            e = {"data": e}
        data = e.get("data")
        body = data.encode() if isinstance(data, str) else orjson.dumps(data)
        head = f"event: {e['event']}\n".encode() if isinstance(e.get("event"), str) and "\n" not in e["event"] else b""
        out += head + b"data: " + body.replace(b"\n", b"") + b"\n\n"
    return out


@st.composite
def upstream_streams(draw: st.DrawFn, egress: str) -> tuple[bytes, list[int]]:
    kind = draw(st.sampled_from(["mutated", "mutated", "bytes", "mixed"]))
    if kind == "bytes":
        raw = draw(st.binary(max_size=400))
    else:
        events = draw(mutants(_stream_seeds(egress), max_edits=5))
        raw = _encode(events if isinstance(events, list) else [events], array=egress == "gemini" and draw(st.booleans()))
        if kind == "mixed":
            at = draw(st.integers(0, len(raw)))
            raw = raw[:at] + draw(st.binary(max_size=40)) + raw[at:]
    cuts = sorted(draw(st.lists(st.integers(0, max(0, len(raw))), max_size=6)))
    return raw, cuts


def _chunks(raw: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *cuts, len(raw)]
    return [raw[a:b] for a, b in zip(bounds, bounds[1:]) if b > a]


@pytest.mark.parametrize("egress", EGRESS)
def test_stream_decoders_never_raise(egress: str) -> None:
    adapter = adapter_for(egress)

    @FUZZ
    @given(stream=upstream_streams(egress), ingress=st.sampled_from(INGRESS))
    def run(stream: tuple[bytes, list[int]], ingress: str) -> None:
        raw, cuts = stream
        decoder = GuardedDecoder(adapter.stream_decoder())
        decoded = []
        for chunk in _chunks(raw, cuts):
            decoded += decoder.feed(chunk)
        decoded += decoder.close()
        assert isinstance(decoder.complete, bool)
        # The relay: every event the decoder made goes through each client encoder.
        enc = adapter_for(ingress).stream_encoder(alias="alias", request=None)
        out = enc.start()
        for d in decoded:
            assert isinstance(d.raw, bytes)
            for ev in d.events:
                n.is_content(ev)
                if not isinstance(ev, n.StreamError):
                    out += enc.encode(ev)
        out += enc.error(502, "upstream", "broken") if any(
            isinstance(ev, n.StreamError) for d in decoded for ev in d.events) else enc.finish()
        assert isinstance(out, bytes)

    run()


@pytest.mark.parametrize(("egress", "frame"), [
    ("openai-chat", b'data: {"id":"x","choices":[false]}\n\n'),
    ("openai-chat", b'data: {"id":"x","choices":[{"index":"one","delta":{"content":"hi"}}]}\n\n'),
    ("anthropic-messages", b'event: message_start\ndata: {"type":"message_start","message":{"usage":{"input_tokens":[1]}}}\n\n'),
    ("gemini", b'data: {"candidates":[{"index":[0],"content":{"parts":[{"text":"hi"}]}}]}\n\n'),
])
def test_guard_turns_decoder_exceptions_into_a_stream_error(egress: str, frame: bytes) -> None:
    decoder = GuardedDecoder(adapter_for(egress).stream_decoder())
    (event,) = decoder.feed(frame)
    (err,) = event.events
    assert isinstance(err, n.StreamError) and err.status == 502 and event.raw == b""
    assert decoder.feed(b'data: {"more": 1}\n\n') == [] and decoder.close() == [] and decoder.complete is False


# ------------------------------------------------------------------ whole answers and errors


@pytest.mark.parametrize("egress", EGRESS)
def test_parse_response_raises_only_what_the_pipeline_catches(egress: str) -> None:
    adapter = adapter_for(egress)
    seeds = golden_json("upstream_response.json", egress=egress) or [{}]

    @FUZZ
    @given(body=st.one_of(mutants(seeds), st.dictionaries(st.text(max_size=10), json_values(10), max_size=5)),
           ingress=st.sampled_from(INGRESS))
    def run(body: Any, ingress: str) -> None:
        try:
            body = orjson.loads(orjson.dumps(body))
        except orjson.JSONEncodeError:
            return
        if not isinstance(body, dict):
            return  # _whole refuses a non-object before parse_response
        try:
            answer = adapter.parse_response(body)
        except PARSE_RESPONSE_ERRORS:
            return
        if answer.choices and n.has_content(answer.choices[0].parts):
            orjson.dumps(adapter_for(ingress).render_response(answer, alias="alias", request=None))

    run()


@pytest.mark.parametrize("egress", EGRESS)
def test_read_error_never_raises(egress: str) -> None:
    adapter = adapter_for(egress)

    @FUZZ
    @given(status=st.integers(100, 999),
           body=st.one_of(st.binary(max_size=200), json_values(10).map(lambda v: orjson.dumps(v, option=orjson.OPT_NON_STR_KEYS)
                                                                        if _dumpable(v) else b"")),
           headers=st.dictionaries(st.sampled_from(["retry-after", "retry-after-ms", "x-ratelimit-reset-requests",
                                                    "x-ratelimit-reset-tokens", "anthropic-ratelimit-requests-reset",
                                                    "content-type", "x-should-retry"]), st.text(max_size=30), max_size=4))
    def run(status: int, body: bytes, headers: dict[str, str]) -> None:
        info = adapter.read_error(status, body, headers)
        assert isinstance(info.message, str)

    run()


def _dumpable(v: Any) -> bool:
    try:
        orjson.dumps(v)
    except orjson.JSONEncodeError:
        return False
    return True


# ------------------------------------------------------------------ renderers and encoders

texts = st.text(max_size=30)
ints = st.integers(min_value=-3, max_value=2**31)
small = st.integers(min_value=-2, max_value=5)
finish = st.one_of(st.none(), st.sampled_from(["stop", "length", "tool_calls", "content_filter", "pause", "refusal", "error"]))
origins = st.one_of(st.none(), st.sampled_from(["openai-chat", "anthropic-messages", "gemini", "openai-responses"]))
usages = st.builds(n.Usage, ints, ints, ints, ints, ints)
parts = st.one_of(
    st.builds(n.Text, texts),
    st.builds(n.Image, st.one_of(st.none(), texts), st.one_of(st.none(), texts), st.one_of(st.none(), texts)),
    st.builds(n.Document, st.one_of(st.none(), texts), st.one_of(st.none(), texts), st.one_of(st.none(), texts)),
    st.builds(n.Audio, texts, st.sampled_from(["wav", "mp3", ""])),
    st.builds(n.ToolCall, texts, texts, st.one_of(texts, st.just('{"a": 1}'), st.just("{"))),
    st.builds(n.Thinking, texts, st.one_of(st.none(), texts), st.one_of(st.none(), texts), origins),
)
responses = st.builds(
    n.Response, texts, texts,
    st.lists(st.builds(n.Choice, st.lists(parts, max_size=4), finish, st.one_of(st.none(), texts)), max_size=3),
    st.one_of(st.none(), usages), st.one_of(st.none(), ints),
)
events = st.one_of(
    st.builds(n.StreamStart, texts, texts),
    st.builds(n.TextDelta, texts, small),
    st.builds(n.ThinkingDelta, texts, st.one_of(st.none(), texts), st.one_of(st.none(), texts), small, origins),
    st.builds(n.ToolCallStart, small, texts, texts, small),
    st.builds(n.ToolCallDelta, small, texts, small),
    st.builds(n.StreamFinish, finish, small, st.one_of(st.none(), texts)),
    st.builds(n.StreamUsage, usages),
)


def _requests(ingress: str) -> list[n.Request | None]:
    out: list[n.Request | None] = [None]
    adapter = adapter_for(ingress)
    for body in golden_json("client_request.json", ingress=ingress):
        try:
            out.append(adapter.parse_request(body, path_model="alias" if ingress == "gemini" else None))
        except Exception:
            continue
    return out


@pytest.mark.parametrize("ingress", INGRESS)
def test_render_response_and_encoders_take_any_neutral_value(ingress: str) -> None:
    adapter = adapter_for(ingress)
    requests = _requests(ingress)

    @FUZZ
    @given(resp=responses, evs=st.lists(events, max_size=12), req=st.sampled_from(requests),
           status=st.integers(400, 599), message=texts)
    def run(resp: n.Response, evs: list[n.Event], req: n.Request | None, status: int, message: str) -> None:
        orjson.dumps(adapter.render_response(resp, alias="alias", request=req))
        enc = adapter.stream_encoder(alias="alias", request=req)
        out = enc.start() + b"".join(enc.encode(ev) for ev in evs)
        ok = out + enc.finish()
        enc2 = adapter.stream_encoder(alias="alias", request=req)
        bad = enc2.start() + b"".join(enc2.encode(ev) for ev in evs) + enc2.error(status, "upstream", message)
        assert isinstance(ok, bytes) and isinstance(bad, bytes)

    run()


@pytest.mark.parametrize("egress", EGRESS)
def test_absurd_usage_counts_cannot_make_an_answer_unencodable(egress: str) -> None:
    """Found by the long fuzz run: a count near 2**64 summed by a renderer overflowed
    orjson's 64-bit integers after the answer was committed (a 500). Counts are clamped."""
    seed = (golden_json("upstream_response.json", egress=egress) or [None])[0]
    assert seed is not None
    huge = 2**64 - 3
    body = orjson.loads(orjson.dumps(seed))
    if egress == "openai-chat":
        body["usage"] = {"prompt_tokens": huge, "completion_tokens": huge, "total_tokens": huge}
    elif egress == "anthropic-messages":
        body["usage"] = {"input_tokens": huge, "output_tokens": huge, "cache_creation_input_tokens": huge, "cache_read_input_tokens": huge}
    elif egress == "openai-responses":
        body["usage"] = {"input_tokens": huge, "output_tokens": huge, "input_tokens_details": {"cached_tokens": huge},
                         "output_tokens_details": {"reasoning_tokens": huge}, "total_tokens": huge}
    else:
        body["usageMetadata"] = {"promptTokenCount": huge, "candidatesTokenCount": huge, "totalTokenCount": huge}
    answer = adapter_for(egress).parse_response(body)
    for ingress in INGRESS:
        orjson.dumps(adapter_for(ingress).render_response(answer, alias="alias", request=None))


class _Yields:
    def __init__(self, *events: n.Event) -> None:
        self.events = list(events)
        self.complete = True

    def feed(self, chunk: bytes) -> list[Any]:
        from switchyard.sidecar.translate.base import DecodedEvent

        return [DecodedEvent(self.events, chunk)]

    def close(self) -> list[Any]:
        return []


@pytest.mark.parametrize("event", [
    n.ThinkingDelta("x", signature=[None]),  # type: ignore[arg-type]
    n.TextDelta(True),  # type: ignore[arg-type]
    n.TextDelta("x", choice=18446744073709551616),
    n.ToolCallStart(-1, "id", "name"),
    n.ToolCallDelta(0, {"a": 1}),  # type: ignore[arg-type]
    n.StreamFinish("SAFETY"),  # type: ignore[arg-type]
    n.StreamStart(["id"], "m"),  # type: ignore[arg-type]
])
def test_guard_refuses_events_of_the_wrong_type_or_range(event: n.Event) -> None:
    """Found by the long fuzz run: upstream values of the wrong type passed into neutral
    events (an Anthropic thinking block's signature as a list, a Gemini choice index of
    1.8e19) and broke the client's encoder mid-stream."""
    (d,) = GuardedDecoder(_Yields(n.TextDelta("fine"), event)).feed(b"x")
    assert [type(e) for e in d.events] == [n.StreamError]


def test_well_typed_events_pass_the_guard() -> None:
    good = [n.StreamStart("id", "m"), n.TextDelta("a", 1), n.ThinkingDelta("t", "sig", None, 0, "gemini"),
            n.ToolCallStart(0, "c", "f"), n.ToolCallDelta(0, "{}"), n.StreamFinish("tool_calls", 0, None),
            n.StreamUsage(n.Usage(1, 2)), n.StreamError(502, "upstream", "x")]
    (d,) = GuardedDecoder(_Yields(*good)).feed(b"x")
    assert d.events == good


@pytest.mark.parametrize("egress", ["openai-chat", "gemini"])
def test_read_embeddings_raises_only_what_the_pipeline_catches(egress: str) -> None:
    """pipeline/embed.py turns UpstreamFormatError (and ValueError, TypeError,
    OverflowError) into an empty-response failure; anything else would be a 500. What
    it returns renders in every client protocol that has embeddings."""
    adapter = adapter_for(egress)
    assert adapter.read_embeddings is not None
    seeds: list[Any] = [
        {"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": [0.1, -0.2]}], "usage": {"prompt_tokens": 2}},
        {"embedding": {"values": [0.1, 0.2]}},
        {"embeddings": [{"values": [0.1]}, {"values": [0.2]}]},
    ]

    @FUZZ
    @given(body=st.one_of(mutants(seeds), json_values(6)), raw=st.binary(max_size=60), use_raw=st.booleans())
    def run(body: Any, raw: bytes, use_raw: bool) -> None:
        if not use_raw:
            try:
                raw = orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS)
            except (orjson.JSONEncodeError, TypeError):
                return
        try:
            vectors, usage = adapter.read_embeddings(raw)  # type: ignore[misc]
        except (UpstreamFormatError, ValueError, TypeError, OverflowError):
            return
        assert vectors and all(isinstance(x, float) for v in vectors for x in v)
        for ingress in ("openai-chat", "gemini"):
            a = adapter_for(ingress)
            for enc in ("float", "base64"):
                req = n.EmbedRequest(inputs=tuple("x" * len(vectors)), encoding=enc)  # type: ignore[arg-type]
                orjson.dumps(a.render_embeddings(vectors, usage, alias="a", request=req))  # type: ignore[misc]

    run()
