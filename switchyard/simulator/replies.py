"""What the simulated model says: scripted replies and the deterministic default.

Tests that check translation need to know exactly what the upstream answered, so they
queue a `Reply` (text, tool calls, thinking with its signature, finish reason, usage)
and assert on what reached the client. Without a script the simulator answers with a
deterministic text that names the provider and model and echoes the last user text.

A `Reply` is neutral: the wire modules (`wire_openai`, `wire_anthropic`,
`wire_gemini`) render the same `Resolved` reply in each provider's own format.
`RawReply` is the escape hatch for shapes a `Reply` cannot express (a Gemini
safety block, an odd status): its body or events go out verbatim.

Nothing here does I/O; `resolve` is a pure function of the reply and the request.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

__all__ = [
    "FINISH_REASONS",
    "DEFAULT_SIGNATURE",
    "RawReply",
    "Reply",
    "Resolved",
    "ToolCall",
    "Usage",
    "default_text",
    "resolve",
    "split_text",
]

#: Neutral finish reasons. Each wire maps them to its own value; any other string is
#: sent verbatim, so a test can script a provider-native reason ("pause_turn", "SAFETY").
FINISH_REASONS = ("stop", "length", "tool_calls", "content_filter", "stop_sequence")

#: Signature used when a reply has thinking but no signature. Valid base64, because
#: Gemini's `thoughtSignature` is bytes on the wire and its SDK decodes it.
DEFAULT_SIGNATURE = "c3dpdGNoeWFyZC1zaW11bGF0b3Itc2lnbmF0dXJl"

_FILLER = " ok"


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One function/tool call in a scripted reply.

    `arguments` is a mapping (sent as an object, or as a JSON string on OpenAI) or a
    string sent verbatim where the wire carries a string (OpenAI `arguments`, Anthropic
    `partial_json`) — a way to script malformed arguments. `id` defaults to a generated
    provider-style id (`call_…`, `toolu_…`); Gemini carries an id only when one is given.
    """

    name: str
    arguments: Mapping[str, Any] | str = field(default_factory=dict)
    id: str | None = None

    def arguments_json(self) -> str:
        if isinstance(self.arguments, str):
            return self.arguments
        return orjson.dumps(dict(self.arguments)).decode()

    def arguments_object(self) -> dict[str, Any]:
        if isinstance(self.arguments, str):
            try:
                value = orjson.loads(self.arguments) if self.arguments else {}
            except orjson.JSONDecodeError:
                return {}
            return value if isinstance(value, dict) else {}
        return dict(self.arguments)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ToolCall:
        return cls(name=data["name"], arguments=data.get("arguments", {}), id=data.get("id"))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "arguments": self.arguments}
        if self.id is not None:
            out["id"] = self.id
        return out


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts to report. Any field left `None` is estimated (about 4 characters
    per token). `output_tokens` counts visible output only; `reasoning_tokens` is added
    where the provider folds it in (OpenAI `completion_tokens`, Anthropic
    `output_tokens`) and reported apart where it does not (Gemini `thoughtsTokenCount`).
    """

    input_tokens: int | None = None
    output_tokens: int | None = None
    reasoning_tokens: int | None = None
    cached_tokens: int = 0
    # Input written to the prompt cache: reported by the Anthropic mounts only
    # (`cache_creation_input_tokens`); the other providers do not report cache writes.
    cache_write_tokens: int = 0

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Usage:
        return cls(
            input_tokens=data.get("input_tokens"),
            output_tokens=data.get("output_tokens"),
            reasoning_tokens=data.get("reasoning_tokens"),
            cached_tokens=data.get("cached_tokens", 0),
            cache_write_tokens=data.get("cache_write_tokens", 0),
        )


@dataclass(frozen=True, slots=True)
class Reply:
    """A scripted answer, rendered in the provider's own wire format.

    - `text`: the visible answer (may be empty or `None` for a tool-only reply).
    - `tool_calls`: sent only when the request declared tools (a real model cannot call
      an undeclared tool); otherwise the reply degrades to its text.
    - `thinking`: sent only when the request asked for it (Anthropic `thinking.type`
      enabled/adaptive, Gemini `thinkingConfig.includeThoughts`; on an OpenAI-style
      mount only when the mount has a `reasoning_field`). Always counted in usage.
    - `signature`: goes with the thinking block on Anthropic; on Gemini it is sent as
      `thoughtSignature` even when thoughts are hidden, as Gemini does (base64 there).
      Defaults to `DEFAULT_SIGNATURE` when there is thinking.
    - `finish`: a neutral reason from `FINISH_REASONS` or a provider-native string;
      default `tool_calls` when tool calls are sent, else `stop`.
    - `stop_sequence`: reported by Anthropic with `finish="stop_sequence"`.
    - `usage`: overrides the estimates, field by field.
    - `chunks`: how many stream chunks the text is split into (default: the mount's).
    """

    text: str | None = None
    tool_calls: Sequence[ToolCall] = ()
    thinking: str | None = None
    signature: str | None = None
    finish: str | None = None
    stop_sequence: str | None = None
    usage: Usage | None = None
    chunks: int | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Reply:
        unknown = set(data) - {
            "text", "tool_calls", "thinking", "signature", "finish", "stop_sequence",
            "usage", "chunks",
        }
        if unknown:
            raise ValueError(f"unknown reply field(s): {', '.join(sorted(unknown))}")
        usage = data.get("usage")
        return cls(
            text=data.get("text"),
            tool_calls=tuple(ToolCall.from_dict(t) for t in data.get("tool_calls") or ()),
            thinking=data.get("thinking"),
            signature=data.get("signature"),
            finish=data.get("finish"),
            stop_sequence=data.get("stop_sequence"),
            usage=Usage.from_dict(usage) if usage else None,
            chunks=data.get("chunks"),
        )


@dataclass(frozen=True, slots=True)
class RawReply:
    """A verbatim answer. For a streaming request with `events`, each event is sent as
    is (bytes/str) or framed the provider's way (a mapping: OpenAI `data: …`, Anthropic
    `event: <type>` + `data: …`, Gemini `data: …` with CRLF). Otherwise `body` (bytes,
    str, or JSON-serialisable) is sent with `status`.
    """

    status: int = 200
    body: Any = None
    events: Sequence[Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RawReply:
        return cls(
            status=int(data.get("status", 200)),
            body=data.get("body"),
            events=data.get("events"),
            headers=dict(data.get("headers") or {}),
        )


@dataclass(slots=True)
class Resolved:
    """A reply made concrete for one request: pieces to stream, ids, token counts."""

    text: str
    text_pieces: list[str]
    thinking: str | None
    thinking_pieces: list[str]
    signature: str | None
    tool_calls: list[ToolCall]
    finish: str
    stop_sequence: str | None
    input_tokens: int
    output_tokens: int
    reasoning_tokens: int
    cached_tokens: int
    cache_write_tokens: int = 0


def split_text(text: str, n: int) -> list[str]:
    """Split `text` into at most `n` non-empty pieces of near-equal length."""
    size = len(text)
    if size == 0:
        return []
    n = max(1, min(n, size))
    if n == 1:
        return [text]
    return [text[size * i // n : size * (i + 1) // n] for i in range(n)]


def default_text(provider: str, model: str, user_text: str, chunks: int) -> str:
    """The deterministic default answer, padded so it splits into `chunks` pieces."""
    echo = user_text if len(user_text) <= 500 else user_text[:500] + "..."
    text = f"Simulated {provider} reply from {model}. You said: {echo or '(no text)'}"
    if len(text) < chunks:
        text += _FILLER * (-(-(chunks - len(text)) // len(_FILLER)))
    return text


def _estimate(chars: int) -> int:
    return max(1, (chars + 3) // 4)


def resolve(
    reply: Reply | None,
    *,
    provider: str,
    model: str,
    user_text: str,
    request_size: int,
    has_tools: bool,
    thinking_visible: bool,
    chunks: int,
) -> Resolved:
    """Make `reply` (or the default reply) concrete for one request."""
    if reply is None:
        text = default_text(provider, model, user_text, chunks)
        pieces = split_text(text, chunks)
        return Resolved(
            text=text, text_pieces=pieces, thinking=None, thinking_pieces=[],
            signature=None, tool_calls=[], finish="stop", stop_sequence=None,
            input_tokens=_estimate(request_size), output_tokens=_estimate(len(text)),
            reasoning_tokens=0, cached_tokens=0,
        )
    n = reply.chunks or chunks
    tools = list(reply.tool_calls) if has_tools else []
    text = reply.text or ""
    if reply.tool_calls and not tools and not text:
        # The request declared no tools, so the model cannot call one: say so in text.
        text = "(the scripted tool call was not sent: the request declared no tools)"
    thinking = reply.thinking
    shown = thinking if (thinking and thinking_visible) else None
    usage = reply.usage or Usage()
    out = usage.output_tokens
    if out is None:
        out = (_estimate(len(text)) if text else 0) + sum(
            _estimate(len(t.arguments_json())) + 5 for t in tools
        )
    reasoning = usage.reasoning_tokens
    if reasoning is None:
        reasoning = _estimate(len(thinking)) if thinking else 0
    finish = reply.finish or ("tool_calls" if tools else "stop")
    return Resolved(
        text=text,
        text_pieces=split_text(text, n),
        thinking=shown,
        thinking_pieces=split_text(shown, n) if shown else [],
        signature=reply.signature or (DEFAULT_SIGNATURE if thinking else None),
        tool_calls=tools,
        finish=finish,
        stop_sequence=reply.stop_sequence,
        input_tokens=usage.input_tokens if usage.input_tokens is not None else _estimate(request_size),
        output_tokens=out,
        reasoning_tokens=reasoning,
        cached_tokens=usage.cached_tokens,
        cache_write_tokens=usage.cache_write_tokens,
    )
