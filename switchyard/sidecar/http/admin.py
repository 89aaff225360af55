"""The admin listener: config push, status, prompt-free tests, health and metrics.

Separate from the API listener so it can be bound elsewhere (the operator reaches it
on the pod IP) while the API stays on 127.0.0.1 for the app next to it.

Access: ``GET /admin/status`` is open (read-only; no credential, no token in it: the
operator reads health with no secret on the wire). Every other ``/admin/*`` route acts
(push, test, reset) and requires ``Authorization: Bearer <token>`` when a token is
configured, compared in constant time; without a token it answers loopback callers only
(403 otherwise). ``X-Switchyard-Admin-Token: <token>`` is
accepted too: the API server's pod proxy (``kubectl switchyard test``) consumes the
caller's own ``Authorization`` header and never forwards it. Without a token the listener must be
bound to a loopback address (``app.build`` refuses anything else) unless the config comes
from files, where nothing needs to push. ``PUT /admin/config`` is refused (409) then. ``/healthz``,
``/readyz`` and ``/metrics`` are open: they carry no config and no secret.

Routes:
    PUT  /admin/config                 replace the compiled config (idempotent by version)
    GET  /admin/status                 config version, each binding's chain and breakers
                                       (the report contract: ``contract/report.py``)
    POST /admin/bindings/{name}/test   does every tier resolve? (sends no prompt)
    PUT  /admin/health                 shared tier health: what other pods saw (signed by the
                                       operator with the token, or the bearer token;
                                       contract/health.py, docs/shared-health.md)
    GET  /healthz  /readyz  /metrics
"""

from __future__ import annotations

import hmac
import ipaddress
import time
from typing import Any

import orjson
from aiohttp import web
from pydantic import ValidationError

from switchyard.sidecar.contract.config import SCHEMA_VERSION, CompiledConfig
from switchyard.sidecar.contract.health import (
    HEALTH_PATH,
    MAX_HINT_BYTES,
    SIGNATURE_HEADER,
    HealthHints,
    SignatureError,
    verify,
)
from switchyard.sidecar.contract.report import (
    ReportedBinding,
    ReportedBreaker,
    ReportedKey,
    ReportedLastUsed,
    ReportedTier,
    ReportedTokens,
    ReportedTransition,
    ReportedUsage,
    SidecarReport,
    picos_text,
    TierState,
)
from switchyard.sidecar.http import guard
from switchyard.sidecar.metrics import USAGE_KINDS
from switchyard.sidecar.pipeline.intake import read_request_body
from switchyard.sidecar.state import RUNTIME
from switchyard.sidecar.routing import breaker
from switchyard.sidecar.routing.breaker import effective_state
from switchyard.sidecar.state import Runtime, binding_key

ADMIN_TOKEN: web.AppKey[str | None] = web.AppKey("admin_token", str)  # type: ignore[arg-type]
MAX_CONFIG_BYTES = 16 * 1024 * 1024
# The token in its own header, for callers that reach the sidecar through the API
# server's pod proxy (which consumes Authorization for the caller's own credentials).
ADMIN_TOKEN_HEADER = "X-Switchyard-Admin-Token"
STATUS_PATH = "/admin/status"  # read-only, nothing secret: open to whoever reaches the listener
HINT_BODY: web.RequestKey[bytes] = web.RequestKey("hint_body", bytes)  # a signed hint's body, read once
HINT_AT: web.RequestKey[int] = web.RequestKey("hint_at", int)  # ... and its signed time


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def problem(status: int, message: str) -> web.Response:
    return _json({"error": {"message": message}}, status)


def _is_loopback_peer(request: web.Request) -> bool:
    try:
        return ipaddress.ip_address((request.remote or "").split("%")[0]).is_loopback
    except ValueError:
        return False


