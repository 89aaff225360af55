"""The quickstart on real pods, as a user runs it (issue 16, point 3).

One cluster for the module: `helm install` of the chart, `kubectl apply` of
docs/quickstart/demo.yaml (the simulator as a pod behind a Service, two ModelSources, the
binding `assistant`, the app `demo-app` that opts in), then each bullet of the issue as a
test, in order (later ones change the cluster: the operator scaled down and back, the
binding changed, the chart uninstalled last). Traffic goes from inside the app pod through
its sidecar (`kubectl exec`), or from this machine to pod addresses (the pod network).
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any
from collections.abc import Callable

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]

NS = "team-a"
SYS = "switchyard-system"
DEMO = REPO / "docs" / "quickstart" / "demo.yaml"
BINDING_CHANGE_BOUND_S = 30.0  # docs/testing-node.md: a binding change reaches every selected pod within this

REQUEST_PY = r"""
import json, sys, urllib.request, urllib.error
out = []
for i in range(int(sys.argv[1])):
    req = urllib.request.Request('http://127.0.0.1:4000/v1/chat/completions',
        data=json.dumps({'model': 'assistant', 'messages': [{'role': 'user', 'content': 'hi'}]}).encode(),
        headers={'Content-Type': 'application/json'})
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            out.append({'status': r.status, 'headers': {k.lower(): v for k, v in r.headers.items()}})
    except urllib.error.HTTPError as e:
        out.append({'status': e.code, 'headers': {k.lower(): v for k, v in e.headers.items()},
                    'body': e.read().decode(errors='replace')[:500]})
    except Exception as e:
        out.append({'status': 0, 'error': repr(e)})
print(json.dumps(out))
"""


def wait_for(what: str, timeout: float, probe: Callable[[], Any], interval: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = probe()
            if last:
                return last
        except AssertionError as e:
            last = e
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last: {last}")
        time.sleep(interval)  # polling a real cluster under a deadline


def get_json(node: Any, *args: str) -> Any:
    return json.loads(node.kubectl("get", *args, "-o", "json").stdout)


def app_pods(node: Any, label: str = "app=demo-app") -> list[dict]:
    pods = get_json(node, "pods", "-n", NS, "-l", label)["items"]
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")]


def pod_ready(p: dict) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in p.get("status", {}).get("conditions", []))


def sidecar_names(p: dict) -> list[str]:
    spec = p["spec"]
    return [c["name"] for c in spec.get("containers", []) + spec.get("initContainers", [])
            if c["name"] == "switchyard"]


def send(node: Any, pod: str, n: int = 1) -> list[dict]:
    cp = node.kubectl("exec", "-n", NS, pod, "-c", "app", "--", "python", "-c", REQUEST_PY, str(n), timeout=120)
    return json.loads(cp.stdout.strip().splitlines()[-1])


def http_get(url: str, timeout: float = 5) -> str:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=timeout) as r:
        return r.read().decode()


def one_ready_app_pod(node: Any, timeout: float = 120) -> dict:
    def probe() -> dict | None:
        pods = [p for p in app_pods(node) if pod_ready(p)]
        return pods[0] if len(pods) == 1 else None

    return wait_for("one Ready demo-app pod", timeout, probe)


def binding_row(node: Any) -> dict[str, str]:
    out = node.kubectl("get", "assistantbinding", "assistant", "-n", NS).stdout
    lines = out.strip().splitlines()
    heads = re.split(r"\s{2,}", lines[0].strip())
    vals = re.split(r"\s{2,}", lines[1].strip())
    return dict(zip(heads, vals))


@pytest.fixture(scope="module")
def quickstart(node: Any) -> Any:
    t0 = time.monotonic()
    node.kubectl("create", "namespace", NS)
    node.helm("install", "switchyard", str(REPO / "charts" / "switchyard"), "--namespace", SYS, "--create-namespace",
              "--set", "image.repository=switchyard", "--set", "image.tag=dev", "--set", "image.pullPolicy=Never",
              "--set", f"appNamespaces={{{NS}}}", "--wait", "--timeout", "180s", timeout=240)
    t_helm = time.monotonic() - t0
    node.kubectl("apply", "-n", NS, "-f", str(DEMO))
    node.kubectl("rollout", "status", "-n", NS, "deployment/sim", "--timeout=120s", timeout=150)
    node.kubectl("rollout", "status", "-n", NS, "deployment/demo-app", "--timeout=120s", timeout=150)
    node.timings["helm install --wait (s)"] = t_helm
    node.timings["helm install + demo applied and rolled out (s)"] = time.monotonic() - t0
    return node


# ----------------------------------------------------------------------------- install and first request


def test_operator_ready_sidecar_injected_and_a_request_through_it(quickstart: Any) -> None:
    node = quickstart
    ops = get_json(node, "pods", "-n", SYS, "-l", "app.kubernetes.io/instance=switchyard")["items"]
    assert ops and all(pod_ready(p) for p in ops), [
        (p["metadata"]["name"], p["status"].get("containerStatuses")) for p in ops]
    restarts = {p["metadata"]["name"]: sum(c.get("restartCount", 0) for c in p["status"]["containerStatuses"])
                for p in ops}
    assert not any(restarts.values()), f"operator restarted (crash loop?): {restarts}"
    pod = one_ready_app_pod(node)
    assert sidecar_names(pod) == ["switchyard"], (
        f"the webhook did not inject the sidecar into {pod['metadata']['name']}: "
        f"{[c['name'] for c in pod['spec']['containers']]}")

    def served() -> list[dict] | None:
        r = send(node, pod["metadata"]["name"])
        return r if r[0]["status"] == 200 else None

    r = wait_for("a 200 through the sidecar", 60, served, interval=2)
    assert r[0]["headers"]["x-switchyard-source"] in ("sim-openai", "sim-anthropic")


def test_binding_shows_chain_active_tier_and_pods(quickstart: Any) -> None:
    node = quickstart

    def row() -> dict[str, str] | None:
        r = binding_row(node)
        return r if r.get("PODS") == "1/1" and r.get("READY") == "True" else None

    r = wait_for("the binding to show PODS 1/1 and READY True", 60, row)
    out = node.kubectl("get", "assistantbinding", "-n", NS).stdout
    assert "sim-openai" in r.get("PRIMARY", "") or "sim-openai" in out, out
    b = get_json(node, "assistantbinding", "assistant", "-n", NS)
    st = b.get("status", {})
    chain = json.dumps(st)
    assert "sim-openai" in chain and "sim-anthropic" in chain, st
    assert "activeTier" in chain or "ACTIVE" in out, out


# ----------------------------------------------------------------------------- a 429 on the primary


def sim_control(node: Any, path: str, body: object | None = None, method: str = "POST") -> Any:
    """The simulator pod's control API (/_sim/), over the pod network."""
    ip = app_pods(node, "app=sim")[0]["status"]["podIP"]
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"http://{ip}:4010/_sim/{path}", data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(req, timeout=10) as r:
        raw = r.read()
    return json.loads(raw) if raw else None


