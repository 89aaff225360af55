"""The injected sidecar: shape, idempotence, and refusing nothing (pure)."""

from __future__ import annotations

import copy
from typing import Any

from switchyard.operator.settings import SidecarSettings
from switchyard.operator.webhook import inject, spec_patch

S = SidecarSettings(image="ghcr.io/x/switchyard:1.2.3", admin_token_secret="tok", admin_token_key="k")


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
    assert vols["switchyard-config"]["secret"] == {"secretName": "switchyard-config", "optional": True, "defaultMode": 0o440}
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
