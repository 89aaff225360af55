"""The flow of one request, top to bottom.

    read body -> parse JSON (ingress protocol) -> resolve binding (alias or header)
    -> for each tier of the binding's chain:
         resolvable? breaker admits? capability step (reject / skip / strip / map)
         -> build the call (same protocol: edit the client's JSON; else via neutral form)
         -> send with the tier's credential and time limits
         -> success with content: answer (or stream) in the client's protocol, done
         -> failure before the first content byte: record it; next tier if the reason is
            in fallbackOn, else answer the upstream's error in the client's protocol
    -> every tier out: a protocol-shaped error listing each tier and why
    -> metrics, response headers, one log line with the decision trail

Promise 2 lives in ``_stream``: nothing is sent to the client before the first content
event, so a tier that fails before that can still be replaced; after it, a failure ends
the stream with the client protocol's error event and never with its clean end marker.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from switchyard.sidecar import errors
from switchyard.sidecar.contract.config import CompiledBinding, CompiledTier
from switchyard.sidecar.errors import ErrorKind, GatewayError, TierTrail
from switchyard.sidecar.routing import breaker, classify
from switchyard.sidecar.routing.caller import identify, metric_label
from switchyard.sidecar.routing.classify import Failure
from switchyard.sidecar.routing.profile import Decision, apply_to_request, decide, degraded_header
from switchyard.sidecar.state import LastUsed, Runtime, Snapshot, binding_key
from switchyard.sidecar.translate import neutral as n
from switchyard.sidecar.translate.base import (
    Adapter,
    DecodedEvent,
    GuardedDecoder,
    RequestError,
    UpstreamCall,
    UpstreamFormatError,
    adapter_for,
)
from switchyard.sidecar.upstream import (
    UpstreamConnectError,
    UpstreamError,
    UpstreamReset,
    UpstreamTimeout,
    buffered_body,
    header_map,
    read_body,
    read_chunk,
)

log = logging.getLogger("switchyard.request")

RUNTIME: web.AppKey[Runtime] = web.AppKey("runtime", Runtime)

H_BINDING = "x-switchyard-binding"
H_TIER = "x-switchyard-tier"
H_SOURCE = "x-switchyard-source"
H_MODEL = "x-switchyard-model"
H_REASON = "x-switchyard-fallback-reason"
H_DEGRADED = "x-switchyard-degraded"


@dataclass
class Exchange:
    """What one request did, for headers, metrics and the log line."""

    ingress: Adapter
    started: float
    caller: str = "unknown"
    binding: CompiledBinding | None = None
    stream: bool = False
    trail: list[TierTrail] = field(default_factory=list)
    served_by: CompiledTier | None = None
    degraded: list[tuple[str, str]] = field(default_factory=list)
    outcome: str = "rejected"
    status: int = 0
    ttft: float | None = None
    usage: n.Usage | None = None
    error: str | None = None

    def headers(self) -> dict[str, str]:
        h: dict[str, str] = {}
        if self.binding is not None:
            h[H_BINDING] = self.binding.name
        if self.served_by is not None:
            t = self.served_by
            h[H_TIER] = str(t.index)
            h[H_SOURCE] = t.source
            h[H_MODEL] = t.model
        if self.trail:
            h[H_REASON] = header_safe(", ".join(t.short() for t in self.trail))
        if self.degraded:
            # Unknown-field names come from the client's JSON keys: never raw in a header.
            h[H_DEGRADED] = header_safe(degraded_header(self.degraded))
        return h


_UNSAFE_IN_HEADER = re.compile(r"[^\x20-\x7e]")


def header_safe(text: str) -> str:
    """Printable ASCII only: a control character (CR, LF ...) would be a header injection
    (aiohttp refuses to send it, which failed the whole answer), anything else is escaped."""
    if text.isascii() and text.isprintable():
        return text
    return _UNSAFE_IN_HEADER.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


@dataclass
class _Outcome:
    """How one attempt ended when it did not serve the request."""

    failure: Failure
    error: GatewayError | None = None  # set when the failure is passed to the client as is


class _Served(Exception):
    """Internal: the attempt answered the client; carries the response."""

    def __init__(self, response: web.StreamResponse) -> None:
        self.response = response


# =========================================================================== entry


async def handle(
    request: web.Request,
    ingress: Adapter,
    *,
    path_model: str | None = None,
    stream: bool | None = None,
) -> web.StreamResponse:
    """Serve one API request spoken in the ``ingress`` protocol."""
    rt = request.app[RUNTIME]
    ex = Exchange(ingress=ingress, started=time.monotonic())
    rt.begin()
    try:
        return await _serve(request, rt, ex, path_model, stream)
    except GatewayError as err:
        ex.status = err.status
        ex.error = err.full_message()
        if ex.outcome not in ("all-tiers-failed", "upstream-error"):
            ex.outcome = "rejected"
        return _error_response(ex, err)
    except asyncio.CancelledError:
        if rt.drain_expired and ex.status != 200:
            # Sidecar.stop cancelled us at the drain deadline: answer, do not vanish.
            _uncancel()
            err = GatewayError(ErrorKind.UNAVAILABLE, DRAIN_MESSAGE, code="draining", retry_after=1)
            ex.status, ex.outcome, ex.error = err.status, "drained", err.message
            return _error_response(ex, err)
        ex.outcome = "client-gone"
        raise
    except (RecursionError, orjson.JSONEncodeError) as exc:
        # A body nested deeper than a translator or orjson's encoder goes (orjson reads
        # 1024 levels but writes 254): the request's fault, answered as such.
        if ex.status == 200:
            raise
        err = GatewayError(ErrorKind.INVALID_REQUEST, f"request body is nested too deeply to be translated ({type(exc).__name__})")
        ex.status, ex.outcome, ex.error = err.status, "rejected", err.message
        return _error_response(ex, err)
    finally:
        rt.end()
        _account(rt, ex)


DRAIN_MESSAGE = "the gateway is shutting down; retry"


def _uncancel() -> None:
    """A cancellation we answer instead of propagating: let the task run on cleanly."""
    task = asyncio.current_task()
    if task is not None:
        task.uncancel()


async def _serve(
    request: web.Request, rt: Runtime, ex: Exchange, path_model: str | None, stream: bool | None
) -> web.StreamResponse:
    if rt.draining:
        raise GatewayError(ErrorKind.UNAVAILABLE, "the gateway is shutting down; retry", code="draining", retry_after=1)
    snap = rt.snapshot
    if snap is None:
        raise GatewayError(
            ErrorKind.UNAVAILABLE,
            "this sidecar has not received its configuration yet; no request is routed until it has",
            code="not_configured",
            retry_after=5,
        )
    body = await read_json(request, rt.max_body_bytes)
    ingress = ex.ingress
    try:
        ingress.check_request(body)
    except RequestError as exc:
        raise GatewayError(ErrorKind.INVALID_REQUEST, exc.message, param=exc.param) from exc
    ex.caller = identify(request.headers.get("x-switchyard-caller"), request.headers.get("User-Agent"))
    binding = resolve_binding(request, snap, ingress, body, path_model, ex.caller)
    ex.binding = binding
    ex.stream = ingress.request_streams(body) if stream is None else stream
    if binding.unbound:
        raise GatewayError(
            ErrorKind.UNAVAILABLE,
            f"binding {binding.name} is deliberately unbound (spec.primary is null); it serves no model",
            code="binding_unbound",
            binding=binding.name,
        )
    if not binding.tiers:
        raise GatewayError(ErrorKind.UNAVAILABLE, f"binding {binding.name} has no tiers", code="no_tiers", binding=binding.name)
    return await _walk_chain(request, rt, ex, binding, body, path_model)


async def read_json(request: web.Request, limit: int) -> dict[str, Any]:
    if request.content_length is not None and request.content_length > limit:
        raise GatewayError(ErrorKind.REQUEST_TOO_LARGE, f"request body larger than {limit} bytes")
    seconds = request.app[RUNTIME].body_read_seconds
    try:
        if request.content.is_eof():  # all of it came with the head: nothing to wait for
            raw = await read_request_body(request.content, limit + 1)
        else:
            async with asyncio.timeout(seconds):
                raw = await read_request_body(request.content, limit + 1)
    except (aiohttp.ClientPayloadError, ConnectionError) as exc:
        raise GatewayError(ErrorKind.INVALID_REQUEST, "request body could not be read") from exc
    except TimeoutError as exc:  # a client dribbling its body (slowloris) does not hold us
        raise GatewayError(
            ErrorKind.INVALID_REQUEST, f"request body not received within {seconds:g}s", status=408, code="request_timeout"
        ) from exc
    if len(raw) > limit:
        raise GatewayError(ErrorKind.REQUEST_TOO_LARGE, f"request body larger than {limit} bytes")
    if not raw:
        raise GatewayError(ErrorKind.INVALID_REQUEST, "request body is empty; a JSON object is required")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise GatewayError(ErrorKind.INVALID_REQUEST, f"request body is not valid JSON: {exc.msg} at position {exc.pos}") from exc
    if not isinstance(body, dict):
        raise GatewayError(ErrorKind.INVALID_REQUEST, "request body must be a JSON object")
    if raw.count(b"{") + raw.count(b"[") > MAX_JSON_DEPTH and not _shallow(body):
        raise GatewayError(ErrorKind.INVALID_REQUEST, f"request body is nested more than {MAX_JSON_DEPTH} levels deep")
    return body


async def read_request_body(content: aiohttp.StreamReader, most: int) -> bytes:
    """The whole body, or its first ``most`` bytes. (``StreamReader.read(n)`` returns what
    has arrived so far, not n bytes: a body larger than one TCP read was cut short.)"""
    first = await content.read(most)
    if not first or len(first) >= most or content.is_eof():
        return first
    parts, size = [first], len(first)
    while size < most and (chunk := await content.read(most - size)):
        parts.append(chunk)
        size += len(chunk)
    return b"".join(parts)


# orjson reads 1024 levels but writes only 254, and a translation or an echo (the
# Responses API echoes metadata) wraps a client's JSON in a few levels more: a body that
# deep would fail after the upstream answered. Refused up front, in the caller's protocol.
MAX_JSON_DEPTH = 190
_ORJSON_WRITE_DEPTH = 254


def _shallow(body: dict[str, Any]) -> bool:
    """At most MAX_JSON_DEPTH levels, checked by orjson's own writer (C speed, no walk):
    the body wrapped in enough lists that it fails exactly when it is too deep."""
    probe: Any = body
    for _ in range(_ORJSON_WRITE_DEPTH - MAX_JSON_DEPTH):
        probe = [probe]
    try:
        orjson.dumps(probe)
    except orjson.JSONEncodeError:
        return False
    return True


def resolve_binding(
    request: web.Request,
    snap: Snapshot,
    ingress: Adapter,
    body: dict[str, Any],
    path_model: str | None,
    caller: str = "unknown",
) -> CompiledBinding:
    """The binding a request is for: the ``x-switchyard-binding`` header; else the model
    alias the body (or, for Gemini, the path) names, if that binding serves the caller;
    else the binding that lists the caller in ``callers``. Raises a GatewayError otherwise."""
    named = request.headers.get(H_BINDING)
    if named:
        b = snap.by_name.get(named)
        if b is None:
            raise GatewayError(ErrorKind.NOT_FOUND, f"no binding named {named!r} on this gateway", code="unknown_binding", param=H_BINDING)
        return b
    model = path_model if path_model is not None else ingress.request_model(body)
    if not model:
        raise GatewayError(ErrorKind.INVALID_REQUEST, "'model' is required: name one of this gateway's aliases", param="model")
    b = snap.resolve(model)
    if b is not None and b.callers is not None and caller not in b.callers:
        # The alias's binding does not serve this caller: a binding that routes this
        # caller takes it, else it is refused.
        routed = snap.by_caller.get(caller)
        if routed is None:
            raise GatewayError(
                ErrorKind.PERMISSION,
                f"binding {b.name} serves callers {', '.join(b.callers)}; this request comes from {caller}",
                code="caller_not_allowed",
                binding=b.name,
            )
        return routed
    if b is None:
        b = snap.by_caller.get(caller)
    if b is None:
        known = ", ".join(snap.aliases()[:20]) or "none"
        raise GatewayError(
            ErrorKind.NOT_FOUND,
            f"model {model!r} is not an alias of any binding on this gateway (known: {known})",
            code="model_not_found",
            param="model",
        )
    return b


# ======================================================================= the chain


# Client deadline headers, in seconds: ours, then what official SDKs send with their
# timeout (anthropic/openai: x-stainless-*; google-genai: X-Server-Timeout).
DEADLINE_HEADERS = ("x-switchyard-deadline-seconds", "x-stainless-timeout", "x-stainless-read-timeout", "x-server-timeout")
MIN_ATTEMPT_SECONDS = 0.5  # a tier is not tried with less than this left of the deadline


def request_deadline(request: web.Request, binding: CompiledBinding) -> float | None:
    """Seconds this request may take over the whole chain, or None for no bound."""
    limits = [binding.deadline_seconds] if binding.deadline_seconds else []
    for name in DEADLINE_HEADERS:
        value = request.headers.get(name)
        if value:
            try:
                seconds = float(value)
            except ValueError:
                continue
            if 0 < seconds < 1e6:
                limits.append(seconds)
    return min(limits) if limits else None


def _share(deadline: float | None, now: float, later: int) -> float | None:
    """Until its first content, a tier may use its share of what is left of the deadline,
    so one that hangs leaves time for the tiers after it; once content flows it may use
    all that is left."""
    if deadline is None:
        return None
    return now + (deadline - now) / (1 + later)


@dataclass
class _Tally:
    """What the passed-over tiers add up to: the status of the final error if none serves."""

    statuses: list[int | None] = field(default_factory=list)
    retry_afters: list[float] = field(default_factory=list)
    timeouts_only: bool = True
    deadline_hit: bool = False

    def skip(
        self, rt: Runtime, ex: Exchange, binding: CompiledBinding, tier: CompiledTier, outcome: str, cls: str,
        reason: str, status: int | None = None, retry_after: float | None = None,
    ) -> None:
        ex.trail.append(TierTrail(tier.index, tier.source, tier.model, outcome))
        rt.metrics.fallbacks.labels(binding.name, str(tier.index), cls, reason).inc()
        self.statuses.append(status)
        if retry_after:
            self.retry_afters.append(retry_after)
        if cls == "deadline":
            self.deadline_hit = True
        if reason != classify.TIMEOUT:
            self.timeouts_only = False


_SKIP_STATUS = {"rate-limited": 429, "breaker": 503, "disabled": 502}


async def _walk_chain(
    request: web.Request, rt: Runtime, ex: Exchange, binding: CompiledBinding, body: dict[str, Any], path_model: str | None
) -> web.StreamResponse:
    ingress = ex.ingress
    used = ingress.features_used(body)
    parsed: n.Request | None = None
    tally = _Tally()
    forward = {k: v for k, v in request.headers.items() if k.lower() in ingress.forward_headers}
    loop = asyncio.get_running_loop()
    budget = request_deadline(request, binding)
    deadline = loop.time() + budget if budget is not None else None

    usable = [t for t in binding.tiers if not t.problem and (not t.incompatible or t.degradable)]
    for tier in binding.tiers:
        if tier.problem:
            tally.skip(rt, ex, binding, tier, f"unresolvable({tier.problem.split(':')[0]})", "unresolvable", "unresolvable")
            continue
        if tier.incompatible and not tier.degradable:
            tally.skip(rt, ex, binding, tier, f"incompatible({','.join(tier.incompatible)})", "capability", "incompatible")
            continue
        if deadline is not None and deadline - loop.time() < MIN_ATTEMPT_SECONDS:
            left = max(0.0, deadline - loop.time())
            tally.skip(rt, ex, binding, tier, f"deadline({left:.1f}s left)", "deadline", "deadline", 504)
            continue
        health = rt.health(binding, tier)
        seen = health.transition_count
        now, wall = rt.clock(), time.time()
        admission = breaker.admit(health, binding.breaker, now, wall)
        rt.note_transitions(binding, tier, health, seen)
        if not admission.allowed:
            if admission.probe_due:
                rt.prober.kick(binding, tier)
            wait = max(0.0, health.rate_limited_until - now) if admission.kind == "rate-limited" else None
            tally.skip(
                rt, ex, binding, tier, admission.reason,
                "permanent" if admission.kind == "disabled" else admission.kind,
                admission.reason.split("(")[0], _SKIP_STATUS.get(admission.kind), wait,
            )
            continue

        cross = tier.protocol != ingress.protocol
        extras: list[str] | None = None
        if cross:
            parsed = parsed or _parse(ingress, body, path_model, ex.stream)
            if parsed.origin != tier.protocol and parsed.extras:
                extras = sorted(parsed.extras)
        decision = decide(used, tier.profile, extras=extras)
        _count_degraded(rt, binding, tier, decision.degraded)
        if decision.reject:
            breaker.release(health, admission)
            feats = ", ".join(decision.reject)
            raise GatewayError(
                ErrorKind.INVALID_REQUEST,
                f"tier {tier.index} ({tier.source}/{tier.model}) does not support {feats}, and its profile says reject",
                code="unsupported_feature",
                param=decision.reject[0],
                binding=binding.name,
                trail=ex.trail,
            )
        if decision.skip is not None:
            breaker.release(health, admission)
            tally.skip(rt, ex, binding, tier, f"skip-tier({decision.skip})", "capability", "skip-tier")
            continue

        synth_stream = ex.stream and "streaming" in decision.edits
        if not cross and not decision.structural:
            notes: list[tuple[str, str]] = []
            call = ingress.build_passthrough_call(ingress.prepare_passthrough(body, tier, decision.edits, notes), tier, forward)
            call.notes += notes
        else:
            try:
                parsed = parsed or _parse(ingress, body, path_model, ex.stream)
                req = apply_to_request(parsed, decision.edits)
                if synth_stream:
                    req = dataclasses.replace(req, stream=False)
                call = adapter_for(tier.protocol).build_call(req, tier, None if cross else forward)
            except RequestError as exc:
                breaker.release(health, admission)
                raise GatewayError(ErrorKind.INVALID_REQUEST, exc.message, param=exc.param, binding=binding.name, trail=ex.trail) from exc
        if call.notes:  # the adapter's own changes, counted like the profile's
            _count_degraded(rt, binding, tier, call.notes)

        try:
            result = await _attempt(
                _Attempt(
                    request, rt, ex, binding, tier, call, admission, decision, cross, parsed, synth_stream, deadline,
                    _share(deadline, loop.time(), sum(1 for t in usable if t.index > tier.index)),
                )
            )
        except _Served as served:
            return served.response
        failure = result.failure
        if failure.reason in classify.TIER_FAULTS:
            seen = health.transition_count
            breaker.record_failure(
                health, binding.breaker, admission, failure.cls, failure.trail_text(), rt.clock(), time.time(),
                failure.retry_after, tier.fingerprint() if failure.cls == breaker.PERMANENT else None,
            )
            rt.note_transitions(binding, tier, health, seen)
        else:  # the request's fault, or its deadline's: not the tier's
            breaker.release(health, admission)
        rt.metrics.attempts.labels(binding.name, str(tier.index), tier.source, failure.reason).inc()
        always = failure.reason in classify.ALWAYS_FALL_BACK or failure.reason == classify.DEADLINE
        if result.error is None and failure.reason not in binding.fallback_on and not always:
            result.error = _failure_error(binding, tier, failure, ex)
        if result.error is not None:  # not a fallback reason: the client gets this error
            ex.outcome = "upstream-error"
            ex.served_by = tier
            raise result.error
        # Our key being refused is never reported to the client as its own 401/403.
        status = {classify.AUTH_ERROR: 502, classify.DEADLINE: 504}.get(failure.reason, failure.status)
        tally.skip(rt, ex, binding, tier, failure.trail_text(), failure.cls, failure.reason, status, failure.retry_after)

    ex.outcome = "all-tiers-failed"
    raise _all_failed(binding, ex, tally, budget)


def _failure_error(binding: CompiledBinding, tier: CompiledTier, failure: Failure, ex: Exchange) -> GatewayError:
    """A transport failure whose reason the binding does not fall back on, as the client's error."""
    kind = {
        classify.TIMEOUT: ErrorKind.TIMEOUT,
        classify.RATE_LIMITED: ErrorKind.RATE_LIMITED,
    }.get(failure.reason, ErrorKind.UPSTREAM)
    return GatewayError(
        kind,
        f"tier {tier.index} ({tier.source}/{tier.model}) failed: {failure.trail_text()} "
        f"(not in this binding's fallbackOn)",
        code="upstream_error",
        binding=binding.name,
        trail=list(ex.trail),
        retry_after=failure.retry_after,
    )


