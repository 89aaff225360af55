"""The operator's planning for one namespace, pure: what each sidecar should run, and what
each resource's status should say.

The reconciler (``reconciler.py``) keeps the work queue and every I/O: it reads the
indexes and Secrets, pushes configs, reads the sidecars' reports, resets disabled tiers,
writes status and posts Events. Between those steps it asks this module, in two calls:

``plan_configs(NamespaceInputs) -> ConfigPlan``
    parse the namespace's sources, profiles and bindings (a spec the models refuse is
    reported, never raised); compile each binding once with the compiler
    (``switchyard.compiler.compile_bindings``), for its status chain and the namespace's
    config bundle; find the bindings selecting each sidecar pod through an index
    (``selection.SelectorIndex``) and assemble each distinct set's config from the
    compiled bindings, as its sidecar does from the bundle (the same bytes as compiling
    the set with ``compile_config(only=...)``); say which pods cannot be
    configured and why (not injected, no address, no admin token), and which must be
    pushed: those whose sidecar does not run the version planned for them (``running``,
    what the reconciler remembers of earlier pushes and reports).

``plan_statuses(NamespaceInputs, ConfigPlan, outcomes, previous, now) -> StatusPlan``
    after the pushes: from each pod's outcome (its report, ``switchyard.sidecar.contract
    .report``, whether it runs its planned version, its problem), each binding's desired
    ``.status`` (``status.binding_status``) with its tier health (``health.aggregate``) for
    the Events, and each profile's.

No I/O, no clock (``now`` is an argument), no memory between calls, no mutation of the
arguments: the same inputs give the same plan, and tests need no cluster
(``tests/unit/operator/test_operator_plan.py``). When to push (backoff after failures) and when a
binding's generation change calls for a reset stay with the reconciler's memory
(``push.PushMemory``), which is also where ``running`` comes from.

Secret values come in (``secrets``: the data of the referenced Secrets, base64 as the API
gives them) and go out only inside the compiled configs (``SecretStr``) and
``ConfigPlan.admin_token`` (kept out of ``repr``); statuses and problems name Secrets and
keys, never values.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from switchyard.api.manifests import ResourceSet, parse_document
from switchyard.api.models import AssistantBinding
from switchyard.compiler.compile import BindingReport, CompiledBindings, compile_bindings, settled_reports
from switchyard.sidecar.contract.config import CompiledConfig
from switchyard.sidecar.contract.delivery import (
    BundleEntry,
    ConfigBundle,
    Selector,
    SelectorRequirement,
    assemble_bindings,
)
from switchyard.sidecar.contract.report import SidecarReport

from .credentials import refusal
from .health import BindingHealth, aggregate, aggregate_limits
from .selection import PodInfo, SelectorIndex
from .status import BindingInputs, PodProblem, PodsView, binding_status, profile_status, prune
from .world import Snap

PodKey = tuple[str, str]  # (namespace, name)


# --------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class AdminTokenRef:
    """Where the sidecars' admin token lives in each namespace (settings.SidecarSettings)."""

    secret: str = "switchyard-admin-token"
    key: str = "token"


@dataclass(frozen=True)
class NamespaceInputs:
    """Everything the plan of one namespace depends on, as plain data."""

    namespace: str
    sources: Sequence[Snap] = ()
    profiles: Sequence[Snap] = ()
    bindings: Sequence[Snap] = ()
    pods: Sequence[PodInfo] = ()  # sidecar pods, not being deleted
    # The data of the Secrets the namespace's sources reference (and the admin token's),
    # by name, values base64 as the API gives them. A Secret absent here does not exist.
    secrets: Mapping[str, Mapping[str, str]] = field(default_factory=dict, repr=False)
    catalogs: Mapping[str, frozenset[str]] = field(default_factory=dict)  # source -> live model ids
    running: Mapping[PodKey, str | None] = field(default_factory=dict)  # pod -> config version it runs
    admin_token: AdminTokenRef = field(default_factory=AdminTokenRef)
    # How configs reach the sidecars: "secret" (the namespace's config Secret, mounted;
    # no admin token needed) or "push" (PUT /admin/config with the token; dev only).
    delivery: str = "secret"


# --------------------------------------------------------------------------- config plan


@dataclass(frozen=True)
class Push:
    """Give ``pod`` this config: its sidecar does not run this version."""

    pod: PodInfo
    config: CompiledConfig
    running: str | None  # what it runs now, as far as the reconciler knows

    @property
    def version(self) -> str:
        return self.config.version


