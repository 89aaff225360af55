"""Embeddings, one flow for every protocol that has an embeddings endpoint.

``POST /v1/embeddings`` (OpenAI) and ``:embedContent`` / ``:batchEmbedContents`` (Gemini)
go down the binding's chain with the same intake as a generation (drain, config, body,
binding), the breaker lease (``Runtime.admit``: an embedding counts toward a tier's
health like a generation) and the upstream slots. Each tier is asked on its own
embeddings endpoint; a tier whose protocol has none (Anthropic) is passed over with a
trail entry (never sent a generation), and a binding with no tier that can embed is
answered a 400 saying so.

Fallback only between tiers of one embedding space. Vectors of two models are not
comparable, so a client that indexed with one must never silently get the other's:

- the first resolvable tier that can embed sets the space: its profile's
  ``embeddingDimensions`` (None: undeclared);
- a later tier is tried (on the binding's ``fallbackOn`` failures, as generation) only
  if its profile declares the same ``embeddingDimensions``, and at least the
  ``dimensions`` the request asks for; an undeclared space is compatible with none;
- otherwise the chain ends and the client gets the first tier's error (with every
  tier in the trail and ``x-switchyard-fallback-reason``);
- vectors are checked: one per input, each of the size the request asked for (else the
  size the profile declares); any other answer is a failure, never served.

The adapters only build the call (``embed_call``) and read the answer
(``read_embeddings``, ``render_embeddings``); nothing here is protocol-specific.
"""

from __future__ import annotations

import asyncio
import time

import orjson
from aiohttp import web

from switchyard.sidecar import errors
from switchyard.sidecar.contract.config import CompiledBinding, CompiledTier
from switchyard.sidecar.errors import ErrorKind, GatewayError, TierTrail
from switchyard.sidecar.pipeline import limits
from switchyard.sidecar.pipeline.exchange import Exchange, account, drained, refused
from switchyard.sidecar.pipeline.intake import (
    MIN_ATTEMPT_SECONDS,
    read_json,
    request_deadline,
    resolve_binding,
    serving_snapshot,
)
from switchyard.sidecar.routing import classify
from switchyard.sidecar.routing.caller import identify
from switchyard.sidecar.routing.classify import Failure
from switchyard.sidecar.state import RUNTIME, LastUsed, Runtime, binding_key
from switchyard.sidecar.translate import neutral as n
from switchyard.sidecar.translate.base import Adapter, RequestError, UpstreamFormatError, adapter_for
from switchyard.sidecar.upstream import (
    UpstreamBusy,
    UpstreamConnectError,
    UpstreamError,
    UpstreamTimeout,
    error_text,
    fetch,
)

FEATURE = "embeddingDimensions"
ANSWER_LIMIT = 64 << 20  # 2048 inputs x 3072 floats as JSON text fit well within it
_STATUS_OF = {classify.TIMEOUT: 504, classify.CONNECT_ERROR: 502, classify.BUSY: 503, classify.DEADLINE: 504, classify.EMPTY: 502}


async def embed(request: web.Request, ingress: Adapter, *, path_model: str | None = None) -> web.Response:
    """Serve one embeddings request spoken in ``ingress`` (which has ``embed_request``)."""
    rt = request.app[RUNTIME]
    ex = Exchange(ingress=ingress, started=time.monotonic(), endpoint="embeddings")
    rt.begin()
    try:
        return await _serve(request, rt, ex, path_model)
    except GatewayError as err:
        return refused(ex, err)
    except asyncio.CancelledError:
        if rt.drain_expired and ex.status != 200:
            return drained(ex)  # Sidecar.stop cancelled us at the drain deadline: answer, do not vanish
        ex.outcome = "client-gone"
        raise
    finally:
        rt.bodies.give(sum(ex.held))
        rt.end()
        account(rt, ex)


def compatible(space: int | None, declared: object, dimensions: int | None) -> bool:
    """May a tier whose profile declares ``declared`` serve in place of the first, whose
    profile declared ``space``? Only the same declared size (and enough of it for the
    ``dimensions`` asked for); an undeclared size is compatible with none."""
    if space is None or type(declared) is not int or declared != space:
        return False
    return dimensions is None or dimensions <= declared


