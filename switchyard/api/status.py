"""The status models: what the operator writes under ``.status`` of each kind.

Plain pydantic models, camelCase on the wire like the specs in ``models.py``, so that the
CRDs' status schemas and the operator's status builders cannot drift apart: ``openapi.py``
turns these classes into the status schemas that ``crd.py`` puts in the CRDs (without
defaults: the operator writes the whole status), and ``switchyard.operator.status`` builds
dicts that ``tests/unit/operator/test_operator_status.py`` validates against them. Nothing here
imports the rest of ``api/``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from switchyard.sidecar.contract.report import FAILURE_CLASSES, TIER_STATES

ConditionStatus = Literal["True", "False", "Unknown"]
# The state and failure-class names are the status report contract's (defined once there).
BreakerState = Literal[(*TIER_STATES, "unknown")]  # type: ignore[valid-type]  # unknown: no pod reported the tier
FailureClass = Literal[FAILURE_CLASSES]  # type: ignore[valid-type]


class _Status(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


# metav1.Condition's own validation (k8s.io/apimachinery/pkg/apis/meta/v1/types.go).
CONDITION_TYPE_PATTERN = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$"
)
CONDITION_REASON_PATTERN = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"
# The list of conditions is a map keyed on `type` (one condition per type), as metav1 declares it.
CONDITIONS_LIST = {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]}


class Condition(_Status):
    """A standard Kubernetes condition (the shape and validation of metav1.Condition)."""

    type: str = Field(min_length=1, max_length=316, pattern=CONDITION_TYPE_PATTERN, description="Condition type, e.g. Ready.")
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str = Field(
        min_length=1, max_length=1024, pattern=CONDITION_REASON_PATTERN,
        description="CamelCase reason for the condition's last transition.",
    )
    message: str = Field(default="", max_length=32768, description="Human-readable details.")
    last_transition_time: str = Field(
        description="When the status last changed (RFC 3339).", json_schema_extra={"format": "date-time"}
    )
    observed_generation: int | None = Field(
        default=None, ge=0, description="The .metadata.generation the condition was computed from."
    )


class TierBreakerStatus(_Status):
    """One tier's health, as the selected sidecars report it (see docs/failure-handling.md)."""

    state: BreakerState = Field(
        description="Worst state across the pods that report this tier: disabled > open > rate-limited > "
        "half-open > closed; unknown when no pod reported it. disabled: a permanent failure (401, 403, "
        "404 model) took the tier out until its ModelSource, Secret or the binding changes, or an admin resets it."
    )
    closed_in_pods: int = Field(default=0, ge=0, description="Pods in which this tier is closed (in service).")
    open_in_pods: int = Field(default=0, ge=0, description="Pods in which this tier's breaker is open.")
    half_open_in_pods: int = Field(default=0, ge=0, description="Pods in which this tier's breaker is half-open.")
    rate_limited_in_pods: int = Field(
        default=0, ge=0, description="Pods in which this tier waits out the upstream's Retry-After."
    )
    disabled_in_pods: int = Field(default=0, ge=0, description="Pods in which this tier is disabled.")
    reporting_pods: int = Field(default=0, ge=0, description="Pods that reported this tier (configured with the current chain).")
    disabled_reason: str | None = Field(
        default=None, max_length=256,
        description="Why the tier is disabled, as the upstream answered it (e.g. 401); absent unless disabled in some pod.",
    )
    last_failure: str | None = Field(default=None, description="Most recent failure reason reported by any pod.")
    last_failure_class: FailureClass | None = Field(
        default=None, description="The class of that failure: transient, rate-limited or permanent."
    )
    last_failure_at: str | None = Field(default=None, description="When that failure happened (RFC 3339).")


KeyState = Literal["usable", "rate-limited", "disabled", "unresolvable"]


class KeyStatus(_Status):
    """One key of a source with several (``credentialRefs``), by its index in that list.
    Never a value nor anything read from a Secret's data."""

    index: int = Field(ge=0, le=7, description="Position of the key in the source's credentialRefs (0 is tried first).")
    state: KeyState = Field(
        description="unresolvable: its Secret or key is missing or not allowed (reason); disabled: the upstream "
        "refused it (401/403, confirmed by a prompt-free check) in some pod; rate-limited: it waits out a 429 in "
        "some pod; usable otherwise."
    )
    reason: str | None = Field(
        default=None, max_length=256,
        description="Why the key is unresolvable (SecretNotMarked, SecretKeyMissing, ...) or disabled (e.g. 401).",
    )
    message: str | None = Field(default=None, max_length=1024, description="The exact problem, naming the Secret and key at fault.")
    rate_limited_in_pods: int = Field(default=0, ge=0, description="Pods in which this key waits out a 429.")
    rate_limited_until: str | None = Field(
        default=None, description="When the longest of those waits ends (RFC 3339); absent unless rate-limited."
    )
    disabled_in_pods: int = Field(default=0, ge=0, description="Pods in which this key is disabled.")


