"""One try of one tier: send the call, judge the answer, relay it to the client.

``attempt`` returns the client's response when this tier served (or when its stream
broke after content had started: the client then has its protocol's error event), and
a ``Miss`` when it did not, so the chain can try the next tier. The verdict on the tier
goes through its ``TierLease``: ``succeeded`` once the answer is whole, ``failed`` for a
failure that is the tier's; anything else leaves the lease to release the admission.

Promise 2 lives in ``_stream``: nothing is sent to the client before the first content
event, so a tier that fails before that can still be replaced; after it, a failure ends
the stream with the client protocol's error event and never with its clean end marker.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from switchyard.sidecar import errors
from switchyard.sidecar.contract.config import CompiledBinding, CompiledTier
from switchyard.sidecar.errors import ErrorKind, GatewayError
from switchyard.sidecar.pipeline.exchange import DRAIN_MESSAGE, Exchange, uncancel
from switchyard.sidecar.routing import classify
from switchyard.sidecar.routing.classify import Failure
from switchyard.sidecar.routing.profile import Decision
from switchyard.sidecar.state import LastUsed, Runtime, TierLease, binding_key
from switchyard.sidecar.translate import neutral as n
from switchyard.sidecar.translate.base import (
    Adapter,
    DecodedEvent,
    GuardedDecoder,
    UpstreamCall,
    UpstreamFormatError,
    adapter_for,
    judge,
    response_verdict,
)
from switchyard.sidecar.upstream import (
    UpstreamBusy,
    UpstreamConnectError,
    UpstreamError,
    UpstreamReset,
    UpstreamTimeout,
    buffered_body,
    error_text,
    header_map,
    read_body,
    read_chunk,
    scrub_str,
)
from switchyard.sidecar.watchdog import Watch

log = logging.getLogger("switchyard.request")


@dataclass
class Miss:
    """How one attempt ended when it did not serve the request."""

    failure: Failure
    error: GatewayError | None = None  # set when the failure is passed to the client as is


@dataclass(kw_only=True)
class Attempt:
    """Everything one try of one tier needs; the functions below take only this."""

    request: web.Request
    rt: Runtime
    ex: Exchange
    binding: CompiledBinding
    tier: CompiledTier
    call: UpstreamCall
    lease: TierLease
    decision: Decision
    cross: bool
    parsed: n.Request | None
    synth_stream: bool  # the client streams but the tier is asked for a whole answer
    deadline: float | None  # loop clock: the request's own deadline over the whole chain
    first_share: float | None  # loop clock: this tier's share of the deadline until first content
    egress: Adapter = field(init=False)
    watch: Watch = field(init=False)  # every upstream wait's deadline (the sidecar's one watchdog)
    first_deadline: float = 0.0  # loop clock: the first content must arrive by then
    deadline_free_first_byte: float = 0.0  # what first_deadline would be without the request deadline
    total_deadline: float = 0.0  # loop clock: the whole attempt must end by then
    broken: Failure | None = None  # the stream's failure after content had started (for its trace)

    def __post_init__(self) -> None:
        self.egress = adapter_for(self.tier.protocol)
        self.watch = self.rt.watchdog.watch()

    @property
    def passthrough(self) -> bool:
        """The upstream's bytes go to the client unchanged (same protocol, no rewrite)."""
        return not self.cross and not self.decision.structural

    def timed_out(self, phase: str) -> Failure:
        """A timeout: the request's deadline (nobody's fault) or the tier's own limit."""
        now = asyncio.get_running_loop().time()
        if self.deadline is not None and now >= self.deadline - 0.001:
            return Failure(classify.DEADLINE, "spent")
        if phase == "first-byte" and self.first_share is not None and now >= self.first_share - 0.001 and (
            self.first_share < self.deadline_free_first_byte
        ):
            return Failure(classify.DEADLINE, "share")
        return Failure(classify.TIMEOUT, phase)

    def encoder(self) -> Any:
        alias = self.parsed.model if self.parsed is not None else ""
        return self.ex.ingress.stream_encoder(alias=alias, request=self.parsed)

    def commit(self) -> None:
        """This tier serves: fill in what the headers and the log line say."""
        ex = self.ex
        ex.served_by = self.tier
        ex.served_key = self.lease.key.index if self.lease.key is not None else None
        ex.degraded = [(f, a) for f, a in self.decision.degraded if a not in ("skip-tier", "reject")]
        ex.degraded += self.call.notes
        ex.ttft = time.monotonic() - ex.started
        ex.status = 200

    def succeeded(self) -> None:
        rt, binding, tier = self.rt, self.binding, self.tier
        self.lease.succeeded()
        rt.metrics.tier(binding, tier).attempt("ok")
        rt.last_used[binding_key(binding)] = LastUsed(tier.index, tier.source, tier.model, time.time())
        rt.metrics.set_active_tier(binding.name, tier.index)
        self.ex.outcome = "success"


