"""The sidecar-injection webhook, served by the operator on 127.0.0.1 and called by a real API server.

The webhook configurations are the chart's (``helm template``: release-named, opt-in by
pod label, failurePolicy Ignore, 5 s), applied with the API server pointed at
https://127.0.0.1:<port> and the test CA; the operator, bound to `operator/rbac.yaml`,
only serves them. Pods are created through the API server; without a kubelet they stay
Pending, which is enough to see what the webhook did.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

import kube_tools
from test_operator_cluster import (
    ADMIN_TOKEN,
    MANIFESTS,
    Operator,
    apply,
    get,
    install,
    poll,
    register_webhooks,
    table,
    wait_ready,
)

RELEASE = "e2e-wh"
STATE: dict[str, Any] = {}
CONFIG = f"{RELEASE}-switchyard"


def pod(name: str, *, inject: bool = True, ports: list[int] = (), labels: dict[str, str] | None = None,
        host_network: bool = False) -> str:
    spec: dict[str, Any] = {"containers": [{"name": "app", "image": "registry.invalid/app:0",
                                            "ports": [{"containerPort": p} for p in ports]}]}
    if host_network:
        spec["hostNetwork"] = True
    return json.dumps({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {**(labels or {"app": "support"}), **({"switchyard.dev/inject": "true"} if inject else {})}},
        "spec": spec,
    })


@pytest.fixture(scope="module")
def webhook_operator(kube: kube_tools.Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Operator, int]]:
    t0 = time.monotonic()
    install(kube)
    issued = kube.issue_serving_cert("switchyard-webhook", hosts=("127.0.0.1",))
    # The operator reads its certificate from files it does not own, as from a mounted Secret.
    cert_dir = tmp_path_factory.mktemp("webhook-cert")
    cert = type("Cert", (), {"cert_file": cert_dir / "tls.crt", "key_file": cert_dir / "tls.key", "ca_file": issued.ca_file})
    cert.cert_file.write_bytes(issued.cert_file.read_bytes())
    cert.key_file.write_bytes(issued.key_file.read_bytes())
    STATE["cert"] = cert
    port, ready_port = kube_tools.free_port(), kube_tools.free_port()
    op = Operator(kube, tmp_path_factory.mktemp("webhook-operator"), {
        "SWITCHYARD_WEBHOOK": "on",
        "SWITCHYARD_WEBHOOK_LISTEN": "127.0.0.1",
        "SWITCHYARD_WEBHOOK_PORT": str(port),
        "SWITCHYARD_WEBHOOK_HOST": "127.0.0.1",
        "SWITCHYARD_WEBHOOK_CERT_FILE": str(cert.cert_file),
        "SWITCHYARD_WEBHOOK_KEY_FILE": str(cert.key_file),
        "SWITCHYARD_WEBHOOK_CA_FILE": str(cert.ca_file),
        "SWITCHYARD_SIDECAR_IMAGE": "registry.invalid/switchyard:e2e",
        "SWITCHYARD_LEASE_NAME": "switchyard-operator",
        "SWITCHYARD_READINESS_ENDPOINT": f"http://127.0.0.1:{ready_port}/readyz",
        "SWITCHYARD_CONFIG_DELIVERY": "secret",
        "SWITCHYARD_WEBHOOK_CERT_CHECK_SECONDS": "1",
    })
    STATE["port"] = port
    op.start("op-webhook")
    register_webhooks(kube, RELEASE, port, cert.ca_file)
    wait_ready(f"http://127.0.0.1:{ready_port}/readyz")
    sys_stderr(f"[operator webhook e2e] setup {time.monotonic() - t0:.1f}s")
    try:
        yield op, port
    finally:
        op.stop()
        if getattr(kube, "_saw_failure", False):
            sys_stderr("--- operator log (tail) ---\n" + "\n".join(op.logs().splitlines()[-60:]))
        kube.kubectl("delete", "mutatingwebhookconfiguration,validatingwebhookconfiguration", CONFIG, "--ignore-not-found")


def sys_stderr(text: str) -> None:
    import sys

    sys.stderr.write("\n" + text + "\n")


def _mutated(kube: kube_tools.Cluster, ns: str) -> bool:
    cp = kube.kubectl("create", "--dry-run=server", "-n", ns, "-o", "json", "-f", "-", input=pod("probe"), check=False)
    spec = json.loads(cp.stdout)["spec"] if cp.returncode == 0 else {}
    return any(c["name"] == "switchyard" for c in spec.get("containers", []) + spec.get("initContainers", []))


def test_webhook_configuration_is_safe_for_the_cluster(kube: kube_tools.Cluster, webhook_operator: tuple[Operator, int]) -> None:
    hooks = json.loads(kube.kubectl("get", "mutatingwebhookconfiguration", CONFIG, "-o", "json").stdout)["webhooks"]
    assert len(hooks) == 1
    hook = hooks[0]
    # An operator outage never blocks pod creation anywhere: Ignore, not Fail, and 5 s at most.
    assert hook["failurePolicy"] == "Ignore" and hook["timeoutSeconds"] <= 5
    assert hook["sideEffects"] == "None"
    assert hook["rules"] == [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"],
                              "resources": ["pods"], "scope": "Namespaced"}]
    # Only pods that ask (label), never kube-system or the operator's namespace.
    assert hook["objectSelector"] == {"matchLabels": {"switchyard.dev/inject": "true"}}
    assert hook["namespaceSelector"]["matchExpressions"][0]["values"] == ["kube-system", "switchyard-system"]
    assert hook["clientConfig"]["caBundle"]
    # The operator never touched it (it has no right to): nothing of kopf's in it.
    assert not any("kopf" in k for k in (json.loads(kube.kubectl("get", "mutatingwebhookconfiguration", CONFIG, "-o", "json").stdout)
                                          ["metadata"].get("annotations") or {}))


def test_sidecar_injected_into_a_pod_created_through_the_api_server(
    kube: kube_tools.Cluster, webhook_operator: tuple[Operator, int], kube_ns: str
) -> None:
    ns = kube_ns
    poll("the webhook to mutate pods", lambda: _mutated(kube, ns))
    kube.kubectl("create", "-n", ns, "-f", "-", input=pod("app-0"))
    obj = get(kube, ns, "pod/app-0")
    # This API server is 1.29+: a native sidecar (init container, restartPolicy Always),
    # decided from its /version at the operator's start.
    assert [c["name"] for c in obj["spec"]["containers"]] == ["app"]
    side = obj["spec"]["initContainers"][0]
    assert side["name"] == "switchyard" and side["restartPolicy"] == "Always"
    assert side["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert side["image"] == "registry.invalid/switchyard:e2e"
    assert side["command"] == ["switchyard"] and side["args"][0] == "sidecar"
    assert side["args"][side["args"].index("--host") + 1] == "127.0.0.1"  # the app reaches it on loopback
    assert {p["name"]: p["containerPort"] for p in side["ports"]} == {"sy-api": 4000, "sy-admin": 4001}
    (env,) = side["env"]
    assert env == {"name": "SWITCHYARD_ADMIN_TOKEN",
                   "valueFrom": {"secretKeyRef": {"name": "switchyard-admin-token", "key": "token", "optional": True}}}
    assert "--config-dir" in side["args"] and "--labels-file" in side["args"]
    vols = {v["name"]: v for v in obj["spec"]["volumes"]}
    assert vols["switchyard-config"]["secret"]["secretName"] == "switchyard-config" and vols["switchyard-config"]["secret"]["optional"]
    assert side["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "sy-admin", "scheme": "HTTP"}
    assert side["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "sy-admin", "scheme": "HTTP"}
    sc = side["securityContext"]
    assert sc["runAsNonRoot"] and sc["readOnlyRootFilesystem"] and not sc["allowPrivilegeEscalation"]
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert side["resources"]["limits"]["memory"]
    assert any(v["name"] == "switchyard-tmp" for v in obj["spec"]["volumes"])
    assert obj["status"]["phase"] == "Pending"  # no kubelet; the mutation is what matters


def test_pods_that_do_not_ask_are_left_alone(
    kube: kube_tools.Cluster, webhook_operator: tuple[Operator, int], kube_ns: str
) -> None:
    ns = kube_ns
    poll("the webhook to mutate pods", lambda: _mutated(kube, ns))
    kube.kubectl("create", "-n", ns, "-f", "-", input=pod("plain", inject=False))
    assert [c["name"] for c in get(kube, ns, "pod/plain")["spec"]["containers"]] == ["app"]
    # Ports taken by the app: admitted without the sidecar, and kubectl prints why.
    cp = kube.kubectl("create", "-n", ns, "-f", "-", input=pod("clash", ports=[4000]))
    assert "sidecar not injected: container port(s) 4000 already used by the pod" in cp.stderr
    assert [c["name"] for c in get(kube, ns, "pod/clash")["spec"]["containers"]] == ["app"]
    # hostNetwork: the sidecar's ports would be the node's; admitted without it, with a warning.
    cp = kube.kubectl("create", "-n", ns, "-f", "-", input=pod("on-host", host_network=True))
    assert "hostNetwork pods are not supported" in cp.stderr
    assert [c["name"] for c in get(kube, ns, "pod/on-host")["spec"]["containers"]] == ["app"]


def test_injected_pod_is_tracked_by_its_binding(
    kube: kube_tools.Cluster, webhook_operator: tuple[Operator, int], kube_ns: str
) -> None:
    ns = kube_ns
    poll("the webhook to mutate pods", lambda: _mutated(kube, ns))
    for name in ("secrets", "profiles", "sources", "bindings"):
        apply(kube, ns, (MANIFESTS / "valid" / f"{name}.yaml").read_text(), UPSTREAM="http://127.0.0.1:9", ADMIN_TOKEN=ADMIN_TOKEN)
    kube.kubectl("create", "-n", ns, "-f", "-", input=pod("support-0"))
    row = poll("the pod counted as selected", lambda: (r := table(kube, ns, "ab")["support"])["PODS"] == "0/1" and r)
    assert row["READY"] == "False"
    problems = get(kube, ns, "ab/support")["status"]["pods"]["problems"]
    assert problems == [{"pod": "support-0", "reason": "NoAddress", "message": "pod is Pending without an IP yet"}]


def test_a_renewed_certificate_is_served_without_a_restart(
    kube: kube_tools.Cluster, webhook_operator: tuple[Operator, int], kube_ns: str
) -> None:
    """cert-manager renews the Secret; the kubelet updates the files; the webhook server
    picks them up (kopf restarts its listener when the files change) and keeps injecting."""
    import ssl

    cert, port = STATE["cert"], STATE["port"]

    def served() -> bytes:
        return ssl.PEM_cert_to_DER_cert(ssl.get_server_certificate(("127.0.0.1", port)))

    before = served()
    assert before == ssl.PEM_cert_to_DER_cert(cert.cert_file.read_text())
    renewed = kube.issue_serving_cert("switchyard-webhook-renewed", hosts=("127.0.0.1",))
    cert.key_file.write_bytes(renewed.key_file.read_bytes())
    cert.cert_file.write_bytes(renewed.cert_file.read_bytes())
    want = ssl.PEM_cert_to_DER_cert(renewed.cert_file.read_text())
    t0 = time.monotonic()
    poll("the renewed certificate served", lambda: served() == want, timeout=30)
    sys_stderr(f"[operator webhook e2e] renewed certificate served after {time.monotonic() - t0:.1f}s")
    poll("the webhook still mutating pods", lambda: _mutated(kube, kube_ns))
    assert webhook_operator[0].alive()


def test_webhooks_kept_when_the_operator_stops(kube: kube_tools.Cluster, webhook_operator: tuple[Operator, int], kube_ns: str) -> None:
    """The configurations are the release's: an operator process that exits (one replica of
    two in a rolling update) leaves them as they are. With every replica gone,
    failurePolicy Ignore admits pods unmutated."""
    op, _ = webhook_operator
    op.stop()  # returns once the process has exited, after kopf's own clean-up

    def names(kind: str) -> list[str]:
        cp = kube.kubectl("get", kind, CONFIG, "-o", "json")
        return [w["name"] for w in json.loads(cp.stdout).get("webhooks") or []]

    assert names("mutatingwebhookconfiguration") == ["inject-sidecar.switchyard.dev"]  # untouched
    assert names("validatingwebhookconfiguration") == ["check-binding.switchyard.dev"]
    # Pods are created, unmutated, while no operator serves the webhook.
    kube.kubectl("create", "-n", kube_ns, "-f", "-", input=pod("while-away"))
    assert [c["name"] for c in get(kube, kube_ns, "pod/while-away")["spec"]["containers"]] == ["app"]


def test_rbac_is_enough_for_kopf(webhook_operator: tuple[Operator, int]) -> None:
    op, _ = webhook_operator
    text = op.logs()
    assert "Not enough RBAC" not in text and "Forbidden" not in text and "forbidden" not in text, text[-3000:]
    assert "Traceback" not in text, text[-3000:]
