"""Loading Switchyard manifests from YAML files, with errors that name file, resource and field.

Standalone mode (`switchyard run -f PATH`) and `switchyard check` read a file or a
folder of multi-document YAML: the three Switchyard kinds plus core `v1` Secrets.
Anything else (a Deployment in the same folder, say) is ignored with a note, so the
same folder can be applied to a cluster with `kubectl apply -f`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from .models import (
    API_VERSION,
    KINDS,
    AssistantBinding,
    CapabilityProfile,
    ModelSource,
    Secret,
)


@dataclass(frozen=True)
class ManifestError:
    """One problem in one document, precise enough to fix without guessing."""

    file: str
    document: int  # 1-based position in the file
    resource: str  # "Kind/name" or "?" when unreadable
    field: str  # dotted path inside the document, "" when it is the whole document
    message: str

    def __str__(self) -> str:
        where = f"{self.file} (document {self.document})"
        field = f" field {self.field}:" if self.field else ""
        return f"{where}: {self.resource}:{field} {self.message}"


@dataclass
class ResourceSet:
    """Everything read from manifests (or, in the operator, from the API server)."""

    sources: list[ModelSource] = field(default_factory=list)
    profiles: list[CapabilityProfile] = field(default_factory=list)
    bindings: list[AssistantBinding] = field(default_factory=list)
    secrets: list[Secret] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)  # "file: Kind/name" of other kinds
    origins: dict[tuple[str, str, str], str] = field(default_factory=dict)  # (kind, ns, name) -> file


def _yaml_files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())
    return [path]


def _loc(err: dict[str, Any]) -> str:
    parts: list[str] = []
    for p in err["loc"]:
        if isinstance(p, int):
            parts.append(f"[{p}]")
        elif isinstance(p, str) and p not in ("function-after", "function-before"):
            # pydantic adds the union member name for unions; keep the field names only
            if p[:1].isupper() or p in ("str", "TierRef", "LocalRef"):
                continue
            parts.append(("." if parts else "") + p)
    return "".join(parts)


def _message(err: dict[str, Any]) -> str:
    msg = str(err["msg"])
    return msg.removeprefix("Value error, ")


def parse_document(doc: Any, *, file: str = "<input>", index: int = 1) -> tuple[Any, list[ManifestError]]:
    """Validate one YAML document; return (resource or None, errors)."""
    if not isinstance(doc, dict):
        return None, [ManifestError(file, index, "?", "", "a manifest must be a mapping")]
    kind = doc.get("kind")
    api_version = doc.get("apiVersion")
    meta = doc.get("metadata") if isinstance(doc.get("metadata"), dict) else {}
    label = f"{kind or '?'}/{meta.get('name', '?')}"
    if kind == "Secret" and api_version == "v1":
        model: type[Any] = Secret
    elif kind in KINDS:
        if api_version != API_VERSION:
            return None, [
                ManifestError(file, index, label, "apiVersion", f"must be {API_VERSION}, got {api_version!r}")
            ]
        model = KINDS[kind]
    else:
        return None, []  # not ours
    try:
        return model.model_validate(doc), []
    except ValidationError as exc:
        errors = [
            ManifestError(file, index, label, _loc(e), _message(e))  # type: ignore[arg-type]
            for e in exc.errors(include_url=False)
        ]
        return None, errors


def load_manifests(path: str | Path) -> tuple[ResourceSet, list[ManifestError]]:
    """Read every manifest under `path`. Errors are collected, not raised."""
    root = Path(path)
    out = ResourceSet()
    errors: list[ManifestError] = []
    if not root.exists():
        return out, [ManifestError(str(root), 0, "?", "", "no such file or directory")]
    files = _yaml_files(root)
    if not files:
        return out, [ManifestError(str(root), 0, "?", "", "no .yaml or .yml files found")]
    for file in files:
        try:
            docs = list(yaml.safe_load_all(file.read_text()))
        except yaml.YAMLError as exc:
            errors.append(ManifestError(str(file), 0, "?", "", f"not valid YAML: {exc}"))
            continue
        for i, doc in enumerate(docs, start=1):
            if doc is None:
                continue
            resource, errs = parse_document(doc, file=str(file), index=i)
            errors.extend(errs)
            if resource is not None:
                out.origins[(resource.kind, resource.metadata.namespace, resource.metadata.name)] = str(file)
            if isinstance(resource, ModelSource):
                out.sources.append(resource)
            elif isinstance(resource, CapabilityProfile):
                out.profiles.append(resource)
            elif isinstance(resource, AssistantBinding):
                out.bindings.append(resource)
            elif isinstance(resource, Secret):
                out.secrets.append(resource)
            elif resource is None and not errs and isinstance(doc, dict):
                out.ignored.append(f"{file}: {doc.get('kind', '?')}/{(doc.get('metadata') or {}).get('name', '?')}")
    errors.extend(_duplicates(out))
    return out, errors


def _duplicates(rs: ResourceSet) -> list[ManifestError]:
    errors = []
    for items in (rs.sources, rs.profiles, rs.bindings, rs.secrets):
        seen: set[tuple[str, str]] = set()
        for r in items:
            key = (r.metadata.namespace, r.metadata.name)
            kind = type(r).__name__
            if key in seen:
                errors.append(
                    ManifestError("<all files>", 0, f"{kind}/{key[1]}", "metadata.name", "defined more than once")
                )
            seen.add(key)
    return errors
