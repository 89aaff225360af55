"""The Helm chart in a real API server, and `kubectl switchyard` against it.

Its own etcd + kube-apiserver (not the session's), so the operator identity
(`system:serviceaccount:switchyard-system:switchyard-operator`) is bound to the chart's
roles and nothing else — other e2e modules apply operator/rbac.yaml to the same identity.

1. `helm install switchyard charts/switchyard -n switchyard-system` with the pinned helm.
2. The operator runs as a subprocess with the operator identity and the environment and
   arguments of the chart's own Deployment (read back from the API server; the webhook
   certificate files come from the chart's Secret). Only what cannot exist here changes:
   listen addresses on 127.0.0.1 with OS-chosen ports, faster polling, and the test-only
   admin-url annotation (a sidecar on loopback has no pod IP).
3. A binding in the app namespace the chart prepared (admin-token Secret, built-in
   profiles), a real sidecar on loopback, the simulator as upstream: Ready, traffic, a
   fallback, and the plugin's status / models / test / explain.
4. The real pod-proxy path of `test` and `explain`: a sidecar in a network namespace this
   test makes (the API server refuses to proxy to loopback pod IPs), reached by the
   operator on its pod IP and by the plugin through `kubectl proxy` and the API server.
   Skipped with the reason where network namespaces cannot be made.
5. `helm upgrade` keeps the generated certificate and token; `helm uninstall` keeps the
   CRDs and the tokens, and takes the operator's permissions away.

Every wait is a poll with a deadline.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import secrets
import shutil
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import kube_tools
from kubelet_volume import KubeletPlayer
from test_operator_cluster import LoopThread, Operator, cond, get, poll, table

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "switchyard"
PLUGIN = Path(sys.executable).with_name("kubectl-switchyard")
SWITCHYARD = Path(sys.executable).with_name("switchyard")
REQUIRED = os.environ.get("SWITCHYARD_E2E") == "1"
SYSTEM = kube_tools.OPERATOR_NAMESPACE  # switchyard-system
APP = "team-a"
POD_NAME = "switchyard-operator-7d9f-e2e"
KEY_MAIN, KEY_BACKUP = "sk-main-" + secrets.token_hex(6), "sk-backup-" + secrets.token_hex(6)


def log(text: str) -> None:
    sys.stderr.write(f"\n[chart e2e] {text}\n")


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[kube_tools.Cluster]:
    if kube_tools.find_kube_binaries() is None and not REQUIRED:
        pytest.skip(f"real API server tier: kube-apiserver v{kube_tools.KUBE_VERSION} is not built "
                    "(python hack/kube_tools.py build, or SWITCHYARD_E2E=1)")
    try:
        binaries, clients = kube_tools.ensure_kube_binaries(), kube_tools.ensure_kube_clients()
    except kube_tools.KubeToolsError as e:
        if REQUIRED:
            pytest.fail(f"SWITCHYARD_E2E=1 but the tier cannot run: {e}", pytrace=False)
        pytest.skip(str(e))
    c = kube_tools.start_cluster(tmp_path_factory.mktemp("chart-kube"), binaries=binaries, clients=clients)
    try:
        yield c
    finally:
        c.stop()


class Sim:
    """The simulator (two OpenAI-style upstreams) and one loopback sidecar, in a loop thread.

    The sidecar takes its config as in a pod: the namespace's config Secret and the pod's
    labels as files, kept in step by the harness playing the kubelet (``kubelet_volume``)."""

    def __init__(self, token: str, workdir: Path) -> None:
        from switchyard.simulator import Mount, Simulator

        self.lt = LoopThread()
        self.sim = Simulator(Mount("main", flavour="openai", api_key=KEY_MAIN, models=["gpt-demo", "gpt-demo-mini"]),
                             Mount("backup", flavour="openai", api_key=KEY_BACKUP, models=["backup-model"]), port=0)
        self.lt.run(self.sim.__aenter__())
        self.token, self.workdir = token, workdir
        self.admin_port = kube_tools.free_port()
        self.admin_url = f"http://127.0.0.1:{self.admin_port}"
        self.sidecar: Any = None
        self.kubelet: KubeletPlayer | None = None

    def start_sidecar(self, kube: kube_tools.Cluster, pod: str) -> None:
        from switchyard.sidecar.app import Listen, Sidecar

        self.kubelet = KubeletPlayer(kube, APP, pod, self.workdir / pod)
        self.sidecar = Sidecar(listen=Listen("127.0.0.1", 0, "127.0.0.1", self.admin_port), admin_token=self.token,
                               drain_seconds=0.5, config_dir=self.kubelet.config_dir, labels_file=self.kubelet.labels_path)
        self.api_port, _ = self.lt.run(self.sidecar.start())

    def chat(self, model: str) -> tuple[int, dict[str, str]]:
        body = json.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}]}).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{self.api_port}/v1/chat/completions", data=body,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=20) as r:
                r.read()
                return r.status, dict(r.headers)
        except urllib.error.HTTPError as e:
            e.read()
            return e.code, dict(e.headers)

    def stop(self) -> None:
        if self.kubelet is not None:
            self.kubelet.stop()
        with contextlib.suppress(Exception):
            if self.sidecar is not None:
                self.lt.run(self.sidecar.stop())
        with contextlib.suppress(Exception):
            self.lt.run(self.sim.__aexit__(None, None, None))
        self.lt.close()


class Env:
    def __init__(self, kube: kube_tools.Cluster, workdir: Path) -> None:
        self.kube, self.workdir = kube, workdir
        self.operator: Operator | None = None
        self.sim: Sim | None = None
        self.token = ""
        self.webhook_port = 0
        self.health_port = 0
        self.metrics_port = 0
        self.ready_port = 0
        self.timings: dict[str, float] = {}
        self.operator_env: dict[str, str] = {}

    def secret_data(self, ns: str, name: str) -> dict[str, bytes]:
        obj = get(self.kube, ns, f"secret/{name}")
        return {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}

    def plugin(self, *args: str, check_code: int | None = 0) -> subprocess.CompletedProcess[str]:
        env = self.kube.env("admin")
        cp = subprocess.run([str(PLUGIN), "--kubectl", str(self.kube.kubectl_bin), *args], capture_output=True,
                            text=True, env=env, timeout=90, stdin=subprocess.DEVNULL)
        if check_code is not None:
            assert cp.returncode == check_code, f"exit {cp.returncode}\n{cp.stdout}\n{cp.stderr}"
        return cp


def operator_env_from_deployment(env: Env) -> tuple[list[str], dict[str, str]]:
    """The chart's Deployment, as the API server stores it, turned into a local process."""
    kube = env.kube
    dep = get(kube, SYSTEM, "deployment/switchyard-operator")
    pod = dep["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    mounts = {m["name"]: m["mountPath"] for m in c.get("volumeMounts", [])}
    volumes = {v["name"]: v for v in pod["volumes"]}
    cert_dir = env.workdir / "webhook-cert"
    cert_dir.mkdir(exist_ok=True)
    secret = volumes["webhook-cert"]["secret"]["secretName"]
    for key, value in env.secret_data(SYSTEM, secret).items():
        (cert_dir / key).write_bytes(value)
    out: dict[str, str] = {}
    for e in c["env"]:
        if "valueFrom" not in e:
            out[e["name"]] = e.get("value", "")  # the API server drops an empty value
        else:
            path = e["valueFrom"]["fieldRef"]["fieldPath"]
            # no pod object here: an empty uid, so a Lease the operator makes has no owner
            out[e["name"]] = {"metadata.name": POD_NAME, "metadata.namespace": SYSTEM, "metadata.uid": ""}[path]
    for k, v in list(out.items()):
        if v.startswith(mounts["webhook-cert"] + "/"):
            out[k] = str(cert_dir / v.rsplit("/", 1)[1])
    env.webhook_port, env.health_port = kube_tools.free_port(), kube_tools.free_port()
    assert out["SWITCHYARD_WEBHOOK_LISTEN"] == "0.0.0.0" and out["SWITCHYARD_LIVENESS_ENDPOINT"].startswith("http://0.0.0.0:")
    out["SWITCHYARD_WEBHOOK_LISTEN"] = "127.0.0.1"
    out["SWITCHYARD_WEBHOOK_PORT"] = str(env.webhook_port)
    out["SWITCHYARD_LIVENESS_ENDPOINT"] = f"http://127.0.0.1:{env.health_port}/healthz"
    assert out["SWITCHYARD_METRICS_PORT"] == "8082"
    env.metrics_port = kube_tools.free_port()
    out["SWITCHYARD_METRICS_PORT"] = str(env.metrics_port)
    out["SWITCHYARD_METRICS_LISTEN"] = "127.0.0.1"
    assert out["SWITCHYARD_READINESS_ENDPOINT"].startswith("http://0.0.0.0:")
    env.ready_port = kube_tools.free_port()
    out["SWITCHYARD_READINESS_ENDPOINT"] = f"http://127.0.0.1:{env.ready_port}/readyz"
    # Test-only: reach the loopback sidecar by annotation; poll faster than in production.
    out.update({"SWITCHYARD_ALLOW_ADMIN_URL_ANNOTATION": "1", "SWITCHYARD_HEALTH_INTERVAL_SECONDS": "1",
                "SWITCHYARD_RESYNC_SECONDS": "5", "SWITCHYARD_CATALOG_RETRY_SECONDS": "2",
                "SWITCHYARD_PUSH_BACKOFF_MAX_SECONDS": "2"})
    return c["args"], out


@pytest.fixture(scope="module")
def chart(cluster: kube_tools.Cluster, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Env]:
    kube = cluster
    failed_before = request.session.testsfailed
    env = Env(kube, tmp_path_factory.mktemp("chart-install"))
    kube.ensure_namespace(SYSTEM)
    kube.ensure_namespace(APP)
    # Before the chart: the operator's identity may do nothing.
    cp = kube.kubectl("get", "secrets", "-A", identity="operator", check=False)
    assert cp.returncode != 0 and "forbidden" in cp.stderr.lower()

    t0 = time.monotonic()
    kube.helm("install", "switchyard", str(CHART), "--namespace", SYSTEM, "--set", f"appNamespaces={{{APP}}}", timeout=180)
    env.timings["helm install"] = time.monotonic() - t0
    kube.kubectl("wait", "--for=condition=Established", "crd", "-l", "app.kubernetes.io/part-of=switchyard", "--timeout=60s")
    poll("RBAC for the operator", lambda: kube.kubectl(
        "auth", "can-i", "patch", "assistantbindings.switchyard.dev", "--subresource=status", "-n", APP,
        identity="operator", check=False).stdout.strip() == "yes")
    env.timings["helm install + CRDs established"] = time.monotonic() - t0

    env.token = env.secret_data(APP, "switchyard-admin-token")["token"].decode()
    env.sim = Sim(env.token, env.workdir)
    args, op_env = operator_env_from_deployment(env)
    assert args[0] == "operator"
    env.operator_env = op_env
    assert args[-2:] == ["--namespace", APP]  # namespaced by default: the app namespaces
    env.operator = Operator(kube, env.workdir, op_env, args=args[1:])
    env.operator.start(POD_NAME)
    try:
        yield env
    finally:
        failed = request.session.testsfailed > failed_before
        env.operator.stop()
        if failed:
            log("operator log (tail):\n" + "\n".join(env.operator.logs().splitlines()[-60:]))
        env.sim.stop()
        log("timings: " + ", ".join(f"{k} {v:.1f}s" for k, v in env.timings.items()))


def check_operator_clean(env: Env) -> None:
    assert env.operator is not None and env.operator.alive(), "operator exited:\n" + (env.operator.logs()[-4000:] if env.operator else "")
    text = env.operator.logs()
    assert "Traceback" not in text and "Forbidden" not in text and "forbidden" not in text, text[-4000:]


def resources(upstream_main: str, upstream_backup: str) -> str:
    return f"""
apiVersion: v1
kind: Secret
metadata: {{name: upstream-keys, labels: {{switchyard.dev/credential: "true"}}}}
stringData: {{main: {KEY_MAIN}, backup: {KEY_BACKUP}}}
---
apiVersion: switchyard.dev/v1alpha1
kind: ModelSource
metadata: {{name: main}}
spec:
  provider: openai-compatible
  baseURL: {upstream_main}
  defaultModel: gpt-demo
  credentialRef: {{name: upstream-keys, key: main}}
  capabilityProfileRef: {{name: builtin-openai}}
---
apiVersion: switchyard.dev/v1alpha1
kind: ModelSource
metadata: {{name: backup}}
spec:
  provider: openai-compatible
  baseURL: {upstream_backup}
  defaultModel: backup-model
  credentialRef: {{name: upstream-keys, key: backup}}
---
apiVersion: switchyard.dev/v1alpha1
kind: AssistantBinding
metadata: {{name: demo}}
spec:
  selector:
    matchLabels: {{app: demo}}
  primary: {{sourceRef: {{name: main}}}}
  fallbacks:
    - sourceRef: {{name: backup}}
  breaker: {{consecutiveFailures: 1, cooldownSeconds: 600}}
"""


def sidecar_pod(name: str, admin_url: str | None) -> str:
    annotations = {"switchyard.dev/admin-url": admin_url} if admin_url else {}
    return json.dumps({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "demo"}, "annotations": annotations},
        "spec": {"containers": [
            {"name": "app", "image": "registry.invalid/app:0"},
            {"name": "switchyard", "image": "registry.invalid/switchyard:0",
             "ports": [{"name": "sy-api", "containerPort": 4000}, {"name": "sy-admin", "containerPort": 4001}]},
        ]},
    })


