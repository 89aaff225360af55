"""The harness itself, against a real kube-apiserver: what later e2e tests rely on."""

from __future__ import annotations

import base64
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from collections.abc import Callable, Iterator

import pytest

import kube_tools

GROUP = "harness.switchyard.dev"
CEL_MESSAGE = "spec.min must not exceed spec.max"

WIDGET_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": f"widgets.{GROUP}"},
    "spec": {
        "group": GROUP,
        "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wdg"]},
        "versions": [
            {
                "name": "v1alpha1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "additionalPrinterColumns": [
                    {"name": "Min", "type": "integer", "jsonPath": ".spec.min"},
                    {"name": "Max", "type": "integer", "jsonPath": ".spec.max"},
                    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
                    # Once a CRD lists columns, AGE is no longer added for it: list it too.
                    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                ],
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "required": ["min", "max"],
                                "properties": {
                                    "min": {"type": "integer", "minimum": 0},
                                    "max": {"type": "integer"},
                                },
                                "x-kubernetes-validations": [
                                    {"rule": "self.min <= self.max", "message": CEL_MESSAGE}
                                ],
                            },
                            "status": {"type": "object", "properties": {"phase": {"type": "string"}}},
                        },
                    }
                },
            }
        ],
    },
}


def widget(name: str, ns: str, lo: int, hi: int) -> str:
    return json.dumps({
        "apiVersion": f"{GROUP}/v1alpha1",
        "kind": "Widget",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"min": lo, "max": hi},
    })


def poll(what: str, probe: Callable[[], object], timeout: float = 30.0) -> object:
    """probe() until truthy, at most ``timeout`` seconds (the API server's caches are
    eventually consistent: new RBAC rules and webhook configs take a moment)."""
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        r = probe()
        if r:
            return r
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(delay)  # poll interval under a deadline
        delay = min(delay * 2, 1.0)


@pytest.fixture(scope="module")
def widget_crd(kube: kube_tools.Cluster) -> str:
    kube.kubectl("apply", "-f", "-", input=json.dumps(WIDGET_CRD))
    kube.kubectl("wait", "--for=condition=Established", f"crd/widgets.{GROUP}", "--timeout=30s")
    # Established is set before discovery serves the new type to every client: wait for it.
    poll("widgets in discovery", lambda: kube.kubectl("get", "widgets", "-A", check=False).returncode == 0)
    return f"widgets.{GROUP}"


def test_server_ready_and_pinned_version(kube: kube_tools.Cluster) -> None:
    assert kube.api("GET", "/readyz") == (200, "ok")
    status, version = kube.api("GET", "/version")
    assert status == 200
    assert version["gitVersion"] == f"v{kube_tools.KUBE_VERSION}"  # type: ignore[index]
    assert kube.server.startswith("https://127.0.0.1:")


def test_kubectl_get_namespaces_as_admin(kube: kube_tools.Cluster) -> None:
    out = kube.kubectl("get", "namespaces", "-o", "name").stdout.split()
    assert {"namespace/default", "namespace/kube-system"} <= set(out)
    who = json.loads(kube.kubectl("auth", "whoami", "-o", "json").stdout)["status"]["userInfo"]
    assert who["username"] == kube.admin_user
    assert "system:masters" in who["groups"]


def test_default_service_account_exists(kube: kube_tools.Cluster) -> None:
    # There is no controller-manager: the harness creates it, or no Pod can be created.
    assert kube.kubectl("get", "serviceaccount", "default", "-n", "default", "-o", "name").stdout.strip() == (
        "serviceaccount/default"
    )


def test_service_account_tokens_are_issued(kube: kube_tools.Cluster) -> None:
    token = kube.kubectl("create", "token", "default", "-n", "default", "--duration=10m").stdout.strip()
    assert token.count(".") == 2  # a signed JWT
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    assert claims["iss"] == kube_tools.SA_ISSUER
    assert claims["sub"] == "system:serviceaccount:default:default"


def test_cel_rule_rejects_bad_object_with_its_message(kube: kube_tools.Cluster, widget_crd: str, kube_ns: str) -> None:
    kube.kubectl("apply", "-f", "-", input=widget("good", kube_ns, 1, 3))
    bad = kube.kubectl("apply", "-f", "-", input=widget("bad", kube_ns, 5, 2), check=False)
    assert bad.returncode != 0
    assert CEL_MESSAGE in bad.stderr
    assert "Invalid value" in bad.stderr
    # The structural schema is enforced too (minimum: 0).
    neg = kube.kubectl("apply", "-f", "-", input=widget("neg", kube_ns, -1, 2), check=False)
    assert neg.returncode != 0
    assert "spec.min" in neg.stderr and "greater than or equal to 0" in neg.stderr
    names = kube.kubectl("get", "widgets", "-n", kube_ns, "-o", "name").stdout.split()
    assert names == [f"widget.{GROUP}/good"]


def test_printer_columns_shown_by_kubectl_get(kube: kube_tools.Cluster, widget_crd: str, kube_ns: str) -> None:
    kube.kubectl("apply", "-f", "-", input=widget("cols", kube_ns, 2, 7))
    lines = kube.kubectl("get", "wdg", "-n", kube_ns).stdout.splitlines()
    assert lines[0].split() == ["NAME", "MIN", "MAX", "PHASE", "AGE"]
    assert lines[1].split()[:3] == ["cols", "2", "7"]


