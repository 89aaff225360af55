"""Status of each kind, built from what the operator computed. Pure.

The shapes are the status models of ``switchyard.api.status`` (the CRDs' status schemas
come from them); ``tests/unit/operator/test_operator_status.py`` validates every builder's output
against them. Nothing here ever holds a secret value: tier problems name the Secret and
the key, never the content, and upstream error bodies are reduced to their error code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from switchyard.compiler.compile import BindingReport

from .conditions import FALSE, TRUE, UNKNOWN, condition
from .health import BindingHealth, LimitsHealth, all_resolvable_tiers_out

UNBOUND_MESSAGES = {
    "PrimaryNull": "spec.primary is null: the binding is deliberately unbound and answers every request "
    "with a clear error (the deprecated boundCredential is ignored)",
    "PrimaryCleared": "spec.primary was set to null or cleared (kubectl apply stores an explicit null as an "
    "absent key): the binding stays unbound and the deprecated boundCredential is ignored",
    "PrimaryNotSet": "neither spec.primary nor the deprecated boundCredential is set: the binding is unbound",
}


@dataclass(frozen=True)
class PodProblem:
    pod: str
    reason: str
    message: str = ""

    def as_status(self) -> dict[str, str]:
        return {"pod": self.pod, "reason": self.reason, "message": self.message}


@dataclass(frozen=True)
class PodsView:
    """The binding's selected sidecar pods and how many run the current config."""

    selected: int = 0
    configured: int = 0
    problems: tuple[PodProblem, ...] = ()


@dataclass(frozen=True)
class BindingInputs:
    """Everything ``binding_status`` needs; built by the reconciler."""

    name: str
    generation: int | None
    previous: dict[str, Any]  # the current .status (may be empty)
    primary_evidence: bool
    report: BindingReport | None  # None: the spec is invalid
    invalid_message: str | None = None
    health: BindingHealth = field(default_factory=BindingHealth)
    pods: PodsView = field(default_factory=PodsView)
    alias_conflicts: tuple[str, ...] = ()
    requires: bool = False  # the spec has a `requires` that asks for something
    limits: LimitsHealth | None = None  # spec.limits: what the pods used (health.aggregate_limits)


def _tier_label(source: str, model: str | None) -> str:
    return f"{source}/{model}" if model else source


def _resolved(inp: BindingInputs) -> tuple[str, str, str]:
    r = inp.report
    if r is None:
        return FALSE, "InvalidSpec", inp.invalid_message or "the spec does not validate"
    if r.unbound:
        reason = r.unbound_reason or "Unbound"
        return FALSE, reason, UNBOUND_MESSAGES.get(reason, "the binding is unbound")
    bad = [t for t in r.tiers if not t.resolvable]
    if bad:
        parts = [f"tier{t.index} ({_tier_label(t.source, t.model)}): {t.reason}: {t.message}" for t in bad]
        return FALSE, "TierUnresolvable", f"{len(r.tiers) - len(bad)} of {len(r.tiers)} tiers resolvable; " + "; ".join(parts)
    conflicts = list(inp.alias_conflicts)  # per pod: two bindings may share an alias on different pods
    if conflicts:
        return FALSE, "AliasConflict", "aliases claimed by another binding on a shared pod: " + ", ".join(conflicts)
    legacy = " (primary from the deprecated boundCredential; set spec.primary)" if r.legacy_primary else ""
    return TRUE, "AllTiersResolved", f"{len(r.tiers)} of {len(r.tiers)} tiers resolvable{legacy}"


def _ready(inp: BindingInputs) -> tuple[str, str, str]:
    r = inp.report
    if r is None:
        return FALSE, "InvalidSpec", inp.invalid_message or "the spec does not validate"
    if r.unbound:
        return FALSE, r.unbound_reason or "Unbound", UNBOUND_MESSAGES.get(r.unbound_reason or "", "unbound")
    if not r.servable:
        return FALSE, "NoResolvableTier", "no tier of the chain is resolvable; see the Resolved condition"
    if inp.pods.selected == 0:
        return FALSE, "NoPodsSelected", "spec.selector matches no pod that carries the switchyard sidecar"
    if inp.pods.configured == 0:
        why = "; ".join(f"{p.pod}: {p.reason} {p.message}".strip() for p in inp.pods.problems[:3])
        return FALSE, "ConfigNotApplied", f"no selected pod runs the current config yet ({why or 'push pending'})"
    if all_resolvable_tiers_out(r, inp.health):
        if any(inp.health.tiers[t.index].disabled_in_pods for t in r.tiers if t.resolvable):
            return FALSE, "AllTiersOpen", (
                "every resolvable tier is out of service in every pod (breaker open or tier disabled): requests get "
                "a 503 until a cooldown ends or a disabled tier's ModelSource, Secret or binding changes"
            )
        return FALSE, "AllTiersOpen", "every resolvable tier's breaker is open in every pod: requests get a 503 until a cooldown ends"
    active = inp.health.active
    serving = f"; serving from {active.label}" if active else ""
    fallback = " (a fallback)" if active and active.tier > 0 else ""
    return TRUE, "Serving", f"{inp.pods.configured} of {inp.pods.selected} pods configured{serving}{fallback}"