# --------------------------------------------------------------------------- the install


def test_helm_install_creates_what_the_chart_renders(chart: Env) -> None:
    kube = chart.kube
    releases = json.loads(kube.helm("list", "-n", SYSTEM, "-o", "json").stdout)
    assert [(r["name"], r["status"]) for r in releases] == [("switchyard", "deployed")]
    manifest = kube.helm("get", "manifest", "switchyard", "-n", SYSTEM).stdout
    kinds = sorted(set(re.findall(r"^kind: (\w+)", manifest, re.M)))
    # Namespaced and with chart-owned webhook configurations: no ClusterRole at all; the
    # leader Lease is the release's too (helm uninstall removes it).
    assert kinds == ["CapabilityProfile", "Deployment", "Lease", "MutatingWebhookConfiguration",
                     "PodDisruptionBudget", "Role", "RoleBinding", "Secret", "Service", "ServiceAccount",
                     "ValidatingWebhookConfiguration"]
    caps = table(kube, APP, "cap")
    assert sorted(caps) == sorted(p.stem for p in (REPO / "switchyard" / "api" / "profiles").glob("*.yaml"))
    assert caps["builtin-openai"]["PROTOCOL"] == "openai-chat"
    assert re.fullmatch(r"[A-Za-z0-9]{48}", chart.token)
    tls = get(kube, SYSTEM, "secret/switchyard-webhook-cert")
    assert tls["type"] == "kubernetes.io/tls" and set(tls["data"]) == {"tls.crt", "tls.key", "ca.crt"}
    dep = get(kube, SYSTEM, "deployment/switchyard-operator")
    assert dep["spec"]["replicas"] == 2
    spec = dep["spec"]["template"]["spec"]
    assert spec["serviceAccountName"] == "switchyard-operator"
    c = spec["containers"][0]
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"


