"""kube-score and checkov on the rendered chart (the default install and every option on):
every finding is fixed or listed, with its reason, in scanner-allowlist.yaml; an entry
that no longer matches anything is a finding too (the list must not rot).

The scanners are pinned and installed by hack/scanners.py (kube-score from the Go module
proxy, checkov from PyPI into its own venv, both under ~/.cache/switchyard). Without them
the test skips with the reason, unless SWITCHYARD_REQUIRE_SCANNERS=1 (set by .ci/run once
it has installed them).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import pytest
import yaml

from chart_helpers import CHART, HERE, REPO

sys.path.insert(0, str(REPO / "hack"))

import scanners

ALLOW = yaml.safe_load((HERE / "scanner-allowlist.yaml").read_text())
CASES = {"default": ["--set", "appNamespaces={team-a}"], "all-options": ["-f", str(HERE / "values-all.yaml")]}
Finding = tuple[str, str, str]  # (check id, kind, name)


def _tool(name: str, path: Path) -> str:
    found = str(path) if path.exists() else shutil.which(name)
    if found is None:
        reason = f"{name} is not installed (python3 hack/scanners.py install)"
        if os.environ.get("SWITCHYARD_REQUIRE_SCANNERS") == "1":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    return found  # type: ignore[return-value]


@pytest.fixture(scope="module")
def rendered(helm: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("rendered")
    for case, args in CASES.items():
        text = helm("template", "switchyard", str(CHART), "-n", "switchyard-system", *args).stdout
        (out / f"{case}.yaml").write_text(text)
    return out


def _allowed(tool: str, found: set[Finding]) -> tuple[list[str], list[str]]:
    entries = ALLOW.get(tool) or []
    for e in entries:
        assert e.get("reason", "").strip(), f"{tool} allow-list entry {e['id']} has no reason"

    def match(f: Finding, e: dict[str, Any]) -> bool:
        return f[0] == e["id"] and f[1] == e["kind"] and fnmatch(f[2], e["name"])

    unexplained = sorted(f"{i} on {k}/{n}" for (i, k, n) in found if not any(match((i, k, n), e) for e in entries))
    stale = [f"{e['id']} on {e['kind']}/{e['name']}" for e in entries if not any(match(f, e) for f in found)]
    return unexplained, stale


def test_kube_score(rendered: Path) -> None:
    exe = _tool("kube-score", scanners.kube_score_path())
    found: set[Finding] = set()
    for path in sorted(rendered.glob("*.yaml")):
        cp = subprocess.run([exe, "score", "-o", "json", str(path)], capture_output=True, text=True, timeout=120)
        assert cp.stdout, cp.stderr  # exit code 1 just means "findings"
        for obj in json.loads(cp.stdout):
            for c in obj["checks"]:
                if not c.get("skipped") and c["grade"] < 10:  # 10 = OK; WARNING (5) and CRITICAL (1) count
                    found.add((c["check"]["id"], obj["type_meta"]["kind"], obj["object_meta"]["name"]))
    unexplained, stale = _allowed("kube-score", found)
    assert not unexplained, "kube-score findings to fix or allow-list with a reason: " + "; ".join(unexplained)
    assert not stale, "allow-list entries kube-score no longer reports (remove them): " + "; ".join(stale)


def test_checkov(rendered: Path) -> None:
    exe = _tool("checkov", scanners.checkov_path())
    cp = subprocess.run([exe, "-d", str(rendered), "--framework", "kubernetes", "--quiet", "--compact", "-o", "json"],
                        capture_output=True, text=True, timeout=600)
    assert cp.stdout, cp.stderr
    reports = json.loads(cp.stdout)
    found: set[Finding] = set()
    for report in reports if isinstance(reports, list) else [reports]:
        for f in report["results"]["failed_checks"]:
            kind, *_, name = f["resource"].split(".")
            found.add((f["check_id"], kind, name))
    unexplained, stale = _allowed("checkov", found)
    assert not unexplained, "checkov findings to fix or allow-list with a reason: " + "; ".join(unexplained)
    assert not stale, "allow-list entries checkov no longer reports (remove them): " + "; ".join(stale)
