"""The compiler: resources + secret values -> the sidecar's compiled config, plus a report.

Pure: no I/O, no clock, no Kubernetes client. The operator and standalone mode call it
with what they read (the API server's objects, or YAML files) and get back

- a ``CompiledConfig`` (``switchyard.sidecar.contract.config``) ready to push, with its version
  hash, holding only what the request path needs, and
- a ``BindingReport`` per binding: each tier resolvable or the exact reason it is not,
  which the operator turns into status and conditions and ``switchyard check`` prints.

An unresolvable tier stays in the compiled chain with its ``problem`` set, so the
sidecar can say "tier1=unresolvable(secret openai-key has no key api-key)" instead of
pretending the chain is shorter than the user wrote.
"""

from __future__ import annotations

import dataclasses
import os
from decimal import ROUND_HALF_EVEN, Decimal
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from switchyard.api.capabilities import DEFAULT_ACTIONS, builtin_profile_for, builtin_profiles
from switchyard.api.manifests import ResourceSet
from switchyard.api.models import (
    PROVIDER_PROTOCOL,
    AssistantBinding,
    CapabilityProfile,
    CredentialRef,
    Limits,
    ModelSource,
    Pricing,
    Provider,
    Secret,
    TierRef,
    WireProtocol,
)
from switchyard.compiler.network import Refusal, check_base_url
from switchyard.sidecar.contract.config import (
    CompiledBinding,
    CompiledBreaker,
    CompiledConfig,
    CompiledLimits,
    CompiledPrice,
    CompiledKey,
    CompiledProfile,
    CompiledRateLimits,
    CompiledTier,
    CompiledTimeouts,
)
from switchyard.sidecar.contract.delivery import settle_aliases

# Reasons are CamelCase, as Kubernetes condition reasons are.
SOURCE_NOT_FOUND = "SourceNotFound"
SECRET_NOT_FOUND = "SecretNotFound"
SECRET_KEY_MISSING = "SecretKeyMissing"
SECRET_UNREADABLE = "SecretUnreadable"
ENV_NOT_SET = "EnvNotSet"
ENV_NOT_ALLOWED = "EnvCredentialNotAllowed"
MODEL_NOT_SET = "ModelNotSet"
MODEL_NOT_ALLOWED = "ModelNotAllowed"
MODEL_NOT_IN_CATALOG = "ModelNotInCatalog"
PROFILE_NOT_FOUND = "ProfileNotFound"
PROTOCOL_MISMATCH = "ProtocolMismatch"
SECRET_NOT_MARKED = "SecretNotMarked"
SECRET_RESERVED = "SecretReserved"


class CredentialRefused(KeyError):
    """Raised by a ``credentials`` lookup that will not read the named Secret at all (the
    operator's: a Secret not labelled ``switchyard.dev/credential: "true"``, or one that
    can never be a credential). The tier is unresolvable with ``reason`` and ``message``,
    which name the Secret and never hold its value."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message

AUTH_FOR_PROTOCOL = {
    WireProtocol.OPENAI_CHAT: "bearer",
    WireProtocol.ANTHROPIC_MESSAGES: "x-api-key",
    WireProtocol.GEMINI: "x-goog-api-key",
    WireProtocol.OPENAI_RESPONSES: "bearer",
}


@dataclass(frozen=True)
class KeyReport:
    """One key of a source with several (``credentialRefs``), by index: resolved, or why
    not (the reason and a message naming the Secret and key, never a value)."""

    index: int
    resolvable: bool
    reason: str | None = None
    message: str | None = None

    def as_status(self) -> dict[str, object]:
        """The key as status says it before any sidecar reports (``KeyStatus``)."""
        out: dict[str, object] = {"index": self.index, "state": "usable" if self.resolvable else "unresolvable"}
        if self.reason:
            out["reason"] = self.reason
            out["message"] = self.message
        return out


@dataclass(frozen=True)
class TierReport:
    index: int
    source: str
    model: str | None
    protocol: str | None
    resolvable: bool
    reason: str | None = None  # CamelCase, None when resolvable
    message: str | None = None
    incompatible: tuple[str, ...] = ()  # `requires` features this tier's profile lacks
    degradable: bool = False  # ... but allowed to serve degraded (allowDegrading + strip/map)
    keys: tuple[KeyReport, ...] = ()  # per key, for a source with several; () for one key

    def as_status(self) -> dict[str, object]:
        out: dict[str, object] = {
            "tier": self.index,
            "source": self.source,
            "model": self.model,
            "protocol": self.protocol,
            "resolvable": self.resolvable,
        }
        if self.reason:
            out["reason"] = self.reason
            out["message"] = self.message
        if self.incompatible:
            out["incompatible"] = list(self.incompatible)
            out["degradable"] = self.degradable
        if self.keys:
            out["keys"] = [k.as_status() for k in self.keys]
        return out


@dataclass(frozen=True)
class BindingReport:
    namespace: str
    name: str
    aliases: list[str]
    unbound: bool
    unbound_reason: str | None
    legacy_primary: bool  # the primary came from the deprecated boundCredential
    tiers: list[TierReport]
    alias_conflicts: list[str] = field(default_factory=list)  # "alias (taken by ns/other)"

    @property
    def resolved(self) -> bool:
        """Every tier of the chain is resolvable (an unbound binding is not resolved)."""
        return not self.unbound and bool(self.tiers) and all(t.resolvable for t in self.tiers)

    @property
    def compatible(self) -> bool:
        """No tier lacks what the binding's `requires` asks for."""
        return not any(t.incompatible for t in self.tiers)

    @property
    def servable(self) -> bool:
        """At least one tier can take traffic."""
        return not self.unbound and any(t.resolvable for t in self.tiers)