def test_the_operator_identity_holds_the_chart_rbac_and_nothing_else(chart: Env) -> None:
    kube = chart.kube

    def can(*args: str) -> bool:
        return kube.kubectl("auth", "can-i", *args, identity="operator", check=False).stdout.strip() == "yes"

    # Namespaced (the default): only in the app namespace the chart was given.
    assert can("list", "secrets", "-n", APP) and can("watch", "pods", "-n", APP) and can("create", "events", "-n", APP)
    assert not can("list", "secrets", "-A") and not can("watch", "pods", "-A") and not can("list", "secrets", "-n", SYSTEM)
    # Secrets by name: the admin token and the config Secret only (credentials come from the labelled watch).
    assert can("get", "secret/switchyard-admin-token", "-n", APP) and not can("get", "secret/upstream-keys", "-n", APP)
    assert can("get", "secret/switchyard-config", "-n", APP)
    assert can("patch", "assistantbindings.switchyard.dev", "--subresource=status", "-n", APP)
    # The webhook configurations are the chart's: the operator may not touch any of them.
    assert not can("patch", "mutatingwebhookconfigurations/switchyard") and not can("create", "mutatingwebhookconfigurations")
    assert can("create", "leases.coordination.k8s.io", "-n", SYSTEM)
    assert can("patch", "leases.coordination.k8s.io/switchyard-operator", "-n", SYSTEM)
    assert not can("update", "leases.coordination.k8s.io/switchyard-operator", "-n", SYSTEM)
    assert not can("patch", "assistantbindings.switchyard.dev", "-n", APP)  # never the user's spec
    # Secrets: the config Secret only (create cannot be narrowed by name; update can)
    assert can("create", "secrets", "-n", APP) and can("update", "secrets/switchyard-config", "-n", APP)
    assert not can("update", "secrets/upstream-keys", "-n", APP) and not can("patch", "secrets", "-n", APP)
    assert not can("delete", "secrets", "-n", APP) and not can("delete", "pods", "-n", APP)
    assert not can("patch", "mutatingwebhookconfigurations/someone-else")
    assert not can("patch", "leases.coordination.k8s.io/other-lease", "-n", SYSTEM)
    assert not can("create", "leases.coordination.k8s.io", "-n", APP)
    # No binding but the chart's names this service account.
    subject = {"kind": "ServiceAccount", "name": "switchyard-operator", "namespace": SYSTEM}
    bound = []
    for kind in ("clusterrolebindings", "rolebindings"):
        for b in json.loads(kube.kubectl("get", kind, "-A", "-o", "json").stdout)["items"]:
            if subject in (b.get("subjects") or []):
                bound.append((b["kind"], b["metadata"].get("labels", {}).get("app.kubernetes.io/managed-by"), b["roleRef"]["name"]))
    assert sorted(bound) == [("RoleBinding", "Helm", "switchyard-operator"),
                             ("RoleBinding", "Helm", "switchyard-operator-leader")]


