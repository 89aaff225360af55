"""The operator against a real kube-apiserver, with real sidecars and a fake upstream on loopback.

The operator runs as a subprocess (`switchyard operator`) with the operator identity's
kubeconfig only, bound to `operator/rbac.yaml` and nothing else, so a missing verb fails
here. No kubelet: pods stay Pending, so each sidecar is reached either through the
test-only `switchyard.dev/admin-url` annotation or, for the real path, by writing the
pod's status (Running, podIP 127.0.0.x) the way a kubelet would.

Every wait is a poll with a deadline (`poll`), never a sleep.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import string
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

import kube_tools

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = Path(__file__).resolve().parent / "manifests"
SWITCHYARD = Path(sys.executable).with_name("switchyard")
ADMIN_TOKEN = "e2e-" + secrets.token_hex(12)
KEY_PRIMARY, KEY_ROTATED, KEY_ANTHROPIC = "sk-test-primary", "sk-test-rotated", "sk-ant-test"


def poll(what: str, probe: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    delay, last = 0.05, None
    while True:
        try:
            last = probe()
        except (AssertionError, KeyError, IndexError, TypeError, ValueError) as e:
            last = e
            result = None
        else:
            result = last
        if result and not isinstance(result, Exception):
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}; last: {last!r}")
        time.sleep(delay)  # poll interval under a deadline
        delay = min(delay * 2, 0.5)


# --------------------------------------------------------------------------- loopback servers


class LoopThread:
    """An asyncio loop in a thread (the test's own code stays synchronous)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Any, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


class FakeUpstream:
    """An OpenAI-style API (/v1), a keyless local runtime (/local/v1), an Anthropic list (/anthropic)."""

    def __init__(self, lt: LoopThread) -> None:
        self.lt = lt
        self.fail_primary = False
        self.keys = {KEY_PRIMARY, KEY_ROTATED}
        self.seen_keys: list[str] = []
        self.calls: list[str] = []

    def _openai_auth(self, request: web.Request) -> bool:
        key = request.headers.get("Authorization", "").removeprefix("Bearer ")
        self.seen_keys.append(key)
        return key in self.keys

    async def models(self, request: web.Request) -> web.Response:
        if not self._openai_auth(request):
            # like OpenAI: the message echoes part of the key (the operator must not copy it)
            return web.json_response({"error": {"code": "invalid_api_key", "message": "Incorrect API key provided: sk-te****"}}, status=401)
        return web.json_response({"object": "list", "data": [{"id": "gpt-4o"}, {"id": "gpt-4o-mini"}]})

    async def local_models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "llama-3.1-8b"}]})

    async def anthropic_models(self, request: web.Request) -> web.Response:
        if request.headers.get("x-api-key") != KEY_ANTHROPIC:
            return web.json_response({"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}}, status=401)
        return web.json_response({"data": [{"id": "claude-sonnet-4-5-20250929", "type": "model"}], "has_more": False})

    def _completion(self, model: str, text: str) -> web.Response:
        return web.json_response({
            "id": "chatcmpl-e2e", "object": "chat.completion", "created": 1, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        })

    async def chat(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.calls.append(f"primary:{body.get('model')}")
        if self.fail_primary:
            return web.json_response({"error": {"message": "upstream exploded", "type": "server_error"}}, status=500)
        if not self._openai_auth(request):
            return web.json_response({"error": {"code": "invalid_api_key"}}, status=401)
        return self._completion(body.get("model", ""), "from primary")

    async def local_chat(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.calls.append(f"local:{body.get('model')}")
        return self._completion(body.get("model", ""), "from local")

    def start(self) -> str:
        app = web.Application()
        app.add_routes([
            web.get("/v1/models", self.models),
            web.post("/v1/chat/completions", self.chat),
            web.get("/local/v1/models", self.local_models),
            web.post("/local/v1/chat/completions", self.local_chat),
            web.get("/anthropic/v1/models", self.anthropic_models),
        ])

        async def go() -> int:
            self.runner = web.AppRunner(app, access_log=None)
            await self.runner.setup()
            site = web.TCPSite(self.runner, "127.0.0.1", 0)
            await site.start()
            return site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

        return f"http://127.0.0.1:{self.lt.run(go())}"

    def stop(self) -> None:
        self.lt.run(self.runner.cleanup())


class SidecarOnLoopback:
    """A real `switchyard.sidecar.app.Sidecar`, started and stopped from the test."""

    def __init__(self, lt: LoopThread, *, admin_host: str = "127.0.0.1", admin_port: int = 0,
                 kubelet: Any = None) -> None:
        from switchyard.sidecar.app import Listen, Sidecar

        self.lt = lt
        self.admin_host = admin_host
        self.kubelet = kubelet  # kubelet_volume.KubeletPlayer: the config from the Secret, as in a pod
        files = {"config_dir": kubelet.config_dir, "labels_file": kubelet.labels_path} if kubelet is not None else {}
        self.sidecar = Sidecar(listen=Listen("127.0.0.1", 0, admin_host, admin_port), admin_token=ADMIN_TOKEN, drain_seconds=0.2,
                               **files)
        self.api_port, self.admin_port = lt.run(self.sidecar.start())

    @classmethod
    def in_pod(cls, kube: kube_tools.Cluster, lt: LoopThread, ns: str, name: str, app: str, root: Path) -> SidecarOnLoopback:
        """A pod in the API server and its sidecar on loopback, configured as in a cluster:
        from the namespace's config Secret (the harness plays the kubelet)."""
        from kubelet_volume import KubeletPlayer

        port = kube_tools.free_port()
        kube.kubectl("create", "-n", ns, "-f", "-", input=sidecar_pod(name, app, admin_url=f"http://127.0.0.1:{port}"))
        return cls(lt, admin_port=port, kubelet=KubeletPlayer(kube, ns, name, root / ns / name))

    @property
    def admin_url(self) -> str:
        return f"http://{self.admin_host}:{self.admin_port}"

    def stop(self) -> None:
        if self.kubelet is not None:
            self.kubelet.stop()
        self.lt.run(self.sidecar.stop())

    def admin_status(self) -> dict[str, Any]:
        req = urllib.request.Request(f"{self.admin_url}/admin/status", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        with urllib.request.urlopen(req, timeout=5) as r:
            return json.loads(r.read())

    def binding(self, name: str) -> dict[str, Any] | None:
        return next((b for b in self.admin_status().get("bindings", []) if b["name"] == name), None)

    def chat(self, model: str) -> tuple[int, dict[str, str], dict[str, Any]]:
        body = json.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}]}).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{self.api_port}/v1/chat/completions", data=body,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=15) as r:
                return r.status, dict(r.headers), json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), json.loads(e.read() or b"{}")


