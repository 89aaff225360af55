"""What the indexes keep, and how the user's intent for `primary` is read (pure)."""

from __future__ import annotations

import json

from switchyard.operator.world import World, primary_evidence, snapshot, snapshot_secret

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def binding(spec: dict, annotations: dict | None = None, managed: list | None = None) -> dict:
    meta = {"name": "b", "namespace": "ns", "uid": "u", "generation": 2, "annotations": annotations or {}}
    if managed is not None:
        meta["managedFields"] = managed
    return {"metadata": meta, "spec": spec, "status": {"primaryConfigured": False}}


def test_primary_in_the_stored_spec() -> None:
    assert primary_evidence(binding({"primary": None}))
    assert primary_evidence(binding({"primary": {"sourceRef": {"name": "a"}}}))


def test_explicit_null_survives_in_last_applied_configuration() -> None:
    applied = json.dumps({"spec": {"primary": None, "boundCredential": "a"}})
    assert primary_evidence(binding({"boundCredential": "a"}, {LAST_APPLIED: applied}))
    assert not primary_evidence(binding({"boundCredential": "a"}, {LAST_APPLIED: json.dumps({"spec": {"boundCredential": "a"}})}))
    assert not primary_evidence(binding({}, {LAST_APPLIED: "{not json"}))


def test_server_side_apply_managed_fields() -> None:
    managed = [{"manager": "kubectl", "fieldsV1": {"f:spec": {"f:primary": {}}}}]
    assert primary_evidence(binding({"boundCredential": "a"}, managed=managed))
    assert not primary_evidence(binding({"boundCredential": "a"}, managed=[{"fieldsV1": {"f:spec": {"f:boundCredential": {}}}}]))


def test_snapshot_is_a_deep_copy() -> None:
    body = binding({"primary": None, "aliases": ["x"]})
    snap = snapshot("AssistantBinding", body)
    body["spec"]["aliases"].append("y")
    assert snap.spec == {"primary": None, "aliases": ["x"]}
    assert snap.primary_evidence and snap.generation == 2
    assert snap.manifest()["metadata"] == {"name": "b", "namespace": "ns", "uid": "u", "generation": 2}
    assert not snapshot("ModelSource", {"metadata": {"name": "s"}, "spec": {"primary": 1}}).primary_evidence


def test_secret_data_kept_only_when_asked_and_marked() -> None:
    body = {"metadata": {"name": "s", "namespace": "ns", "resourceVersion": "7",
                         "labels": {"switchyard.dev/credential": "true"}}, "data": {"k": "dg=="}}
    assert snapshot_secret(body, keep_data=True).data == {"k": "dg=="}
    kept = snapshot_secret(body, keep_data=False)
    assert kept.data is None and kept.keys == ("k",) and kept.resource_version == "7"
    # What the server-side selector excludes is never kept, should it arrive anyway.
    for labels in ({}, {"switchyard.dev/credential": "yes"},
                   {"switchyard.dev/credential": "true", "app.kubernetes.io/part-of": "switchyard"}):
        body["metadata"]["labels"] = labels
        assert snapshot_secret(body, keep_data=True).data is None


def test_world_queries() -> None:
    src = lambda name, secret: snapshot("ModelSource", {"metadata": {"name": name, "namespace": "ns"}, "spec": {  # noqa: E731
        "provider": "openai", **({"credentialRef": {"name": secret, "key": "k"}} if secret else {})}})
    w = World(sources_by_ns={"ns": [src("b", "key-b"), src("a", "key-a"), src("c", None)], "empty": []},
              admin_token_secret="tok")
    assert [s.name for s in w.sources("ns")] == ["a", "b", "c"]
    assert w.namespaces() == {"ns"}
    assert w.referenced_secrets("ns") == {"key-a", "key-b"}
    assert w.sources_using_secret("ns", "key-b") == ["b"]
    assert w.source("ns", "c") is not None and w.source("ns", "zz") is None
    assert w.secret("ns", "tok") is None and w.pods("ns") == []
