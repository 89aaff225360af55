"""OpenAI Responses API, both faces (what Codex CLI and the Vercel AI SDK speak; what
OpenAI, and OpenAI-compatible servers that implement it, serve on ``/v1/responses``).

Ingress: ``POST /v1/responses`` bodies into the neutral form, neutral answers and event
streams back as ``response`` objects and ``response.*`` stream events that validate
against the official OpenAPI spec and parse with the ``openai`` SDK. Egress (a tier
whose protocol is ``openai-responses``): neutral requests into a Responses call, its
``response`` object and ``response.*`` events back into neutral form.

The modules, by role (underscore names are private to this package):

- ``ingress``: a Responses client's side. Parse a request, the features it uses, the
  same-protocol passthrough edits, whole answers rendered.
- ``egress``: a Responses tier's side. The call for a neutral or a same-protocol body,
  the answer read back, the error body. (No token-count endpoint: the adapter's count
  faces are left at their defaults.)
- ``stream``: both stream directions: ``StreamEncoder`` (neutral events -> ``response.*``
  events) and ``StreamDecoder`` (a tier's ``response.*`` events -> neutral events).
- ``_wire``: what more than one of those reads: the ``response`` object and output item
  shapes, the ``switchyard.v1.`` blob carried in ``encrypted_content``, and usage and
  incomplete reasons read from a tier.

This module builds the one ``ADAPTER`` from them.

Field notes (checked against the spec in ``shared/specs`` and the Codex client):

- The API is stateful on OpenAI's side. ``previous_response_id`` and ``store`` are
  served from the sidecar's own store (``sidecar/pipeline/conversation.py``), which
  takes a ``previous_response_id`` it holds out of the body before this adapter parses
  it. An id it does not hold goes on to a Responses tier as it is (the tier may keep
  that state); on the neutral path (a tier of another protocol) it, and the rest
  (``conversation``, ``background``, stored ``prompt`` templates, ``item_reference``
  input items), is answered with a 400 naming the field. Codex sends ``store: false``
  and its full history every turn, so it needs none of it.
- Fields with no neutral meaning go to ``Request.extras`` and are reported by the
  pipeline as ``unknownFields`` (promise 3). A field whose value is exactly what the
  gateway does anyway is honoured, not reported: ``store: false`` (nothing is stored),
  ``truncation: "disabled"``, ``service_tier: "auto"``, and the ``include`` value
  ``reasoning.encrypted_content`` (see below). Hosted tools (``web_search``,
  ``file_search``, ``local_shell``, ``custom``, ...) are extras named
  ``tools.<type>``; input items of kinds that only hosted tools produce are extras
  named ``input.<type>`` and are left out of the conversation.
- Reasoning items: thinking is rendered as a ``reasoning`` output item whose summary is
  the thinking text. When the thinking carries an opaque signature (Anthropic
  ``signature``, ``redacted_thinking``), it travels in ``encrypted_content`` as a
  ``switchyard.v1.`` blob naming its origin, so a stateless client (Codex, which asks
  for ``reasoning.encrypted_content``) hands it back on the next turn and the thinking
  tier gets its signed block back. A Responses tier's own ``encrypted_content`` is
  rendered as it is; any ``encrypted_content`` that is not a blob (a real OpenAI one,
  or a tampered blob) is read as thinking of origin ``openai-responses``, which only
  this protocol's egress forwards (to a Responses tier, which checks it). Streamed thinking takes its origin from
  ``ThinkingDelta.origin`` (set by each egress decoder).
- Streams: ``event: <type>`` + ``data:`` lines, every event with a ``sequence_number``
  counting from 0. A stream ends with ``response.completed`` (or
  ``response.incomplete`` when the answer was cut by ``max_output_tokens`` or a
  content filter); a failure after content ends it with an ``error`` event and
  ``response.failed`` (``response.error`` set), and nothing that looks like completion
  before them.
- Final answers always carry ``usage`` (zero when the upstream reported none): the
  Vercel AI SDK refuses a response without it.
"""

from __future__ import annotations

from ..base import Adapter
from ._wire import PROTOCOL
from .ingress import (
    check_request,
    features_used,
    parse_request,
    prepare_passthrough,
    render_response,
    request_model,
    request_streams,
)
from .egress import build_call, build_passthrough_call, parse_response, read_error
from .stream import StreamDecoder, StreamEncoder

ADAPTER = Adapter(
    protocol=PROTOCOL,
    sse_content_type="text/event-stream",
    forward_headers=frozenset(),
    parse_request=parse_request,
    request_model=request_model,
    request_streams=request_streams,
    check_request=check_request,
    features_used=features_used,
    prepare_passthrough=prepare_passthrough,
    render_response=render_response,
    stream_encoder=StreamEncoder,
    build_call=build_call,
    build_passthrough_call=build_passthrough_call,
    parse_response=parse_response,
    stream_decoder=StreamDecoder,
    read_error=read_error,
)