@web.middleware
async def require_token(request: web.Request, handler: Any) -> web.StreamResponse:
    refused = guard.check(request, request.app[guard.EXPOSURE])  # browsers first (guard.py)
    if refused is not None:
        return problem(refused.status, refused.message)
    if request.path.startswith("/admin/") and not (request.method == "GET" and request.path == STATUS_PATH):
        token = request.app[ADMIN_TOKEN]
        if token and request.path == HEALTH_PATH and SIGNATURE_HEADER in request.headers:
            # The operator's hints are signed with the token, which never crosses the wire
            # (contract/health.py); the signature covers the body, so it is read here, bounded.
            raw = await read_request_body(request.content, MAX_HINT_BYTES + 1)
            if len(raw) > MAX_HINT_BYTES:
                request.app[RUNTIME].metrics.health_hints.labels("message", "rejected").inc()
                return problem(413, f"hints larger than {MAX_HINT_BYTES} bytes")
            try:
                request[HINT_AT] = verify(token, request.headers[SIGNATURE_HEADER], raw, time.time())
            except SignatureError as exc:
                request.app[RUNTIME].metrics.health_hints.labels("message", "rejected").inc()
                return problem(401, f"hint refused: {exc}")
            request[HINT_BODY] = raw
            return await handler(request)
        if token:
            # Header values are text decoded with surrogateescape: bytes that are not UTF-8
            # compare (unequal) instead of failing to encode.
            got = request.headers.get("Authorization", "").encode("utf-8", "surrogateescape")
            alt = request.headers.get(ADMIN_TOKEN_HEADER, "").encode("utf-8", "surrogateescape")
            bearer_ok = hmac.compare_digest(got, f"Bearer {token}".encode())
            header_ok = hmac.compare_digest(alt, token.encode())
            if not (bearer_ok or header_ok):
                return problem(401, "admin token required (Authorization: Bearer ...)")
        elif not _is_loopback_peer(request):
            # No token (config from files): the routes that act answer the pod itself only.
            return problem(403, "this admin route answers loopback callers only (no admin token is configured)")
    return await handler(request)


async def put_config(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    if rt.config_source == "files":
        rt.metrics.config_updates.labels("rejected").inc()
        return problem(409, "this sidecar reads its config from its mounted files (--config-dir); pushes are refused")
    raw = await read_request_body(request.content, MAX_CONFIG_BYTES + 1)
    if len(raw) > MAX_CONFIG_BYTES:
        rt.metrics.config_updates.labels("rejected").inc()
        return problem(413, f"config larger than {MAX_CONFIG_BYTES} bytes")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        rt.metrics.config_updates.labels("rejected").inc()
        return problem(400, f"config is not valid JSON: {exc.msg}")
    if not isinstance(data, dict):
        rt.metrics.config_updates.labels("rejected").inc()
        return problem(400, "config must be a JSON object")
    if data.get("schema_version") != SCHEMA_VERSION:
        # Keep serving the previous config; the operator reports the mismatch.
        rt.metrics.config_updates.labels("rejected").inc()
        return problem(
            409,
            f"config schema_version {data.get('schema_version')!r} is not one this sidecar understands ({SCHEMA_VERSION})",
        )
    try:
        config = CompiledConfig.from_wire(data)
    except ValidationError as exc:
        rt.metrics.config_updates.labels("rejected").inc()
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        return problem(400, f"config is invalid at {where}: {first['msg']}")
    if not config.version:
        config = config.with_version()
    applied = rt.install(config)
    rt.metrics.config_updates.labels("applied" if applied else "unchanged").inc()
    return _json({"applied": applied, "version": config.version})


async def put_health(request: web.Request) -> web.Response:
    """Shared tier health: the operator's hints for this pod (docs/shared-health.md).
    Hostile input: every refusal is a plain JSON problem, never a trace; hints for what
    this sidecar does not run are ignored, windows clamped to the tier's own cap."""
    rt = request.app[RUNTIME]
    counted = rt.metrics.health_hints
    raw = request.get(HINT_BODY)
    if raw is None:  # the bearer token (a person through port-forward), or loopback without a token
        raw = await read_request_body(request.content, MAX_HINT_BYTES + 1)
        if len(raw) > MAX_HINT_BYTES:
            counted.labels("message", "rejected").inc()
            return problem(413, f"hints larger than {MAX_HINT_BYTES} bytes")
    at = request.get(HINT_AT, int(time.time()))
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        counted.labels("message", "rejected").inc()
        return problem(400, f"hints are not valid JSON: {exc.msg}")
    if not isinstance(data, dict):
        counted.labels("message", "rejected").inc()
        return problem(400, "hints must be a JSON object")
    try:
        hints = HealthHints.model_validate(data)
    except ValidationError as exc:
        counted.labels("message", "rejected").inc()
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top)"
        return problem(400, f"hints are invalid at {where}: {first['msg']}"[:300])
    if at < rt.hints_at:
        counted.labels("message", "stale").inc()
        return problem(409, "hints older than the last accepted: ignored")
    rt.hints_at = at
    counts = rt.apply_hints(hints)
    return _json(counts)


