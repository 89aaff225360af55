"""Protocol translation: one adapter per wire protocol around one neutral form. Pure.

`neutral` is the meeting point; `base` the adapter contract (one ``Adapter`` object per
protocol) and ``adapter_for``, which imports an adapter when it is first needed; `sse`
the event-stream codec; `common` helpers shared by adapters; `openai_chat`,
`anthropic_messages`, `gemini` and `openai_responses` the adapters, one package each,
split by role: ``ingress`` (a client's side: parse, features, passthrough edits,
render), ``egress`` (a tier's side: the call, the answer, errors), ``stream`` (the
stream encoder and decoder), ``_wire`` (what more than one of those reads), and an
``__init__`` that builds the protocol's ``ADAPTER``.

Nothing here does I/O, reads a clock for a decision, or imports aiohttp, asyncio, the
pipeline, the HTTP layer, upstream or state (enforced by the import contracts in
``pyproject.toml``, checked by ``make lint``).
"""
