"""What more than one of the Gemini modules reads (``ingress``, ``egress``, ``stream``).

Proto-JSON field access (``_get``/``_key``: a field spelled lowerCamelCase or
snake_case), media typing, the finish-reason tables and usage in both directions, and
the two part translators both faces use: ``_parts_out`` writes neutral parts as Gemini
parts (for a client's answer in ``ingress`` and the stream encoder, for an upstream
request in ``egress``) and ``_answer_parts`` reads a model answer's parts (``egress``'s
``parse_response`` and the stream decoder).
"""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import orjson

from .. import neutral as n
from ..base import RequestError
from ..common import args_object, args_text, new_id

PROTOCOL = "gemini"

FINISH_IN: dict[str, n.FinishReason] = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "LANGUAGE": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "IMAGE_PROHIBITED_CONTENT": "content_filter",
    "IMAGE_RECITATION": "content_filter",
    "MALFORMED_FUNCTION_CALL": "error",
    "UNEXPECTED_TOOL_CALL": "error",
    "TOO_MANY_TOOL_CALLS": "error",
    "MISSING_THOUGHT_SIGNATURE": "error",
    "MALFORMED_RESPONSE": "error",
    "OTHER": "stop",
    "FINISH_REASON_UNSPECIFIED": "stop",
}
FINISH_OUT: dict[str | None, str] = {
    "stop": "STOP",
    "length": "MAX_TOKENS",
    "tool_calls": "STOP",
    "content_filter": "SAFETY",
    "pause": "STOP",
    "refusal": "SAFETY",
    "error": "OTHER",
    None: "STOP",
}


@lru_cache(maxsize=512)
def _snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


def _key(d: Mapping[str, Any], name: str) -> str | None:
    """The key ``d`` uses for the proto field ``name`` (lowerCamel or snake_case)."""
    if name in d:
        return name
    s = _snake(name)
    return s if s in d else None


def _get(d: Any, name: str) -> Any:
    if not isinstance(d, dict):
        return None
    v = d.get(name)
    if v is None:
        v = d.get(_snake(name))
    return v


def _mime_of(mime: Any, uri: str | None = None) -> str | None:
    if isinstance(mime, str) and mime:
        return mime
    if uri:
        guess, _ = mimetypes.guess_type(uri.split("?")[0])
        return guess
    return None


def _media_feature(mime: str | None) -> str:
    major = (mime or "").split("/")[0]
    return {"image": "vision", "audio": "audio", "video": "video"}.get(major, "documents")


def _audio_format(mime: str) -> str:
    sub = mime.split("/", 1)[-1].split(";")[0]
    return {"mpeg": "mp3", "mp3": "mp3", "x-wav": "wav", "wave": "wav"}.get(sub, sub)


def _media(mime: str | None, *, data: str | None = None, url: str | None = None, title: Any = None) -> n.Part:
    kind = _media_feature(mime)
    if kind == "vision":
        return n.Image(url=url, data=data, media_type=mime)
    if kind == "audio" and data is not None:
        return n.Audio(data=data, format=_audio_format(mime or "audio/wav"))
    return n.Document(url=url, data=data, media_type=mime, title=title if isinstance(title, str) and title else None)


def _code_text(p: dict[str, Any]) -> n.Text | None:
    """Code execution parts (Gemini runs the code) as text other protocols can carry."""
    if (code := _get(p, "executableCode")) is not None:
        lang = str(_get(code, "language") or "").lower().replace("language_unspecified", "")
        return n.Text(f"```{lang}\n{_get(code, 'code') or ''}\n```")
    output = _get(_get(p, "codeExecutionResult"), "output")
    return n.Text(str(output)) if output else None


def _usage_out(u: n.Usage) -> dict[str, Any]:
    """Neutral counts (output includes reasoning, input includes cache reads) as Gemini's:
    ``candidatesTokenCount`` excludes thoughts, which are ``thoughtsTokenCount``."""
    thoughts = u.reasoning_tokens
    out: dict[str, Any] = {
        "promptTokenCount": u.input_tokens,
        "candidatesTokenCount": max(0, u.output_tokens - thoughts),
        "totalTokenCount": u.input_tokens + max(u.output_tokens, thoughts),
    }
    if u.cached_input_tokens:
        out["cachedContentTokenCount"] = u.cached_input_tokens
    if thoughts:
        out["thoughtsTokenCount"] = thoughts
    return out


def _blob(p: n.Image | n.Document | n.Audio) -> dict[str, Any] | None:
    if isinstance(p, n.Audio):
        return {"inlineData": {"mimeType": f"audio/{p.format}", "data": p.data}}
    if isinstance(p, n.Document) and p.text is not None:
        return {"text": p.text}
    default = "image/png" if isinstance(p, n.Image) else "application/pdf"
    if p.data is not None:
        return {"inlineData": {"mimeType": p.media_type or default, "data": p.data}}
    if p.url:
        fd: dict[str, Any] = {}
        mime = _mime_of(p.media_type, p.url)
        if mime:
            fd["mimeType"] = mime
        fd["fileUri"] = p.url
        return {"fileData": fd}
    return None


