"""The Helm chart renders, lints and validates: `helm lint --strict`, `helm template` with
the default values and with every option on (values-all.yaml), every rendered manifest
validated by `kubernetes-validate --strict` against the Kubernetes 1.37 schemas, and the
chart's own custom resources (the built-in CapabilityProfiles) against the chart's CRDs.

Kinds of other projects (prometheus-operator's PodMonitor/ServiceMonitor/PrometheusRule,
cert-manager's Certificate/Issuer) have no schema here: they are listed in FOREIGN and
checked for the fields this chart sets (the real-API-server tier cannot install them
either, since their CRDs are not ours to ship).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from chart_helpers import CHART, HERE, REPO, Render, find, one

VALUES_ALL = HERE / "values-all.yaml"
K8S_VERSION = "1.37.0"  # the kube-apiserver the e2e tier runs is 1.37.x
FOREIGN = {
    ("monitoring.coreos.com/v1", "PodMonitor"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
    ("cert-manager.io/v1", "Certificate"),
    ("cert-manager.io/v1", "Issuer"),
}
CASES = {
    "default": (None, ()),  # render() adds appNamespaces={team-a}: the chart is namespaced by default
    "cluster-wide": (None, ("operator.clusterWide=true",)),
    "all-options": (VALUES_ALL, ()),
    "webhook-off-single-replica": (None, ("webhook.enabled=false", "operator.replicas=1", "operator.leaderElection.enabled=false")),
    "watch-namespaces": (None, ("operator.watchNamespaces={team-a}", "appNamespaces={team-a}")),
}


@pytest.mark.parametrize("values", [None, VALUES_ALL], ids=["default", "all-options"])
def test_helm_lint_strict(helm: Any, values: Path | None) -> None:
    args = ["lint", "--strict", str(CHART)]
    if values:
        args += ["-f", str(values)]
    cp = helm(*args)
    assert "0 chart(s) failed" in cp.stdout, cp.stdout
    assert "[WARNING]" not in cp.stdout and "[ERROR]" not in cp.stdout, cp.stdout


def _crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    out = {}
    for path in sorted((CHART / "crds").glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        for v in crd["spec"]["versions"]:
            out[(f"{crd['spec']['group']}/{v['name']}", crd["spec"]["names"]["kind"])] = v["schema"]["openAPIV3Schema"]
    return out


def _validate_custom(doc: dict[str, Any], schema: dict[str, Any]) -> None:
    """A custom resource against its CRD's structural schema (OpenAPI v3 is close enough
    to JSON Schema for these objects; `x-kubernetes-*` keys are ignored by jsonschema)."""
    body = {k: v for k, v in doc.items() if k not in ("apiVersion", "kind", "metadata")}
    jsonschema.validate(body, {k: v for k, v in schema.items() if k != "properties"} | {
        "properties": {k: v for k, v in schema["properties"].items() if k not in ("apiVersion", "kind", "metadata")}})


@pytest.mark.parametrize("case", list(CASES))
def test_rendered_manifests_are_valid_kubernetes(render: Render, case: str, tmp_path: Path) -> None:
    values, sets = CASES[case]
    docs = render(values, *sets)
    crds = _crd_schemas()
    core = []
    for doc in docs:
        key = (doc["apiVersion"], doc["kind"])
        if key in crds:
            _validate_custom(doc, crds[key])
        elif key not in FOREIGN:
            core.append(doc)
    assert core
    path = tmp_path / f"{case}.yaml"
    path.write_text(yaml.safe_dump_all(core, sort_keys=False))
    cli = Path(__import__("sys").executable).with_name("kubernetes-validate")
    cp = subprocess.run([str(cli), "--strict", "--quiet", "-k", K8S_VERSION, str(path)], capture_output=True, text=True, timeout=120)
    assert cp.returncode == 0, cp.stdout + cp.stderr


def test_crds_render_and_validate_with_include_crds(helm: Any, tmp_path: Path) -> None:
    out = helm("template", "switchyard", str(CHART), "-n", "switchyard-system", "--include-crds", "--set", "appNamespaces={team-a}").stdout
    docs = [d for d in yaml.safe_load_all(out) if d]
    crds = [d for d in docs if d["kind"] == "CustomResourceDefinition"]
    assert sorted(d["metadata"]["name"] for d in crds) == [
        "assistantbindings.switchyard.dev", "capabilityprofiles.switchyard.dev", "modelsources.switchyard.dev"]
    path = tmp_path / "crds.yaml"
    path.write_text(yaml.safe_dump_all(crds, sort_keys=False))
    cli = Path(__import__("sys").executable).with_name("kubernetes-validate")
    cp = subprocess.run([str(cli), "--strict", "--quiet", "-k", K8S_VERSION, str(path)], capture_output=True, text=True, timeout=120)
    assert cp.returncode == 0, cp.stdout + cp.stderr


def test_foreign_kinds_carry_the_fields_their_operators_need(render: Render) -> None:
    docs = render(VALUES_ALL, release="sy")
    pm = one(docs, "PodMonitor", "sy-switchyard-sidecars")
    assert pm["spec"]["podMetricsEndpoints"] == [{"port": "sy-admin", "path": "/metrics", "interval": "30s"}]
    assert pm["spec"]["namespaceSelector"] == {"any": True} and pm["spec"]["selector"] == {}
    assert pm["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    opm = one(docs, "PodMonitor", "sy-switchyard-operator")
    assert opm["spec"]["podMetricsEndpoints"] == [{"port": "metrics", "path": "/metrics", "interval": "30s"}]
    assert opm["spec"]["namespaceSelector"] == {"matchNames": ["switchyard-system"]}
    sm = one(docs, "ServiceMonitor")
    assert sm["spec"]["endpoints"][0]["port"] == "sy-admin" and sm["spec"]["selector"] == {"matchLabels": {"app": "support"}}
    rule = one(docs, "PrometheusRule")
    assert [g["name"] for g in rule["spec"]["groups"]] == ["switchyard.rules"]
    assert all({"alert", "expr", "for", "labels", "annotations"} <= set(r) for r in rule["spec"]["groups"][0]["rules"])
    certs = {c["metadata"]["name"]: c for c in find(docs, "Certificate")}
    serving = certs["sy-switchyard-webhook"]["spec"]
    assert serving["secretName"] == "sy-switchyard-webhook-cert"
    assert "sy-switchyard-webhook.switchyard-system.svc" in serving["dnsNames"]
    assert serving["issuerRef"] == {"kind": "Issuer", "name": "sy-switchyard-webhook-ca", "group": "cert-manager.io"}
    assert certs["sy-switchyard-webhook-ca"]["spec"]["isCA"] is True
    issuers = {i["metadata"]["name"]: i["spec"] for i in find(docs, "Issuer")}
    assert issuers == {"sy-switchyard-selfsigned": {"selfSigned": {}},
                       "sy-switchyard-webhook-ca": {"ca": {"secretName": "sy-switchyard-webhook-ca"}}}
    # cert-manager writes the Secret: the chart must not render one of its own.
    assert not find(docs, "Secret", "sy-switchyard-webhook-cert")


def test_default_install_is_the_documented_minimum(render: Render) -> None:
    docs = render(None, "appNamespaces={team-a}", "builtinProfiles.install=false")
    kinds = sorted(f"{d['kind']}/{d['metadata'].get('namespace', '')}/{d['metadata']['name']}" for d in docs)
    assert kinds == [
        "Deployment/switchyard-system/switchyard-operator",
        "Lease/switchyard-system/switchyard-operator",  # the release's: helm uninstall removes it
        "MutatingWebhookConfiguration//switchyard",  # the chart's own (release-named), no RBAC for them
        "PodDisruptionBudget/switchyard-system/switchyard-operator",
        "Role/switchyard-system/switchyard-operator-leader",
        "Role/team-a/switchyard-operator",  # namespaced by default: a Role per watched namespace
        "RoleBinding/switchyard-system/switchyard-operator-leader",
        "RoleBinding/team-a/switchyard-operator",
        "Secret/switchyard-system/switchyard-webhook-cert",
        "Secret/team-a/switchyard-admin-token",
        "Service/switchyard-system/switchyard-webhook",
        "ServiceAccount/switchyard-system/switchyard-operator",
        "ValidatingWebhookConfiguration//switchyard",
    ]


def test_replicas_without_leader_election_is_refused(helm: Any) -> None:
    cp = helm("template", "switchyard", str(CHART), "--set", "operator.leaderElection.enabled=false", "--set", "appNamespaces={a}", check=False)
    assert cp.returncode != 0 and "needs operator.leaderElection.enabled" in cp.stderr


def test_service_monitor_needs_a_selector(helm: Any) -> None:
    cp = helm("template", "switchyard", str(CHART), "--set", "metrics.serviceMonitor.enabled=true", "--set", "appNamespaces={a}", check=False)
    assert cp.returncode != 0 and "metrics.serviceMonitor.selector is required" in cp.stderr


def test_every_value_is_documented() -> None:
    """Each key in values.yaml has a comment right above it (or above its parent block
    when it is a plain sub-setting of a documented probe/resources block)."""
    lines = (CHART / "values.yaml").read_text().splitlines()
    undocumented = []
    free_form = ("resources", "liveness", "readiness", "podSecurityContext", "securityContext", "namespaceSelector", "labels")
    parents: list[tuple[int, str]] = []
    for i, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or stripped.startswith("- "):
            continue
        indent = len(line) - len(line.lstrip())
        key = stripped.split(":", 1)[0]
        while parents and parents[-1][0] >= indent:
            parents.pop()
        inside_free_form = any(p in free_form for _, p in parents)
        is_block = stripped.endswith(":")
        prev = lines[i - 1].strip() if i else ""
        if not prev.startswith("#") and not inside_free_form and not (is_block and i + 1 < len(lines)):
            undocumented.append(f"line {i + 1}: {key}")
        if is_block:
            parents.append((indent, key))
    assert not undocumented, "values without a comment above them:\n" + "\n".join(undocumented)


def test_docs_mention_every_top_level_value() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    doc = (REPO / "docs" / "helm.md").read_text()
    missing = [k for k in values if f"`{k}" not in doc]
    assert not missing, f"docs/helm.md does not describe: {missing}"


def test_the_webhook_configurations_belong_to_the_release_and_cannot_stall_pods(render: Render) -> None:
    docs = render()
    (mutating,) = find(docs, "MutatingWebhookConfiguration")
    (validating,) = find(docs, "ValidatingWebhookConfiguration")
    ca = one(docs, "Secret", "switchyard-webhook-cert")["data"]["ca.crt"]
    (hook,) = mutating["webhooks"]
    assert hook["name"] == "inject-sidecar.switchyard.dev"
    assert hook["failurePolicy"] == "Ignore" and hook["sideEffects"] == "None" and hook["timeoutSeconds"] <= 5
    assert hook["objectSelector"] == {"matchLabels": {"switchyard.dev/inject": "true"}}  # opt-in by label
    assert hook["namespaceSelector"] == {"matchExpressions": [
        {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["kube-system", "switchyard-system"]}]}
    assert hook["rules"] == [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"],
                              "scope": "Namespaced"}]
    assert hook["clientConfig"]["service"] == {"namespace": "switchyard-system", "name": "switchyard-webhook",
                                               "path": "/inject-sidecar", "port": 443}
    assert hook["clientConfig"]["caBundle"] == ca  # the same CA that signed the serving certificate
    (check,) = validating["webhooks"]
    assert check["failurePolicy"] == "Ignore" and check["timeoutSeconds"] <= 5
    assert check["clientConfig"]["service"]["path"] == "/check-binding"
    # Another release has its own objects, never the same names.
    other = render(None, release="second")
    assert {d["metadata"]["name"] for d in other if d["kind"].endswith("WebhookConfiguration")} == {"second-switchyard"}
    # Watching namespaces: the webhook is called only there.
    scoped = one(render(None, "operator.watchNamespaces={team-a}"), "MutatingWebhookConfiguration")
    assert scoped["webhooks"][0]["namespaceSelector"]["matchExpressions"][0] == {
        "key": "kubernetes.io/metadata.name", "operator": "In", "values": ["team-a"]}
    # cert-manager: the CA bundle is injected from the Certificate.
    cm = one(render(None, "webhook.certManager.enabled=true"), "MutatingWebhookConfiguration")
    assert cm["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == "switchyard-system/switchyard-webhook"
    assert "caBundle" not in cm["webhooks"][0]["clientConfig"]


def test_the_operator_is_ready_only_when_its_webhook_answers(render: Render) -> None:
    dep = one(render(), "Deployment")
    c = dep["spec"]["template"]["spec"]["containers"][0]
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "ready"}
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["SWITCHYARD_READINESS_ENDPOINT"] == "http://0.0.0.0:8081/readyz"
    assert env["SWITCHYARD_CONFIG_DELIVERY"] == "secret"
    assert "SWITCHYARD_WEBHOOK_SERVICE" not in env and "SWITCHYARD_WEBHOOK_CONFIGURATION" not in env


def test_sidecar_shape_values_reach_the_operator(render: Render) -> None:
    env = {e["name"]: e.get("value") for e in one(render(), "Deployment")["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert (env["SWITCHYARD_SIDECAR_NATIVE"], env["SWITCHYARD_SIDECAR_CPU_REQUEST"], env["SWITCHYARD_SIDECAR_MEMORY_LIMIT"],
            env["SWITCHYARD_SIDECAR_CPU_LIMIT"], env["SWITCHYARD_SIDECAR_IMAGE_PULL_SECRETS"]) == ("auto", "50m", "256Mi", "", "")
    env = {e["name"]: e.get("value") for e in one(render(None, "sidecar.native=false", "sidecar.imagePullSecrets={a,b}",
                                                        "sidecar.resources.limits.cpu=1"), "Deployment")
           ["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert (env["SWITCHYARD_SIDECAR_NATIVE"], env["SWITCHYARD_SIDECAR_IMAGE_PULL_SECRETS"], env["SWITCHYARD_SIDECAR_CPU_LIMIT"]) == (
        "false", "a,b", "1")


def test_sidecar_tracing_values_reach_the_operator(render: Render) -> None:
    import json

    env = {e["name"]: e.get("value") for e in one(render(), "Deployment")["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["SWITCHYARD_SIDECAR_TRACING"] == "false" and json.loads(env["SWITCHYARD_SIDECAR_TRACING_ENV"]) == {}
    env = {e["name"]: e.get("value") for e in one(render(None, "sidecar.tracing.enabled=true",
                                                        "sidecar.tracing.endpoint=http://otel.obs:4318",
                                                        "sidecar.tracing.env.OTEL_TRACES_SAMPLER=parentbased_traceidratio",
                                                        "sidecar.tracing.env.OTEL_TRACES_SAMPLER_ARG=0.25"), "Deployment")
           ["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["SWITCHYARD_SIDECAR_TRACING"] == "true"
    assert json.loads(env["SWITCHYARD_SIDECAR_TRACING_ENV"]) == {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel.obs:4318", "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": "0.25"}
    from switchyard.operator.main import settings_from_env

    s = settings_from_env(env).sidecar  # what the operator makes of it
    assert s.tracing and dict(s.tracing_env)["OTEL_TRACES_SAMPLER_ARG"] == "0.25"


def test_gitops_renders_are_stable_with_an_existing_certificate_and_no_generated_token(render: Render) -> None:
    import base64

    ca = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n").decode()
    sets = ("webhook.existingCertSecret=my-webhook-tls", f"webhook.caBundle={ca}", "appNamespaces={team-a}",
            "adminToken.create=false")
    first, second = render(None, *sets), render(None, *sets)
    assert first == second  # nothing random: a GitOps diff stays empty
    assert not find(first, "Secret")  # neither a certificate nor a token rendered
    assert one(first, "MutatingWebhookConfiguration")["webhooks"][0]["clientConfig"]["caBundle"] == ca
    vols = one(first, "Deployment")["spec"]["template"]["spec"]["volumes"]
    assert next(v for v in vols if v["name"] == "webhook-cert")["secret"]["secretName"] == "my-webhook-tls"
    # An explicit token is stable too; a generated one is not (documented: use create=false or a value).
    tok = ("appNamespaces={team-a}", "adminToken.value=fixed-token-0123")
    assert find(render(None, *tok), "Secret", "switchyard-admin-token") == find(render(None, *tok), "Secret", "switchyard-admin-token")
    assert render(None, "appNamespaces={team-a}") != render(None, "appNamespaces={team-a}")


def test_an_existing_certificate_needs_its_ca_bundle(helm: Any) -> None:
    cp = helm("template", "switchyard", str(CHART), "--set", "webhook.existingCertSecret=x", check=False)
    assert cp.returncode != 0 and "webhook.caBundle" in cp.stderr