async def _serve(request: web.Request, rt: Runtime, ex: Exchange, path_model: str | None) -> web.Response:
    ingress = ex.ingress
    assert ingress.embed_request is not None and ingress.render_embeddings is not None
    snap = serving_snapshot(rt)
    body = await read_json(request, rt.max_body_bytes, ex.held)
    ex.caller = identify(request.headers.get("x-switchyard-caller"), request.headers.get("User-Agent"))
    binding = resolve_binding(request, snap, ingress, body, path_model, ex.caller)
    ex.binding = binding
    if binding.unbound or not binding.tiers:
        why = "is deliberately unbound" if binding.unbound else "has no tiers"
        raise GatewayError(ErrorKind.UNAVAILABLE, f"binding {binding.name} {why}; nothing can embed", code="binding_unbound", binding=binding.name)
    if binding.limits is not None:  # spec.limits, as for generation (pipeline/limits.py)
        limits.admit(rt, ex, binding, snap)
    try:
        req = ingress.embed_request(body, path_model)
    except RequestError as exc:
        raise GatewayError(ErrorKind.INVALID_REQUEST, exc.message, param=exc.param, binding=binding.name) from exc
    alias = path_model if path_model is not None else str(body.get("model") or binding.name)

    loop = asyncio.get_running_loop()
    budget = request_deadline(request, binding)
    deadline = loop.time() + budget if budget is not None else None
    first: CompiledTier | None = None
    space: int | None = None
    first_error: GatewayError | None = None
    without: list[str] = []

    def passed(tier: CompiledTier, outcome: str, cls: str, reason: str) -> None:
        ex.trail.append(TierTrail(tier.index, tier.source, tier.model, outcome))
        rt.metrics.tier(binding, tier).fallback(cls, reason)

    for tier in binding.tiers:
        if tier.problem:
            passed(tier, f"unresolvable({tier.problem.split(':')[0]})", "unresolvable", "unresolvable")
            continue
        egress = adapter_for(tier.protocol)
        try:
            call = egress.embed_call(rt.probe_tier(binding, tier), req)  # several keys: the first usable one
        except RequestError as exc:
            if first is None:
                raise GatewayError(ErrorKind.INVALID_REQUEST, exc.message, param=exc.param, binding=binding.name, trail=ex.trail) from exc
            passed(tier, "refused(too-large)", "capability", "skip-tier")
            continue
        if call is None or egress.read_embeddings is None:
            without.append(f"tier {tier.index} ({tier.source}/{tier.model}) speaks {tier.protocol}")
            passed(tier, f"no-embeddings({tier.protocol})", "capability", "skip-tier")
            continue
        declared = tier.profile.features.get(FEATURE)
        if first is None:
            first, space = tier, declared if type(declared) is int else None
        elif not compatible(space, declared, req.dimensions):
            passed(tier, f"other-embedding-space({_dims(declared)}!={_dims(space)})", "capability", "incompatible")
            continue
        if deadline is not None and deadline - loop.time() < MIN_ATTEMPT_SECONDS:
            failure = Failure(classify.DEADLINE, f"{max(0.0, deadline - loop.time()):.1f}s left")
            first_error = first_error or _failure_error(binding, tier, failure, ex, "")
            passed(tier, failure.trail_text(), "deadline", "deadline")
            continue
        lease = rt.admit(binding, tier)
        if not lease.allowed:
            adm = lease.admission
            wait = max(0.0, lease.health.rate_limited_until - rt.clock()) if adm.kind == "rate-limited" else None
            status = {"rate-limited": 429, "breaker": 503, "disabled": 502}.get(adm.kind, 503)
            first_error = first_error or GatewayError(
                errors.kind_for_status(status), f"tier {tier.index} ({tier.source}/{tier.model}) is out: {adm.reason}",
                status=status, code="upstream_unavailable", binding=binding.name, retry_after=wait,
            )  # fmt: skip
            passed(tier, adm.reason, "permanent" if adm.kind == "disabled" else adm.kind, adm.reason.split("(")[0])
            continue
        with lease:
            left = deadline - loop.time() if deadline is not None else None
            seconds = min(tier.timeouts.first_byte_seconds, left) if left is not None else tier.timeouts.first_byte_seconds
            failure, message = await _try(rt, tier, egress, call, seconds)
            if failure is None:
                try:
                    vectors, usage = egress.read_embeddings(message)  # the body, on success
                    _check(vectors, req, tier)
                except (UpstreamFormatError, ValueError, TypeError, OverflowError) as exc:  # as attempt.py's _whole
                    failure, message = Failure(classify.EMPTY, "malformed"), str(exc) if isinstance(exc, UpstreamFormatError) else ""
                else:
                    lease.succeeded()  # as attempt.py's Attempt.succeeded
                    rt.metrics.tier(binding, tier).attempt("ok")
                    rt.last_used[binding_key(binding)] = LastUsed(tier.index, tier.source, tier.model, time.time())
                    rt.metrics.set_active_tier(binding.name, tier.index)
                    ex.served_by, ex.usage, ex.outcome, ex.status = tier, usage, "success", 200
                    if req.origin != tier.protocol and req.extras:  # nothing dropped silently (promise 3)
                        ex.degraded.append((f"unknownFields({','.join(sorted(req.extras))})", "strip"))
                        rt.metrics.tier(binding, tier).degraded("unknownFields", "strip")
                    answer = ingress.render_embeddings(vectors, usage, alias=alias, request=req)
                    return web.Response(body=orjson.dumps(answer), headers=ex.headers(), content_type="application/json")
            lease.failed(failure)
        rt.metrics.tier(binding, tier).attempt(failure.reason)
        err = _failure_error(binding, tier, failure, ex, message)
        moves_on = failure.reason in binding.fallback_on or failure.reason in (classify.BUSY, *classify.ALWAYS_FALL_BACK)
        if failure.reason == classify.CLIENT_ERROR or not moves_on:
            ex.outcome, ex.served_by = "upstream-error", tier
            err.trail = list(ex.trail)
            raise err
        first_error = first_error or err
        passed(tier, failure.trail_text(), failure.cls, failure.reason)

    if first is None:
        resolvable = [t for t in binding.tiers if not t.problem]
        if resolvable and len(without) == len(resolvable):
            raise GatewayError(
                ErrorKind.INVALID_REQUEST,
                f"embeddings are not available for binding {binding.name}: {'; '.join(without)}, which has no "
                "embeddings endpoint (an embedding is never answered by running a generation)",
                code="embeddings_unsupported", binding=binding.name, trail=ex.trail,
            )  # fmt: skip
        raise GatewayError(ErrorKind.UNAVAILABLE, f"no tier of binding {binding.name} can embed", code="all_tiers_failed", binding=binding.name, trail=ex.trail)
    ex.outcome = "all-tiers-failed"
    assert first_error is not None
    first_error.trail = list(ex.trail)
    raise first_error


