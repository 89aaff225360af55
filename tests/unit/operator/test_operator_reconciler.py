"""One namespace reconciled with a fake API client: status written once, then nothing (idempotent)."""

from __future__ import annotations

import base64
from dataclasses import replace
from typing import Any

from switchyard.operator.reconciler import Reconciler
from switchyard.operator.selection import PodInfo
from switchyard.operator.settings import PushSettings, Settings
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


MARKED = {"switchyard.dev/credential": "true"}


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
    secret_body = {"metadata": {"name": "key", "namespace": "ns", "resourceVersion": "1", "labels": MARKED},
                   "data": {"api-key": b64("sk-1")}}
    world = World(
        sources_by_ns={"ns": sources},
        bindings_by_ns=index_b,
        pods_by_ns={"ns": [PodInfo("ns", "p-0", "u", {"app": "a"}, "Pending", None, None, "u||0|")]},
        secrets_by_key={("ns", "key"): [snapshot_secret(secret_body, keep_data=secret_data)]},
    )
    kube = FakeKube()
    kube.secrets["key"] = secret_body
    rec = Reconciler(replace(Settings(), push=replace(PushSettings(), delivery="push")), world, kube)  # type: ignore[arg-type]
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


async def test_credentials_come_from_the_marked_watch_and_are_never_fetched_by_name() -> None:
    rec, kube, _ = make([BINDING])
    await rec.reconcile_namespace("ns")
    await rec.reconcile_namespace("ns")
    assert "key" not in kube.secret_gets  # only the admin token is read by name
    chain = kube.patches[0][3]["chain"]
    assert chain[0]["resolvable"] is True


async def test_an_unmarked_or_reserved_secret_is_refused_and_nothing_is_read_or_sent() -> None:
    """The confused deputy: a ModelSource naming a Secret that is not labelled
    switchyard.dev/credential=true (so not in the operator's watch), or the admin-token
    Secret (even labelled), is refused in status; no GET, no catalog request."""

    class NoSession:
        def __getattr__(self, name: str) -> None:
            raise AssertionError(f"the operator tried to send something ({name})")

    for secret, reason in (("not-marked", "SecretNotMarked"), ("switchyard-admin-token", "SecretReserved")):
        rec, kube, _ = make([BINDING])
        admin = {"metadata": {"name": "switchyard-admin-token", "namespace": "ns", "resourceVersion": "1", "labels": MARKED},
                 "data": {"token": b64("admin-token-value"), "api-key": b64("admin-token-value")}}
        rec.world.secrets_by_key[("ns", "switchyard-admin-token")] = [snapshot_secret(admin, keep_data=True)]  # type: ignore[index]
        kube.secrets["not-marked"] = {"metadata": {"name": "not-marked"}, "data": {"api-key": b64("sk-stolen")}}
        src = snapshot("ModelSource", obj("ModelSource", "main", {
            "provider": "openai", "baseURL": "https://attacker.example/v1", "defaultModel": "gpt-4o",
            "credentialRef": {"name": secret, "key": "api-key"}}))
        rec.world.sources_by_ns["ns"] = [src]  # type: ignore[index]
        rec.session = rec.guarded_session = NoSession()  # type: ignore[assignment]
        await rec.refresh_catalog("ns", "main")
        await rec.reconcile_namespace("ns")
        assert "not-marked" not in kube.secret_gets  # (the admin token is read by name, for pushes only)
        by_name = {(p[0], p[2]): p[3] for p in kube.patches}
        cred = next(c for c in by_name[("modelsources", "main")]["conditions"] if c["type"] == "CredentialValid")
        assert (cred["status"], cred["reason"]) == ("False", reason)
        tier = by_name[("assistantbindings", "support")]["chain"][0]
        assert (tier["resolvable"], tier["reason"]) == (False, reason)
        assert "sk-stolen" not in repr(kube.patches) and "admin-token-value" not in repr(kube.patches)
        assert rec.metrics.refusals.labels(reason)._value.get() >= 1
        assert rec.check_binding(BINDING, None)[0].startswith(f"switchyard: tier0 (main/gpt-4o) is unresolvable: {reason}")


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


# --------------------------------------------------------------------------- disabled tiers and the binding's generation