class ChainTierStatus(_Status):
    """One tier of the resolved chain: resolvable, or exactly why not."""

    tier: int = Field(ge=0, description="Position in the chain: 0 is the primary, 1-3 the fallbacks.")
    source: str = Field(description="The ModelSource name.")
    model: str | None = Field(default=None, description="The model requested from it (after defaultModel).")
    protocol: str | None = Field(default=None, description="Wire protocol of the tier.")
    resolvable: bool = Field(description="True when the tier can take traffic (source, secret, model and profile all resolve).")
    reason: str | None = Field(
        default=None,
        description="Why the tier is not resolvable: SourceNotFound, SecretNotFound (standalone), "
        "SecretNotMarked (no Secret of that name labelled switchyard.dev/credential=true), SecretReserved, "
        "SecretKeyMissing, SecretUnreadable, EnvCredentialNotAllowed, ModelNotSet, ModelNotAllowed, ModelNotInCatalog, "
        "ProfileNotFound or ProtocolMismatch.",
    )
    message: str | None = Field(default=None, description="The exact problem, naming the object and key at fault.")
    incompatible: list[str] = Field(
        default_factory=list, max_length=16,
        description="What spec.requires asks for that this tier's CapabilityProfile lacks (e.g. vision, "
        "maxContextTokens>=100000); absent when the tier has all of it. Requests skip an incompatible tier.",
    )
    degradable: bool | None = Field(
        default=None,
        description="Set with incompatible: true when allowDegrading lets the tier serve anyway (degraded) "
        "because its profile strips or maps every missing feature; false when requests skip it.",
    )
    breaker: TierBreakerStatus | None = Field(default=None, description="Breaker state from the sidecars; absent until a pod reports.")
    keys: list[KeyStatus] = Field(
        default_factory=list, max_length=8,
        description="Each key of a source with several credentialRefs, by index; absent for a source with one key.",
    )


class ActiveTierStatus(_Status):
    """The tier that served the binding's most recent request (from the sidecars' last-used record)."""

    tier: int = Field(ge=0, description="Chain position of the tier that served last.")
    source: str = Field(description="Its ModelSource.")
    model: str = Field(description="Its model.")
    last_used_at: str | None = Field(default=None, description="When it last served (RFC 3339).")
    pods: int = Field(default=0, ge=0, description="Pods whose most recent request this tier served.")


class PodProblem(_Status):
    """A selected pod whose sidecar does not run the current config, and why."""

    pod: str = Field(description="Pod name.")
    reason: str = Field(
        description="AdminTokenMissing, NoAddress, Unreachable, Unauthorized, SchemaMismatch, Rejected or Stale."
    )
    message: str = Field(default="", description="Details (never a secret).")


class PodsStatus(_Status):
    """How many pods carry this binding and run its current config."""

    selected: int = Field(default=0, ge=0, description="Pods matched by spec.selector that carry the sidecar.")
    configured: int = Field(default=0, ge=0, description="Of those, pods whose sidecar runs the current config version.")
    problems: list[PodProblem] = Field(
        default_factory=list, max_length=20, description="Up to 20 pods that are not configured, with the reason."
    )


class LimitUsageStatus(_Status):
    """One of spec.limits across the binding's pods, in the current window."""

    limit: int = Field(ge=0, description="The limit as spec.limits states it (for all pods together).")
    used: int = Field(ge=0, description="Used in the current window (UTC minute or day): requests admitted, or tokens (input + output), summed over the reporting pods.")
    left: int = Field(ge=0, description="limit - used, at least 0. Each pod admits at most its share (limit / pods), so less may be usable when traffic is uneven.")
    reporting_pods: int = Field(ge=0, description="Pods whose report counts toward used (those on the current window).")
    resets_at: str | None = Field(default=None, description="tokensPerDay only: when the daily budget starts again (00:00 UTC, RFC 3339).")


class BindingLimitsStatus(_Status):
    """What the binding's pods used of each limit spec.limits sets (docs/limits.md)."""

    requests_per_minute: LimitUsageStatus | None = Field(default=None, description="Requests in the current UTC minute.")
    tokens_per_minute: LimitUsageStatus | None = Field(default=None, description="Tokens in the current UTC minute.")
    tokens_per_day: LimitUsageStatus | None = Field(default=None, description="Tokens in the current UTC day.")


class BindingSummary(_Status):
    """Short strings for `kubectl get assistantbinding` columns."""

    primary: str = Field(description="PRIMARY column: source/model of tier 0, or (unbound: reason).")
    active: str | None = Field(default=None, description="ACTIVE column: the tier serving now, e.g. `tier1 backup/gpt-4o-mini`; `-` before any traffic.")
    breakers: str = Field(
        description="BREAKERS column: tiers out of service (breaker open or tier disabled) in at least one pod / tiers in the chain."
    )
    pods: str = Field(description="PODS column: configured/selected.")