def test_the_operator_runs_with_the_deployments_settings(chart: Env) -> None:
    kube = chart.kube
    lease = poll("the Lease", lambda: (o := get(kube, SYSTEM, "lease/switchyard-operator"))["spec"].get("holderIdentity") and o, timeout=45)
    assert lease["spec"]["holderIdentity"] == POD_NAME

    # The chart's own configuration (release-named), not one the operator registered.
    hook = json.loads(kube.kubectl("get", "mutatingwebhookconfiguration", "switchyard", "-o", "json").stdout)["webhooks"][0]
    ca = chart.secret_data(SYSTEM, "switchyard-webhook-cert")["ca.crt"]
    assert hook["clientConfig"]["service"] == {"namespace": SYSTEM, "name": "switchyard-webhook", "port": 443,
                                               "path": "/inject-sidecar"}
    assert base64.b64decode(hook["clientConfig"]["caBundle"]) == ca
    assert hook["failurePolicy"] == "Ignore" and hook["timeoutSeconds"] <= 5
    # Ready only once the webhook server answers (the readiness probe of the Deployment).
    def ready() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{chart.ready_port}/readyz", timeout=5) as r:
                return r.status == 200
        except OSError:
            return False

    poll("the operator ready (its webhook answers)", ready, timeout=45)
    svc = get(kube, SYSTEM, "service/switchyard-webhook")
    assert svc["spec"]["ports"][0]["port"] == 443 and svc["spec"]["ports"][0]["targetPort"] == "webhook"
    with urllib.request.urlopen(f"http://127.0.0.1:{chart.health_port}/healthz", timeout=5) as r:
        assert r.status == 200
    # The operator's own metrics, on the port the chart gives it (operator.metricsPort).
    with urllib.request.urlopen(f"http://127.0.0.1:{chart.metrics_port}/metrics", timeout=5) as r:
        text = r.read().decode()
    assert re.search(r"^switchyard_operator_leader 1\.0$", text, re.M), text[:2000]
    check_operator_clean(chart)


