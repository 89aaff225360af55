"""The operator when things around it fail:

- the API server answers a status patch with 409, 429 or 5xx, or drops the connection: the
  client layer retries what is idempotent (GETs, merge patches) and nothing else; a write
  that still fails does not stop the namespace's other writes and is not lost (the
  namespace is reconciled again and the same status written);
- a sidecar that hangs or refuses connections does not block the push to the others;
- a deleted Secret turns the tiers that need it unresolvable (SecretNotMarked: the operator cannot tell deleted from unlabelled) in status
  and in the sidecars, instead of leaving them the stale key;
- a model catalog larger than one socket read is read whole.

The API server and the sidecars are real HTTP servers on loopback (aiohttp, and the real
sidecar); the kube-apiserver tier (tests/e2e) covers the same with the real thing.
"""

from __future__ import annotations

import asyncio
import base64
import time
from dataclasses import replace
from typing import Any

import aiohttp
import kopf
import pytest
from aiohttp import web

from switchyard.operator import catalog as catalogs
from switchyard.operator.kube import Kube, KubeError
from switchyard.operator.reconciler import STATUS_RETRY_SECONDS, Reconciler
from switchyard.operator.selection import PodInfo
from switchyard.operator.settings import PushSettings, Settings
from switchyard.operator.world import World, snapshot, snapshot_secret
from switchyard.sidecar.app import Listen, Sidecar

TOKEN = "op-faults-admin-token"
MARKED = {"switchyard.dev/credential": "true"}


def b64(v: str) -> str:
    return base64.b64encode(v.encode()).decode()


# ----------------------------------------------------------------------------- a fake API server


class FakeAPI:
    """Answers each request with the next scripted status (then 200), recording them."""

    def __init__(self, script: list[tuple[int, dict[str, str]]]) -> None:
        self.script = list(script)
        self.calls: list[tuple[str, str, bytes]] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.calls.append((request.method, request.path, await request.read()))
        if self.script:
            status, headers = self.script.pop(0)
            body = {"kind": "Status", "reason": {409: "Conflict", 429: "TooManyRequests"}.get(status, "InternalError"),
                    "message": f"scripted {status}"}
            return web.json_response(body, status=status, headers=headers)
        return web.json_response({"kind": "AssistantBinding", "status": {}})

    async def start(self) -> str:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        return f"http://127.0.0.1:{self.runner.addresses[0][1]}"


async def kube_for(server: str) -> Kube:
    async def login() -> kopf.ConnectionInfo:
        return kopf.ConnectionInfo(server=server, insecure=True, token="t")

    kube = Kube(login)
    kube.retry_delays = (0.01, 0.01)
    return kube


@pytest.mark.parametrize("status", [409, 429, 500, 502, 503, 504])
async def test_a_status_patch_is_retried_on_transient_answers_and_lands_whole(status: int) -> None:
    api = FakeAPI([(status, {"Retry-After": "0"}), (503, {})])
    kube = await kube_for(await api.start())
    try:
        await kube.patch_status("assistantbindings", "ns", "support", {"summary": {"primary": "x"}})
    finally:
        await kube.close()
        await api.runner.cleanup()
    assert [c[0] for c in api.calls] == ["PATCH"] * 3
    assert len({c[2] for c in api.calls}) == 1  # the same patch each time: nothing dropped, nothing merged twice


async def test_retries_are_bounded_and_not_for_permanent_answers_or_non_idempotent_calls() -> None:
    api = FakeAPI([(500, {})] * 5 + [(422, {})] + [(503, {}), (409, {})])
    kube = await kube_for(await api.start())
    try:
        with pytest.raises(KubeError) as e:
            await kube.patch_status("assistantbindings", "ns", "a", {"x": 1})
        assert e.value.status == 500 and len(api.calls) == 3  # 1 + len(retry_delays)
        api.script = [(422, {})]
        with pytest.raises(KubeError):
            await kube.patch_status("assistantbindings", "ns", "a", {"x": 1})
        assert len(api.calls) == 4  # a validation error is not retried
        api.script = [(503, {})]
        with pytest.raises(KubeError):
            await kube.create_event("ns", {"reason": "X"})  # a create is not idempotent
        api.script = [(409, {})]
        with pytest.raises(KubeError):
            await kube.patch_lease("ns", "lease", "7", {})  # 409 there means someone else holds it
        assert [c[0] for c in api.calls[4:]] == ["POST", "PATCH"]
    finally:
        await kube.close()
        await api.runner.cleanup()


