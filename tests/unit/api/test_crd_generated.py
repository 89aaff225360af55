"""The committed CRDs and docs/resources.md are exactly what the generator renders.

Change api/models.py (or the generator: api/status.py, cel.py, openapi.py, crd.py,
reference.py), then run `python -m switchyard.api.crd` and commit the result; this test
names the stale file otherwise.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from switchyard.api import crd as gen

REPO = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("path", sorted(gen.rendered_files(REPO)), ids=lambda p: str(p.relative_to(REPO)))
def test_committed_file_is_current(path: Path) -> None:
    expected = gen.rendered_files(REPO)[path]
    assert path.exists(), f"{path.relative_to(REPO)} is missing: run `python -m switchyard.api.crd`"
    assert path.read_text() == expected, f"{path.relative_to(REPO)} is stale: run `python -m switchyard.api.crd`"


def test_no_stray_files_in_crds() -> None:
    expected = {p.name for p in gen.rendered_files(REPO) if p.parent.name == "crds"}
    assert {p.name for p in (REPO / "crds").glob("*.yaml")} == expected


def test_check_mode_reports_nothing_when_current(capsys: pytest.CaptureFixture[str]) -> None:
    assert gen.main(["--repo", str(REPO), "--check"]) == 0
    assert capsys.readouterr().out == ""


def test_resource_reference_lists_every_spec_field() -> None:
    text = (REPO / "docs" / "resources.md").read_text()
    for info in gen.KINDS:
        for name, field in info.spec.model_fields.items():
            alias = field.alias or name
            assert f"| `{alias}` |" in text, f"{info.kind}.spec.{alias} is missing from docs/resources.md"