def _parse(ingress: Adapter, body: dict[str, Any], path_model: str | None, stream: bool) -> n.Request:
    try:
        return ingress.parse_request(body, path_model=path_model, stream=stream)
    except RequestError as exc:
        raise GatewayError(ErrorKind.INVALID_REQUEST, exc.message, param=exc.param) from exc


def _all_failed(binding: CompiledBinding, ex: Exchange, tally: _Tally, budget: float | None) -> GatewayError:
    statuses = tally.statuses
    kind, status, code = ErrorKind.UNAVAILABLE, 503, "all_tiers_failed"
    message = f"no tier of binding {binding.name} could serve this request"
    if tally.deadline_hit:
        kind, status, code = ErrorKind.TIMEOUT, 504, "deadline_exceeded"
        message = f"the request's deadline ({budget:g}s) was spent before any tier of binding {binding.name} served it"
    elif tally.timeouts_only and statuses:
        kind, status = ErrorKind.TIMEOUT, 504
    elif statuses and all(s is not None and s == statuses[0] for s in statuses):
        status = statuses[0]  # type: ignore[assignment]
        kind = errors.kind_for_status(status)
    return GatewayError(
        kind,
        message,
        status=status,
        code=code,
        binding=binding.name,
        trail=list(ex.trail),
        retry_after=min(tally.retry_afters) if tally.retry_afters and status == 429 else None,
    )