@dataclass(frozen=True)
class CompileResult:
    config: CompiledConfig
    reports: dict[tuple[str, str], BindingReport]


CredentialLookup = Callable[[str, str, str], str | None]
"""(namespace, secret name, key) -> value, or None when missing. Raises KeyError when the
Secret itself does not exist."""


def secrets_lookup(secrets: Iterable[Secret]) -> CredentialLookup:
    by_key = {(s.metadata.namespace, s.metadata.name): s for s in secrets}

    def lookup(namespace: str, name: str, key: str) -> str | None:
        secret = by_key.get((namespace, name))
        if secret is None:
            raise KeyError(name)
        return secret.value(key)

    return lookup


@dataclass
class _Ctx:
    sources: dict[tuple[str, str], ModelSource]
    profiles: dict[tuple[str, str], CapabilityProfile]
    credentials: CredentialLookup
    environ: Mapping[str, str] | None  # None = not standalone: env credentials refused
    catalogs: Mapping[tuple[str, str], frozenset[str]]
    # Per-compile memos of pure per-source/per-profile work: a thousand bindings share a
    # hundred sources and a handful of profiles (bench/operator_scale.py).
    url_checks: dict[tuple[str, bool, bool], Refusal | None] = field(default_factory=dict)
    flat_profiles: dict[int, CompiledProfile] = field(default_factory=dict)
    timeouts: dict[tuple[float, float, float], CompiledTimeouts] = field(default_factory=dict)
    prices: dict[int, CompiledPrice] = field(default_factory=dict)  # by id of the Pricing


def compile_config(
    resources: ResourceSet,
    *,
    credentials: CredentialLookup | None = None,
    standalone: bool = False,
    environ: Mapping[str, str] | None = None,
    primary_was_set: Callable[[AssistantBinding], bool] = lambda _b: False,
    only: Iterable[tuple[str, str]] | None = None,
    catalogs: Mapping[tuple[str, str], Iterable[str]] | None = None,
) -> CompileResult:
    """Compile every binding (or those in `only`, as (namespace, name)) into one config.

    `primary_was_set` tells whether a binding's `primary` was ever set (the operator
    remembers it in status), so a cleared primary stays cleared (promise 5).
    `catalogs` holds each source's live model list, keyed by (namespace, name), where known.

    The same as ``assemble_compiled(compile_bindings(...))``: the operator compiles each
    binding once and assembles each pod's config from them (``only`` = the bindings
    selecting the pod), with the same bytes and reports as this call.
    """
    return assemble_compiled(compile_bindings(
        resources, credentials=credentials, standalone=standalone, environ=environ,
        primary_was_set=primary_was_set, only=only, catalogs=catalogs,
    ))


BindingKey = tuple[str, str]  # (namespace, name)
CompiledBindings = Mapping[BindingKey, tuple[CompiledBinding, BindingReport]]