class CostStatus(_Status):
    """What a binding's answers cost in one currency."""

    currency: str = Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code, as declared in the prices.")
    amount: str = Field(
        max_length=64, pattern=r"^[0-9]+(\.[0-9]+)?$",
        description="The amount, an exact decimal string (e.g. \"0.002775\"): a sum of integer 10^-12 units, never a float.",
    )


class UsageStatus(_Status):
    """Tokens and cost of a binding's answers, summed over the selected sidecars that report them:
    each pod's totals since its sidecar started, as read at the operator's last poll. A pod that
    restarts starts again from zero, and a pod that is gone no longer counts: a gauge of what the
    running sidecars served, not a bill (the metrics are; docs/usage-and-cost.md)."""

    input_tokens: int = Field(default=0, ge=0, description="All input tokens, cache reads and writes included.")
    output_tokens: int = Field(default=0, ge=0, description="Output tokens, reasoning included.")
    cached_input_tokens: int = Field(default=0, ge=0, description="Input tokens read from a prompt cache.")
    cache_write_tokens: int = Field(default=0, ge=0, description="Input tokens written to a prompt cache.")
    reasoning_tokens: int = Field(default=0, ge=0, description="Output tokens spent reasoning.")
    cost: list[CostStatus] = Field(
        default_factory=list, max_length=10,
        description="Per currency, from the prices declared for the tiers' models; absent when no tier that served is priced.",
    )
    pods: int = Field(default=0, ge=0, description="Pods whose totals are summed here.")


class AssistantBindingStatus(_Status):
    """What the operator reports on an AssistantBinding."""

    observed_generation: int | None = Field(default=None, ge=0, description="The .metadata.generation this status describes.")
    primary_configured: bool = Field(
        default=False,
        description="True once spec.primary has been set (to a tier or to null). Kept across restarts so a "
        "primary that was cleared stays cleared and the deprecated boundCredential is never read again.",
    )
    chain: list[ChainTierStatus] = Field(default_factory=list, max_length=4, description="The resolved chain, tier by tier.")
    active: ActiveTierStatus | None = Field(default=None, description="The tier serving now; absent before any traffic.")
    pods: PodsStatus = Field(default_factory=PodsStatus, description="Selected and configured pods.")
    alias_conflicts: list[str] = Field(
        default_factory=list, max_length=50, description="Aliases another binding of a shared pod already claims: `alias (taken by ns/name)`."
    )
    limits: BindingLimitsStatus | None = Field(
        default=None, description="Use of spec.limits, summed over the pods' reports; absent without limits or before a pod reports."
    )
    summary: BindingSummary | None = Field(default=None, description="Printer-column strings.")
    usage: UsageStatus | None = Field(
        default=None, description="Tokens and cost since each selected sidecar started; absent before any usage is reported."
    )
    conditions: list[Condition] = Field(
        default_factory=list, max_length=8, description="Resolved, Ready and ChainCompatible.",
        json_schema_extra=CONDITIONS_LIST,
    )


class CatalogStatus(_Status):
    """The live model list of a ModelSource, from its list-models endpoint."""

    models: list[str] = Field(default_factory=list, max_length=2000, description="Model ids the upstream lists (at most 2000).")
    count: int = Field(default=0, ge=0, description="How many models the upstream lists (may exceed the ids kept).")
    fetched_at: str | None = Field(default=None, description="When the list was fetched (RFC 3339).")


class SourceKeyStatus(_Status):
    """One of a ModelSource's credentialRefs, by index: whether the operator could read it."""

    index: int = Field(ge=0, le=7, description="Position in spec.credentialRefs.")
    resolvable: bool = Field(description="The Secret is labelled as a credential and holds the key.")
    reason: str | None = Field(default=None, max_length=256, description="Why not: SecretNotMarked, SecretKeyMissing, ...")
    message: str | None = Field(default=None, max_length=1024, description="The exact problem, naming the Secret and key.")


class ModelSourceStatus(_Status):
    """What the operator reports on a ModelSource."""

    observed_generation: int | None = Field(default=None, ge=0, description="The .metadata.generation this status describes.")
    catalog: CatalogStatus | None = Field(default=None, description="The live model catalog; absent until fetched.")
    conditions: list[Condition] = Field(
        default_factory=list, max_length=8, json_schema_extra=CONDITIONS_LIST,
        description="CredentialValid, CatalogReady and Ready (credential not refused and catalog fetched).",
    )
    keys: list[SourceKeyStatus] = Field(
        default_factory=list, max_length=8,
        description="With several credentialRefs: each key by index, resolvable or why not (never a value).",
    )


class CapabilityProfileStatus(_Status):
    """What the operator reports on a CapabilityProfile."""

    observed_generation: int | None = Field(default=None, ge=0, description="The .metadata.generation this status describes.")
    conditions: list[Condition] = Field(
        default_factory=list, max_length=8, json_schema_extra=CONDITIONS_LIST, description="Valid and Ready (the same verdict)."
    )
