"""The injected sidecar: shape, idempotence, and refusing nothing (pure)."""

from __future__ import annotations

import copy
from typing import Any

from switchyard.operator.settings import SidecarSettings
from switchyard.operator.webhook import inject, spec_patch

S = SidecarSettings(image="ghcr.io/x/switchyard:1.2.3", admin_token_secret="tok", admin_token_key="k", native=False)


def pod(annotate: bool = True, ports: list[int] = ()) -> dict[str, Any]:
    return {
        "metadata": {"name": "p", "annotations": {"switchyard.dev/inject": "true"} if annotate else {}},
        "spec": {"containers": [{"name": "app", "image": "app", "ports": [{"containerPort": p} for p in ports]}]},
    }


def test_injects_the_sidecar_without_touching_the_input() -> None:
    original = pod()
    before = copy.deepcopy(original)
    out, warnings = inject(original, S)
    assert original == before and warnings == []
    app, side = out["spec"]["containers"]
    assert app == before["spec"]["containers"][0]
    assert side["name"] == "switchyard" and side["image"] == "ghcr.io/x/switchyard:1.2.3"
    assert side["command"] == ["switchyard"]
    assert side["args"] == ["sidecar", "--host", "127.0.0.1", "--port", "4000", "--admin-host", "0.0.0.0", "--admin-port", "4001",
                            "--config-dir", "/etc/switchyard/config", "--labels-file", "/etc/switchyard/pod/labels"]
    # the token is optional: nothing the operator does needs it (status is open, the config is a file)
    assert side["env"] == [{"name": "SWITCHYARD_ADMIN_TOKEN", "valueFrom": {"secretKeyRef": {"name": "tok", "key": "k", "optional": True}}}]
    assert side["readinessProbe"]["httpGet"]["path"] == "/readyz" and side["livenessProbe"]["httpGet"]["path"] == "/healthz"
    sc = side["securityContext"]
    assert sc["runAsNonRoot"] and sc["readOnlyRootFilesystem"] and sc["capabilities"] == {"drop": ["ALL"]}
    assert side["volumeMounts"] == [
        {"name": "switchyard-tmp", "mountPath": "/tmp"},
        {"name": "switchyard-config", "mountPath": "/etc/switchyard/config", "readOnly": True},
        {"name": "switchyard-podinfo", "mountPath": "/etc/switchyard/pod", "readOnly": True},
    ]
    vols = {v["name"]: v for v in out["spec"]["volumes"]}
    # the sidecar's uid (65532, no fsGroup) must be able to read root's files; only it mounts them
    assert all(m["name"] != "switchyard-config" for m in out["spec"]["containers"][0].get("volumeMounts", []))
    assert vols["switchyard-config"]["secret"] == {"secretName": "switchyard-config", "optional": True, "defaultMode": 0o444}
    assert vols["switchyard-podinfo"]["downwardAPI"]["items"] == [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]
    assert "switchyard-tmp" in vols


def test_push_mode_is_the_old_shape_and_mounts_nothing() -> None:
    from dataclasses import replace

    out, _ = inject(pod(), replace(S, delivery="push"))
    side = out["spec"]["containers"][1]
    assert "--config-dir" not in side["args"]
    assert side["env"][0]["valueFrom"]["secretKeyRef"] == {"name": "tok", "key": "k"}
    assert [v["name"] for v in out["spec"]["volumes"]] == ["switchyard-tmp"]


def test_idempotent_and_only_on_request() -> None:
    once, _ = inject(pod(), S)
    twice, _ = inject(once, S)
    assert twice is once
    plain = pod(annotate=False)
    assert inject(plain, S) == (plain, [])


def test_port_clash_admits_without_sidecar_and_warns() -> None:
    p = pod(ports=[8080, 4001])
    out, warnings = inject(p, S)
    assert out is p
    assert warnings == ["switchyard: sidecar not injected: container port(s) 4001 already used by the pod"]


def test_spec_patch_for_kopf() -> None:
    patch, _ = spec_patch(pod(), S)
    assert [c["name"] for c in patch["containers"]] == ["app", "switchyard"]
    assert spec_patch(pod(annotate=False), S) == ({}, [])