def tier_health_view(rt: Runtime, b: Any, t: Any, now: float) -> ReportedBreaker:
    h = rt.health(b, t)
    is_open = h.state.value == TierState.OPEN
    return ReportedBreaker(
        state=effective_state(h, now),
        consecutive_failures=h.consecutive_failures,
        last_failure=h.last_failure,
        last_failure_class=h.last_failure_class,
        last_failure_at=h.last_failure_at,
        last_success_at=h.last_success_at,
        transitions=[
            ReportedTransition(at=tr.at, from_state=tr.from_state, to_state=tr.to_state, reason=tr.reason)
            for tr in h.transitions[-5:]
        ],
        retry_in_seconds=max(0.0, round(h.open_until - now, 3)) if is_open else None,
        probing=h.probing if is_open else None,
        disabled_reason=h.disabled_reason,
        rate_limited_for_seconds=round(h.rate_limited_until - now, 3) if h.rate_limited_until > now else None,
        shared=True if breaker.is_shared(h, now) else None,
    )


def reported_usage(tokens: list[int], cost: dict[str, int]) -> ReportedUsage:
    """A binding's totals from ``Metrics.usage_totals`` (tokens in ``USAGE_KINDS`` order)."""
    return ReportedUsage(
        tokens=ReportedTokens(**dict(zip(USAGE_KINDS, tokens, strict=True))),
        cost={currency: picos_text(picos) for currency, picos in sorted(cost.items())},
    )


def key_views(rt: Runtime, b: Any, t: Any, now: float) -> list[ReportedKey] | None:
    """Each key of a tier with several, by index (None for a one-key tier). No value."""
    if t.keys is None:
        return None
    out = []
    wall_offset = time.time() - now  # the breakers' clock is monotonic: until is told in wall time
    for k in t.keys:
        state, _why = rt.key_state(b, t, k)
        kh = rt.breakers.peek_key(binding_key(b), t.key, k.index)
        waiting = kh is not None and state == "rate-limited"
        out.append(ReportedKey(
            index=k.index,
            state=state,  # type: ignore[arg-type]
            problem=k.problem,
            disabled_reason=kh.disabled_reason if kh is not None and state == "disabled" else None,
            rate_limited_for_seconds=round(kh.rate_limited_until - now, 3) if waiting else None,  # type: ignore[union-attr]
            rate_limited_until=round(kh.rate_limited_until + wall_offset) if waiting else None,  # type: ignore[union-attr]
            last_failure=kh.last_failure if kh is not None else None,
            last_failure_at=kh.last_failure_at if kh is not None else None,
            shared=True if kh is not None and breaker.is_shared(kh, now) else None,
        ))
    return out


