"""``switchyard inject``: the webhook's injection written into manifests, so a pod created
while no operator replica serves the webhook still gets its sidecar."""

from __future__ import annotations

import io

import yaml

from switchyard.cli.inject import inject_documents, run
from switchyard.operator import webhook
from switchyard.operator.settings import SidecarSettings

DEPLOY = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: app}
spec:
  template:
    metadata: {labels: {app: a, switchyard.dev/inject: "true"}}
    spec:
      containers: [{name: app, image: app:1}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: other}
spec:
  template:
    metadata: {labels: {app: b}}
    spec:
      containers: [{name: app, image: app:1}]
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly}
spec:
  schedule: "0 0 * * *"
  jobTemplate:
    spec:
      template:
        metadata: {labels: {switchyard.dev/inject: "true"}}
        spec:
          restartPolicy: Never
          containers: [{name: job, image: job:1}]
"""


def test_opted_in_templates_get_the_webhooks_own_injection() -> None:
    docs = list(yaml.safe_load_all(DEPLOY))
    settings = SidecarSettings(native=True, image="switchyard:dev")
    out, warnings = inject_documents(docs, settings)
    assert warnings == []
    assert "initContainers" not in docs[0]["spec"]["template"]["spec"], "the input is left as it was"
    app, other, cron = out
    pod = app["spec"]["template"]
    expected, _ = webhook.inject({"metadata": pod["metadata"], "spec": docs[0]["spec"]["template"]["spec"]}, settings)
    assert pod["spec"] == expected["spec"]
    (sidecar,) = pod["spec"]["initContainers"]
    assert sidecar["name"] == "switchyard" and sidecar["restartPolicy"] == "Always" and sidecar["image"] == "switchyard:dev"
    assert {v["name"] for v in pod["spec"]["volumes"]} == {"switchyard-tmp", "switchyard-config", "switchyard-podinfo"}
    assert "initContainers" not in other["spec"]["template"]["spec"], "not opted in: unchanged"
    assert cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["initContainers"][0]["name"] == "switchyard"
    # ... and the webhook leaves a pod that already carries it alone
    again, warns = webhook.inject({"metadata": pod["metadata"], "spec": pod["spec"]}, settings)
    assert again["spec"] == pod["spec"] and warns == []


def test_the_command_reads_a_file_and_writes_yaml(tmp_path) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "m.yaml"
    f.write_text(DEPLOY)
    out, err = io.StringIO(), io.StringIO()
    assert run(str(f), "switchyard:dev", native=False, out=out, err=err) == 0
    docs = list(yaml.safe_load_all(out.getvalue()))
    assert [c["name"] for c in docs[0]["spec"]["template"]["spec"]["containers"]] == ["app", "switchyard"]


def test_a_file_that_is_not_yaml_is_a_clear_error_not_a_trace(tmp_path) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "bad.yaml"
    f.write_text("kind: Pod\nspec: [unclosed\n")
    out, err = io.StringIO(), io.StringIO()
    assert run(str(f), None, native=True, out=out, err=err) == 2
    assert err.getvalue().startswith(f"switchyard inject: cannot read {f}:") and out.getvalue() == ""
    assert run(str(tmp_path / "missing.yaml"), None, native=True, out=out, err=err) == 2


def test_a_misshapen_pod_template_is_named_in_the_error(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    for doc, what in (
        ({"kind": "Pod", "metadata": {"name": "p", "labels": {"switchyard.dev/inject": "true"}}, "spec": {"containers": "x"}}, "spec.containers"),
        ({"kind": "Deployment", "metadata": {"name": "d"}, "spec": {"template": {"metadata": {"labels": 5}}}}, "metadata.labels"),
        ({"kind": "Job", "metadata": {"name": "j"}, "spec": {"template": {"spec": {"containers": [{}], "volumes": [3]}}}}, "spec.volumes"),
    ):
        monkeypatch.setattr("sys.stdin", io.StringIO(yaml.safe_dump(doc)))
        out, err = io.StringIO(), io.StringIO()
        assert run("-", None, native=True, out=out, err=err) == 2
        assert f"{doc['kind']}/{doc['metadata']['name']}" in err.getvalue() and what in err.getvalue(), err.getvalue()
        assert out.getvalue() == ""