def test_the_webhook_certificate_is_valid_for_the_service_name(chart: Env) -> None:
    """What the API server does when it calls the webhook Service: TLS to the operator,
    verifying the name switchyard-webhook.switchyard-system.svc against the caBundle."""
    poll("the webhook port", lambda: socket.create_connection(("127.0.0.1", chart.webhook_port), timeout=2).close() or True)
    ca = chart.secret_data(SYSTEM, "switchyard-webhook-cert")["ca.crt"].decode()
    ctx = ssl.create_default_context(cadata=ca)
    for name in ("switchyard-webhook.switchyard-system.svc", "switchyard-webhook.switchyard-system.svc.cluster.local"):
        with socket.create_connection(("127.0.0.1", chart.webhook_port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname=name) as tls:
                assert tls.version() in ("TLSv1.2", "TLSv1.3")
    with socket.create_connection(("127.0.0.1", chart.webhook_port), timeout=5) as raw:
        with pytest.raises(ssl.SSLCertVerificationError):
            ctx.wrap_socket(raw, server_hostname="elsewhere.example")


# --------------------------------------------------------------------------- a binding served


def test_a_binding_is_served_through_the_chart_install(chart: Env) -> None:
    kube, sim = chart.kube, chart.sim
    assert sim is not None
    kube.kubectl("apply", "-n", APP, "-f", "-", input=resources(sim.sim.base_url("main"), sim.sim.base_url("backup")))
    kube.kubectl("create", "-n", APP, "-f", "-", input=sidecar_pod("demo-0", sim.admin_url))
    sim.start_sidecar(kube, "demo-0")

    def ready() -> dict[str, Any] | None:
        o = get(kube, APP, "ab/demo")
        return o if cond(o, "Ready").get("status") == "True" else None

    poll("binding demo Ready", ready, timeout=45)
    rows = table(kube, APP, "ab")
    assert {k: rows["demo"][k] for k in ("PRIMARY", "PODS", "READY")} == {"PRIMARY": "main/gpt-demo", "PODS": "1/1", "READY": "True"}
    status, headers = sim.chat("demo")
    assert status == 200 and headers["x-switchyard-tier"] == "0" and headers["x-switchyard-source"] == "main"
    # the config Secret (keys inside) is owned by the release's RoleBinding: helm uninstall
    # deletes that and the garbage collector the Secret (the node tier watches it happen)
    rb = get(kube, APP, "rolebinding/switchyard-operator")
    owners = get(kube, APP, "secret/switchyard-config")["metadata"].get("ownerReferences")
    assert owners == [{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "name": "switchyard-operator",
                       "uid": rb["metadata"]["uid"]}], owners
    check_operator_clean(chart)


def test_plugin_status_and_models(chart: Env) -> None:
    kube = chart.kube
    poll("active tier in status", lambda: get(kube, APP, "ab/demo")["status"].get("active"), timeout=30)
    cp = chart.plugin("status", "demo", "-n", APP)
    out = cp.stdout
    assert "AssistantBinding team-a/demo" in out
    assert re.search(r"^\s+0\*\s+main\s+gpt-demo\s+openai-chat\s+yes\s+closed", out, re.M), out
    assert re.search(r"^\s+1\s+backup\s+backup-model\s+openai-chat\s+yes", out, re.M), out
    assert "active:   tier0 main/gpt-demo" in out and "1 of 1 selected pods run the current config" in out
    assert "demo-0  Pending" in out and "Ready=True (Serving)" in out
    data = json.loads(chart.plugin("-n", APP, "-o", "json", "status", "demo").stdout)
    assert data["pods"] == ["demo-0"] and data["status"]["pods"] == {"configured": 1, "selected": 1}

    poll("catalog fetched", lambda: (get(kube, APP, "ms/main").get("status") or {}).get("catalog"), timeout=30)
    out = chart.plugin("-n", APP, "models", "main").stdout
    assert "credential: True" in out and "2 models" in out
    assert re.search(r"^\s+gpt-demo\s+default$", out, re.M) and re.search(r"^\s+gpt-demo-mini\s*$", out, re.M), out
    cp = chart.plugin("-n", APP, "models", "nope", check_code=2)
    assert "not found" in cp.stderr


def test_plugin_test_and_explain_after_a_fallback(chart: Env) -> None:
    sim = chart.sim
    assert sim is not None
    sim.sim.fault("main", "503", persistent=True)
    try:
        status, headers = sim.chat("demo")
        assert status == 200 and headers["x-switchyard-tier"] == "1", headers
    finally:
        sim.sim.clear_faults("main")
    direct = ["--admin-url", sim.admin_url, "--admin-token", chart.token]
    out = chart.plugin("-n", APP, "explain", "demo", *direct, check_code=1).stdout
    assert "by tier1 backup/backup-model (a fallback)" in out, out
    assert re.search(r"tier0 main/gpt-demo: passed over: breaker open \(retry in \d+s\); last failure 503", out), out
    out = chart.plugin("-n", APP, "test", "demo", *direct, check_code=0).stdout
    assert "(prompt sent: no)" in out and re.search(r"^\s+0\s+main\s+gpt-demo\s+no\s+open\s+failed: breaker_allows", out, re.M), out
    cp = chart.plugin("-n", APP, "test", "demo", "--admin-url", sim.admin_url, "--admin-token", "wrong", check_code=2)
    assert "HTTP 401" in cp.stdout
    # The operator carries the sidecars' view to the binding.
    poll("breaker in status", lambda: get(chart.kube, APP, "ab/demo")["status"]["chain"][0].get("breaker", {}).get("state") == "open")
    out = chart.plugin("-n", APP, "status", "demo", check_code=0).stdout
    assert "open in 1/1 pods" in out


# --------------------------------------------------------------------------- the pod proxy path


class NetnsSidecar:
    """`switchyard sidecar` in a network namespace made for this test, with a veth pair:
    the pod IP the API server proxies to and the operator pushes to is that namespace's
    address (never loopback, which the API server refuses to proxy to)."""

    def __init__(self, token: str, workdir: Path) -> None:
        tag = secrets.token_hex(3)
        self.files = workdir / f"netns-{tag}"
        self.ns, self.host_if, self.ns_if = f"sy-{tag}", f"syh{tag}", f"syn{tag}"
        octet = int(tag[:2], 16) % 250 + 1
        self.host_ip, self.pod_ip = f"10.254.{octet}.1", f"10.254.{octet}.2"
        self.token, self.workdir = token, workdir
        self.proc: subprocess.Popen[bytes] | None = None

    def _ip(self, *args: str) -> None:
        subprocess.run(["ip", *args], check=True, capture_output=True, timeout=20)

    def start(self) -> None:
        self._ip("netns", "add", self.ns)
        self._ip("link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if)
        self._ip("link", "set", self.ns_if, "netns", self.ns)
        self._ip("addr", "add", f"{self.host_ip}/30", "dev", self.host_if)
        self._ip("link", "set", self.host_if, "up")
        self._ip("-n", self.ns, "addr", "add", f"{self.pod_ip}/30", "dev", self.ns_if)
        self._ip("-n", self.ns, "link", "set", self.ns_if, "up")
        self._ip("-n", self.ns, "link", "set", "lo", "up")
        env = {"PATH": os.environ.get("PATH", ""), "SWITCHYARD_ADMIN_TOKEN": self.token, "HOME": str(self.workdir)}
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", self.ns, str(SWITCHYARD), "sidecar", "--host", "127.0.0.1", "--port", "4000",
             "--admin-host", self.pod_ip, "--admin-port", "4001",
             "--config-dir", str(self.files / "config"), "--labels-file", str(self.files / "pod" / "labels")],
            env=env, stdout=open(self.workdir / "netns-sidecar.log", "wb"), stderr=subprocess.STDOUT, start_new_session=True)
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

        def healthy() -> bool:
            with opener.open(f"http://{self.pod_ip}:4001/healthz", timeout=2) as r:
                return r.status == 200

        deadline = time.monotonic() + 30
        while True:
            try:
                if healthy():
                    return
            except OSError:
                pass
            assert self.proc.poll() is None, (self.workdir / "netns-sidecar.log").read_text()
            assert time.monotonic() < deadline, "the sidecar in the network namespace did not come up"
            time.sleep(0.1)  # poll interval under a deadline

    def stop(self) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait(5)
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True, timeout=20)
        subprocess.run(["ip", "link", "del", self.host_if], capture_output=True, timeout=20)