def _compatible(inp: BindingInputs) -> tuple[str, str, str]:
    """ChainCompatible: does every tier have what spec.requires asks for? (From the compiler's
    report; Ready does not depend on it: requests skip an incompatible tier.)"""
    r = inp.report
    if r is None:
        return UNKNOWN, "InvalidSpec", inp.invalid_message or "the spec does not validate"
    if r.unbound:
        return UNKNOWN, r.unbound_reason or "Unbound", "the binding is unbound: no tier to check"
    unchecked = [t for t in r.tiers if not t.resolvable]
    tail = ""
    if unchecked:
        tail = "; not checked (unresolvable): " + ", ".join(f"tier{t.index}" for t in unchecked)
    if not r.compatible:
        return FALSE, "Incompatible", incompatibility(r) + tail
    if not inp.requires:
        return TRUE, "NoRequirements", "spec.requires is not set: every tier is taken as compatible"
    checked = len(r.tiers) - len(unchecked)
    return TRUE, "Compatible", f"{checked} of {len(r.tiers)} tiers have what spec.requires asks for{tail}"


def incompatibility(report: BindingReport) -> str:
    """``tier1 (local/qwen): lacks vision; tier2 (...): lacks tools, maxContextTokens>=100000 (serves degraded)``."""
    parts = []
    for t in report.tiers:
        if t.incompatible:
            how = " (serves degraded: allowDegrading)" if t.degradable else ""
            parts.append(f"tier{t.index} ({_tier_label(t.source, t.model)}): lacks {', '.join(t.incompatible)}{how}")
    return "; ".join(parts)


def binding_status(inp: BindingInputs, *, now: float) -> dict[str, Any]:
    """The whole ``.status`` of an AssistantBinding (AssistantBindingStatus, camelCase)."""
    prev = inp.previous or {}
    prev_conditions = prev.get("conditions") or []
    r = inp.report
    chain: list[dict[str, Any]] = []
    if r is not None:
        for t in r.tiers:
            entry = t.as_status()
            h = inp.health.tiers.get(t.index)
            if h is not None and h.reporting_pods:
                entry["breaker"] = h.as_status()
                if t.keys:  # several keys: by index, as the pods report them (never a value)
                    entry["keys"] = [
                        h.keys[k.index].as_status(k.as_status()) if k.index in h.keys else k.as_status() for k in t.keys
                    ]
            chain.append(entry)
    if r is None:
        primary = "(invalid spec)"
    elif r.unbound:
        primary = f"(unbound: {r.unbound_reason})"
    else:
        primary = _tier_label(r.tiers[0].source, r.tiers[0].model) if r.tiers else "(none)"
    summary: dict[str, Any] = {
        "primary": primary,
        "breakers": f"{inp.health.out_of_service_tiers}/{len(chain)}",
        "pods": f"{inp.pods.configured}/{inp.pods.selected}",
        "active": inp.health.active.label if inp.health.active is not None else "-",
    }
    res = _resolved(inp)
    rdy = _ready(inp)
    cmp = _compatible(inp)
    status: dict[str, Any] = {
        "observedGeneration": inp.generation,
        "primaryConfigured": bool(prev.get("primaryConfigured")) or inp.primary_evidence,
        "chain": chain,
        "pods": {
            "selected": inp.pods.selected,
            "configured": inp.pods.configured,
            "problems": [p.as_status() for p in inp.pods.problems[:20]] or None,
        },
        "aliasConflicts": list(inp.alias_conflicts)[:50] or None,
        "summary": summary,
        "conditions": [
            condition("Resolved", *res, now=now, generation=inp.generation, previous=prev_conditions),
            condition("Ready", *rdy, now=now, generation=inp.generation, previous=prev_conditions),
            condition("ChainCompatible", *cmp, now=now, generation=inp.generation, previous=prev_conditions),
        ],
    }
    if inp.health.active is not None:
        status["active"] = inp.health.active.as_status()
    if inp.health.usage is not None:
        status["usage"] = inp.health.usage.as_status()
    if inp.limits is not None and inp.limits.windows:
        status["limits"] = inp.limits.as_status()
    return status