def compile_bindings(
    resources: ResourceSet,
    *,
    credentials: CredentialLookup | None = None,
    standalone: bool = False,
    environ: Mapping[str, str] | None = None,
    primary_was_set: Callable[[AssistantBinding], bool] = lambda _b: False,
    only: Iterable[tuple[str, str]] | None = None,
    catalogs: Mapping[tuple[str, str], Iterable[str]] | None = None,
) -> dict[BindingKey, tuple[CompiledBinding, BindingReport]]:
    """Each binding (or those in `only`) compiled on its own, with every alias it asks for
    and no alias conflict settled: a binding compiles the same whichever others share a
    config with it, so this is done once and ``assemble_compiled`` settles the aliases of
    each set. Arguments as ``compile_config``'s."""
    ctx = _Ctx(
        sources={(s.namespace, s.name): s for s in resources.sources},
        profiles={(p.namespace, p.name): p for p in resources.profiles},
        credentials=credentials or secrets_lookup(resources.secrets),
        environ=(environ if environ is not None else os.environ) if standalone else None,
        catalogs={k: frozenset(v) for k, v in (catalogs or {}).items()},
    )
    wanted = set(only) if only is not None else None
    # Filter before compiling: a per-pod compile names a few bindings out of thousands.
    chosen = resources.bindings if wanted is None else [b for b in resources.bindings if (b.namespace, b.name) in wanted]
    return {(b.namespace, b.name): _compile_binding(b, ctx, primary_was_set(b)) for b in chosen}


def alias_conflict(alias: str, owner: str) -> str:
    """How a report names an alias another binding took (``BindingReport.alias_conflicts``)."""
    return f"{alias} (taken by {owner})"


def settled_reports(compiled: CompiledBindings, keys: Iterable[BindingKey] | None = None) -> dict[BindingKey, BindingReport]:
    """The reports of the bindings `keys` (all: None) compiled into one config: each alias
    to the first binding by (namespace, name) that asks for it, the others' conflicts."""
    return _settle(compiled, keys)[1]


def assemble_compiled(compiled: CompiledBindings, keys: Iterable[BindingKey] | None = None) -> CompileResult:
    """One config of the bindings `keys` (all: None) out of ``compile_bindings``: in
    (namespace, name) order, each alias kept by the first binding that asks for it, the
    others reported as conflicts; versioned. What ``compile_config(only=keys)`` gives."""
    bindings, reports = _settle(compiled, keys)
    return CompileResult(config=CompiledConfig(bindings=bindings).with_version(), reports=reports)


def _settle(
    compiled: CompiledBindings, keys: Iterable[BindingKey] | None
) -> tuple[list[CompiledBinding], dict[BindingKey, BindingReport]]:
    chosen = compiled if keys is None else [k for k in set(keys) if k in compiled]
    settled, lost = settle_aliases(compiled[k][0] for k in chosen)
    reports: dict[BindingKey, BindingReport] = {}
    for cb in settled:
        key = (cb.namespace, cb.name)
        report = compiled[key][1]
        if key in lost:
            report = dataclasses.replace(
                report, aliases=cb.aliases, alias_conflicts=[alias_conflict(a, o) for a, o in lost[key]]
            )
        reports[key] = report
    return settled, reports


def _chain(binding: AssistantBinding, was_set: bool) -> tuple[list[TierRef], str | None, bool]:
    """The tiers a binding asks for: (tiers, unbound reason, legacy primary used)."""
    spec = binding.spec
    if spec.primary_set or was_set:
        if spec.primary is None:
            why = "PrimaryNull" if spec.primary_set else "PrimaryCleared"
            return [], why, False
        return [spec.primary, *spec.fallbacks], None, False
    legacy = spec.bound_credential
    if legacy is not None:
        primary = TierRef(sourceRef={"name": legacy}) if isinstance(legacy, str) else legacy
        return [primary, *spec.fallbacks], None, True
    return [], "PrimaryNotSet", False


