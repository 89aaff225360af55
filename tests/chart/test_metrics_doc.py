"""docs/metrics.md describes every metric family a real sidecar exports (with every one
of its labels) and every alert of the chart."""

from __future__ import annotations

import re
from typing import Any

import yaml

from chart_helpers import CHART, REPO

DOC = (REPO / "docs" / "metrics.md").read_text()


def _rows() -> dict[str, str]:
    rows = {}
    for line in DOC.splitlines():
        m = re.match(r"\| `(switchyard_[a-z_]+)` \|", line)
        if m and not m.group(1).startswith("switchyard_operator_"):  # the operator's: tests/unit/operator/test_operator_metrics.py
            rows[m.group(1)] = line
    return rows


def test_every_exported_family_and_label_is_documented(live_sidecar: Any) -> None:
    text = live_sidecar.exposition()
    families = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))
    rows = _rows()
    assert set(families) - set(rows) == set(), f"undocumented: {sorted(set(families) - set(rows))}"
    assert set(rows) - set(families) == set(), f"documented but not exported: {sorted(set(rows) - set(families))}"
    for name in families:
        labels = set()
        for sample in re.findall(rf"^{name}(?:_bucket|_count|_sum)?\{{([^}}]*)\}}", text, re.M):
            labels |= {kv.split("=", 1)[0] for kv in re.findall(r'(\w+)="', sample)}
        labels.discard("le")
        missing = [l for l in labels if f"`{l}`" not in rows[name]]
        assert not missing, f"{name}: labels {missing} not in its row"


def test_every_alert_is_documented() -> None:
    rules = yaml.safe_load((CHART / "files" / "switchyard.rules.yaml").read_text())
    for r in (r for g in rules["groups"] for r in g["rules"]):
        assert f"| `{r['alert']}` |" in DOC and f"| {r['for']} |" in DOC.split(f"`{r['alert']}`", 1)[1].splitlines()[0], r["alert"]