# --------------------------------------------------------------------------- the operator process


class Operator:
    def __init__(self, kube: kube_tools.Cluster, log_dir: Path, env: dict[str, str], args: list[str] | None = None) -> None:
        self.kube, self.log_dir, self.extra_env = kube, log_dir, env
        self.args = args or ["--log-level", "info"]  # after `switchyard operator`
        self.proc: subprocess.Popen[bytes] | None = None
        self.n = 0

    @property
    def log(self) -> Path:
        return self.log_dir / f"operator-{self.n}.log"

    def start(self, name: str = "op-a") -> None:
        self.n += 1
        env = self.kube.env("operator")
        env.update({
            "POD_NAMESPACE": kube_tools.OPERATOR_NAMESPACE, "POD_NAME": name,
            "SWITCHYARD_WEBHOOK": "off", "SWITCHYARD_ALLOW_ADMIN_URL_ANNOTATION": "1",
            # These modules test the push path (sidecars on loopback, no kubelet to mount a
            # Secret); test_config_delivery_e2e.py runs the Secret delivery, the default.
            "SWITCHYARD_CONFIG_DELIVERY": "push",
            "SWITCHYARD_HEALTH_INTERVAL_SECONDS": "1", "SWITCHYARD_RESYNC_SECONDS": "5",
            "SWITCHYARD_CATALOG_TTL_SECONDS": "30", "SWITCHYARD_CATALOG_RETRY_SECONDS": "2",
            "SWITCHYARD_PUSH_BACKOFF_MAX_SECONDS": "2",
            "SWITCHYARD_LEASE_DURATION_SECONDS": "4", "SWITCHYARD_LEASE_RENEW_SECONDS": "1",
            **self.extra_env,
        })
        self.proc = subprocess.Popen([str(SWITCHYARD), "operator", *self.args], env=env,
                                     stdout=open(self.log, "wb"), stderr=subprocess.STDOUT, start_new_session=True)

    def stop(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
        self.proc = None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def logs(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def register_webhooks(kube: kube_tools.Cluster, release: str, port: int, ca_file: Path) -> str:
    """The chart's own Mutating/ValidatingWebhookConfiguration (``helm template``), applied as
    the chart would, but calling the operator on https://127.0.0.1:PORT with the test CA
    (no Service and no kube-proxy here). Returns their name (release-named)."""
    import base64

    # clusterWide: these tests' operators watch every namespace (the chart's default is
    # namespaced; its webhooks then select the listed namespaces only)
    cp = kube.helm("template", release, str(REPO / "charts" / "switchyard"), "--namespace", kube_tools.OPERATOR_NAMESPACE,
                   "--set", "operator.clusterWide=true", "--show-only", "templates/webhook.yaml")
    docs = [d for d in yaml_load_all(cp.stdout) if d and d["kind"].endswith("WebhookConfiguration")]
    ca = base64.b64encode(Path(ca_file).read_bytes()).decode()
    for d in docs:
        for hook in d["webhooks"]:
            path = hook["clientConfig"]["service"]["path"]
            hook["clientConfig"] = {"url": f"https://127.0.0.1:{port}{path}", "caBundle": ca}
        kube.kubectl("apply", "-f", "-", input=json.dumps(d))
    return docs[0]["metadata"]["name"]


def yaml_load_all(text: str) -> list[Any]:
    import yaml

    return list(yaml.safe_load_all(text))


def wait_ready(url: str, timeout: float = 45.0) -> None:
    """The operator's readiness: 200 once its webhook server answers an AdmissionReview."""

    def ready() -> bool:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(url, timeout=3) as r:
                return r.status == 200
        except OSError:
            return False

    poll(f"operator ready ({url})", ready, timeout=timeout)


def install(kube: kube_tools.Cluster) -> None:
    """CRDs and the operator's RBAC, with the real kubectl; idempotent."""
    kube.ensure_namespace(kube_tools.OPERATOR_NAMESPACE)
    kube.kubectl("apply", "-f", str(REPO / "crds"))
    kube.kubectl("wait", "--for=condition=Established", "crd", "-l", "app.kubernetes.io/part-of=switchyard", "--timeout=60s")
    kube.kubectl("apply", "-f", str(REPO / "switchyard" / "operator" / "rbac.yaml"))
    poll("CRDs in discovery", lambda: kube.kubectl("get", "ab,ms,cap", "-A", check=False).returncode == 0)
    poll("RBAC for the operator", lambda: kube.kubectl(
        "auth", "can-i", "patch", "assistantbindings.switchyard.dev", "--subresource=status", "-A",
        identity="operator", check=False).stdout.strip() == "yes")


def apply(kube: kube_tools.Cluster, ns: str, text: str, **subst: str) -> None:
    kube.kubectl("apply", "-n", ns, "-f", "-", input=string.Template(text).safe_substitute(subst))


def get(kube: kube_tools.Cluster, ns: str, ref: str, *flags: str) -> dict[str, Any]:
    return json.loads(kube.kubectl("get", ref, "-n", ns, "-o", "json", *flags).stdout)


def cond(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in obj.get("status", {}).get("conditions", []) if c["type"] == type_), {})


def table(kube: kube_tools.Cluster, ns: str, kind: str, *flags: str) -> dict[str, dict[str, str]]:
    """`kubectl get KIND [FLAGS]` as {name: {COLUMN: value}} (columns split on 2+ spaces)."""
    import re

    lines = kube.kubectl("get", kind, "-n", ns, *flags).stdout.rstrip("\n").splitlines()
    header = lines[0]
    starts = [m.start() for m in re.finditer(r"(?<!\S)\S", header)]
    cols = [header[s:e].strip() for s, e in zip(starts, starts[1:] + [None])]
    out = {}
    for line in lines[1:]:
        cells = [line[s:e].strip() for s, e in zip(starts, starts[1:] + [None])]
        row = dict(zip(cols, cells))
        out[row["NAME"]] = row
    return out


def sidecar_pod(name: str, app: str, admin_url: str | None = None, admin_port: int = 4001) -> str:
    annotations = {"switchyard.dev/admin-url": admin_url} if admin_url else {}
    return json.dumps({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": app}, "annotations": annotations},
        "spec": {"containers": [
            {"name": "app", "image": "registry.invalid/app:0"},
            {"name": "switchyard", "image": "registry.invalid/switchyard:0",
             "ports": [{"name": "sy-admin", "containerPort": admin_port}]},
        ]},
    })


# --------------------------------------------------------------------------- fixtures


class Env:
    def __init__(self, kube: kube_tools.Cluster, upstream: FakeUpstream, url: str, operator: Operator, lt: LoopThread) -> None:
        self.kube, self.upstream, self.url, self.operator, self.lt = kube, upstream, url, operator, lt
        self.metrics_url = ""

    def metrics(self) -> dict[str, float]:
        """The operator's /metrics as {'name{labels}': value}."""
        text = urllib.request.urlopen(self.metrics_url, timeout=5).read().decode()
        return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line and not line.startswith("#")}

    def scenario(self, ns: str) -> None:
        for name in ("secrets", "profiles", "sources", "bindings"):
            text = (MANIFESTS / "valid" / f"{name}.yaml").read_text()
            apply(self.kube, ns, text, UPSTREAM=self.url, ADMIN_TOKEN=ADMIN_TOKEN)