def _count_degraded(rt: Runtime, b: CompiledBinding, tier: CompiledTier, items: list[tuple[str, str]]) -> None:
    for label, action in items:
        feature = label.split("(")[0]
        rt.metrics.degraded.labels(b.name, str(tier.index), feature, action.split("(")[0]).inc()


# ====================================================================== one attempt


@dataclass
class _Attempt:
    """Everything one try of one tier needs; the functions below take only this."""

    request: web.Request
    rt: Runtime
    ex: Exchange
    binding: CompiledBinding
    tier: CompiledTier
    call: UpstreamCall
    admission: breaker.Admission
    decision: Decision
    cross: bool
    parsed: n.Request | None
    synth_stream: bool  # the client streams but the tier is asked for a whole answer
    deadline: float | None  # loop clock: the request's own deadline over the whole chain
    first_share: float | None  # loop clock: this tier's share of the deadline until first content
    egress: Adapter = field(init=False)
    first_deadline: float = 0.0  # loop clock: the first content must arrive by then
    deadline_free_first_byte: float = 0.0  # what first_deadline would be without the request deadline
    total_deadline: float = 0.0  # loop clock: the whole attempt must end by then

    def __post_init__(self) -> None:
        self.egress = adapter_for(self.tier.protocol)

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
        ex.degraded = [(f, a) for f, a in self.decision.degraded if a not in ("skip-tier", "reject")]
        ex.degraded += self.call.notes
        ex.ttft = time.monotonic() - ex.started
        ex.status = 200

    def succeeded(self) -> None:
        rt, binding, tier = self.rt, self.binding, self.tier
        health = rt.health(binding, tier)
        seen = health.transition_count
        breaker.record_success(health, binding.breaker, self.admission, time.time())
        rt.note_transitions(binding, tier, health, seen)
        rt.metrics.attempts.labels(binding.name, str(tier.index), tier.source, "ok").inc()
        rt.last_used[binding_key(binding)] = LastUsed(tier.index, tier.source, tier.model, time.time())
        rt.metrics.active_tier.labels(binding.name).set(tier.index)
        self.ex.outcome = "success"