def status_report(rt: Runtime) -> SidecarReport:
    """What ``GET /admin/status`` answers (the contract: ``contract/report.py``)."""
    snap = rt.snapshot
    now = rt.clock()
    bindings = []
    usage = rt.metrics.usage_totals() if snap is not None else {}
    for b in snap.config.bindings if snap is not None else []:
        last = rt.last_used.get(binding_key(b))
        used = usage.get(b.name)
        bindings.append(
            ReportedBinding(
                name=b.name,
                namespace=b.namespace,
                aliases=b.aliases,
                unbound=b.unbound,
                last_used=(
                    ReportedLastUsed(tier=last.tier, source=last.source, model=last.model, at=last.at) if last else None
                ),
                tiers=[
                    ReportedTier(
                        tier=t.index,
                        source=t.source,
                        provider=t.provider,
                        protocol=t.protocol,
                        model=t.model,
                        resolvable=t.problem is None,
                        problem=t.problem,
                        breaker=tier_health_view(rt, b, t, now),
                        keys=key_views(rt, b, t, now),
                    )
                    for t in b.tiers
                ],
                usage=reported_usage(*used) if used is not None else None,
                limits=rt.limits.report(b),
            )
        )
    return SidecarReport(
        configured=snap is not None,
        version=snap.config.version if snap else None,
        schema_version=SCHEMA_VERSION,
        loaded_at=rt.loaded_at,
        draining=rt.draining,
        bindings=bindings,
        config_source="files" if rt.config_source == "files" else None,  # a push-mode report is as before
        config_error=rt.config_error,
    )


async def get_status(request: web.Request) -> web.Response:
    return _json(status_report(request.app[RUNTIME]).to_wire())


async def test_binding(request: web.Request) -> web.Response:
    """Check that each tier of a binding resolves, without sending a prompt anywhere."""
    rt = request.app[RUNTIME]
    snap = rt.snapshot
    if snap is None:
        return problem(503, "no config loaded yet")
    name = request.match_info["name"]
    b = snap.by_name.get(name)
    if b is None:
        return problem(404, f"no binding named {name!r}")
    now = rt.clock()
    tiers = []
    for t in b.tiers:
        h = rt.health(b, t)
        checks = {
            "source_resolved": t.problem is None,
            "credential_present": t.problem is None and (t.auth == "none" or t.credential is not None),
            "model_allowed": t.problem is None or not t.problem.startswith(("ModelNotAllowed", "ModelNotInCatalog")),
            "breaker_allows": effective_state(h, now) in (TierState.CLOSED, TierState.HALF_OPEN),
        }
        tiers.append(
            {
                "tier": t.index,
                "source": t.source,
                "model": t.model,
                "ok": all(checks.values()),
                "checks": checks,
                "problem": t.problem,
                "breaker": h.state.value,
            }
        )
    ok = not b.unbound and any(t["ok"] for t in tiers)
    return _json({"binding": b.name, "unbound": b.unbound, "ok": ok, "prompt_sent": False, "tiers": tiers})


async def reset_binding(request: web.Request) -> web.Response:
    """Put a binding's tiers (or one, with ?tier=N) back in service: closed, not rate
    limited, not disabled. For an operator who fixed what the upstream complained about."""
    rt = request.app[RUNTIME]
    snap = rt.snapshot
    if snap is None:
        return problem(503, "no config loaded yet")
    b = snap.by_name.get(request.match_info["name"])
    if b is None:
        return problem(404, f"no binding named {request.match_info['name']!r}")
    tier = None
    if "tier" in request.query:
        raw = request.query["tier"]
        if not raw.isdigit() or int(raw) >= len(b.tiers):  # "-1" is not the last tier
            return problem(400, f"no tier {raw!r} in binding {b.name}")
        tier = b.tiers[int(raw)]
    return _json({"binding": b.name, "reset": rt.reset(b, tier)})


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def readyz(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    if rt.draining:
        return web.Response(status=503, text="draining")
    if rt.snapshot is None:
        return web.Response(status=503, text="no config yet")
    return web.Response(text="ok")


async def metrics(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    return web.Response(body=rt.metrics.exposition(), headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})


def routes() -> list[web.RouteDef]:
    return [
        web.put("/admin/config", put_config),
        web.put(HEALTH_PATH, put_health),
        web.get("/admin/status", get_status),
        web.post("/admin/bindings/{name}/test", test_binding),
        web.post("/admin/bindings/{name}/reset", reset_binding),
        web.get("/healthz", healthz),
        web.get("/readyz", readyz),
        web.get("/metrics", metrics),
    ]
