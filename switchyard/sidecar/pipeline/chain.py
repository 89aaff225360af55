"""The flow of one request, top to bottom.

    intake: sidecar serving? read body -> parse JSON (ingress protocol) -> resolve binding
    -> for each tier of the binding's chain:
         resolvable? breaker admits (a TierLease)? capability step (reject / skip / strip / map)
         -> build the call (same protocol: edit the client's JSON; else via neutral form)
         -> attempt: send with the tier's credential and time limits
         -> success with content: answer (or stream) in the client's protocol, done
         -> failure before the first content byte: the lease records it; next tier if the
            reason is in fallbackOn, else answer the upstream's error in the client's protocol
    -> every tier out: a protocol-shaped error listing each tier and why
    -> metrics, response headers, one log line with the decision trail (``exchange``)
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from switchyard.sidecar import errors
from switchyard.sidecar.contract.config import CompiledBinding, CompiledKey, CompiledTier
from switchyard.sidecar.errors import ErrorKind, GatewayError, TierTrail
from switchyard.sidecar.pipeline import conversation, limits
from switchyard.sidecar.pipeline.attempt import Attempt, Miss, attempt
from switchyard.sidecar.pipeline.exchange import Exchange, account, drained, error_response, refused
from switchyard.sidecar.pipeline.intake import (
    MIN_ATTEMPT_SECONDS,
    first_content_patience,
    read_json,
    request_deadline,
    resolve_binding,
    serving_snapshot,
)
from switchyard.sidecar.routing import classify
from switchyard.sidecar.routing.caller import identify
from switchyard.sidecar.routing.classify import Failure
from switchyard.sidecar.routing.profile import apply_to_request, decide
from switchyard.sidecar.state import RUNTIME, Runtime, TierLease
from switchyard.sidecar.translate import neutral as n
from switchyard.sidecar.translate.base import Adapter, RequestError, adapter_for


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
    if rt.tracing is not None:  # off: this one check, nothing of OpenTelemetry loaded
        ex.trace = rt.tracing.request(request.headers, ingress.protocol)
    rt.begin()
    try:
        return await _serve(request, rt, ex, path_model, stream)
    except GatewayError as err:
        return refused(ex, err)
    except asyncio.CancelledError:
        if rt.drain_expired and ex.status != 200:
            return drained(ex)  # Sidecar.stop cancelled us at the drain deadline: answer, do not vanish
        ex.outcome = "client-gone"
        raise
    except (RecursionError, orjson.JSONEncodeError) as exc:
        # A body nested deeper than a translator or orjson's encoder goes (orjson reads
        # 1024 levels but writes 254): the request's fault, answered as such.
        if ex.status == 200:
            raise
        err = GatewayError(ErrorKind.INVALID_REQUEST, f"request body is nested too deeply to be translated ({type(exc).__name__})")
        ex.status, ex.outcome, ex.error = err.status, "rejected", err.message
        return error_response(ex, err)
    finally:
        rt.bodies.give(sum(ex.held))
        rt.end()
        account(rt, ex)
        if ex.trace is not None:
            ex.trace.end(ex)


async def _serve(
    request: web.Request, rt: Runtime, ex: Exchange, path_model: str | None, stream: bool | None
) -> web.StreamResponse:
    snap = serving_snapshot(rt)
    body = await read_json(request, rt.max_body_bytes, ex.held)
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
    if binding.limits is not None:  # spec.limits: a 429 before any tier (pipeline/limits.py)
        limits.admit(rt, ex, binding, snap)
    if ingress.protocol == conversation.PROTOCOL:
        body = conversation.prepare(rt, ex, binding, body)
    return await _walk_chain(request, rt, ex, binding, body, path_model)


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
    busy_only: bool = True
    deadline_hit: bool = False
    passed: int = -1  # the index of the last tier passed over (``_candidates`` then leaves its other keys)

    def skip(
        self, rt: Runtime, ex: Exchange, binding: CompiledBinding, tier: CompiledTier, outcome: str, cls: str,
        reason: str, status: int | None = None, retry_after: float | None = None, key: int | None = None,
    ) -> None:
        ex.trail.append(TierTrail(tier.index, tier.source, tier.model, outcome, key))
        self.passed = tier.index
        rt.metrics.tier(binding, tier).fallback(cls, reason)
        if ex.trace is not None:
            ex.trace.skipped(tier, outcome, cls, reason)
        self.statuses.append(status)
        if retry_after:
            self.retry_afters.append(retry_after)
        if cls == "deadline":
            self.deadline_hit = True
        if reason != classify.TIMEOUT:
            self.timeouts_only = False
        if reason != classify.BUSY:
            self.busy_only = False


_SKIP_STATUS = {"rate-limited": 429, "breaker": 503, "disabled": 502}


async def _walk_chain(
    request: web.Request, rt: Runtime, ex: Exchange, binding: CompiledBinding, body: dict[str, Any], path_model: str | None
) -> web.StreamResponse:
    ingress = ex.ingress
    used = ingress.features_used(body)
    parsed: n.Request | None = None
    tally = _Tally()
    headers = request.headers
    forward = {name: v for name in ingress.forward_headers if (v := headers.get(name)) is not None}
    loop = asyncio.get_running_loop()
    budget = request_deadline(request, binding)
    deadline = loop.time() + budget if budget is not None else None
    patience = first_content_patience(request)
    # Until a tier's first content nothing reaches the client: the client's read timeout
    # bounds that wait (not the rest of the answer), as the deadline does.
    before_content = min((d for d in (deadline, loop.time() + patience if patience else None) if d is not None), default=None)

    # Tiers that may be tried, for each tier's share of the time before content (a deadline).
    usable = [t for t in binding.tiers if not t.problem and (not t.incompatible or t.degradable)] if before_content is not None else []
    for tier, key in _candidates(rt, ex, binding, tally):
        if tier.problem:
            tally.skip(rt, ex, binding, tier, f"unresolvable({tier.problem.split(':')[0]})", "unresolvable", "unresolvable")
            continue
        if tier.incompatible and not tier.degradable:
            tally.skip(rt, ex, binding, tier, f"incompatible({','.join(tier.incompatible)})", "capability", "incompatible")
            continue
        if before_content is not None and before_content - loop.time() < MIN_ATTEMPT_SECONDS:
            left = max(0.0, before_content - loop.time())
            tally.skip(rt, ex, binding, tier, f"deadline({left:.1f}s left)", "deadline", "deadline", 504)
            continue
        lease = rt.admit(binding, tier, key)
        if not lease.allowed:
            _refused(rt, ex, binding, tier, lease, tally)
            continue
        send = tier if key is None else tier.with_key(key)  # the key this try sends (several: in order)

        with lease:  # leaving without a verdict (refused, client gone, a bug) releases it
            cross = tier.protocol != ingress.protocol
            extras: list[str] | None = None
            if cross:
                parsed = parsed or _parse(ingress, body, path_model, ex.stream, ex.history)
                if parsed.origin != tier.protocol and parsed.extras:
                    extras = sorted(parsed.extras)
            decision = decide(used, tier.profile, extras=extras)
            _count_degraded(rt, binding, tier, decision.degraded)
            if decision.reject:
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
                lease.release()
                tally.skip(rt, ex, binding, tier, f"skip-tier({decision.skip})", "capability", "skip-tier")
                continue

            synth_stream = ex.stream and "streaming" in decision.edits
            if not cross and not decision.structural and ex.history is None:
                notes: list[tuple[str, str]] = []
                call = ingress.build_passthrough_call(ingress.prepare_passthrough(body, send, decision.edits, notes), send, forward)
                call.notes += notes
            else:
                try:
                    parsed = parsed or _parse(ingress, body, path_model, ex.stream, ex.history)
                    req = apply_to_request(parsed, decision.edits)
                    if synth_stream:
                        req = dataclasses.replace(req, stream=False)
                    call = adapter_for(tier.protocol).build_call(req, send, None if cross else forward)
                except RequestError as exc:
                    raise GatewayError(ErrorKind.INVALID_REQUEST, exc.message, param=exc.param, binding=binding.name, trail=ex.trail) from exc
            if call.notes:  # the adapter's own changes, counted like the profile's
                _count_degraded(rt, binding, tier, call.notes)

            result = await (attempt if ex.trace is None else ex.trace.traced(attempt))(
                Attempt(
                    request=request, rt=rt, ex=ex, binding=binding, tier=send, call=call, lease=lease,
                    decision=decision, cross=cross, parsed=parsed, synth_stream=synth_stream, deadline=deadline,
                    first_share=_share(before_content, loop.time(), sum(1 for t in usable if t.index > tier.index))
                    if before_content is not None else None,
                )
            )  # fmt: skip
            if not isinstance(result, Miss):
                if ex.store_turn:
                    conversation.record(rt, ex, binding, parsed)
                return result
            failure = result.failure
            next_key = lease.key_failure(failure) and key is not tier.keys[-1]  # type: ignore[index]
            lease.failed(failure)  # the tier's fault counts toward its breaker; any other is no verdict
        rt.metrics.tier(binding, tier).attempt(failure.reason)
        if next_key and result.error is None and key is not None:  # that key's 429 or refusal: the tier's next key
            ex.trail.append(TierTrail(tier.index, tier.source, tier.model, failure.trail_text(), key.index))
            continue
        always = failure.reason in classify.ALWAYS_FALL_BACK or failure.reason in (classify.DEADLINE, classify.BUSY)
        if result.error is None and failure.reason not in binding.fallback_on and not always:
            result.error = _failure_error(binding, tier, failure, ex)
        if result.error is not None:  # not a fallback reason: the client gets this error
            ex.outcome = "upstream-error"
            ex.served_by = tier
            raise result.error
        # Our key being refused is never reported to the client as its own 401/403.
        status = {classify.AUTH_ERROR: 502, classify.DEADLINE: 504, classify.BUSY: 503}.get(failure.reason, failure.status)
        wait = 1.0 if failure.reason == classify.BUSY else failure.retry_after
        tally.skip(rt, ex, binding, tier, failure.trail_text(), failure.cls, failure.reason, status, wait,
                   key=key.index if key is not None else None)

    ex.outcome = "all-tiers-failed"
    raise _all_failed(binding, ex, tally, budget, patience)


def _candidates(
    rt: Runtime, ex: Exchange, binding: CompiledBinding, tally: _Tally
) -> Iterator[tuple[CompiledTier, CompiledKey | None]]:
    """The tries of the chain in order: each tier once (key None), or, when its source has
    several keys, once per key that may be sent now, first usable first (never
    round-robin: key 0 serves whenever it can; docs/several-keys.md). A key passed over
    (rate-limited, disabled, unresolvable) is told in the trail once a later key of the
    tier is tried; after the tier is passed over (``_Tally.skip``) its other keys are not
    tried. When no key may be sent, the tier is passed over as its keys' state says."""
    for tier in binding.tiers:
        if tier.keys is None or tier.problem:
            yield tier, None
            continue
        held: list[TierTrail] = []
        tried = False
        for key in tier.keys:
            if tally.passed == tier.index:
                break
            out = rt.key_out(binding, tier, key)
            if out is not None:
                held.append(TierTrail(tier.index, tier.source, tier.model, out, key.index))
                continue
            ex.trail.extend(held)
            held = []
            tried = True
            yield tier, key
        if not tried:
            _no_key(rt, ex, binding, tier, tally)