@pytest.fixture
def netns_sidecar(chart: Env) -> Iterator[NetnsSidecar]:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2 to make a network namespace (the pod-proxy path)")
    s = NetnsSidecar(chart.token, chart.workdir)
    try:
        s.start()
    except (subprocess.CalledProcessError, OSError) as e:
        s.stop()
        detail = e.stderr.decode(errors="replace").strip() if isinstance(e, subprocess.CalledProcessError) and e.stderr else str(e)
        pytest.skip(f"cannot make a network namespace here ({detail}): the pod-proxy path is not tested")
    try:
        yield s
    finally:
        s.stop()


def test_plugin_reaches_sidecars_through_the_api_servers_pod_proxy(chart: Env, netns_sidecar: NetnsSidecar) -> None:
    kube = chart.kube
    kube.kubectl("create", "-n", APP, "-f", "-", input=sidecar_pod("demo-netns", None))
    kube.kubectl("patch", "pod", "demo-netns", "-n", APP, "--subresource=status", "--type=merge", "-p", json.dumps({
        "status": {"phase": "Running", "podIP": netns_sidecar.pod_ip, "podIPs": [{"ip": netns_sidecar.pod_ip}],
                   "containerStatuses": [{"name": "switchyard", "ready": False, "restartCount": 0, "image": "x", "imageID": "",
                                          "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}]}}))
    # The harness plays the kubelet (the Secret as files); the operator reads the status on
    # the pod IP, as in a cluster, with no token.
    kubelet = KubeletPlayer(kube, APP, "demo-netns", netns_sidecar.files)
    try:
        poll("config served on the pod IP", lambda: get(kube, APP, "ab/demo")["status"]["pods"] == {"selected": 2, "configured": 2}
             or None, timeout=45)
    finally:
        kubelet.stop()
    out = chart.plugin("-n", APP, "test", "demo", "--pod", "demo-netns", check_code=0).stdout
    assert "pod demo-netns: ok  (prompt sent: no)" in out, out
    out = chart.plugin("-n", APP, "explain", "demo", "--pod", "demo-netns", check_code=0).stdout
    assert "binding demo: no request served yet in 1 pod(s)" in out, out
    # Status is read-only and open; a route that acts needs the token, and the API server
    # consumes Authorization: only the token header gets through the proxy.
    path = f"/api/v1/namespaces/{APP}/pods/demo-netns:4001/proxy/admin/status"
    status, _ = kube.api("GET", path)
    assert status == 200
    status, _ = kube.api("POST", f"/api/v1/namespaces/{APP}/pods/demo-netns:4001/proxy/admin/bindings/demo/reset")
    assert status == 401


# --------------------------------------------------------------------------- upgrade, uninstall


def test_helm_upgrade_keeps_the_generated_certificate_and_tokens(chart: Env) -> None:
    kube = chart.kube
    before_cert = chart.secret_data(SYSTEM, "switchyard-webhook-cert")
    before_token = chart.secret_data(APP, "switchyard-admin-token")
    before_sum = get(kube, SYSTEM, "deployment/switchyard-operator")["spec"]["template"]["metadata"]["annotations"]["checksum/webhook-cert"]
    t0 = time.monotonic()
    kube.helm("upgrade", "switchyard", str(CHART), "--namespace", SYSTEM, "--reuse-values", "--set", "operator.logLevel=debug", timeout=180)
    chart.timings["helm upgrade"] = time.monotonic() - t0
    assert chart.secret_data(SYSTEM, "switchyard-webhook-cert") == before_cert
    assert chart.secret_data(APP, "switchyard-admin-token") == before_token
    dep = get(kube, SYSTEM, "deployment/switchyard-operator")
    assert dep["spec"]["template"]["metadata"]["annotations"]["checksum/webhook-cert"] == before_sum
    assert dep["spec"]["template"]["spec"]["containers"][0]["args"][:3] == ["operator", "--log-level", "debug"]


def test_helm_uninstall_keeps_crds_and_tokens_and_removes_the_operators_rights(chart: Env) -> None:
    kube = chart.kube
    assert chart.operator is not None
    chart.operator.stop()  # a running operator would log its lost permissions
    assert kube.kubectl("get", "mutatingwebhookconfiguration,validatingwebhookconfiguration", "switchyard", check=False).returncode == 0
    kube.helm("uninstall", "switchyard", "--namespace", SYSTEM, timeout=120)
    # The webhook configurations were the release's: gone with it (no operator left to remove them).
    for kind in ("mutatingwebhookconfiguration", "validatingwebhookconfiguration"):
        assert kube.kubectl("get", kind, "switchyard", check=False).returncode != 0
    crds = kube.kubectl("get", "crd", "-l", "app.kubernetes.io/part-of=switchyard", "-o", "name").stdout.split()
    assert len(crds) == 3
    assert get(kube, APP, "ab/demo")["metadata"]["name"] == "demo"  # users' objects stay
    assert chart.secret_data(APP, "switchyard-admin-token")["token"].decode() == chart.token  # sidecars still need it
    poll("RBAC revoked", lambda: kube.kubectl("auth", "can-i", "list", "secrets", "-n", APP, identity="operator",
                                               check=False).stdout.strip() == "no")
