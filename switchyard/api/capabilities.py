"""Capability defaults: the action for each unsupported feature, and built-in profiles.

A CapabilityProfile may list an action per feature in `onUnsupported`; any feature it
does not list takes the default below. The defaults are chosen so that nothing degrades
silently and nothing that would change the meaning of an answer is stripped: a request
with images or tools never lands on a tier that cannot see or call them (skip-tier),
while a sampling knob a destination lacks is dropped and reported (strip).
docs/capabilities.md renders this table.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

import yaml

from .models import Action, CapabilityProfile, Provider, WireProtocol

DEFAULT_ACTIONS: dict[str, Action] = {
    "streaming": Action.MAP,  # served from a non-streaming call, re-chunked
    "tools": Action.SKIP_TIER,
    "parallelToolCalls": Action.STRIP,
    "vision": Action.SKIP_TIER,
    "documents": Action.SKIP_TIER,
    "audio": Action.SKIP_TIER,
    "reasoning": Action.STRIP,
    "jsonMode": Action.SKIP_TIER,
    "structuredOutput": Action.SKIP_TIER,
    "systemPrompt": Action.MAP,  # folded into the first user turn
    "stopSequences": Action.MAP,  # truncated to the destination's maximum
    "logprobs": Action.STRIP,
    "multipleChoices": Action.REJECT,
    "seed": Action.STRIP,
    "topK": Action.STRIP,
    "maxContextTokens": Action.SKIP_TIER,
    "maxOutputTokens": Action.MAP,  # clamped to the destination's maximum
    # embeddings only (sidecar/pipeline/embed.py): a tier of another embedding space is
    # never a fallback, whatever the action says
    "embeddingDimensions": Action.SKIP_TIER,
    "unknownFields": Action.STRIP,  # fields with no equivalent in the destination protocol
}

BUILTIN_PROFILE_FOR: dict[Provider, str] = {p: f"builtin-{p.value}" for p in Provider}
"""The built-in profile of each provider, spoken to in its default protocol."""

BUILTIN_PROFILE_FOR_PROTOCOL: dict[tuple[Provider, WireProtocol], str] = {
    (Provider.OPENAI, WireProtocol.OPENAI_RESPONSES): "builtin-openai-responses",
    (Provider.OPENAI_COMPATIBLE, WireProtocol.OPENAI_RESPONSES): "builtin-openai-compatible-responses",
}
"""The built-in profile of a provider spoken to in another protocol (`spec.protocol`)."""


def builtin_profile_for(provider: Provider, protocol: WireProtocol) -> str:
    """The built-in profile a ModelSource gets when it names none."""
    return BUILTIN_PROFILE_FOR_PROTOCOL.get((provider, protocol), BUILTIN_PROFILE_FOR[provider])


@cache
def builtin_profiles() -> dict[str, CapabilityProfile]:
    """The profiles that ship with Switchyard (also installed by the Helm chart)."""
    out: dict[str, CapabilityProfile] = {}
    folder = resources.files("switchyard.api") / "profiles"
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".yaml"):
            profile = CapabilityProfile.model_validate(yaml.safe_load(entry.read_text()))
            out[profile.name] = profile
    return out