async def test_a_changed_binding_resets_the_tiers_its_sidecar_disabled_once() -> None:
    """A real sidecar on loopback: a tier disabled there comes back when the binding's
    generation changes (and only then), after the new config runs; the status and the
    Events follow it."""
    from switchyard.sidecar.app import Listen, Sidecar
    from switchyard.sidecar.routing import breaker

    token = "t-" + "x" * 20
    sc = Sidecar(listen=Listen("127.0.0.1", 0, "127.0.0.1", 0), admin_token=token, drain_seconds=0.1)
    _, admin_port = await sc.start()
    try:
        binding = obj("AssistantBinding", "support", {"selector": {"matchLabels": {"app": "a"}}, "aliases": ["support"],
                                                      "primary": {"sourceRef": {"name": "main"}}})
        rec, kube, index_b = make([binding])
        url = f"http://127.0.0.1:{admin_port}"
        rec.world.pods_by_ns["ns"] = [PodInfo("ns", "p-0", "u", {"app": "a"}, "Running", "127.0.0.1", url, "u|1")]  # type: ignore[index]
        admin = {"metadata": {"name": "switchyard-admin-token", "namespace": "ns", "resourceVersion": "1"},
                 "data": {"token": b64(token)}}
        kube.secrets["switchyard-admin-token"] = admin
        clock = [1000.0]
        rec.mono = lambda: clock[0]
        await rec.start()

        def tier0():  # type: ignore[no-untyped-def]
            b = sc.runtime.snapshot.by_name["support"]  # type: ignore[union-attr]
            return sc.runtime.health(b, b.tiers[0])

        def disable_tier0() -> None:
            """What a 401 does in the sidecar (with the tier's fingerprint: only a change to it re-enables)."""
            b = sc.runtime.snapshot.by_name["support"]  # type: ignore[union-attr]
            breaker.disable(tier0(), "401", b.tiers[0].fingerprint(), 0.0)

        def last_breaker() -> dict[str, Any]:
            return [p for p in kube.patches if p[2] == "support" and "chain" in p[3]][-1][3]["chain"][0]["breaker"]

        def current() -> dict[str, Any]:
            w = rec.written.get(("AssistantBinding", "ns", "support"))
            return dict(w[1]) if w else index_b["ns"][0].status

        async def settle(generation: int, spec: dict[str, Any]) -> None:
            """The index brings back what was written (as the watch would), then a pass."""
            clock[0] += 61  # past the event limiter's interval: any new event would pass
            body = obj("AssistantBinding", "support", spec, status=current(), generation=generation)
            index_b["ns"][:] = [snapshot("AssistantBinding", body)]
            await rec.reconcile_namespace("ns")

        await rec.reconcile_namespace("ns")
        assert sc.runtime.snapshot is not None and last_breaker()["state"] == "closed"

        disable_tier0()
        await settle(1, binding["spec"])
        assert last_breaker()["state"] == "disabled" and last_breaker()["disabledReason"] == "401"
        assert [e["reason"] for e in kube.events] == ["TierDisabled"]
        await settle(1, binding["spec"])
        assert tier0().state.value == "disabled"  # same generation: left alone
        assert [e["reason"] for e in kube.events] == ["TierDisabled"]  # once, not per poll

        spec2 = {**binding["spec"], "aliases": ["support", "helpdesk"]}  # the tier's own config is unchanged
        await settle(2, spec2)
        assert sc.runtime.snapshot.by_name["support"].aliases == ["support", "helpdesk"]  # type: ignore[union-attr]
        assert tier0().state.value == "closed"
        assert last_breaker()["state"] == "closed" and last_breaker()["disabledInPods"] == 0
        assert [e["reason"] for e in kube.events] == ["TierDisabled", "TierEnabled"]

        # Disabled again under generation 2: stays disabled until the next change.
        disable_tier0()
        await settle(2, spec2)
        await settle(2, spec2)
        assert tier0().state.value == "disabled"
        assert [e["reason"] for e in kube.events] == ["TierDisabled", "TierEnabled", "TierDisabled"]
    finally:
        await rec.stop()
        await sc.stop()