def test_status_subresource_patch(kube: kube_tools.Cluster, widget_crd: str, kube_ns: str) -> None:
    kube.kubectl("apply", "-f", "-", input=widget("st", kube_ns, 0, 1))
    ref = ["widget/st", "-n", kube_ns]
    # Through the main resource, status is ignored: that is what the subresource means.
    kube.kubectl("patch", *ref, "--type=merge", "-p", '{"status":{"phase":"Sneaky"}}')
    obj = json.loads(kube.kubectl("get", *ref, "-o", "json").stdout)
    assert "status" not in obj or obj["status"].get("phase") != "Sneaky"
    gen = obj["metadata"]["generation"]

    kube.kubectl("patch", *ref, "--subresource=status", "--type=merge", "-p", '{"status":{"phase":"Ready"}}')
    obj = json.loads(kube.kubectl("get", *ref, "-o", "json").stdout)
    assert obj["status"]["phase"] == "Ready"
    assert obj["metadata"]["generation"] == gen  # a status write does not bump generation
    row = kube.kubectl("get", *ref, "--no-headers").stdout.split()
    assert row[:4] == ["st", "0", "1", "Ready"]


def test_operator_identity_is_subject_to_rbac(kube: kube_tools.Cluster, kube_ns: str) -> None:
    who = json.loads(kube.kubectl("auth", "whoami", "-o", "json", identity="operator").stdout)
    assert who["status"]["userInfo"]["username"] == kube.operator_user

    denied = kube.kubectl("get", "secrets", "-n", kube_ns, identity="operator", check=False)
    assert denied.returncode != 0
    assert "forbidden" in denied.stderr.lower()
    assert kube.operator_user in denied.stderr

    kube.kubectl("create", "role", "read-secrets", "-n", kube_ns, "--verb=get,list", "--resource=secrets")
    kube.kubectl(
        "create", "rolebinding", "operator-reads-secrets", "-n", kube_ns, "--role=read-secrets",
        f"--serviceaccount={kube_tools.OPERATOR_NAMESPACE}:{kube_tools.OPERATOR_SA}",
    )
    poll(
        "the RoleBinding to reach the authorizer",
        lambda: kube.kubectl("get", "secrets", "-n", kube_ns, identity="operator", check=False).returncode == 0,
    )
    # Only that namespace, only those verbs.
    assert kube.kubectl("get", "secrets", "-A", identity="operator", check=False).returncode != 0
    can = kube.kubectl("auth", "can-i", "delete", "secrets", "-n", kube_ns, identity="operator", check=False)
    assert can.stdout.strip() == "no"


class _InjectingWebhook(BaseHTTPRequestHandler):
    """A mutating admission webhook that adds a sidecar container to every Pod."""

    seen: list[dict] = []

    def do_POST(self) -> None:
        review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        req = review["request"]
        type(self).seen.append(req)
        patch = [
            {"op": "add", "path": "/spec/containers/-",
             "value": {"name": "injected-sidecar", "image": "registry.invalid/sidecar:0"}},
            {"op": "add", "path": "/metadata/labels", "value": {"harness.switchyard.dev/injected": "true"}},
        ]
        body = json.dumps({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "response": {
                "uid": req["uid"],
                "allowed": True,
                "patchType": "JSONPatch",
                "patch": base64.b64encode(json.dumps(patch).encode()).decode(),
            },
        }).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def loopback_webhook(kube: kube_tools.Cluster) -> Iterator[tuple[int, str]]:
    cert = kube.issue_serving_cert("harness-webhook")
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _InjectingWebhook)
    srv.socket = cert.server_context().wrap_socket(srv.socket, server_side=True)
    _InjectingWebhook.seen = []
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield srv.server_address[1], cert.ca_bundle
    finally:
        srv.shutdown()
        srv.server_close()
        t.join(timeout=10)


def test_pod_create_through_a_mutating_webhook_on_loopback(
    kube: kube_tools.Cluster, kube_ns: str, loopback_webhook: tuple[int, str]
) -> None:
    port, ca_bundle = loopback_webhook
    name = f"harness-inject-{kube_ns}"
    config = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": [{
            "name": "inject.harness.switchyard.dev",
            "admissionReviewVersions": ["v1"],
            "sideEffects": "None",
            "failurePolicy": "Fail",
            "timeoutSeconds": 5,
            # No Service needed: a URL on loopback with the CA that signed its cert.
            "clientConfig": {"url": f"https://127.0.0.1:{port}/mutate", "caBundle": ca_bundle},
            "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}],
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": kube_ns}},
        }],
    }
    pod = json.dumps({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "app", "namespace": kube_ns},
        "spec": {"containers": [{"name": "app", "image": "registry.invalid/app:0"}]},
    })
    kube.kubectl("apply", "-f", "-", input=json.dumps(config))
    try:
        def mutated_on_dry_run() -> bool:
            cp = kube.kubectl("create", "--dry-run=server", "-o", "json", "-f", "-", input=pod, check=False)
            return cp.returncode == 0 and any(
                c["name"] == "injected-sidecar" for c in json.loads(cp.stdout)["spec"]["containers"])

        poll("the webhook configuration to take effect", mutated_on_dry_run)
        kube.kubectl("create", "-f", "-", input=pod)
        obj = json.loads(kube.kubectl("get", "pod", "app", "-n", kube_ns, "-o", "json").stdout)
        assert [c["name"] for c in obj["spec"]["containers"]] == ["app", "injected-sidecar"]
        assert obj["metadata"]["labels"] == {"harness.switchyard.dev/injected": "true"}
        assert obj["spec"]["serviceAccountName"] == "default"
        assert obj["status"]["phase"] == "Pending"  # no scheduler, no kubelet
        reqs = [r for r in _InjectingWebhook.seen if not r.get("dryRun")]
        assert reqs and reqs[-1]["userInfo"]["username"] == kube.admin_user
    finally:
        kube.kubectl("delete", "mutatingwebhookconfiguration", name, "--ignore-not-found")
