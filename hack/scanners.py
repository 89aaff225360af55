#!/usr/bin/env python3
"""Install the chart's static scanners, pinned, into the Switchyard cache.

- kube-score, built from the Go module proxy (`go install
  github.com/zegl/kube-score/cmd/kube-score@KUBE_SCORE_VERSION`) into
  ``~/.cache/switchyard/bin`` (or ``$SWITCHYARD_CACHE/bin``), with the same Go caches and
  environment as hack/kube_tools.py;
- checkov, from PyPI, into its own virtualenv ``~/.cache/switchyard/checkov-VERSION``
  (its dependency tree is large and pinned tight: it stays out of the project's venv),
  linked as ``~/.cache/switchyard/bin/checkov``.

    python3 hack/scanners.py install   # both; exit 0 when both are there
    python3 hack/scanners.py paths     # where they are (or "missing")

tests/chart/test_chart_scanners.py finds them there (or on PATH). .ci/run installs them
and then sets SWITCHYARD_REQUIRE_SCANNERS=1, so a missing scanner fails CI instead of
skipping.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import kube_tools

KUBE_SCORE_MODULE = "github.com/zegl/kube-score/cmd/kube-score"
KUBE_SCORE_VERSION = "v1.20.0"
CHECKOV_VERSION = "3.3.30"


def kube_score_path() -> Path:
    return kube_tools.bin_dir() / "kube-score"


def checkov_path() -> Path:
    return kube_tools.bin_dir() / "checkov"


def _stamp(p: Path) -> Path:
    return p.with_name(p.name + ".version")


def _current(p: Path, version: str) -> bool:
    s = _stamp(p)
    return p.exists() and s.exists() and s.read_text().strip() == version


def install_kube_score() -> Path:
    out = kube_score_path()
    if _current(out, KUBE_SCORE_VERSION):
        return out
    go = kube_tools._go_exe()
    env = kube_tools._go_env(go)
    env["GOBIN"] = str(out.parent)
    env["GOFLAGS"] = "-modcacherw -buildvcs=false"  # `go install pkg@version` refuses -mod=mod
    out.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([go, "install", f"{KUBE_SCORE_MODULE}@{KUBE_SCORE_VERSION}"], env=env, check=True, timeout=1800)
    _stamp(out).write_text(KUBE_SCORE_VERSION + "\n")
    return out


def install_checkov() -> Path:
    out = checkov_path()
    if _current(out, CHECKOV_VERSION):
        return out
    home = kube_tools.cache_root() / f"checkov-{CHECKOV_VERSION}"
    if not (home / "bin" / "python").exists():
        venv.EnvBuilder(with_pip=True, clear=True).create(home)
    pip = [str(home / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, f"checkov=={CHECKOV_VERSION}"], check=True, timeout=1800)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.is_symlink() or out.exists():
        out.unlink()
    out.symlink_to(home / "bin" / "checkov")
    _stamp(out).write_text(CHECKOV_VERSION + "\n")
    return out


def main(argv: list[str]) -> int:
    cmd = argv[1] if len(argv) > 1 else "install"
    if cmd == "paths":
        for p, v in ((kube_score_path(), KUBE_SCORE_VERSION), (checkov_path(), CHECKOV_VERSION)):
            print(f"{p.name}: {p if _current(p, v) else 'missing'}")
        return 0
    if cmd != "install":
        print(__doc__, file=sys.stderr)
        return 2
    failed = []
    for name, fn in (("kube-score", install_kube_score), ("checkov", install_checkov)):
        try:
            print(f"{name}: {fn()}", flush=True)
        except (subprocess.SubprocessError, kube_tools.KubeToolsError, OSError) as e:
            print(f"{name}: not installed: {e}", file=sys.stderr, flush=True)
            failed.append(name)
    return 1 if failed else 0


if __name__ == "__main__":
    os.umask(0o022)
    sys.exit(main(sys.argv))
