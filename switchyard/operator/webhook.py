"""The sidecar a pod gets when it asks for one. Pure: pod in, pod out.

A pod labelled ``switchyard.dev/inject: "true"`` gets a container named ``switchyard``,
as a native sidecar (an init container with ``restartPolicy: Always`` and a startup
probe, so Jobs complete and the app starts after it) when the cluster supports it
(Kubernetes 1.29+: ``SidecarSettings.native``, from the API server's version or the
chart), else as a plain container:

- ``switchyard sidecar``: the API on 127.0.0.1:4000 (only the app next to it can spend
  the credentials it holds), the admin API on 0.0.0.0:4001 for the operator to read
  health (``GET /admin/status``: read-only, no token, nothing secret);
- its config from files (Secret delivery, the default): the namespace's config Secret
  ``switchyard-config`` mounted read-only at ``/etc/switchyard/config`` (``optional:
  true``: the pod starts before the operator has written it) and the pod's own labels
  from the downward API at ``/etc/switchyard/pod/labels``; the sidecar serves the
  bindings whose selector matches them, and follows both files (no push, nothing
  secret on the network, no operator needed to start);
- the admin token from the Secret ``switchyard-admin-token`` (key ``token``) of the pod's
  namespace as ``SWITCHYARD_ADMIN_TOKEN`` (a reference, never the value), ``optional``
  with Secret delivery: only the routes that act (test, reset) use it, from outside the pod;
- with tracing on (the chart's ``sidecar.tracing``), ``SWITCHYARD_TRACING=on`` and the
  chart's ``OTEL_*`` variables, the pod and namespace as resource attributes;
- resources and image pull secrets from the settings (the chart's values), overridable
  per pod by annotation (``switchyard.dev/sidecar-cpu-request``, ``-cpu-limit``,
  ``-memory-request``, ``-memory-limit``, ``switchyard.dev/sidecar-image-pull-secrets``);
- readiness ``/readyz`` (503 until it has a config) and liveness
  ``/healthz`` on the admin port; requests and a memory limit; non-root, read-only root
  filesystem, no privilege escalation, all capabilities dropped; a small ``/tmp``.

Injection is idempotent (a pod that already has a ``switchyard`` container is left as it
is) and refuses nothing: when the ports are taken by the app, or the pod uses
``hostNetwork``, the pod is admitted without the sidecar and the reason is returned as
an admission warning, which kubectl prints.
"""

from __future__ import annotations

import copy
import re
from dataclasses import replace
from typing import Any

from switchyard.sidecar.contract.delivery import CONFIG_SECRET, LABELS_FILE

from .selection import ADMIN_PORT_NAME, API_PORT_NAME, has_sidecar_container, wants_injection
from .settings import SIDECAR_CONTAINER, SidecarSettings

TMP_VOLUME = "switchyard-tmp"
CONFIG_VOLUME = "switchyard-config"
PODINFO_VOLUME = "switchyard-podinfo"
CONFIG_DIR = "/etc/switchyard/config"
PODINFO_DIR = "/etc/switchyard/pod"


def sidecar_volumes(s: SidecarSettings) -> list[dict[str, Any]]:
    vols: list[dict[str, Any]] = [{"name": TMP_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}}]
    if s.delivery == "secret":
        vols += [
            # 0444: the files are root's, and the sidecar runs as another uid with no fsGroup
            # (0440 would lock it out); only the sidecar container mounts the volume.
            {"name": CONFIG_VOLUME, "secret": {"secretName": CONFIG_SECRET, "optional": True, "defaultMode": 0o444}},
            {"name": PODINFO_VOLUME, "downwardAPI": {"items": [
                {"path": LABELS_FILE, "fieldRef": {"fieldPath": "metadata.labels"}}]}},
        ]
    return vols