async def attempt(at: Attempt) -> web.StreamResponse | Miss:
    """Send one attempt: the client's response if this tier answered it, else a Miss."""
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    tier = at.tier
    limit = at.deadline if at.deadline is not None else float("inf")
    at.total_deadline = min(t0 + tier.timeouts.total_seconds, limit)
    at.deadline_free_first_byte = min(t0 + tier.timeouts.first_byte_seconds, at.total_deadline)
    share = at.first_share if at.first_share is not None else float("inf")
    at.first_deadline = min(at.deadline_free_first_byte, share)
    resp: aiohttp.ClientResponse | None = None
    try:
        async with at.rt.upstreams.slot(tier, until=at.first_deadline):  # the source's pool: held to the end
            connect = min(tier.timeouts.connect_seconds, max(0.001, at.first_deadline - loop.time()))
            try:
                with at.watch.until(at.first_deadline):
                    resp = await at.rt.upstreams.open(at.call, connect_seconds=connect, allow_link_local=at.tier.allow_link_local)
            except TimeoutError:
                raise UpstreamTimeout("first-byte") from None

            if resp.status >= 300:
                return await _error_answer(at, resp)
            if at.call.stream:
                return await _stream(at, resp)
            return await _whole(at, resp)
    except UpstreamBusy:  # the gateway's own limit: nobody's fault, no verdict on the tier
        return Miss(Failure(classify.BUSY, "pool", None))
    except UpstreamTimeout as exc:
        return Miss(at.timed_out(exc.phase))
    except UpstreamConnectError as exc:
        return Miss(Failure(classify.CONNECT_ERROR, str(exc)))
    except UpstreamReset:
        return Miss(Failure(classify.CONNECT_ERROR, "reset"))
    except _Empty as exc:
        return Miss(Failure(classify.EMPTY, exc.detail))
    except _StreamFailed as exc:
        return Miss(exc.failure, exc.error)
    finally:
        if resp is not None:
            resp.close()
        at.rt.metrics.tier(at.binding, tier).upstream_latency(loop.time() - t0)


def _ran_out(finish: n.FinishReason | None, usage: n.Usage | None) -> bool:
    """An answer with no visible content that stopped because it reached its token limit
    (a reasoning model that spent max_completion_tokens thinking; Anthropic max_tokens;
    Gemini MAX_TOKENS) is an answer (promise 2 is about answers with nothing and no
    reason): relayed with its finish reason, not a failure. Usage, when the upstream
    sent any, must not say it produced nothing (a same-protocol OpenAI stream carries
    usage only when the client asked for it)."""
    return finish == "length" and (usage is None or usage.output_tokens > 0)


class _Empty(Exception):
    def __init__(self, detail: str) -> None:
        self.detail = detail


class _StreamFailed(Exception):
    """An in-stream error before any content: a failure like an HTTP error answer."""

    def __init__(self, failure: Failure, error: GatewayError | None = None) -> None:
        self.failure = failure
        self.error = error