async def _attempt(at: _Attempt) -> _Outcome:
    """Send one attempt. Raises ``_Served`` when the client has been answered."""
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    tier = at.tier
    limit = at.deadline if at.deadline is not None else float("inf")
    at.total_deadline = min(t0 + tier.timeouts.total_seconds, limit)
    at.deadline_free_first_byte = min(t0 + tier.timeouts.first_byte_seconds, at.total_deadline)
    share = at.first_share if at.first_share is not None else float("inf")
    at.first_deadline = min(at.deadline_free_first_byte, share)
    connect = min(tier.timeouts.connect_seconds, max(0.001, at.first_deadline - t0))
    resp: aiohttp.ClientResponse | None = None
    try:
        try:
            async with asyncio.timeout_at(at.first_deadline):
                resp = await at.rt.upstreams.open(at.call, connect_seconds=connect, allow_link_local=at.tier.allow_link_local)
        except TimeoutError:
            raise UpstreamTimeout("first-byte") from None

        if resp.status >= 300:
            return await _error_answer(at, resp)
        if at.call.stream:
            await _stream(at, resp)
        else:
            await _whole(at, resp)
        raise AssertionError("unreachable: an answered attempt raises _Served")  # pragma: no cover
    except UpstreamTimeout as exc:
        return _Outcome(at.timed_out(exc.phase))
    except UpstreamConnectError as exc:
        return _Outcome(Failure(classify.CONNECT_ERROR, str(exc)))
    except UpstreamReset:
        return _Outcome(Failure(classify.CONNECT_ERROR, "reset"))
    except _Empty as exc:
        return _Outcome(Failure(classify.EMPTY, exc.detail))
    except _StreamFailed as exc:
        return _Outcome(exc.failure, exc.error)
    except _Served:
        raise
    except BaseException:  # the client went away (CancelledError), or a bug: no verdict on the tier
        breaker.release(at.rt.health(at.binding, tier), at.admission)
        raise
    finally:
        if resp is not None:
            resp.close()
        at.rt.metrics.upstream_latency.labels(at.binding.name, str(tier.index), tier.source).observe(loop.time() - t0)


