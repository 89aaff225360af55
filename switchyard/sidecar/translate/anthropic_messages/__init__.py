"""Anthropic Messages, both faces: what Claude Code and the ``anthropic`` SDK speak.

Ingress: ``POST /v1/messages`` bodies (Claude Code adds ``?beta=true``; the query does
not matter) into the neutral form; neutral answers and event streams back into a
``message`` object and the exact Anthropic SSE sequence. Also
``POST /v1/messages/count_tokens``, answered by the binding's first resolvable tier
when it can count (Anthropic, Gemini) and refused clearly otherwise. Egress: neutral
requests into ``POST {base}/v1/messages`` for Anthropic tiers, the answers and SSE
streams back into neutral form.

The modules, by role (underscore names are private to this package):

- ``ingress``: an Anthropic client's side. Parse a request, the features it uses, the
  same-protocol passthrough edits, whole answers rendered, the ``count_tokens`` request
  and answer.
- ``egress``: an Anthropic tier's side. The ``/v1/messages`` call for a neutral or a
  same-protocol body, the answer read back, the error body, the ``count_tokens`` call
  and answer.
- ``stream``: both stream directions, which share the event grammar
  (``message_start`` ... ``message_stop``): ``StreamEncoder`` (ingress: neutral events
  -> client SSE) and ``StreamDecoder`` (egress: upstream SSE -> neutral events).
- ``_wire``: what more than one of those reads: the stop-reason tables, usage both ways,
  message ids, the structured-output tool's name, the smallest thinking budget.

This module builds the one ``ADAPTER`` from them.

Field notes (checked against the Messages API reference and the ``anthropic`` SDK's
own types; docs/protocols/anthropic.md has the field-by-field table):

- Usage: Anthropic's ``input_tokens`` *excludes* cache reads and cache writes (total
  input = input + cache_read + cache_creation). The neutral ``Usage.input_tokens`` is
  the total (OpenAI's ``prompt_tokens`` semantics), so the adapters add and subtract.
- Streams have explicit block boundaries; neutral events do not. The encoder opens a
  block when a different kind of content starts and closes it when the next starts or
  at the finish. ``message_delta`` (stop reason + usage) is held back until
  ``finish()`` because OpenAI-style upstreams report usage after the finish reason.
- Thinking signatures are only meaningful to Anthropic. Thinking of another origin, or
  without a signature, is never sent to an Anthropic upstream; a foreign thought shown
  to an Anthropic client carries ``signature: ""`` and is dropped when the client sends
  it back (neutral path and same-protocol passthrough alike).
- Structured output (``response_format``) has no JSON mode on the Messages API that
  every model takes, so it becomes a forced tool whose ``input_schema`` is the schema;
  the answer's tool call is turned back into text, as OpenAI would return it.
- ``max_tokens`` is required by Anthropic: the request's, else the tier profile's
  ``maxOutputTokens`` capped at 8192 (a size every current Claude model accepts and
  that answers most chat turns; the cap keeps an unset client from reserving a
  64k-token answer). A thinking budget must be >= 1024 and < max_tokens: when it is
  not, max_tokens is raised to budget + the visible allowance (the docs page says so).
"""

from __future__ import annotations

from ..base import Adapter
from ._wire import PROTOCOL
from .ingress import (
    check_request,
    count_request,
    features_used,
    parse_request,
    prepare_passthrough,
    render_count,
    render_response,
    request_model,
    request_streams,
)
from .egress import (
    ADAPTER_FORWARD_HEADERS,
    build_call,
    build_passthrough_call,
    count_call,
    parse_response,
    read_count,
    read_error,
    verdict,
)
from .stream import StreamDecoder, StreamEncoder

ADAPTER = Adapter(
    protocol=PROTOCOL,
    sse_content_type="text/event-stream",
    forward_headers=ADAPTER_FORWARD_HEADERS,
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
    count_request=count_request,
    render_count=render_count,
    count_call=count_call,
    read_count=read_count,
)
