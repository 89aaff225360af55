"""``switchyard inject``: the sidecar written into manifests, without the webhook.

The admission webhook injects the sidecar when a pod is created, which needs a running
operator: with every replica down, a pod created then is admitted without it (the
webhook fails open). A workload whose pod template already carries the sidecar does not
depend on the operator at all: it mounts its namespace's config Secret and serves the
last config, whoever is up. This writes the webhook's own injection (``operator.webhook
.inject``, the same pure function) into the pod templates of Pods, Deployments,
StatefulSets, DaemonSets, ReplicaSets, Jobs and CronJobs that opt in with the label
``switchyard.dev/inject: "true"``; the webhook leaves a pod that has the sidecar alone.
Like ``istioctl kube-inject``: re-run it when you upgrade Switchyard.
"""

from __future__ import annotations

import copy
import dataclasses
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import yaml

from switchyard.operator import webhook
from switchyard.operator.settings import SidecarSettings

_TEMPLATED = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "ReplicationController"}


def _templates(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    kind = doc.get("kind")
    if kind == "Pod":
        yield doc
    elif kind in _TEMPLATED:
        t = (doc.get("spec") or {}).get("template")
        if isinstance(t, dict):
            yield t
    elif kind == "CronJob":
        t = (((doc.get("spec") or {}).get("jobTemplate") or {}).get("spec") or {}).get("template")
        if isinstance(t, dict):
            yield t


class ManifestError(ValueError):
    """A pod template not shaped as Kubernetes would accept it."""


def _check(template: dict[str, Any], where: str) -> None:
    meta, spec = template.get("metadata") or {}, template.get("spec") or {}
    if not isinstance(meta, dict) or not isinstance(meta.get("labels") or {}, dict):
        raise ManifestError(f"{where}: the pod template's metadata.labels is not a map")
    if not isinstance(spec, dict):
        raise ManifestError(f"{where}: the pod template's spec is not a map")
    for key in ("containers", "initContainers", "volumes"):
        items = spec.get(key) or []
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise ManifestError(f"{where}: the pod template's spec.{key} is not a list of maps")


def inject_documents(docs: list[Any], settings: SidecarSettings) -> tuple[list[Any], list[str]]:
    """The documents with the sidecar in every opted-in pod template; warnings.

    Raises ManifestError on a pod template the API server would refuse anyway."""
    out, warnings = [], []
    for doc in docs:
        if not isinstance(doc, dict):
            out.append(doc)
            continue
        doc = copy.deepcopy(doc)  # the caller's documents stay as they were
        for template in list(_templates(doc)):
            _check(template, f"{doc.get('kind')}/{(doc.get('metadata') or {}).get('name', '?')}")
            pod = {"metadata": template.get("metadata") or {}, "spec": template.get("spec") or {}}
            new, warns = webhook.inject(pod, settings)
            name = (doc.get("metadata") or {}).get("name", "?")
            warnings += [f"{doc.get('kind')}/{name}: {w.removeprefix('switchyard: ')}" for w in warns]
            template["spec"] = new["spec"]
        out.append(doc)
    return out, warnings


def run(file: str, image: str | None, native: bool, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    try:
        text = sys.stdin.read() if file == "-" else Path(file).read_text()
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        print(f"switchyard inject: cannot read {file}: {e}", file=err)
        return 2
    settings = dataclasses.replace(SidecarSettings(), native=native, **({"image": image} if image else {}))
    try:
        injected, warnings = inject_documents(docs, settings)
    except ManifestError as e:
        print(f"switchyard inject: {e}", file=err)
        return 2
    for w in warnings:
        print(f"switchyard inject: {w}", file=err)
    out.write(yaml.safe_dump_all(injected, sort_keys=False))
    return 0
