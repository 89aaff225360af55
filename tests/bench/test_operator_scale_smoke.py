"""bench/operator_scale.py still runs and measures what the reconciler does: a small run
prints the compile column with its target, the full namespace pass (compile each binding
once + select through the index + assemble per set), the exact re-push check and the
"operator with N pods" figure. Its figures are never asserted (the machine is shared)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_operator_scale_prints_the_pass_and_the_pods_figure() -> None:
    r = subprocess.run(
        [sys.executable, str(REPO / "bench" / "operator_scale.py"), "--sizes", "100,1000", "--rounds", "1",
         "--pods", "1,10", "--pods-bindings", "100"],
        capture_output=True, text=True, timeout=300, cwd=REPO,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    out = r.stdout
    assert "full namespace pass for 500 pods" in out
    assert "compile target < 100 ms: " in out
    assert out.count("exact)") == 2 and "MISMATCH" not in out and "NOT = per-pod compiles" not in out
    assert "operator with N pods" in out and "plan_statuses" in out and "least squares:" in out
