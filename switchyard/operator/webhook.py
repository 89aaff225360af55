"""The sidecar a pod gets when it asks for one. Pure: pod in, pod out.

A pod annotated ``switchyard.dev/inject: "true"`` gets a container named ``switchyard``:

- ``switchyard sidecar``: the API on 127.0.0.1:4000 (only the app next to it can spend
  the credentials it holds), the admin API on 0.0.0.0:4001 for the operator's config push;
- the admin token from the Secret ``switchyard-admin-token`` (key ``token``) of the pod's
  namespace as ``SWITCHYARD_ADMIN_TOKEN`` (a reference, never the value);
- readiness ``/readyz`` (503 until the operator's config arrives) and liveness
  ``/healthz`` on the admin port; requests and a memory limit; non-root, read-only root
  filesystem, no privilege escalation, all capabilities dropped; a small ``/tmp``.

Injection is idempotent (a pod that already has a ``switchyard`` container is left as it
is) and refuses nothing: when the ports are taken by the app, the pod is admitted without
the sidecar and the reason is returned as an admission warning, which kubectl prints.
"""

from __future__ import annotations

import copy
from typing import Any

from .selection import ADMIN_PORT_NAME, API_PORT_NAME, has_sidecar_container, wants_injection
from .settings import SIDECAR_CONTAINER, SidecarSettings

TMP_VOLUME = "switchyard-tmp"


def sidecar_container(s: SidecarSettings) -> dict[str, Any]:
    return {
        "name": SIDECAR_CONTAINER,
        "image": s.image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["switchyard"],
        "args": [
            "sidecar",
            "--host", "127.0.0.1", "--port", str(s.api_port),
            "--admin-host", "0.0.0.0", "--admin-port", str(s.admin_port),
        ],
        "ports": [
            {"name": API_PORT_NAME, "containerPort": s.api_port, "protocol": "TCP"},
            {"name": ADMIN_PORT_NAME, "containerPort": s.admin_port, "protocol": "TCP"},
        ],
        "env": [
            {
                "name": "SWITCHYARD_ADMIN_TOKEN",
                "valueFrom": {"secretKeyRef": {"name": s.admin_token_secret, "key": s.admin_token_key}},
            },
        ],
        "readinessProbe": {
            "httpGet": {"path": "/readyz", "port": ADMIN_PORT_NAME},
            "periodSeconds": 5,
            "failureThreshold": 2,
        },
        "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": ADMIN_PORT_NAME},
            "periodSeconds": 10,
            "failureThreshold": 3,
        },
        "resources": {
            "requests": {"cpu": s.cpu_request, "memory": s.memory_request},
            "limits": {"memory": s.memory_limit},
        },
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": s.run_as_user,
            "runAsGroup": s.run_as_user,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [{"name": TMP_VOLUME, "mountPath": "/tmp"}],
    }


def _ports_in_use(pod: dict[str, Any]) -> set[int]:
    used = set()
    for c in (pod.get("spec") or {}).get("containers") or []:
        for p in c.get("ports") or []:
            if p.get("containerPort"):
                used.add(int(p["containerPort"]))
    return used


def inject(pod: dict[str, Any], s: SidecarSettings) -> tuple[dict[str, Any], list[str]]:
    """(the pod to admit, warnings). The input is never modified."""
    if not wants_injection(pod) or has_sidecar_container(pod):
        return pod, []
    clash = _ports_in_use(pod) & {s.api_port, s.admin_port}
    if clash:
        ports = ", ".join(str(p) for p in sorted(clash))
        return pod, [f"switchyard: sidecar not injected: container port(s) {ports} already used by the pod"]
    out = copy.deepcopy(pod)
    spec = out.setdefault("spec", {})
    spec.setdefault("containers", []).append(sidecar_container(s))
    volumes = spec.setdefault("volumes", [])
    if not any(v.get("name") == TMP_VOLUME for v in volumes):
        volumes.append({"name": TMP_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}})
    return out, []


def spec_patch(pod: dict[str, Any], s: SidecarSettings) -> tuple[dict[str, Any], list[str]]:
    """(merge patch of ``spec``, warnings) for kopf's admission ``patch`` (lists are replaced whole)."""
    new, warns = inject(pod, s)
    if new is pod:
        return {}, warns
    return {"containers": new["spec"]["containers"], "volumes": new["spec"]["volumes"]}, warns
