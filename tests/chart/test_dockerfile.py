"""The Dockerfile, checked statically (no container engine on the project's machines):
base image, stages, non-root numeric USER, no compilers or pip in the final stage,
read-only-root friendly environment, HEALTHCHECK and entry points; the build context
(.dockerignore applied) holds what the COPY lines name; and the builder stage's
`pip wheel` step, replayed here on a copy of that context, produces a wheel with both
console scripts."""

from __future__ import annotations

import fnmatch
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from chart_helpers import REPO

DOCKERFILE = REPO / "Dockerfile"
BUILD_TOOLS = ("build-essential", "gcc", "g++", "clang", "make", "cmake", "python3-dev", "libc6-dev", "cargo", "rustc")


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, op: str) -> list[str]:
        return [arg for o, arg in self.instructions if o == op]


def parse(text: str) -> tuple[dict[str, str], list[Stage]]:
    """(global ARG defaults, stages) of a Dockerfile; continuation lines joined."""
    logical: list[str] = []
    buf = ""
    for raw in text.splitlines():
        line = raw.rstrip()
        if not buf and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if buf and line.lstrip().startswith("#"):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        logical.append(buf + line)
        buf = ""
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        op, _, rest = line.strip().partition(" ")
        op = op.upper()
        rest = rest.strip()
        if op == "FROM":
            m = re.match(r"(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$", rest, re.I)
            assert m, line
            base = m.group(1)
            for k, v in args.items():
                base = base.replace("${" + k + "}", v).replace("$" + k, v)
            stages.append(Stage(base, m.group(2)))
        elif not stages:
            assert op == "ARG", f"only ARG may precede FROM: {line}"
            k, _, v = rest.partition("=")
            args[k] = v
        else:
            stages[-1].instructions.append((op, rest))
    return args, stages


ARGS, STAGES = parse(DOCKERFILE.read_text())
FINAL = STAGES[-1]


def test_multi_stage_slim_python_311() -> None:
    assert len(STAGES) >= 2
    assert [s.name for s in STAGES] == ["builder", "runtime"]
    for s in STAGES:
        assert re.fullmatch(r"python:3\.11-slim(-\w+)?", s.base), s.base
    assert STAGES[0].all("RUN") and any("pip wheel" in r for r in STAGES[0].all("RUN"))


def test_final_stage_has_no_build_tools_and_no_pip() -> None:
    runs = " ".join(FINAL.all("RUN"))
    for tool in BUILD_TOOLS:
        assert not re.search(rf"(?<![\w-]){re.escape(tool)}(?![\w-])", runs), f"{tool} in the final stage"
    assert "apt-get install" not in runs
    assert "--no-index" in runs and "--find-links=/wheels" in runs, "the final stage installs only the builder's wheels"
    assert "from=builder" in runs
    assert "pip uninstall -y pip setuptools wheel" in runs
    assert not FINAL.all("COPY") or all("--from=builder" in c for c in FINAL.all("COPY"))


def test_runs_as_a_numeric_non_root_user() -> None:
    users = FINAL.all("USER")
    assert users, "no USER in the final stage"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) != 0 and (not gid or (gid.isdigit() and int(gid) != 0))
    # The uid the chart's pod security context and the injected sidecar use.
    assert int(uid) == 65532
    values = (REPO / "charts" / "switchyard" / "values.yaml").read_text()
    assert "runAsUser: 65532" in values
    from switchyard.operator.settings import SidecarSettings

    assert SidecarSettings().run_as_user == int(uid)
    # Nothing after USER needs root.
    after = FINAL.instructions[[i for i, (o, _) in enumerate(FINAL.instructions) if o == "USER"][-1]:]
    assert not [a for o, a in after if o == "RUN"]


def test_the_runtime_uid_has_a_user_name() -> None:
    """kopf calls getpass.getuser(): without a passwd entry for the uid (and no LOGNAME)
    the operator crash-loops on a real node with KeyError 'getpwuid(): uid not found'."""
    uid, _, gid = FINAL.all("USER")[-1].partition(":")
    runs = " ".join(FINAL.all("RUN"))
    assert re.search(rf"switchyard:x:{uid}:{gid or uid}:[^']*' >> /etc/passwd", runs), runs
    assert re.search(rf"switchyard:x:{gid or uid}:[^']*' >> /etc/group", runs), runs
    assert "LOGNAME=switchyard" in " ".join(FINAL.all("ENV"))


