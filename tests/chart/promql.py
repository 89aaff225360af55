"""Small PromQL helpers for the dashboard and alert checks (the parsing itself is left to
promtool and a real Prometheus; this only finds metric names and fills in Grafana's
template variables)."""

from __future__ import annotations

import re
from typing import Any

KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
    "unless", "offset", "atan2", "inf", "nan", "start", "end",
}
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENT = re.compile(r"(?<![\w:.])([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\()?")


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (functions, keywords and labels left out)."""
    s = _STRING.sub('""', expr)
    s = _MATCHERS.sub(" ", s)
    s = _RANGE.sub(" ", s)
    s = _GROUPING.sub(" ", s)
    names = set()
    for m in _IDENT.finditer(s):
        name, call = m.group(1), m.group(2)
        if call or name.lower() in KEYWORDS:
            continue
        names.add(name)
    return names


GRAFANA_VARS = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h"}


def fill(expr: str, **variables: str) -> str:
    """Grafana's variables replaced by values Prometheus accepts."""
    for k, v in GRAFANA_VARS.items():
        expr = expr.replace(k, v)
    for k, v in variables.items():
        expr = expr.replace("${" + k + "}", v).replace("$" + k, v)
    assert "$" not in expr, f"unfilled variable in {expr}"
    return expr


def dashboard_queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, expr) for every panel target, nested rows included."""
    out = []

    def walk(panels: list[dict[str, Any]]) -> None:
        for p in panels:
            for t in p.get("targets", []):
                if t.get("expr"):
                    out.append((f"panel {p['title']!r} {t.get('refId', '')}", t["expr"]))
            walk(p.get("panels", []))

    walk(dashboard["panels"])
    return out


_LABEL_VALUES = re.compile(r"^label_values\((?:(.*),\s*)?([a-zA-Z_][a-zA-Z0-9_]*)\)$")


def variable_queries(dashboard: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(variable, selector, label) of every `label_values(selector, label)` variable."""
    out = []
    for v in dashboard["templating"]["list"]:
        if v["type"] != "query":
            continue
        q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
        m = _LABEL_VALUES.match(q.strip())
        assert m, f"variable {v['name']}: unsupported query {q}"
        out.append((v["name"], m.group(1) or "", m.group(2)))
    return out


def exposition_names(text: str) -> set[str]:
    """Series names in a Prometheus text exposition (the `# TYPE` families' samples)."""
    names = set()
    for line in text.splitlines():
        if line and not line.startswith("#"):
            names.add(re.split(r"[{\s]", line, maxsplit=1)[0])
    return names
