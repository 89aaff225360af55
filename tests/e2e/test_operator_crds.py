"""The generated CRDs in a real API server: schema, CEL rules, nulls, categories, explain.

No operator runs here: what is checked is what the API server itself enforces when a
user runs `kubectl apply`. The same manifests are validated offline (cel-python and an
OpenAPI 3.0 validator) in tests/unit/api/test_crd_validation.py.
"""

from __future__ import annotations

import json
import string
from pathlib import Path

import pytest
import yaml

import kube_tools
from test_operator_cluster import MANIFESTS, REPO, install, table

SUBST = {"UPSTREAM": "http://127.0.0.1:9", "ADMIN_TOKEN": "t0ken"}
INVALID = sorted((MANIFESTS / "invalid").glob("*.yaml"))


@pytest.fixture(scope="module")
def crds(kube: kube_tools.Cluster) -> None:
    install(kube)


@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_invalid_manifest_refused_with_a_readable_message(kube: kube_tools.Cluster, crds: None, kube_ns: str, path: Path) -> None:
    doc = yaml.safe_load(path.read_text())
    expect = doc["metadata"]["annotations"]["e2e.switchyard.dev/expect"]
    cp = kube.kubectl("apply", "-n", kube_ns, "-f", str(path), check=False)
    assert cp.returncode != 0, f"{path.name} was accepted"
    assert expect in cp.stderr, cp.stderr
    assert kube.kubectl("get", doc["kind"].lower(), doc["metadata"]["name"], "-n", kube_ns, check=False).returncode != 0


def test_valid_manifests_and_examples_are_accepted(kube: kube_tools.Cluster, crds: None, kube_ns: str) -> None:
    for f in sorted((MANIFESTS / "valid").glob("*.yaml")) + sorted((REPO / "examples").rglob("*.yaml")):
        text = string.Template(f.read_text()).safe_substitute(SUBST)
        cp = kube.kubectl("apply", "--dry-run=server", "-n", kube_ns, "-f", "-", input=text, check=False)
        assert cp.returncode == 0, f"{f.relative_to(REPO)}: {cp.stderr}"


def test_unknown_fields_refused_not_silently_pruned(kube: kube_tools.Cluster, crds: None, kube_ns: str) -> None:
    doc = {"apiVersion": "switchyard.dev/v1alpha1", "kind": "AssistantBinding", "metadata": {"name": "typo"},
           "spec": {"primray": {"sourceRef": {"name": "a"}}}}
    cp = kube.kubectl("apply", "-n", kube_ns, "-f", "-", input=json.dumps(doc), check=False)
    assert cp.returncode != 0 and 'unknown field "spec.primray"' in cp.stderr, cp.stderr


def test_explicit_null_primary_kept_by_create_dropped_by_client_side_apply(kube: kube_tools.Cluster, crds: None, kube_ns: str) -> None:
    """Why the operator reads last-applied-configuration and remembers primaryConfigured."""
    doc = {"apiVersion": "switchyard.dev/v1alpha1", "kind": "AssistantBinding", "metadata": {"name": "n1"},
           "spec": {"primary": None, "boundCredential": "legacy-source"}}
    kube.kubectl("create", "-n", kube_ns, "-f", "-", input=json.dumps(doc))
    spec = json.loads(kube.kubectl("get", "ab/n1", "-n", kube_ns, "-o", "json").stdout)["spec"]
    assert "primary" in spec and spec["primary"] is None
    doc["metadata"]["name"] = "n2"
    kube.kubectl("apply", "-n", kube_ns, "-f", "-", input=json.dumps(doc))
    obj = json.loads(kube.kubectl("get", "ab/n2", "-n", kube_ns, "-o", "json").stdout)
    assert "primary" not in obj["spec"]
    applied = json.loads(obj["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"])
    assert applied["spec"]["primary"] is None
    # Defaults are applied by the API server, and never to primary.
    assert obj["spec"]["breaker"] == {"consecutiveFailures": 3, "cooldownSeconds": 30, "halfOpenRequests": 1,
                                      "probe": "models", "maxCooldownSeconds": 300, "maxRetryAfterSeconds": 300}