class _Empty(Exception):
    def __init__(self, detail: str) -> None:
        self.detail = detail


class _StreamFailed(Exception):
    """An in-stream error before any content: a failure like an HTTP error answer."""

    def __init__(self, failure: Failure, error: GatewayError | None = None) -> None:
        self.failure = failure
        self.error = error


async def _error_answer(at: _Attempt, resp: aiohttp.ClientResponse) -> _Outcome:
    tier, binding = at.tier, at.binding
    headers = header_map(resp.headers)
    try:
        raw = buffered_body(resp, 1 << 20)
        if raw is None:
            async with asyncio.timeout_at(at.total_deadline):
                raw = await read_body(resp, 1 << 20)
    except (TimeoutError, UpstreamError):
        raw = b""
    info = at.egress.read_error(resp.status, raw, headers)
    failure = classify.from_status(
        resp.status, headers, wall_now=time.time(), quota=info.quota, auth=info.auth, body_retry_after=info.retry_after
    )
    if failure.reason in binding.fallback_on or failure.reason in classify.ALWAYS_FALL_BACK:
        return _Outcome(failure)
    # Not a fallback reason: the client gets the upstream's error, in its own protocol.
    if failure.reason == classify.AUTH_ERROR:
        message = f"tier {tier.index} ({tier.source}) rejected the gateway's credential for it (HTTP {resp.status})"
        kind, status = ErrorKind.UPSTREAM, 502  # the client's credentials are fine; ours are not
    else:
        message = f"tier {tier.index} ({tier.source}/{tier.model}) answered HTTP {resp.status}: {_scrub(info.message, tier)}"
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
    return _Outcome(failure, err)


