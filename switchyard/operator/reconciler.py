"""The control loop: namespaces and catalogs through one work queue, written by the leader.

Two kinds of work, both idempotent and level-based (they recompute from the indexes,
whatever event woke them):

``("ns", namespace)`` - reconcile a namespace:
  1. read its indexes and referenced Secrets, and ask the planner (``plan.py``, pure)
     for each pod's config: every resource parsed (a spec the model refuses is reported,
     never crashed on) and compiled with the compiler, unchanged; which pods to push;
  2. push each planned pod's config (unless it is backing off after a failure, see
     ``push.PushMemory``), then read every sidecar's ``/admin/status`` (concurrently,
     bounded timeouts, shared semaphore);
  3. when a binding's generation changed since its pod last ran it, reset the tiers that
     pod's sidecar had disabled for a permanent failure (``POST .../reset?tier=N``, once
     the new config runs there): "disabled until the binding changes"; then share tier
     health: what a pod saw itself (a key rate-limited until T, refused) goes to the other
     pods that run that source and model (``sharing.py``, signed ``PUT /admin/health``);
  4. ask the planner for each binding's and profile's status from what the pods answered,
     write it through the status subresource when it changed, and post Events for health
     transitions (rate-limited).
``("catalog", namespace, name)`` - refresh one ModelSource's catalog and credential check,
  write its status, and re-reconcile the namespace when the catalog changed.

Events from kopf's watches only enqueue keys (see ``main.py``); a resync timer enqueues
every namespace now and then, and pods with sidecars every ``health_interval_seconds``.
Only the leader works the queue (``leader.py``); a standby keeps its indexes warm.

``check_binding`` serves the validating admission webhook (both replicas): it reads the
same indexes and returns warnings from ``validation``; it writes nothing.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from switchyard.api.manifests import parse_document
from switchyard.api.models import CredentialRef, ModelSource
from switchyard.compiler.network import check_base_url
from switchyard.netguard.resolver import GuardedResolver
from switchyard.sidecar.contract.config import CompiledConfig
from switchyard.sidecar.contract.delivery import (
    BUNDLE_KEY,
    CONFIG_SECRET,
    CONFIG_VERSION_ANNOTATION,
    MANAGED_BY,
    ConfigBundle,
)
from switchyard.sidecar.contract.report import SidecarReport

from . import catalog as catalogs
from . import sharing
from . import validation
from .conditions import rfc3339
from .credentials import CredentialRefused, refusal
from .events import WARNING, EventLimiter, EventSpec, HealthMemo, health_events
from .health import disabled_tiers
from .kube import Kube, KubeError
from .metrics import METRICS, OperatorMetrics
from .plan import (
    AdminTokenRef,
    BindingPlan,
    NamespaceInputs,
    PodOutcome,
    admin_token,
    first_error,
    plan_configs,
    plan_statuses,
)
from .push import AdminTimeouts, PushMemory, get_status, put_config, put_health, reset_tier
from .selection import PodInfo
from .settings import COMPONENT, Settings
from .status import PodProblem, merge_patch, prune, source_status
from .workqueue import WorkQueue
from .world import Snap, World, snapshot

log = logging.getLogger("switchyard.operator")

Key = tuple[str, ...]
WATCH_LAG_SECONDS = 10.0  # trust a status this process wrote over the index for this long
STATUS_RETRY_SECONDS = 2.0  # a namespace with a failed status write is reconciled again after this
MAX_BUNDLE_BYTES = 1_000_000  # a Secret holds at most 1 MiB of data
PLURAL = {"AssistantBinding": "assistantbindings", "ModelSource": "modelsources", "CapabilityProfile": "capabilityprofiles"}


@dataclass(frozen=True)
class CatalogRecord:
    ids: frozenset[str]
    listed: tuple[str, ...]
    count: int
    fetched_at: float  # wall clock
    generation: int | None


def _label(source: str, model: str | None) -> str:
    return f"{source}/{model}" if model else source


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class Reconciler:
    def __init__(
        self,
        settings: Settings,
        world: World,
        kube: Kube,
        *,
        wall: Callable[[], float] = time.time,
        mono: Callable[[], float] = time.monotonic,
    ) -> None:
        self.s = settings
        self.world = world
        self.kube = kube
        self.wall = wall
        self.mono = mono
        self.queue: WorkQueue[Key] = WorkQueue(min_interval_seconds=settings.min_reconcile_interval_seconds, clock=mono)
        self.pushes = PushMemory(
            backoff_initial_seconds=settings.push.backoff_initial_seconds,
            backoff_max_seconds=settings.push.backoff_max_seconds,
        )
        self.limiter = EventLimiter(
            min_interval_seconds=settings.events.min_interval_seconds,
            burst=settings.events.burst,
            refill_seconds=settings.events.refill_seconds,
        )
        self.timeouts = AdminTimeouts(settings.push.connect_timeout_seconds, settings.push.request_timeout_seconds)
        self.health_memo: dict[tuple[str, str], HealthMemo] = {}
        self.hints = sharing.HintMemory()  # shared tier health: what each pod was last told
        self.hint_sends = 0  # hint sets sent (for tests and the fleet bench)
        self.catalogs: dict[tuple[str, str], CatalogRecord] = {}
        # (kind, ns, name) -> (uid, status written, when): bridges the watch's lag after a write
        self.written: dict[tuple[str, str, str], tuple[str, dict[str, Any], float]] = {}
        self.admin_tokens: dict[str, tuple[float, dict[str, str]]] = {}  # ns -> (read at, data)
        self.leader: Any = None  # set by main: a LeaderElector, or None (election off: always lead)
        self.ready = asyncio.Event()
        self.session: aiohttp.ClientSession | None = None
        # Catalog fetches of sources without spec.network.allowLinkLocal: a name that
        # resolves to a link-local or metadata address is refused when connecting.
        self.guarded_session: aiohttp.ClientSession | None = None
        self._admin_sem = asyncio.Semaphore(settings.push.concurrency)
        self._catalog_sem = asyncio.Semaphore(settings.catalog.concurrency)
        self._tasks: list[asyncio.Task[Any]] = []
        self.passes = 0  # namespace reconciles done (for tests and metrics)
        self.metrics: OperatorMetrics = METRICS
        self.bundles: dict[str, str] = {}  # namespace -> bundle version its config Secret holds
        self.bundle_problems: dict[str, str] = {}  # namespace -> why its config Secret could not be written
        self.bundle_writes = 0  # config Secret writes (for tests and metrics)

    @property
    def secret_delivery(self) -> bool:
        return self.s.push.delivery != "push"

    # ------------------------------------------------------------------ lifecycle

    @property
    def is_leader(self) -> bool:
        return self.leader is None or bool(self.leader.is_leader)

    async def start(self) -> None:
        self.session = aiohttp.ClientSession(trust_env=False)
        self.guarded_session = aiohttp.ClientSession(
            trust_env=False, connector=aiohttp.TCPConnector(resolver=GuardedResolver())
        )
        for i in range(max(1, self.s.reconcile_workers)):
            self._tasks.append(asyncio.create_task(self._worker(), name=f"switchyard-worker-{i}"))
        self._tasks.append(asyncio.create_task(self._resync(), name="switchyard-resync"))
        if self.leader is not None:
            self._tasks.append(asyncio.create_task(self.leader.run(), name="switchyard-leader"))

    async def stop(self) -> None:
        self.queue.close()
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        for session in (self.session, self.guarded_session):
            if session is not None:
                await session.close()
        await self.kube.close()

    def on_leadership(self, leader: bool) -> None:
        if leader:
            self.written.clear()  # another replica may have written since
            self.enqueue_everything()

    # ------------------------------------------------------------------ triggers (from kopf handlers)

    def mark_ready(self) -> None:
        """kopf calls event handlers only once every index is filled: from then on, work."""
        if not self.ready.is_set():
            self.ready.set()
            self.enqueue_everything()

    def enqueue_everything(self) -> None:
        for ns in self.world.namespaces():
            self.queue.add(("ns", ns))
            for s in self.world.sources(ns):
                self.queue.add(("catalog", ns, s.name))

    def namespace_changed(self, ns: str) -> None:
        self.mark_ready()
        self.queue.add(("ns", ns))

    def source_changed(self, ns: str, name: str) -> None:
        self.mark_ready()
        self.queue.add(("ns", ns))
        self.queue.add(("catalog", ns, name))

    def secret_changed(self, ns: str, name: str) -> None:
        self.mark_ready()
        if name in self.world.referenced_secrets(ns):
            self.queue.add(("ns", ns))
            for source in self.world.sources_using_secret(ns, name):
                self.queue.add(("catalog", ns, source))

    # ------------------------------------------------------------------ loops

    async def _worker(self) -> None:
        while True:
            key = await self.queue.get()
            kind, t0 = ("namespace" if key[0] == "ns" else "catalog"), self.mono()
            try:
                if self.is_leader:
                    if key[0] == "ns":
                        await self.reconcile_namespace(key[1])
                    elif key[0] == "catalog":
                        await self.refresh_catalog(key[1], key[2])
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("reconcile of %s failed; retrying in 5s", "/".join(key))
                self.metrics.reconciled(kind, self.mono() - t0, ok=False)
                self.queue.done(key)
                self.queue.add(key, 5.0)
                continue
            if self.is_leader:
                self.metrics.reconciled(kind, self.mono() - t0, ok=True)
            self.queue.done(key)

    async def _resync(self) -> None:
        await self.ready.wait()
        last_full = self.mono()
        while True:
            await asyncio.sleep(self.s.push.health_interval_seconds)
            if self.mono() - last_full >= self.s.resync_seconds:
                last_full = self.mono()
                for ns in self.world.namespaces():
                    self.queue.add(("ns", ns))
            else:
                for ns in self.world.namespaces():
                    if self.world.pods(ns):
                        self.queue.add(("ns", ns))

    # ------------------------------------------------------------------ inputs

    def reserved_secrets(self) -> frozenset[str]:
        """Secrets that are never a credential, even when labelled as one."""
        return frozenset({self.s.sidecar.admin_token_secret})

    def _credential_data(self, ns: str, name: str) -> dict[str, str] | CredentialRefused:
        """A credential Secret's data, from the watch of marked Secrets only (credentials.py):
        never fetched by name, so an unmarked Secret is never read."""
        snap = self.world.secret(ns, name)
        refused = refusal(name, ns, reserved=self.reserved_secrets(), known=snap is not None and snap.data is not None)
        if refused is not None:
            return refused
        assert snap is not None and snap.data is not None
        return snap.data

    def _read_key(self, ns: str, cref: CredentialRef) -> tuple[str | None, str | None, str | None]:
        """One credential reference of a ModelSource: (value, None, None), or (None,
        reason, message) naming the Secret and key at fault (never a value)."""
        if cref.env is not None:
            return None, "EnvCredentialNotAllowed", "credentialRef.env is for standalone mode only; use a Secret"
        data = self._credential_data(ns, cref.name or "")
        if isinstance(data, CredentialRefused):  # nothing read, nothing sent
            self.metrics.refusals.labels(data.reason).inc()
            return None, data.reason, data.message
        if not data.get(cref.key or ""):
            return None, "SecretKeyMissing", f"Secret {cref.name} has no key {cref.key}"
        try:
            return base64.b64decode(data[cref.key or ""], validate=True).decode().strip(), None, None
        except ValueError:
            return None, "SecretUnreadable", f"Secret {cref.name} key {cref.key} is not valid base64"

    async def _admin_token_data(self, ns: str) -> dict[str, str] | None:
        """The sidecars' admin-token Secret, read by name (the only Secret the RBAC lets
        the operator GET; it is not in the watch of marked Secrets)."""
        name = self.s.sidecar.admin_token_secret
        cached = self.admin_tokens.get(ns)
        now = self.mono()
        if cached and now - cached[0] < self.s.push.health_interval_seconds:
            return cached[1]
        try:
            body = await self.kube.get_secret(ns, name)
        except KubeError as e:  # e.g. 403: this namespace is not granted; its pods report AdminTokenMissing
            log.warning("cannot read the admin-token Secret %s/%s: %s %s", ns, name, e.status, e.reason)
            body = None
        if body is None:
            self.admin_tokens.pop(ns, None)
            return None
        data = dict(body.get("data") or {})
        self.admin_tokens[ns] = (now, data)
        return data

    async def _secrets(self, ns: str) -> dict[str, dict[str, str]]:
        """The credential Secrets the namespace's sources reference (marked ones only) and,
        when the namespace has sidecar pods to push to (push delivery only), the admin token's."""
        out = {}
        for name in sorted(self.world.referenced_secrets(ns)):
            data = self._credential_data(ns, name)
            if not isinstance(data, CredentialRefused):
                out[name] = data
        if self.world.pods(ns) and not self.secret_delivery:
            token = await self._admin_token_data(ns)
            if token is not None:
                out[self.s.sidecar.admin_token_secret] = token
        return out

    def _catalog_record(self, source: Snap) -> CatalogRecord | None:
        rec = self.catalogs.get((source.namespace, source.name))
        if rec is None:  # after a restart: what the previous leader wrote
            cat = source.status.get("catalog") or {}
            models = cat.get("models")
            complete = models is not None and len(models) < self.s.catalog.max_ids_kept
            if complete and source.status.get("observedGeneration") is not None:
                rec = CatalogRecord(frozenset(models), tuple(models), int(cat.get("count") or 0), 0.0,
                                    source.status["observedGeneration"])
                self.catalogs[(source.namespace, source.name)] = rec
        if rec is None or rec.generation != source.generation:
            return None
        return rec

    # ------------------------------------------------------------------ namespace

    def inputs(self, ns: str, secrets: dict[str, dict[str, str]]) -> NamespaceInputs:
        """What the planner needs of ``ns``: the indexes, the Secret data, the live
        catalogs and what each pod's sidecar is known to run."""
        source_snaps = self.world.sources(ns)
        pods = [p for p in self.world.pods(ns) if not p.deleting]
        return NamespaceInputs(
            namespace=ns,
            sources=source_snaps,
            profiles=self.world.profiles(ns),
            bindings=self.world.bindings(ns),
            pods=pods,
            secrets=secrets,
            catalogs={s.name: rec.ids for s in source_snaps if (rec := self._catalog_record(s)) is not None},
            running={p.key: self.pushes.running(p) for p in pods},
            admin_token=AdminTokenRef(self.s.sidecar.admin_token_secret, self.s.sidecar.admin_token_key),
            delivery="secret" if self.secret_delivery else "push",
        )

    async def reconcile_namespace(self, ns: str) -> None:
        now, mono = self.wall(), self.mono()
        inp = self.inputs(ns, await self._secrets(ns))
        plan = plan_configs(inp)
        pods, token = list(inp.pods), plan.admin_token
        push = {p.pod.key for p in plan.pushes}
        bundle_version: str | None = None
        if self.secret_delivery:
            token = None  # nothing secret on the wire: the status route is open, the config is in the Secret
            bundle_version = await self._write_bundle(ns, plan.bundle, wanted=bool(inp.bindings or pods))
        synced = await asyncio.gather(*(
            self._sync_pod(p, plan.configs[p.key], token, plan.blocked.get(p.key), p.key in push, mono, bundle_version)
            for p in pods
        ))
        pod_status = {p.key: st for p, st in zip(pods, synced, strict=True)}

        generations = {b.name: b.generation for b in inp.bindings if b.generation is not None}
        baselines = {b.name: self._previous(b).get("observedGeneration") for b in inp.bindings}
        reread = [None] * len(pods) if self.secret_delivery else await asyncio.gather(*(
            self._reset_after_change(p, pod_status[p.key], plan.pod_bindings[p.key], generations, baselines, token,
                                     plan.configs[p.key].version)
            for p in pods
        ))
        for p, st in zip(pods, reread, strict=True):
            if st is not None:
                pod_status[p.key] = st

        await self._share_health(ns, pods, pod_status, plan.admin_token)

        outcomes = {
            p.key: PodOutcome(pod_status[p.key], self.pushes.runs(p, plan.configs[p.key].version), self.pushes.problem(p))
            for p in pods
        }
        statuses = plan_statuses(inp, plan, outcomes, {b.name: self._previous(b) for b in inp.bindings}, now=now)
        # One object's failed status write (the API server's 5xx, 429 or 409 after the
        # client's own retries, a dropped connection) neither stops the others' nor is lost:
        # the namespace is reconciled again soon and recomputes every status.
        failed: list[str] = []
        for snap in inp.bindings:
            try:
                await self._binding_status(snap, statuses.bindings[snap.name])
            except (KubeError, aiohttp.ClientError, TimeoutError) as e:
                failed.append(f"AssistantBinding/{snap.name}: {e}")
        for snap in inp.profiles:
            try:
                await self._write_status(snap, statuses.profiles[snap.name])
            except (KubeError, aiohttp.ClientError, TimeoutError) as e:
                failed.append(f"CapabilityProfile/{snap.name}: {e}")
        if failed:
            log.warning("status write failed in %s (%s); reconciling again in %.0fs", ns, "; ".join(failed[:3]), STATUS_RETRY_SECONDS)
            self.queue.add(("ns", ns), STATUS_RETRY_SECONDS)

        self._forget_gone(ns, [*inp.bindings, *inp.profiles], pods)
        self.passes += 1
        retry = self.pushes.retry_in(pods, self.mono())
        if retry is not None:
            self.queue.add(("ns", ns), retry)

    async def _share_health(
        self, ns: str, pods: list[PodInfo], pod_status: dict[tuple[str, str], SidecarReport | None], token: str | None
    ) -> None:
        """Shared tier health (docs/shared-health.md): tell each pod what the other pods of
        the namespace saw themselves (a key rate-limited until T, refused), in the same pass
        that read their reports. Only pods whose set changed are sent it (an empty set once:
        the clearing hint); signed with the admin token, read only when something is to be
        sent. Best effort: a pod not told learns by itself, as without sharing."""
        reports = {p.key: st for p in pods if (st := pod_status.get(p.key)) is not None and p.admin_url}
        now = self.wall()
        planned = sharing.plan_hints(reports, now)
        self.hints.retain({p.key for p in pods}, ns)
        due = [p for p in pods if p.key in planned and (
            self.hints.needs_send(p, planned[p.key], now) or sharing.holds_stale(reports[p.key], planned[p.key]))]
        if not due:
            return
        if token is None:  # Secret delivery sends no config with a token: read it now, only now
            data = await self._admin_token_data(ns)
            token = admin_token({self.s.sidecar.admin_token_secret: data or {}},
                                AdminTokenRef(self.s.sidecar.admin_token_secret, self.s.sidecar.admin_token_key))
        if token is None:
            self.metrics.health_hints.labels("no-token").inc(len(due))
            return  # no admin token in the namespace: the sidecars accept no hint; each learns alone
        assert self.session is not None

        async def send(p: PodInfo) -> None:
            assert self.session is not None and p.admin_url is not None
            async with self._admin_sem:
                problem = await put_health(self.session, p, p.admin_url, token, planned[p.key], self.timeouts, now=now)
            if problem is None:
                self.hints.sent(p, planned[p.key])
                self.hint_sends += 1
                self.metrics.health_hints.labels("sent").inc()
            else:
                self.metrics.health_hints.labels("failed").inc()
                log.info("could not send shared health to %s/%s (%s: %s); it learns by itself",
                         p.namespace, p.name, problem.reason, problem.message)

        await asyncio.gather(*(send(p) for p in due))

    async def _sync_pod(
        self,
        pod: PodInfo,
        config: CompiledConfig,
        token: str | None,
        blocked: PodProblem | None,
        planned: bool,
        mono: float,
        bundle_version: str | None = None,
    ) -> SidecarReport | None:
        """Push the pod's config if the plan says so (and it is not backing off), then read
        its report. Returns the report or None.

        Secret delivery (``bundle_version`` set: the version the config Secret holds):
        nothing is pushed; a pod whose sidecar does not run its planned config gets the
        ``switchyard.dev/config-version`` annotation, once per bundle version, so the
        kubelet refreshes its mounted Secret now rather than on its next periodic sync."""
        if blocked is not None:
            # (A pod with no address yet has not started its containers: the kubelet
            # mounts the Secret's current content when it does.)
            self.pushes.set_problem(pod, blocked)
            return None
        assert self.session is not None and pod.admin_url is not None
        if self.secret_delivery and bundle_version is None:
            why = self.bundle_problems.get(pod.namespace) or "the namespace's config Secret is not written yet"
            self.pushes.set_problem(pod, PodProblem(pod.name, "ConfigSecretNotWritten", why[:300]))
            return None
        if bundle_version is not None:
            return await self._observe_mounted(pod, config, bundle_version)
        assert token is not None
        if planned and self.pushes.needs_push(pod, config.version, mono):
            async with self._admin_sem:
                version, problem = await put_config(self.session, pod, pod.admin_url, token, config.to_wire(), self.timeouts)
            self.metrics.pushes.labels("applied" if problem is None and version == config.version else "failed").inc()
            if problem is None and version == config.version:
                self.pushes.pushed(pod, config.version)
                log.info("pushed config %s to %s/%s", config.version, pod.namespace, pod.name)
            else:
                problem = problem or PodProblem(pod.name, "Rejected", f"the sidecar runs {version} after the push of {config.version}")
                delay = self.pushes.failed(pod, config.version, problem, self.mono())
                log.warning("config push to %s/%s failed (%s: %s); retry in %.0fs", pod.namespace, pod.name, problem.reason, problem.message, delay)
                await self._event("Pod", "v1", pod.namespace, pod.name, pod.uid,
                                  EventSpec(WARNING, "ConfigPushFailed", f"{problem.reason}: {problem.message}", "push"))
                return None
        async with self._admin_sem:
            status, problem = await get_status(self.session, pod, pod.admin_url, token, self.timeouts)
        if status is None:
            if problem is not None and problem != self.pushes.problem(pod):
                log.warning("could not read the status of %s/%s (%s: %s); its tier health is not counted",
                            pod.namespace, pod.name, problem.reason, problem.message)
            self.pushes.set_problem(pod, problem)
            return None
        reported = status.running
        self.pushes.observed(pod, reported)
        if reported != config.version:
            self.pushes.set_problem(pod, PodProblem(pod.name, "Stale", f"the sidecar runs {reported or 'no config'}; pushing {config.version}"))
            self.queue.add(("ns", pod.namespace))  # it restarted or was reset: push again
        else:
            self.pushes.set_problem(pod, None)
        return status

    async def _observe_mounted(self, pod: PodInfo, config: CompiledConfig, bundle_version: str) -> SidecarReport | None:
        """Secret delivery: read what the sidecar runs (no token); nudge the kubelet if stale."""
        assert self.session is not None and pod.admin_url is not None
        async with self._admin_sem:
            status, problem = await get_status(self.session, pod, pod.admin_url, None, self.timeouts)
        if status is None:
            if problem is not None and problem != self.pushes.problem(pod):
                log.warning("could not read the status of %s/%s (%s: %s); its tier health is not counted",
                            pod.namespace, pod.name, problem.reason, problem.message)
            self.pushes.set_problem(pod, problem)
            await self._nudge(pod, bundle_version)
            return None
        reported = status.running
        self.pushes.observed(pod, reported)
        if reported == config.version:
            self.pushes.set_problem(pod, None)
            return status
        if status.config_error:
            why = f"the sidecar keeps {reported or 'no config'}: {status.config_error}"
        else:
            why = f"the sidecar runs {reported or 'no config'}; its config Secret holds {config.version} (volume refresh pending)"
        self.pushes.set_problem(pod, PodProblem(pod.name, "Stale", why[:300]))
        await self._nudge(pod, bundle_version)
        self.queue.add(("ns", pod.namespace), self.s.push.stale_recheck_seconds)
        return status

    async def _nudge(self, pod: PodInfo, bundle_version: str) -> None:
        """Annotate the pod with the bundle version (once per version): the kubelet syncs
        a pod whose annotations change at once, and refreshes its Secret volumes then."""
        if pod.config_version == bundle_version or pod.deleting:
            return
        try:
            await self.kube.annotate_pod(pod.namespace, pod.name, {CONFIG_VERSION_ANNOTATION: bundle_version})
        except (KubeError, aiohttp.ClientError, TimeoutError) as e:
            if not (isinstance(e, KubeError) and e.status == 404):
                log.warning("could not annotate %s/%s with config version %s: %s", pod.namespace, pod.name, bundle_version, e)

    async def _config_owner(self, ns: str) -> dict[str, Any] | None:
        """The ownerReference of ns's config Secret: the (Cluster)RoleBinding that grants the
        operator its rights there (``push.config_owner``), read on every write so a
        recreated binding's new uid is used. None: no owner configured, or it cannot be
        read (the Secret is then written without one, and a warning says so)."""
        kind, _, name = self.s.push.config_owner.partition("/")
        if not name:
            return None
        try:
            found = await self.kube.get_role_binding(ns if kind == "RoleBinding" else None, name)
        except (KubeError, aiohttp.ClientError, TimeoutError) as e:
            found, why = None, e.reason if isinstance(e, KubeError) else type(e).__name__
        else:
            why = "not found"
        uid = ((found or {}).get("metadata") or {}).get("uid")
        if not uid:
            log.warning("config Secret %s/%s written without an owner: %s %s unreadable (%s); "
                        "helm uninstall will leave it", ns, CONFIG_SECRET, kind, name, why)
            return None
        return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind, "name": name, "uid": uid}

    async def _write_bundle(self, ns: str, bundle: ConfigBundle | None, *, wanted: bool) -> str | None:
        """Write the namespace's config Secret when its content changed; its version.

        Idempotent: the version (a content hash) is kept in an annotation of the Secret,
        and the Secret is read back only when this process does not know what it holds
        (after a start or a failed write). Not written for a namespace that has neither
        bindings nor sidecar pods (and never wrote one)."""
        if bundle is None:
            return None
        if self.bundles.get(ns) == bundle.version:
            return bundle.version
        if not wanted and ns not in self.bundles and self.world.secret(ns, CONFIG_SECRET) is None:
            return None
        content = bundle.to_file()
        if len(content) > MAX_BUNDLE_BYTES:
            why = (f"the compiled bindings of {ns} take {len(content)} bytes, more than a Secret holds "
                   f"({MAX_BUNDLE_BYTES}); split them across namespaces")
            if self.bundle_problems.get(ns) != why:
                log.warning("config Secret %s/%s not written: %s", ns, CONFIG_SECRET, why)
            self.bundle_problems[ns] = why
            return None
        self.bundle_problems.pop(ns, None)
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "Opaque",
            "metadata": {
                "name": CONFIG_SECRET,
                "namespace": ns,
                "labels": dict(MANAGED_BY),
                "annotations": {CONFIG_VERSION_ANNOTATION: bundle.version},
            },
            "data": {BUNDLE_KEY: base64.b64encode(content).decode()},
        }
        try:
            owner = await self._config_owner(ns)
            if owner:
                body["metadata"]["ownerReferences"] = [owner]
            current = await self.kube.get_secret(ns, CONFIG_SECRET)
            if current is None:
                await self.kube.create_secret(ns, body)
            else:
                meta = current.get("metadata") or {}
                owned = owner is None or any(r.get("uid") == owner["uid"] for r in meta.get("ownerReferences") or [])
                if (meta.get("annotations") or {}).get(CONFIG_VERSION_ANNOTATION) == bundle.version and owned:
                    self.bundles[ns] = bundle.version
                    return bundle.version
                if (meta.get("labels") or {}).get("app.kubernetes.io/managed-by") != MANAGED_BY["app.kubernetes.io/managed-by"]:
                    log.warning("Secret %s/%s exists and is not managed by switchyard: not overwritten; "
                                "the sidecars of %s keep their previous config", ns, CONFIG_SECRET, ns)
                    return None
                body["metadata"]["resourceVersion"] = meta.get("resourceVersion")
                await self.kube.replace_secret(ns, CONFIG_SECRET, body)
        except (KubeError, aiohttp.ClientError, TimeoutError) as e:
            # The message names the Secret and the API server's reason, never its data.
            log.warning("could not write the config Secret %s/%s (%s); retrying", ns, CONFIG_SECRET,
                        e.reason if isinstance(e, KubeError) else type(e).__name__)
            self.bundles.pop(ns, None)
            self.queue.add(("ns", ns), STATUS_RETRY_SECONDS)
            return None
        self.bundles[ns] = bundle.version
        self.bundle_writes += 1
        log.info("wrote config Secret %s/%s version %s (%d binding(s))", ns, CONFIG_SECRET, bundle.version,
                 len(bundle.bindings))
        return bundle.version

    async def _reset_after_change(
        self,
        pod: PodInfo,
        status: SidecarReport | None,
        names: frozenset[str],
        generations: dict[str, int],
        baselines: dict[str, Any],
        token: str | None,
        version: str,
    ) -> SidecarReport | None:
        """Reset the tiers this pod's sidecar disabled, for bindings whose generation changed
        since the pod last ran them. Returns the pod's fresh status when something was reset.

        A permanent failure disables a tier "until its ModelSource, Secret or the binding
        changes": the sidecar itself re-enables a tier whose own config changed (key, model,
        URL...); a change to the binding that leaves the tier's config as it was (another
        alias, breaker, requires...) is only visible here. Done once per generation and pod,
        after the new config runs there; retried on the next pass if the sidecar did not answer."""
        changed = [
            name for name in sorted(names)
            if name in generations
            and self.pushes.generation_changed(pod, name, generations[name], _int(baselines.get(name)))
        ]
        for name in sorted(names):
            if name in generations and name not in changed:
                self.pushes.generation_applied(pod, name, generations[name])
        self.pushes.retain_generations(pod, names)
        if not changed or status is None or token is None or pod.admin_url is None or not self.pushes.runs(pod, version):
            return None  # nothing to do, or not yet: the pod does not run the new config
        assert self.session is not None
        reset = False
        for name in changed:
            problem = None
            for tier in disabled_tiers(status, pod.namespace, name):
                async with self._admin_sem:
                    problem = await reset_tier(self.session, pod, pod.admin_url, token, name, tier, self.timeouts)
                if problem is not None:
                    log.warning("could not reset disabled tier %d of %s in %s/%s (%s: %s); retrying",
                                tier, name, pod.namespace, pod.name, problem.reason, problem.message)
                    break
                reset = True
                log.info("reset disabled tier %d of %s in %s/%s: the binding changed (generation %d)",
                         tier, name, pod.namespace, pod.name, generations[name])
            if problem is None:
                self.pushes.generation_applied(pod, name, generations[name])
        if not reset:
            return None
        async with self._admin_sem:
            fresh, _ = await get_status(self.session, pod, pod.admin_url, token, self.timeouts)
        return fresh

    async def _binding_status(self, snap: Snap, planned: BindingPlan) -> None:
        """Write the binding's planned status, then post the Events its health changes call for."""
        await self._write_status(snap, planned.status)
        report = planned.report
        if report is None:
            return
        key = (snap.namespace, snap.name)
        labels = {t.index: _label(t.source, t.model) for t in report.tiers}
        prev = self.health_memo.get(key) or HealthMemo.from_status(snap.status)
        new = HealthMemo.of(planned.health, labels).carry_over(prev)
        self.health_memo[key] = new
        for ev in health_events(prev, new, selected_pods=planned.selected):
            await self._event("AssistantBinding", "switchyard.dev/v1alpha1", snap.namespace, snap.name, snap.uid, ev)

    def _previous(self, snap: Snap) -> dict[str, Any]:
        """The status as last known: the index, or what this process wrote since (watch lag)."""
        written = self.written.get((snap.kind, snap.namespace, snap.name))
        if written and written[0] == snap.uid and self.mono() - written[2] < WATCH_LAG_SECONDS:
            merged = dict(snap.status)
            merged.update(written[1])
            return merged
        return snap.status

    async def _write_status(self, snap: Snap, desired: dict[str, Any]) -> None:
        key = (snap.kind, snap.namespace, snap.name)
        current = prune(snap.status)
        if desired == current:
            self.written.pop(key, None)
            return
        written = self.written.get(key)
        base = current
        if written and written[0] == snap.uid and self.mono() - written[2] < WATCH_LAG_SECONDS:
            if written[1] == desired:
                return  # just written; the watch has not brought it back yet
            base = {**current, **written[1]}
        patch = merge_patch(base, desired)
        if not patch:
            return
        try:
            await self.kube.patch_status(PLURAL[snap.kind], snap.namespace, snap.name, patch)
        except KubeError as e:
            if e.status == 404:
                return  # deleted meanwhile
            raise
        self.written[key] = (snap.uid, desired, self.mono())

    async def _event(self, kind: str, api_version: str, ns: str, name: str, uid: str, spec: EventSpec) -> None:
        admitted = self.limiter.admit(f"{kind}/{ns}/{name}", spec, self.mono())
        if admitted is None:
            return
        ts = rfc3339(self.wall())
        identity = getattr(getattr(self.leader, "s", None), "identity", COMPONENT)
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{name}.", "namespace": ns},
            "involvedObject": {"apiVersion": api_version, "kind": kind, "name": name, "namespace": ns, "uid": uid},
            "reason": admitted.reason,
            "message": admitted.message,
            "type": admitted.type,
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "reportingInstance": identity,
            "firstTimestamp": ts,
            "lastTimestamp": ts,
            "count": 1,
        }
        try:
            await self.kube.create_event(ns, body)
        except KubeError as e:
            log.warning("could not post event %s on %s/%s: %s", admitted.reason, ns, name, e)

    def _forget_gone(self, ns: str, objects: list[Snap], pods: list[PodInfo]) -> None:
        """Drop what this process remembers of objects and pods that are gone."""
        live = {(o.kind, o.name) for o in objects}
        for key in [k for k in self.health_memo if k[0] == ns and ("AssistantBinding", k[1]) not in live]:
            del self.health_memo[key]
            self.limiter.forget(f"AssistantBinding/{ns}/{key[1]}")
        for key in [k for k in self.written if k[1] == ns and k[0] != "ModelSource" and (k[0], k[2]) not in live]:
            del self.written[key]
        self.pushes.retain({p.key for p in pods}, ns)

    # ------------------------------------------------------------------ admission

    def check_binding(self, body: dict[str, Any], old: dict[str, Any] | None = None) -> list[str]:
        """Warnings for an AssistantBinding being applied, from what the indexes hold now.

        Read-only and synchronous (no API call, no await): it runs inside the admission
        request. A namespace this operator does not watch gets no warnings (its indexes
        know nothing there, so every reference would look missing)."""
        snap = snapshot("AssistantBinding", body)
        ns = snap.namespace
        if self.s.namespaces and ns not in self.s.namespaces:
            return []
        indexed = next((b for b in self.world.bindings(ns) if b.name == snap.name), None)
        was_set = (
            snap.primary_evidence
            or bool(((old or {}).get("status") or {}).get("primaryConfigured"))
            or bool(indexed is not None and indexed.status.get("primaryConfigured"))
        )
        source_snaps = self.world.sources(ns)
        cats = {(ns, s.name): rec.ids for s in source_snaps if (rec := self._catalog_record(s)) is not None}

        def secret_keys(name: str) -> dict[str, bool] | None:
            data = self._credential_data(ns, name)
            if isinstance(data, CredentialRefused):
                raise data
            return {k: bool(v) for k, v in data.items()}

        return validation.binding_warnings(
            snap.manifest(),
            sources=[s.manifest() for s in source_snaps],
            profiles=[p.manifest() for p in self.world.profiles(ns)],
            secret_keys=secret_keys,
            catalogs=cats,
            primary_was_set=was_set,
        )

    # ------------------------------------------------------------------ catalogs

    async def refresh_catalog(self, ns: str, name: str) -> None:
        snap = self.world.source(ns, name)
        if snap is None:
            self.catalogs.pop((ns, name), None)
            self.queue.forget(("catalog", ns, name))
            return
        now = self.wall()
        res, errs = parse_document(snap.manifest(), file=f"ModelSource/{name}")
        if not isinstance(res, ModelSource):
            check = catalogs.not_checked("InvalidSpec", first_error(errs) if errs else "the spec does not validate")
            await self._write_status(snap, prune(source_status(snap.generation, check, None, snap.status, now=now)))
            return
        spec = res.spec
        crefs = spec.credentials
        credential: str | None = None
        check = None
        keys: list[dict[str, Any]] | None = None
        net = spec.network
        refused = check_base_url(
            spec.effective_base_url,
            allow_link_local=bool(net and net.allow_link_local),
            allow_insecure_http=bool(net and net.allow_insecure_http),
        )
        if refused is not None:  # never send the key (or anything) where the sidecar may not
            check = catalogs.not_checked(refused.reason, refused.message)
        elif crefs:
            # Each key read on its own (several credentialRefs: one that does not resolve
            # makes only that key unusable); the check is sent with the first that does.
            read = [self._read_key(ns, c) for c in crefs]
            credential = next((value for value, _why, _msg in read if value is not None), None)
            if len(crefs) > 1:
                keys = [{"index": i, "resolvable": v is not None, "reason": why, "message": msg}
                        for i, (v, why, msg) in enumerate(read)]
            if credential is None:
                _v, why, msg = read[0]
                if len(read) > 1:
                    msg = f"no key resolves: {'; '.join(f'key {i}: {m}' for i, (_x, _w, m) in enumerate(read))}"
                check = catalogs.not_checked(why or "SecretKeyMissing", msg or "")
        before = self.catalogs.get((ns, name))
        if check is None:
            session = self.session if net and net.allow_link_local else self.guarded_session
            assert session is not None
            async with self._catalog_sem:
                url, outcome = await catalogs.fetch(
                    session, spec.provider.value, spec.effective_base_url, credential,
                    timeout_seconds=self.s.catalog.timeout_seconds,
                )
            check = outcome.check(url, keyless=not crefs)
            if keys and check.credential == "True":
                unusable = [f"key {k['index']}: {k['reason']}" for k in keys if not k["resolvable"]]
                first = next(k["index"] for k in keys if k["resolvable"])
                note = f" (with key {first})" + (f"; unusable: {', '.join(unusable)}" if unusable else "")
                check = dataclasses.replace(check, credential_message=check.credential_message + note)
            if outcome.ok:
                self.catalogs[(ns, name)] = CatalogRecord(
                    frozenset(outcome.ids), outcome.ids, outcome.count, now, snap.generation
                )
            elif outcome.status in (401, 403):
                self.catalogs.pop((ns, name), None)
            delay = self.s.catalog.ttl_seconds if outcome.ok else self.s.catalog.retry_seconds
        else:
            self.catalogs.pop((ns, name), None)
            delay = self.s.catalog.ttl_seconds
        rec = self.catalogs.get((ns, name))
        cat = None
        if rec is not None and rec.generation == snap.generation:
            keep = self.s.catalog.max_ids_kept
            cat = {
                "models": sorted(rec.listed)[:keep],
                "count": rec.count,
                "fetchedAt": rfc3339(rec.fetched_at) if rec.fetched_at else (snap.status.get("catalog") or {}).get("fetchedAt"),
            }
        await self._write_status(snap, prune(source_status(snap.generation, check, cat, snap.status, now=now, keys=keys)))
        after = self.catalogs.get((ns, name))
        if (before.ids if before else None) != (after.ids if after else None):
            self.queue.add(("ns", ns))
        self.queue.add(("catalog", ns, name), delay)