def _compile_binding(binding: AssistantBinding, ctx: _Ctx, was_set: bool) -> tuple[CompiledBinding, BindingReport]:
    spec = binding.spec
    refs, unbound_reason, legacy = _chain(binding, was_set)
    tiers: list[CompiledTier] = []
    reports: list[TierReport] = []
    needed = spec.requires.needed() if spec.requires else {}
    for index, ref in enumerate(refs):
        tier, report = _compile_tier(index, ref, binding.namespace, ctx)
        if needed and tier.problem is None:
            tier, report = _check_requires(tier, report, needed, spec.allow_degrading)
        tiers.append(tier)
        reports.append(report)

    aliases = list(spec.aliases or [binding.name])  # every one asked for: settled per config (_settle)
    compiled = CompiledBinding(
        name=binding.name,
        namespace=binding.namespace,
        aliases=aliases,
        unbound=unbound_reason is not None,
        tiers=tiers,
        fallback_on=list(spec.fallback_on),
        breaker=CompiledBreaker(
            consecutive_failures=spec.breaker.consecutive_failures,
            cooldown_seconds=spec.breaker.cooldown_seconds,
            half_open_requests=spec.breaker.half_open_requests,
            probe=spec.breaker.probe,
            max_cooldown_seconds=spec.breaker.max_cooldown_seconds,
            max_retry_after_seconds=spec.breaker.max_retry_after_seconds,
        ),
        deadline_seconds=spec.deadline_seconds,
        callers=list(spec.callers) if spec.callers is not None else None,
        limits=_limits(spec.limits),
    )
    report = BindingReport(
        namespace=binding.namespace,
        name=binding.name,
        aliases=aliases,
        unbound=unbound_reason is not None,
        unbound_reason=unbound_reason,
        legacy_primary=legacy,
        tiers=reports,
    )
    return compiled, report


def _limits(limits: Limits | None) -> CompiledLimits | None:
    """spec.limits, or None when it limits nothing (an empty block is no limit)."""
    if limits is None:
        return None
    per = limits.per_caller
    per_caller = None
    if per is not None and per.is_set():
        per_caller = CompiledRateLimits(
            requests_per_minute=per.requests_per_minute, tokens_per_minute=per.tokens_per_minute,
            tokens_per_day=per.tokens_per_day,
        )
    if not limits.is_set() and per_caller is None:
        return None
    return CompiledLimits(
        requests_per_minute=limits.requests_per_minute, tokens_per_minute=limits.tokens_per_minute,
        tokens_per_day=limits.tokens_per_day, per_caller=per_caller,
    )


def missing_features(features: Mapping[str, object], needed: Mapping[str, bool | int]) -> list[str]:
    """The `requires` features a profile lacks (pure; also used by the admission warning)."""
    missing = []
    for feature, want in needed.items():
        have = features.get(feature)
        if feature in ("maxContextTokens", "maxOutputTokens"):
            # Unknown limits (unset in the profile) are not held against the tier.
            if have is not None and int(have) < int(want):  # type: ignore[call-overload]
                missing.append(f"{feature}>={want}")
        elif feature == "reasoning":
            if have in (None, "none"):
                missing.append(feature)
        elif not have:
            missing.append(feature)
    return missing


def _check_requires(
    tier: CompiledTier, report: TierReport, needed: Mapping[str, bool | int], allow_degrading: bool
) -> tuple[CompiledTier, TierReport]:
    missing = missing_features(tier.profile.features, needed)
    if not missing:
        return tier, report
    actions = [tier.profile.on_unsupported.get(m.split(">=")[0], "strip") for m in missing]
    degradable = allow_degrading and all(a in ("strip", "map") for a in actions)
    tier = tier.model_copy(update={"incompatible": missing, "degradable": degradable})
    return tier, dataclasses.replace(report, incompatible=tuple(missing), degradable=degradable)


def _problem_tier(index: int, ref: TierRef, reason: str, message: str, source: ModelSource | None) -> tuple[CompiledTier, TierReport]:
    provider = source.spec.provider if source else Provider.OPENAI_COMPATIBLE
    protocol = source.spec.effective_protocol.value if source else PROVIDER_PROTOCOL[provider].value
    tier = CompiledTier(
        index=index,
        source=ref.source_ref.name,
        provider=provider.value,
        protocol=protocol,
        base_url=(source.spec.effective_base_url if source else ""),
        model=ref.model or (source.spec.default_model if source else None) or "",
        profile=CompiledProfile(name="", protocol=protocol, features={}, on_unsupported={}),
        problem=f"{reason}: {message}",
    )
    report = TierReport(index, ref.source_ref.name, tier.model or None, protocol, False, reason, message)
    return tier, report


