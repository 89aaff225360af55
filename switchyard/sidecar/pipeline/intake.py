"""A request's intake, before any tier is tried: is the sidecar serving, the body read
and parsed as JSON (bounded in size, time and depth), the binding it is for, and its
deadline. Shared by generation (``chain``) and token counting (``count``).
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from switchyard.sidecar.contract.config import CompiledBinding
from switchyard.sidecar.errors import ErrorKind, GatewayError
from switchyard.sidecar.pipeline.exchange import DRAIN_MESSAGE, H_BINDING
from switchyard.sidecar.state import RUNTIME, Runtime, Snapshot
from switchyard.sidecar.translate.base import Adapter



def serving_snapshot(rt: Runtime) -> Snapshot:
    """The config a new request is served on; a retryable 503 while draining or before
    the first config arrived."""
    if rt.draining:
        raise GatewayError(ErrorKind.UNAVAILABLE, DRAIN_MESSAGE, code="draining", retry_after=1)
    snap = rt.snapshot
    if snap is None:
        raise GatewayError(
            ErrorKind.UNAVAILABLE,
            "this sidecar has not received its configuration yet; no request is routed until it has",
            code="not_configured",
            retry_after=5,
        )
    return snap


async def read_json(request: web.Request, limit: int, held: list[int] | None = None) -> dict[str, Any]:
    """The body as a JSON object. With ``held``, the body's bytes are taken from the
    runtime's ``BodyBudget`` and appended to it: the caller gives them back when the
    request ends."""
    if request.content_length is not None and request.content_length > limit:
        raise GatewayError(ErrorKind.REQUEST_TOO_LARGE, f"request body larger than {limit} bytes")
    rt = request.app[RUNTIME]
    if held is not None and request.content_length:  # reserve before reading when the size is known
        _take(rt, request.content_length, held)
    seconds = rt.body_read_seconds
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
    if held is not None and not request.content_length and raw:  # chunked: its size is known now
        _take(rt, len(raw), held)
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


def _take(rt: Runtime, n: int, held: list[int]) -> None:
    budget = rt.bodies
    if n > budget.limit:
        raise GatewayError(
            ErrorKind.REQUEST_TOO_LARGE,
            f"request body of {n} bytes is larger than this sidecar's budget for bodies in flight ({budget.limit} bytes)",
        )
    if not budget.take(n):
        raise GatewayError(
            ErrorKind.UNAVAILABLE,
            "the gateway is holding as many large request bodies as its memory allows; retry",
            code="gateway_busy",
            retry_after=1,
        )
    held.append(n)


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
        if b.callers is not None and caller not in b.callers:  # naming a binding does not skip its callers
            raise GatewayError(
                ErrorKind.PERMISSION,
                f"binding {b.name} serves callers {', '.join(b.callers)}; this request comes from {caller}",
                code="caller_not_allowed",
                binding=b.name,
            )
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


# Client deadline headers, in seconds. A total for the whole answer: ours, and
# google-genai's X-Server-Timeout. The official OpenAI and Anthropic SDKs send their
# *per-read* timeout (x-stainless-read-timeout, x-stainless-timeout): the longest gap
# between bytes they wait, not a total, so it only bounds the wait for the first byte
# (nothing reaches the client before a tier's first content): a stream longer than it
# must not be cut (issue 17: `OpenAI(timeout=60)` lost streamed answers past a minute).
DEADLINE_HEADERS = ("x-switchyard-deadline-seconds", "x-server-timeout")
READ_TIMEOUT_HEADERS = ("x-stainless-read-timeout", "x-stainless-timeout")
MIN_ATTEMPT_SECONDS = 0.5  # a tier is not tried with less than this left of the deadline


def _seconds(request: web.Request, names: tuple[str, ...]) -> list[float]:
    out = []
    for name in names:
        value = request.headers.get(name)
        if value:
            try:
                seconds = float(value)
            except ValueError:
                continue
            if 0 < seconds < 1e6:
                out.append(seconds)
    return out


def request_deadline(request: web.Request, binding: CompiledBinding) -> float | None:
    """Seconds this request may take over the whole chain, or None for no bound."""
    limits = [binding.deadline_seconds] if binding.deadline_seconds else []
    limits += _seconds(request, DEADLINE_HEADERS)
    return min(limits) if limits else None


def first_content_patience(request: web.Request) -> float | None:
    """Seconds the client waits for the first byte (its SDK's read timeout), or None."""
    limits = _seconds(request, READ_TIMEOUT_HEADERS)
    return min(limits) if limits else None
