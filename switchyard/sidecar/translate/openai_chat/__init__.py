"""OpenAI Chat Completions, both faces (also OpenRouter and openai-compatible runtimes).

Ingress: ``POST /v1/chat/completions`` bodies into the neutral form, neutral answers and
event streams back into ``chat.completion`` / ``chat.completion.chunk`` objects that
validate against the official OpenAPI spec. Egress: neutral requests into a Chat
Completions call for a tier, its answers and SSE chunks back into neutral form.

The modules, by role (underscore names are private to this package):

- ``ingress``: a Chat Completions client's side. Parse a request, the features it uses,
  the same-protocol passthrough edits, whole answers rendered; ``/v1/embeddings``
  requests read and answers rendered (floats or base64).
- ``egress``: a Chat Completions tier's side. The call for a neutral or a same-protocol
  body, the answer read back, the error body; the ``/embeddings`` call and answer. (No
  token-count endpoint: the adapter's count faces are left at their defaults.)
- ``stream``: both stream directions: ``StreamEncoder`` (ingress: neutral events ->
  ``chat.completion.chunk`` SSE) and ``StreamDecoder`` (egress: upstream chunks ->
  neutral events).
- ``_wire``: what more than one of those reads: the finish-reason tables and usage both
  ways.

This module builds the one ``ADAPTER`` from them.

Field notes (checked against the OpenAI API reference):
- ``max_completion_tokens`` replaced ``max_tokens`` on api.openai.com (reasoning models
  refuse the old name); OpenRouter and local runtimes know ``max_tokens``. The egress
  side sends the name the provider takes.
- A stream ends with ``data: [DONE]``; an error inside a stream is a ``data:`` chunk
  holding ``{"error": {...}}`` and is never followed by ``[DONE]``.
- ``reasoning_content`` (DeepSeek, vLLM, llama.cpp) carries thinking text on
  compatible runtimes; it is read as thinking and written on the way out so a client
  of a thinking tier sees it.
"""

from __future__ import annotations

from ..base import Adapter
from ._wire import PROTOCOL
from .ingress import (
    check_request,
    embed_request,
    features_used,
    parse_request,
    prepare_passthrough,
    render_embeddings,
    render_response,
    request_model,
    request_streams,
)
from .egress import build_call, build_passthrough_call, embed_call, parse_response, read_embeddings, read_error, verdict
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
    verdict=verdict,
    stream_decoder=StreamDecoder,
    read_error=read_error,
    embed_request=embed_request,
    render_embeddings=render_embeddings,
    embed_call=embed_call,
    read_embeddings=read_embeddings,
)
