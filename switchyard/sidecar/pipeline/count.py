"""Token counting, one flow for every protocol that has a count endpoint.

``POST /v1/messages/count_tokens`` (Anthropic) and ``:countTokens`` (Gemini) go down the
binding's chain like a generation, with the same intake (drain, config, body, binding)
and the same upstream I/O, but a count is a side request: it reads the breaker without
taking a half-open trial and leaves the tiers' health as it found it. Each tier is
asked on its own count endpoint; a tier whose protocol has none is passed over (a count
is never answered by running a generation); a tier that is out, rate-limited, failing or
refusing the gateway's key is passed over too, and the trail says why. The adapters
only build the call (``count_call``) and read the answer (``read_count``,
``render_count``); nothing here is protocol-specific.
"""

from __future__ import annotations

import orjson
from aiohttp import web

from switchyard.sidecar import errors
from switchyard.sidecar.errors import ErrorKind, GatewayError, TierTrail
from switchyard.sidecar.pipeline.exchange import H_BINDING, H_MODEL, H_REASON, H_SOURCE, H_TIER, error_in, header_safe
from switchyard.sidecar.pipeline.intake import read_json, resolve_binding, serving_snapshot
from switchyard.sidecar.routing.caller import identify
from switchyard.sidecar.state import RUNTIME
from switchyard.sidecar.translate import neutral as n
from switchyard.sidecar.translate.base import Adapter, RequestError, UpstreamFormatError, adapter_for
from switchyard.sidecar.upstream import UpstreamBusy, UpstreamError, UpstreamTimeout, error_text, fetch

# A tier that answers these is passed over (the next may count); any other 4xx is the
# request's fault and answered as such.
_PASS_OVER = frozenset({401, 403, 404, 408, 429})


async def count_tokens(request: web.Request, ingress: Adapter, *, path_model: str | None = None) -> web.Response:
    """Count the input of a request spoken in ``ingress`` (which has ``count_request``)."""
    rt = request.app[RUNTIME]
    headers: dict[str, str] = {}
    held: list[int] = []
    with rt.holding():  # the drain waits for it like an API request
        try:
            return await _count(request, ingress, path_model, headers, held)
        except GatewayError as err:
            return error_in(ingress.protocol, err, headers)
        finally:
            rt.bodies.give(sum(held))


async def _count(
    request: web.Request, ingress: Adapter, path_model: str | None, headers: dict[str, str], held: list[int]
) -> web.Response:
    assert ingress.count_request is not None and ingress.render_count is not None
    rt = request.app[RUNTIME]
    snap = serving_snapshot(rt)
    body = await read_json(request, rt.max_body_bytes, held)
    caller = identify(request.headers.get("x-switchyard-caller"), request.headers.get("User-Agent"))
    binding = resolve_binding(request, snap, ingress, body, path_model, caller)
    headers[H_BINDING] = binding.name
    if binding.unbound or not binding.tiers:
        why = "is deliberately unbound" if binding.unbound else "has no tiers"
        raise GatewayError(ErrorKind.UNAVAILABLE, f"binding {binding.name} {why}; nothing can count tokens", code="binding_unbound", binding=binding.name)
    forward = {k: v for k, v in request.headers.items() if k.lower() in ingress.forward_headers}
    trail: list[TierTrail] = []
    parsed: n.Request | None = None
    without_endpoint: list[str] = []
    for tier in binding.tiers:
        if tier.problem:
            trail.append(TierTrail(tier.index, tier.source, tier.model, "unresolvable"))
            continue
        out = rt.out_now(binding, tier)
        if out:
            trail.append(TierTrail(tier.index, tier.source, tier.model, out))
            continue
        egress = adapter_for(tier.protocol)
        send = rt.probe_tier(binding, tier)  # several keys: the first usable one
        try:
            if tier.protocol == ingress.protocol:
                call = egress.count_call(send, body=body, client_headers=forward)
            else:
                parsed = parsed or ingress.count_request(body, path_model)
                call = egress.count_call(send, request=parsed)
        except RequestError as exc:
            raise GatewayError(ErrorKind.INVALID_REQUEST, exc.message, param=exc.param, binding=binding.name) from exc
        if call is None or egress.read_count is None:
            without_endpoint.append(f"tier {tier.index} ({tier.source}/{tier.model}) speaks {tier.protocol}")
            trail.append(TierTrail(tier.index, tier.source, tier.model, f"no-token-count({tier.protocol})"))
            continue
        try:
            async with rt.upstreams.slot(tier):
                got = await fetch(
                    rt.upstreams, call, connect_seconds=tier.timeouts.connect_seconds,
                    total_seconds=tier.timeouts.first_byte_seconds, allow_link_local=tier.allow_link_local,
                )  # fmt: skip
        except UpstreamBusy:
            trail.append(TierTrail(tier.index, tier.source, tier.model, "busy"))
            continue
        except UpstreamTimeout:
            trail.append(TierTrail(tier.index, tier.source, tier.model, "timeout"))
            continue
        except UpstreamError:
            trail.append(TierTrail(tier.index, tier.source, tier.model, "connect-error"))
            continue
        status, raw, resp_headers = got.status, got.body, got.headers
        if status >= 300:
            info = egress.read_error(status, error_text(raw, tier), resp_headers)
            if status >= 500 or status in _PASS_OVER or info.quota or info.auth:
                trail.append(TierTrail(tier.index, tier.source, tier.model, str(status)))
                continue
            raise GatewayError(
                errors.kind_for_status(status),
                f"tier {tier.index} ({tier.source}/{tier.model}) answered HTTP {status} to the token count: {info.message}",
                status=status, code="upstream_error", binding=binding.name, trail=trail,
            )  # fmt: skip
        try:
            tokens, native = egress.read_count(raw)
        except UpstreamFormatError:
            trail.append(TierTrail(tier.index, tier.source, tier.model, "malformed"))
            continue
        answer = native if tier.protocol == ingress.protocol else ingress.render_count(tokens)
        headers.update({H_TIER: str(tier.index), H_SOURCE: tier.source, H_MODEL: tier.model})
        if trail:
            headers[H_REASON] = header_safe(", ".join(t.short() for t in trail))
        return web.Response(body=orjson.dumps(answer), headers=headers, content_type="application/json")
    resolvable = [t for t in binding.tiers if not t.problem]
    if resolvable and len(without_endpoint) == len(resolvable):
        raise GatewayError(
            ErrorKind.INVALID_REQUEST,
            f"token counting is not available for binding {binding.name}: {'; '.join(without_endpoint)}, which has no "
            "token-counting endpoint (a count is never answered by running a generation)",
            code="count_tokens_unsupported", binding=binding.name, trail=trail,
        )  # fmt: skip
    raise GatewayError(
        ErrorKind.UNAVAILABLE, f"no tier of binding {binding.name} could count tokens", code="all_tiers_failed", binding=binding.name, trail=trail
    )