@pytest.fixture(scope="module")
def env(kube: kube_tools.Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    t0 = time.monotonic()
    install(kube)
    lt = LoopThread()
    upstream = FakeUpstream(lt)
    url = upstream.start()
    metrics_port = kube_tools.free_port()
    op = Operator(kube, tmp_path_factory.mktemp("operator"), {"SWITCHYARD_METRICS_PORT": str(metrics_port)})
    op.start()
    e = Env(kube, upstream, url, op, lt)
    e.metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
    sys.stderr.write(f"\n[operator e2e] setup {time.monotonic() - t0:.1f}s\n")
    try:
        yield e
    finally:
        failed = getattr(kube, "_saw_failure", False)
        op.stop()
        if failed:
            sys.stderr.write("\n--- operator log (tail) ---\n" + "\n".join(op.logs().splitlines()[-60:]) + "\n")
        upstream.stop()
        lt.close()


@pytest.fixture
def sidecars(env: Env, kube_ns: str) -> Iterator[list[SidecarOnLoopback]]:
    started: list[SidecarOnLoopback] = []
    yield started
    # Unscheduled pods are deleted at once (no kubelet to wait for).
    env.kube.kubectl("delete", "pods", "--all", "-n", kube_ns, "--wait=false", check=False)
    for s in started:
        with contextlib.suppress(Exception):
            s.stop()


def check_operator_alive(env: Env) -> None:
    assert env.operator.alive(), "the operator exited:\n" + env.operator.logs()[-4000:]
    assert "Traceback" not in env.operator.logs(), env.operator.logs()[-4000:]


# --------------------------------------------------------------------------- scenarios


def test_status_conditions_and_printer_columns(env: Env, kube_ns: str) -> None:
    kube, ns = env.kube, kube_ns
    env.scenario(ns)

    def settled() -> dict[str, Any] | None:
        o = get(kube, ns, "ab/support")
        chain = o.get("status", {}).get("chain", [])
        return o if len(chain) == 3 and chain[1]["resolvable"] else None

    support = poll("support's status", settled)
    chain = support["status"]["chain"]
    assert [(t["tier"], t["source"], t["model"], t["resolvable"]) for t in chain] == [
        (0, "openai-main", "gpt-4o", True),
        (1, "local-llama", "llama-3.1-8b", True),
        (2, "anthropic", "claude-sonnet-4-5", False),
    ]
    assert chain[2]["reason"] == "SecretNotMarked"
    assert chain[2]["message"].startswith(f"no Secret anthropic-key labelled switchyard.dev/credential=true in namespace {ns}")
    resolved, ready = cond(support, "Resolved"), cond(support, "Ready")
    assert (resolved["status"], resolved["reason"]) == ("False", "TierUnresolvable")
    assert (ready["status"], ready["reason"]) == ("False", "NoPodsSelected")
    assert support["status"]["observedGeneration"] == support["metadata"]["generation"]
    assert support["status"]["primaryConfigured"] is True

    legacy = poll("legacy's status", lambda: (o := get(kube, ns, "ab/legacy")).get("status", {}).get("conditions") and o)
    assert cond(legacy, "Resolved")["reason"] == "AllTiersResolved"
    assert "deprecated boundCredential" in cond(legacy, "Resolved")["message"]
    assert legacy["status"]["primaryConfigured"] is False

    # `primary: null` was dropped by kubectl apply; the operator still reads the intent.
    parked = poll("parked's status", lambda: (o := get(kube, ns, "ab/parked")).get("status", {}).get("conditions") and o)
    assert "primary" not in parked["spec"]
    assert cond(parked, "Resolved")["reason"] == "PrimaryCleared"
    assert parked["status"]["chain"] == []

    rows = table(kube, ns, "ab")
    assert list(rows["support"])[:7] == ["NAME", "PRIMARY", "ACTIVE", "BREAKERS", "PODS", "READY", "AGE"]
    assert {k: rows["support"][k] for k in ("PRIMARY", "ACTIVE", "BREAKERS", "PODS", "READY")} == {
        "PRIMARY": "openai-main/gpt-4o", "ACTIVE": "-", "BREAKERS": "0/3", "PODS": "0/0", "READY": "False"}
    assert rows["parked"]["PRIMARY"] == "(unbound: PrimaryCleared)"

    # ModelSources: catalog and credential check (no prompt sent: only GET /models).
    def ms_row() -> dict[str, dict[str, str]] | None:
        r = table(kube, ns, "ms")
        return r if r["openai-main"]["MODELS"] == "2" and r["local-llama"]["MODELS"] == "1" else None

    rows = poll("catalogs fetched", ms_row)
    assert {k: rows["openai-main"][k] for k in ("PROVIDER", "MODEL", "MODELS", "CREDENTIAL")} == {
        "PROVIDER": "openai", "MODEL": "gpt-4o", "MODELS": "2", "CREDENTIAL": "True"}
    assert rows["local-llama"]["CREDENTIAL"] == "True"
    assert rows["anthropic"]["CREDENTIAL"] == "False"
    src = get(kube, ns, "ms/openai-main")
    assert src["status"]["catalog"]["models"] == ["gpt-4o", "gpt-4o-mini"]
    assert cond(get(kube, ns, "ms/anthropic"), "CredentialValid")["reason"] == "SecretNotMarked"
    assert not any(c.startswith("primary:") for c in env.upstream.calls), "a prompt was sent to check a credential"

    # The profile validates; the operator wrote nothing but status anywhere.
    assert cond(get(kube, ns, "cap/small-local"), "Valid")["status"] == "True"
    for ref in ("ab/support", "ab/legacy", "ab/parked", "ms/openai-main", "cap/small-local"):
        meta = get(kube, ns, ref, "--show-managed-fields")["metadata"]
        assert not meta.get("finalizers"), ref
        assert set(meta.get("annotations", {})) <= {"kubectl.kubernetes.io/last-applied-configuration"}, ref
        managers = {(m["manager"], m.get("subresource", "")) for m in meta["managedFields"]}
        assert all(sub == "status" for mgr, sub in managers if mgr == "switchyard-operator"), managers
    check_operator_alive(env)


def test_refused_credential_and_model_not_in_catalog(env: Env, kube_ns: str) -> None:
    kube, ns = env.kube, kube_ns
    env.scenario(ns)
    apply(kube, ns, """
apiVersion: v1
kind: Secret
metadata: {name: wrong-key, labels: {switchyard.dev/credential: "true"}}
stringData: {api-key: sk-wrong}
---
apiVersion: switchyard.dev/v1alpha1
kind: ModelSource
metadata: {name: refused}
spec:
  provider: openai
  baseURL: ${UPSTREAM}/v1
  credentialRef: {name: wrong-key, key: api-key}
  defaultModel: gpt-4o
---
apiVersion: switchyard.dev/v1alpha1
kind: AssistantBinding
metadata: {name: imaginary}
spec:
  primary: {sourceRef: {name: openai-main}, model: gpt-imaginary}
  fallbacks:
    - {sourceRef: {name: ghost}}
    - {sourceRef: {name: openai-main}, model: gpt-4o-mini}
""", UPSTREAM=env.url)
    refused = poll("refused credential", lambda: (o := get(kube, ns, "ms/refused")) and cond(o, "CredentialValid")["status"] == "False" and o)
    c = cond(refused, "CredentialValid")
    assert c["reason"] == "Unauthorized"
    assert "invalid_api_key" in c["message"] and "sk-" not in json.dumps(refused["status"])

    def tiers() -> list[dict[str, Any]] | None:
        chain = get(kube, ns, "ab/imaginary").get("status", {}).get("chain", [])
        return chain if chain and chain[0].get("reason") == "ModelNotInCatalog" else None

    chain = poll("model checked against the catalog", tiers)
    assert chain[0]["message"] == "model gpt-imaginary is not in the live catalog of ModelSource openai-main"
    assert (chain[1]["reason"], chain[1]["message"]) == ("SourceNotFound", "ModelSource ghost not found")
    assert chain[2]["resolvable"] is True
    assert table(kube, ns, "ab")["imaginary"]["READY"] == "False"
    check_operator_alive(env)


class CountingUpstream:
    """Records every request it gets (path and credential headers) and lists one model."""

    def __init__(self, lt: LoopThread) -> None:
        self.lt = lt
        self.requests: list[tuple[str, str]] = []

    async def any(self, request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization", "") + request.headers.get("x-api-key", "")
        self.requests.append((request.path, auth))
        return web.json_response({"object": "list", "data": [{"id": "gpt-4o"}]})

    def start(self) -> str:
        app = web.Application()
        app.add_routes([web.route("*", "/{tail:.*}", self.any)])

        async def go() -> int:
            self.runner = web.AppRunner(app, access_log=None)
            await self.runner.setup()
            site = web.TCPSite(self.runner, "127.0.0.1", 0)
            await site.start()
            return site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

        return f"http://127.0.0.1:{self.lt.run(go())}"

    def stop(self) -> None:
        self.lt.run(self.runner.cleanup())


def test_a_source_cannot_make_the_operator_read_or_send_a_secret_not_marked_for_it(env: Env, kube_ns: str) -> None:
    """The confused deputy (issue 14): someone who may create ModelSources but not read
    Secrets names a Secret of the namespace (an unlabelled one, or the sidecars' admin
    token, even labelled) and a baseURL of their own. The operator refuses it in status
    and sends nothing there; its identity cannot even GET those Secrets. A control source
    with a labelled Secret, checked against the same upstream, shows the operator did
    look at this namespace's sources meanwhile."""
    kube, ns = env.kube, kube_ns
    env.scenario(ns)
    trap = CountingUpstream(env.lt)
    url = trap.start()
    try:
        apply(kube, ns, """
apiVersion: v1
kind: Secret
metadata: {name: db-password}
stringData: {api-key: sk-not-for-switchyard}
---
apiVersion: switchyard.dev/v1alpha1
kind: ModelSource
metadata: {name: deputy-unmarked}
spec:
  provider: openai
  baseURL: ${TRAP}/v1
  credentialRef: {name: db-password, key: api-key}
  defaultModel: gpt-4o
---
apiVersion: switchyard.dev/v1alpha1
kind: ModelSource
metadata: {name: deputy-admin}
spec:
  provider: openai
  baseURL: ${TRAP}/v1
  credentialRef: {name: switchyard-admin-token, key: token}
  defaultModel: gpt-4o
""", TRAP=url)
        # Even labelled as a credential, the admin token stays reserved.
        kube.kubectl("label", "secret", "switchyard-admin-token", "-n", ns, "switchyard.dev/credential=true")
        for name, reason in (("deputy-unmarked", "SecretNotMarked"), ("deputy-admin", "SecretReserved")):
            c = poll(f"{name} refused", lambda name=name: (c := cond(get(kube, ns, f"ms/{name}"), "CredentialValid")) and c)
            assert (c["status"], c["reason"]) == ("False", reason), c
        apply(kube, ns, """
apiVersion: v1
kind: Secret
metadata: {name: control-key, labels: {switchyard.dev/credential: "true"}}
stringData: {api-key: sk-control}
---
apiVersion: switchyard.dev/v1alpha1
kind: ModelSource
metadata: {name: control}
spec:
  provider: openai
  baseURL: ${TRAP}/v1
  credentialRef: {name: control-key, key: api-key}
  defaultModel: gpt-4o
""", TRAP=url)
        poll("the control source checked", lambda: cond(get(kube, ns, "ms/control"), "CredentialValid").get("status") == "True")
        for name in ("deputy-unmarked", "deputy-admin"):  # still refused, after another pass
            assert cond(get(kube, ns, f"ms/{name}"), "CredentialValid")["status"] == "False"
        assert trap.requests and all(auth == "Bearer sk-control" for _, auth in trap.requests), trap.requests
        text = json.dumps([get(kube, ns, f"ms/{n}") for n in ("deputy-unmarked", "deputy-admin")]) + env.operator.logs()
        assert "sk-not-for-switchyard" not in text and ADMIN_TOKEN not in text

        def can(*args: str) -> bool:
            return kube.kubectl("auth", "can-i", *args, "-n", ns, identity="operator", check=False).stdout.strip() == "yes"

        assert not can("get", "secret/db-password") and not can("get", "secret/control-key")
        assert can("get", "secret/switchyard-admin-token")
        cp = kube.kubectl("get", "secret", "db-password", "-n", ns, identity="operator", check=False)
        assert cp.returncode != 0 and "forbidden" in cp.stderr.lower()
        m = env.metrics()  # the refusals are counted (by reason, never by name)
        assert m['switchyard_operator_credential_refusals_total{reason="SecretNotMarked"}'] >= 1
        assert m['switchyard_operator_credential_refusals_total{reason="SecretReserved"}'] >= 1
    finally:
        trap.stop()
    check_operator_alive(env)


def test_kubectl_wait_for_ready_works_on_every_kind(env: Env, kube_ns: str, sidecars: list[SidecarOnLoopback]) -> None:
    """`kubectl wait --for=condition=Ready` on a ModelSource, a CapabilityProfile and an
    AssistantBinding (the real kubectl, against the CRDs' conditions); a source whose
    Secret is not usable is not Ready, and says why."""
    kube, ns = env.kube, kube_ns
    env.scenario(ns)
    sc = SidecarOnLoopback(env.lt)
    sidecars.append(sc)
    kube.kubectl("create", "-n", ns, "-f", "-", input=sidecar_pod("support-0", "support", admin_url=sc.admin_url))
    cp = kube.kubectl("wait", "-n", ns, "--for=condition=Ready", "--timeout=60s",
                      "ms/openai-main", "ms/local-llama", "cap/small-local", "ab/support")
    assert cp.stdout.count("condition met") == 4, cp.stdout
    cp = kube.kubectl("wait", "-n", ns, "--for=condition=Ready", "--timeout=3s", "ms/anthropic", check=False)
    assert cp.returncode != 0
    ready = cond(get(kube, ns, "ms/anthropic"), "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "SecretNotMarked")
    check_operator_alive(env)


def test_config_push_health_and_events(env: Env, kube_ns: str, sidecars: list[SidecarOnLoopback]) -> None:
    kube, ns = env.kube, kube_ns
    env.scenario(ns)
    sc = SidecarOnLoopback(env.lt)
    sidecars.append(sc)
    kube.kubectl("create", "-n", ns, "-f", "-", input=sidecar_pod("support-0", "support", admin_url=sc.admin_url))

    rows = poll("support Ready with its pod configured",
                lambda: (r := table(kube, ns, "ab"))["support"]["READY"] == "True" and r)
    assert rows["support"]["PODS"] == "1/1"
    ab = get(kube, ns, "ab/support")
    assert cond(ab, "Ready")["reason"] == "Serving"
    st = sc.admin_status()
    assert st["configured"] is True
    assert {b["name"]: b["unbound"] for b in st["bindings"]} == {"legacy": False, "parked": True, "support": False}
    assert [t["resolvable"] for t in sc.binding("support")["tiers"]] == [True, True, False]

    # Traffic: tier 0 serves; then it fails twice, its breaker opens, tier 1 serves.
    status, headers, _ = sc.chat("support")
    assert status == 200 and headers["x-switchyard-tier"] == "0"
    poll("ACTIVE tier0", lambda: table(kube, ns, "ab")["support"]["ACTIVE"] == "tier0 openai-main/gpt-4o")
    env.upstream.fail_primary = True
    try:
        for _ in range(2):
            status, headers, body = sc.chat("support")
            assert status == 200 and headers["x-switchyard-tier"] == "1", (status, headers, body)
        row = poll("breaker open and the fallback active",
                   lambda: (r := table(kube, ns, "ab")["support"])["BREAKERS"] == "1/3" and r)
    finally:
        env.upstream.fail_primary = False
    assert row["ACTIVE"] == "tier1 local-llama/llama-3.1-8b"
    assert row["READY"] == "True"  # a fallback serves: degraded, not down
    ab = get(kube, ns, "ab/support")
    tier0 = ab["status"]["chain"][0]["breaker"]
    assert (tier0["state"], tier0["openInPods"], tier0["reportingPods"]) == ("open", 1, 1)
    assert ab["status"]["active"]["tier"] == 1
    assert "fallback" in cond(ab, "Ready")["message"]

    def reasons() -> set[str] | None:
        evs = json.loads(kube.kubectl("get", "events", "-n", ns, "--field-selector",
                                      "involvedObject.name=support", "-o", "json").stdout)["items"]
        got = {e["reason"]: e for e in evs}
        return got if {"BreakerOpened", "ActiveTierChanged"} <= set(got) else None

    evs = poll("events on the binding", reasons)
    assert evs["BreakerOpened"]["type"] == "Warning"
    assert evs["BreakerOpened"]["message"].startswith("tier0 openai-main/gpt-4o: breaker open in 1 of 1 pods")
    assert evs["ActiveTierChanged"]["message"] == "now serving from tier1 local-llama/llama-3.1-8b (was tier0 openai-main/gpt-4o)"
    assert evs["ActiveTierChanged"]["source"]["component"] == "switchyard-operator"
    check_operator_alive(env)


def test_repush_when_the_sidecar_restarts_or_moves(env: Env, kube_ns: str, sidecars: list[SidecarOnLoopback]) -> None:
    kube, ns = env.kube, kube_ns
    env.scenario(ns)
    first = SidecarOnLoopback(env.lt)
    sidecars.append(first)
    port = first.admin_port
    # The real path: a pod whose admin port is its sidecar's, Pending until "a kubelet" says Running.
    kube.kubectl("create", "-n", ns, "-f", "-", input=sidecar_pod("support-0", "support", admin_port=port))
    ab = poll("the pending pod reported", lambda: (o := get(kube, ns, "ab/support")).get("status", {}).get("pods", {}).get("problems") and o)
    assert ab["status"]["pods"]["problems"][0]["reason"] == "NoAddress"
    assert first.admin_status()["configured"] is False

    def kubelet(ip: str, restarts: int) -> None:
        kube.kubectl("patch", "pod", "support-0", "-n", ns, "--subresource=status", "--type=merge", "-p", json.dumps({
            "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}], "containerStatuses": [
                {"name": "switchyard", "ready": False, "restartCount": restarts, "image": "x", "imageID": "",
                 "state": {"running": {"startedAt": "2026-01-01T00:00:%02dZ" % restarts}}}]}}))

    kubelet("127.0.0.1", 0)
    poll("config pushed once Running", lambda: first.admin_status()["configured"])
    version = first.admin_status()["version"]

    # Restart in place: same address, fresh sidecar without config (the health poll notices).
    first.stop()
    second = SidecarOnLoopback(env.lt, admin_port=port)
    sidecars.append(second)
    poll("config pushed again after a restart in place", lambda: second.admin_status()["configured"])
    assert second.admin_status()["version"] == version

    # Restarted with a new IP (127.0.0.2 is loopback too): pushed to the new address.
    third = SidecarOnLoopback(env.lt, admin_host="127.0.0.2", admin_port=port)
    sidecars.append(third)
    kubelet("127.0.0.2", 1)
    poll("config pushed to the pod's new IP", lambda: third.admin_status()["configured"])
    assert third.admin_status()["version"] == version
    poll("pod configured again", lambda: table(kube, ns, "ab")["support"]["PODS"] == "1/1")
    check_operator_alive(env)


def test_secret_changes_reach_status_and_sidecars(env: Env, kube_ns: str, sidecars: list[SidecarOnLoopback]) -> None:
    kube, ns = env.kube, kube_ns
    env.scenario(ns)
    sc = SidecarOnLoopback(env.lt)
    sidecars.append(sc)
    kube.kubectl("create", "-n", ns, "-f", "-", input=sidecar_pod("support-0", "support", admin_url=sc.admin_url))
    poll("first push", lambda: sc.admin_status()["configured"])
    v1 = sc.admin_status()["version"]

    # The missing Secret appears: tier 2 becomes resolvable, in status and in the sidecar.
    kube.kubectl("create", "secret", "generic", "anthropic-key", "-n", ns, f"--from-literal=api-key={KEY_ANTHROPIC}")
    # Not a credential until labelled as one (the operator's watch selects on the label).
    poll("still refused while unlabelled", lambda: cond(get(kube, ns, "ms/anthropic"), "CredentialValid").get("reason") == "SecretNotMarked")
    kube.kubectl("label", "secret", "anthropic-key", "-n", ns, "switchyard.dev/credential=true")
    poll("support Resolved", lambda: cond(get(kube, ns, "ab/support"), "Resolved")["status"] == "True")
    poll("tier 2 resolvable in the sidecar", lambda: sc.binding("support")["tiers"][2]["resolvable"])
    poll("anthropic credential checked", lambda: table(kube, ns, "ms")["anthropic"]["CREDENTIAL"] == "True")
    v2 = sc.admin_status()["version"]
    assert v2 != v1

    # The key is rotated in place: a new config version is pushed, the catalog re-checked with it.
    apply(kube, ns, f"apiVersion: v1\nkind: Secret\nmetadata: {{name: openai-key, labels: {{switchyard.dev/credential: \"true\"}}}}\nstringData: {{api-key: {KEY_ROTATED}}}\n")
    poll("rotated key pushed", lambda: sc.admin_status()["version"] not in (v1, v2))
    poll("catalog re-checked with the rotated key", lambda: KEY_ROTATED in env.upstream.seen_keys)
    status, headers, _ = sc.chat("support")
    assert status == 200 and headers["x-switchyard-tier"] == "0"
    check_operator_alive(env)


FLIP = """
apiVersion: switchyard.dev/v1alpha1
kind: AssistantBinding
metadata: {name: flip}
spec:
  selector: {matchLabels: {app: support}}
  aliases: [${ALIAS}]
  boundCredential: openai-main
${PRIMARY}
"""


def test_cleared_primary_stays_unbound_across_restarts(env: Env, kube_ns: str, sidecars: list[SidecarOnLoopback]) -> None:
    kube, ns = env.kube, kube_ns
    env.scenario(ns)
    sc = SidecarOnLoopback(env.lt)
    sidecars.append(sc)
    kube.kubectl("create", "-n", ns, "-f", "-", input=sidecar_pod("support-0", "support", admin_url=sc.admin_url))

    apply(kube, ns, FLIP, ALIAS="flip", PRIMARY="  primary: {sourceRef: {name: openai-main}, model: gpt-4o-mini}")
    poll("flip bound", lambda: cond(get(kube, ns, "ab/flip"), "Resolved")["reason"] == "AllTiersResolved")
    poll("flip served by the sidecar", lambda: sc.binding("flip") and sc.binding("flip")["unbound"] is False)

    # Cleared with an explicit null: kubectl apply deletes the key; boundCredential must not take over.
    apply(kube, ns, FLIP, ALIAS="flip", PRIMARY="  primary: null")
    obj = poll("flip unbound", lambda: (o := get(kube, ns, "ab/flip")) and cond(o, "Resolved")["reason"] == "PrimaryCleared" and o)
    assert "primary" not in obj["spec"] and obj["spec"]["boundCredential"] == "openai-main"
    poll("flip unbound in the sidecar", lambda: sc.binding("flip")["unbound"] is True)
    status, _, body = sc.chat("flip")
    assert status >= 400 and "flip" in json.dumps(body)

    # The line removed altogether: only status.primaryConfigured remembers now.
    apply(kube, ns, FLIP, ALIAS="flip", PRIMARY="")
    gen = get(kube, ns, "ab/flip")["metadata"]["generation"]
    last_applied = get(kube, ns, "ab/flip")["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
    assert '"primary"' not in last_applied

    env.operator.stop()
    env.operator.start()
    apply(kube, ns, FLIP, ALIAS="flip-renamed", PRIMARY="")  # a change the new operator must reconcile
    obj = poll("the restarted operator reconciled flip",
               lambda: (o := get(kube, ns, "ab/flip"))["status"].get("observedGeneration", 0) > gen and o)
    assert cond(obj, "Resolved")["reason"] == "PrimaryCleared"
    assert obj["status"]["primaryConfigured"] is True
    poll("still unbound in the sidecar", lambda: (b := sc.binding("flip")) and b["aliases"] == ["flip-renamed"] and b["unbound"])
    check_operator_alive(env)


def test_broken_references_are_reported_not_crashed_on(env: Env, kube_ns: str) -> None:
    kube, ns = env.kube, kube_ns
    apply(kube, ns, """
apiVersion: switchyard.dev/v1alpha1
kind: ModelSource
metadata: {name: needs-profile}
spec:
  provider: openai-compatible
  baseURL: http://127.0.0.1:9/v1
  defaultModel: m
  capabilityProfileRef: {name: no-such-profile}
  models: [m]
---
apiVersion: switchyard.dev/v1alpha1
kind: ModelSource
metadata: {name: env-key}
spec:
  provider: openai
  credentialRef: {env: OPENAI_API_KEY}
---
apiVersion: switchyard.dev/v1alpha1
kind: AssistantBinding
metadata: {name: broken}
spec:
  primary: {sourceRef: {name: needs-profile}}
  fallbacks:
    - {sourceRef: {name: needs-profile}, model: not-allowed}
    - {sourceRef: {name: env-key}, model: gpt-4o}
    - {sourceRef: {name: nowhere}}
---
apiVersion: switchyard.dev/v1alpha1
kind: AssistantBinding
metadata: {name: odd-legacy}
spec:
  boundCredential: 42
""")
    chain = poll("broken's chain", lambda: (c := get(kube, ns, "ab/broken").get("status", {}).get("chain")) and len(c) == 4 and c)
    assert [(t["reason"], t["message"]) for t in chain] == [
        ("ProfileNotFound", "CapabilityProfile no-such-profile not found"),
        ("ModelNotAllowed", "model not-allowed is not in ModelSource needs-profile's models allow-list"),
        ("EnvCredentialNotAllowed", "credentialRef.env is for standalone mode only; use a Secret"),
        ("SourceNotFound", "ModelSource nowhere not found"),
    ]
    broken = get(kube, ns, "ab/broken")
    assert (cond(broken, "Ready")["status"], cond(broken, "Ready")["reason"]) == ("False", "NoResolvableTier")
    # The API server cannot check a string-or-object field; the operator reports it.
    odd = poll("odd-legacy reported", lambda: (o := get(kube, ns, "ab/odd-legacy")).get("status", {}).get("conditions") and o)
    assert cond(odd, "Resolved")["reason"] == "InvalidSpec"
    assert "boundCredential" in cond(odd, "Resolved")["message"]
    assert cond(get(kube, ns, "ms/env-key"), "CredentialValid")["reason"] == "EnvCredentialNotAllowed"
    check_operator_alive(env)


def test_examples_are_accepted_and_explained(env: Env, kube_ns: str) -> None:
    """The standalone examples (env credentials) apply cleanly and are reported, tier by tier."""
    kube, ns = env.kube, kube_ns
    kube.kubectl("apply", "-n", ns, "-f", str(REPO / "examples" / "hosted"))
    obj = poll("claude-code reported", lambda: (o := get(kube, ns, "ab/claude-code")) and {
        t.get("reason") for t in o.get("status", {}).get("chain", [])} == {"EnvCredentialNotAllowed"} and o)
    assert len(obj["status"]["chain"]) == 2
    assert cond(obj, "Ready")["reason"] == "NoResolvableTier"


def test_two_replicas_one_writer(env: Env, kube_ns: str, tmp_path: Path) -> None:
    kube = env.kube
    lease = lambda: json.loads(kube.kubectl(  # noqa: E731
        "get", "lease", "switchyard-operator", "-n", kube_tools.OPERATOR_NAMESPACE, "-o", "json").stdout)["spec"]
    poll("op-a holds the lease", lambda: lease().get("holderIdentity") == "op-a")
    standby = Operator(kube, tmp_path, {})
    standby.start("op-b")
    try:
        env.scenario(kube_ns)
        poll("support reconciled", lambda: get(kube, kube_ns, "ab/support").get("status", {}).get("chain"))
        assert lease()["holderIdentity"] == "op-a"
        # Only the leader writes: no status write in the standby's log, and the standby stays up.
        assert standby.alive() and "leadership acquired" not in standby.logs()
        env.operator.stop()  # releases the lease on the way out
        poll("the standby takes over", lambda: lease().get("holderIdentity") == "op-b", timeout=20)
        apply(kube, kube_ns, "apiVersion: v1\nkind: Secret\nmetadata: {name: anthropic-key, labels: {switchyard.dev/credential: \"true\"}}\nstringData: {api-key: sk-ant-test}\n")
        poll("the new leader reconciles",
             lambda: cond(get(kube, kube_ns, "ab/support"), "Resolved")["status"] == "True")
    finally:
        standby.stop()
        env.operator.start("op-a")
    poll("op-a leads again", lambda: lease().get("holderIdentity") == "op-a", timeout=20)


def test_the_operator_serves_its_own_metrics(env: Env, kube_ns: str, sidecars: list[SidecarOnLoopback]) -> None:
    """switchyard_operator_* on SWITCHYARD_METRICS_PORT: reconciles, pushes, queue depth,
    leadership (the names docs/metrics.md lists and the dashboard's Operator row uses)."""
    kube, ns = env.kube, kube_ns
    env.scenario(ns)
    sc = SidecarOnLoopback(env.lt)
    sidecars.append(sc)
    kube.kubectl("create", "-n", ns, "-f", "-", input=sidecar_pod("support-0", "support", admin_url=sc.admin_url))
    poll("first push", lambda: sc.admin_status()["configured"])
    m = poll("a push counted", lambda: (m := env.metrics())['switchyard_operator_config_pushes_total{outcome="applied"}'] >= 1 and m)
    assert m["switchyard_operator_leader"] == 1
    assert m['switchyard_operator_reconciles_total{kind="namespace",result="ok"}'] >= 1
    assert m['switchyard_operator_reconciles_total{kind="catalog",result="ok"}'] >= 1
    assert m['switchyard_operator_reconcile_duration_seconds_count{kind="namespace"}'] >= 1
    assert "switchyard_operator_queue_depth" in m
    assert 'switchyard_operator_webhook_requests_total{outcome="allowed",webhook="validate"}' in m
    text = urllib.request.urlopen(env.metrics_url, timeout=5).read().decode()
    assert ns not in text and ADMIN_TOKEN not in text  # no object, namespace or secret in a label
    check_operator_alive(env)
