"""The contract every protocol adapter fulfils, and the registry of adapters.

One adapter per wire protocol, two faces:

- **Ingress** (the protocol a client speaks): parse the client's JSON into a neutral
  ``Request``; render a neutral ``Response`` or event stream back; say which features a
  raw body uses (cheaply, for the capability step); edit a raw body for a same-protocol
  tier (keep unknown fields, swap the model, drop stripped features).
- **Egress** (the protocol an upstream speaks): build the HTTP call for a neutral
  ``Request``; parse the answer or the SSE stream into neutral form; read an error body.

Adapters are pure (no I/O, no clock) and never mutate their inputs. Streaming state
lives in per-request encoder/decoder objects, never in the adapter.

Same-protocol traffic (client and tier speak the same protocol) skips the neutral form
on the way up: ``prepare_passthrough`` edits a shallow copy of the client's JSON, so
fields Switchyard does not know survive. On the way back the upstream's bytes are
forwarded as they are (``StreamDecoder`` events keep their raw bytes).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from switchyard.sidecar.contract.config import CompiledTier

from . import neutral


class RequestError(Exception):
    """The client's body is not a valid request of its protocol (answered as a 400)."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class UpstreamFormatError(Exception):
    """An upstream answered 2xx with a body that is not its protocol's shape."""


@dataclass(slots=True)
class UpstreamCall:
    """One HTTP request to an upstream, ready to send (credentials already in headers)."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None
    stream: bool
    # Changes the adapter itself made to fit the destination (feature, action), e.g.
    # ("temperature", "strip") when thinking forbids it; reported like profile edits.
    notes: list[tuple[str, str]] = field(default_factory=list)


@dataclass(slots=True)
class UpstreamErrorInfo:
    """What an upstream error response says, read by the egress adapter."""

    message: str  # clipped upstream text, safe to show
    kind: str | None = None  # provider's error type/status string, e.g. "rate_limit_error"
    quota: bool = False  # a rate-limit/quota error even if the status is not 429
    model_not_found: bool = False
    auth: bool = False  # the tier's credential was refused, whatever the status (Gemini: 400 API_KEY_INVALID)
    retry_after: float | None = None  # a wait stated in the body (Gemini RetryInfo), seconds


@dataclass(slots=True)
class DecodedEvent:
    """One upstream SSE event: its neutral meaning and its exact bytes. A ``StreamError``
    event with empty ``raw`` (a malformed chunk) has nothing a same-protocol client could
    be forwarded: the pipeline sends the client protocol's own error event instead."""

    events: list[neutral.Event]
    raw: bytes
    terminal: bool = False  # the protocol's clean end marker ([DONE], message_stop, ...)


class StreamDecoder(Protocol):
    """Upstream bytes -> neutral events. ``close()`` at end of stream; ``complete`` tells
    whether the stream ended with the protocol's own end marker."""

    complete: bool

    def feed(self, chunk: bytes) -> list[DecodedEvent]: ...

    def close(self) -> list[DecodedEvent]: ...


