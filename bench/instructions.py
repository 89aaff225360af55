#!/usr/bin/env python3
"""Instructions per request: an A/B meter that a busy machine does not move.

    .venv/bin/python bench/instructions.py --path same
    .venv/bin/python bench/instructions.py --path same --tree /tmp/before   # another copy of the repo's folders
    .venv/bin/python bench/instructions.py --path passthrough

CPU time per request moves by 20-30% from one run to the next when other work shares
the box (docs/performance.md); the count of user-space instructions the proxy executes
per request moves by about 2%. This runs the proxy under valgrind's callgrind with
instrumentation off (start-up at near-native speed), warms it up with wrk, switches
instrumentation on (``callgrind_control -i on``), sends load for ``--seconds`` at
``--connections``, and divides the instructions counted by the requests answered.

Kernel work (syscalls, the loopback network) is not counted, and the proxy runs ~50x
slower under valgrind, so more requests share an event-loop turn than at full speed:
compare counts only with each other (same path, same settings), never with times.
Needs valgrind (``apt-get install valgrind``) and wrk; a developer tool, not part of
bench/run.py.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import profile_hotpath as ph
import run as bench


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--path", choices=sorted(ph.ALIASES), default="same")
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--tree", help="run the sidecar from another copy of the repo's folders (see profile_hotpath.py)")
    args = ap.parse_args()
    for tool in ("valgrind", "callgrind_control", "wrk"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} not found (apt-get install valgrind wrk)")
    work = Path(tempfile.mkdtemp(prefix="switchyard-instr-"))
    py = sys.executable
    out = work / "callgrind.out"
    try:
        up = bench.Proc("upstream", [py, str(bench.BENCH / "upstream.py"), "--stream-chunk-delay-ms", "0"], 0, work)
        port = int(up.wait_for(r"PORT (\d+)", 30).group(1))
        origin = f"http://127.0.0.1:{port}"
        if args.path == "passthrough":
            argv = [py, str(bench.BENCH / "passthrough.py"), "--upstream", origin]
        else:
            cmd = [str(Path(py).parent / "switchyard")] if not args.tree else [py, "-c", ph.TREE_BOOT, args.tree]
            argv = [*cmd, "sidecar", "--port", "0", "--admin-host", "127.0.0.1", "--admin-port", "0"]
        proxy = bench.Proc("proxy", ["valgrind", "--tool=callgrind", "--instr-atstart=no",
                                     f"--callgrind-out-file={out}", *argv], 1, work)
        if args.path == "passthrough":
            pport = int(proxy.wait_for(r"PORT (\d+)", 300).group(1))
            url, model = f"http://127.0.0.1:{pport}/openai/v1/chat/completions", "gpt-sim"
        else:
            folder = work / "manifests"
            folder.mkdir()
            (folder / "bench.yaml").write_text(bench.manifests(origin))
            m = proxy.wait_for(r"API on 127\.0\.0\.1:(\d+), admin on 127\.0\.0\.1:(\d+)", 300)
            req = urllib.request.Request(f"http://127.0.0.1:{m.group(2)}/admin/config",
                                         data=bench.switchyard_config(folder), method="PUT",
                                         headers={"Content-Type": "application/json"})
            urllib.request.urlopen(req, timeout=60).close()
            url, model = f"http://127.0.0.1:{m.group(1)}/v1/chat/completions", ph.ALIASES[args.path]
        body = {"model": model, "max_tokens": 64, "messages": [{"role": "user", "content": "Say hello in one short sentence."}]}
        if args.path == "stream":
            body["stream"] = True
        (work / "body.json").write_text(json.dumps(body))
        env = {**os.environ, "BENCH_BODY": str(work / "body.json"), "BENCH_RATE": "0"}

        def load(seconds: int) -> dict[str, int]:
            r = subprocess.run(["taskset", "-c", "0", "wrk", "-t1", f"-c{args.connections}", f"-d{seconds}s",
                                "--timeout", "30s", "-s", str(bench.BENCH / "wrk_post.lua"), url],
                               capture_output=True, text=True, env=env, timeout=seconds + 120)
            return json.loads(r.stdout.strip().splitlines()[-1].split(" ", 1)[1])

        load(3)  # warm-up, not counted
        subprocess.run(["callgrind_control", "-i", "on", str(proxy.pid)], capture_output=True, check=True)
        res = load(args.seconds)
        subprocess.run(["callgrind_control", "-d", str(proxy.pid)], capture_output=True, check=True)
        subprocess.run(["callgrind_control", "-i", "off", str(proxy.pid)], capture_output=True)
        time.sleep(1)
        total = 0
        for f in glob.glob(str(out) + "*"):
            for line in open(f, errors="replace"):
                if line.startswith(("summary:", "totals:")):
                    total = max(total, int(line.split()[1]))
        n = res["requests"] - res["err_status"]
        print(f"{args.path}{' (' + args.tree + ')' if args.tree else ''}: {n} requests, {res['err_status']} errors, "
              f"{total / 1e6:.1f} M instructions, {total / max(1, n) / 1e3:.1f} k instructions/request")
    finally:
        bench.Proc.stop_all()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
