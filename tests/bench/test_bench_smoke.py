"""The side-by-side bench (bench/run.py) still runs end to end: quick mode, the Switchyard
columns only (direct, same-protocol, OpenAI-in/Anthropic-out, one 429 fallback hop), no
apt-get and no LiteLLM install. It must finish and print its table; its figures are
never asserted (the machine is shared and noisy, see docs/performance.md)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_quick_bench_prints_its_table() -> None:
    r = subprocess.run(
        [sys.executable, str(REPO / "bench" / "run.py"), "--quick", "--switchyard-only", "--no-install"],
        capture_output=True,
        text=True,
        timeout=180,  # ~15 s on an idle 2-core box; generous for a busy CI machine
        cwd=REPO,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    out = r.stdout
    assert "Switchyard side-by-side benchmark - QUICK" in out
    header = next(line for line in out.splitlines() if "SY same" in line)
    for column in ("direct", "SY same", "SY cross", "SY 429 hop"):
        assert column in header
    for row in ("added latency p50 @200/s", "throughput c16, req/s", "stream TTFB overhead", "CPU s / 1,000 req", "RSS idle"):
        assert row in out, row
    assert "load generator:" in out
    assert "Traceback" not in r.stderr