def _compile_tier(index: int, ref: TierRef, namespace: str, ctx: _Ctx) -> tuple[CompiledTier, TierReport]:
    name = ref.source_ref.name
    source = ctx.sources.get((namespace, name))
    if source is None:
        return _problem_tier(index, ref, SOURCE_NOT_FOUND, f"ModelSource {name} not found", None)
    spec = source.spec
    net = spec.network
    url_key = (spec.effective_base_url, bool(net and net.allow_link_local), bool(net and net.allow_insecure_http))
    if url_key in ctx.url_checks:
        refused = ctx.url_checks[url_key]
    else:
        refused = ctx.url_checks[url_key] = check_base_url(
            url_key[0], allow_link_local=url_key[1], allow_insecure_http=url_key[2]
        )
    if refused is not None:
        return _problem_tier(index, ref, refused.reason, refused.message, source)

    model = ref.model or spec.default_model
    if not model:
        return _problem_tier(
            index, ref, MODEL_NOT_SET, f"tier names no model and ModelSource {name} has no defaultModel", source
        )
    if spec.models is not None and model not in spec.models:
        return _problem_tier(
            index, ref, MODEL_NOT_ALLOWED, f"model {model} is not in ModelSource {name}'s models allow-list", source
        )
    catalog = ctx.catalogs.get((namespace, name))
    if catalog is not None and model not in catalog:
        return _problem_tier(
            index, ref, MODEL_NOT_IN_CATALOG, f"model {model} is not in the live catalog of ModelSource {name}", source
        )

    profile, why = _profile_for(spec, model, namespace, ctx)
    if profile is None:
        return _problem_tier(index, ref, PROFILE_NOT_FOUND, why, source)
    # The source's protocol: spec.protocol, else the provider's default. An
    # openai-compatible source that names none takes its profile's (how such a source
    # chose Responses before spec.protocol existed, and still may).
    expected = spec.effective_protocol
    protocol = profile.spec.protocol
    if protocol != expected and (spec.provider != Provider.OPENAI_COMPATIBLE or spec.protocol is not None):
        speaks = "is set to speak" if spec.protocol is not None else "speaks"
        return _problem_tier(
            index,
            ref,
            PROTOCOL_MISMATCH,
            f"CapabilityProfile {profile.name} speaks {protocol.value} but provider {spec.provider.value} {speaks} {expected.value}",
            source,
        )

    crefs = spec.credentials
    credential: str | None = None
    keys: list[CompiledKey] | None = None
    key_reports: tuple[KeyReport, ...] = ()
    if len(crefs) == 1:
        credential, reason, message = _resolve_key(crefs[0], namespace, ctx)
        if reason is not None:
            return _problem_tier(index, ref, reason, message or "", source)
    elif crefs:
        resolved = [(i, *_resolve_key(c, namespace, ctx)) for i, c in enumerate(crefs)]
        keys = [
            CompiledKey(index=i, credential=value, problem=f"{why}: {msg}" if why else None)  # type: ignore[arg-type]
            for i, value, why, msg in resolved
        ]
        key_reports = tuple(KeyReport(i, why is None, why, msg) for i, _v, why, msg in resolved)
        credential = next((value for _i, value, why, _m in resolved if why is None), None)
        if credential is None:
            first = resolved[0][2] or SECRET_KEY_MISSING
            every = "; ".join(f"key {i}: {msg}" for i, _v, _w, msg in resolved)
            tier, report = _problem_tier(index, ref, first, f"no key of ModelSource {name} resolves: {every}", source)
            return tier, dataclasses.replace(report, keys=key_reports)

    flat = ctx.flat_profiles.get(id(profile))  # a CompiledProfile is frozen: tiers share it
    if flat is None:
        flat = ctx.flat_profiles[id(profile)] = _flatten(profile)
    t = spec.timeouts
    timeouts = ctx.timeouts.get((t.connect_seconds, t.first_byte_seconds, t.total_seconds))
    if timeouts is None:
        timeouts = ctx.timeouts[(t.connect_seconds, t.first_byte_seconds, t.total_seconds)] = CompiledTimeouts(
            connect_seconds=t.connect_seconds, first_byte_seconds=t.first_byte_seconds, total_seconds=t.total_seconds
        )
    tier = CompiledTier(
        index=index,
        source=name,
        provider=spec.provider.value,
        protocol=protocol.value,
        base_url=spec.effective_base_url,
        model=model,
        auth=AUTH_FOR_PROTOCOL[protocol] if credential else "none",
        credential=credential,
        headers=dict(spec.headers),
        timeouts=timeouts,
        profile=flat,
        allow_link_local=url_key[1],
        max_connections=net.max_connections if net else 256,
        pricing=_price_for(spec, model, profile, ctx),
        keys=keys,
    )
    return tier, TierReport(index, name, model, protocol.value, True, keys=key_reports)


