"""What the operator knows of the cluster: the kopf indexes, read as plain snapshots.

kopf keeps one in-memory index per watched kind (``@kopf.index`` in ``main.py``); the
functions here decide what each index stores (``snapshot_*``, pure: body -> value) and
``World`` reads them per namespace. kopf fills every index from a full listing before it
calls any other handler, so the first reconcile already sees the whole namespace.

Indexed: ModelSources, CapabilityProfiles and AssistantBindings by namespace; pods that
carry the sidecar by namespace; Secrets by (namespace, name), and only those labelled
``switchyard.dev/credential: "true"`` (the watch's server-side label selector,
credentials.py: no other Secret ever reaches the operator). Their data is kept, except
for a Secret the selector should have excluded or the admin token's name (reserved:
never a credential); the admin-token Secret is read by name when a push needs it.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from switchyard.api.models import API_VERSION

from .credentials import marked
from .selection import PodInfo, carries_sidecar, pod_info

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


@dataclass(frozen=True)
class Snap:
    """One Switchyard object as last seen: spec and status, plus what the operator derives."""

    kind: str
    namespace: str
    name: str
    uid: str
    generation: int | None
    spec: dict[str, Any]
    status: dict[str, Any]
    primary_evidence: bool = False  # AssistantBinding: the user set `primary` (see primary_evidence())

    def manifest(self) -> dict[str, Any]:
        """The object as a manifest, for ``switchyard.api.manifests.parse_document``."""
        return {
            "apiVersion": API_VERSION,
            "kind": self.kind,
            "metadata": {"name": self.name, "namespace": self.namespace, "uid": self.uid, "generation": self.generation},
            "spec": copy.deepcopy(self.spec),
        }


@dataclass(frozen=True)
class SecretSnap:
    namespace: str
    name: str
    resource_version: str
    data: dict[str, str] | None  # base64 values; None: not referenced when last seen
    keys: tuple[str, ...] = ()


def primary_evidence(body: Mapping[str, Any]) -> bool:
    """Did the user ever state ``spec.primary`` (a tier, or null)?

    ``kubectl apply`` (client side) drops nulls when it creates an object and turns a
    later ``primary: null`` into "delete the key", so the stored spec alone cannot tell
    "cleared on purpose" from "never set". What can: the key in the stored spec, the
    ``last-applied-configuration`` annotation kubectl keeps (it holds the manifest as
    written, nulls included), and server-side apply's managedFields (``f:primary``).
    The operator also remembers the answer in ``status.primaryConfigured``.
    """
    spec = body.get("spec") or {}
    if "primary" in spec:
        return True
    meta = body.get("metadata") or {}
    raw = (meta.get("annotations") or {}).get(LAST_APPLIED)
    if raw:
        try:
            applied = json.loads(raw)
        except ValueError:
            applied = None
        if isinstance(applied, dict) and "primary" in (applied.get("spec") or {}):
            return True
    for entry in meta.get("managedFields") or []:
        fields = ((entry.get("fieldsV1") or {}).get("f:spec") or {})
        if "f:primary" in fields:
            return True
    return False


def snapshot(kind: str, body: Mapping[str, Any]) -> Snap:
    meta = body.get("metadata") or {}
    return Snap(
        kind=kind,
        namespace=meta.get("namespace", "default"),
        name=meta.get("name", ""),
        uid=meta.get("uid", ""),
        generation=meta.get("generation"),
        spec=copy.deepcopy(dict(body.get("spec") or {})),
        status=copy.deepcopy(dict(body.get("status") or {})),
        primary_evidence=primary_evidence(body) if kind == "AssistantBinding" else False,
    )


def snapshot_secret(body: Mapping[str, Any], *, keep_data: bool) -> SecretSnap:
    meta = body.get("metadata") or {}
    data = dict(body.get("data") or {})
    if not marked(meta.get("labels")):
        keep_data = False  # the selector is the API server's; this checks it again
    return SecretSnap(
        namespace=meta.get("namespace", "default"),
        name=meta.get("name", ""),
        resource_version=str(meta.get("resourceVersion", "")),
        data=data if keep_data else None,
        keys=tuple(sorted(data)),
    )


def snapshot_pod(body: Mapping[str, Any], *, default_port: int, allow_override: bool) -> PodInfo | None:
    pod = dict(body)
    if not carries_sidecar(pod):
        return None
    return pod_info(pod, default_port=default_port, allow_override=allow_override)


def _values(index: Mapping[Any, Iterable[Any]], key: Any) -> list[Any]:
    store = index.get(key)
    return list(store) if store is not None else []


@dataclass
class World:
    """Read access to the indexes (kopf's, or plain dicts of lists in tests)."""

    sources_by_ns: Mapping[str, Iterable[Snap]] = field(default_factory=dict)
    profiles_by_ns: Mapping[str, Iterable[Snap]] = field(default_factory=dict)
    bindings_by_ns: Mapping[str, Iterable[Snap]] = field(default_factory=dict)
    pods_by_ns: Mapping[str, Iterable[PodInfo]] = field(default_factory=dict)
    secrets_by_key: Mapping[tuple[str, str], Iterable[SecretSnap]] = field(default_factory=dict)
    admin_token_secret: str = "switchyard-admin-token"

    def namespaces(self) -> set[str]:
        out: set[str] = set()
        for index in (self.sources_by_ns, self.profiles_by_ns, self.bindings_by_ns, self.pods_by_ns):
            out.update(ns for ns in index if _values(index, ns))
        return out

    def sources(self, ns: str) -> list[Snap]:
        return sorted(_values(self.sources_by_ns, ns), key=lambda s: s.name)

    def profiles(self, ns: str) -> list[Snap]:
        return sorted(_values(self.profiles_by_ns, ns), key=lambda s: s.name)

    def bindings(self, ns: str) -> list[Snap]:
        return sorted(_values(self.bindings_by_ns, ns), key=lambda s: s.name)

    def pods(self, ns: str) -> list[PodInfo]:
        return sorted(_values(self.pods_by_ns, ns), key=lambda p: p.name)

    def source(self, ns: str, name: str) -> Snap | None:
        return next((s for s in self.sources(ns) if s.name == name), None)

    def secret(self, ns: str, name: str) -> SecretSnap | None:
        values = _values(self.secrets_by_key, (ns, name))
        return values[0] if values else None

    def referenced_secrets(self, ns: str) -> set[str]:
        """Secrets a ModelSource of ``ns`` names as a credential (credentialRef or any of
        its credentialRefs)."""
        out: set[str] = set()
        for s in self.sources(ns):
            out.update(secret_names(s.spec))
        return out

    def sources_using_secret(self, ns: str, name: str) -> list[str]:
        return [s.name for s in self.sources(ns) if name in secret_names(s.spec)]


def secret_names(spec: dict[str, Any]) -> list[str]:
    """The Secret names a ModelSource spec (as stored) refers to, in key order."""
    refs = spec.get("credentialRefs")
    if not isinstance(refs, list):
        refs = [spec.get("credentialRef")]
    return [r["name"] for r in refs if isinstance(r, dict) and isinstance(r.get("name"), str) and r["name"]]