class StreamEncoder(Protocol):
    """Neutral events -> client bytes, for one response."""

    def start(self) -> bytes:
        """Bytes to send before any event (usually empty)."""
        ...

    def encode(self, event: neutral.Event) -> bytes: ...

    def finish(self) -> bytes:
        """Clean end of a successful stream (e.g. ``data: [DONE]``)."""
        ...

    def error(self, status: int, kind: str, message: str) -> bytes:
        """A well-formed error event that ends the stream. Never followed by finish()."""
        ...


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the pipeline must know of a whole answer it relays unchanged (same protocol):
    whether its first choice holds content a user would call an answer (promise 2), how it
    finished, and the tokens it reports. ``response_verdict`` says the same of a parsed
    answer; an adapter's ``verdict`` reads it off the upstream's JSON without building
    the neutral response (a test keeps the two equal on the golden answers and mutants of
    them)."""

    content: bool
    finish: neutral.FinishReason | None
    usage: neutral.Usage | None


def response_verdict(answer: neutral.Response) -> Verdict:
    if not answer.choices:
        return Verdict(False, None, answer.usage)
    first = answer.choices[0]
    return Verdict(neutral.has_content(first.parts), first.finish_reason, answer.usage)


def judge(adapter: Adapter, body: dict[str, Any]) -> Verdict:
    """The verdict on a whole answer in ``adapter``'s protocol: its own quick reading when
    the answer has the usual shape, else that of the full parse (raises what
    ``parse_response`` raises)."""
    quick = adapter.verdict(body) if adapter.verdict is not None else None
    return quick if quick is not None else response_verdict(adapter.parse_response(body))


@dataclass(slots=True, eq=False)
class Adapter:
    """One wire protocol's adapter: an explicit object of pure functions, one per protocol
    package (``<protocol>.ADAPTER``), built in the package's ``__init__`` from the
    functions its ``ingress``, ``egress`` and ``stream`` modules define. A face a protocol
    does not have (OpenAI chat and Responses have no token-count endpoint) answers None,
    as its field says."""

    protocol: str  # "openai-chat" | "anthropic-messages" | "gemini" | "openai-responses"
    sse_content_type: str  # content type of this protocol's streams
    forward_headers: frozenset[str]  # lower-case client headers kept on same-protocol calls

    # ---- ingress ----
    parse_request: Callable[..., neutral.Request]
    """(body, *, path_model=None, stream=None) -> the neutral request (raises RequestError)."""
    request_model: Callable[[dict[str, Any]], str | None]
    """The model name a raw body asks for (binding resolution), without a full parse."""
    request_streams: Callable[[dict[str, Any]], bool]
    check_request: Callable[[dict[str, Any]], None]
    """Cheap shape check of a raw body (raises RequestError), so a body that is missing
    what its protocol requires is refused before any upstream sees it, on the
    same-protocol path too (which never runs the full parse)."""
    features_used: Callable[[dict[str, Any]], dict[str, Any]]
    """Capability features a raw body uses -> the amount used (True, a count, a number).
    Keys are CapabilityProfile feature names (camelCase)."""
    prepare_passthrough: Callable[..., dict[str, Any]]
    """(body, tier, strip, notes=None) -> a copy of a same-protocol body for ``tier``: its
    model, without the features in ``strip`` (feature name -> new value or None to
    delete). Unknown fields kept. Any change the adapter makes beyond ``strip`` is
    appended to ``notes`` (as for build_call)."""
    render_response: Callable[..., dict[str, Any]]
    """(response, *, alias, request=None) -> the client protocol's answer object."""
    stream_encoder: Callable[..., StreamEncoder]
    """(*, alias, request) -> a fresh encoder for one streamed answer."""

    # ---- egress ----
    build_call: Callable[..., UpstreamCall]
    """(request, tier, client_headers=None) -> the call for a neutral request.
    ``client_headers`` (the client's ``forward_headers``) are given only when the tier
    speaks the client's protocol."""
    build_passthrough_call: Callable[[dict[str, Any], CompiledTier, Mapping[str, str]], UpstreamCall]
    """The call for a same-protocol body. ``client_headers`` are the client's headers named
    in ``forward_headers`` (never credentials), e.g. ``anthropic-beta``."""
    parse_response: Callable[[dict[str, Any]], neutral.Response]
    stream_decoder: Callable[[], StreamDecoder]
    read_error: Callable[[int, bytes, Mapping[str, str]], UpstreamErrorInfo]
    verdict: Callable[[dict[str, Any]], Verdict | None] | None = None
    """Egress: the ``Verdict`` on a whole answer read straight off its JSON when it has the
    usual shape (text, thinking); None for any other shape (tool calls, several choices,
    an odd type anywhere): ``judge`` then parses it fully. Never more lenient than
    ``parse_response``. A protocol without one is always parsed."""

    # ---- token counting (one flow for every protocol: sidecar/pipeline/count.py) ----
    count_request: Callable[[dict[str, Any], str | None], neutral.Request] | None = None
    """Ingress: (body, path_model) -> the neutral request whose input is to be counted;
    None when the protocol has no token-count endpoint of its own."""
    render_count: Callable[[int], dict[str, Any]] | None = None
    """Ingress: a token count as this protocol's count answer."""
    count_call: Callable[..., UpstreamCall | None] = field(default=lambda *a, **k: None)
    """Egress: (tier, *, body=None, request=None, client_headers=None) -> the call that
    counts ``body`` (same protocol, sent as is but for the model) or ``request`` (neutral)
    on the tier's own token-count endpoint; None when the protocol has none (a count is
    never answered by running a generation)."""
    read_count: Callable[[bytes], tuple[int, dict[str, Any]]] | None = None
    """Egress: a 2xx count answer -> (tokens, the answer object as sent, for a
    same-protocol client). Raises UpstreamFormatError on a wrong shape."""

    # ---- embeddings (one flow for every protocol: sidecar/pipeline/embed.py) ----
    embed_request: Callable[[dict[str, Any], str | None], neutral.EmbedRequest] | None = None
    """Ingress: (body, path_model) -> the neutral embeddings request (raises
    RequestError); None when the protocol has no embeddings endpoint for clients."""
    render_embeddings: Callable[..., dict[str, Any]] | None = None
    """Ingress: (vectors, usage, *, alias, request) -> this protocol's embeddings answer
    (``usage`` is a neutral Usage or None when the tier told none)."""
    embed_call: Callable[[CompiledTier, neutral.EmbedRequest], UpstreamCall | None] = field(default=lambda *a, **k: None)
    """Egress: (tier, request) -> the call to the tier's own embeddings endpoint (floats
    asked for); None when the protocol has none (Anthropic): the tier is passed over,
    never sent a generation. Raises RequestError for a request the tier cannot take."""
    read_embeddings: Callable[[bytes], tuple[list[list[float]], neutral.Usage | None]] | None = None
    """Egress: a 2xx embeddings answer -> (one vector per input, in input order; usage or
    None). Raises UpstreamFormatError on a wrong shape."""