def _scrub(text: str, tier: CompiledTier) -> str:
    """Upstream error text never carries our key back to the client (promise 6)."""
    if tier.credential is not None:
        key = tier.credential.get_secret_value()
        if key and key in text:
            text = text.replace(key, "***")
    return text


async def _whole(at: _Attempt, resp: aiohttp.ClientResponse) -> None:
    raw = buffered_body(resp, at.rt.max_upstream_body_bytes)
    if raw is None:  # still arriving: wait for the rest within the attempt's limit
        try:
            async with asyncio.timeout_at(at.total_deadline):
                raw = await read_body(resp, at.rt.max_upstream_body_bytes)
        except TimeoutError:
            raise UpstreamTimeout("total") from None
    try:
        obj = orjson.loads(raw) if raw else None
        if not isinstance(obj, dict):
            raise _Empty("no body" if not raw else "not a JSON object")
        answer = at.egress.parse_response(obj)
    except (orjson.JSONDecodeError, UpstreamFormatError, ValueError, TypeError, AttributeError) as exc:
        raise _Empty("malformed") from exc
    if not answer.choices or not n.has_content(answer.choices[0].parts):
        raise _Empty("no content")

    at.commit()
    at.ex.usage = answer.usage
    at.succeeded()
    ex = at.ex
    if at.synth_stream:
        out = await _open_stream(at.request, ex)
        enc = at.encoder()
        body = enc.start()
        for ev in synthesize_events(answer):
            body += enc.encode(ev)
        await out.write(body + enc.finish())
        await out.write_eof()
        raise _Served(out)
    if at.passthrough:
        payload = raw  # same protocol: the upstream's bytes, unchanged
    else:
        alias = at.parsed.model if at.parsed is not None else ""
        payload = orjson.dumps(ex.ingress.render_response(answer, alias=alias, request=at.parsed))
    raise _Served(web.Response(body=payload, status=200, headers=ex.headers(), content_type="application/json"))


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