@dataclass(frozen=True)
class ConfigPlan:
    reports: Mapping[str, BindingReport]  # every binding that parses, by name: its chain
    invalid_sources: Mapping[str, str]  # name -> why the spec does not validate
    invalid_profiles: Mapping[str, str]
    invalid_bindings: Mapping[str, str]
    requires: Mapping[str, bool]  # binding -> its spec.requires asks for something
    pod_bindings: Mapping[PodKey, frozenset[str]]  # the bindings selecting each pod
    configs: Mapping[PodKey, CompiledConfig]  # what each pod's sidecar should run
    alias_conflicts: Mapping[str, tuple[str, ...]]  # binding -> aliases another binding of a shared pod has
    blocked: Mapping[PodKey, PodProblem]  # pods that cannot be configured now, and why
    pushes: tuple[Push, ...]  # pods to configure (not blocked), in pod order
    bundle: ConfigBundle | None = field(default=None, repr=False)  # the namespace's config Secret content
    admin_token: str | None = field(default=None, repr=False)  # for the admin calls; None: missing


def first_error(errs: list[Any]) -> str:
    e = errs[0]
    return f"{e.field}: {e.message}" if e.field else e.message


def parse(snaps: Sequence[Snap]) -> tuple[list[Any], dict[str, str]]:
    """The resources that validate, and why each other one does not."""
    ok, invalid = [], {}
    for snap in snaps:
        res, errs = parse_document(snap.manifest(), file=f"{snap.kind}/{snap.name}")
        if res is None:
            invalid[snap.name] = first_error(errs) if errs else "not a valid object"
        else:
            ok.append(res)
    return ok, invalid


def credential_lookup(
    ns: str, secrets: Mapping[str, Mapping[str, str]], reserved: frozenset[str] = frozenset()
) -> Callable[[str, str, str], str | None]:
    """The compiler's ``credentials`` callable over the namespace's Secret data. A Secret
    absent from ``secrets`` was not among the marked ones (credentials.py): the tier is
    ``SecretNotMarked``; a ``reserved`` one (the admin token) is ``SecretReserved``."""

    def lookup(namespace: str, name: str, key: str) -> str | None:
        if namespace != ns:
            raise KeyError(name)
        refused = refusal(name, ns, reserved=reserved, known=name in secrets)
        if refused is not None:
            raise refused
        data = secrets[name]
        raw = data.get(key)
        return None if raw is None else base64.b64decode(raw, validate=True).decode()

    return lookup


def admin_token(secrets: Mapping[str, Mapping[str, str]], ref: AdminTokenRef) -> str | None:
    raw = (secrets.get(ref.secret) or {}).get(ref.key)
    if not raw:
        return None
    try:
        return base64.b64decode(raw, validate=True).decode().strip() or None
    except ValueError:
        return None


def explain_invalid_sources(report: BindingReport, bad: Mapping[str, str]) -> BindingReport:
    """A tier whose source exists but does not validate says so, not "not found"."""
    if not bad:
        return report
    tiers = [
        replace(t, message=f"ModelSource {t.source} is invalid: {bad[t.source]}")
        if t.reason == "SourceNotFound" and t.source in bad else t
        for t in report.tiers
    ]
    return replace(report, tiers=tiers)


def blocked(pod: PodInfo, token: str | None, ref: AdminTokenRef, *, needs_token: bool = True) -> PodProblem | None:
    """Why this pod's sidecar cannot be given a config now (None: it can). ``needs_token``:
    push mode (the token rides with the config); the Secret delivery needs none."""
    if not pod.injected:
        return PodProblem(pod.name, "NotInjected",
                          "asked for the sidecar but has no switchyard container (created while the webhook was down?)")
    if pod.admin_url is None:
        return PodProblem(pod.name, "NoAddress", f"pod is {pod.phase or 'not running'} without an IP yet")
    if token is None and needs_token:
        return PodProblem(pod.name, "AdminTokenMissing",
                          f"Secret {ref.secret} (key {ref.key}) not found in namespace {pod.namespace}")
    return None


