"""What the chart copies from the rest of the repository stays equal to its source:
the CRDs (charts/switchyard/crds/ = crds/, both written by `python -m switchyard.api.crd`)
and the built-in CapabilityProfiles (files/profiles/ = api/profiles/). To resync:

    python -m switchyard.api.crd && cp api/profiles/*.yaml charts/switchyard/files/profiles/
"""

from __future__ import annotations

import pytest
import yaml

from chart_helpers import CHART, REPO, Render

FIX = "python -m switchyard.api.crd && cp api/profiles/*.yaml charts/switchyard/files/profiles/"


@pytest.mark.parametrize(("source", "copy"), [("crds", "crds"), ("switchyard/api/profiles", "files/profiles")])
def test_chart_copy_equals_source(source: str, copy: str) -> None:
    src = {p.name: p.read_bytes() for p in (REPO / source).glob("*.yaml")}
    dst = {p.name: p.read_bytes() for p in (CHART / copy).glob("*.yaml")}
    assert sorted(dst) == sorted(src), f"charts/switchyard/{copy} and {source} hold different files; run: {FIX}"
    stale = [n for n in src if src[n] != dst[n]]
    assert not stale, f"charts/switchyard/{copy} is stale for {stale}; run: {FIX}"


def test_builtin_profiles_render_into_each_app_namespace(render: Render) -> None:
    docs = render(None, "appNamespaces={team-a,team-b}")
    profiles = [d for d in docs if d["kind"] == "CapabilityProfile"]
    names = sorted(p.stem for p in (REPO / "switchyard" / "api" / "profiles").glob("*.yaml"))
    for ns in ("team-a", "team-b"):
        mine = {d["metadata"]["name"]: d for d in profiles if d["metadata"]["namespace"] == ns}
        assert sorted(mine) == names
        for name, doc in mine.items():
            src = yaml.safe_load((REPO / "switchyard" / "api" / "profiles" / f"{name}.yaml").read_text())
            assert doc["spec"] == src["spec"] and doc["apiVersion"] == src["apiVersion"]


def test_builtin_profiles_match_what_the_compiler_knows() -> None:
    from switchyard.api.capabilities import builtin_profiles

    known = set(builtin_profiles())
    shipped = {p.stem for p in (CHART / "files" / "profiles").glob("*.yaml")}
    assert shipped == known