def sidecar_container(s: SidecarSettings) -> dict[str, Any]:
    files = s.delivery == "secret"
    token_ref: dict[str, Any] = {"name": s.admin_token_secret, "key": s.admin_token_key}
    if files:
        token_ref["optional"] = True
    mounts: list[dict[str, Any]] = [{"name": TMP_VOLUME, "mountPath": "/tmp"}]
    args = [
        "sidecar",
        "--host", "127.0.0.1", "--port", str(s.api_port),
        "--admin-host", "0.0.0.0", "--admin-port", str(s.admin_port),
    ]
    if files:
        args += ["--config-dir", CONFIG_DIR, "--labels-file", f"{PODINFO_DIR}/{LABELS_FILE}"]
        mounts += [
            {"name": CONFIG_VOLUME, "mountPath": CONFIG_DIR, "readOnly": True},
            {"name": PODINFO_VOLUME, "mountPath": PODINFO_DIR, "readOnly": True},
        ]
    return {
        "name": SIDECAR_CONTAINER,
        "image": s.image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["switchyard"],
        "args": args,
        "ports": [
            {"name": API_PORT_NAME, "containerPort": s.api_port, "protocol": "TCP"},
            {"name": ADMIN_PORT_NAME, "containerPort": s.admin_port, "protocol": "TCP"},
        ],
        "env": [
            {
                "name": "SWITCHYARD_ADMIN_TOKEN",
                "valueFrom": {"secretKeyRef": token_ref},
            },
            *tracing_env(s),
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
        "resources": resources(s),
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": s.run_as_user,
            "runAsGroup": s.run_as_user,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": mounts,
    }


def tracing_env(s: SidecarSettings) -> list[dict[str, Any]]:
    """Tracing on (docs/tracing.md): ``SWITCHYARD_TRACING=on``, the pod and namespace as
    resource attributes (``OTEL_RESOURCE_ATTRIBUTES``; the chart's own come after, so
    they win), and the chart's ``OTEL_*`` variables. Off: nothing."""
    if not s.tracing:
        return []
    given = dict(s.tracing_env)
    ours = "k8s.pod.name=$(SWITCHYARD_POD_NAME),k8s.namespace.name=$(SWITCHYARD_POD_NAMESPACE)"
    env: list[dict[str, Any]] = [
        {"name": "SWITCHYARD_TRACING", "value": "on"},
        {"name": "SWITCHYARD_POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "SWITCHYARD_POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "OTEL_RESOURCE_ATTRIBUTES", "value": ",".join(v for v in (ours, given.pop("OTEL_RESOURCE_ATTRIBUTES", "")) if v)},
    ]
    env += [{"name": k, "value": v} for k, v in sorted(given.items())]
    return env


def resources(s: SidecarSettings) -> dict[str, Any]:
    requests = {k: v for k, v in (("cpu", s.cpu_request), ("memory", s.memory_request)) if v}
    limits = {k: v for k, v in (("cpu", s.cpu_limit), ("memory", s.memory_limit)) if v}
    return {k: v for k, v in (("requests", requests), ("limits", limits)) if v}


def native(container: dict[str, Any]) -> dict[str, Any]:
    """The same container as a native sidecar (Kubernetes 1.29+): an init container with
    ``restartPolicy: Always`` starts before the app, runs beside it, and does not keep a
    Job's pod from completing. The startup probe holds the app back until it listens."""
    out = dict(container, restartPolicy="Always")
    out["startupProbe"] = {"httpGet": {"path": "/healthz", "port": ADMIN_PORT_NAME}, "periodSeconds": 1, "failureThreshold": 30}
    return out


# Per-pod overrides, by annotation (values checked: a bad one is ignored with a warning).
RESOURCE_ANNOTATIONS = {
    "switchyard.dev/sidecar-cpu-request": "cpu_request",
    "switchyard.dev/sidecar-cpu-limit": "cpu_limit",
    "switchyard.dev/sidecar-memory-request": "memory_request",
    "switchyard.dev/sidecar-memory-limit": "memory_limit",
}
PULL_SECRETS_ANNOTATION = "switchyard.dev/sidecar-image-pull-secrets"  # comma-separated Secret names
QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


def for_pod(pod: dict[str, Any], s: SidecarSettings) -> tuple[SidecarSettings, tuple[str, ...], list[str]]:
    """The settings for this pod (its annotations over the defaults), its sidecar's image
    pull secrets, and warnings about annotations that were ignored."""
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    changes: dict[str, str] = {}
    warnings: list[str] = []
    for key, attr in RESOURCE_ANNOTATIONS.items():
        raw = annotations.get(key)
        if raw is None:
            continue
        if QUANTITY.match(str(raw).strip()):
            changes[attr] = str(raw).strip()
        else:
            warnings.append(f"switchyard: annotation {key} is not a quantity; the default is used")
    pulls = list(s.image_pull_secrets)
    for name in (n.strip() for n in str(annotations.get(PULL_SECRETS_ANNOTATION, "")).split(",")):
        if not name:
            continue
        if NAME.match(name):
            pulls.append(name)
        else:
            warnings.append(f"switchyard: {PULL_SECRETS_ANNOTATION}: {name[:64]!r} is not a Secret name; ignored")
    return (replace(s, **changes) if changes else s), tuple(dict.fromkeys(pulls)), warnings


def _ports_in_use(pod: dict[str, Any]) -> set[int]:
    used = set()
    spec = pod.get("spec") or {}
    for c in list(spec.get("containers") or []) + list(spec.get("initContainers") or []):
        for p in c.get("ports") or []:
            if p.get("containerPort"):
                used.add(int(p["containerPort"]))
    return used


def inject(pod: dict[str, Any], s: SidecarSettings) -> tuple[dict[str, Any], list[str]]:
    """(the pod to admit, warnings). The input is never modified."""
    if not wants_injection(pod) or has_sidecar_container(pod):
        return pod, []
    if (pod.get("spec") or {}).get("hostNetwork"):
        # Its ports would be the node's: the admin port on every node address.
        return pod, ["switchyard: sidecar not injected: hostNetwork pods are not supported "
                     "(the sidecar's ports would open on the node)"]
    clash = _ports_in_use(pod) & {s.api_port, s.admin_port}
    if clash:
        ports = ", ".join(str(p) for p in sorted(clash))
        return pod, [f"switchyard: sidecar not injected: container port(s) {ports} already used by the pod"]
    s, pulls, warnings = for_pod(pod, s)
    out = copy.deepcopy(pod)
    spec = out.setdefault("spec", {})
    if s.native:
        spec["initContainers"] = [native(sidecar_container(s)), *(spec.get("initContainers") or [])]
    else:
        spec.setdefault("containers", []).append(sidecar_container(s))
    volumes = spec.setdefault("volumes", [])
    for vol in sidecar_volumes(s):
        if not any(v.get("name") == vol["name"] for v in volumes):
            volumes.append(vol)
    if pulls:
        have = spec.setdefault("imagePullSecrets", [])
        for name in pulls:
            if not any(r.get("name") == name for r in have):
                have.append({"name": name})
    return out, warnings


def spec_patch(pod: dict[str, Any], s: SidecarSettings) -> tuple[dict[str, Any], list[str]]:
    """(merge patch of ``spec``, warnings) for kopf's admission ``patch`` (lists are replaced whole)."""
    new, warns = inject(pod, s)
    if new is pod:
        return {}, warns
    out = {k: new["spec"][k] for k in ("containers", "initContainers", "volumes", "imagePullSecrets") if k in new["spec"]}
    return out, warns