def _refused(rt: Runtime, ex: Exchange, binding: CompiledBinding, tier: CompiledTier, lease: TierLease, tally: _Tally) -> None:
    """The tier's breaker keeps it out: passed over, with why."""
    admission = lease.admission
    wait = max(0.0, lease.health.rate_limited_until - rt.clock()) if admission.kind == "rate-limited" else None
    tally.skip(
        rt, ex, binding, tier, admission.reason,
        "permanent" if admission.kind == "disabled" else admission.kind,
        admission.reason.split("(")[0], _SKIP_STATUS.get(admission.kind), wait,
    )


def _no_key(rt: Runtime, ex: Exchange, binding: CompiledBinding, tier: CompiledTier, tally: _Tally) -> None:
    """No key of the tier may be sent now: the tier is passed over as its own state says
    (``Runtime.settle_keys``: every key refused -> disabled, every key waiting ->
    rate-limited), else as rate-limited until its first key is back, or disabled."""
    lease = rt.admit(binding, tier)
    if not lease.allowed:
        _refused(rt, ex, binding, tier, lease, tally)
        return
    lease.release()
    waits = [
        rt.key_health(binding, tier, k.index).rate_limited_until
        for k in tier.keys or () if rt.key_state(binding, tier, k)[0] == "rate-limited"
    ]
    if waits:
        wait = max(0.0, min(waits) - rt.clock())
        reason = f"rate-limited(retry in {max(1, math.ceil(wait))}s)"
        tally.skip(rt, ex, binding, tier, reason, "rate-limited", "rate-limited", 429, wait)
    else:
        tally.skip(rt, ex, binding, tier, "disabled(no usable key)", "permanent", "disabled", 502)


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