def test_429_on_primary_is_served_by_the_fallback_and_shows_in_status_events_and_metrics(quickstart: Any) -> None:
    node = quickstart
    pod = one_ready_app_pod(node)
    name = pod["metadata"]["name"]
    # the demo's own fault: the simulated OpenAI answers 429 on every third request
    results = send(node, name, 3)
    assert all(r["status"] == 200 for r in results), results
    fell_back = [r for r in results if r["headers"].get("x-switchyard-tier") == "1"]
    assert fell_back, f"no answer came from the fallback: {[r['headers'] for r in results]}"
    assert fell_back[0]["headers"]["x-switchyard-source"] == "sim-anthropic"
    assert "429" in fell_back[0]["headers"].get("x-switchyard-fallback-reason", "")
    # /metrics of the sidecar, scraped over the pod network
    ip = get_json(node, "pod", name, "-n", NS)["status"]["podIP"]
    metrics = http_get(f"http://{ip}:4001/metrics")
    assert re.search(r'^switchyard_fallbacks_total\{binding="assistant",[^}]*from_tier="0",reason="429"\} [1-9]',
                     metrics, re.M), [l for l in metrics.splitlines() if "fallbacks_total" in l]
    # The binding's status and Events. The operator reads the sidecars' health every 10 s;
    # an Event is raised on a change between two reads (ActiveTierChanged: Warning towards a
    # fallback), at most one per (binding, reason) per 60 s (operator/events.py). A 429 is
    # "rate-limited", not a breaker failure: no BreakerOpened. So: the demo's periodic 429
    # off, the primary active for a read, a quiet minute, then the primary answers 429.
    def active_is(label: str) -> Callable[[], bool]:
        def probe() -> bool:
            send(node, name, 1)  # the active tier is the one serving the latest requests
            return label in binding_row(node).get("ACTIVE", "")
        return probe

    sim_control(node, "openai/faults", method="DELETE")
    wait_for("ACTIVE on the primary", 60, active_is("tier0 sim-openai"), interval=2)
    quiet_until = time.monotonic() + 62
    while time.monotonic() < quiet_until:
        assert send(node, name, 1)[0]["headers"].get("x-switchyard-tier") == "0"
        time.sleep(3)  # a quiet minute on the primary: the per-reason Event limiter is open again
    sim_control(node, "openai/faults", {"kind": "429", "times": 1000})
    try:
        results = send(node, name, 3)
        assert all(r["status"] == 200 and r["headers"].get("x-switchyard-tier") == "1" for r in results), results
        wait_for("ACTIVE on the fallback in `kubectl get assistantbinding`", 60,
                 active_is("tier1 sim-anthropic"), interval=2)
        b = get_json(node, "assistantbinding", "assistant", "-n", NS)["status"]
        assert b["active"]["tier"] == 1 and b["active"]["source"] == "sim-anthropic", b["active"]
        primary = b["chain"][0]["breaker"]
        assert primary["lastFailure"] == "429" and primary["state"] == "rate-limited", primary

        def event_shows_it() -> str | None:
            events = node.kubectl("get", "events", "-n", NS, "--field-selector",
                                  "involvedObject.kind=AssistantBinding,involvedObject.name=assistant").stdout
            if re.search(r"Warning\s+ActiveTierChanged\s+.*now serving from tier1 sim-anthropic", events):
                return events
            raise AssertionError(f"Events so far:\n{events}")

        wait_for("a Warning Event ActiveTierChanged to the fallback", 30, event_shows_it, interval=2)
    finally:
        sim_control(node, "openai/faults", method="DELETE")

    def back_on_primary() -> bool:
        r = send(node, name, 1)[0]
        return r["status"] == 200 and r["headers"].get("x-switchyard-tier") == "0"

    wait_for("the primary serving again after the breaker's cooldown", 60, back_on_primary, interval=2)


