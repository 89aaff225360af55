"""The flow of one request, in the order it happens.

- ``intake``: is the sidecar serving, the body (bounded), the binding, the deadline;
- ``chain``: the binding's tiers in order (``handle`` is the entry point): breaker
  admission through a ``TierLease``, the capability step, the call for each tier;
- ``attempt``: one try of one tier: send, judge, relay (promise 2 lives in its stream
  relay);
- ``count``: token counting down the same chain (side requests, no verdict on tiers);
- ``embed``: embeddings down the same chain, falling back only within one embedding
  space (``embeddingDimensions``);
- ``exchange``: what a request did: headers, metrics, its one log line.

The HTTP layer (``sidecar/http``) calls ``chain.handle``, ``count.count_tokens`` and ``embed.embed``;
translation is asked through adapters (``sidecar/translate``), upstream I/O through
``sidecar/upstream``, state through ``sidecar/state``.
"""
