"""The fleet bench (bench/fleet.py) still runs end to end: quick mode (N = 1 and 2
sidecars from the mounted config Secret, one simulator upstream; the operator's reconcile
with 1, 10 and 100 emulated pods). It must finish and print both tables; its figures are
never asserted (the machine is shared and noisy, see docs/performance.md, "Beyond one pod")."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_quick_fleet_bench_prints_its_tables() -> None:
    r = subprocess.run(
        [sys.executable, str(REPO / "bench" / "fleet.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=180,  # ~20 s on an idle 2-core box; generous for a busy CI machine
        cwd=REPO,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    out = r.stdout
    assert "Switchyard fleet benchmark - QUICK" in out
    header = next(line for line in out.splitlines() if "N=1" in line)
    assert "N=2" in header
    for row in ("total req/s", "CPU s / 1,000 req per sidecar", "RSS per sidecar", "checks at the upstream, per minute",
                "upstream connections"):
        assert row in out, row
    pods = next(line for line in out.splitlines() if "1 pods" in line)
    assert "100 pods" in pods
    for row in ("steady pass:", "GET /admin/status", "config Secret writes", "status patches", "pod annotations"):
        assert row in out, row
    assert "operator phase incomplete" not in out
    assert "Traceback" not in r.stderr