async def _open_stream(request: web.Request, ex: Exchange) -> web.StreamResponse:
    out = web.StreamResponse(status=200, headers=ex.headers())
    out.content_type = ex.ingress.sse_content_type
    out.headers["Cache-Control"] = "no-cache"
    await out.prepare(request)
    return out


class _Relay:
    """Turns decoded upstream events into client bytes: the raw bytes on passthrough,
    the client protocol's encoding otherwise. Remembers the usage seen."""

    def __init__(self, at: _Attempt) -> None:
        self.passthrough = at.passthrough
        self.encoder = None if self.passthrough else at.encoder()
        self.usage: n.Usage | None = None

    def render(self, items: list[DecodedEvent]) -> bytes:
        buf = b""
        for d in items:
            for ev in d.events:
                if isinstance(ev, n.StreamUsage):
                    self.usage = ev.usage
            if self.encoder is None:
                buf += d.raw
            else:
                for ev in d.events:
                    if not isinstance(ev, n.StreamError):
                        buf += self.encoder.encode(ev)
        return buf


async def _stream(at: _Attempt, resp: aiohttp.ClientResponse) -> None:
    """Relay a stream; commit to the client only at the first content event."""
    ex = at.ex
    decoder = GuardedDecoder(at.egress.stream_decoder())
    relay = _Relay(at)

    # ---- before the first content event: nothing has reached the client
    pending: list[DecodedEvent] = []
    ended = False
    while True:
        try:
            async with asyncio.timeout_at(at.first_deadline):
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
                async with asyncio.timeout_at(at.total_deadline):
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
            message = f"the upstream reported an error mid-stream: {err.message}"
            if at.passthrough and decoded[cut].raw:  # empty raw: nothing forwardable (malformed)
                await _write(out, decoded[cut].raw)
                upstream_error_sent = True
            break
    except UpstreamReset:
        failure, message = Failure(classify.CONNECT_ERROR, "reset"), "the upstream connection broke mid-stream"
    except asyncio.CancelledError:
        if not at.rt.drain_expired:
            raise  # the client went away: nobody to tell
        _uncancel()
        await _end_stream_early(at, out, relay, ErrorKind.UNAVAILABLE, DRAIN_MESSAGE, "drained")
    except Exception:  # a bug of ours mid-stream: still end the stream with an error event
        log.exception("stream relay failed for binding %s tier %d", at.binding.name, at.tier.index)
        await _end_stream_early(at, out, relay, ErrorKind.INTERNAL, "the gateway failed while relaying this stream", "broken-stream")

    if failure is None and not decoder.complete:
        failure, message = Failure(classify.SERVER_ERROR, "truncated"), "the upstream stream ended without its end marker"

    ex.usage = relay.usage
    if failure is None:
        if relay.encoder is not None:
            await _write(out, relay.encoder.finish())
        await out.write_eof()
        at.succeeded()
        raise _Served(out)

    # Broken after content: an error event in the client's protocol, never a clean end.
    ex.outcome = "broken-stream"
    ex.error = message
    rt, binding, tier = at.rt, at.binding, at.tier
    health = rt.health(binding, tier)
    if failure.reason in classify.TIER_FAULTS:
        seen = health.transition_count
        breaker.record_failure(
            health, binding.breaker, at.admission, failure.cls, failure.trail_text(), rt.clock(), time.time()
        )
        rt.note_transitions(binding, tier, health, seen)
    else:
        breaker.release(health, at.admission)
    rt.metrics.attempts.labels(binding.name, str(tier.index), tier.source, failure.reason).inc()
    if not upstream_error_sent:
        enc = relay.encoder or at.encoder()
        kind = ErrorKind.TIMEOUT if failure.reason in (classify.TIMEOUT, classify.DEADLINE) else ErrorKind.UPSTREAM
        await _write(out, enc.error(errors.DEFAULT_STATUS[kind], kind.value, message))
    await out.write_eof()
    raise _Served(out)


