"""One namespace reconciled with a fake API client: status written once, then nothing (idempotent)."""

from __future__ import annotations

import base64
from typing import Any

from switchyard.operator.reconciler import Reconciler
from switchyard.operator.selection import PodInfo
from switchyard.operator.settings import Settings
from switchyard.operator.world import World, snapshot, snapshot_secret


class FakeKube:
    def __init__(self) -> None:
        self.patches: list[tuple[str, str, str, dict[str, Any]]] = []
        self.events: list[dict[str, Any]] = []
        self.secret_gets: list[str] = []
        self.secrets: dict[str, dict[str, Any]] = {}

    async def patch_status(self, plural: str, ns: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        self.patches.append((plural, ns, name, patch))
        return {}

    async def create_event(self, ns: str, body: dict[str, Any]) -> None:
        self.events.append(body)

    async def get_secret(self, ns: str, name: str) -> dict[str, Any] | None:
        self.secret_gets.append(name)
        return self.secrets.get(name)

    async def close(self) -> None:
        pass


def obj(kind: str, name: str, spec: dict[str, Any], status: dict[str, Any] | None = None, **meta: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}", "generation": 1, **meta},
            "spec": spec, "status": status or {}}


def b64(v: str) -> str:
    return base64.b64encode(v.encode()).decode()


def make(bindings: list[dict[str, Any]], *, secret_data: bool = True) -> tuple[Reconciler, FakeKube, dict[str, list[Any]]]:
    sources = [snapshot("ModelSource", obj("ModelSource", "main", {
        "provider": "openai", "baseURL": "http://127.0.0.1:9/v1", "defaultModel": "gpt-4o",
        "credentialRef": {"name": "key", "key": "api-key"}}))]
    index_b = {"ns": [snapshot("AssistantBinding", b) for b in bindings]}
    secret_body = {"metadata": {"name": "key", "namespace": "ns", "resourceVersion": "1"}, "data": {"api-key": b64("sk-1")}}
    world = World(
        sources_by_ns={"ns": sources},
        bindings_by_ns=index_b,
        pods_by_ns={"ns": [PodInfo("ns", "p-0", "u", {"app": "a"}, "Pending", None, None, "u||0|")]},
        secrets_by_key={("ns", "key"): [snapshot_secret(secret_body, keep_data=secret_data)]},
    )
    kube = FakeKube()
    kube.secrets["key"] = secret_body
    rec = Reconciler(Settings(), world, kube)  # type: ignore[arg-type]
    return rec, kube, index_b


BINDING = obj("AssistantBinding", "support", {"selector": {"matchLabels": {"app": "a"}}, "primary": {"sourceRef": {"name": "main"}}})


async def test_status_written_once_then_nothing() -> None:
    rec, kube, _ = make([BINDING])
    await rec.reconcile_namespace("ns")
    (plural, ns, name, patch), = kube.patches
    assert (plural, ns, name) == ("assistantbindings", "ns", "support")
    assert patch["summary"] == {"primary": "main/gpt-4o", "active": "-", "breakers": "0/1", "pods": "0/1"}
    assert patch["pods"]["problems"] == [{"pod": "p-0", "reason": "NoAddress", "message": "pod is Pending without an IP yet"}]
    await rec.reconcile_namespace("ns")
    assert len(kube.patches) == 1  # same inputs, same status: no write


async def test_secret_data_fetched_once_when_indexed_without_it() -> None:
    rec, kube, _ = make([BINDING], secret_data=False)
    await rec.reconcile_namespace("ns")
    await rec.reconcile_namespace("ns")
    assert kube.secret_gets == ["key"]  # cached by resourceVersion
    chain = kube.patches[0][3]["chain"]
    assert chain[0]["resolvable"] is True


async def test_cleared_primary_remembered_from_status() -> None:
    cleared = obj("AssistantBinding", "flip", {"boundCredential": "main", "aliases": ["flip"]},
                  status={"primaryConfigured": True})
    legacy = obj("AssistantBinding", "old", {"boundCredential": "main", "aliases": ["old"]})
    rec, kube, _ = make([cleared, legacy])
    await rec.reconcile_namespace("ns")
    by_name = {p[2]: p[3] for p in kube.patches}
    assert by_name["flip"]["chain"] == [] and by_name["flip"]["summary"]["primary"] == "(unbound: PrimaryCleared)"
    assert by_name["old"]["chain"][0]["source"] == "main"  # never set: the deprecated field still counts


async def test_invalid_spec_reported_not_raised() -> None:
    rec, kube, _ = make([obj("AssistantBinding", "odd", {"boundCredential": 42})])
    await rec.reconcile_namespace("ns")
    (_, _, _, patch), = kube.patches
    resolved = next(c for c in patch["conditions"] if c["type"] == "Resolved")
    assert resolved["reason"] == "InvalidSpec" and "boundCredential" in resolved["message"]


async def test_a_status_overwritten_elsewhere_is_healed_once_the_watch_lag_is_over() -> None:
    rec, kube, _ = make([BINDING])
    clock = [1000.0]
    rec.mono = lambda: clock[0]
    await rec.reconcile_namespace("ns")
    await rec.reconcile_namespace("ns")
    assert len(kube.patches) == 1
    clock[0] += 11  # the index still shows the old status (someone else wrote it): write again
    await rec.reconcile_namespace("ns")
    assert len(kube.patches) == 2
    rec.on_leadership(True)  # a new term forgets what it wrote in the last one
    assert rec.written == {}