def test_webhooks_survive_one_replica_exiting() -> None:
    """kopf rewrites the webhook configuration on exit with only the persistent webhooks
    (`build_webhooks(persistent_only=True)`); the replica that stays up does not restore the
    rest. Both of ours must be kept, or a rolling update switches injection off."""
    import kopf
    from kopf._core.engines.admission import build_webhooks
    from kopf._cogs.structs.references import Resource

    from switchyard.operator import main

    registry, previous = kopf.OperatorRegistry(), kopf.get_default_registry()
    kopf.set_default_registry(registry)
    try:
        main.register_webhook()
    finally:
        kopf.set_default_registry(previous)
    resources = [
        Resource("", "v1", "pods", namespaced=True),
        Resource(main.GROUP, main.VERSION, "assistantbindings", namespaced=True),
    ]
    kept = build_webhooks(
        registry._webhooks.get_all_handlers(), resources=resources, name_suffix="switchyard.dev",
        client_config={"url": "https://example.invalid"}, persistent_only=True,
    )
    assert sorted(w["name"] for w in kept) == ["check-binding.switchyard.dev", "inject-sidecar.switchyard.dev"]
    assert all(w["failurePolicy"] == "Ignore" and w["rules"] for w in kept)


def test_opt_in_by_label_and_host_network_pods_are_skipped_with_a_warning() -> None:
    labelled = {"metadata": {"name": "p", "labels": {"switchyard.dev/inject": "true"}},
                "spec": {"containers": [{"name": "app", "image": "app"}]}}
    out, warnings = inject(labelled, S)
    assert [c["name"] for c in out["spec"]["containers"]] == ["app", "switchyard"] and warnings == []
    host = copy.deepcopy(labelled)
    host["spec"]["hostNetwork"] = True
    out, warnings = inject(host, S)
    assert out is host and len(warnings) == 1 and "hostNetwork" in warnings[0]


def _kopf_call(pod: dict[str, Any], namespace: str, settings: Any) -> tuple[dict[str, Any], list[str]]:
    import kopf

    from switchyard.operator import main

    holder = main.Holder()
    holder.config = settings
    patch = kopf.Patch()
    warnings: list[str] = []
    main.inject_sidecar(kopf.Body(pod), patch, warnings, kopf.Memo(holder=holder), namespace=namespace)
    return dict(patch), warnings


def test_the_handler_never_refuses_a_pod(monkeypatch: Any) -> None:
    from dataclasses import replace

    from switchyard.operator import admission, main
    from switchyard.operator.settings import Settings

    s = replace(Settings(), sidecar=S)
    patch, warnings = _kopf_call(pod(), "team-a", s)
    assert [c["name"] for c in patch["spec"]["containers"]] == ["app", "switchyard"]

    def boom(*a: Any, **k: Any) -> Any:
        raise RuntimeError("bug")

    monkeypatch.setattr(main.webhook, "spec_patch", boom)
    before = admission.WEBHOOK_ERRORS.labels("inject-sidecar")._value.get()
    patch, warnings = _kopf_call(pod(), "team-a", s)
    assert patch == {} and warnings == ["switchyard: sidecar not injected: internal error (RuntimeError)"]
    assert admission.WEBHOOK_ERRORS.labels("inject-sidecar")._value.get() == before + 1


def test_a_namespace_the_operator_does_not_watch_gets_no_sidecar() -> None:
    from dataclasses import replace

    from switchyard.operator.settings import Settings

    s = replace(Settings(), sidecar=S, namespaces=("team-a",))
    patch, warnings = _kopf_call(pod(), "team-b", s)
    assert patch == {} and "namespace team-b is not watched" in warnings[0]
    patch, _ = _kopf_call(pod(), "team-a", s)
    assert patch


async def test_the_review_namespace_wins_and_a_failure_is_an_allowed_answer() -> None:
    from switchyard.operator import admission

    seen: list[Any] = []

    async def fn(request: Any, **kw: Any) -> Any:
        seen.append(request["request"]["object"]["metadata"]["namespace"])
        if kw.get("webhook") == "explode":
            raise ValueError("unexpected")
        return {"response": {"allowed": True}}

    review = {"request": {"uid": "u-1", "namespace": "real-ns",
                          "object": {"metadata": {"name": "b", "namespace": "claimed-ns"}}}}
    guarded = admission.guard(fn)
    await guarded(review, webhook="check-binding")
    assert seen == ["real-ns"]
    answer = await guarded(review, webhook="explode")
    assert answer["response"]["allowed"] is True and answer["response"]["uid"] == "u-1"
    assert "unexpected" not in str(answer)


