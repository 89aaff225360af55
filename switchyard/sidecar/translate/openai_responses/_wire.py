"""What more than one of the Responses modules reads (``ingress``, ``egress``, ``stream``).

The shapes of a ``response`` object and its output items (``message``, ``reasoning``,
``function_call``), which ``ingress.render_response`` builds for a whole answer and
``stream.StreamEncoder`` for each snapshot and item event; the ``switchyard.v1.`` blob
that carries a thinking signature through ``encrypted_content`` (``_blob`` when
rendering, ``_unblob`` when parsing the next turn; ``encrypted_content`` that this
protocol issued itself travels as it is); usage and incomplete reasons read from a
Responses tier (``egress`` for a whole answer, ``stream.StreamDecoder`` for a stream).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson

from .. import neutral as n
from ..common import now

PROTOCOL = "openai-responses"
BLOB_PREFIX = "switchyard.v1."

# Neutral finish reasons that make a response "incomplete", with the API's reason.
_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


# ``incomplete_details.reason`` of a Responses tier -> neutral finish reason.
FINISH_IN_INCOMPLETE = {"max_output_tokens": "length", "content_filter": "content_filter"}


def _int(v: Any) -> int:
    return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else 0


def usage_in(u: Any) -> n.Usage | None:
    """A Responses tier's ``usage`` (a whole answer's, or a final stream snapshot's)."""
    if not isinstance(u, dict):
        return None
    idt = u.get("input_tokens_details")
    odt = u.get("output_tokens_details")
    idt = idt if isinstance(idt, dict) else {}
    odt = odt if isinstance(odt, dict) else {}
    return n.Usage(
        input_tokens=_int(u.get("input_tokens")),
        output_tokens=_int(u.get("output_tokens")),
        cached_input_tokens=_int(idt.get("cached_tokens")),
        reasoning_tokens=_int(odt.get("reasoning_tokens")),
    )


def summary_text(item: dict[str, Any]) -> str:
    """A reasoning item's text: its full reasoning content when given (open-weight
    models on compatible servers), else its summary parts."""
    for key in ("content", "summary"):
        parts = item.get(key)
        if isinstance(parts, list) and parts:
            texts = [p.get("text") for p in parts if isinstance(p, dict)]
            return "\n\n".join(t for t in texts if isinstance(t, str) and t)
    return ""


def joins(summary: n.Part | None, part: n.Part) -> bool:
    """True when ``part`` is the encrypted content of the reasoning item whose text is
    ``summary`` (see ``egress.thinking_of``): both of this protocol, text then content."""
    return (
        isinstance(summary, n.Thinking)
        and isinstance(part, n.Thinking)
        and summary.origin == PROTOCOL == part.origin
        and bool(summary.text) and not (summary.signature or summary.redacted)
        and bool(part.redacted) and not (part.text or part.signature)
    )


def _blob(thinking_origin: str | None, signature: str | None, redacted: str | None) -> str:
    """What a reasoning item's ``encrypted_content`` carries for a client: this
    protocol's own encrypted content as it is (the client hands it back and it reaches
    a Responses tier unchanged); another protocol's signature inside a blob."""
    if thinking_origin == PROTOCOL and redacted and not signature:
        return redacted
    raw = orjson.dumps({"o": thinking_origin, "s": signature, "r": redacted})
    return BLOB_PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unblob(value: str) -> dict[str, Any] | None:
    """A ``switchyard.v1.`` blob's fields, or None when the value is not one of ours."""
    if not value.startswith(BLOB_PREFIX):
        return None
    body = value[len(BLOB_PREFIX) :]
    try:
        obj = orjson.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        return None
    return obj if isinstance(obj, dict) else None


def _echo(req: n.Request | None) -> dict[str, Any]:
    """The request parameters a ``response`` object repeats back."""
    if req is None:
        return {
            "instructions": None,
            "tools": [],
            "tool_choice": "auto",
            "parallel_tool_calls": True,
            "temperature": None,
            "top_p": None,
            "max_output_tokens": None,
            "reasoning": {"effort": None, "summary": None},
            "text": {"format": {"type": "text"}},
            "metadata": {},
        }
    tc = req.tool_choice
    rf = req.response_format
    fmt: dict[str, Any] = {"type": "text"}
    if rf is not None and rf.type == "json_object":
        fmt = {"type": "json_object"}
    elif rf is not None and rf.type == "json_schema":
        fmt = {"type": "json_schema", "name": rf.name or "response", "schema": rf.schema or {}, "strict": rf.strict}
    r = req.reasoning
    effort = None if r is None else ("none" if not r.enabled else r.effort)
    out: dict[str, Any] = {
        "instructions": None,  # the neutral form folds instructions into the system prompt
        "tools": [
            {"type": "function", "name": t.name, "description": t.description, "parameters": t.parameters, "strict": t.strict}
            for t in req.tools
        ],
        "tool_choice": "auto" if tc is None else ({"type": "function", "name": tc.name} if tc.mode == "tool" else tc.mode),
        "parallel_tool_calls": True if req.parallel_tool_calls is None else req.parallel_tool_calls,
        "temperature": req.temperature,
        "top_p": req.top_p,
        "max_output_tokens": req.max_tokens,
        "reasoning": {"effort": effort, "summary": "auto" if r is not None and r.summary else None},
        "text": {"format": fmt},
        "metadata": dict(req.metadata or {}),
    }
    if req.user is not None:
        out["user"] = req.user
    return out


def _usage(u: n.Usage) -> dict[str, Any]:
    return {
        "input_tokens": u.input_tokens,
        "input_tokens_details": {"cached_tokens": u.cached_input_tokens, "cache_write_tokens": u.cache_creation_tokens},
        "output_tokens": u.output_tokens,
        "output_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
        "total_tokens": u.input_tokens + u.output_tokens,
    }


def _response(
    *,
    rid: str,
    created_at: int,
    model: str,
    status: str,
    output: list[dict[str, Any]],
    echo: dict[str, Any],
    usage: n.Usage | None = None,
    incomplete: str | None = None,
    error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": rid,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "error": error,
        "incomplete_details": {"reason": incomplete} if incomplete else None,
        "model": model,
        "output": output,
        **echo,
    }
    if status == "completed":
        body["completed_at"] = now()
    if usage is not None:
        body["usage"] = _usage(usage)
    return body


def _message_item(mid: str, text: str, status: str, refusal: bool = False) -> dict[str, Any]:
    part: dict[str, Any] = (
        {"type": "refusal", "refusal": text} if refusal else {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
    )
    return {"id": mid, "type": "message", "status": status, "role": "assistant", "content": [part]}


def _reasoning_item(rid: str, text: str, blob: str | None) -> dict[str, Any]:
    item: dict[str, Any] = {"id": rid, "type": "reasoning", "summary": [{"type": "summary_text", "text": text}] if text else []}
    if blob is not None:
        item["encrypted_content"] = blob
    return item


def _call_item(fid: str, call_id: str, name: str, arguments: str, status: str) -> dict[str, Any]:
    return {"id": fid, "type": "function_call", "status": status, "call_id": call_id, "name": name, "arguments": arguments}