async def test_a_dropped_connection_is_retried_on_a_fresh_session() -> None:
    api = FakeAPI([])
    server = await api.start()
    port = int(server.rsplit(":", 1)[1])
    await api.runner.cleanup()  # nothing listens now
    kube = await kube_for(server)

    async def restart() -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", api.handle)
        api.runner = web.AppRunner(app, access_log=None)
        await api.runner.setup()
        await web.TCPSite(api.runner, "127.0.0.1", port).start()

    real_connect = kube._connect
    connects = 0

    async def connect() -> None:
        nonlocal connects
        connects += 1
        if connects == 2:  # the API server is back by the first retry
            await restart()
        await real_connect()

    kube._connect = connect  # type: ignore[method-assign]
    try:
        await kube.get_secret("ns", "s")
    finally:
        await kube.close()
        await api.runner.cleanup()
    assert connects == 2 and [c[0] for c in api.calls] == ["GET"]


# ----------------------------------------------------------------------------- the reconciler


class FlakyKube:
    """The reconciler's API client, failing the status patches of chosen objects N times."""

    def __init__(self, fail: dict[str, list[Exception]] | None = None) -> None:
        self.fail = fail or {}
        self.patches: list[tuple[str, dict[str, Any]]] = []
        self.events: list[dict[str, Any]] = []
        # The admin token is read by name (the only Secret the operator GETs).
        self.secrets: dict[str, dict[str, Any]] = {"switchyard-admin-token": {
            "metadata": {"name": "switchyard-admin-token", "namespace": "ns", "resourceVersion": "1"},
            "data": {"token": b64(TOKEN)}}}

    async def patch_status(self, plural: str, ns: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        queue = self.fail.get(name)
        if queue:
            raise queue.pop(0)
        self.patches.append((name, patch))
        return {}

    async def create_event(self, ns: str, body: dict[str, Any]) -> None:
        self.events.append(body)

    async def get_secret(self, ns: str, name: str) -> dict[str, Any] | None:
        return self.secrets.get(name)

    async def post(self, *a: Any, **k: Any) -> None:  # pragma: no cover - not used
        raise AssertionError

    async def close(self) -> None:
        pass


def _obj(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}", "generation": 1}, "spec": spec, "status": {}}


def _secret(name: str, data: dict[str, str]) -> Any:
    return snapshot_secret({"metadata": {"name": name, "namespace": "ns", "resourceVersion": "1", "labels": MARKED},
                            "data": {k: b64(v) for k, v in data.items()}}, keep_data=True)


def world(pods: list[PodInfo], *, with_key: bool = True, upstream: str = "http://127.0.0.1:9/v1") -> World:
    source = _obj("ModelSource", "main", {"provider": "openai", "baseURL": upstream, "defaultModel": "gpt-4o",
                                          "credentialRef": {"name": "key", "key": "api-key"}})
    bindings = [_obj("AssistantBinding", n, {"selector": {"matchLabels": {"app": "a"}}, "aliases": [n],
                                             "primary": {"sourceRef": {"name": "main"}}}) for n in ("alpha", "beta")]
    secrets: dict[tuple[str, str], list[Any]] = {}
    if with_key:
        secrets[("ns", "key")] = [_secret("key", {"api-key": "sk-live-key-1"})]
    return World(
        sources_by_ns={"ns": [snapshot("ModelSource", source)]},
        bindings_by_ns={"ns": [snapshot("AssistantBinding", b) for b in bindings]},
        pods_by_ns={"ns": pods},
        secrets_by_key=secrets,
    )


def pod(name: str, admin_url: str | None) -> PodInfo:
    return PodInfo("ns", name, f"uid-{name}", {"app": "a"}, "Running", "127.0.0.1", admin_url, f"{name}|0")


def settings() -> Settings:
    return replace(Settings(), push=replace(PushSettings(), connect_timeout_seconds=0.5, request_timeout_seconds=1.0,
                                            delivery="push"))


async def test_a_failed_status_write_does_not_stop_the_others_and_is_written_on_the_next_pass() -> None:
    wall = lambda: 1_767_225_600.0  # noqa: E731 - one wall clock: condition timestamps compare equal
    clean = FlakyKube()
    await Reconciler(settings(), world([]), clean, wall=wall).reconcile_namespace("ns")  # type: ignore[arg-type]
    expected = dict(clean.patches)

    kube = FlakyKube({"alpha": [KubeError(409, "Conflict", "the object has been modified"), aiohttp.ServerDisconnectedError()]})
    rec = Reconciler(settings(), world([]), kube, wall=wall)  # type: ignore[arg-type]
    await rec.reconcile_namespace("ns")
    assert [n for n, _ in kube.patches] == ["beta"]  # beta written although alpha failed first
    due = rec.queue.due_in(("ns", "ns"))
    assert due is not None and due <= STATUS_RETRY_SECONDS
    await rec.reconcile_namespace("ns")  # alpha fails again (dropped connection): still not lost
    await rec.reconcile_namespace("ns")
    got = dict(kube.patches)
    assert got["alpha"] == expected["alpha"] and got["beta"] == expected["beta"]
    assert [n for n, _ in kube.patches].count("beta") == 1  # and beta was not rewritten needlessly


class Hanging:
    """Accepts connections and never answers (a wedged sidecar)."""

    async def start(self) -> int:
        self.writers: list[asyncio.StreamWriter] = []

        async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.writers.append(writer)
            await reader.read()  # until the operator gives up and closes

        self.server = await asyncio.start_server(hold, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        for w in self.writers:
            w.close()
        self.server.close()
        await self.server.wait_closed()


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_an_unreachable_sidecar_does_not_block_the_others() -> None:
    good = Sidecar(listen=Listen("127.0.0.1", 0, "127.0.0.1", 0), admin_token=TOKEN)
    _, admin = await good.start()
    hang = Hanging()
    hang_port = await hang.start()
    pods = [pod("p-hang", f"http://127.0.0.1:{hang_port}"), pod("p-refused", f"http://127.0.0.1:{_closed_port()}"),
            pod("p-good", f"http://127.0.0.1:{admin}")]
    kube = FlakyKube()
    rec = Reconciler(settings(), world(pods), kube)  # type: ignore[arg-type]
    await rec.start()
    try:
        t0 = time.monotonic()
        await rec.reconcile_namespace("ns")
        took = time.monotonic() - t0
        assert took < 1.0 * 2 + 1.0, f"one pass took {took:.1f}s: a wedged sidecar held the others"
        assert good.runtime.snapshot is not None and {b.name for b in good.runtime.snapshot.config.bindings} == {"alpha", "beta"}
        status = dict(kube.patches)["alpha"]
        assert status["pods"]["selected"] == 3 and status["pods"]["configured"] == 1
        reasons = {p["pod"]: p["reason"] for p in status["pods"]["problems"]}
        assert set(reasons) == {"p-hang", "p-refused"}, reasons
        assert rec.queue.due_in(("ns", "ns")) is not None  # the two are tried again, with backoff
    finally:
        await rec.stop()
        await hang.close()
        await good.stop()


async def test_a_deleted_secret_makes_its_tiers_unresolvable_instead_of_keeping_the_stale_key() -> None:
    sidecar = Sidecar(listen=Listen("127.0.0.1", 0, "127.0.0.1", 0), admin_token=TOKEN)
    _, admin = await sidecar.start()
    pods = [pod("p-0", f"http://127.0.0.1:{admin}")]
    kube = FlakyKube()
    rec = Reconciler(settings(), world(pods), kube)  # type: ignore[arg-type]
    await rec.start()
    try:
        await rec.reconcile_namespace("ns")
        tier = sidecar.runtime.snapshot.config.bindings[0].tiers[0]
        assert tier.problem is None and tier.credential.get_secret_value() == "sk-live-key-1"

        rec.world = world(pods, with_key=False)  # the Secret is deleted (the index drops it)
        rec.secret_changed("ns", "key")
        assert rec.queue.due_in(("ns", "ns")) is not None
        await rec.reconcile_namespace("ns")

        tier = sidecar.runtime.snapshot.config.bindings[0].tiers[0]
        assert tier.credential is None and tier.problem and tier.problem.startswith("SecretNotMarked")
        chain = [p for n, p in kube.patches if n == "alpha"][-1]["chain"]
        assert chain[0]["resolvable"] is False and chain[0]["reason"] == "SecretNotMarked"
        assert chain[0]["message"].startswith("no Secret key labelled switchyard.dev/credential=true in namespace ns")
        async with aiohttp.ClientSession() as s:  # and the sidecar answers so, without calling anyone
            async with s.post(f"http://127.0.0.1:{sidecar.ports[0]}/v1/chat/completions",
                              json={"model": "alpha", "messages": [{"role": "user", "content": "hi"}]}) as r:
                body = await r.json()
                assert r.status == 503 and "unresolvable(SecretNotMarked)" in body["error"]["message"]
    finally:
        await rec.stop()
        await sidecar.stop()


# ----------------------------------------------------------------------------- catalogs


async def test_a_catalog_larger_than_one_read_is_read_whole() -> None:
    ids = [f"model-{i:05d}-" + "x" * 40 for i in range(6000)]  # ~400 KB of JSON

    async def models(request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": i, "object": "model"} for i in ids]})

    app = web.Application()
    app.router.add_get("/v1/models", models)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        async with aiohttp.ClientSession() as s:
            _, outcome = await catalogs.fetch(s, "openai", f"http://127.0.0.1:{runner.addresses[0][1]}/v1", "sk", timeout_seconds=10)
    finally:
        await runner.cleanup()
    assert outcome.ok and outcome.count == len(ids)