async def test_readiness_passes_only_when_the_webhook_answers_the_probe() -> None:
    from aiohttp import web

    from switchyard.operator import admission

    answers: dict[str, Any] = {"mode": "down"}

    async def hook(request: web.Request) -> web.Response:
        body = await request.json()
        if answers["mode"] == "unknown":
            return web.Response(status=404)
        return web.json_response({"response": {"uid": body["request"]["uid"], "allowed": True}})

    app = web.Application()
    app.add_routes([web.post("/inject-sidecar", hook)])
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    r = admission.Readiness(host="127.0.0.1", port=0, webhook_url=f"http://127.0.0.1:{port}/inject-sidecar", ca_file=None)
    await r.start()
    try:
        answers["mode"] = "unknown"
        assert (await r.webhook_answers())[0] is False  # kopf not ready yet: 404
        answers["mode"] = "up"
        assert await r.webhook_answers() == (True, "ok")
        await runner.cleanup()
        ok, why = await r.webhook_answers()
        assert not ok and "unreachable" in why
    finally:
        await r.stop()


def test_a_native_sidecar_on_clusters_that_have_them() -> None:
    from dataclasses import replace

    p = pod()
    p["spec"]["initContainers"] = [{"name": "migrate", "image": "app"}]
    out, warnings = inject(p, replace(S, native=True))
    assert warnings == [] and [c["name"] for c in out["spec"]["containers"]] == ["app"]
    side, migrate = out["spec"]["initContainers"]
    assert (side["name"], migrate["name"]) == ("switchyard", "migrate")  # first: running before the others
    assert side["restartPolicy"] == "Always"  # a Job's pod completes when its app does
    assert side["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "sy-admin"}
    patch, _ = spec_patch(p, replace(S, native=True))
    assert [c["name"] for c in patch["initContainers"]] == ["switchyard", "migrate"]
    again, _ = inject(out, replace(S, native=True))
    assert again is out  # idempotent: an init container named switchyard counts


def test_the_api_server_version_decides() -> None:
    from switchyard.operator.main import supports_native_sidecars

    assert supports_native_sidecars({"major": "1", "minor": "29"})
    assert supports_native_sidecars({"major": "1", "minor": "37+"})
    assert not supports_native_sidecars({"major": "1", "minor": "28"})
    assert not supports_native_sidecars({})


def test_resources_and_pull_secrets_from_settings_and_per_pod_annotations() -> None:
    from dataclasses import replace

    s = replace(S, image_pull_secrets=("regcred",), cpu_limit="500m")
    p = pod()
    p["metadata"]["annotations"].update({
        "switchyard.dev/sidecar-memory-limit": "512Mi", "switchyard.dev/sidecar-cpu-request": "bogus; rm -rf",
        "switchyard.dev/sidecar-image-pull-secrets": "team-cred, regcred, Not_A_Name",
    })
    out, warnings = inject(p, s)
    side = out["spec"]["containers"][1]
    assert side["resources"] == {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"cpu": "500m", "memory": "512Mi"}}
    assert out["spec"]["imagePullSecrets"] == [{"name": "regcred"}, {"name": "team-cred"}]
    assert len(warnings) == 2 and "sidecar-cpu-request" in warnings[0] and "Not_A_Name" in warnings[1]


def test_tracing_off_adds_nothing_and_on_adds_the_otel_environment() -> None:
    from dataclasses import replace

    out, _ = inject(pod(), S)
    assert [e["name"] for e in out["spec"]["containers"][1]["env"]] == ["SWITCHYARD_ADMIN_TOKEN"]
    on = replace(S, tracing=True, tracing_env=(("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
                                                ("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=prod")))
    out, _ = inject(pod(), on)
    env = out["spec"]["containers"][1]["env"]
    names = [e["name"] for e in env]
    assert names == ["SWITCHYARD_ADMIN_TOKEN", "SWITCHYARD_TRACING", "SWITCHYARD_POD_NAME", "SWITCHYARD_POD_NAMESPACE",
                     "OTEL_RESOURCE_ATTRIBUTES", "OTEL_EXPORTER_OTLP_ENDPOINT"]
    by = {e["name"]: e for e in env}
    assert by["SWITCHYARD_TRACING"]["value"] == "on"
    assert by["SWITCHYARD_POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    # ours first, the chart's after (the SDK keeps the last of a repeated key)
    assert by["OTEL_RESOURCE_ATTRIBUTES"]["value"] == (
        "k8s.pod.name=$(SWITCHYARD_POD_NAME),k8s.namespace.name=$(SWITCHYARD_POD_NAMESPACE),deployment.environment.name=prod")
    assert by["OTEL_EXPORTER_OTLP_ENDPOINT"]["value"] == "http://c:4318"