def test_read_only_root_filesystem_friendly_environment() -> None:
    env = " ".join(FINAL.all("ENV"))
    for needed in ("PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1", "HOME=/tmp", "TMPDIR=/tmp"):
        assert needed in env, needed
    assert FINAL.all("WORKDIR")[-1] == "/tmp"
    assert any("--compile" in r for r in FINAL.all("RUN")), "byte-code compiled at build time"


def test_entrypoint_and_both_commands() -> None:
    assert FINAL.all("ENTRYPOINT") == ['["switchyard"]']
    assert FINAL.all("CMD") == ['["sidecar"]']
    # The two commands the chart and the webhook run exist in the CLI.
    from switchyard.cli import build_parser

    commands = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert {"operator", "sidecar"} <= set(commands)
    rendered = (REPO / "charts" / "switchyard" / "templates" / "deployment.yaml").read_text()
    assert "- operator" in rendered
    from switchyard.operator.settings import SidecarSettings
    from switchyard.operator.webhook import sidecar_container

    c = sidecar_container(SidecarSettings())
    assert c["command"] == ["switchyard"] and c["args"][0] == "sidecar"


def test_healthcheck_and_probes_use_healthz_and_readyz() -> None:
    (hc,) = FINAL.all("HEALTHCHECK")
    assert "/healthz" in hc and "4001" in hc
    exposed = " ".join(FINAL.all("EXPOSE")).split()
    assert set(exposed) == {"4000", "4001", "8080", "9443"}
    from switchyard.operator.settings import SidecarSettings
    from switchyard.operator.webhook import sidecar_container

    c = sidecar_container(SidecarSettings())
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["securityContext"]["readOnlyRootFilesystem"] is True


def _ignored(rel: str, patterns: list[str]) -> bool:
    for p in patterns:
        p = p.removeprefix("**/")
        if fnmatch.fnmatch(rel, p) or fnmatch.fnmatch(Path(rel).name, p) or rel.split("/")[0] == p:
            return True
    return False


def _context(dst: Path) -> Path:
    """Copy what the Dockerfile's builder COPYs from the build context (.dockerignore applied)."""
    patterns = [l.strip() for l in (REPO / ".dockerignore").read_text().splitlines() if l.strip() and not l.startswith("#")]
    for arg in STAGES[0].all("COPY"):
        parts = shlex.split(arg)
        assert not any(p.startswith("--from") for p in parts)
        *sources, _target = parts
        for src in sources:
            path = REPO / src.rstrip("/")
            assert path.exists(), f"COPY {src}: not in the repository"
            assert not _ignored(src.rstrip("/"), patterns), f"COPY {src}: excluded by .dockerignore"
            if path.is_dir():
                shutil.copytree(path, dst / src.rstrip("/"), ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                shutil.copy2(path, dst / src)
    return dst


def test_the_context_holds_every_package_pyproject_finds() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    roots = {pattern.rstrip("*").rstrip(".") for pattern in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]}
    copied = {shlex.split(a)[0].rstrip("/") for a in STAGES[0].all("COPY")}
    assert roots <= copied, f"the builder does not COPY {sorted(roots - copied)}"


@pytest.mark.slow
def test_builder_pip_wheel_step_builds_the_project(tmp_path: Path) -> None:
    (tmp_path / "context").mkdir()
    ctx = _context(tmp_path / "context")
    out = tmp_path / "wheels"
    from importlib.metadata import version

    # The venv's setuptools when it satisfies pyproject's build requirement (fast, offline),
    # else pip's isolated build environment, as in the image's builder stage.
    isolation = [] if int(version("setuptools").split(".")[0]) >= 69 else ["--use-pep517"]
    no_isolation = ["--no-build-isolation"] if not isolation else []
    cp = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", *no_isolation, *isolation, "--wheel-dir", str(out), "."],
        cwd=ctx, capture_output=True, text=True, timeout=300)
    assert cp.returncode == 0, cp.stdout[-3000:] + cp.stderr[-3000:]
    (wheel,) = out.glob("switchyard-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        entry = next(n for n in names if n.endswith("entry_points.txt"))
        scripts = z.read(entry).decode()
    assert "switchyard = switchyard.cli:main" in scripts
    assert "kubectl-switchyard = switchyard.cli.kubectl_plugin:main" in scripts
    assert "switchyard/cli/kubectl_plugin.py" in names
    assert any(n.startswith("switchyard/api/profiles/") for n in names)
