"""The chart's RBAC is operator/rbac.yaml: the same objects and rules (the e2e tier runs
the operator bound only to operator/rbac.yaml, and the chart install test only to the
chart's), with no wildcard anywhere, whatever the options."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from chart_helpers import REPO, Render
from test_chart_render import CASES

RBAC_KINDS = ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")


def _norm_rule(rule: dict[str, Any]) -> tuple[Any, ...]:
    return (
        tuple(sorted(rule.get("apiGroups", []))),
        tuple(sorted(rule.get("resources", []))),
        tuple(sorted(rule.get("resourceNames", []))),
        tuple(sorted(rule.get("verbs", []))),
        tuple(sorted(rule.get("nonResourceURLs", []))),
    )


def _norm(doc: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": doc["kind"], "name": doc["metadata"]["name"], "namespace": doc["metadata"].get("namespace")}
    if "rules" in doc:
        out["rules"] = sorted(_norm_rule(r) for r in doc["rules"])
    if "roleRef" in doc:
        out["roleRef"] = doc["roleRef"]
        out["subjects"] = sorted((s["kind"], s["name"], s.get("namespace", "")) for s in doc["subjects"])
    return out


def _rbac(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted((_norm(d) for d in docs if d["kind"] in RBAC_KINDS), key=lambda d: (d["kind"], d["namespace"] or "", d["name"]))


def test_cluster_wide_chart_rbac_equals_operator_rbac_yaml(render: Render) -> None:
    reference = [d for d in yaml.safe_load_all((REPO / "switchyard" / "operator" / "rbac.yaml").read_text()) if d]
    assert _rbac(render(None, "operator.clusterWide=true")) == _rbac(reference)


def test_namespaced_is_the_default_and_cluster_wide_must_be_asked_for(render: Render, helm: Any) -> None:
    """No namespace and no operator.clusterWide: the chart refuses to render (it never
    falls back to watching, and reading labelled Secrets in, every namespace)."""
    cp = helm("template", "switchyard", str(REPO / "charts" / "switchyard"), "-n", "switchyard-system", check=False)
    assert cp.returncode != 0 and "operator.clusterWide=true" in cp.stderr and "appNamespaces" in cp.stderr
    cp = helm("template", "switchyard", str(REPO / "charts" / "switchyard"), "-n", "switchyard-system",
              "--set", "operator.clusterWide=true", "--set", "operator.watchNamespaces={a}", check=False)
    assert cp.returncode != 0 and "exclusive" not in cp.stderr and "leave operator.watchNamespaces empty" in cp.stderr
    docs = render(None, "appNamespaces={team-a,team-b}")
    roles = sorted((d["metadata"]["namespace"], d["metadata"]["name"]) for d in docs if d["kind"] == "Role")
    assert roles == [("switchyard-system", "switchyard-operator-leader"), ("team-a", "switchyard-operator"),
                     ("team-b", "switchyard-operator")]
    # The webhook configurations are the chart's own objects: no cluster-scoped rule is left.
    assert [d for d in docs if d["kind"] in ("ClusterRole", "ClusterRoleBinding")] == []
    args = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[-4:] == ["--namespace", "team-a", "--namespace", "team-b"]
    # The operator may GET two Secrets by name (the admin token, the config Secret) and
    # update only the config Secret; create cannot be narrowed by name; list/watch it uses
    # only with the label selector switchyard.dev/credential=true.
    for role in (d for d in docs if d["kind"] == "Role" and d["metadata"]["name"] == "switchyard-operator"):
        secret_rules = [r for r in role["rules"] if "secrets" in r["resources"]]
        assert sorted((tuple(r["verbs"]), tuple(r.get("resourceNames", []))) for r in secret_rules) == [
            (("create",), ()), (("get",), ("switchyard-admin-token", "switchyard-config")), (("list", "watch"), ()),
            (("update",), ("switchyard-config",))]


def test_watching_namespaces_grants_the_same_rules_per_namespace(render: Render) -> None:
    reference = [d for d in yaml.safe_load_all((REPO / "switchyard" / "operator" / "rbac.yaml").read_text()) if d]
    ref_rules = {r for d in reference if d["kind"] == "ClusterRole" for r in map(_norm_rule, d["rules"])}
    docs = render(None, "operator.watchNamespaces={team-a,team-b}")
    cluster = [d for d in docs if d["kind"] == "ClusterRole"]
    roles = {d["metadata"]["namespace"]: {_norm_rule(r) for r in d["rules"]}
             for d in docs if d["kind"] == "Role" and d["metadata"]["name"] == "switchyard-operator"}
    assert set(roles) == {"team-a", "team-b"}
    # Nothing cluster-wide: the webhook configurations are the chart's own objects now.
    assert cluster == []
    # The same rules, but the config Secrets' owner is the namespace's own RoleBinding
    # (cluster-wide: the ClusterRoleBinding), read by name only.
    owner = {"ClusterRoleBinding": (("rbac.authorization.k8s.io",), ("clusterrolebindings",), ("switchyard-operator",), ("get",), ()),
             "RoleBinding": (("rbac.authorization.k8s.io",), ("rolebindings",), ("switchyard-operator",), ("get",), ())}
    assert owner["ClusterRoleBinding"] in ref_rules
    for ns_rules in roles.values():
        assert ns_rules == ref_rules - {owner["ClusterRoleBinding"]} | {owner["RoleBinding"]}
    env = {e["name"]: e.get("value") for e in next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["SWITCHYARD_CONFIG_OWNER"] == "RoleBinding/switchyard-operator"
    bindings = {d["metadata"]["namespace"]: d for d in docs if d["kind"] == "RoleBinding" and d["metadata"]["name"] == "switchyard-operator"}
    assert set(bindings) == {"team-a", "team-b"}
    for b in bindings.values():
        assert b["subjects"] == [{"kind": "ServiceAccount", "name": "switchyard-operator", "namespace": "switchyard-system"}]
    args = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[-4:] == ["--namespace", "team-a", "--namespace", "team-b"]


def test_no_webhook_and_no_leader_election_means_no_rules_for_them(render: Render) -> None:
    docs = render(None, "webhook.enabled=false", "operator.replicas=1", "operator.leaderElection.enabled=false")
    rules = [r for d in docs if d["kind"] in ("ClusterRole", "Role") for r in d["rules"]]
    groups = {g for r in rules for g in r["apiGroups"]}
    assert "admissionregistration.k8s.io" not in groups and "coordination.k8s.io" not in groups


@pytest.mark.parametrize("case", list(CASES))
def test_no_wildcards(render: Render, case: str) -> None:
    values, sets = CASES[case]
    for d in render(values, *sets):
        for r in d.get("rules", []) if d["kind"] in ("ClusterRole", "Role") else []:
            for field in ("apiGroups", "resources", "verbs", "resourceNames", "nonResourceURLs"):
                assert "*" not in r.get(field, []), (d["kind"], d["metadata"]["name"], r)
            assert not {"escalate", "bind", "impersonate", "delete", "deletecollection", "update"} & set(r["verbs"]) or (
                r.get("resources") in (["leases"], ["secrets"]) and r.get("resourceNames")
            ), r
            if "secrets" in r.get("resources", []):
                # read any (credentials); create one, update only the config Secret by name
                assert set(r["verbs"]) <= {"get", "list", "watch"} or r["verbs"] == ["create"] or (
                    r["verbs"] == ["update"] and r.get("resourceNames") == ["switchyard-config"]), r


def test_the_pod_label_selector_reaches_the_operator(render: Render) -> None:
    def env(docs: list[dict[str, Any]]) -> dict[str, str]:
        (c,) = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]["spec"]["containers"]
        return {e["name"]: e.get("value", "") for e in c["env"]}

    assert "SWITCHYARD_POD_LABEL_SELECTOR" not in env(render())
    assert env(render(None, "operator.podLabelSelector=team=assistants"))["SWITCHYARD_POD_LABEL_SELECTOR"] == "team=assistants"
