"""The contract each provider's wire module fulfils, and the pieces they share.

The simulator has one request path (`app.py`) and four wire formats
(`wire_openai.py`, `wire_openai_responses.py`, `wire_anthropic.py`, `wire_gemini.py`). A wire module turns an HTTP
request into a `Call` (what was asked), renders a `Resolved` reply (what to answer) as
a response body or a `StreamPlan`, and renders errors in the provider's own shape.
Wire modules are pure: no I/O, no clock except the `created` timestamps they stamp.

A `StreamPlan` has three parts so that faults can cut a stream at a meaningful place:
`head` (envelope events before any content, e.g. Anthropic `message_start`),
`chunks` (one entry per content piece, the unit of `after_chunks` and of the
per-chunk delay), and `tail` (finish, usage and terminator events).
"""

from __future__ import annotations

import hashlib
import itertools
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .replies import Resolved

__all__ = [
    "COUNT_TOKENS",
    "EMBED",
    "GENERATE",
    "GET_MODEL",
    "LIST_MODELS",
    "ENDPOINTS",
    "Call",
    "ErrorResponse",
    "StreamPlan",
    "Wire",
    "WireError",
    "embedding_vector",
    "next_id",
]

GENERATE = "generate"
COUNT_TOKENS = "count_tokens"
LIST_MODELS = "models"
GET_MODEL = "model"
EMBED = "embed"
#: Endpoint kinds a fault can be scoped to ("any" matches them all).
ENDPOINTS = (GENERATE, COUNT_TOKENS, LIST_MODELS, GET_MODEL, EMBED)

_ids = itertools.count(1)


def next_id() -> int:
    """A process-wide counter for response, message and tool-call ids."""
    return next(_ids)


@dataclass(slots=True)
class Call:
    """What one request asked for, as far as the simulator cares."""

    endpoint: str
    model: str = ""
    stream: bool = False
    body: Any = None
    #: Gemini: `alt=sse` (True) or the JSON-array stream form (False).
    sse: bool = True
    #: OpenAI: `stream_options.include_usage`.
    include_usage: bool = False
    #: OpenAI: `stream_options.include_obfuscation` (default true, as upstream).
    include_obfuscation: bool = True
    has_tools: bool = False
    wants_thinking: bool = False
    user_text: str = ""
    #: Gemini: the API version in the path (`v1beta` or `v1`).
    api_version: str = "v1beta"
    #: OpenAI Responses: `include` lists `reasoning.encrypted_content`.
    include_encrypted: bool = False
    #: Embeddings: the texts, one vector each, and the size asked for (None: the model's).
    inputs: tuple[str, ...] = ()
    dimensions: int | None = None
    #: Gemini: `:embedContent` (one vector, `{"embedding"}`) rather than the batch form.
    single: bool = False


@dataclass(slots=True)
class StreamPlan:
    head: list[bytes] = field(default_factory=list)
    chunks: list[bytes] = field(default_factory=list)
    tail: list[bytes] = field(default_factory=list)


@dataclass(slots=True)
class ErrorResponse:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


class WireError(Exception):
    """Raised while parsing a request that the provider would refuse (4xx)."""

    def __init__(self, response: ErrorResponse) -> None:
        super().__init__(response.status)
        self.response = response


class Wire:
    """Base class of the three wire formats. See the module docstring."""

    #: The wire flavour: "openai", "anthropic" or "gemini".
    flavour: str = ""
    json_type: str = "application/json"
    stream_type: str = "text/event-stream; charset=utf-8"
    #: The in-stream error an `error-event` fault sends by default.
    stream_error_status: int = 500
    #: Response header carrying a request id, as the provider names it ("" for none).
    request_id_header: str = "x-request-id"
    #: Models listed when a mount configures none (any model is then accepted).
    default_models: tuple[str, ...] = ()

    def routes(self) -> list[tuple[str, str, str]]:
        """(method, path relative to the mount prefix, endpoint kind or "dispatch")."""
        raise NotImplementedError

    def parse(self, endpoint: str, path_model: str, query: Mapping[str, str], body: Any, path: str = "") -> Call:
        """Build the `Call`; raise `WireError` for a request the provider would refuse.
        `endpoint` is the route's kind ("dispatch" when the path decides, as on Gemini),
        `path_model` the model named in the path, `path` the request path."""
        raise NotImplementedError

    def check_key(self, headers: Mapping[str, str], query: Mapping[str, str], key: str) -> ErrorResponse | None:
        """The provider's answer to a missing or wrong API key, or None if it matches."""
        raise NotImplementedError

    def bad_json(self, detail: str) -> ErrorResponse:
        raise NotImplementedError

    def render(self, reply: Resolved, call: Call, provider: str, reasoning_field: str | None) -> bytes:
        raise NotImplementedError

    def stream(self, reply: Resolved, call: Call, provider: str, reasoning_field: str | None) -> StreamPlan:
        raise NotImplementedError

    def stream_content_type(self, call: Call) -> str:
        return self.stream_type

    def error(self, status: int, call: Call, message: str | None = None, reset_seconds: float | None = None) -> ErrorResponse:
        """An error response in the provider's shape, with its native retry hints
        (rate-limit reset headers, Gemini RetryInfo) when `reset_seconds` is given."""
        raise NotImplementedError

    def error_event(self, status: int, call: Call, message: str | None = None, *, first: bool = False) -> bytes:
        """A well-formed in-stream error event (`first`: nothing but the head was sent
        yet, which matters to framings with separators, like Gemini's JSON array)."""
        raise NotImplementedError

    def malformed_event(self, call: Call, *, first: bool = False) -> bytes:
        """A stream frame whose data is not valid JSON."""
        raise NotImplementedError

    def check_headers(self, headers: Mapping[str, str]) -> ErrorResponse | None:
        """A refusal for headers the provider requires (Anthropic's `anthropic-version`)."""
        return None

    def frame(self, event: Mapping[str, Any], call: Call) -> bytes:
        """Frame one JSON event the way this provider streams it."""
        raise NotImplementedError

    def list_models(self, models: tuple[str, ...]) -> bytes:
        raise NotImplementedError

    def get_model(self, model: str) -> bytes:
        """The model's description (the app answers `model_not_found` for unknown ones)."""
        raise NotImplementedError

    def model_not_found(self, call: Call) -> ErrorResponse:
        return self.error(404, call)

    def count_tokens(self, call: Call, tokens: int) -> bytes:
        raise NotImplementedError

    def embeddings(self, call: Call, size: int) -> bytes | ErrorResponse:
        """The embeddings answer (deterministic vectors of `size`, or of
        `call.dimensions`), or the provider's refusal of what it cannot serve."""
        raise NotImplementedError


def embedding_vector(model: str, text: str, size: int, dimensions: int | None = None) -> list[float]:
    """A deterministic unit vector for `text` under `model`: floats seeded by a hash of
    both, the first `dimensions` of them renormalised when fewer are asked for (as
    OpenAI's and Gemini's shortened embeddings are)."""
    seed = int.from_bytes(hashlib.sha256(f"{model}\0{text}".encode()).digest()[:8], "big")
    rng = random.Random(seed)
    values = [rng.uniform(-1.0, 1.0) for _ in range(dimensions or size)]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


def text_of(content: Any) -> str:
    """Text of an OpenAI/Anthropic message content: a string or a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"]
        return " ".join(t for t in texts if isinstance(t, str))
    return ""