# ----------------------------------------------------------------------------- the operator down


@pytest.fixture
def operator_down(quickstart: Any) -> Any:
    node = quickstart
    node.kubectl("scale", "-n", SYS, "deployment/switchyard-operator", "--replicas=0")
    wait_for("no operator pods", 90, lambda: not get_json(
        node, "pods", "-n", SYS, "-l", "app.kubernetes.io/instance=switchyard")["items"])
    try:
        yield node
    finally:
        node.kubectl("scale", "-n", SYS, "deployment/switchyard-operator", "--replicas=2")
        node.kubectl("rollout", "status", "-n", SYS, "deployment/switchyard-operator", "--timeout=120s", timeout=150)
        # back to one injected, configured app pod for the next tests
        for p in app_pods(node):
            if not sidecar_names(p):
                node.kubectl("delete", "pod", "-n", NS, p["metadata"]["name"], "--wait=true")
        one_ready_app_pod(node)


def test_operator_scaled_to_zero_the_app_pod_keeps_serving(operator_down: Any) -> None:
    node = operator_down
    pod = one_ready_app_pod(node)
    r = send(node, pod["metadata"]["name"], 3)
    assert all(x["status"] == 200 for x in r), r


def test_operator_down_a_recreated_app_pod_starts_and_serves(operator_down: Any) -> None:
    """With every operator replica down the webhook has no endpoint and the API server
    admits pods without the sidecar (failurePolicy Ignore). A workload injected ahead of
    time with ``switchyard inject`` does not need the webhook: its pods, created and
    recreated with the operator down, carry the sidecar, mount the config Secret and
    serve."""
    node = operator_down
    docs = [d for d in yaml.safe_load_all(DEMO.read_text()) if d]
    (deploy,) = [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "demo-app"]
    deploy["metadata"] = {"name": "demo-static", "labels": {"app": "demo-static"}}
    deploy["spec"]["selector"]["matchLabels"] = {"app": "demo-app", "variant": "static"}
    deploy["spec"]["template"]["metadata"]["labels"].update(variant="static")  # app=demo-app: the binding selects it
    injected = subprocess.run(
        [sys.executable, "-m", "switchyard", "inject", "-f", "-", "--image", "switchyard:dev"],
        input=yaml.safe_dump(deploy), capture_output=True, text=True, check=True, timeout=60).stdout
    static = "app=demo-app,variant=static"

    def one_ready_static_pod() -> dict:
        def probe() -> dict | None:
            pods = [p for p in app_pods(node, static) if pod_ready(p)]
            return pods[0] if len(pods) == 1 else None
        return wait_for("one Ready statically injected pod", 120, probe)

    node.kubectl("apply", "-n", NS, "-f", "-", input=injected)
    try:
        first = one_ready_static_pod()
        assert sidecar_names(first) == ["switchyard"], "created with the operator down: no sidecar"
        node.kubectl("delete", "pod", "-n", NS, first["metadata"]["name"], "--wait=true", timeout=120)
        new = one_ready_static_pod()
        assert sidecar_names(new) == ["switchyard"], "recreated pod has no sidecar"
        r = send(node, new["metadata"]["name"], 2)
        assert all(x["status"] == 200 for x in r), r
    finally:
        node.kubectl("delete", "deployment", "-n", NS, "demo-static", "--wait=true", timeout=120)
        wait_for("the static pods gone", 90, lambda: not get_json(node, "pods", "-n", NS, "-l", static)["items"])


