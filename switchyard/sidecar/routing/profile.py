"""The capability step: what happens to each feature a request uses, on one tier.

Pure. ``decide`` compares the features a request uses (from the ingress adapter's cheap
scan of the raw body) with the tier's compiled CapabilityProfile and returns a
``Decision``: features to reject (a 4xx in the client's protocol), a feature that makes
the tier skip, and edits (strip, or map to a value the tier can take). Every decision
is listed in ``Decision.degraded`` for the ``x-switchyard-degraded`` header, the
``switchyard_degraded_fields_total`` metric and the request log (promise 3).

Which request field is which feature is the ingress adapter's knowledge
(``features_used``); how an edit is applied is the adapters' (same-protocol:
``prepare_passthrough``; cross-protocol: ``apply_to_request`` below on the neutral form).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from switchyard.sidecar.contract.config import CompiledProfile
from switchyard.sidecar.translate import neutral

# Edits whose mapped value is a plain replacement of one field: these can be applied to
# a same-protocol body in place. Other maps need the neutral form.
SIMPLE_MAPS = frozenset({"stopSequences", "maxOutputTokens"})


@dataclass(slots=True)
class Decision:
    reject: list[str] = field(default_factory=list)
    skip: str | None = None  # the first feature that makes this tier skip
    edits: dict[str, Any] = field(default_factory=dict)  # feature -> None (strip) or mapped value
    degraded: list[tuple[str, str]] = field(default_factory=list)  # (feature, action text)

    @property
    def structural(self) -> bool:
        """True when an edit needs the neutral form (cannot be done on the raw body)."""
        return any(f not in SIMPLE_MAPS and v is not None for f, v in self.edits.items())


def _unsupported(feature: str, amount: Any, supported: Any) -> bool:
    if feature == "stopSequences":
        return int(amount) > int(supported or 0)
    if feature == "maxOutputTokens" or feature == "maxContextTokens":
        return supported is not None and int(amount) > int(supported)
    if feature == "reasoning":
        return supported == "none"
    if feature == "multipleChoices":
        return int(amount) > 1 and not supported
    return not supported


def decide(used: dict[str, Any], profile: CompiledProfile, *, extras: list[str] | None = None) -> Decision:
    """Decide for one tier. ``extras`` are ingress fields with no equivalent in the tier's
    protocol (cross-protocol only); they are the ``unknownFields`` feature."""
    d = Decision()
    features = profile.features
    items = list(used.items())
    if extras:
        items.append(("unknownFields", extras))
    for feature, amount in items:
        if not amount and amount != 0:
            continue
        if feature == "unknownFields":
            unsupported = True
        else:
            if feature not in features:
                continue  # a feature this profile says nothing about: nothing to decide
            unsupported = _unsupported(feature, amount, features[feature])
        if not unsupported:
            continue
        action = profile.on_unsupported.get(feature, "strip")
        label = feature if feature != "unknownFields" else "unknownFields(" + ",".join(sorted(extras or [])) + ")"
        if action == "reject":
            d.reject.append(feature)
            d.degraded.append((label, "reject"))
        elif action == "skip-tier":
            if d.skip is None:
                d.skip = feature
            d.degraded.append((label, "skip-tier"))
        elif action == "strip":
            d.edits[feature] = None
            d.degraded.append((label, "strip"))
        else:  # map
            mapped = _map(feature, amount, features.get(feature))
            d.edits[feature] = mapped
            d.degraded.append((label, "map" if mapped is None else f"map({_show(mapped)})"))
    return d


def _map(feature: str, amount: Any, supported: Any) -> Any:
    """The value a mapped feature takes on this tier (None = strip it after all)."""
    if feature == "stopSequences":
        limit = int(supported or 0)
        return limit if limit > 0 else None  # keep the first `limit` sequences
    if feature == "maxOutputTokens":
        return int(supported)
    # Structural maps (system prompt folded into the first turn, structured output as a
    # forced tool, stream synthesised from a full answer): the adapters know how.
    return True


def _show(v: Any) -> str:
    return "on" if v is True else str(v)


def apply_to_request(req: neutral.Request, edits: dict[str, Any]) -> neutral.Request:
    """The neutral request with a tier's edits applied. Never mutates ``req``."""
    if not edits:
        return req
    changes: dict[str, Any] = {}
    for feature, value in edits.items():
        if feature == "stopSequences":
            changes["stop"] = list(req.stop[: value]) if value else []
        elif feature == "maxOutputTokens":
            changes["max_tokens"] = value
        elif feature == "tools" and value is None:
            changes.update(tools=[], tool_choice=None, parallel_tool_calls=None)
        elif feature == "parallelToolCalls" and value is None:
            changes["parallel_tool_calls"] = None
        elif feature == "reasoning" and value is None:
            changes["reasoning"] = None
        elif feature in ("jsonMode", "structuredOutput") and value is None:
            changes["response_format"] = None
        elif feature == "logprobs" and value is None:
            changes.update(logprobs=None, top_logprobs=None)
        elif feature == "seed" and value is None:
            changes["seed"] = None
        elif feature == "topK" and value is None:
            changes["top_k"] = None
        elif feature == "multipleChoices" and value is None:
            changes["n"] = None
        elif feature == "systemPrompt":
            changes.update(_fold_system(req) if value else {"system": [], "messages": [m for m in req.messages if m.role != "system"]})
        elif feature == "unknownFields":
            changes["extras"] = {}
        elif feature in ("vision", "documents", "audio") and value is None:
            changes["messages"] = _drop_parts(req.messages, feature)
        elif feature == "streaming":
            pass  # the pipeline serves the stream from a full answer
    return dataclasses.replace(req, **changes)


def _fold_system(req: neutral.Request) -> dict[str, Any]:
    """Map a system prompt into the first user turn for tiers without one (system turns
    inside the conversation become user text in place)."""
    messages = [neutral.Message("user", list(m.parts)) if m.role == "system" else m for m in req.messages]
    if not req.system:
        return {"messages": messages} if messages != req.messages else {}
    text = "\n\n".join(t.text for t in req.system)
    for i, m in enumerate(messages):
        if m.role == "user":
            messages[i] = neutral.Message("user", [neutral.Text(text), *m.parts], m.name)
            break
    else:
        messages.insert(0, neutral.Message("user", [neutral.Text(text)]))
    return {"system": [], "messages": messages}


_MEDIA = {"vision": neutral.Image, "documents": neutral.Document, "audio": neutral.Audio}


def _drop_parts(messages: list[neutral.Message], feature: str) -> list[neutral.Message]:
    """Media of one kind removed, including what tool results carry (a screenshot)."""
    kind = _MEDIA[feature]
    out = []
    for m in messages:
        parts: list[neutral.Part] = []
        changed = False
        for p in m.parts:
            if isinstance(p, kind):
                changed = True
                continue
            if isinstance(p, neutral.ToolResult) and any(isinstance(c, kind) for c in p.content):
                p = dataclasses.replace(p, content=[c for c in p.content if not isinstance(c, kind)])
                changed = True
            parts.append(p)
        out.append(neutral.Message(m.role, parts, m.name) if changed else m)
    return out


def degraded_header(items: list[tuple[str, str]]) -> str:
    """`x-switchyard-degraded` for the serving tier: "logprobs=strip, stopSequences=map(4)"."""
    return ", ".join(f"{feature}={action}" for feature, action in items)
