"""Gemini ``generateContent`` API (Google AI ``generativelanguage``), both faces.

Ingress: what Gemini CLI and the ``google-genai`` SDK send to
``POST /v1beta/models/{model}:generateContent`` and ``:streamGenerateContent`` (SSE with
``alt=sse``, else one JSON array written element by element) is parsed into the neutral
form; neutral answers and event streams are rendered back as ``GenerateContentResponse``
objects. The token count (``:countTokens``) and the model list
(``GET /v1beta/models[/{model}]``) have their pure halves here; their routes are in the
sidecar's HTTP layer (``sidecar/http``).

Egress: a neutral request becomes a ``generateContent`` / ``streamGenerateContent?alt=sse``
call with the key in ``x-goog-api-key``; answers and streams (SSE or JSON array) are read
back into neutral form; ``read_error`` reads Google's error body.

Gemini carries the model and the streaming choice in the URL, not in the body. The
pipeline hands those over through ``pipeline.handle(path_model=..., stream=...)``; the
URL facts the adapter itself needs (stream or not, SSE or JSON array) travel in a
*view*: ``ADAPTER`` (whole answers), ``SSE_STREAM`` and ``ARRAY_STREAM``, three
``Adapter`` objects that differ only in those facts. The route handler picks the view;
``adapter_for("gemini")`` gives ``ADAPTER``.

The modules, by role (underscore names are private to this package):

- ``ingress``: a Gemini client's side. Parse a request, the features it uses, the
  same-protocol passthrough edits, whole answers rendered; the ``:countTokens`` request
  and answer; the ``:embedContent`` / ``:batchEmbedContents`` request and answer; the
  pure halves of the model routes (``split_model_method``,
  ``model_info``, ``model_listing``, exposed here for ``sidecar/http/api.py``).
- ``egress``: a Gemini tier's side. The ``generateContent`` call for a neutral or a
  same-protocol body, the answer read back, Google's error body, the ``:countTokens``
  call and answer, the ``:embedContent`` / ``:batchEmbedContents`` call and answer.
- ``stream``: both stream directions, which share the two framings (SSE and the JSON
  array): ``StreamEncoder`` (ingress: neutral events -> client chunks) and
  ``StreamDecoder`` (egress: upstream chunks -> neutral events).
- ``_wire``: what more than one of those reads: proto-JSON field access, media types,
  the finish-reason tables, usage both ways, and the parts writer and answer-parts reader.

This module builds the one ``ADAPTER`` and its two stream views from them.

Field notes (checked against ai.google.dev's API reference and the google-genai SDK):

- Proto JSON: every field may be spelled lowerCamelCase or snake_case; both are read.
- Function calls arrive whole (``args`` is an object), never as argument deltas; the
  stream encoder buffers a call's neutral argument deltas and emits one
  ``functionCall`` part when the call is complete.
- ``functionCall.id`` / ``functionResponse.id`` are optional; results are matched by
  function name (in order). Ids are generated when absent (stable: from the position in
  the conversation) and results without an id take the oldest unanswered call of that
  name. Ids are *not* sent upstream: some API versions reject them ("Unknown name id").
- Thought signatures are opaque and only valid for Gemini: they are kept on Gemini
  paths, never sent elsewhere, and a model turn of the active tool loop whose first
  function call has no signature gets Google's documented placeholder
  ``skip_thought_signature_validator`` (Gemini 3 rejects unsigned function calls).
- There is no end-of-stream marker in Gemini SSE: a stream is complete when a chunk with
  ``finishReason`` was seen and the stream ended cleanly (the JSON-array form also needs
  its closing ``]``).

docs/protocols/gemini.md has the field-by-field table.
"""

from __future__ import annotations

import dataclasses

from ..base import Adapter
from ._wire import PROTOCOL
from .ingress import (
    check_request,
    count_request,
    embed_request,
    features_used,
    model_info,
    model_listing,
    parse_request,
    prepare_passthrough,
    render_count,
    render_embeddings,
    render_response,
    request_model,
    split_model_method,
)
from .egress import (
    build_call,
    build_passthrough_call,
    count_call,
    embed_call,
    parse_response,
    read_count,
    read_embeddings,
    read_error,
    verdict,
)
from .stream import StreamDecoder, StreamEncoder

# What other layers use: the adapter (``adapter_for``) and, for sidecar/http/api.py, the
# stream views and the pure halves of the model routes.
__all__ = ["ADAPTER", "ARRAY_STREAM", "SSE_STREAM", "model_info", "model_listing", "split_model_method"]

ADAPTER = Adapter(
    protocol=PROTOCOL,
    sse_content_type="text/event-stream",
    forward_headers=frozenset(),
    parse_request=parse_request,
    request_model=request_model,
    request_streams=lambda body: False,
    check_request=check_request,
    features_used=features_used,
    prepare_passthrough=prepare_passthrough,
    render_response=render_response,
    stream_encoder=lambda *, alias, request: StreamEncoder(alias=alias, request=request, sse=True),
    build_call=build_call,
    build_passthrough_call=build_passthrough_call,
    parse_response=parse_response,
    verdict=verdict,
    stream_decoder=StreamDecoder,
    read_error=read_error,
    count_request=count_request,
    render_count=render_count,
    count_call=count_call,
    read_count=read_count,
    embed_request=embed_request,
    render_embeddings=render_embeddings,
    embed_call=embed_call,
    read_embeddings=read_embeddings,
)


def _stream_view(*, sse: bool) -> Adapter:
    """The adapter as the ingress of a streamed request: Gemini says "stream" in the URL
    (``:streamGenerateContent``, ``?alt=sse`` for SSE, else one JSON array), not the body."""
    return dataclasses.replace(
        ADAPTER,
        sse_content_type="text/event-stream" if sse else "application/json",
        request_streams=lambda body: True,
        features_used=lambda body: features_used(body, stream=True),
        stream_encoder=lambda *, alias, request: StreamEncoder(alias=alias, request=request, sse=sse),
        build_passthrough_call=lambda body, tier, client_headers: build_passthrough_call(body, tier, client_headers, stream=True, sse=sse),
    )


SSE_STREAM = _stream_view(sse=True)
ARRAY_STREAM = _stream_view(sse=False)
