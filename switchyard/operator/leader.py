"""Leader election on a ``coordination.k8s.io/v1`` Lease, as client-go does it.

Two replicas run the same watches and keep the same indexes warm; only the Lease holder
writes (status, Events, config pushes, catalog fetches), so nothing is done twice and a
standby takes over within one lease duration when the leader dies. Chosen over kopf's
peering because peering lets same-priority peers run side by side, and over kopf
timers/daemons on the custom resources because those put a finalizer on every user
object (a binding could not be deleted while the operator is down).

Expiry is judged the client-go way, on this process's monotonic clock: a holder's lease
is expired when its record has not changed for ``lease_duration_seconds`` since this
process last saw it change. Wall-clock timestamps in the Lease are written for humans
(``kubectl get lease``) and never compared across machines.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from .kube import Kube, KubeError
from .settings import LeaderSettings

log = logging.getLogger("switchyard.operator.leader")


def _micro_time() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    def __init__(
        self,
        kube: Kube,
        settings: LeaderSettings,
        *,
        on_change: Callable[[bool], None] = lambda _l: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.kube = kube
        self.s = settings
        self.on_change = on_change
        self.clock = clock
        self._leader_until = 0.0  # monotonic: we hold the lease until then (if renewals stop)
        self._observed: tuple[Any, ...] | None = None
        self._observed_at = 0.0
        self._was_leader = False

    @property
    def is_leader(self) -> bool:
        return self.clock() < self._leader_until

    def _set(self, leader: bool) -> None:
        if leader != self._was_leader:
            self._was_leader = leader
            log.info("leadership %s", "acquired" if leader else "lost", extra={"switchyard": {"identity": self.s.identity}})
            self.on_change(leader)

    def _lease_body(self, existing: dict[str, Any] | None, transitions: int, acquire: bool) -> dict[str, Any]:
        now = _micro_time()
        spec = dict((existing or {}).get("spec") or {})
        spec.update(
            holderIdentity=self.s.identity,
            leaseDurationSeconds=int(self.s.lease_duration_seconds),
            renewTime=now,
            leaseTransitions=transitions,
        )
        if acquire:
            spec["acquireTime"] = now
        meta: dict[str, Any] = {"name": self.s.lease_name, "namespace": self.s.lease_namespace}
        if existing:
            meta["resourceVersion"] = existing["metadata"]["resourceVersion"]
        elif self.s.pod_uid:
            # Created by this replica (not the chart's): owned by its pod, so it goes with it.
            meta["ownerReferences"] = [{"apiVersion": "v1", "kind": "Pod", "name": self.s.identity, "uid": self.s.pod_uid,
                                        "blockOwnerDeletion": False}]
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": meta, "spec": spec}

    async def try_acquire_or_renew(self) -> bool:
        ns, name = self.s.lease_namespace, self.s.lease_name
        start = self.clock()
        lease = await self.kube.get_lease(ns, name)
        if lease is None:
            await self.kube.create_lease(ns, self._lease_body(None, 0, acquire=True))
            self._leader_until = start + self.s.lease_duration_seconds
            return True
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity")
        record = (holder, spec.get("renewTime"), spec.get("leaseTransitions"))
        if record != self._observed:
            self._observed, self._observed_at = record, start
        transitions = int(spec.get("leaseTransitions") or 0)
        if holder and holder != self.s.identity:
            duration = float(spec.get("leaseDurationSeconds") or self.s.lease_duration_seconds)
            if start < self._observed_at + duration:
                self._leader_until = 0.0
                return False
            transitions += 1  # the holder went silent: take over
            acquire = True
        else:
            acquire = holder != self.s.identity
            if acquire:
                transitions += 1
        body = self._lease_body(lease, transitions, acquire=acquire)
        await self.kube.patch_lease(ns, name, body["metadata"]["resourceVersion"], body["spec"])
        self._leader_until = start + self.s.lease_duration_seconds
        return True

    async def run(self) -> None:
        """Acquire and renew until cancelled; then release so a standby takes over at once."""
        try:
            while True:
                try:
                    leader = await self.try_acquire_or_renew()
                except KubeError as e:
                    if e.status != 409:  # 409: another replica wrote first; just retry
                        log.warning("leader election: %s", e)
                    leader = self.is_leader
                except Exception as e:
                    log.warning("leader election: %s: %s", type(e).__name__, e)
                    leader = self.is_leader
                self._set(leader)
                await asyncio.sleep(self.s.renew_interval_seconds if leader else self.s.renew_interval_seconds / 2)
        finally:
            await self._release()

    async def _release(self) -> None:
        if not self.is_leader:
            return
        self._leader_until = 0.0
        self._set(False)
        try:
            lease = await self.kube.get_lease(self.s.lease_namespace, self.s.lease_name)
            if lease and (lease.get("spec") or {}).get("holderIdentity") == self.s.identity:
                body = self._lease_body(lease, int(lease["spec"].get("leaseTransitions") or 0), acquire=False)
                body["spec"]["holderIdentity"] = None
                body["spec"]["leaseDurationSeconds"] = 1
                await asyncio.wait_for(self.kube.patch_lease(self.s.lease_namespace, self.s.lease_name,
                                                             body["metadata"]["resourceVersion"], body["spec"]), 5)
        except Exception as e:
            log.info("leader election: release failed: %s", e)