async def test_a_rate_limit_one_pod_saw_reaches_the_other_pods_in_the_same_pass_and_so_does_its_end() -> None:
    """Two real sidecars on loopback: pod 0 waits out a 429 (its own); one pass later pod 1
    skips the tier too (marked shared), without a request; nothing is re-sent while nothing
    changes; when pod 0 is reset, the next pass clears pod 1 (docs/shared-health.md)."""
    from switchyard.sidecar.app import Listen, Sidecar
    from switchyard.sidecar.routing import breaker

    token = "t-" + "y" * 20
    cars = [Sidecar(listen=Listen("127.0.0.1", 0, "127.0.0.1", 0), admin_token=token, drain_seconds=0.1) for _ in range(2)]
    ports = [(await sc.start())[1] for sc in cars]
    rec, kube, _ = make([BINDING])
    try:
        rec.world.pods_by_ns["ns"] = [  # type: ignore[index]
            PodInfo("ns", f"p-{i}", f"u{i}", {"app": "a"}, "Running", "127.0.0.1", f"http://127.0.0.1:{port}", f"u{i}|1")
            for i, port in enumerate(ports)
        ]
        kube.secrets["switchyard-admin-token"] = {"metadata": {"name": "switchyard-admin-token", "namespace": "ns"},
                                                  "data": {"token": b64(token)}}
        await rec.start()
        await rec.reconcile_namespace("ns")
        assert rec.hint_sends == 0  # nothing seen, nothing said

        def tier0(sc: Sidecar) -> Any:
            b = sc.runtime.snapshot.by_name["support"]  # type: ignore[union-attr]
            return b, sc.runtime.health(b, b.tiers[0])

        b, h = tier0(cars[0])
        breaker.rate_limit(h, b.breaker, cars[0].runtime.clock(), 60.0)  # what its own 429 does
        await rec.reconcile_namespace("ns")
        assert rec.hint_sends == 1
        _, h1 = tier0(cars[1])
        assert h1.rate_limited_until > cars[1].runtime.clock() + 55 and breaker.is_shared(h1, cars[1].runtime.clock())
        await rec.reconcile_namespace("ns")
        assert rec.hint_sends == 1  # unchanged: not re-sent

        from switchyard.operator.sharing import HintMemory

        rec.hints = HintMemory()  # as after a leader change: this process never told pod 1 anything
        await rec.reconcile_namespace("ns")
        await rec.reconcile_namespace("ns")
        assert rec.hint_sends == 2  # told once again (it knew: harmless), then not again
        rec.hints = HintMemory()
        cars[0].runtime.reset(b)  # an admin reset pod 0: nobody saw it any more
        await rec.reconcile_namespace("ns")  # pod 1 reports a shared wait nobody sees: cleared
        assert rec.hint_sends == 3 and h1.rate_limited_until == 0.0
        assert b"switchyard_operator_health_hints_sent_total{outcome=\"sent\"}" in rec.metrics.exposition()
    finally:
        await rec.stop()
        for sc in cars:
            await sc.stop()


async def test_secret_delivery_reads_the_admin_token_only_when_a_hint_is_due_and_sends_nothing_without_one() -> None:
    """Secret delivery sends no token with the config: shared health reads the admin-token
    Secret only when some pod is to be told something (a quiet namespace costs no API
    call), and a namespace without one sends nothing (each pod learns alone)."""
    from switchyard.sidecar.app import Listen, Sidecar
    from switchyard.sidecar.contract.report import parse_report
    from switchyard.sidecar.http.admin import status_report
    from switchyard.sidecar.routing import breaker

    token = "t-" + "z" * 20
    rec, kube, _ = make([BINDING])
    rec = Reconciler(Settings(), rec.world, kube)  # type: ignore[arg-type]  # Secret delivery (the default)
    cars = [Sidecar(listen=Listen("127.0.0.1", 0, "127.0.0.1", 0), admin_token=token, drain_seconds=0.1) for _ in range(2)]
    ports = [(await sc.start())[1] for sc in cars]
    try:
        from switchyard.compiler import compile_config
        from switchyard.api.manifests import ResourceSet, parse_document

        rs = ResourceSet()
        for doc in ({"apiVersion": "switchyard.dev/v1alpha1", "kind": "ModelSource", "metadata": {"name": "main"},
                     "spec": {"provider": "openai", "baseURL": "http://127.0.0.1:9/v1", "defaultModel": "gpt-4o",
                              "credentialRef": {"env": "NOPE"}}},
                    {"apiVersion": "switchyard.dev/v1alpha1", "kind": "AssistantBinding", "metadata": {"name": "support"},
                     "spec": {"primary": {"sourceRef": {"name": "main"}}}}):
            r, errs = parse_document(doc)
            assert not errs
            (rs.sources if r.kind == "ModelSource" else rs.bindings).append(r)
        config = compile_config(rs, standalone=True, environ={"NOPE": "sk-x"}).config
        for sc in cars:
            sc.load(config)
        pods = [PodInfo("ns", f"p-{i}", f"u{i}", {"app": "a"}, "Running", "127.0.0.1", f"http://127.0.0.1:{port}", f"u{i}|1")
                for i, port in enumerate(ports)]
        await rec.start()

        def statuses() -> dict[Any, Any]:
            return {p.key: parse_report(status_report(sc.runtime).to_wire()) for p, sc in zip(pods, cars, strict=True)}

        await rec._share_health("ns", pods, statuses(), None)
        assert kube.secret_gets == [] and rec.hint_sends == 0  # nothing to tell: no Secret read

        b = cars[0].runtime.snapshot.config.bindings[0]  # type: ignore[union-attr]
        breaker.rate_limit(cars[0].runtime.health(b, b.tiers[0]), b.breaker, cars[0].runtime.clock(), 60.0)
        await rec._share_health("ns", pods, statuses(), None)
        assert kube.secret_gets == ["switchyard-admin-token"] and rec.hint_sends == 0  # none in the namespace
        assert b'switchyard_operator_health_hints_sent_total{outcome="no-token"}' in rec.metrics.exposition()

        kube.secrets["switchyard-admin-token"] = {"metadata": {"name": "switchyard-admin-token"}, "data": {"token": b64(token)}}
        rec.admin_tokens.clear()
        await rec._share_health("ns", pods, statuses(), None)
        assert rec.hint_sends == 1
        b1 = cars[1].runtime.snapshot.config.bindings[0]  # type: ignore[union-attr]
        assert breaker.is_shared(cars[1].runtime.health(b1, b1.tiers[0]), cars[1].runtime.clock())
    finally:
        await rec.stop()
        for sc in cars:
            await sc.stop()