def test_status_is_a_subresource(kube: kube_tools.Cluster, crds: None, kube_ns: str) -> None:
    doc = {"apiVersion": "switchyard.dev/v1alpha1", "kind": "ModelSource", "metadata": {"name": "s"},
           "spec": {"provider": "openai"}}
    kube.kubectl("apply", "-n", kube_ns, "-f", "-", input=json.dumps(doc))
    kube.kubectl("patch", "ms/s", "-n", kube_ns, "--type=merge", "-p", '{"status":{"observedGeneration":7}}')
    assert "status" not in json.loads(kube.kubectl("get", "ms/s", "-n", kube_ns, "-o", "json").stdout)
    kube.kubectl("patch", "ms/s", "-n", kube_ns, "--subresource=status", "--type=merge",
                 "-p", '{"status":{"observedGeneration":1,"catalog":{"models":["a","b"],"count":2}}}')
    row = table(kube, kube_ns, "ms")["s"]
    assert (row["PROVIDER"], row["MODEL"], row["MODELS"], row["CREDENTIAL"]) == ("openai", "", "2", "")


def test_category_short_names_and_explain(kube: kube_tools.Cluster, crds: None, kube_ns: str) -> None:
    doc = {"apiVersion": "switchyard.dev/v1alpha1", "kind": "CapabilityProfile", "metadata": {"name": "p"},
           "spec": {"protocol": "gemini"}}
    kube.kubectl("apply", "-n", kube_ns, "-f", "-", input=json.dumps(doc))
    out = kube.kubectl("get", "switchyard", "-n", kube_ns, "-o", "name").stdout.split()
    assert out == ["capabilityprofile.switchyard.dev/p"]
    lines = kube.kubectl("get", "cap", "-n", kube_ns).stdout.splitlines()
    assert lines[0].split() == ["NAME", "PROTOCOL", "STREAMING", "TOOLS", "VISION", "REASONING", "AGE"]
    assert lines[1].split()[:6] == ["p", "gemini", "true", "true", "true", "none"]
    explain = kube.kubectl("explain", "assistantbinding.spec.primary").stdout
    assert "Explicit null means the binding is deliberately unbound" in explain


def test_binding_status_takes_usage_with_exact_amounts(kube: kube_tools.Cluster, crds: None, kube_ns: str) -> None:
    """status.usage (docs/usage-and-cost.md): token totals and exact decimal amounts; an
    amount that is not a plain non-negative decimal is refused by the status schema."""
    doc = {"apiVersion": "switchyard.dev/v1alpha1", "kind": "AssistantBinding", "metadata": {"name": "u"},
           "spec": {"primary": None}}
    kube.kubectl("apply", "-n", kube_ns, "-f", "-", input=json.dumps(doc))
    usage = {"inputTokens": 2400, "outputTokens": 50, "cachedInputTokens": 2000, "cacheWriteTokens": 300, "reasoningTokens": 0,
             "cost": [{"currency": "EUR", "amount": "0.002775"}], "pods": 2}
    kube.kubectl("patch", "ab/u", "-n", kube_ns, "--subresource=status", "--type=merge", "-p", json.dumps({"status": {"usage": usage}}))
    got = json.loads(kube.kubectl("get", "ab/u", "-n", kube_ns, "-o", "json").stdout)["status"]["usage"]
    assert got == usage
    bad = {"status": {"usage": {**usage, "cost": [{"currency": "EUR", "amount": "-1"}]}}}
    cp = kube.kubectl("patch", "ab/u", "-n", kube_ns, "--subresource=status", "--type=merge", "-p", json.dumps(bad), check=False)
    assert cp.returncode != 0 and "status.usage.cost[0].amount" in cp.stderr, cp.stderr