def profile_status(generation: int | None, invalid_message: str | None, previous: dict[str, Any], *, now: float) -> dict[str, Any]:
    """The ``.status`` of a CapabilityProfile: does it validate?"""
    if invalid_message:
        cond = (FALSE, "InvalidSpec", invalid_message)
    else:
        cond = (TRUE, "Valid", "the profile validates")
    prev = previous.get("conditions") or []
    ready = (cond[0], "Ready" if cond[0] == TRUE else cond[1], cond[2])
    return {
        "observedGeneration": generation,
        "conditions": [
            condition("Valid", *cond, now=now, generation=generation, previous=prev),
            # Ready on every kind, so `kubectl wait --for=condition=Ready` works on each.
            condition("Ready", *ready, now=now, generation=generation, previous=prev),
        ],
    }


@dataclass(frozen=True)
class CredentialCheck:
    """The outcome of one catalog fetch, as conditions see it (see catalog.py)."""

    credential: str  # True / False / Unknown
    credential_reason: str
    credential_message: str
    catalog_ready: bool
    catalog_reason: str
    catalog_message: str


def source_status(
    generation: int | None,
    check: CredentialCheck,
    catalog: dict[str, Any] | None,
    previous: dict[str, Any],
    *,
    now: float,
    keys: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The ``.status`` of a ModelSource: catalog and the CredentialValid / CatalogReady conditions.

    ``keys``: with several credentialRefs, each by index (``SourceKeyStatus``: resolvable
    or the reason and message, never a value).

    An inconclusive check (upstream down, rate-limited) keeps the previous CredentialValid
    verdict instead of flapping the CREDENTIAL column to Unknown.
    """
    prev_conditions = previous.get("conditions") or []
    cred = (check.credential, check.credential_reason, check.credential_message)
    if check.credential == UNKNOWN:
        old = next((c for c in prev_conditions if c.get("type") == "CredentialValid"), None)
        if old is not None and old.get("status") in (TRUE, FALSE):
            cred = (old["status"], old["reason"], old.get("message", ""))
    # Ready: the source can be used as checked: its credential is not refused and its
    # catalog was fetched (or the upstream has no list-models endpoint to fetch).
    if cred[0] == FALSE:
        ready = (FALSE, cred[1], cred[2])
    elif check.catalog_ready or check.catalog_reason == "NoCatalogEndpoint":
        ready = (TRUE, "Ready", check.catalog_message)
    else:
        ready = (FALSE, check.catalog_reason, check.catalog_message)
    out: dict[str, Any] = {
        "observedGeneration": generation,
        "conditions": [
            condition("CredentialValid", *cred, now=now, generation=generation, previous=prev_conditions),
            condition(
                "CatalogReady",
                TRUE if check.catalog_ready else FALSE,
                check.catalog_reason,
                check.catalog_message,
                now=now,
                generation=generation,
                previous=prev_conditions,
            ),
            condition("Ready", *ready, now=now, generation=generation, previous=prev_conditions),
        ],
    }
    if catalog is not None:
        out["catalog"] = catalog
    if keys:
        out["keys"] = keys
    return out


def prune(value: Any) -> Any:
    """Drop None from mappings, recursively: the API server stores a null as an absent key,
    so a status with nulls would never compare equal to what was written."""
    if isinstance(value, dict):
        return {k: prune(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [prune(v) for v in value]
    return value


def merge_patch(current: dict[str, Any], desired: dict[str, Any]) -> dict[str, Any]:
    """The JSON merge patch (RFC 7386) turning ``current`` into ``desired`` (both pruned)."""
    patch: dict[str, Any] = {}
    for key, value in desired.items():
        old = current.get(key)
        if isinstance(value, dict) and isinstance(old, dict):
            sub = merge_patch(old, value)
            if sub:
                patch[key] = sub
        elif old != value or key not in current:
            patch[key] = value
    for key in current:
        if key not in desired:
            patch[key] = None
    return patch
