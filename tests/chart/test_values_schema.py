"""charts/switchyard/values.schema.json: helm refuses a misspelt or mistyped value before
rendering anything, and the schema covers every value of values.yaml (and nothing that
is not there)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from chart_helpers import CHART, Render

SCHEMA = json.loads((CHART / "values.schema.json").read_text())


def _keys(node: dict[str, Any], schema: dict[str, Any], path: str = "") -> list[str]:
    """Paths of values.yaml keys missing from the schema, or the other way round."""
    out = []
    props = schema.get("properties")
    if props is None:  # a free-form object (labels, resources, ...)
        return out
    for k, v in node.items():
        if k not in props:
            out.append(f"{path}{k}: in values.yaml, not in the schema")
        elif isinstance(v, dict):
            out += _keys(v, props[k], f"{path}{k}.")
    out += [f"{path}{k}: in the schema, not in values.yaml" for k in props if k not in node]
    return out


def test_the_schema_covers_values_yaml_exactly() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert _keys(values, SCHEMA) == []
    assert SCHEMA["additionalProperties"] is False


@pytest.mark.parametrize(("setting", "complaint"), [
    ("operatr.replicas=3", "additional properties 'operatr' not allowed"),
    ("operator.logLevel=loud", "/operator/logLevel"),
    ("operator.replicas=0", "/operator/replicas"),
    ("appNamespaces={Team_A}", "/appNamespaces/0"),
    ("image.pullPolicy=Sometimes", "/image/pullPolicy"),
    ("operator.clusterWide=yes", "/operator/clusterWide"),
])
def test_helm_refuses_values_the_schema_rejects(helm: Any, setting: str, complaint: str) -> None:
    cp = helm("template", "switchyard", str(CHART), "--set", "appNamespaces={team-a}", "--set", setting, check=False)
    assert cp.returncode != 0 and complaint in cp.stderr, cp.stderr


def test_every_option_on_passes_the_schema(render: Render) -> None:
    from test_chart_render import VALUES_ALL

    assert render(VALUES_ALL)