async def _try(rt: Runtime, tier: CompiledTier, egress: Adapter, call: object, seconds: float) -> tuple[Failure | None, bytes | str]:
    """One exchange with the tier: (None, body) on a 2xx, else (the failure, the
    upstream's scrubbed message)."""
    try:
        async with rt.upstreams.slot(tier):
            got = await fetch(
                rt.upstreams, call, connect_seconds=tier.timeouts.connect_seconds,  # type: ignore[arg-type]
                total_seconds=seconds, allow_link_local=tier.allow_link_local, limit=ANSWER_LIMIT,
            )  # fmt: skip
    except UpstreamBusy:
        return Failure(classify.BUSY, "pool"), ""
    except UpstreamTimeout as exc:
        return Failure(classify.TIMEOUT, exc.phase), ""
    except UpstreamConnectError as exc:
        return Failure(classify.CONNECT_ERROR, str(exc)), ""
    except UpstreamError:
        return Failure(classify.CONNECT_ERROR, "reset"), ""
    if got.status < 300:
        return None, got.body
    info = egress.read_error(got.status, error_text(got.body, tier), got.headers)
    failure = classify.from_status(
        got.status, got.headers, wall_now=time.time(), quota=info.quota, auth=info.auth,
        body_retry_after=info.retry_after, model_not_found=info.model_not_found,
    )  # fmt: skip
    return failure, info.message


def _check(vectors: list[list[float]], req: n.EmbedRequest, tier: CompiledTier) -> None:
    """One vector per input, each of the size asked for (else the size the profile
    declares, else the size of the first)."""
    if len(vectors) != len(req.inputs):
        raise UpstreamFormatError(f"{len(vectors)} vectors for {len(req.inputs)} inputs")
    declared = tier.profile.features.get(FEATURE)
    want = req.dimensions or (declared if type(declared) is int else len(vectors[0]))
    for v in vectors:
        if len(v) != want:
            raise UpstreamFormatError(f"a vector of {len(v)} dimensions where {want} were expected")


def _dims(value: object) -> str:
    return str(value) if type(value) is int else "undeclared"


def _failure_error(binding: CompiledBinding, tier: CompiledTier, failure: Failure, ex: Exchange, message: bytes | str) -> GatewayError:
    status = failure.status if failure.status else _STATUS_OF.get(failure.reason, 502)
    if failure.reason == classify.AUTH_ERROR:
        status = 502  # our key refused is never the client's own 401/403
    text = f"tier {tier.index} ({tier.source}/{tier.model}) failed the embeddings request: {failure.trail_text()}"
    if isinstance(message, str) and message:
        text += f": {message}"
    return GatewayError(
        errors.kind_for_status(status), text, status=status, code="upstream_error", binding=binding.name,
        trail=list(ex.trail), retry_after=failure.retry_after,
    )  # fmt: skip