def adapter_for(protocol: str) -> Adapter:
    """The adapter of a wire protocol, imported the first time it is asked for (a sidecar
    whose bindings speak one protocol never loads the others). KeyError if unknown."""
    adapter = _LOADED.get(protocol)
    if adapter is not None:
        return adapter
    match protocol:
        case "openai-chat":
            from .openai_chat import ADAPTER as adapter
        case "anthropic-messages":
            from .anthropic_messages import ADAPTER as adapter
        case "gemini":
            from .gemini import ADAPTER as adapter
        case "openai-responses":
            from .openai_responses import ADAPTER as adapter
        case _:
            raise KeyError(f"no adapter for protocol {protocol!r}")
    _LOADED[protocol] = adapter
    return adapter


PROTOCOLS = ("openai-chat", "anthropic-messages", "gemini", "openai-responses")
_LOADED: dict[str, Adapter] = {}


def auth_headers(tier: CompiledTier) -> dict[str, str]:
    """The tier's credential, in the header its protocol expects."""
    if tier.credential is None or tier.auth == "none":
        return {}
    key = tier.credential.get_secret_value()
    if tier.auth == "bearer":
        return {"Authorization": f"Bearer {key}"}
    if tier.auth == "x-api-key":
        return {"x-api-key": key}
    return {"x-goog-api-key": key}


def upstream_headers(tier: CompiledTier, stream: bool) -> dict[str, str]:
    """A JSON call's headers: content type, what it accepts, the tier's own headers, then
    its credential (last, so a configured header can never replace it)."""
    h = {"Content-Type": "application/json", "Accept": "text/event-stream" if stream else "application/json"}
    h.update(tier.headers)
    h.update(auth_headers(tier))
    return h