# ----------------------------------------------------------------------------- a key rotated


def test_key_rotated_in_its_secret_next_request_uses_it_without_restart(quickstart: Any) -> None:
    node = quickstart
    pod = one_ready_app_pod(node)
    name, uid = pod["metadata"]["name"], pod["metadata"]["uid"]
    restarts = sum(c.get("restartCount", 0) for c in pod["status"]["containerStatuses"])
    sim = app_pods(node, "app=sim")[0]
    sim_url = f"http://{sim['status']['podIP']}:4010/_sim/openai/requests"
    new_key = f"sk-rotated-{int(time.time())}"
    want = hashlib.sha256(f"Bearer {new_key}".encode()).hexdigest()[:12]
    node.kubectl("patch", "secret", "demo-keys", "-n", NS, "--type=merge",
                 "-p", json.dumps({"stringData": {"openai": new_key}}))
    t0 = time.monotonic()

    def uses_new_key() -> bool:
        send(node, name, 1)
        recs = json.loads(http_get(sim_url))
        recs = recs.get("requests", recs) if isinstance(recs, dict) else recs
        last = recs[-1] if recs else {}
        return want in json.dumps(last.get("headers", {}))

    wait_for("the next request to carry the rotated key", 120, uses_new_key, interval=1)
    took = time.monotonic() - t0
    node.timings["key rotation: first request with the new key after the Secret patch (s)"] = took
    after = get_json(node, "pod", name, "-n", NS)
    assert after["metadata"]["uid"] == uid
    assert sum(c.get("restartCount", 0) for c in after["status"]["containerStatuses"]) == restarts


# ----------------------------------------------------------------------------- a binding changed


def test_binding_changed_every_selected_pod_serves_the_new_chain_within_the_bound(quickstart: Any) -> None:
    node = quickstart
    node.kubectl("scale", "-n", NS, "deployment/demo-app", "--replicas=2")
    wait_for("two Ready app pods", 120, lambda: len([p for p in app_pods(node) if pod_ready(p)]) == 2)
    pods = [p["metadata"]["name"] for p in app_pods(node)]
    # make sure both are configured with the current chain first
    wait_for("both pods serving", 60, lambda: all(send(node, p, 1)[0]["status"] == 200 for p in pods), interval=2)
    node.kubectl("patch", "assistantbinding", "assistant", "-n", NS, "--type=merge", "-p", json.dumps({
        "spec": {"primary": {"sourceRef": {"name": "sim-anthropic"}}, "fallbacks": [{"sourceRef": {"name": "sim-openai"}}]}}))
    t0 = time.monotonic()

    def all_new() -> bool:
        return all(send(node, p, 1)[0]["headers"].get("x-switchyard-source") == "sim-anthropic"
                   and send(node, p, 1)[0]["headers"].get("x-switchyard-tier") == "0" for p in pods)

    wait_for("every selected pod on the new chain", BINDING_CHANGE_BOUND_S, all_new, interval=0.5)
    node.timings["binding change: both pods on the new chain after the patch (s)"] = time.monotonic() - t0
    node.kubectl("patch", "assistantbinding", "assistant", "-n", NS, "--type=merge", "-p", json.dumps({
        "spec": {"primary": {"sourceRef": {"name": "sim-openai"}}, "fallbacks": [{"sourceRef": {"name": "sim-anthropic"}}]}}))
    node.kubectl("scale", "-n", NS, "deployment/demo-app", "--replicas=1")


