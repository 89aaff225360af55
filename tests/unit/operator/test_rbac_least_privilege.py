"""The operator's RBAC is least privilege: no wildcard anywhere, no write to a user's
spec or to Secrets, nothing that grants more RBAC. Checks operator/rbac.yaml and, when
the chart is there, what `helm template` renders from it (default values and a
namespaced install), with the pinned helm from hack/kube_tools.py when it is fetched."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "charts" / "switchyard"

# What the operator may do, per (apiGroup, resource): anything else is a finding.
ALLOWED: dict[tuple[str, str], set[str]] = {
    ("switchyard.dev", "modelsources"): {"get", "list", "watch"},
    ("switchyard.dev", "capabilityprofiles"): {"get", "list", "watch"},
    ("switchyard.dev", "assistantbindings"): {"get", "list", "watch"},
    ("switchyard.dev", "modelsources/status"): {"get", "patch"},
    ("switchyard.dev", "capabilityprofiles/status"): {"get", "patch"},
    ("switchyard.dev", "assistantbindings/status"): {"get", "patch"},
    # list/watch: label-selected by the operator (RBAC cannot narrow them by label);
    # get: the admin-token and config Secrets only (NAMED_ONLY); create/update: the config Secret
    ("", "secrets"): {"get", "list", "watch", "create", "update"},
    ("", "pods"): {"get", "list", "watch", "patch"},  # patch: the config-version annotation
    ("", "events"): {"create"},
    ("coordination.k8s.io", "leases"): {"create", "get", "patch"},
    # get: its own (Cluster)RoleBinding, the owner of the config Secrets (NAMED_ONLY)
    ("rbac.authorization.k8s.io", "rolebindings"): {"get"},
    ("rbac.authorization.k8s.io", "clusterrolebindings"): {"get"},
}
# Verbs that may only be used with resourceNames (one named object, not the kind).
NAMED_ONLY = {
    ("", "secrets"): {"get", "update"},  # get: admin token and switchyard-config; update: switchyard-config only
    ("coordination.k8s.io", "leases"): {"get", "patch"},
    ("rbac.authorization.k8s.io", "rolebindings"): {"get"},
    ("rbac.authorization.k8s.io", "clusterrolebindings"): {"get"},
}
NEVER = {"escalate", "bind", "impersonate", "delete", "deletecollection", "*"}


def findings(docs: list[dict[str, Any]]) -> list[str]:
    out: list[str] = []
    roles = [d for d in docs if d and d.get("kind") in ("Role", "ClusterRole")]
    assert roles, "no Role or ClusterRole found"
    for role in roles:
        where = f"{role['kind']}/{role['metadata']['name']}"
        if role.get("aggregationRule"):
            out.append(f"{where}: aggregationRule pulls in other roles' rules")
        for i, rule in enumerate(role.get("rules") or []):
            at = f"{where} rule {i}"
            if rule.get("nonResourceURLs"):
                out.append(f"{at}: nonResourceURLs {rule['nonResourceURLs']}")
            for field in ("apiGroups", "resources", "verbs", "resourceNames"):
                if any("*" in str(v) for v in rule.get(field) or []):
                    out.append(f"{at}: wildcard in {field}: {rule[field]}")
            verbs = set(rule.get("verbs") or [])
            if verbs & NEVER:
                out.append(f"{at}: forbidden verbs {sorted(verbs & NEVER)}")
            for group in rule.get("apiGroups") or []:
                for resource in rule.get("resources") or []:
                    allowed = ALLOWED.get((group, resource))
                    if allowed is None:
                        out.append(f"{at}: {group or 'core'}/{resource} is not something the operator needs")
                        continue
                    if verbs - allowed:
                        out.append(f"{at}: {group or 'core'}/{resource} verbs {sorted(verbs - allowed)} beyond {sorted(allowed)}")
                    named = NAMED_ONLY.get((group, resource), set())
                    if verbs & named and not rule.get("resourceNames"):
                        out.append(f"{at}: {group or 'core'}/{resource} {sorted(verbs & named)} without resourceNames")
    for binding in (d for d in docs if d and d.get("kind") in ("RoleBinding", "ClusterRoleBinding")):
        ref = binding["roleRef"]["name"]
        if ref in ("cluster-admin", "admin", "edit", "view") or ref.startswith("system:"):
            out.append(f"{binding['kind']}/{binding['metadata']['name']} binds the built-in role {ref}")
    return out


def test_the_checker_catches_what_it_should() -> None:
    bad = [{"kind": "ClusterRole", "metadata": {"name": "x"}, "rules": [
        {"apiGroups": ["*"], "resources": ["secrets"], "verbs": ["get"]},
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["update", "patch"]},
        {"apiGroups": ["switchyard.dev"], "resources": ["assistantbindings"], "verbs": ["patch"]},
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["patch"]},
        {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["rolebindings"], "verbs": ["get"]},
        {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"], "verbs": ["escalate"]},
        {"nonResourceURLs": ["/metrics"], "verbs": ["get"]},
    ]}]
    got = "\n".join(findings(bad))
    for expected in ("wildcard in apiGroups", "secrets verbs ['patch']", "secrets ['update'] without resourceNames", "assistantbindings verbs ['patch']",
                     "leases ['patch'] without resourceNames", "rolebindings ['get'] without resourceNames", "forbidden verbs ['escalate']", "nonResourceURLs"):
        assert expected in got, (expected, got)


def test_operator_rbac_yaml_is_least_privilege() -> None:
    docs = list(yaml.safe_load_all((REPO / "switchyard" / "operator" / "rbac.yaml").read_text()))
    assert findings(docs) == []


def test_chart_templates_hold_no_wildcard() -> None:
    if not CHART.is_dir():
        pytest.skip("no chart in charts/switchyard yet")
    for path in sorted((CHART / "templates").glob("*.yaml")):
        text = path.read_text()
        for line in text.splitlines():
            stripped = line.split("#", 1)[0]
            if "rules" in text and ('"*"' in stripped or "'*'" in stripped or "[*]" in stripped.replace(" ", "")):
                pytest.fail(f"{path.name}: wildcard in {line.strip()!r}")


def _helm() -> Path | None:
    sys.path.insert(0, str(REPO / "hack"))
    try:
        import kube_tools
    except ImportError:
        return None
    clients = kube_tools.find_kube_clients()
    return Path(clients.helm) if clients is not None else None


@pytest.mark.parametrize("values", [["--set", "operator.clusterWide=true"], ["--set", "appNamespaces={team-a}"],
                                    ["--set", "operator.watchNamespaces={team-a,team-b}"]], ids=["cluster", "default", "namespaced"])
def test_rendered_chart_rbac_is_least_privilege(values: list[str], tmp_path: Path) -> None:
    if not (CHART / "Chart.yaml").is_file():
        pytest.skip("no chart in charts/switchyard yet")
    helm = _helm()
    if helm is None:
        pytest.skip("helm is not fetched (python hack/kube_tools.py tools)")
    env = {"HELM_CACHE_HOME": str(tmp_path), "HELM_CONFIG_HOME": str(tmp_path), "HELM_DATA_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    cp = subprocess.run([str(helm), "template", "switchyard", str(CHART), "-n", "switchyard-system", *values],
                        capture_output=True, text=True, timeout=60, env=env)
    assert cp.returncode == 0, cp.stderr
    docs = [d for d in yaml.safe_load_all(cp.stdout) if d]
    assert findings(docs) == []