def _parts_out(parts: list[n.Part], *, upstream: bool, names: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """Neutral parts as Gemini parts. ``upstream``: for a request to Gemini (tool results
    allowed, thinking of other origins dropped, no call ids); else for a Gemini client.

    A Gemini thought signature with no thought text rides on the next part, as Gemini
    sends it; with nothing after it, on an empty text part."""
    out: list[dict[str, Any]] = []
    pending_sig: str | None = None
    for p in parts:
        part: dict[str, Any] | None = None
        extra: list[dict[str, Any]] = []
        if isinstance(p, n.Thinking):
            sig = p.signature if p.origin == PROTOCOL else None
            if p.text and (p.origin == PROTOCOL or not upstream):
                part = {"text": p.text, "thought": True}
                if sig:
                    part["thoughtSignature"] = sig
                out.append(part)
            elif sig:
                pending_sig = sig
            continue
        if isinstance(p, n.Text):
            if p.text:
                part = {"text": p.text}
        elif isinstance(p, n.ToolCall):
            call: dict[str, Any] = {} if upstream else {"id": p.id}
            call["name"] = p.name
            call["args"] = args_object(p.arguments)
            part = {"functionCall": call}
        elif isinstance(p, n.ToolResult):
            if not upstream:
                continue
            name = p.name or (names or {}).get(p.tool_call_id)
            if not name:
                raise RequestError(
                    f"the tool result for call {p.tool_call_id!r} names no function and no earlier tool call has that id; "
                    "Gemini matches tool results by function name",
                    "messages",
                )
            text = "".join(x.text for x in p.content if isinstance(x, n.Text))
            response = _response_object(text, p.is_error)
            part = {"functionResponse": {"name": name, "response": response}}
            extra = [b for x in p.content if isinstance(x, (n.Image, n.Document, n.Audio)) and (b := _blob(x))]
        elif isinstance(p, (n.Image, n.Document, n.Audio)):
            part = _blob(p)
        if part is None:
            continue
        if pending_sig:
            part["thoughtSignature"] = pending_sig
            pending_sig = None
        out.append(part)
        out.extend(extra)
    if pending_sig:
        out.append({"text": "", "thoughtSignature": pending_sig})
    return out


def _response_object(text: str, is_error: bool) -> dict[str, Any]:
    if is_error:
        return {"error": text}
    if text.startswith("{"):
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError:
            value = None
        if isinstance(value, dict):
            return value  # a tool that answered a JSON object: give Gemini the object
    return {"output": text}


def _usage_in(u: Any) -> n.Usage | None:
    if not isinstance(u, dict):
        return None
    prompt = int(_get(u, "promptTokenCount") or 0) + int(_get(u, "toolUsePromptTokenCount") or 0)
    thoughts = int(_get(u, "thoughtsTokenCount") or 0)
    return n.Usage(
        input_tokens=prompt,
        output_tokens=int(_get(u, "candidatesTokenCount") or 0) + thoughts,
        cached_input_tokens=int(_get(u, "cachedContentTokenCount") or 0),
        reasoning_tokens=thoughts,
    )


def _finish_in(reason: str, had_calls: bool) -> n.FinishReason:
    mapped = FINISH_IN.get(reason.upper(), "stop")
    return "tool_calls" if mapped == "stop" and had_calls else mapped


def _answer_parts(raw: Any) -> list[n.Part]:
    """Parts of a model answer as neutral parts (ids made for calls that have none)."""
    out: list[n.Part] = []
    for p in raw if isinstance(raw, list) else ():
        if not isinstance(p, dict):
            continue
        sig = _get(p, "thoughtSignature")
        sig = sig if isinstance(sig, str) and sig else None
        text = p.get("text")
        if isinstance(text, str) and _get(p, "thought") is True:
            out.append(n.Thinking(text=text, signature=sig, origin=PROTOCOL))
            continue
        if sig:
            out.append(n.Thinking(signature=sig, origin=PROTOCOL))
        if isinstance(text, str):
            if text:
                out.append(n.Text(text))
        elif isinstance(fc := _get(p, "functionCall"), dict):
            cid = fc.get("id") if isinstance(fc.get("id"), str) and fc.get("id") else new_id("call_")
            out.append(n.ToolCall(cid, str(fc.get("name") or ""), args_text(fc.get("args"))))
        elif isinstance(inline := _get(p, "inlineData"), dict):
            mime = _mime_of(_get(inline, "mimeType")) or "application/octet-stream"
            if isinstance(_get(inline, "data"), str):
                out.append(_media(mime, data=_get(inline, "data")))
        elif (code := _code_text(p)) is not None:
            out.append(code)
    return out
