"""The neutral representation every protocol adapter translates to and from.

N protocols need N adapters, not N x N translators: an ingress adapter parses the
client's body into a ``Request`` and renders a ``Response`` (or a stream of ``Event``)
back; an egress adapter renders a ``Request`` for its upstream and parses what comes
back into a ``Response`` or ``Event`` stream.

Design rules:

- Plain dataclasses with slots, no validation: the adapters check the wire format,
  this is just the meeting point.
- Nothing here is protocol-specific except ``Request.extras``: fields of the ingress
  protocol that have no neutral meaning, kept (by name) so the capability step can
  report them as ``unknownFields`` when a request crosses protocols (promise 3: nothing
  is dropped silently). Same-protocol traffic does not come through here at all; it
  edits the client's JSON in place (see ``translate.base``).
- Translators never mutate a ``Request``: fallback may translate the same request once
  per tier, so a capability step that strips a field builds a changed copy
  (``dataclasses.replace``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

# ------------------------------------------------------------------- content parts


@dataclass(slots=True, frozen=True)
class Text:
    text: str
    # Anthropic prompt-caching marker ({"type": "ephemeral"}), kept where a destination has it.
    cache_control: dict[str, Any] | None = None


@dataclass(slots=True, frozen=True)
class Image:
    """An image: by URL, or inline base64 ``data`` with its ``media_type``."""

    url: str | None = None
    data: str | None = None
    media_type: str | None = None
    detail: str | None = None  # OpenAI "low" | "high" | "auto"


@dataclass(slots=True, frozen=True)
class Document:
    """A document (PDF, plain text): by URL, inline base64 ``data``, or plain ``text``."""

    url: str | None = None
    data: str | None = None
    text: str | None = None
    media_type: str | None = None
    title: str | None = None


@dataclass(slots=True, frozen=True)
class Audio:
    data: str
    format: str  # "wav" | "mp3" | ...


@dataclass(slots=True, frozen=True)
class ToolCall:
    """A call the model made. ``arguments`` is the JSON text of the arguments object."""

    id: str
    name: str
    arguments: str


@dataclass(slots=True, frozen=True)
class ToolResult:
    """The caller's answer to a tool call. ``name`` is needed by Gemini, which matches by name."""

    tool_call_id: str
    content: list[Part]
    is_error: bool = False
    name: str | None = None


@dataclass(slots=True, frozen=True)
class Thinking:
    """Reasoning content. ``signature``/``redacted`` are opaque to everyone but their origin.

    ``origin`` is the protocol that produced it: a signature is only meaningful to the
    same protocol, so adapters of other protocols drop signed or redacted thinking
    instead of forwarding it to a destination that would reject it.
    """

    text: str = ""
    signature: str | None = None
    redacted: str | None = None  # Anthropic redacted_thinking data / OpenAI encrypted_content
    origin: str | None = None


Part = Text | Image | Document | Audio | ToolCall | ToolResult | Thinking


@dataclass(slots=True, frozen=True)
class Message:
    """One turn. Roles are "user" and "assistant"; tool results travel in "user" turns.
    A "system" turn is an instruction inside the conversation, after its start (Anthropic's
    mid-conversation system messages; Claude Code sends one): its parts are ``Text``, and
    each egress carries it in place or says how it mapped it. System text before the first
    turn is ``Request.system``."""

    role: Literal["user", "assistant", "system"]
    parts: list[Part]
    name: str | None = None


# ------------------------------------------------------------------------ request


@dataclass(slots=True, frozen=True)
class Tool:
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None  # JSON schema of the arguments object
    strict: bool | None = None


@dataclass(slots=True, frozen=True)
class ToolChoice:
    mode: Literal["auto", "none", "required", "tool"]
    name: str | None = None  # for mode "tool"


@dataclass(slots=True, frozen=True)
class Reasoning:
    """Reasoning controls: an effort level, a token budget, or both (adapters convert)."""

    effort: Literal["minimal", "low", "medium", "high"] | None = None
    budget_tokens: int | None = None
    enabled: bool = True  # False: the client asked to turn reasoning off
    summary: bool = False  # ask for thoughts/summaries back where the destination can