async def _error_answer(at: Attempt, resp: aiohttp.ClientResponse) -> Miss:
    tier, binding = at.tier, at.binding
    headers = header_map(resp.headers)
    try:
        raw = buffered_body(resp, 1 << 20)
        if raw is None:
            with at.watch.until(at.total_deadline):
                raw = await read_body(resp, 1 << 20)
    except (TimeoutError, UpstreamError):
        raw = b""
    text = error_text(raw, tier)
    info = at.egress.read_error(resp.status, text, headers)
    # A "model not found" is the tier's only when it names the tier's own model.
    names_our_model = info.model_not_found and tier.model.lower().encode() in text.lower()
    failure = classify.from_status(
        resp.status, headers, wall_now=time.time(), quota=info.quota, auth=info.auth, body_retry_after=info.retry_after,
        model_not_found=names_our_model,
    )
    if failure.reason in binding.fallback_on or failure.reason in classify.ALWAYS_FALL_BACK:
        return Miss(failure)
    # Not a fallback reason: the client gets the upstream's error, in its own protocol.
    if failure.reason == classify.AUTH_ERROR:
        message = f"tier {tier.index} ({tier.source}) rejected the gateway's credential for it (HTTP {resp.status})"
        kind, status = ErrorKind.UPSTREAM, 502  # the client's credentials are fine; ours are not
    else:
        message = f"tier {tier.index} ({tier.source}/{tier.model}) answered HTTP {resp.status}: {info.message}"
        kind, status = errors.kind_for_status(resp.status), resp.status
    err = GatewayError(
        kind,
        message,
        status=status,
        code="upstream_error",
        binding=binding.name,
        trail=list(at.ex.trail),
        retry_after=failure.retry_after,
    )
    return Miss(failure, err)


async def _whole(at: Attempt, resp: aiohttp.ClientResponse) -> web.StreamResponse:
    raw = buffered_body(resp, at.rt.max_upstream_body_bytes)
    if raw is None:  # still arriving: wait for the rest within the attempt's limit
        try:
            with at.watch.until(at.total_deadline):
                raw = await read_body(resp, at.rt.max_upstream_body_bytes)
        except TimeoutError:
            raise UpstreamTimeout("total") from None
    ex = at.ex
    # Relayed unchanged (same protocol): the verdict is read off the JSON, no neutral answer.
    relay_raw = at.passthrough and not at.synth_stream and not ex.store_turn
    answer: n.Response | None = None
    try:
        obj = orjson.loads(raw) if raw else None
        if not isinstance(obj, dict):
            raise _Empty("no body" if not raw else "not a JSON object")
        if relay_raw:
            verdict = judge(at.egress, obj)
        else:
            answer = at.egress.parse_response(obj)
            verdict = response_verdict(answer)
    except (orjson.JSONDecodeError, UpstreamFormatError, ValueError, TypeError, AttributeError) as exc:
        raise _Empty("malformed") from exc
    if not (verdict.content or _ran_out(verdict.finish, verdict.usage)):
        raise _Empty("no content")

    at.commit()
    ex.usage = verdict.usage
    at.succeeded()
    if ex.store_turn:
        ex.answer = answer
    if at.synth_stream:
        assert answer is not None
        out = await _open_stream(at.request, ex)
        enc = at.encoder()
        body = enc.start()
        for ev in synthesize_events(answer):
            body += enc.encode(ev)
        ex.response_id = getattr(enc, "id", None)
        await out.write(body + enc.finish())
        await out.write_eof()
        return out
    if at.passthrough:
        payload = raw  # same protocol: the upstream's bytes, unchanged
        ex.response_id = obj.get("id") if isinstance(obj.get("id"), str) else None
    else:
        assert answer is not None
        alias = at.parsed.model if at.parsed is not None else ""
        rendered = ex.ingress.render_response(answer, alias=alias, request=at.parsed)
        ex.response_id = rendered.get("id") if isinstance(rendered.get("id"), str) else None
        payload = orjson.dumps(rendered)
    return web.Response(body=payload, status=200, headers=ex.headers(), content_type="application/json")


