"""A varied namespace for tests that compare two ways of computing the same thing (per-pod
configs, selection, version hashes): seeded, so the same seed gives the same resources.

It mixes what the compiler and the selection have to tell apart: every provider, custom
profiles (one speaking the wrong protocol), model allow-lists and model profiles, missing
sources and Secret keys, env credentials (refused outside standalone), a link-local URL,
live catalogs, unbound and legacy bindings, `requires` with and without degrading,
callers, deadlines, breakers, aliases that collide (and a binding listing one twice), and
selectors with matchLabels, every matchExpressions operator, both, or nothing.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from switchyard.api.manifests import ResourceSet, parse_document

NS = "team"
PROVIDERS = ("openai", "anthropic", "gemini", "openai-compatible", "openrouter")
MODELS = {"openai": "gpt-5", "anthropic": "claude-sonnet-4-6", "gemini": "gemini-2.5-pro",
          "openai-compatible": "llama-3", "openrouter": "anthropic/claude-sonnet-4.6"}
URLS = {"openai": "https://api.openai.com/v1", "anthropic": "https://api.anthropic.com",
        "gemini": "https://generativelanguage.googleapis.com", "openai-compatible": "http://10.1.2.3:8000/v1",
        "openrouter": "https://openrouter.ai/api/v1"}
LABELS = {"app": ["a", "b", "c", "d", "e"], "team": ["x", "y", "z"], "tier": ["gold", "silver", "bronze"],
          "canary": ["true"], "zone": ["1", "2"]}
ALIASES = ["gpt", "claude-*", "gemini-*", "fast", "smart", "code", "chat", "gpt-*"]


@dataclass(frozen=True)
class Varied:
    resources: ResourceSet
    docs: list[dict[str, Any]]  # the manifests the resources were parsed from
    pod_labels: list[dict[str, str]]  # one per emulated pod
    catalogs: dict[tuple[str, str], frozenset[str]]


def _doc(kind: str, name: str, spec: dict[str, Any], ns: str) -> dict[str, Any]:
    return {"apiVersion": "switchyard.dev/v1alpha1", "kind": kind, "metadata": {"name": name, "namespace": ns}, "spec": spec}


def _parsed(doc: dict[str, Any]) -> Any:
    res, errors = parse_document(doc)
    assert res is not None, (doc, errors)
    return res


def random_selector(rnd: random.Random) -> dict[str, Any]:
    """matchLabels, matchExpressions (every operator), both, or nothing (selects no pod)."""
    shape = rnd.choice(["labels", "labels", "exprs", "both", "empty", "labels2"])
    sel: dict[str, Any] = {}
    if shape in ("labels", "both", "labels2"):
        keys = rnd.sample(sorted(LABELS), 2 if shape == "labels2" else 1)
        sel["matchLabels"] = {k: rnd.choice(LABELS[k]) for k in keys}
    if shape in ("exprs", "both"):
        exprs = []
        for _ in range(rnd.randint(1, 3)):
            key = rnd.choice([*sorted(LABELS), "absent"])
            op = rnd.choice(["In", "NotIn", "Exists", "DoesNotExist"])
            values = rnd.sample(LABELS.get(key, ["q"]), min(len(LABELS.get(key, ["q"])), rnd.randint(1, 2))) \
                if op in ("In", "NotIn") else []
            exprs.append({"key": key, "operator": op, "values": values})
        sel["matchExpressions"] = exprs
    return sel


def random_labels(rnd: random.Random) -> dict[str, str]:
    return {k: rnd.choice(v) for k, v in sorted(LABELS.items()) if rnd.random() < 0.7}


def build(seed: int = 1, *, sources: int = 24, bindings: int = 120, pods: int = 60, ns: str = NS) -> Varied:
    rnd = random.Random(seed)
    docs: list[dict[str, Any]] = []

    def parsed(doc: dict[str, Any]) -> Any:
        docs.append(doc)
        return _parsed(doc)

    secret_data = {f"k{i}": f"sk-varied-{seed}-{i}" for i in range(sources) if i % 11 != 5}  # some keys missing
    secret = parsed({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "keys", "namespace": ns},
                     "stringData": secret_data})
    profiles = [
        parsed(_doc("CapabilityProfile", "small", {"protocol": "openai-chat", "features": {
            "tools": False, "vision": False, "maxContextTokens": 8000}, "onUnsupported": {"tools": "reject"}}, ns)),
        parsed(_doc("CapabilityProfile", "big", {"protocol": "openai-chat", "features": {
            "reasoning": "effort", "maxContextTokens": 200000, "maxOutputTokens": 64000}}, ns)),
        parsed(_doc("CapabilityProfile", "claude-ish", {"protocol": "anthropic-messages", "features": {
            "documents": True, "reasoning": "budget"}, "onUnsupported": {"vision": "map"}}, ns)),
    ]
    srcs = []
    for i in range(sources):
        provider = PROVIDERS[i % len(PROVIDERS)]
        spec: dict[str, Any] = {"provider": provider, "baseURL": URLS[provider], "defaultModel": MODELS[provider]}
        if i % 7 == 6:
            spec["credentialRef"] = {"env": "SOME_KEY"}  # refused outside standalone
        elif i % 13 != 12:
            spec["credentialRef"] = {"name": "keys", "key": f"k{i}"}  # (no ref at all: keyless)
        if i % 5 == 1:
            spec["models"] = [MODELS[provider], f"{MODELS[provider]}-mini"]
        if provider == "openai-compatible":
            spec["network"] = {"allowInsecureHTTP": True, "maxConnections": 16}
            spec["capabilityProfileRef"] = {"name": ["small", "nowhere", "big", "claude-ish"][(i // 5) % 4]}
        if provider == "anthropic" and i % 10 == 6:
            spec["capabilityProfileRef"] = {"name": "big"}  # speaks openai-chat: ProtocolMismatch
        if provider == "openai" and i % 2:
            spec["modelProfiles"] = [{"model": "gpt-5*", "capabilityProfileRef": {"name": "big"}}]
        if i % 6 == 2:
            spec["timeouts"] = {"connectSeconds": 2, "firstByteSeconds": 30, "totalSeconds": 120}
        if i % 4 == 0:
            spec["headers"] = {"x-team": f"t{i}"}
        if i == sources - 1:
            spec["baseURL"] = "http://169.254.169.254/v1"  # link-local: refused
        srcs.append(parsed(_doc("ModelSource", f"src-{i:02d}", spec, ns)))

    bds = []
    for j in range(bindings):
        spec = {"selector": random_selector(rnd)}
        chain = rnd.sample(range(sources + 2), 1 + rnd.randint(0, 3))  # sources+0/1: missing
        tiers = []
        for c in chain:
            tier: dict[str, Any] = {"sourceRef": {"name": f"src-{c:02d}"}}
            if rnd.random() < 0.15:
                tier["model"] = rnd.choice(["gpt-5-mini", "other-model", "claude-opus-4"])
            tiers.append(tier)
        kind = rnd.random()
        if kind < 0.05:
            spec["primary"] = None  # deliberately unbound
        elif kind < 0.1:
            spec["boundCredential"] = tiers[0]["sourceRef"]["name"]  # legacy primary
            spec["fallbacks"] = tiers[1:]
        else:
            spec["primary"] = tiers[0]
            spec["fallbacks"] = tiers[1:]
        r = rnd.random()
        if r < 0.6:
            aliases = rnd.sample(ALIASES, rnd.randint(1, 3))
            if r < 0.05:
                aliases.append(aliases[0])  # listed twice
            spec["aliases"] = aliases
        if rnd.random() < 0.35:
            spec["requires"] = rnd.choice([{"tools": True}, {"reasoning": True, "minContextTokens": 100000},
                                           {"vision": True, "streaming": True}, {"minOutputTokens": 100000},
                                           {"minContextTokens": 16000}])
            spec["allowDegrading"] = rnd.random() < 0.5
        if rnd.random() < 0.15:
            spec["callers"] = rnd.sample(["claude-code", "codex", "gemini-cli"], 1)
        if rnd.random() < 0.15:
            spec["deadlineSeconds"] = rnd.choice([10, 45.5])
        if rnd.random() < 0.15:
            spec["breaker"] = {"consecutiveFailures": 5, "cooldownSeconds": 10, "probe": "none"}
        if rnd.random() < 0.1:
            spec["fallbackOn"] = ["429", "timeout"]
        bds.append(parsed(_doc("AssistantBinding", f"bind-{j:03d}", spec, ns)))
    catalogs = {(ns, f"src-{i:02d}"): frozenset({MODELS[PROVIDERS[i % len(PROVIDERS)]]})
                for i in range(sources) if i % 9 == 4}
    catalogs[(ns, "src-02")] = frozenset({"not-the-default"})  # its model is not in the live catalog
    labels = [random_labels(rnd) for _ in range(pods)]
    return Varied(ResourceSet(sources=srcs, profiles=profiles, bindings=bds, secrets=[secret]), docs, labels, catalogs)
