"""docs/quickstart-kind.md, word for word: every block marked `<!-- verified -->` is run
against a real kube-apiserver (its own, fresh: the quickstart starts from an empty
cluster) with the pinned kubectl and helm, and its output must be what the page shows
(ages and timestamps aside). `SWITCHYARD_UPDATE_DOCS=1` rewrites the page's outputs
from this run instead. Steps that need kind (a kubelet, a container engine) are not
marked and not run; the page says so."""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import pytest

import kube_tools
from test_chart_install import REQUIRED

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "quickstart-kind.md"
MARK = "<!-- verified -->"
BLOCK = re.compile(re.escape(MARK) + r"\n```console\n(.*?)```", re.S)


def blocks(text: str) -> list[tuple[str, str, re.Match[str]]]:
    """(command, expected output, match) of each verified block (one command per block)."""
    out = []
    for m in BLOCK.finditer(text):
        lines = m.group(1).splitlines()
        assert lines and lines[0].startswith("$ "), f"a verified block starts with `$ command`: {m.group(1)!r}"
        assert not any(l.startswith("$ ") for l in lines[1:]), "one command per verified block"
        out.append((lines[0][2:], "\n".join(lines[1:]), m))
    return out


def normalize(text: str) -> str:
    text = re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", "<time>", text)
    text = re.sub(r"^(LAST DEPLOYED:).*$", r"\1 <time>", text, flags=re.M)
    text = re.sub(r"(\s)\d+(s|m|h|d)$", r"\1<age>", text, flags=re.M)
    return "\n".join(l.rstrip() for l in text.strip().splitlines())


def test_the_page_has_verified_blocks() -> None:
    cmds = [c for c, _, _ in blocks(DOC.read_text())]
    assert any(c.startswith("helm install switchyard charts/switchyard") for c in cmds)
    assert any(c.startswith("kubectl apply -n team-a -f docs/quickstart/demo.yaml") for c in cmds)


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> kube_tools.Cluster:
    if kube_tools.find_kube_binaries() is None and not REQUIRED:
        pytest.skip("real API server tier: kube-apiserver is not built (python hack/kube_tools.py build)")
    try:
        binaries, clients = kube_tools.ensure_kube_binaries(), kube_tools.ensure_kube_clients()
    except kube_tools.KubeToolsError as e:
        if REQUIRED:
            pytest.fail(f"SWITCHYARD_E2E=1 but the tier cannot run: {e}", pytrace=False)
        pytest.skip(str(e))
    c = kube_tools.start_cluster(tmp_path_factory.mktemp("quickstart-kube"), binaries=binaries, clients=clients)
    yield c
    c.stop()


def test_quickstart_commands_print_what_the_page_shows(fresh: kube_tools.Cluster) -> None:
    text = DOC.read_text()
    mismatches, actual_outputs = [], []
    for cmd, expected, _m in blocks(text):
        argv = shlex.split(cmd)
        tool, args = argv[0], [str(REPO / a) if "/" in a and (REPO / a).exists() else a for a in argv[1:]]
        assert tool in ("kubectl", "helm"), f"verified blocks run kubectl or helm only: {cmd}"
        run = fresh.kubectl if tool == "kubectl" else fresh.helm
        cp = run(*args, check=False, timeout=180)
        assert cp.returncode == 0, f"$ {cmd}\nexit {cp.returncode}\n{cp.stdout}\n{cp.stderr}"
        got = cp.stdout.rstrip()
        actual_outputs.append(got)
        if normalize(got) != normalize(expected):
            mismatches.append(f"$ {cmd}\n--- the page shows:\n{expected}\n--- the command printed:\n{got}")
        if argv[:3] == ["kubectl", "create", "namespace"]:
            fresh.ensure_service_account(argv[3], "default")  # kind's controller-manager would
    if os.environ.get("SWITCHYARD_UPDATE_DOCS") == "1":
        out, pos = [], 0
        for (cmd, _expected, m), got in zip(blocks(text), actual_outputs):
            out.append(text[pos:m.start()])
            out.append(f"{MARK}\n```console\n$ {cmd}\n" + (got + "\n" if got else "") + "```")
            pos = m.end()
        out.append(text[pos:])
        DOC.write_text("".join(out))
        return
    assert not mismatches, ("docs/quickstart-kind.md is out of date (rerun with SWITCHYARD_UPDATE_DOCS=1):\n\n"
                            + "\n\n".join(mismatches))
