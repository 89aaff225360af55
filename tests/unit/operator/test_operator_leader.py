"""Lease-based leader election with an in-memory Lease and a fake clock."""

from __future__ import annotations

import copy
from typing import Any

from switchyard.operator.kube import KubeError
from switchyard.operator.leader import LeaderElector
from switchyard.operator.settings import LeaderSettings


class FakeLeases:
    """The Lease API with resourceVersion conflicts, as the API server does it."""

    def __init__(self) -> None:
        self.lease: dict[str, Any] | None = None
        self.rv = 0

    async def get_lease(self, ns: str, name: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.lease)

    async def create_lease(self, ns: str, body: dict[str, Any]) -> dict[str, Any]:
        if self.lease is not None:
            raise KubeError(409, "AlreadyExists", "exists")
        self.rv += 1
        self.lease = copy.deepcopy(body)
        self.lease["metadata"]["resourceVersion"] = str(self.rv)
        return self.lease

    async def patch_lease(self, ns: str, name: str, resource_version: str, spec: dict[str, Any]) -> dict[str, Any]:
        """A merge patch conditional on the resourceVersion: a missing Lease is a 404 (a
        patch never creates, unlike a PUT to a Lease), metadata other than it untouched."""
        if self.lease is None:
            raise KubeError(404, "NotFound", "leases not found")
        if resource_version != self.lease["metadata"]["resourceVersion"]:
            raise KubeError(409, "Conflict", "stale resourceVersion")
        self.rv += 1
        merged = {**self.lease["spec"], **spec}
        self.lease["spec"] = {k: v for k, v in merged.items() if v is not None}
        self.lease["metadata"]["resourceVersion"] = str(self.rv)
        return copy.deepcopy(self.lease)


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def elector(kube: FakeLeases, clock: Clock, identity: str) -> LeaderElector:
    s = LeaderSettings(enabled=True, lease_name="l", lease_namespace="sys", identity=identity,
                       lease_duration_seconds=15, renew_interval_seconds=5)
    return LeaderElector(kube, s, clock=clock)  # type: ignore[arg-type]


async def test_first_acquires_second_waits_then_takes_over_when_the_holder_goes_silent() -> None:
    kube, clock = FakeLeases(), Clock()
    a, b = elector(kube, clock, "a"), elector(kube, clock, "b")
    assert await a.try_acquire_or_renew() and a.is_leader
    assert not await b.try_acquire_or_renew() and not b.is_leader
    clock.now = 10
    assert await a.try_acquire_or_renew()  # renewed: b sees a new record
    assert not await b.try_acquire_or_renew()
    clock.now = 24  # 14s since b last saw the record change: not yet expired
    assert not await b.try_acquire_or_renew()
    assert a.is_leader  # a's own lease runs until 25 without a renewal
    clock.now = 26
    assert not a.is_leader
    assert await b.try_acquire_or_renew() and b.is_leader
    assert kube.lease["spec"]["holderIdentity"] == "b" and kube.lease["spec"]["leaseTransitions"] == 1
    assert not await a.try_acquire_or_renew()  # a is a standby now


async def test_release_hands_over_at_once() -> None:
    kube, clock = FakeLeases(), Clock()
    a, b = elector(kube, clock, "a"), elector(kube, clock, "b")
    await a.try_acquire_or_renew()
    await a._release()
    assert kube.lease["spec"].get("holderIdentity") is None and not a.is_leader
    assert await b.try_acquire_or_renew()


async def test_a_stale_write_loses() -> None:
    kube, clock = FakeLeases(), Clock()
    a = elector(kube, clock, "a")
    await a.try_acquire_or_renew()
    stale = await kube.get_lease("sys", "l")
    await a.try_acquire_or_renew()
    try:
        await kube.patch_lease("sys", "l", stale["metadata"]["resourceVersion"], stale["spec"])  # type: ignore[index]
    except KubeError as e:
        assert e.status == 409
    else:
        raise AssertionError("a stale resourceVersion must conflict")


async def test_a_lease_the_operator_creates_is_owned_by_its_pod() -> None:
    """On the real node, helm uninstall deleted the chart's Lease and the terminating leader
    created it again: a Lease the operator creates names its pod as owner, so the garbage
    collector removes it once that pod is gone."""
    kube, clock = FakeLeases(), Clock()
    s = LeaderSettings(enabled=True, lease_name="l", lease_namespace="sys", identity="op-0", pod_uid="uid-op-0",
                       lease_duration_seconds=15, renew_interval_seconds=5)
    assert await LeaderElector(kube, s, clock=clock).try_acquire_or_renew()  # type: ignore[arg-type]
    assert kube.lease is not None
    assert kube.lease["metadata"]["ownerReferences"] == [
        {"apiVersion": "v1", "kind": "Pod", "name": "op-0", "uid": "uid-op-0", "blockOwnerDeletion": False}]
    # without a pod (a developer's run) there is no owner
    kube2 = FakeLeases()
    assert await elector(kube2, clock, "dev").try_acquire_or_renew()
    assert "ownerReferences" not in (kube2.lease or {})["metadata"]


async def test_a_lease_deleted_under_the_leader_comes_back_owned_by_its_pod() -> None:
    """The real node: helm uninstall deleted the chart's Lease between the leader's read and
    its renewal, and the renewal (a PUT: Leases allow create-on-update) brought it back
    owned by nobody, so it stayed. The renewal is a conditional patch now: it fails on a
    missing Lease, and the next round creates one owned by the pod, which goes with it."""
    kube, clock = FakeLeases(), Clock()
    s = LeaderSettings(enabled=True, lease_name="l", lease_namespace="sys", identity="op-0", pod_uid="uid-op-0",
                       lease_duration_seconds=15, renew_interval_seconds=5)
    chart = {"metadata": {"name": "l", "namespace": "sys", "resourceVersion": "1",
                          "labels": {"app.kubernetes.io/managed-by": "Helm"}}, "spec": {}}
    kube.lease, kube.rv = copy.deepcopy(chart), 1
    a = LeaderElector(kube, s, clock=clock)  # type: ignore[arg-type]
    assert await a.try_acquire_or_renew()
    assert kube.lease["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "Helm"}, "the chart's metadata is kept"
    assert "ownerReferences" not in kube.lease["metadata"]  # the chart's Lease: helm removes it

    class DeletedAfterRead(FakeLeases):
        async def get_lease(self, ns: str, name: str) -> dict[str, Any] | None:
            seen = await super().get_lease(ns, name)
            self.lease = None  # helm uninstall, between the leader's read and its renewal
            return seen

    racing = DeletedAfterRead()
    racing.lease, racing.rv = kube.lease, kube.rv
    a.kube = racing  # type: ignore[assignment]
    clock.now = 5
    try:
        await a.try_acquire_or_renew()
    except KubeError as e:
        assert e.status == 404
    else:
        raise AssertionError("renewing a deleted Lease must not succeed")
    assert racing.lease is None, "the renewal brought the deleted Lease back"
    a.kube = kube
    kube.lease = None
    clock.now = 10
    assert await a.try_acquire_or_renew()
    assert kube.lease["metadata"]["ownerReferences"][0]["uid"] == "uid-op-0"
