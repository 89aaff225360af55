"""Secret delivery in the reconciler (fake API server): the namespace's config Secret is
written only when its content changes, never over a Secret it does not manage, and the
pods whose sidecar does not run their config yet get the config-version annotation once."""

from __future__ import annotations

import base64
import logging
from typing import Any

import aiohttp
import dataclasses

import pytest

from switchyard.operator.reconciler import Reconciler
from switchyard.operator.selection import PodInfo
from switchyard.operator.settings import Settings
from switchyard.operator.world import World, snapshot, snapshot_secret
from switchyard.sidecar.contract.delivery import BUNDLE_KEY, CONFIG_SECRET, CONFIG_VERSION_ANNOTATION, ConfigBundle, assemble

KEY, ROTATED = "sk-live-delivery-0001", "sk-live-delivery-0002"


def b64(v: str) -> str:
    return base64.b64encode(v.encode()).decode()


class FakeKube:
    def __init__(self) -> None:
        self.secrets: dict[str, dict[str, Any]] = {}
        self.writes: list[tuple[str, str]] = []
        self.annotations: list[tuple[str, dict[str, str]]] = []
        self.rv = 0
        self.role_bindings: dict[tuple[str | None, str], dict[str, Any]] = {}

    async def get_role_binding(self, ns: str | None, name: str) -> dict[str, Any] | None:
        return self.role_bindings.get((ns, name))

    async def get_secret(self, ns: str, name: str) -> dict[str, Any] | None:
        return self.secrets.get(name)

    async def create_secret(self, ns: str, body: dict[str, Any]) -> dict[str, Any]:
        assert body["metadata"]["name"] not in self.secrets
        return self._store("create", body)

    async def replace_secret(self, ns: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        assert body["metadata"]["resourceVersion"] == self.secrets[name]["metadata"]["resourceVersion"]
        return self._store("replace", body)

    def _store(self, how: str, body: dict[str, Any]) -> dict[str, Any]:
        self.rv += 1
        stored = {**body, "metadata": {**body["metadata"], "resourceVersion": str(self.rv)}}
        self.secrets[body["metadata"]["name"]] = stored
        self.writes.append((how, body["metadata"]["name"]))
        return stored

    async def annotate_pod(self, ns: str, name: str, annotations: dict[str, str]) -> None:
        self.annotations.append((name, annotations))

    async def patch_status(self, *a: Any) -> dict[str, Any]:
        return {}

    async def create_event(self, *a: Any) -> None:
        pass

    async def close(self) -> None:
        pass


def obj(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}", "generation": 1}, "spec": spec, "status": {}}


def make(key: str = KEY, pod_annotation: str | None = None, url: str | None = None) -> tuple[Reconciler, FakeKube, World]:
    source = obj("ModelSource", "main", {"provider": "openai", "baseURL": "http://127.0.0.1:9/v1", "defaultModel": "gpt-4o",
                                         "credentialRef": {"name": "key", "key": "api-key"}})
    binding = obj("AssistantBinding", "support", {"selector": {"matchLabels": {"app": "a"}},
                                                  "primary": {"sourceRef": {"name": "main"}}})
    secret = {"metadata": {"name": "key", "namespace": "ns", "resourceVersion": "1", "labels": {"switchyard.dev/credential": "true"}},
              "data": {"api-key": b64(key)}}
    world = World(
        sources_by_ns={"ns": [snapshot("ModelSource", source)]},
        bindings_by_ns={"ns": [snapshot("AssistantBinding", binding)]},
        pods_by_ns={"ns": [PodInfo("ns", "p-0", "u", {"app": "a"}, "Running" if url else "Pending", "127.0.0.1" if url else None,
                                   url, "u||0|", config_version=pod_annotation)]},
        secrets_by_key={("ns", "key"): [snapshot_secret(secret, keep_data=True)]},
    )
    kube = FakeKube()
    return Reconciler(Settings(), world, kube), kube, world  # type: ignore[arg-type]


def bundle(kube: FakeKube) -> ConfigBundle:
    return ConfigBundle.from_file(base64.b64decode(kube.secrets[CONFIG_SECRET]["data"][BUNDLE_KEY]))


async def test_the_config_secret_is_written_once_per_content_and_holds_the_pods_config(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    rec, kube, _ = make()
    await rec.reconcile_namespace("ns")
    await rec.reconcile_namespace("ns")
    assert kube.writes == [("create", CONFIG_SECRET)]
    meta = kube.secrets[CONFIG_SECRET]["metadata"]
    assert meta["labels"] == {"app.kubernetes.io/managed-by": "switchyard"}
    got = bundle(kube)
    assert meta["annotations"][CONFIG_VERSION_ANNOTATION] == got.version
    cfg = assemble(got, {"app": "a"})
    assert [b.name for b in cfg.bindings] == ["support"]
    assert cfg.bindings[0].tiers[0].credential.get_secret_value() == KEY
    assert KEY not in caplog.text


async def test_a_rotated_key_rewrites_the_secret_and_a_restarted_operator_reads_before_writing(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    rec, kube, _ = make()
    await rec.reconcile_namespace("ns")
    rotated, _, _ = make(ROTATED)
    rotated.kube = kube
    await rotated.reconcile_namespace("ns")
    assert kube.writes == [("create", CONFIG_SECRET), ("replace", CONFIG_SECRET)]
    assert assemble(bundle(kube), {"app": "a"}).bindings[0].tiers[0].credential.get_secret_value() == ROTATED
    again, _, _ = make(ROTATED)  # a new process: reads the Secret's version, writes nothing
    again.kube = kube
    await again.reconcile_namespace("ns")
    assert len(kube.writes) == 2
    assert KEY not in caplog.text and ROTATED not in caplog.text


async def test_a_secret_of_that_name_not_managed_by_switchyard_is_left_alone() -> None:
    rec, kube, _ = make()
    kube.secrets[CONFIG_SECRET] = {"metadata": {"name": CONFIG_SECRET, "resourceVersion": "9", "labels": {}}, "data": {}}
    await rec.reconcile_namespace("ns")
    assert kube.writes == [] and kube.secrets[CONFIG_SECRET]["data"] == {}


async def test_a_pod_not_running_its_config_is_annotated_once_per_version() -> None:
    unreachable = "http://127.0.0.1:9"  # nothing listens: its sidecar's version is not known
    rec, kube, _ = make(url=unreachable)
    rec.session = aiohttp.ClientSession()
    try:
        await rec.reconcile_namespace("ns")
    finally:
        await rec.session.close()
    version = bundle(kube).version
    assert kube.annotations == [("p-0", {CONFIG_VERSION_ANNOTATION: version})]
    done, kube2, _ = make(pod_annotation=version, url=unreachable)  # the pod already carries it
    done.session = aiohttp.ClientSession()
    try:
        await done.reconcile_namespace("ns")
    finally:
        await done.session.close()
    assert kube2.annotations == []
    pending, kube3, _ = make()  # no address yet: its containers mount the current Secret when they start
    await pending.reconcile_namespace("ns")
    assert kube3.annotations == []


async def test_a_bundle_too_large_for_a_secret_is_not_written_and_the_pods_say_why(monkeypatch: pytest.MonkeyPatch) -> None:
    from switchyard.operator import reconciler

    monkeypatch.setattr(reconciler, "MAX_BUNDLE_BYTES", 100)
    rec, kube, _ = make()
    await rec.reconcile_namespace("ns")
    assert kube.writes == []
    problem = rec.pushes.problem(rec.world.pods("ns")[0])
    assert problem is not None and problem.reason == "NoAddress"  # a pending pod says that first
    rec2, kube2, _ = make(url="http://127.0.0.1:9")
    monkeypatch.setattr(reconciler, "MAX_BUNDLE_BYTES", 100)
    rec2.session = aiohttp.ClientSession()
    try:
        await rec2.reconcile_namespace("ns")
    finally:
        await rec2.session.close()
    problem = rec2.pushes.problem(rec2.world.pods("ns")[0])
    assert problem is not None and problem.reason == "ConfigSecretNotWritten" and "more than a Secret holds" in problem.message


def owned_by(settings_owner: str) -> tuple[Reconciler, FakeKube]:
    rec, kube, world = make()
    rec = Reconciler(dataclasses.replace(Settings(), push=dataclasses.replace(Settings().push, config_owner=settings_owner)), world, kube)  # type: ignore[arg-type]
    return rec, kube


@pytest.mark.parametrize(("owner", "where"), [("RoleBinding/switchyard-operator", "ns"), ("ClusterRoleBinding/switchyard-operator", None)])
async def test_the_binding_granting_the_operator_its_rights_owns_the_config_secret(owner: str, where: str | None) -> None:
    """helm uninstall deletes that binding; the garbage collector then deletes the Secret
    (it holds keys) instead of leaving it behind. A Secret written before the owner was
    configured gets it on the next reconcile, with the same content."""
    rec, kube = owned_by(owner)
    kube.secrets[CONFIG_SECRET] = {"metadata": {"name": CONFIG_SECRET, "resourceVersion": "1",
                                                "labels": {"app.kubernetes.io/managed-by": "switchyard"}}, "data": {}}
    kube.role_bindings[(where, "switchyard-operator")] = {"metadata": {"name": "switchyard-operator", "uid": "rb-uid-1"}}
    await rec.reconcile_namespace("ns")
    kind = owner.partition("/")[0]
    assert kube.secrets[CONFIG_SECRET]["metadata"]["ownerReferences"] == [
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind, "name": "switchyard-operator", "uid": "rb-uid-1"}]
    # an existing Secret with the same content but no owner (written by an older operator)
    version = bundle(kube).version
    del kube.secrets[CONFIG_SECRET]["metadata"]["ownerReferences"]
    again, _ = owned_by(owner)
    again.kube = kube
    await again.reconcile_namespace("ns")
    assert kube.writes == [("replace", CONFIG_SECRET), ("replace", CONFIG_SECRET)]
    assert kube.secrets[CONFIG_SECRET]["metadata"]["ownerReferences"][0]["uid"] == "rb-uid-1"
    assert bundle(kube).version == version


async def test_an_owner_that_cannot_be_read_still_writes_the_config_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    rec, kube = owned_by("RoleBinding/switchyard-operator")
    await rec.reconcile_namespace("ns")
    assert kube.writes == [("create", CONFIG_SECRET)]
    assert "ownerReferences" not in kube.secrets[CONFIG_SECRET]["metadata"]
    assert "written without an owner" in caplog.text and "helm uninstall will leave it" in caplog.text