async def test_check_binding_warns_from_the_indexes() -> None:
    binding = obj("AssistantBinding", "new", {
        "primary": {"sourceRef": {"name": "main"}}, "fallbacks": [{"sourceRef": {"name": "ghost"}}],
        "requires": {"vision": True, "minContextTokens": 10_000_000}})
    rec, _, _ = make([])
    assert rec.check_binding(binding) == [
        "switchyard: tier0 (main/gpt-4o) lacks maxContextTokens>=10000000 (spec.requires): requests will skip this tier",
        "switchyard: tier1 (ghost) is unresolvable: SourceNotFound: ModelSource ghost not found",
    ]
    # A namespace the operator does not watch: its indexes know nothing there, so no warning.
    from dataclasses import replace

    rec.s = replace(rec.s, namespaces=("elsewhere",))
    assert rec.check_binding(binding) == []


async def test_several_keys_reported_by_index_and_the_check_sent_with_the_first_usable(monkeypatch: Any) -> None:
    """credentialRefs: a key whose Secret is not marked makes only that key unusable; the
    source's status lists every key by index (reason, never a value), the catalog check is
    sent with the first key that resolves, and the binding's chain shows the keys."""
    from switchyard.operator import catalog as catalogs

    sent: list[str | None] = []

    async def fake_fetch(session: Any, provider: str, base_url: str, credential: str | None, **_: Any) -> Any:
        sent.append(credential)
        return f"{base_url}/models", catalogs.Outcome(ok=True, ids=("gpt-4o",), count=1)

    monkeypatch.setattr(catalogs, "fetch", fake_fetch)
    rec, kube, _ = make([BINDING])
    kube.secrets["not-marked"] = {"metadata": {"name": "not-marked"}, "data": {"api-key": b64("sk-stolen")}}
    rec.world.sources_by_ns["ns"] = [snapshot("ModelSource", obj("ModelSource", "main", {  # type: ignore[index]
        "provider": "openai", "baseURL": "http://127.0.0.1:9/v1", "defaultModel": "gpt-4o",
        "credentialRefs": [{"name": "not-marked", "key": "api-key"}, {"name": "key", "key": "api-key"},
                           {"name": "key", "key": "other"}]}))]
    rec.session = rec.guarded_session = object()  # type: ignore[assignment]
    await rec.refresh_catalog("ns", "main")
    await rec.reconcile_namespace("ns")
    assert sent == ["sk-1"]
    by_name = {(p[0], p[2]): p[3] for p in kube.patches}
    src = by_name[("modelsources", "main")]
    assert [(k["index"], k["resolvable"], k.get("reason")) for k in src["keys"]] == [
        (0, False, "SecretNotMarked"), (1, True, None), (2, False, "SecretKeyMissing")]
    cred = next(c for c in src["conditions"] if c["type"] == "CredentialValid")
    assert cred["status"] == "True"
    assert cred["message"].endswith("(with key 1); unusable: key 0: SecretNotMarked, key 2: SecretKeyMissing")
    tier = by_name[("assistantbindings", "support")]["chain"][0]
    assert tier["resolvable"] is True
    assert [(k["index"], k["state"], k.get("reason")) for k in tier["keys"]] == [
        (0, "unresolvable", "SecretNotMarked"), (1, "usable", None), (2, "unresolvable", "SecretKeyMissing")]
    assert "sk-1" not in repr(kube.patches) and "sk-stolen" not in repr(kube.patches)