def _resolve_key(cref: CredentialRef, namespace: str, ctx: _Ctx) -> tuple[str | None, str | None, str | None]:
    """One credential reference: (value, None, None), or (None, reason, message) naming
    the Secret or variable at fault, never a value."""
    if cref.env is not None:
        if ctx.environ is None:
            return None, ENV_NOT_ALLOWED, "credentialRef.env is for standalone mode only; use a Secret"
        value = ctx.environ.get(cref.env) or None
        if value is None:
            return None, ENV_NOT_SET, f"environment variable {cref.env} is not set"
        return value, None, None
    assert cref.name is not None and cref.key is not None
    try:
        value = ctx.credentials(namespace, cref.name, cref.key)
    except CredentialRefused as e:
        return None, e.reason, e.message
    except KeyError:
        return None, SECRET_NOT_FOUND, f"Secret {cref.name} not found"
    except ValueError:
        return None, SECRET_UNREADABLE, f"Secret {cref.name} key {cref.key} is not valid base64"
    if not value:
        return None, SECRET_KEY_MISSING, f"Secret {cref.name} has no key {cref.key}"
    return value, None, None


def _matches(pattern: str, model: str) -> bool:
    return pattern == model or (pattern.endswith("*") and model.startswith(pattern[:-1]))


def _price_for(spec, model: str, profile: CapabilityProfile, ctx: _Ctx) -> CompiledPrice | None:
    """The tier's price: the source's first `pricing` entry matching the model, else the
    profile's `pricing`, else none (docs/usage-and-cost.md)."""
    declared: Pricing | None = next((p for p in spec.pricing if _matches(p.model, model)), None)
    if declared is None:
        declared = profile.spec.pricing
    if declared is None:
        return None
    compiled = ctx.prices.get(id(declared))
    if compiled is None:
        compiled = ctx.prices[id(declared)] = compiled_price(declared)
    return compiled


_MILLIONTH = Decimal("0.000001")


def _millionths(value: float) -> int:
    """A declared price in integer millionths: read as written (``Decimal(str(...))``, so
    0.075 is 75000, not a binary fraction's neighbour), six decimals, half to even."""
    return int((Decimal(str(value)) / _MILLIONTH).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def compiled_price(p: Pricing) -> CompiledPrice:
    """A declared price as the sidecar's contract holds it; unset cache prices are the input price."""
    base = _millionths(p.input_per_million)
    return CompiledPrice(
        currency=p.currency,
        input=base,
        output=_millionths(p.output_per_million),
        cached_input=_millionths(p.cached_input_per_million) if p.cached_input_per_million is not None else base,
        cache_write=_millionths(p.cache_write_per_million) if p.cache_write_per_million is not None else base,
    )


def _profile_for(spec, model: str, namespace: str, ctx: _Ctx) -> tuple[CapabilityProfile | None, str]:
    ref_name: str | None = None
    for mp in spec.model_profiles:
        if _matches(mp.model, model):
            ref_name = mp.capability_profile_ref.name
            break
    if ref_name is None and spec.capability_profile_ref is not None:
        ref_name = spec.capability_profile_ref.name
    if ref_name is None:
        ref_name = builtin_profile_for(spec.provider, spec.effective_protocol)
    profile = ctx.profiles.get((namespace, ref_name)) or builtin_profiles().get(ref_name)
    if profile is None:
        return None, f"CapabilityProfile {ref_name} not found"
    return profile, ""


def _flatten(profile: CapabilityProfile) -> CompiledProfile:
    features = profile.spec.features.model_dump(by_alias=True, mode="json")
    actions = {name: action.value for name, action in DEFAULT_ACTIONS.items()}
    actions.update({name: action.value for name, action in profile.spec.on_unsupported.items()})
    return CompiledProfile(
        name=profile.name,
        protocol=profile.spec.protocol.value,
        features=features,
        on_unsupported=actions,  # type: ignore[arg-type]
    )
