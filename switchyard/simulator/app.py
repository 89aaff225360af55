"""The simulator's aiohttp application: provider routes, faults acted out, control API.

`build_app(mounts)` mounts each provider flavour under its prefix (or at the root) and
the JSON control API under `/_sim/`. One request path serves every flavour:

    read body -> record -> API key? -> required headers? -> JSON? -> wire.parse (4xx
    in the provider's shape) -> model allowed? -> fault? (act it out) -> scripted or
    default reply -> rendered by the wire, whole or as a stream

State lives in one place, `SimState` (per mount: `MountState`), reached through a
typed `AppKey`; `server.Simulator` and `cli.py` drive the same state in-process, and
the control API drives it over HTTP. The wire modules are pure; this module owns the
I/O: sleeps, hangs and TCP resets.

Control API (JSON; the mount name is the path segment):

    GET    /_sim/                       mounts, their settings, faults and counts
    POST   /_sim/reset                  clear faults, scripts and records everywhere
    PATCH  /_sim/{mount}                {"chunks", "chunk_delay_ms", "delay_ms"}
    GET    /_sim/{mount}/faults         faults with hit counts
    POST   /_sim/{mount}/faults         {"kind": "429", "times": 2, "retry_after": 5}
                                        or {"spec": "429:every=3:retry-after=5"}
    DELETE /_sim/{mount}/faults
    POST   /_sim/{mount}/scripts        a reply {"text", "tool_calls", ...}, a list of
                                        them, or {"raw": {"status", "body", "events"}}
    DELETE /_sim/{mount}/scripts
    GET    /_sim/{mount}/requests       recorded requests (credentials redacted)
    DELETE /_sim/{mount}/requests
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import socket
import struct
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web
from multidict import CIMultiDictProxy

from .faults import Fault, FaultBook, make_fault, parse_fault_spec, retry_headers
from .replies import RawReply, Reply, Resolved, resolve
from .wire import COUNT_TOKENS, EMBED, GENERATE, GET_MODEL, LIST_MODELS, Call, ErrorResponse, StreamPlan, Wire, WireError, next_id
from .wire_anthropic import AnthropicWire
from .wire_gemini import GeminiWire
from .wire_openai import OpenAIWire
from .wire_openai_responses import OpenAIResponsesWire

__all__ = [
    "FLAVOURS",
    "PROVIDERS",
    "RECORD_KEY",
    "SIM_STATE",
    "Mount",
    "MountState",
    "RecordedRequest",
    "SimState",
    "build_app",
]

#: Wire flavours and their implementations.
FLAVOURS: dict[str, Wire] = {
    "openai": OpenAIWire(),
    "openai-responses": OpenAIResponsesWire(),  # the Responses API (POST /v1/responses)
    "anthropic": AnthropicWire(),
    "gemini": GeminiWire(),
}
#: Provider names (as in a ModelSource) and the flavour that speaks their wire format.
PROVIDERS = {
    "openai": "openai",
    "openrouter": "openai",
    "openai-compatible": "openai",
    "anthropic": "anthropic",
    "gemini": "gemini",
}

_REDACT_HEADERS = frozenset({"authorization", "x-api-key", "x-goog-api-key", "proxy-authorization", "cookie"})
_EMPTY = Resolved(
    text="", text_pieces=[], thinking=None, thinking_pieces=[], signature=None, tool_calls=[],
    finish="stop", stop_sequence=None, input_tokens=1, output_tokens=0, reasoning_tokens=0, cached_tokens=0,
)


@dataclass
class Mount:
    """One simulated upstream: a flavour under a path prefix.

    `name` names it in the API (`sim.url(name)`, `/_sim/{name}/…`). `flavour` is
    derived from the name when it is a provider name (openai, openrouter,
    openai-compatible, anthropic, gemini) or a flavour name (`openai-responses`: the
    OpenAI Responses API). `prefix` defaults to `/{name}`; `""` mounts
    at the root. `api_key`: require this key, or any of a list of keys (wrong or
    missing -> the provider's refusal); a request's key index (its place in that list)
    is recorded and can scope a fault (`key_index=`). `models`: the only models accepted (others -> the provider's 404) and
    listed; default: any model accepted, a few plausible ones listed. `chunks`,
    `chunk_delay_ms`, `delay_ms` (before each response head) override the simulator's
    defaults. `reasoning_field` (OpenAI-style only): send thinking in this field
    (`reasoning_content` for vLLM/DeepSeek, `reasoning` for OpenRouter).
    `strict_headers=False` stops requiring Anthropic's `anthropic-version`.
    `embedding_dimensions` (OpenAI-style and Gemini mounts): the size of the vectors
    embeddings get, one for every model or per model name (default 1536 for
    OpenAI-style, 3072 for Gemini, as text-embedding-3-small and gemini-embedding-001).
    """

    name: str
    flavour: str | None = None
    prefix: str | None = None
    api_key: str | Sequence[str] | None = None
    models: Sequence[str] | None = None
    chunks: int | None = None
    chunk_delay_ms: float | None = None
    delay_ms: float | None = None
    reasoning_field: str | None = None
    strict_headers: bool = True
    embedding_dimensions: int | Mapping[str, int] | None = None

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name or self.name.startswith("_"):
            raise ValueError(f"mount name {self.name!r} must be a non-empty path segment not starting with '_'")
        flavour = self.flavour or PROVIDERS.get(self.name) or (self.name if self.name in FLAVOURS else None)
        flavour = PROVIDERS.get(flavour, flavour) if flavour else None
        if flavour not in FLAVOURS:
            raise ValueError(
                f"mount {self.name!r}: flavour {self.flavour!r} is not one of "
                f"{', '.join(PROVIDERS)} (give flavour= when the name is not a provider)"
            )
        self.flavour = flavour
        if self.prefix is None:
            self.prefix = f"/{self.name}"
        self.prefix = self.prefix.rstrip("/")
        if self.prefix and not self.prefix.startswith("/"):
            self.prefix = "/" + self.prefix
        if self.reasoning_field is not None and flavour != "openai":
            raise ValueError(f"mount {self.name!r}: reasoning_field is for OpenAI-style mounts only")


@dataclass(slots=True)
class RecordedRequest:
    """One request as the simulator received it.

    `headers` is case-insensitive (`r.headers["Authorization"]`); `body` is the
    parsed JSON (None if there was no body or it was not JSON); `raw` the bytes.
    `outcome`: "ok" (default reply), "scripted", "fault:<kind>", "auth" (key refused),
    "bad-request", "not-found", or "pending" while it is being answered.
    """

    mount: str
    method: str
    path: str
    query: dict[str, str]
    headers: CIMultiDictProxy[str]
    raw: bytes
    time: float
    body: Any = None
    endpoint: str | None = None
    model: str | None = None
    stream: bool = False
    outcome: str = "pending"
    key_index: int | None = None  # which of the mount's API keys it presented

    def to_dict(self, *, redact: bool = True) -> dict[str, Any]:
        def hide(value: str) -> str:
            return f"[redacted sha256:{hashlib.sha256(value.encode()).hexdigest()[:12]}]"

        headers = {k.lower(): (hide(v) if redact and k.lower() in _REDACT_HEADERS else v) for k, v in self.headers.items()}
        query = {k: (hide(v) if redact and k == "key" else v) for k, v in self.query.items()}
        body: Any = self.body
        if body is None and self.raw:
            body = self.raw.decode("utf-8", "replace")
        return {
            "mount": self.mount,
            "method": self.method,
            "path": self.path,
            "query": query,
            "headers": headers,
            "body": body,
            "endpoint": self.endpoint,
            "model": self.model,
            "stream": self.stream,
            "outcome": self.outcome,
            "key_index": self.key_index,
            "time": self.time,
        }


class MountState:
    """The live state of one mount: settings, faults, scripts, records."""

    def __init__(self, mount: Mount, *, chunks: int, chunk_delay_ms: float, delay_ms: float, record_limit: int) -> None:
        assert mount.flavour is not None
        self.mount = mount
        self.name = mount.name
        self.wire = FLAVOURS[mount.flavour]
        self.label = mount.flavour if mount.name == mount.flavour else f"{mount.flavour} ({mount.name})"
        self.models: tuple[str, ...] = tuple(mount.models) if mount.models else self.wire.default_models
        self.strict_models = bool(mount.models)
        keys = mount.api_key
        self.api_keys: tuple[str, ...] = (keys,) if isinstance(keys, str) else tuple(keys or ())
        self.reasoning_field = mount.reasoning_field
        self.strict_headers = mount.strict_headers
        self.embedding_dimensions = mount.embedding_dimensions
        self.chunks = mount.chunks or chunks
        self.chunk_delay = (mount.chunk_delay_ms if mount.chunk_delay_ms is not None else chunk_delay_ms) / 1000
        self.delay = (mount.delay_ms if mount.delay_ms is not None else delay_ms) / 1000
        self.faults = FaultBook()
        self.scripts: deque[Reply | RawReply] = deque()
        self.records: deque[RecordedRequest] = deque(maxlen=record_limit)
        self.count = 0
        self.arrived = asyncio.Event()

    @property
    def api_key(self) -> str | None:
        """The first key the mount accepts (None: any request is accepted)."""
        return self.api_keys[0] if self.api_keys else None

    @api_key.setter
    def api_key(self, value: str | None) -> None:
        self.api_keys = (value,) if value else ()

    @property
    def base_path(self) -> str:
        """The path an SDK or a ModelSource `baseURL` points at (OpenAI wants `/v1`)."""
        return self.mount.prefix + ("/v1" if self.wire.flavour in ("openai", "openai-responses") else "")

    def embedding_size(self, model: str) -> int:
        """The size of `model`'s vectors on this mount."""
        dims = self.embedding_dimensions
        if isinstance(dims, Mapping):
            dims = dims.get(model)
        return dims or (3072 if self.wire.flavour == "gemini" else 1536)

    def configure(self, *, chunks: int | None = None, chunk_delay_ms: float | None = None, delay_ms: float | None = None) -> None:
        if chunks is not None:
            if not isinstance(chunks, int) or chunks < 1:
                raise ValueError("chunks must be a positive integer")
            self.chunks = chunks
        if chunk_delay_ms is not None:
            self.chunk_delay = float(chunk_delay_ms) / 1000
        if delay_ms is not None:
            self.delay = float(delay_ms) / 1000

    def add_script(self, reply: Reply | RawReply, times: int = 1) -> None:
        if not isinstance(reply, (Reply, RawReply)):
            raise TypeError(f"a script is a Reply or RawReply, not {type(reply).__name__}")
        self.scripts.extend([reply] * times)

    def reset(self) -> None:
        self.faults.clear()
        self.scripts.clear()
        self.records.clear()
        self.count = 0

    def describe(self, origin: str = "") -> dict[str, Any]:
        return {
            "name": self.name,
            "flavour": self.wire.flavour,
            "prefix": self.mount.prefix,
            "url": origin + self.mount.prefix,
            "base_url": origin + self.base_path,
            "api_key_required": self.api_key is not None,
            "models": list(self.models),
            "strict_models": self.strict_models,
            "chunks": self.chunks,
            "chunk_delay_ms": self.chunk_delay * 1000,
            "delay_ms": self.delay * 1000,
            "faults": [f.to_dict() for f in self.faults.all()],
            "scripts": len(self.scripts),
            "requests": self.count,
        }


class SimState:
    """Every mount's state, and the event that ends hangs when the simulator closes."""

    def __init__(self, mounts: Iterable[Mount], *, chunks: int = 4, chunk_delay_ms: float = 0, delay_ms: float = 0,
                 record_limit: int = 10_000, hang_max_seconds: float = 60.0) -> None:
        self.mounts: dict[str, MountState] = {}
        for mount in mounts:
            if mount.name in self.mounts:
                raise ValueError(f"two mounts are named {mount.name!r}")
            self.mounts[mount.name] = MountState(
                mount, chunks=chunks, chunk_delay_ms=chunk_delay_ms, delay_ms=delay_ms, record_limit=record_limit
            )
        if not self.mounts:
            raise ValueError("the simulator needs at least one mount")
        self.hang_max_seconds = hang_max_seconds
        self.closing = asyncio.Event()

    def get(self, name: str | None) -> MountState:
        if name is None:
            if len(self.mounts) != 1:
                raise ValueError(f"name a mount: {', '.join(self.mounts)}")
            return next(iter(self.mounts.values()))
        try:
            return self.mounts[name]
        except KeyError:
            raise KeyError(f"no mount named {name!r}; mounts: {', '.join(self.mounts)}") from None


SIM_STATE = web.AppKey("switchyard_sim_state", SimState)
#: Where a handled request keeps its `RecordedRequest` (the CLI's access log shows its outcome).
RECORD_KEY = web.RequestKey("switchyard_sim_record", RecordedRequest)


# -- acting out --------------------------------------------------------------------


def _reset_connection(request: web.BaseRequest) -> None:
    """Close the connection with a TCP RST, as a crashed upstream or a proxy would."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError, AttributeError, TypeError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


async def _hang(state: SimState, seconds: float) -> None:
    """Wait until the simulator closes or `seconds` pass. A client that goes away
    cancels the handler (the runner is set up with `handler_cancellation`)."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(state.closing.wait(), seconds)


def _headers(wire: Wire, content_type: str) -> dict[str, str]:
    headers = {"Content-Type": content_type}
    if wire.request_id_header:
        headers[wire.request_id_header] = f"req_sim{next_id():018d}"
    return headers


def _error_response(ms: MountState, err: ErrorResponse, extra: Mapping[str, str] | None = None) -> web.Response:
    headers = _headers(ms.wire, ms.wire.json_type)
    headers.update(err.headers)
    if extra:
        headers.update(extra)
    return web.Response(body=err.body, status=err.status, headers=headers)


async def _send_stream(
    request: web.BaseRequest,
    state: SimState,
    ms: MountState,
    call: Call,
    plan: StreamPlan,
    *,
    delay: float,
    chunk_delay: float,
    fault: Fault | None = None,
    stop_at: int | None = None,
) -> web.StreamResponse:
    """Write a stream: head, content chunks (with the per-chunk delay), tail — or, when
    a fault cuts in after `stop_at` content chunks, what the fault says instead."""
    wire = ms.wire
    if delay:
        await asyncio.sleep(delay)
    response = web.StreamResponse(status=200, headers=_headers(wire, wire.stream_content_type(call)))
    response.headers["Cache-Control"] = "no-cache"
    await response.prepare(request)
    if plan.head:
        await response.write(b"".join(plan.head))
    chunks = plan.chunks if stop_at is None else plan.chunks[:stop_at]
    for chunk in chunks:
        if chunk_delay:
            await asyncio.sleep(chunk_delay)
        await response.write(chunk)
    if fault is None or stop_at is None:
        if plan.tail:
            await response.write(b"".join(plan.tail))
        await response.write_eof()
        return response
    first = not chunks
    kind = fault.kind
    if kind == "reset":
        _reset_connection(request)
        return response
    if kind == "hang":
        await _hang(state, fault.options.get("max_seconds", state.hang_max_seconds))
        _reset_connection(request)
        return response
    if kind == "malformed":
        await response.write(wire.malformed_event(call, first=first))
    else:  # error-event
        status = fault.options.get("status", wire.stream_error_status)
        await response.write(wire.error_event(status, call, fault.options.get("message"), first=first))
    await response.write_eof()
    return response


def _resolve(ms: MountState, call: Call, raw: bytes, reply: Reply | None) -> Resolved:
    return resolve(
        reply,
        provider=ms.label,
        model=call.model,
        user_text=call.user_text,
        request_size=len(raw),
        has_tools=call.has_tools,
        thinking_visible=call.wants_thinking or ms.reasoning_field is not None,
        chunks=ms.chunks,
    )


async def _send_raw(request: web.BaseRequest, ms: MountState, call: Call, raw: RawReply) -> web.StreamResponse:
    wire = ms.wire
    if call.stream and raw.events is not None:
        response = web.StreamResponse(status=raw.status, headers=_headers(wire, wire.stream_content_type(call)))
        response.headers.update(raw.headers)
        await response.prepare(request)
        for event in raw.events:
            if isinstance(event, Mapping):
                data = wire.frame(event, call)
            else:
                data = event.encode() if isinstance(event, str) else bytes(event)
            if ms.chunk_delay:
                await asyncio.sleep(ms.chunk_delay)
            await response.write(data)
        await response.write_eof()
        return response
    body = raw.body
    if body is None:
        data = b""
    elif isinstance(body, (bytes, bytearray)):
        data = bytes(body)
    elif isinstance(body, str):
        data = body.encode()
    else:
        data = orjson.dumps(body)
    headers = _headers(wire, wire.json_type)
    headers.update(raw.headers)
    return web.Response(body=data, status=raw.status, headers=headers)


async def _answer(request: web.BaseRequest, state: SimState, ms: MountState, call: Call, raw: bytes, record: RecordedRequest,
                  fault: Fault | None = None) -> web.StreamResponse:
    """The normal answer (also the base of the faults that deliver part of one)."""
    wire = ms.wire
    if call.endpoint != GENERATE:
        if record.outcome == "pending":
            record.outcome = "ok"
        if fault is not None and fault.kind == "slow":
            await asyncio.sleep(fault.options.get("delay_ms", 0) / 1000 + fault.options.get("chunk_delay_ms", 1000) / 1000)
    if call.endpoint == LIST_MODELS:
        return web.Response(body=wire.list_models(ms.models), headers=_headers(wire, wire.json_type))
    if call.endpoint == GET_MODEL:
        return web.Response(body=wire.get_model(call.model), headers=_headers(wire, wire.json_type))
    if call.endpoint == COUNT_TOKENS:
        return web.Response(body=wire.count_tokens(call, max(1, len(raw) // 4)), headers=_headers(wire, wire.json_type))
    if call.endpoint == EMBED:
        embedded = wire.embeddings(call, ms.embedding_size(call.model))
        if isinstance(embedded, ErrorResponse):
            record.outcome = "bad-request"
            return _error_response(ms, embedded)
        return web.Response(body=embedded, headers=_headers(wire, wire.json_type))
    scripted = ms.scripts.popleft() if ms.scripts else None
    if record.outcome == "pending":
        record.outcome = "ok" if scripted is None else "scripted"
    if isinstance(scripted, RawReply):
        return await _send_raw(request, ms, call, scripted)
    reply = _resolve(ms, call, raw, scripted)
    delay, chunk_delay = ms.delay, ms.chunk_delay
    if fault is not None and fault.kind == "slow":
        delay = fault.options.get("delay_ms", 0) / 1000
        chunk_delay = fault.options.get("chunk_delay_ms", 1000) / 1000
        if not call.stream:
            delay += chunk_delay * max(1, len(reply.text_pieces) + len(reply.thinking_pieces))
    if call.stream:
        stop_at = None
        if fault is not None and fault.kind != "slow":
            stop_at = fault.options.get("after_chunks", 1 if fault.kind == "error-event" else 0)
        return await _send_stream(
            request, state, ms, call, wire.stream(reply, call, ms.label, ms.reasoning_field),
            delay=delay, chunk_delay=chunk_delay, fault=fault, stop_at=stop_at,
        )
    body = wire.render(reply, call, ms.label, ms.reasoning_field)
    if delay:
        await asyncio.sleep(delay)
    if fault is not None and fault.kind == "malformed":
        body = body[: max(1, len(body) // 2)]
    return web.Response(body=body, headers=_headers(wire, wire.json_type))


async def _act(request: web.BaseRequest, state: SimState, ms: MountState, call: Call, raw: bytes, record: RecordedRequest,
               fault: Fault) -> web.StreamResponse:
    """Act out `fault` on this request."""
    wire = ms.wire
    kind = fault.kind
    options = fault.options
    record.outcome = f"fault:{kind}"
    status = fault.status
    if status is not None or (kind == "error-event" and not call.stream):
        if status is None:
            status = options.get("status", wire.stream_error_status)
        extra, reset = retry_headers(options)
        return _error_response(ms, wire.error(status, call, options.get("message"), reset), extra)
    if kind == "hang" and not (call.stream and "after_chunks" in options):
        await _hang(state, options.get("max_seconds", state.hang_max_seconds))
        _reset_connection(request)
        return web.Response()
    if kind == "reset":
        if call.stream and "after_chunks" in options:
            return await _answer(request, state, ms, call, raw, record, fault)
        if not call.stream and "after_bytes" in options and call.endpoint == GENERATE:
            return await _truncated(request, ms, call, raw, options["after_bytes"])
        _reset_connection(request)
        return web.Response()
    if kind == "empty":
        zero = options.get("mode", "envelope") == "zero"
        if call.endpoint != GENERATE or (zero and not call.stream):
            return web.Response(body=b"", headers=_headers(wire, wire.json_type))
        if not call.stream:
            return web.Response(body=wire.render(_EMPTY, call, ms.label, None), headers=_headers(wire, wire.json_type))
        plan = StreamPlan() if zero else wire.stream(_EMPTY, call, ms.label, None)
        return await _send_stream(request, state, ms, call, plan, delay=ms.delay, chunk_delay=0)
    if kind == "malformed" and call.endpoint != GENERATE:
        response = await _answer(request, state, ms, call, raw, record)
        assert isinstance(response, web.Response) and response.body is not None
        body = bytes(response.body)  # type: ignore[arg-type]
        return web.Response(body=body[: max(1, len(body) // 2)], headers=_headers(wire, wire.json_type))
    # slow, malformed, error-event and mid-stream hang: (part of) a real answer.
    return await _answer(request, state, ms, call, raw, record, fault)


async def _truncated(request: web.BaseRequest, ms: MountState, call: Call, raw: bytes, after_bytes: int) -> web.StreamResponse:
    """A non-streaming answer that announces its full length and stops after `after_bytes`."""
    scripted = ms.scripts.popleft() if ms.scripts and isinstance(ms.scripts[0], Reply) else None
    body = ms.wire.render(_resolve(ms, call, raw, scripted), call, ms.label, ms.reasoning_field)  # type: ignore[arg-type]
    response = web.StreamResponse(status=200, headers=_headers(ms.wire, ms.wire.json_type))
    response.content_length = len(body)
    await response.prepare(request)
    await response.write(body[:after_bytes])
    _reset_connection(request)
    return response


def _handler(state: SimState, ms: MountState, endpoint: str):
    wire = ms.wire
    mount_name = ms.name

    async def handle(request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        headers = request.headers  # an immutable view: recorded as is, not copied
        query: dict[str, str] = dict(request.query) if request.query_string else {}
        record = RecordedRequest(
            mount=mount_name, method=request.method, path=request.path, query=query,
            headers=headers, raw=raw, time=time.time(),
        )
        request[RECORD_KEY] = record
        ms.records.append(record)
        ms.count += 1
        ms.arrived.set()
        if ms.api_keys:
            refusal = None
            for i, key in enumerate(ms.api_keys):
                refusal = wire.check_key(headers, query, key)
                if refusal is None:
                    record.key_index = i
                    break
            if refusal is not None:
                record.outcome = "auth"
                return _error_response(ms, refusal)
        if ms.strict_headers and (refusal := wire.check_headers(headers)) is not None:
            record.outcome = "bad-request"
            return _error_response(ms, refusal)
        body = None
        if raw:
            try:
                body = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                record.outcome = "bad-request"
                return _error_response(ms, wire.bad_json(str(exc)))
            record.body = body
        try:
            call = wire.parse(endpoint, request.match_info.get("model", ""), query, body, request.path)
        except WireError as exc:
            record.outcome = "not-found" if exc.response.status == 404 else "bad-request"
            return _error_response(ms, exc.response)
        record.endpoint = call.endpoint
        record.model = call.model or None
        record.stream = call.stream
        if ms.strict_models and call.endpoint != LIST_MODELS and call.model not in ms.models:
            record.outcome = "not-found"
            return _error_response(ms, wire.model_not_found(call))
        if ms.faults and (fault := ms.faults.pick(call.endpoint, call.model, record.key_index)) is not None:
            return await _act(request, state, ms, call, raw, record, fault)
        return await _answer(request, state, ms, call, raw, record)

    return handle


# -- control API -------------------------------------------------------------------


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def _control_error(message: str, status: int = 400) -> web.Response:
    return _json({"error": message}, status)


def _mount_of(request: web.Request) -> MountState:
    state = request.app[SIM_STATE]
    name = request.match_info["mount"]
    if name not in state.mounts:
        raise web.HTTPNotFound(
            text=orjson.dumps({"error": f"no mount named {name!r}; mounts: {', '.join(state.mounts)}"}).decode(),
            content_type="application/json",
        )
    return state.mounts[name]


async def _read_json(request: web.Request) -> Any:
    try:
        return orjson.loads(await request.read())
    except orjson.JSONDecodeError as exc:
        raise web.HTTPBadRequest(text=orjson.dumps({"error": f"invalid JSON: {exc}"}).decode(), content_type="application/json") from None


def _origin(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


async def _control_index(request: web.Request) -> web.Response:
    state = request.app[SIM_STATE]
    origin = _origin(request)
    return _json({"mounts": [ms.describe(origin) for ms in state.mounts.values()], "control": origin + "/_sim/"})


async def _control_reset(request: web.Request) -> web.Response:
    for ms in request.app[SIM_STATE].mounts.values():
        ms.reset()
    return _json({"reset": True})


async def _control_mount(request: web.Request) -> web.Response:
    ms = _mount_of(request)
    if request.method == "PATCH":
        data = await _read_json(request)
        if not isinstance(data, dict) or set(data) - {"chunks", "chunk_delay_ms", "delay_ms"}:
            return _control_error("PATCH takes an object with chunks, chunk_delay_ms, delay_ms")
        try:
            ms.configure(**data)
        except (TypeError, ValueError) as exc:
            return _control_error(str(exc))
    return _json(ms.describe(_origin(request)))


async def _control_faults(request: web.Request) -> web.Response:
    ms = _mount_of(request)
    if request.method == "DELETE":
        ms.faults.clear()
    elif request.method == "POST":
        data = await _read_json(request)
        if not isinstance(data, dict):
            return _control_error("a fault is an object: {\"kind\": \"429\", ...} or {\"spec\": \"429:every=3\"}")
        try:
            if "spec" in data:
                name, fault = parse_fault_spec(str(data["spec"]), default_persistent=False)
                if name not in (None, ms.name):
                    return _control_error(f"the spec names mount {name!r}, the path {ms.name!r}")
            else:
                kwargs = dict(data)
                fault = make_fault(kwargs.pop("kind"), **kwargs)
        except KeyError:
            return _control_error("a fault needs a kind (or a spec)")
        except (TypeError, ValueError) as exc:
            return _control_error(str(exc))
        ms.faults.add(fault)
        return _json(fault.to_dict(), 201)
    return _json([f.to_dict() for f in ms.faults.all()])


async def _control_scripts(request: web.Request) -> web.Response:
    ms = _mount_of(request)
    if request.method == "DELETE":
        ms.scripts.clear()
        return _json({"scripts": 0})
    data = await _read_json(request)
    items = data if isinstance(data, list) else [data]
    try:
        replies = [
            RawReply.from_dict(item["raw"]) if isinstance(item, dict) and "raw" in item else Reply.from_dict(item)
            for item in items
        ]
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        return _control_error(f"invalid reply: {exc}")
    for reply in replies:
        ms.add_script(reply)
    return _json({"scripts": len(ms.scripts)}, 201)


async def _control_requests(request: web.Request) -> web.Response:
    ms = _mount_of(request)
    if request.method == "DELETE":
        ms.records.clear()
        ms.count = 0
        return _json([])
    return _json([r.to_dict() for r in ms.records])


def build_app(
    mounts: Iterable[Mount] | None = None,
    *,
    chunks: int = 4,
    chunk_delay_ms: float = 0,
    delay_ms: float = 0,
    record_limit: int = 10_000,
    hang_max_seconds: float = 60.0,
    client_max_size: int = 32 * 1024 * 1024,
) -> web.Application:
    """The simulator app. Default mounts: openai, anthropic and gemini under
    `/openai`, `/anthropic` and `/gemini`. Run it with `handler_cancellation=True` so a
    hang ends when its client goes away (`server.Simulator` and the CLI do)."""
    if mounts is None:
        mounts = [Mount("openai"), Mount("anthropic"), Mount("gemini")]
    state = SimState(
        mounts, chunks=chunks, chunk_delay_ms=chunk_delay_ms, delay_ms=delay_ms,
        record_limit=record_limit, hang_max_seconds=hang_max_seconds,
    )
    app = web.Application(client_max_size=client_max_size)
    app[SIM_STATE] = state
    seen: dict[tuple[str, str], str] = {}
    for ms in state.mounts.values():
        for method, path, endpoint in ms.wire.routes():
            full = ms.mount.prefix + path
            other = seen.setdefault((method, full), ms.name)
            if other != ms.name:
                raise ValueError(f"mounts {other!r} and {ms.name!r} both serve {method} {full}: give one a prefix")
            app.router.add_route(method, full, _handler(state, ms, endpoint))
    router = app.router
    router.add_get("/_sim", _control_index)
    router.add_get("/_sim/", _control_index)
    router.add_post("/_sim/reset", _control_reset)
    router.add_route("GET", "/_sim/{mount}", _control_mount)
    router.add_route("PATCH", "/_sim/{mount}", _control_mount)
    for method in ("GET", "POST", "DELETE"):
        router.add_route(method, "/_sim/{mount}/faults", _control_faults)
    for method in ("POST", "DELETE"):
        router.add_route(method, "/_sim/{mount}/scripts", _control_scripts)
    for method in ("GET", "DELETE"):
        router.add_route(method, "/_sim/{mount}/requests", _control_requests)

    async def _end_hangs(app: web.Application) -> None:
        app[SIM_STATE].closing.set()

    app.on_shutdown.append(_end_hangs)
    return app

