"""Which pods carry a sidecar, which bindings select them, and where to reach them. Pure.

A pod carries the sidecar when it asks for injection (label, or annotation from older
manifests, ``switchyard.dev/inject: "true"``) or already has a container named ``switchyard``
(injected, or written by hand). Its admin API is ``http://<podIP>:<admin port>``; the
admin port is the ``switchyard`` container's port named ``sy-admin``, else the
``switchyard.dev/admin-port`` annotation, else the configured default.

``switchyard.dev/admin-url`` overrides the whole address, for tests and debugging only,
and only when the operator runs with ``--allow-admin-url-annotation``: it lets the e2e
tests run real sidecars on 127.0.0.1 with random ports next to an API server that has no
kubelet (pods stay Pending and never get an IP).
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from switchyard.api.models import LabelSelector
from switchyard.sidecar.contract.delivery import CONFIG_VERSION_ANNOTATION, selector_matches, selector_selects

from .settings import (
    ADMIN_PORT_ANNOTATION,
    ADMIN_URL_ANNOTATION,
    INJECT_ANNOTATION,
    SIDECAR_CONTAINER,
)

T = TypeVar("T")

ADMIN_PORT_NAME = "sy-admin"
API_PORT_NAME = "sy-api"


def _containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    spec = pod.get("spec") or {}
    return list(spec.get("containers") or []) + list(spec.get("initContainers") or [])


def wants_injection(pod: dict[str, Any]) -> bool:
    """The pod asks for the sidecar: label ``switchyard.dev/inject: "true"`` (what the
    webhook's objectSelector admits) or, from older manifests, the annotation."""
    meta = pod.get("metadata") or {}
    label = str((meta.get("labels") or {}).get(INJECT_ANNOTATION, "")).lower() == "true"
    return label or str((meta.get("annotations") or {}).get(INJECT_ANNOTATION, "")).lower() == "true"


def has_sidecar_container(pod: dict[str, Any]) -> bool:
    return any(c.get("name") == SIDECAR_CONTAINER for c in _containers(pod))


def carries_sidecar(pod: dict[str, Any]) -> bool:
    return wants_injection(pod) or has_sidecar_container(pod)


@dataclass(frozen=True)
class PodInfo:
    """What the operator needs of a sidecar pod (the pod index holds these)."""

    namespace: str
    name: str
    uid: str
    labels: dict[str, str]
    phase: str
    pod_ip: str | None
    admin_url: str | None  # None: not reachable (yet)
    incarnation: str  # changes when the pod or its sidecar (re)starts, or moves
    deleting: bool = False
    injected: bool = True  # False: asked for injection but has no sidecar container
    config_version: str | None = None  # its switchyard.dev/config-version annotation (the last nudge)

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)


def _admin_port(pod: dict[str, Any], default: int) -> int:
    for c in _containers(pod):
        if c.get("name") != SIDECAR_CONTAINER:
            continue
        for p in c.get("ports") or []:
            if p.get("name") == ADMIN_PORT_NAME and p.get("containerPort"):
                return int(p["containerPort"])
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    try:
        return int(annotations[ADMIN_PORT_ANNOTATION])
    except (KeyError, ValueError):
        return default


def admin_url(pod: dict[str, Any], *, default_port: int, allow_override: bool) -> str | None:
    """Where the pod's sidecar admin API answers, or None when it cannot be reached yet."""
    meta = pod.get("metadata") or {}
    override = (meta.get("annotations") or {}).get(ADMIN_URL_ANNOTATION)
    if allow_override and override:
        return str(override).rstrip("/")
    status = pod.get("status") or {}
    ip = status.get("podIP")
    if not ip or status.get("phase") != "Running":
        return None
    try:
        host = f"[{ip}]" if ipaddress.ip_address(ip).version == 6 else ip
    except ValueError:
        return None
    return f"http://{host}:{_admin_port(pod, default_port)}"


def incarnation(pod: dict[str, Any], url: str | None) -> str:
    """Changes whenever the sidecar may have lost its config: new pod, restart, new address."""
    meta = pod.get("metadata") or {}
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    statuses = statuses + ((pod.get("status") or {}).get("initContainerStatuses") or [])
    side = next((s for s in statuses if s.get("name") == SIDECAR_CONTAINER), {})
    started = ((side.get("state") or {}).get("running") or {}).get("startedAt", "")
    return f"{meta.get('uid', '')}|{url or ''}|{side.get('restartCount', 0)}|{started}"


def pod_info(pod: dict[str, Any], *, default_port: int, allow_override: bool) -> PodInfo:
    meta = pod.get("metadata") or {}
    url = admin_url(pod, default_port=default_port, allow_override=allow_override)
    return PodInfo(
        namespace=meta.get("namespace", "default"),
        name=meta.get("name", ""),
        uid=meta.get("uid", ""),
        labels=dict(meta.get("labels") or {}),
        phase=(pod.get("status") or {}).get("phase", ""),
        pod_ip=(pod.get("status") or {}).get("podIP"),
        admin_url=url,
        incarnation=incarnation(pod, url),
        deleting=bool(meta.get("deletionTimestamp")),
        injected=has_sidecar_container(pod),
        config_version=((meta.get("annotations") or {}).get(CONFIG_VERSION_ANNOTATION)),
    )


def selects(selector: LabelSelector, labels: dict[str, str]) -> bool:
    """An empty selector selects no pods (a binding must say which pods serve it).

    The sidecar applies the same function to its own labels (``contract/delivery.py``)."""
    return selector_selects(
        selector.match_labels, [(r.key, r.operator, r.values) for r in selector.match_expressions], labels
    )


class SelectorIndex(Generic[T]):
    """Which of many selectors select a pod, without testing every selector against it.

    Each selector with ``matchLabels`` is filed under one of its pairs (the one the fewest
    other selectors share); a pod's candidates are the selectors filed under its own label
    pairs, plus those with only ``matchExpressions``, and only candidates are tested, with
    every pair and expression. A selector not filed under any of the pod's pairs lacks one
    of its ``matchLabels``, so it could not select the pod: the answer is ``selects`` for
    every selector, and the work per pod is its labels and candidates, not the number of
    selectors. An empty selector selects no pod (``selects``): it is not filed at all.
    """

    def __init__(self, items: Iterable[tuple[T, LabelSelector]]) -> None:
        entries = list(items)
        shared = Counter(pair for _, sel in entries for pair in sel.match_labels.items())
        self._by_pair: dict[tuple[str, str], list[tuple[int, T, dict[str, str], list[tuple[str, str, list[str]]]]]] = {}
        self._expressions_only: list[tuple[int, T, dict[str, str], list[tuple[str, str, list[str]]]]] = []
        for order, (item, sel) in enumerate(entries):
            exprs = [(r.key, r.operator, r.values) for r in sel.match_expressions]
            entry = (order, item, sel.match_labels, exprs)
            if sel.match_labels:
                pair = min(sel.match_labels.items(), key=lambda kv: (shared[kv], kv))
                self._by_pair.setdefault(pair, []).append(entry)
            elif exprs:
                self._expressions_only.append(entry)

    def selecting(self, labels: Mapping[str, str]) -> list[T]:
        """The items whose selector selects a pod with ``labels``, in the order given."""
        found = [
            (order, item)
            for pair in labels.items()
            for order, item, match_labels, exprs in self._by_pair.get(pair, ())
            if selector_matches(match_labels, exprs, labels)
        ]
        found += [
            (order, item)
            for order, item, match_labels, exprs in self._expressions_only
            if selector_matches(match_labels, exprs, labels)
        ]
        found.sort(key=lambda x: x[0])
        return [item for _, item in found]
