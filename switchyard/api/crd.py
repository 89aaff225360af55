"""The three CustomResourceDefinitions, assembled from the models and written to the repository.

The models in ``models.py`` are the single source of truth for the specs, and those in
``status.py`` for the status; this module turns them into ``apiextensions.k8s.io/v1``
CRDs so the API server enforces the same shape, defaults, enums and ranges before the
operator ever sees an object. It holds what is particular to each kind (``KINDS``: names,
short names, the ``switchyard`` category, printer columns) and assembles each CRD, with
its status subresource, around the structural schemas that ``openapi.py`` converts from
the models (with the CEL rules of ``cel.py`` attached).

Run ``python -m switchyard.api.crd`` to rewrite ``crds/``, the Helm chart's copy of them in
``charts/switchyard/crds/``, and ``docs/resources.md`` (rendered from the CRDs by
``reference.py``); ``--check`` exits non-zero when a committed file differs from what is
rendered (CI runs the same comparison in ``tests/unit/api/test_crd_generated.py``).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from . import models as m
from .openapi import openapi_schema
from .reference import resources_markdown
from .status import AssistantBindingStatus, CapabilityProfileStatus, ModelSourceStatus

# --------------------------------------------------------------------------- the CRDs


@dataclass(frozen=True)
class KindInfo:
    kind: str
    plural: str
    singular: str
    short_names: tuple[str, ...]
    spec: type[BaseModel]
    status: type[BaseModel]
    description: str
    columns: tuple[dict[str, Any], ...]


def _cond(type_: str, field: str = "status") -> str:
    return f'.status.conditions[?(@.type=="{type_}")].{field}'


AGE = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}

KINDS: tuple[KindInfo, ...] = (
    KindInfo(
        kind="AssistantBinding",
        plural="assistantbindings",
        singular="assistantbinding",
        short_names=("ab",),
        spec=m.AssistantBindingSpec,
        status=AssistantBindingStatus,
        description="An assistant's routing identity: its explicit primary, up to three fallbacks, "
        "and the circuit breaker of each tier.",
        columns=(
            {"name": "Primary", "type": "string", "jsonPath": ".status.summary.primary",
             "description": "source/model of tier 0, or why the binding is unbound"},
            {"name": "Active", "type": "string", "jsonPath": ".status.summary.active",
             "description": "The tier serving now (last used, from the sidecars)"},
            {"name": "Breakers", "type": "string", "jsonPath": ".status.summary.breakers",
             "description": "Tiers out of service (breaker open or tier disabled) in at least one pod / tiers"},
            {"name": "Pods", "type": "string", "jsonPath": ".status.summary.pods",
             "description": "Pods running the current config / pods selected"},
            {"name": "Ready", "type": "string", "jsonPath": _cond("Ready"),
             "description": "Can the binding serve now?"},
            AGE,
            {"name": "Reason", "type": "string", "jsonPath": _cond("Ready", "reason"), "priority": 1,
             "description": "Why it is (not) ready"},
            {"name": "Compatible", "type": "string", "jsonPath": _cond("ChainCompatible"), "priority": 1,
             "description": "Does every tier have what spec.requires asks for?"},
        ),
    ),
    KindInfo(
        kind="ModelSource",
        plural="modelsources",
        singular="modelsource",
        short_names=("ms",),
        spec=m.ModelSourceSpec,
        status=ModelSourceStatus,
        description="One concrete upstream: a provider endpoint with its credential.",
        columns=(
            {"name": "Provider", "type": "string", "jsonPath": ".spec.provider"},
            {"name": "Model", "type": "string", "jsonPath": ".spec.defaultModel",
             "description": "The default model"},
            {"name": "Models", "type": "integer", "jsonPath": ".status.catalog.count",
             "description": "Size of the live catalog"},
            {"name": "Credential", "type": "string", "jsonPath": _cond("CredentialValid"),
             "description": "Did the upstream accept the credential?"},
            AGE,
            {"name": "Base URL", "type": "string", "jsonPath": ".spec.baseURL", "priority": 1},
            {"name": "Catalog", "type": "string", "jsonPath": _cond("CatalogReady", "reason"), "priority": 1},
        ),
    ),
    KindInfo(
        kind="CapabilityProfile",
        plural="capabilityprofiles",
        singular="capabilityprofile",
        short_names=("cap",),
        spec=m.CapabilityProfileSpec,
        status=CapabilityProfileStatus,
        description="What a destination supports, and what to do with each feature it does not.",
        columns=(
            {"name": "Protocol", "type": "string", "jsonPath": ".spec.protocol"},
            {"name": "Streaming", "type": "boolean", "jsonPath": ".spec.features.streaming"},
            {"name": "Tools", "type": "boolean", "jsonPath": ".spec.features.tools"},
            {"name": "Vision", "type": "boolean", "jsonPath": ".spec.features.vision"},
            {"name": "Reasoning", "type": "string", "jsonPath": ".spec.features.reasoning"},
            AGE,
            {"name": "Context", "type": "integer", "jsonPath": ".spec.features.maxContextTokens", "priority": 1},
        ),
    ),
)

KIND_BY_NAME = {k.kind: k for k in KINDS}


def crd(info: KindInfo) -> dict[str, Any]:
    """The CustomResourceDefinition of one kind."""
    spec_schema = openapi_schema(info.spec)
    spec_schema.pop("description", None)
    spec_schema["description"] = (info.spec.__doc__ or "").strip().splitlines()[0]
    status_schema = openapi_schema(info.status, defaults=False)
    required = ["spec"]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{info.plural}.{m.GROUP}",
            "labels": {"app.kubernetes.io/part-of": "switchyard"},
        },
        "spec": {
            "group": m.GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": info.kind,
                "listKind": f"{info.kind}List",
                "plural": info.plural,
                "singular": info.singular,
                "shortNames": list(info.short_names),
                "categories": ["switchyard"],
            },
            "versions": [
                {
                    "name": m.VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [dict(c) for c in info.columns],
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": info.description,
                            "required": required,
                            "properties": {
                                "apiVersion": {"type": "string", "description": "switchyard.dev/v1alpha1"},
                                "kind": {"type": "string", "description": info.kind},
                                "metadata": {"type": "object"},
                                "spec": spec_schema,
                                "status": status_schema,
                            },
                        }
                    },
                }
            ],
        },
    }


def all_crds() -> dict[str, dict[str, Any]]:
    """File name -> CRD, for every kind."""
    return {f"{info.plural}.{m.GROUP}.yaml": crd(info) for info in KINDS}


# --------------------------------------------------------------------------- the generated files

HEADER = (
    "# Generated by `python -m switchyard.api.crd` from api/models.py and api/crd.py.\n"
    "# Do not edit: change the models and regenerate (a test fails when this file is stale).\n"
)


class _Dumper(yaml.SafeDumper):
    pass


def _str_presenter(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    return dumper.represent_scalar("tag:yaml.org,2002:str", data)


_Dumper.add_representer(str, _str_presenter)


def render_yaml(doc: dict[str, Any]) -> str:
    return HEADER + yaml.dump(doc, Dumper=_Dumper, sort_keys=False, width=100, allow_unicode=True)


def rendered_files(repo: Path) -> dict[Path, str]:
    """Every generated file (the CRDs, the Helm chart's copy of them, and the resource
    reference), path -> content."""
    out: dict[Path, str] = {}
    crds = all_crds()
    for name, doc in crds.items():
        text = render_yaml(doc)
        out[repo / "crds" / name] = text
        out[repo / "charts" / "switchyard" / "crds" / name] = text
    out[repo / "docs" / "resources.md"] = resources_markdown(crds.values())
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m switchyard.api.crd", description=__doc__.splitlines()[0])
    parser.add_argument("--repo", default=str(Path(__file__).resolve().parents[2]), help="repository root")
    parser.add_argument("--check", action="store_true", help="exit 1 when a committed file is stale")
    args = parser.parse_args(argv)
    stale = []
    for path, text in rendered_files(Path(args.repo)).items():
        current = path.read_text() if path.exists() else None
        if current == text:
            continue
        stale.append(path)
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    for path in stale:
        print(f"{'stale' if args.check else 'wrote'}: {path}")
    return 1 if (stale and args.check) else 0


if __name__ == "__main__":
    sys.exit(main())