@dataclass(slots=True, frozen=True)
class ResponseFormat:
    type: Literal["text", "json_object", "json_schema"]
    schema: dict[str, Any] | None = None
    name: str | None = None
    strict: bool | None = None


@dataclass(slots=True, frozen=True)
class Request:
    model: str  # what the client asked for (an alias); egress adapters use the tier's model
    messages: list[Message]
    system: list[Text] = field(default_factory=list)  # system and developer prompts, in order
    tools: list[Tool] = field(default_factory=list)
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    stop: list[str] = field(default_factory=list)
    n: int | None = None
    seed: int | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    reasoning: Reasoning | None = None
    response_format: ResponseFormat | None = None
    stream: bool = False
    stream_usage: bool = False  # the client asked for usage in the stream (OpenAI include_usage)
    user: str | None = None
    metadata: dict[str, Any] | None = None
    # Ingress fields with no neutral meaning, by name -> value (see module docstring).
    # An egress adapter of the same protocol as ``origin`` puts them back; any other
    # reports them as the ``unknownFields`` feature.
    extras: dict[str, Any] = field(default_factory=dict)
    origin: str = ""  # the protocol that parsed this request


# ----------------------------------------------------------------------- response

FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "pause", "refusal", "error"]


@dataclass(slots=True)
class Usage:
    """Token counts. ``input_tokens`` is the TOTAL input, cached tokens included (as
    OpenAI and Gemini count it; the Anthropic adapter adds its cache reads/writes)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0  # read from cache
    cache_creation_tokens: int = 0  # written to cache (Anthropic)
    reasoning_tokens: int = 0  # part of output_tokens spent thinking

    def __post_init__(self) -> None:
        # Counts come from upstreams: clamped to 0..2**53-1 (what a JSON number carries
        # exactly), so an absurd one cannot make the client's answer unencodable (orjson
        # writes 64-bit integers; the renderers add counts up).
        for name in _USAGE_FIELDS:
            v = getattr(self, name)
            if isinstance(v, (int, float)) and not 0 <= v <= MAX_TOKEN_COUNT:
                setattr(self, name, int(min(max(v, 0), MAX_TOKEN_COUNT)))


MAX_TOKEN_COUNT = 2**53 - 1
_USAGE_FIELDS = ("input_tokens", "output_tokens", "cached_input_tokens", "cache_creation_tokens", "reasoning_tokens")


@dataclass(slots=True)
class Choice:
    parts: list[Part]
    finish_reason: FinishReason | None
    stop_sequence: str | None = None  # which stop sequence ended it, where the upstream says


@dataclass(slots=True)
class Response:
    id: str
    model: str
    choices: list[Choice]
    usage: Usage | None = None
    created: int | None = None


def has_content(parts: list[Part]) -> bool:
    """True when parts hold something a user would call an answer (promise 2)."""
    for p in parts:
        if isinstance(p, Text) and p.text:
            return True
        if isinstance(p, ToolCall):
            return True
        if isinstance(p, (Image, Audio, Document)):
            return True
    return False


# -------------------------------------------------------------------- stream events
#
# An egress decoder turns upstream SSE into these; an ingress encoder turns them into
# the client's SSE. Indices: ``choice`` is the choice (n > 1), ``block`` numbers the
# content blocks of one choice in order (Anthropic's content index), ``call`` numbers
# the tool calls of one choice in order (OpenAI's tool_calls[].index).


@dataclass(slots=True)
class StreamStart:
    id: str
    model: str


@dataclass(slots=True)
class TextDelta:
    text: str
    choice: int = 0


@dataclass(slots=True)
class ThinkingDelta:
    text: str = ""
    signature: str | None = None
    redacted: str | None = None
    choice: int = 0
    origin: str | None = None  # protocol that issued signature/redacted (see Thinking)


@dataclass(slots=True)
class ToolCallStart:
    call: int
    id: str
    name: str
    choice: int = 0


@dataclass(slots=True)
class ToolCallDelta:
    call: int
    arguments: str  # a fragment of the JSON text
    choice: int = 0


@dataclass(slots=True)
class StreamFinish:
    reason: FinishReason | None
    choice: int = 0
    stop_sequence: str | None = None


@dataclass(slots=True)
class StreamUsage:
    usage: Usage


@dataclass(slots=True)
class StreamError:
    """The upstream reported an error inside the stream (or the stream broke)."""

    status: int
    kind: str  # error kind, see sidecar.errors.ErrorKind
    message: str


Event = (
    StreamStart | TextDelta | ThinkingDelta | ToolCallStart | ToolCallDelta | StreamFinish | StreamUsage | StreamError
)

CONTENT_EVENTS = (TextDelta, ThinkingDelta, ToolCallStart, ToolCallDelta)


def is_content(event: Event) -> bool:
    """True when an event carries content a client would see (a non-empty delta)."""
    if isinstance(event, TextDelta):
        return bool(event.text)
    if isinstance(event, ThinkingDelta):
        return bool(event.text or event.signature or event.redacted)
    return isinstance(event, (ToolCallStart, ToolCallDelta))


class Transcript:
    """A streamed answer put back together from its events (the Responses API's stored
    conversations keep what a stream said). Pure; feed events in order, then ``answer``."""

    __slots__ = ("id", "model", "_parts", "_calls", "_finish", "_stop", "usage")

    def __init__(self) -> None:
        self.id = ""
        self.model = ""
        self._parts: list[Part] = []  # choice 0 only: what a conversation continues from
        self._calls: dict[int, list[str]] = {}  # call index -> [id, name, arguments]
        self._finish: FinishReason | None = None
        self._stop: str | None = None
        self.usage: Usage | None = None

    def feed(self, ev: Event) -> None:
        if isinstance(ev, StreamStart):
            self.id, self.model = ev.id, ev.model
        elif getattr(ev, "choice", 0) != 0:
            return
        elif isinstance(ev, TextDelta):
            last = self._parts[-1] if self._parts else None
            if isinstance(last, Text):
                self._parts[-1] = Text(last.text + ev.text)
            else:
                self._parts.append(Text(ev.text))
        elif isinstance(ev, ThinkingDelta):
            last = self._parts[-1] if self._parts else None
            if isinstance(last, Thinking) and last.origin == ev.origin and not last.signature:
                self._parts[-1] = Thinking(last.text + ev.text, ev.signature, ev.redacted, ev.origin)
            else:
                self._parts.append(Thinking(ev.text, ev.signature, ev.redacted, ev.origin))
        elif isinstance(ev, ToolCallStart):
            self._calls[ev.call] = [ev.id, ev.name, ""]
            self._parts.append(ToolCall(ev.id, ev.name, ""))
        elif isinstance(ev, ToolCallDelta):
            entry = self._calls.get(ev.call)
            if entry is not None:
                entry[2] += ev.arguments
        elif isinstance(ev, StreamFinish):
            self._finish, self._stop = ev.reason, ev.stop_sequence
        elif isinstance(ev, StreamUsage):
            self.usage = ev.usage

    def answer(self) -> Response:
        calls = {c[0]: c for c in self._calls.values()}
        parts: list[Part] = [
            ToolCall(p.id, p.name, calls[p.id][2] or "{}") if isinstance(p, ToolCall) and p.id in calls else p for p in self._parts
        ]
        return Response(self.id, self.model, [Choice(parts, self._finish, self._stop)], self.usage)


# ------------------------------------------------------------------------ embeddings


@dataclass(slots=True, frozen=True)
class EmbedRequest:
    """An embeddings request (``sidecar/pipeline/embed.py``): texts to embed, one vector
    each, in order.

    ``dimensions``: the vector size asked for (OpenAI ``dimensions``, Gemini
    ``outputDimensionality``), None for the model's own. ``extras``: fields of the ingress
    protocol with no neutral meaning (OpenAI ``user``; Gemini ``taskType``, ``title``),
    put back only by an egress adapter of the ``origin`` protocol and reported as
    ``unknownFields`` otherwise. ``encoding``: how the client wants its vectors written
    (OpenAI ``encoding_format``: ``float`` or ``base64``); a tier is always asked for
    floats. ``single``: the client used its protocol's one-vector form (Gemini
    ``:embedContent``) and is answered in it."""

    inputs: tuple[str, ...]
    dimensions: int | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    origin: str = ""
    encoding: Literal["float", "base64"] = "float"
    single: bool = False