def _parse(
    ingress: Adapter, body: dict[str, Any], path_model: str | None, stream: bool, history: list[n.Message] | None = None
) -> n.Request:
    try:
        return conversation.with_history(ingress.parse_request(body, path_model=path_model, stream=stream), history)
    except RequestError as exc:
        raise GatewayError(ErrorKind.INVALID_REQUEST, exc.message, param=exc.param) from exc


def _all_failed(binding: CompiledBinding, ex: Exchange, tally: _Tally, budget: float | None, patience: float | None = None) -> GatewayError:
    statuses = tally.statuses
    kind, status, code = ErrorKind.UNAVAILABLE, 503, "all_tiers_failed"
    message = f"no tier of binding {binding.name} could serve this request"
    if tally.deadline_hit:
        kind, status, code = ErrorKind.TIMEOUT, 504, "deadline_exceeded"
        spent = f"the request's deadline ({budget:g}s)" if budget is not None and (patience is None or budget <= patience) else (
            f"the client's read timeout ({patience:g}s, its SDK's x-stainless-read-timeout)")
        message = f"{spent} was spent before any tier of binding {binding.name} served it"
    elif tally.timeouts_only and statuses:
        kind, status = ErrorKind.TIMEOUT, 504
    elif tally.busy_only and statuses:
        kind, status, code = ErrorKind.OVERLOADED, 503, "gateway_busy"
        message = f"the gateway is busy: every tier of binding {binding.name} has its connections in use here; retry"
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
        retry_after=min(tally.retry_afters) if tally.retry_afters and (status == 429 or code == "gateway_busy") else None,
    )


def _count_degraded(rt: Runtime, b: CompiledBinding, tier: CompiledTier, items: list[tuple[str, str]]) -> None:
    for label, action in items:
        feature = label.split("(")[0]
        rt.metrics.tier(b, tier).degraded(feature, action.split("(")[0])