def plan_configs(inp: NamespaceInputs) -> ConfigPlan:
    """What every sidecar pod of the namespace should run, and which need a push."""
    ns = inp.namespace
    sources, bad_sources = parse(inp.sources)
    profiles, bad_profiles = parse(inp.profiles)
    bindings, bad_bindings = parse(inp.bindings)
    rs = ResourceSet(sources=sources, profiles=profiles, bindings=bindings)
    lookup = credential_lookup(ns, inp.secrets, frozenset({inp.admin_token.secret}))
    cats = {(ns, name): ids for name, ids in inp.catalogs.items()}
    was_set = {b.name: b.primary_evidence or bool(b.status.get("primaryConfigured")) for b in inp.bindings}

    def primary_was_set(b: AssistantBinding) -> bool:
        return was_set.get(b.name, False)

    # Each binding compiled once (a binding compiles the same in whatever set it is);
    # the namespace's reports and every pod's config are assembled from these.
    compiled = compile_bindings(rs, credentials=lookup, primary_was_set=primary_was_set, catalogs=cats)
    reports = {name: explain_invalid_sources(r, bad_sources) for (_, name), r in settled_reports(compiled).items()}
    bundle = build_bundle(ns, bindings, compiled, {b.name: b.generation for b in inp.bindings})
    in_bundle = {e.binding.name: e.binding for e in bundle.bindings}

    # Each pod's config: the bindings that select it (found through the index, not by
    # testing every selector against every pod), assembled the way its sidecar assembles
    # them from the bundle and its labels (``assemble_bindings``, the function
    # ``delivery.assemble`` calls), so the versions agree by construction. Pods with the
    # same set share one config; each set's alias conflicts are the compiler's reports.
    index = SelectorIndex((b.name, b.spec.selector) for b in bindings)
    by_set: dict[frozenset[str], CompiledConfig] = {}
    pod_bindings: dict[PodKey, frozenset[str]] = {}
    conflicts: dict[str, set[str]] = {}
    for pod in inp.pods:
        names = frozenset(index.selecting(pod.labels))
        pod_bindings[pod.key] = names
        if names not in by_set:
            by_set[names] = assemble_bindings(in_bundle[n] for n in names if n in in_bundle)
            for (_, bname), rep in settled_reports(compiled, [(ns, n) for n in names]).items():
                conflicts.setdefault(bname, set()).update(rep.alias_conflicts)
    configs: dict[PodKey, CompiledConfig] = {p.key: by_set[pod_bindings[p.key]] for p in inp.pods}
    bundle = with_shares(bundle, inp.pods, pod_bindings)

    token = admin_token(inp.secrets, inp.admin_token)
    stuck: dict[PodKey, PodProblem] = {}
    pushes: list[Push] = []
    for pod in inp.pods:
        problem = blocked(pod, token, inp.admin_token, needs_token=inp.delivery == "push")
        if problem is not None:
            stuck[pod.key] = problem
        elif inp.running.get(pod.key) != configs[pod.key].version:
            pushes.append(Push(pod, configs[pod.key], inp.running.get(pod.key)))

    return ConfigPlan(
        reports=reports,
        invalid_sources=bad_sources,
        invalid_profiles=bad_profiles,
        invalid_bindings=bad_bindings,
        requires={b.name: bool(b.spec.requires and b.spec.requires.needed()) for b in bindings},
        pod_bindings=pod_bindings,
        configs=configs,
        alias_conflicts={name: tuple(sorted(c)) for name, c in conflicts.items()},
        blocked=stuck,
        pushes=tuple(pushes),
        bundle=bundle,
        admin_token=token,
    )


def build_bundle(
    ns: str, bindings: Sequence[AssistantBinding], compiled: CompiledBindings, generations: Mapping[str, int | None]
) -> ConfigBundle:
    """Every binding of the namespace with its selector, each with all the aliases it asks
    for (``compile_bindings`` leaves them unsettled; ``assemble`` settles conflicts per
    pod, as the compiler does) and its generation."""
    entries = []
    for b in sorted(bindings, key=lambda b: b.name):
        found = compiled.get((ns, b.name))
        if found is None:
            continue
        cb = found[0]
        generation = generations.get(b.name)
        sel = b.spec.selector
        entries.append(BundleEntry(
            selector=Selector(
                match_labels=dict(sel.match_labels),
                match_expressions=[SelectorRequirement(key=r.key, operator=r.operator, values=list(r.values))
                                   for r in sel.match_expressions],
            ),
            binding=cb if cb.generation == generation else cb.model_copy(update={"generation": generation}),
        ))
    return ConfigBundle(namespace=ns, bindings=entries).with_version()