def synthesize_events(answer: n.Response) -> list[n.Event]:
    """A complete answer as the event stream it would have been (for `streaming: map`)."""
    events: list[n.Event] = [n.StreamStart(answer.id, answer.model)]
    for ci, choice in enumerate(answer.choices):
        call = 0
        for p in choice.parts:
            if isinstance(p, n.Thinking):
                events.append(n.ThinkingDelta(p.text, p.signature, p.redacted, ci, p.origin))
            elif isinstance(p, n.Text):
                events.append(n.TextDelta(p.text, ci))
            elif isinstance(p, n.ToolCall):
                events.append(n.ToolCallStart(call, p.id, p.name, ci))
                events.append(n.ToolCallDelta(call, p.arguments, ci))
                call += 1
        events.append(n.StreamFinish(choice.finish_reason, ci, choice.stop_sequence))
    if answer.usage is not None:
        events.append(n.StreamUsage(answer.usage))
    return events


class _Stream(web.StreamResponse):
    """A stream whose head waits for its first bytes: prepared at the first content
    event, the head and that event leave in one write (aiohttp sends a buffered head with
    the first chunk)."""

    _send_headers_immediately = False


async def _open_stream(request: web.Request, ex: Exchange) -> web.StreamResponse:
    headers = ex.headers()
    headers["Content-Type"] = ex.ingress.sse_content_type
    headers["Cache-Control"] = "no-cache"
    out = _Stream(status=200, headers=headers)
    await out.prepare(request)
    return out


class Relay:
    """Turns decoded upstream events into client bytes: the raw bytes on passthrough,
    the client protocol's encoding otherwise. Remembers the usage seen."""

    def __init__(self, at: Attempt) -> None:
        self.passthrough = at.passthrough
        self.encoder = None if self.passthrough else at.encoder()
        self.usage: n.Usage | None = None
        # what the stream said, put together, when it is to be kept (Responses store)
        self.transcript = n.Transcript() if at.ex.store_turn else None

    def render(self, items: list[DecodedEvent]) -> bytes:
        buf = b""
        for d in items:
            for ev in d.events:
                if isinstance(ev, n.StreamUsage):
                    self.usage = ev.usage
                if self.transcript is not None:
                    self.transcript.feed(ev)
            if self.encoder is None:
                buf += d.raw
            else:
                for ev in d.events:
                    if not isinstance(ev, n.StreamError):
                        buf += self.encoder.encode(ev)
        return buf


