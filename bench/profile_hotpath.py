#!/usr/bin/env python3
"""Profile Switchyard's request path under load: py-spy samples the sidecar process
while wrk (or pyclient) drives one path at fixed concurrency.

    .venv/bin/python bench/profile_hotpath.py --path same --seconds 10
    .venv/bin/python bench/profile_hotpath.py --path cross --speedscope /tmp/cross.json

Needs ``py-spy`` on PATH or in the venv (``pip install py-spy``: a developer tool, not a
dependency of the bench). Prints the CPU per request measured from /proc during the
profile, then the functions with the most samples: own time (``self``) and time
including callees (``total``), from py-spy's collapsed stacks. Sampling slows the
process slightly; compare CPU-per-request figures only between runs of this script.
"""

from __future__ import annotations

import argparse
import collections
import json
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run as bench

# Import `switchyard` from another tree (a checkout of this layout, with `switchyard/` at
# its root): put the tree first on sys.path; the editable install's finder comes later.
TREE_BOOT = (
    "import sys; "
    "tree = sys.argv.pop(1); sys.path.insert(0, tree); "
    "from switchyard.cli import main; sys.exit(main())"
)

ALIASES = {"same": "bench-same", "cross": "bench-cross", "fallback": "bench-fallback", "stream": "bench-stream",
           "passthrough": "gpt-sim"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--path", choices=sorted(ALIASES), default="same")
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--rate", type=int, help="fixed rate instead of fixed concurrency")
    ap.add_argument("--top", type=int, default=35)
    ap.add_argument("--speedscope", help="also write a speedscope profile here")
    ap.add_argument("--raw", help="keep py-spy's collapsed stacks here")
    ap.add_argument("--no-profile", action="store_true", help="only measure CPU per request (no py-spy)")
    ap.add_argument("--repeat", type=int, default=1, help="measure this many times (best CPU per request wins)")
    ap.add_argument("--sidecar-arg", action="append", default=[], help="extra argument for `switchyard sidecar`")
    ap.add_argument("--tree", help="run the sidecar from another copy of the repo's folders (A/B of a change; "
                    "needs the repo venv's editable install)")
    args = ap.parse_args()

    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not args.no_profile and not Path(spy).exists():
        sys.exit("py-spy not found: pip install py-spy (into the repo venv is fine)")
    wrk, _ = bench.find_wrk(install=False)
    work = Path(tempfile.mkdtemp(prefix="switchyard-profile-"))
    plan = bench.Plan(rates=(), rate_seconds=0, warmup_seconds=0, throughput_seconds=0, stream_count=0,
                      stream_chunks=200, stream_chunk_delay_ms=0.0, soak_requests=0)
    b = bench.Bench(plan, work, wrk)
    py = sys.executable
    try:
        up = bench.Proc("upstream", [py, str(bench.BENCH / "upstream.py"), "--stream-chunks", "200",
                                     "--stream-chunk-delay-ms", "0"], 0, work)
        b.upstream = up
        port = int(up.wait_for(r"PORT (\d+)", 30).group(1))
        origin = f"http://127.0.0.1:{port}"
        if args.path == "passthrough":  # the floor, profiled the same way
            sy = bench.Proc("passthrough", [py, str(bench.BENCH / "passthrough.py"), "--upstream", origin], 1, work)
            pport = int(sy.wait_for(r"PORT (\d+)", 30).group(1))
            url = f"http://127.0.0.1:{pport}/openai/v1/chat/completions"
        else:
            folder = work / "manifests"
            folder.mkdir()
            (folder / "bench.yaml").write_text(bench.manifests(origin))
            wire = bench.switchyard_config(folder)
            cmd = [str(Path(py).parent / "switchyard")] if not args.tree else [py, "-c", TREE_BOOT, args.tree]
            sy = bench.Proc("switchyard", [*cmd, "sidecar", "--port", "0", "--admin-host",
                                           "127.0.0.1", "--admin-port", "0", *args.sidecar_arg], 1, work)
            m = sy.wait_for(r"API on 127\.0\.0\.1:(\d+), admin on 127\.0\.0\.1:(\d+)", 30)
            api, admin = int(m.group(1)), int(m.group(2))
            req = urllib.request.Request(f"http://127.0.0.1:{admin}/admin/config", data=wire, method="PUT", headers={"Content-Type": "application/json"})
            urllib.request.urlopen(req, timeout=10).close()
            url = f"http://127.0.0.1:{api}/v1/chat/completions"
        body = {"model": ALIASES[args.path], "max_tokens": 64,
                "messages": [{"role": "user", "content": "Say hello in one short sentence."}]}
        if args.path == "stream":
            body["stream"] = True
        (work / "body.json").write_text(json.dumps(body))
        t = bench.Target(args.path, url, None, work / "body.json", sy)
        b.load(t, seconds=2, connections=args.connections)  # warm-up
        spy_proc = None
        raw = work / "stacks.txt"
        if not args.no_profile:
            spy_proc = subprocess.Popen([spy, "record", "-p", str(sy.pid), "-r", "500", "-d", str(args.seconds + 1),
                                         "-f", "raw", "-o", str(raw), "--nonblocking"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        runs = [b.load(t, seconds=args.seconds, connections=args.connections, rate=args.rate)]
        for _ in range(args.repeat - 1):
            runs.append(b.load(t, seconds=args.seconds, connections=args.connections, rate=args.rate))
        res = min(runs, key=lambda r: r["proxy_cpu"] / max(1, r["requests"]))
        if len(runs) > 1:
            print("CPU us/request per run: " + ", ".join(f"{r['proxy_cpu'] / max(1, r['requests']) * 1e6:.0f}" for r in runs))
        if spy_proc is not None:
            spy_proc.wait(60)
        if args.speedscope and not args.no_profile:
            subprocess.run([spy, "record", "-p", str(sy.pid), "-r", "500", "-d", "3", "-f", "speedscope",
                            "-o", args.speedscope, "--nonblocking"], capture_output=True)
        sy.stop()
        up.stop()
    finally:
        bench.Proc.stop_all()

    n = res["requests"]
    print(f"path {args.path}: {res['rps']:.0f} req/s, p50 {res['p50_us'] / 1000:.2f} ms, "
          f"sidecar CPU {res['proxy_cpu'] / n * 1e6:.0f} us/request ({res['proxy_cpu'] / res['wall'] * 100:.0f}% of a core), "
          f"other processes {res['others_cpu'] / res['wall'] * 100:.0f}% of a core")
    if args.no_profile:
        return 0
    if args.raw:
        shutil.copy(raw, args.raw)
    self_c: collections.Counter[str] = collections.Counter()
    total_c: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        c = int(count)
        frames = stack.split(";")
        samples += c
        self_c[_short(frames[-1])] += c
        for f in set(map(_short, frames)):
            total_c[f] += c
    print(f"{samples} samples")
    print(f"{'self %':>7}  function")
    for f, c in self_c.most_common(args.top):
        print(f"{c / samples * 100:7.1f}  {f}")
    print(f"\n{'total %':>7}  function")
    for f, c in total_c.most_common(args.top):
        print(f"{c / samples * 100:7.1f}  {f}")
    return 0


def _short(frame: str) -> str:
    # py-spy raw frames: "function (path/to/file.py:line)"
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    path, _, _line = where.rpartition(":")
    parts = Path(path).parts
    tail = "/".join(parts[-2:]) if parts else where
    return f"{name} ({tail})"


if __name__ == "__main__":
    sys.exit(main())