def with_shares(bundle: ConfigBundle, pods: Sequence[PodInfo], pod_bindings: Mapping[PodKey, frozenset[str]]) -> ConfigBundle:
    """The bundle with how many pods serve each binding that has ``spec.limits``: each
    sidecar enforces limit / pods (docs/limits.md). Pods that carry no sidecar are not
    counted; pods not yet running are (they are about to serve: counting them early keeps
    the fleet under the limit while they start). Bindings without limits are not listed,
    so scaling them never rewrites the config Secret; the count is in no pod's config
    (``assemble`` leaves it out), so a scale event changes no pod's config version."""
    limited = {e.binding.name for e in bundle.bindings if e.binding.limits is not None}
    if not limited:
        return bundle
    counts = dict.fromkeys(sorted(limited), 0)
    for p in pods:
        if p.injected:
            for name in pod_bindings.get(p.key, ()):
                if name in counts:
                    counts[name] += 1
    counts = {name: n for name, n in counts.items() if n}
    return bundle.model_copy(update={"pods": counts}).with_version() if counts else bundle


# --------------------------------------------------------------------------- status plan


@dataclass(frozen=True)
class PodOutcome:
    """What the reconciler's I/O found for one pod, after the pushes."""

    report: SidecarReport | None = None  # its sidecar's report; None: not read (blocked, unreachable, unreadable)
    runs_planned: bool = False  # its sidecar runs the config version planned for it
    problem: PodProblem | None = None  # the last problem with it, if any


@dataclass(frozen=True)
class BindingPlan:
    status: dict[str, Any]  # the desired .status, pruned (what to compare and patch)
    report: BindingReport | None  # None: the spec does not validate
    health: BindingHealth  # from the selected pods' reports (for the Events)
    selected: int  # sidecar pods the binding selects


@dataclass(frozen=True)
class StatusPlan:
    bindings: Mapping[str, BindingPlan]
    profiles: Mapping[str, dict[str, Any]]  # the desired .status, pruned


PENDING = "config push pending"


def plan_binding(
    snap: Snap,
    plan: ConfigPlan,
    pods: Sequence[PodInfo],
    outcomes: Mapping[PodKey, PodOutcome],
    previous: Mapping[str, Any],
    now: float,
    selected: Sequence[PodInfo] | None = None,
) -> BindingPlan:
    """``selected``: the pods of ``pods`` the binding selects, when the caller knows them
    (``plan_statuses`` does, for every binding at once); else found from the plan."""
    report = plan.reports.get(snap.name)
    if selected is None:
        selected = [p for p in pods if snap.name in plan.pod_bindings.get(p.key, ())]
    none = PodOutcome()
    runs = [outcomes.get(p.key, none).runs_planned for p in selected]
    configured = [p for p, ok in zip(selected, runs, strict=True) if ok]
    problems = tuple(
        outcomes.get(p.key, none).problem or PodProblem(p.name, "Pending", PENDING)
        for p, ok in zip(selected, runs, strict=True) if not ok
    )
    reports = [r for p in selected if (r := outcomes.get(p.key, none).report) is not None]
    health = aggregate(report, reports) if report is not None else BindingHealth()
    limits = aggregate_limits(snap.namespace, snap.name, reports, now=now) if report is not None else None
    inputs = BindingInputs(
        name=snap.name,
        generation=snap.generation,
        previous=dict(previous),
        primary_evidence=snap.primary_evidence,
        report=report,
        invalid_message=plan.invalid_bindings.get(snap.name),
        health=health,
        pods=PodsView(selected=len(selected), configured=len(configured), problems=problems),
        alias_conflicts=plan.alias_conflicts.get(snap.name, ()),
        requires=plan.requires.get(snap.name, False),
        limits=limits,
    )
    return BindingPlan(prune(binding_status(inputs, now=now)), report, health, len(selected))


def plan_statuses(
    inp: NamespaceInputs,
    plan: ConfigPlan,
    outcomes: Mapping[PodKey, PodOutcome],
    previous: Mapping[str, Mapping[str, Any]],
    *,
    now: float,
) -> StatusPlan:
    """Each binding's and profile's desired status. ``previous``: each binding's status as
    last known (the index, or what the reconciler wrote since; absent: the index's)."""
    selected: dict[str, list[PodInfo]] = {}  # binding -> the pods it selects, in pod order
    for p in inp.pods:
        for name in plan.pod_bindings.get(p.key, ()):
            selected.setdefault(name, []).append(p)
    return StatusPlan(
        bindings={
            b.name: plan_binding(b, plan, inp.pods, outcomes, previous.get(b.name, b.status), now, selected.get(b.name, []))
            for b in inp.bindings
        },
        profiles={
            p.name: prune(profile_status(p.generation, plan.invalid_profiles.get(p.name), p.status, now=now))
            for p in inp.profiles
        },
    )