async def _stream(at: Attempt, resp: aiohttp.ClientResponse) -> web.StreamResponse:
    """Relay a stream; commit to the client only at the first content event."""
    ex = at.ex
    decoder = GuardedDecoder(at.egress.stream_decoder())
    relay = Relay(at)

    # ---- before the first content event: nothing has reached the client
    pending: list[DecodedEvent] = []
    ended = False
    while True:
        try:
            with at.watch.until(at.first_deadline):
                chunk = await read_chunk(resp)
        except TimeoutError:
            raise UpstreamTimeout("first-byte") from None
        ended = not chunk
        decoded = decoder.feed(chunk) if chunk else decoder.close()
        for d in decoded:
            err = next((e for e in d.events if isinstance(e, n.StreamError)), None)
            if err is not None:
                raise _StreamFailed(_stream_error_failure(err))
            pending.append(d)
        if any(n.is_content(ev) for d in decoded for ev in d.events):
            break
        if ended:
            events = [ev for d in pending for ev in d.events]
            finish = next((ev.reason for ev in events if isinstance(ev, n.StreamFinish)), None)
            usage = next((ev.usage for ev in events if isinstance(ev, n.StreamUsage)), None)
            if _ran_out(finish, usage):
                break  # a whole answer, just without visible content: relay it with its reason
            raise _Empty("zero events" if not pending else "no content events")

    at.commit()
    out = await _open_stream(at.request, ex)

    # ---- content has started: a failure now ends the stream with an error event
    failure: Failure | None = None
    message = ""
    upstream_error_sent = False  # same protocol: the upstream's own error event was relayed
    try:
        await _write(out, (relay.encoder.start() if relay.encoder else b"") + relay.render(pending))
        while not ended:
            try:
                with at.watch.until(at.total_deadline):
                    chunk = await read_chunk(resp)
            except TimeoutError:
                failure = at.timed_out("total")
                message = (
                    "the request's deadline ran out mid-stream"
                    if failure.reason == classify.DEADLINE
                    else "the upstream stream exceeded its time limit"
                )
                break
            if not chunk:
                ended = True
                await _write(out, relay.render(decoder.close()))
                break
            decoded = decoder.feed(chunk)
            cut = next((i for i, d in enumerate(decoded) if any(isinstance(e, n.StreamError) for e in d.events)), None)
            if cut is None:
                await _write(out, relay.render(decoded))
                continue
            await _write(out, relay.render(decoded[:cut]))
            err = next(e for e in decoded[cut].events if isinstance(e, n.StreamError))
            failure = _stream_error_failure(err)
            message = f"the upstream reported an error mid-stream: {scrub_str(err.message, at.tier)}"
            if at.passthrough and decoded[cut].raw:  # empty raw: nothing forwardable (malformed)
                await _write(out, error_text(decoded[cut].raw, at.tier))
                upstream_error_sent = True
            break
    except UpstreamReset:
        failure, message = Failure(classify.CONNECT_ERROR, "reset"), "the upstream connection broke mid-stream"
    except asyncio.CancelledError:
        if not at.rt.drain_expired:
            raise  # the client went away: nobody to tell
        uncancel()
        return await _end_stream_early(at, out, relay, ErrorKind.UNAVAILABLE, DRAIN_MESSAGE, "drained")
    except Exception:  # a bug of ours mid-stream: still end the stream with an error event
        log.exception("stream relay failed for binding %s tier %d", at.binding.name, at.tier.index)
        return await _end_stream_early(at, out, relay, ErrorKind.INTERNAL, "the gateway failed while relaying this stream", "broken-stream")

    if failure is None and not decoder.complete:
        failure, message = Failure(classify.SERVER_ERROR, "truncated"), "the upstream stream ended without its end marker"

    ex.usage = relay.usage
    if failure is None:
        if relay.encoder is not None:
            await _write(out, relay.encoder.finish())
        await out.write_eof()
        at.succeeded()
        if relay.transcript is not None:
            ex.answer = relay.transcript.answer()
            ex.response_id = getattr(relay.encoder, "id", None) or relay.transcript.id or None
        return out

    # Broken after content: an error event in the client's protocol, never a clean end.
    ex.outcome = "broken-stream"
    ex.error = message
    at.broken = failure
    at.lease.failed(failure)
    at.rt.metrics.tier(at.binding, at.tier).attempt(failure.reason)
    if not upstream_error_sent:
        enc = relay.encoder or at.encoder()
        kind = ErrorKind.TIMEOUT if failure.reason in (classify.TIMEOUT, classify.DEADLINE) else ErrorKind.UPSTREAM
        await _write(out, enc.error(errors.DEFAULT_STATUS[kind], kind.value, message))
    await out.write_eof()
    return out


async def _end_stream_early(
    at: Attempt, out: web.StreamResponse, relay: Relay, kind: ErrorKind, message: str, outcome: str
) -> web.StreamResponse:
    """End a started stream that is not the tier's fault (drain deadline, our own bug):
    the client protocol's error event, no verdict on the tier."""
    at.ex.outcome, at.ex.error = outcome, message
    at.lease.release()
    enc = relay.encoder or at.encoder()
    try:
        await _write(out, enc.error(errors.DEFAULT_STATUS[kind], kind.value, message))
        await out.write_eof()
    except (ConnectionError, RuntimeError):
        pass  # the client is gone too
    return out


def _stream_error_failure(err: n.StreamError) -> Failure:
    if err.status == 429:
        return Failure(classify.RATE_LIMITED, "in-stream", 429)
    return Failure(classify.SERVER_ERROR, "in-stream", err.status if err.status >= 500 else 502)


async def _write(out: web.StreamResponse | None, data: bytes) -> None:
    if out is not None and data:
        await out.write(data)
