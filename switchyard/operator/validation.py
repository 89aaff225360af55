"""The apply-time check of an AssistantBinding: admission warnings, never a refusal. Pure.

The validating admission webhook (``main.validate_binding``) hands the incoming binding
and what the operator's indexes hold for its namespace (ModelSources, CapabilityProfiles,
which Secret keys exist, the live catalogs) to ``binding_warnings``, which compiles that
one binding with the same compiler as the reconciler and returns one warning per problem
a user would otherwise discover only in ``status`` or in production:

- a tier that does not resolve (``SourceNotFound``, ``SecretNotFound``, ``ModelNotInCatalog``...);
- a tier whose CapabilityProfile lacks what ``spec.requires`` asks for (requests will skip it,
  or it serves degraded when ``allowDegrading`` allows).

``kubectl apply`` prints each as ``Warning: switchyard: ...``. Nothing here decides whether
the object is admitted: the webhook always allows (and is registered with
``failurePolicy: Ignore``), so a bug or an outage here never blocks an apply.

Secret values never enter this module: the credential lookup answers from the Secret's
key names only (a placeholder stands in for the value; the compiled config is thrown away).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from switchyard.api.manifests import ResourceSet, parse_document
from switchyard.api.models import AssistantBinding, CapabilityProfile, ModelSource
from switchyard.compiler.compile import BindingReport, TierReport, compile_config

PREFIX = "switchyard: "
MAX_WARNING = 256  # the API server cuts each warning at 256 characters; say the important part first
PLACEHOLDER = "present"  # stands in for a credential that exists (the value is never read)

SecretKeys = Callable[[str], Mapping[str, bool] | None]
"""Secret name -> {key: has a non-empty value}, or None when the Secret does not exist."""


def _cut(text: str) -> str:
    return text if len(text) <= MAX_WARNING else text[: MAX_WARNING - 1] + "…"


def _label(t: TierReport) -> str:
    return f"tier{t.index} ({t.source}/{t.model})" if t.model else f"tier{t.index} ({t.source})"


def report_warnings(report: BindingReport) -> list[str]:
    """One warning per unresolvable or incompatible tier of a compiled binding, and per
    unusable key of a tier whose source has several."""
    out = []
    for t in report.tiers:
        if not t.resolvable:
            out.append(_cut(f"{PREFIX}{_label(t)} is unresolvable: {t.reason}: {t.message}"))
        elif t.incompatible:
            then = ("it will serve degraded (allowDegrading)" if t.degradable else "requests will skip this tier")
            out.append(_cut(f"{PREFIX}{_label(t)} lacks {', '.join(t.incompatible)} (spec.requires): {then}"))
        if t.resolvable:  # a source with several keys: one that does not resolve is named by index
            for k in t.keys:
                if not k.resolvable:
                    out.append(_cut(f"{PREFIX}{_label(t)} key {k.index} is unusable: {k.reason}: {k.message}; "
                                    "the tier serves with its other keys"))
    return out


def _lookup(namespace: str, secret_keys: SecretKeys) -> Callable[[str, str, str], str | None]:
    def lookup(ns: str, name: str, key: str) -> str | None:
        keys = secret_keys(name) if ns == namespace else None
        if keys is None:
            raise KeyError(name)
        return PLACEHOLDER if keys.get(key) else None

    return lookup


def binding_warnings(
    binding: Mapping[str, Any],
    *,
    sources: Iterable[Mapping[str, Any]],
    profiles: Iterable[Mapping[str, Any]],
    secret_keys: SecretKeys,
    catalogs: Mapping[tuple[str, str], Iterable[str]],
    primary_was_set: bool,
) -> list[str]:
    """Warnings for one AssistantBinding manifest against its namespace's objects (manifests)."""
    res, errs = parse_document(dict(binding), file="AssistantBinding")
    if not isinstance(res, AssistantBinding):
        why = f"{errs[0].field}: {errs[0].message}" if errs and errs[0].field else (errs[0].message if errs else "")
        return [_cut(f"{PREFIX}the spec does not validate: {why or 'not an AssistantBinding'}")]
    parsed_sources: list[ModelSource] = []
    invalid_sources: dict[str, str] = {}
    for doc in sources:
        src, src_errs = parse_document(dict(doc), file="ModelSource")
        if isinstance(src, ModelSource):
            parsed_sources.append(src)
        else:
            name = str((doc.get("metadata") or {}).get("name", ""))
            invalid_sources[name] = src_errs[0].message if src_errs else "the spec does not validate"
    parsed_profiles = [p for doc in profiles if isinstance(p := parse_document(dict(doc), file="CapabilityProfile")[0], CapabilityProfile)]
    rs = ResourceSet(sources=parsed_sources, profiles=parsed_profiles, bindings=[res])
    result = compile_config(
        rs,
        credentials=_lookup(res.namespace, secret_keys),
        primary_was_set=lambda _b: primary_was_set,
        only=[(res.namespace, res.name)],
        catalogs=catalogs,
    )
    report = result.reports[(res.namespace, res.name)]
    if invalid_sources:
        tiers = [
            dataclasses.replace(t, message=f"ModelSource {t.source} is invalid: {invalid_sources[t.source]}")
            if t.reason == "SourceNotFound" and t.source in invalid_sources else t
            for t in report.tiers
        ]
        report = dataclasses.replace(report, tiers=tiers)
    return report_warnings(report)