async def _end_stream_early(at: _Attempt, out: web.StreamResponse, relay: _Relay, kind: ErrorKind, message: str, outcome: str) -> None:
    """End a started stream that is not the tier's fault (drain deadline, our own bug):
    the client protocol's error event, no verdict on the tier. Raises ``_Served``."""
    at.ex.outcome, at.ex.error = outcome, message
    breaker.release(at.rt.health(at.binding, at.tier), at.admission)
    enc = relay.encoder or at.encoder()
    try:
        await _write(out, enc.error(errors.DEFAULT_STATUS[kind], kind.value, message))
        await out.write_eof()
    except (ConnectionError, RuntimeError):
        pass  # the client is gone too
    raise _Served(out)


def _stream_error_failure(err: n.StreamError) -> Failure:
    if err.status == 429:
        return Failure(classify.RATE_LIMITED, "in-stream", 429)
    return Failure(classify.SERVER_ERROR, "in-stream", err.status if err.status >= 500 else 502)


async def _write(out: web.StreamResponse | None, data: bytes) -> None:
    if out is not None and data:
        await out.write(data)


# ======================================================================== answers


def _error_response(ex: Exchange, err: GatewayError) -> web.Response:
    headers = ex.headers()
    if err.retry_after:
        headers["Retry-After"] = str(max(1, int(err.retry_after + 0.999)))
    if err.code == "draining":
        headers["Connection"] = "close"
    return web.Response(
        body=errors.render_error(ex.ingress.protocol, err),
        status=err.status,
        headers=headers,
        content_type="application/json",
    )


def _account(rt: Runtime, ex: Exchange) -> None:
    b = ex.binding
    name = b.name if b is not None else ""
    tier = ex.served_by
    tier_label = str(tier.index) if tier is not None else "-1"
    source = tier.source if tier is not None else ""
    m = rt.metrics
    if b is not None:
        snap = rt.snapshot
        caller = metric_label(ex.caller, snap.by_caller if snap is not None else ())
        m.requests.labels(name, tier_label, source, ex.outcome, ex.ingress.protocol, caller).inc()
        if tier is not None and ex.ttft is not None and ex.outcome in ("success", "broken-stream"):
            m.ttft.labels(name, tier_label, source).observe(ex.ttft)
        if tier is not None and ex.usage is not None:
            u = ex.usage
            for kind, value in (
                ("input", u.input_tokens),
                ("output", u.output_tokens),
                ("cached_input", u.cached_input_tokens),
                ("reasoning", u.reasoning_tokens),
            ):
                if value:
                    m.tokens.labels(name, tier_label, source, kind).inc(value)
    if log.isEnabledFor(logging.INFO):
        record: dict[str, Any] = {
            "binding": name or None,
            "ingress": ex.ingress.protocol,
            "caller": ex.caller,
            "stream": ex.stream,
            "status": ex.status,
            "outcome": ex.outcome,
            "tier": tier.index if tier is not None else None,
            "source": source or None,
            "model": tier.model if tier is not None else None,
            "trail": [t.short() for t in ex.trail],
            "degraded": [f"{f}={a}" for f, a in ex.degraded],
            "duration_ms": round((time.monotonic() - ex.started) * 1000, 2),
        }
        if ex.ttft is not None:
            record["ttft_ms"] = round(ex.ttft * 1000, 2)
        if ex.error:
            record["error"] = ex.error
        log.info("request", extra={"switchyard": record})