# ----------------------------------------------------------------------------- native sidecar


JOB = """
apiVersion: batch/v1
kind: Job
metadata:
  name: one-shot
spec:
  backoffLimit: 0
  activeDeadlineSeconds: 60
  template:
    metadata:
      labels: {app: demo-app, switchyard.dev/inject: "true"}  # opt in: the webhook's objectSelector
    spec:
      restartPolicy: Never
      securityContext: {runAsNonRoot: true, runAsUser: 65532, seccompProfile: {type: RuntimeDefault}}
      containers:
        - name: app
          image: switchyard:dev
          imagePullPolicy: Never
          command: [python, -c, "import time, urllib.request; time.sleep(3); print('done')"]
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            capabilities: {drop: [ALL]}
"""


def test_native_sidecar_a_job_whose_pod_has_the_sidecar_completes(quickstart: Any) -> None:
    node = quickstart
    node.kubectl("apply", "-n", NS, "-f", "-", input=JOB)
    try:
        pod = wait_for("the Job's pod", 60, lambda: (get_json(node, "pods", "-n", NS, "-l", "job-name=one-shot")
                                                       ["items"] or [None])[0])
        assert sidecar_names(pod) == ["switchyard"], "the Job's pod got no sidecar"
        ok = wait_for("the Job to finish", 90, lambda: [
            c["type"] for c in get_json(node, "job", "one-shot", "-n", NS).get("status", {}).get("conditions", [])
            if c["status"] == "True" and c["type"] in ("Complete", "Failed")])
        assert ok == ["Complete"], get_json(node, "job", "one-shot", "-n", NS)["status"]
    finally:
        node.kubectl("delete", "job", "one-shot", "-n", NS, "--wait=false", check=False)


# ----------------------------------------------------------------------------- uninstall (last)


def test_helm_uninstall_leaves_nothing_of_switchyard_behind(quickstart: Any) -> None:
    node = quickstart
    node.helm("uninstall", "switchyard", "-n", SYS, "--wait", "--timeout", "120s", timeout=180)
    # kept by design (docs/operations.md): the CRDs (and so the user's objects) and the
    # admin-token Secrets in the app namespaces
    wait_for("the operator's pods gone", 90, lambda: not get_json(node, "pods", "-n", SYS)["items"])

    def ours(name: str) -> bool:
        return "switchyard" in name and not name.startswith("switchyard-node")  # the test cluster's own

    def nothing_left() -> bool:
        found = []
        for kind in ("mutatingwebhookconfigurations", "validatingwebhookconfigurations", "clusterroles",
                     "clusterrolebindings"):
            found += [f"{kind}/{it['metadata']['name']}" for it in get_json(node, kind)["items"]
                      if ours(it["metadata"]["name"])]
        for kind in ("deployments", "replicasets", "services", "serviceaccounts", "roles", "rolebindings",
                     "configmaps", "secrets", "pods", "leases"):
            for it in get_json(node, kind, "-A")["items"]:
                md = it["metadata"]
                if md["namespace"] == NS and kind == "secrets" and md["name"] == "switchyard-admin-token":
                    continue
                if md["namespace"] == SYS:
                    if (kind, md["name"]) in (("serviceaccounts", "default"), ("configmaps", "kube-root-ca.crt")):
                        continue  # every namespace has them
                    extra = ""
                    if kind == "leases":  # who made it, owned by what: the answer to "why is it here"
                        extra = (f" (created {md.get('creationTimestamp')}, owners {md.get('ownerReferences')}, "
                                 f"holder {(it.get('spec') or {}).get('holderIdentity')}, "
                                 f"managers {[f.get('manager') for f in md.get('managedFields') or []]})")
                    found.append(f"{kind}/{md['namespace']}/{md['name']}{extra}")
                elif ours(md["name"]):
                    found.append(f"{kind}/{md['namespace']}/{md['name']}")
        assert not found, f"left behind after helm uninstall: {found}"
        return True

    # the config Secret (it holds keys) is owned by the release's RoleBinding: the garbage
    # collector removes it shortly after helm uninstall deleted its owner
    wait_for("nothing of Switchyard left", 60, nothing_left, interval=2)
