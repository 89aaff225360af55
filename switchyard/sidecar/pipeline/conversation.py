"""The Responses API's conversation state, kept by the sidecar itself.

A Responses client may send ``previous_response_id`` instead of the whole conversation,
and ``store`` (default true) says whether its answer may be continued later. The
sidecar is the one place every request of its app reaches, so it keeps that state: each
stored answer holds the turns it added (neutral, so a conversation goes on on a tier of
any protocol and survives a fallback mid-conversation) and the id it continued; a
request naming a stored id gets the whole chain replayed before its own input.

State lives in ``state.ResponseStore`` (bounded, TTL, per binding, per pod, lost on
restart); ``store: false`` keeps nothing. Responses that are not the sidecar's (an id
OpenAI issued) are unknown here: a 404 in OpenAI's shape.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import orjson

from switchyard.sidecar.contract.config import CompiledBinding
from switchyard.sidecar.errors import ErrorKind, GatewayError
from switchyard.sidecar.pipeline.exchange import Exchange
from switchyard.sidecar.state import Runtime, StoredResponse, binding_key
from switchyard.sidecar.translate import neutral as n

PROTOCOL = "openai-responses"


def prepare(rt: Runtime, ex: Exchange, binding: CompiledBinding, body: dict[str, Any]) -> dict[str, Any]:
    """For a Responses request: note whether to store its answer and load the turns it
    continues into ``ex.history``. Returns the body without ``previous_response_id``."""
    ex.store_turn = body.get("store") is not False
    prev = body.get("previous_response_id")
    if prev is None:
        return body
    if not isinstance(prev, str) or not prev:
        raise GatewayError(ErrorKind.INVALID_REQUEST, "'previous_response_id' must be a response id", param="previous_response_id")
    history = rt.responses.conversation(prev, binding_key(binding), time.monotonic())
    if history is None and any(t.protocol == PROTOCOL and not t.problem for t in binding.tiers):
        return body  # not ours: a Responses tier may hold it (same-protocol path); others refuse it
    if history is None:
        raise GatewayError(
            ErrorKind.NOT_FOUND,
            f"previous response {prev!r} is not stored on this gateway (not made here, expired, evicted, sent with "
            "store: false, or made by another binding or pod); send the full conversation in 'input'",
            code="previous_response_not_found",
            param="previous_response_id",
        )
    ex.history, ex.previous_id = history, prev
    return {k: v for k, v in body.items() if k != "previous_response_id"}


def with_history(req: n.Request, history: list[n.Message] | None) -> n.Request:
    if not history:
        return req
    return dataclasses.replace(req, messages=[*history, *req.messages])


def record(rt: Runtime, ex: Exchange, binding: CompiledBinding, parsed: n.Request | None) -> None:
    """Keep the answer just served (``ex.answer`` under ``ex.response_id``) with the turns
    the request added (its own input: ``parsed`` without the replayed history)."""
    if not ex.store_turn or ex.answer is None or not ex.response_id or parsed is None:
        return
    own = dataclasses.replace(parsed, messages=parsed.messages[len(ex.history or ()):])
    choice = ex.answer.choices[0] if ex.answer.choices else None
    if choice is None:
        return
    reply = n.Message("assistant", [p for p in choice.parts if not isinstance(p, n.Thinking) or p.signature or p.redacted or p.text])
    turns = [*own.messages, reply]
    size = len(orjson.dumps([repr(m) for m in turns])) + 256
    entry = StoredResponse(binding_key(binding), ex.previous_id, turns, ex.answer, own.model, size, time.monotonic())
    rt.responses.put(ex.response_id, entry, time.monotonic())