class GuardedDecoder:
    """A ``StreamDecoder`` that never raises: an exception from the wrapped decoder (an
    upstream chunk whose JSON has the wrong shape, e.g. ``"choices": [false]``) becomes
    one ``StreamError`` event, and the decoder reads nothing more.

    The pipeline relies on it: before the first content event the error is a failure
    like any other (the next tier is tried); after it, the client gets its protocol's
    error event instead of a stream cut without one (promise 2). The fuzz tests
    (tests/unit/sidecar/translate/test_fuzz_egress.py) feed every decoder hostile bytes through it."""

    __slots__ = ("_inner", "_broken")

    MESSAGE = "upstream sent a stream chunk of the wrong shape"

    def __init__(self, inner: StreamDecoder) -> None:
        self._inner = inner
        self._broken = False

    @property
    def complete(self) -> bool:
        return not self._broken and self._inner.complete

    def _failed(self, raw: bytes) -> list[DecodedEvent]:
        self._broken = True
        return [DecodedEvent([neutral.StreamError(502, "upstream", self.MESSAGE)], raw)]

    def feed(self, chunk: bytes) -> list[DecodedEvent]:
        if self._broken:
            return []
        try:
            return self._checked(self._inner.feed(chunk))
        except (ValueError, TypeError, AttributeError, KeyError, IndexError, RecursionError):
            return self._failed(b"")

    def close(self) -> list[DecodedEvent]:
        if self._broken:
            return []
        try:
            return self._checked(self._inner.close())
        except (ValueError, TypeError, AttributeError, KeyError, IndexError, RecursionError):
            return self._failed(b"")

    def _checked(self, out: list[DecodedEvent]) -> list[DecodedEvent]:
        """Events carrying an upstream value of the wrong type or range (a list where a
        signature goes, a choice index of 1e19) would break the client's encoder later:
        they are a wrong-shaped chunk too."""
        for d in out:
            for ev in d.events:
                if not valid_event(ev):
                    return self._failed(b"")
        return out


_MAX_INDEX = 1024  # choices, tool calls: far more than any provider sends
_FINISH = frozenset({None, "stop", "length", "tool_calls", "content_filter", "pause", "refusal", "error"})


def _idx(v: object) -> bool:
    return type(v) is int and 0 <= v < _MAX_INDEX


def _opt_str(v: object) -> bool:
    return v is None or type(v) is str


def valid_event(ev: neutral.Event) -> bool:
    """A neutral stream event whose fields have the types (and index ranges) the
    encoders rely on."""
    n = neutral
    if isinstance(ev, n.TextDelta):
        return type(ev.text) is str and _idx(ev.choice)
    if isinstance(ev, n.ThinkingDelta):
        return type(ev.text) is str and _opt_str(ev.signature) and _opt_str(ev.redacted) and _idx(ev.choice) and _opt_str(ev.origin)
    if isinstance(ev, n.ToolCallStart):
        return _idx(ev.call) and type(ev.id) is str and type(ev.name) is str and _idx(ev.choice)
    if isinstance(ev, n.ToolCallDelta):
        return _idx(ev.call) and type(ev.arguments) is str and _idx(ev.choice)
    if isinstance(ev, n.StreamFinish):
        return ev.reason in _FINISH and _idx(ev.choice) and _opt_str(ev.stop_sequence)
    if isinstance(ev, n.StreamUsage):
        u = ev.usage
        return isinstance(u, n.Usage) and all(type(getattr(u, f)) is int for f in n._USAGE_FIELDS)
    if isinstance(ev, n.StreamStart):
        return type(ev.id) is str and type(ev.model) is str
    if isinstance(ev, n.StreamError):
        return type(ev.status) is int and type(ev.kind) is str and type(ev.message) is str
    return False
