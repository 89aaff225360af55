#!/usr/bin/env python3
"""Side-by-side benchmark: Switchyard against a bare aiohttp pass-through and LiteLLM.

    python3 bench/run.py            # the full run (about 8 minutes, plus a one-time install)
    python3 bench/run.py --quick    # a ~10-second smoke run (figures only indicative)

Every path talks to one emulated upstream (``bench/upstream.py``: Switchyard's
simulator) in the same run, over loopback, on ports the OS picks:

    direct       the load generator straight to the upstream
    passthrough  bench/passthrough.py, a ~50-line aiohttp proxy (the practical Python floor)
    same         Switchyard, OpenAI in, OpenAI out
    cross        Switchyard, OpenAI in, Anthropic out
    fallback     Switchyard, the primary answers 429 to every request, the fallback serves
    litellm      the LiteLLM proxy, one worker, no database, telemetry off

With two cores or more, the upstream and the load generator run on core 0 and the proxy
under test on core 1 (``taskset``). ``wrk`` comes from Debian's packages (installed with
apt-get when missing); LiteLLM is installed into its own venv under
``~/.cache/switchyard/bench/``. When either is impossible the run says so and goes on:
without wrk the bench's own Python load generator (``pyclient.py``) is used, without
LiteLLM its column is skipped. See bench/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
CACHE = Path(os.environ.get("SWITCHYARD_BENCH_CACHE", "~/.cache/switchyard/bench")).expanduser()
LITELLM_SPEC = os.environ.get("SWITCHYARD_BENCH_LITELLM", "litellm[proxy]==1.106.2")
MASTER_KEY = "sk-bench-0123456789abcdef0123456789abcdef"  # LiteLLM refuses to start without one
CLK_TCK = os.sysconf("SC_CLK_TCK")

PATHS = ("direct", "passthrough", "same", "cross", "fallback", "litellm")
SWITCHYARD_PATHS = ("same", "cross", "fallback")
TITLES = {
    "direct": "direct",
    "passthrough": "pass-through",
    "same": "SY same",
    "cross": "SY cross",
    "fallback": "SY 429 hop",
    "litellm": "LiteLLM",
}


@dataclass(frozen=True)
class Plan:
    rates: tuple[int, ...]
    rate_seconds: int
    warmup_seconds: int
    throughput_seconds: int
    stream_count: int
    stream_chunks: int
    stream_chunk_delay_ms: float
    soak_requests: int  # total requests a proxy process has served when its final RSS is read
    rate_connections: int = 8
    throughput_connections: int = 16


FULL = Plan(rates=(200, 500), rate_seconds=10, warmup_seconds=3, throughput_seconds=10,
            stream_count=30, stream_chunks=200, stream_chunk_delay_ms=1.0, soak_requests=100_000)
QUICK = Plan(rates=(200,), rate_seconds=1, warmup_seconds=0, throughput_seconds=1,
             stream_count=3, stream_chunks=50, stream_chunk_delay_ms=0.2, soak_requests=0)


def say(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------ environment


def ensure_repo_python() -> None:
    """Re-run this script with the repo's venv (Switchyard, aiohttp, uvloop) when the
    current interpreter cannot import Switchyard; build the venv with `make` if needed."""
    try:
        import switchyard.sidecar  # noqa: F401
        import uvloop  # noqa: F401

        return
    except ImportError:
        pass
    venv_python = REPO / ".venv" / "bin" / "python"
    if not venv_python.exists():
        say("no repo venv: building it with `make .venv/bin/.installed` (one time)")
        subprocess.run(["make", "-C", str(REPO), ".venv/bin/.installed"], check=True)
    if Path(sys.prefix).resolve() == (REPO / ".venv").resolve():
        sys.exit("bench: the repo venv cannot import switchyard; run `make test` once to repair it")
    os.execv(str(venv_python), [str(venv_python), str(Path(__file__).resolve()), *sys.argv[1:]])


def find_wrk(install: bool) -> tuple[str | None, str]:
    """wrk from Debian's packages: (path, note)."""
    path = shutil.which("wrk")
    if path:
        return path, "wrk (Debian package)"
    if not install:
        return None, "wrk not installed (--no-install): using bench/pyclient.py"
    if shutil.which("apt-get") is None:
        return None, "wrk unavailable (no apt-get on this machine): using bench/pyclient.py"
    sudo = [] if os.geteuid() == 0 else (["sudo", "-n"] if shutil.which("sudo") else None)
    if sudo is None:
        return None, "wrk unavailable (not root and no sudo for apt-get): using bench/pyclient.py"
    say("installing wrk with apt-get (Debian package)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in ([*sudo, "apt-get", "update", "-qq"], [*sudo, "apt-get", "install", "-y", "-qq", "wrk"]):
        try:
            r = subprocess.run(argv, capture_output=True, text=True, timeout=300, env=env)
        except subprocess.TimeoutExpired:
            return None, f"wrk unavailable ({' '.join(argv)} timed out): using bench/pyclient.py"
        if r.returncode != 0:
            last = (r.stderr.strip().splitlines() or ["?"])[-1]
            return None, f"wrk unavailable ({' '.join(argv[len(sudo):])} failed: {last}): using bench/pyclient.py"
    path = shutil.which("wrk")
    return (path, "wrk (Debian package, just installed)") if path else (None, "wrk missing after apt-get: using bench/pyclient.py")


def ensure_litellm(install: bool) -> tuple[Path | None, str]:
    """LiteLLM's proxy in its own venv under the cache dir: (executable, note)."""
    venv = CACHE / "litellm-venv"
    exe = venv / "bin" / "litellm"
    marker = venv / ".bench-spec"
    if exe.exists() and marker.exists() and marker.read_text().strip() == LITELLM_SPEC:
        return exe, f"{LITELLM_SPEC} in {venv}"
    if not install:
        return None, "LiteLLM not installed (--no-install): column skipped"
    say(f"installing {LITELLM_SPEC} into {venv} (one time, a few minutes)")
    try:
        if not (venv / "bin" / "python").exists():
            venv.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=120)
        r = subprocess.run(
            [str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", LITELLM_SPEC],
            capture_output=True, text=True, timeout=1200,
        )
    except (subprocess.SubprocessError, OSError) as exc:
        return None, f"LiteLLM install impossible ({exc}): column skipped"
    if r.returncode != 0 or not exe.exists():
        last = (r.stderr.strip().splitlines() or ["?"])[-1]
        return None, f"LiteLLM install failed ({last}): column skipped"
    marker.write_text(LITELLM_SPEC + "\n")
    return exe, f"{LITELLM_SPEC} in {venv}"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -------------------------------------------------------------------- processes


def _tree(pid: int) -> list[int]:
    """pid and its descendants (LiteLLM may fork workers)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_seconds(pid: int) -> float:
    total = 0.0
    for p in _tree(pid):
        try:
            stat = Path(f"/proc/{p}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        total += (int(fields[11]) + int(fields[12])) / CLK_TCK
    return total


def rss_mb(pid: int) -> float:
    total = 0
    for p in _tree(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def machine_busy_seconds() -> float:
    """CPU seconds spent by everything on the machine (all cores), from /proc/stat."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    vals = [int(v) for v in fields]
    idle = vals[3] + (vals[4] if len(vals) > 4 else 0)
    return (sum(vals[:8]) - idle) / CLK_TCK


class Proc:
    """A process this run started (and only those are ever stopped)."""

    started: list[Proc] = []

    def __init__(self, name: str, argv: list[str], core: int | None, logdir: Path, env: dict[str, str] | None = None):
        self.name = name
        self.log = logdir / f"{name}.log"
        pin = ["taskset", "-c", str(core)] if core is not None else []
        self._fh = open(self.log, "wb")
        self.p = subprocess.Popen([*pin, *argv], stdout=self._fh, stderr=subprocess.STDOUT, env=env,
                                  stdin=subprocess.DEVNULL, start_new_session=True)
        Proc.started.append(self)

    @property
    def pid(self) -> int:
        return self.p.pid

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern)
        while time.monotonic() < deadline:
            m = rx.search(self.log.read_text(errors="replace"))
            if m:
                return m
            if self.p.poll() is not None:
                break
            time.sleep(0.05)
        tail = self.log.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"{self.name} did not become ready (exit code {self.p.poll()}); its output ends with:\n{tail}")

    def stop(self) -> None:
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(5)
        self._fh.close()
        if self in Proc.started:
            Proc.started.remove(self)

    @classmethod
    def stop_all(cls) -> None:
        for p in list(cls.started):
            try:
                p.stop()
            except Exception:
                pass


def http_get(url: str, timeout: float = 2.0) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status
    except Exception:
        return 0


# ---------------------------------------------------------------- the upstream


def manifests(upstream: str) -> str:
    """The bench's Switchyard manifests: four sources on the one upstream, four bindings."""
    return f"""
apiVersion: v1
kind: Secret
metadata: {{name: bench-keys}}
stringData: {{openai: sim-openai-key, anthropic: sim-anthropic-key}}
---
apiVersion: switchyard.dev/v1alpha1
kind: ModelSource
metadata: {{name: sim-openai}}
spec:
  provider: openai-compatible
  baseURL: {upstream}/openai/v1
  defaultModel: gpt-sim
  capabilityProfileRef: {{name: builtin-openai}}
  credentialRef: {{name: bench-keys, key: openai}}
---
apiVersion: switchyard.dev/v1alpha1
kind: ModelSource
metadata: {{name: sim-anthropic}}
spec:
  provider: anthropic
  baseURL: {upstream}/anthropic
  defaultModel: claude-sim
  credentialRef: {{name: bench-keys, key: anthropic}}
---
apiVersion: switchyard.dev/v1alpha1
kind: ModelSource
metadata: {{name: sim-flaky}}
spec:
  provider: openai-compatible
  baseURL: {upstream}/flaky/v1
  defaultModel: gpt-sim
  capabilityProfileRef: {{name: builtin-openai}}
  credentialRef: {{name: bench-keys, key: openai}}
---
apiVersion: switchyard.dev/v1alpha1
kind: ModelSource
metadata: {{name: sim-stream}}
spec:
  provider: openai-compatible
  baseURL: {upstream}/stream/v1
  defaultModel: gpt-sim
  capabilityProfileRef: {{name: builtin-openai}}
  credentialRef: {{name: bench-keys, key: openai}}
---
apiVersion: switchyard.dev/v1alpha1
kind: AssistantBinding
metadata: {{name: bench-same}}
spec:
  primary: {{sourceRef: {{name: sim-openai}}}}
---
apiVersion: switchyard.dev/v1alpha1
kind: AssistantBinding
metadata: {{name: bench-cross}}
spec:
  primary: {{sourceRef: {{name: sim-anthropic}}}}
---
apiVersion: switchyard.dev/v1alpha1
kind: AssistantBinding
metadata: {{name: bench-fallback}}
spec:
  primary: {{sourceRef: {{name: sim-flaky}}}}
  fallbacks:
    - sourceRef: {{name: sim-openai}}
  breaker: {{consecutiveFailures: 100}}
---
apiVersion: switchyard.dev/v1alpha1
kind: AssistantBinding
metadata: {{name: bench-stream}}
spec:
  primary: {{sourceRef: {{name: sim-stream}}}}
"""


def switchyard_config(folder: Path) -> bytes:
    """Compile the manifests as the operator would, then take the fallback binding's
    breaker out of play: the CRD caps consecutiveFailures at 100, and an open breaker
    would skip the 429 tier instead of trying it, which is not the cost measured."""
    from switchyard.api.manifests import load_manifests
    from switchyard.compiler import compile_config
    from switchyard.sidecar.contract.config import CompiledConfig

    resources, errors = load_manifests(folder)
    if errors:
        raise RuntimeError("bench manifests do not load: " + "; ".join(map(str, errors)))
    result = compile_config(resources)
    for rep in result.reports.values():
        bad = [t for t in rep.tiers if not t.resolvable]
        if bad:
            raise RuntimeError(f"bench binding {rep} has unresolvable tiers")
    data = result.config.model_dump(mode="json", context={"reveal_secrets": True}, exclude={"version"})
    for b in data["bindings"]:
        if b["name"] == "bench-fallback":
            b["breaker"]["consecutive_failures"] = 10**9
    return CompiledConfig.model_validate(data).with_version().to_wire()


def litellm_config(upstream: str) -> str:
    return f"""model_list:
  - model_name: bench-same
    litellm_params: {{model: openai/gpt-sim, api_base: "{upstream}/openai/v1", api_key: sim-openai-key}}
  - model_name: bench-stream
    litellm_params: {{model: openai/gpt-sim, api_base: "{upstream}/stream/v1", api_key: sim-openai-key}}
litellm_settings:
  telemetry: false
general_settings:
  master_key: {MASTER_KEY}
  disable_spend_logs: true
"""


# --------------------------------------------------------------------- measures


@dataclass
class Target:
    """One path: where to send, and which process to watch (None for direct)."""

    name: str
    url: str
    stream_url: str | None
    body: Path
    proc: Proc | None


@dataclass
class Bench:
    plan: Plan
    workdir: Path
    wrk: str | None
    upstream: Proc | None = None
    pin: bool = True
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    served: dict[int, int] = field(default_factory=dict)  # proxy pid -> requests served

    def load(self, t: Target, *, seconds: int, connections: int, rate: int | None = None) -> dict[str, Any]:
        """One load run; returns the generator's figures plus CPU seconds of each party."""
        core0 = ["taskset", "-c", "0"] if self.pin else []
        if self.wrk:
            argv = [*core0, self.wrk, "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s",
                    "-s", str(BENCH / "wrk_post.lua"), t.url]
            env = {**os.environ, "BENCH_BODY": str(t.body), "BENCH_RATE": str(rate or 0)}
        else:
            argv = [*core0, sys.executable, str(BENCH / "pyclient.py"), "load", "--url", t.url, "--body", str(t.body),
                    "--duration", str(seconds), "--connections", str(connections)]
            argv += ["--rate", str(rate)] if rate else []
            env = None
        kids0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        up0 = cpu_seconds(self.upstream.pid) if self.upstream else 0.0
        px0 = cpu_seconds(t.proc.pid) if t.proc else 0.0
        busy0, wall0 = machine_busy_seconds(), time.monotonic()
        r = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, env=env)
        wall = time.monotonic() - wall0
        busy = machine_busy_seconds() - busy0
        kids1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        m = re.search(r"^BENCH (\{.*\})$", r.stdout, re.M)
        if r.returncode != 0 or not m:
            raise RuntimeError(f"load generator failed on {t.name}: {r.stdout[-500:]} {r.stderr[-500:]}")
        out: dict[str, Any] = json.loads(m.group(1))
        out["wall"] = wall
        out["gen_cpu"] = (kids1.ru_utime + kids1.ru_stime) - (kids0.ru_utime + kids0.ru_stime)
        out["upstream_cpu"] = (cpu_seconds(self.upstream.pid) - up0) if self.upstream else 0.0
        out["proxy_cpu"] = (cpu_seconds(t.proc.pid) - px0) if t.proc else 0.0
        out["others_cpu"] = max(0.0, busy - out["gen_cpu"] - out["upstream_cpu"] - out["proxy_cpu"])
        out["rps"] = out["requests"] / (out["duration_us"] / 1e6) if out["duration_us"] else 0.0
        errors = sum(out[k] for k in ("err_connect", "err_read", "err_write", "err_status", "err_timeout"))
        out["errors"] = errors
        if errors:
            say(f"  {t.name}: {errors} errors in {out['requests']} requests ({r.stdout.strip().splitlines()[-1]})")
        if t.proc:
            self.served[t.proc.pid] = self.served.get(t.proc.pid, 0) + out["requests"]
        return out

    def stream(self, t: Target) -> dict[str, Any] | None:
        if t.stream_url is None:
            return None
        core0 = ["taskset", "-c", "0"] if self.pin else []
        argv = [*core0, sys.executable, str(BENCH / "pyclient.py"), "stream", "--url", t.stream_url,
                "--body", str(self.workdir / f"stream-{t.name}.json"), "--count", str(self.plan.stream_count)]
        r = subprocess.run(argv, capture_output=True, text=True, timeout=600)
        m = re.search(r"^BENCH (\{.*\})$", r.stdout, re.M)
        if r.returncode != 0 or not m:
            raise RuntimeError(f"stream probe failed on {t.name}: {r.stdout[-500:]} {r.stderr[-500:]}")
        return json.loads(m.group(1))

    def measure(self, t: Target, *, rss: bool) -> dict[str, Any]:
        """Everything for one path: warm-up, throughput, fixed rates, streams."""
        plan, res = self.plan, {}
        say(f"measuring {TITLES[t.name]}")
        if rss and t.proc:
            res["rss_idle"] = rss_mb(t.proc.pid)
        # LiteLLM serves its first requests seconds late (lazy imports): always warm it up.
        warm = plan.warmup_seconds or (3 if t.name == "litellm" else 0)
        if warm:
            self.load(t, seconds=warm, connections=plan.rate_connections)
        res["throughput"] = self.load(t, seconds=plan.throughput_seconds, connections=plan.throughput_connections)
        if rss and t.proc:
            res["rss_warm"] = rss_mb(t.proc.pid)
        for rate in plan.rates:
            res[f"rate{rate}"] = self.load(t, seconds=plan.rate_seconds, connections=plan.rate_connections, rate=rate)
        res["stream"] = self.stream(t)
        self.results[t.name] = res
        return res

    def soak(self, t: Target, total: int) -> None:
        """Serve up to `total` requests on t's process (for the RSS-after figure)."""
        if not t.proc or total <= 0:
            return
        pid = t.proc.pid
        rps = max(50.0, self.results[t.name]["throughput"]["rps"])
        while (left := total - self.served.get(pid, 0)) > 0:
            seconds = max(1, min(120, int(left / rps * 1.05) + 1))
            say(f"  soak: {left} more requests to {TITLES[t.name]}'s process ({seconds} s)")
            self.load(t, seconds=seconds, connections=self.plan.throughput_connections)


# ------------------------------------------------------------------------ table


def _ms(us: float | None) -> str:
    return "-" if us is None else f"{us / 1000:.2f}"


def build_table(b: Bench, order: list[str]) -> tuple[list[str], dict[str, Any]]:
    """The table (rows of text) and the derived figures (for --json and the checks)."""
    R, plan = b.results, b.plan
    d = R.get("direct", {})
    cols = [p for p in order if p in R]
    rows: list[tuple[str, list[str]]] = []
    derived: dict[str, dict[str, Any]] = {p: {} for p in cols}

    def added(p: str, key: str, pct: str) -> float | None:
        if key not in R[p] or key not in d:
            return None
        return R[p][key][pct] - d[key][pct]

    for rate in plan.rates:
        key = f"rate{rate}"
        for pct in ("p50_us", "p99_us"):
            vals = []
            for p in cols:
                if p == "direct":
                    vals.append(f"({_ms(R[p][key][pct])})")
                    continue
                a = added(p, key, pct)
                derived[p][f"added_{pct[:3]}_{rate}"] = a
                saturated = R[p][key]["rps"] < 0.95 * rate  # could not keep the offered rate
                vals.append(_ms(a) + ("*" if saturated else ""))
            rows.append((f"added latency {pct[:3]} @{rate}/s, ms", vals))
    rows.append(("throughput c16, req/s", [f"{R[p]['throughput']['rps']:.0f}" for p in cols]))
    rows.append(("  latency p50 at c16, ms", [_ms(R[p]["throughput"]["p50_us"]) for p in cols]))
    per_core = []
    for p in cols:
        t = R[p]["throughput"]
        derived[p]["rps"] = t["rps"]
        share = t["proxy_cpu"] / t["wall"] if t["wall"] else 0.0
        if p == "direct" or share <= 0:
            per_core.append("-")
            continue
        # What one full core would serve: robust when other load took part of core 1.
        derived[p]["rps_per_core"] = t["rps"] / share
        per_core.append(f"{t['rps'] / share:.0f}")
    rows.append(("  req/s per proxy CPU-second at c16", per_core))
    ds = (d.get("stream") or {})
    vals_ttfb, vals_total = [], []
    for p in cols:
        s = R[p].get("stream")
        if not s:
            vals_ttfb.append("-")
            vals_total.append("-")
            continue
        if p == "direct":
            vals_ttfb.append(f"({_ms(s['ttfb_p50_us'])})")
        else:
            o = s["ttfb_p50_us"] - ds.get("ttfb_p50_us", 0)
            derived[p]["ttfb_overhead"] = o
            vals_ttfb.append(_ms(o))
        vals_total.append(_ms(s["total_p50_us"]))
    rows.append((f"stream TTFB overhead p50, ms ({plan.stream_chunks} chunks)", vals_ttfb))
    rows.append((f"stream total p50, ms ({plan.stream_chunks} chunks)", vals_total))
    top = f"rate{max(plan.rates)}"
    cpu_vals = []
    for p in cols:
        r = R[p][top]
        if p == "direct":
            cpu_vals.append(f"({r['upstream_cpu'] / r['requests'] * 1000:.3f})" if r["requests"] else "-")
            continue
        c = r["proxy_cpu"] / r["requests"] * 1000 if r["requests"] else 0.0
        derived[p]["cpu_per_1k"] = c
        cpu_vals.append(f"{c:.3f}")
    rows.append((f"CPU s / 1,000 req (@{max(plan.rates)}/s)", cpu_vals))
    for label, key in (("RSS idle, MB", "rss_idle"), ("RSS warm, MB", "rss_warm"), ("RSS at end, MB", "rss_end")):
        vals = []
        for p in cols:
            v = R[p].get(key)
            vals.append("-" if v is None else ("(shared)" if v == "shared" else f"{v:.1f}"))
        rows.append((label, vals))
    vals = []
    for p in cols:
        n = R[p].get("served")
        vals.append("-" if not n else ("(shared)" if n == "shared" else f"{n:,}"))
    rows.append(("  requests served at end", vals))
    vals = []
    for p in cols:
        w, e = R[p].get("rss_warm"), R[p].get("rss_end")
        if isinstance(w, float) and isinstance(e, float) and w:
            derived[p]["rss_growth"] = (e - w) / w * 100
            vals.append(f"{(e - w) / w * 100:+.1f}%")
        else:
            vals.append("-")
    rows.append(("RSS growth warm -> end", vals))

    width0 = max(len(r[0]) for r in rows)
    widths = [max(len(TITLES[p]), *(len(r[1][i]) for r in rows)) for i, p in enumerate(cols)]
    lines = [f"{'':<{width0}}  " + "  ".join(f"{TITLES[p]:>{w}}" for p, w in zip(cols, widths, strict=True))]
    lines.append("-" * len(lines[0]))
    for label, vals in rows:
        lines.append(f"{label:<{width0}}  " + "  ".join(f"{v:>{w}}" for v, w in zip(vals, widths, strict=True)))
    return lines, derived


def ratio_lines(b: Bench, derived: dict[str, dict[str, Any]]) -> list[str]:
    out: list[str] = []
    same, pt, ll, cross, fb = (derived.get(k) for k in ("same", "passthrough", "litellm", "cross", "fallback"))

    def r(a: float | None, c: float | None) -> str:
        if a is None or c is None or c <= 0:
            return "n/a"
        return f"{a / c:.2f}x"

    def check(ok: bool | None) -> str:
        return "n/a" if ok is None else ("met" if ok else "NOT met")

    if same and pt:
        out.append("Switchyard same-protocol vs the bare pass-through (same run):")
        for rate in b.plan.rates:
            for pct, limit in (("p50", 1.3), ("p99", 1.5)):
                a, c = same.get(f"added_{pct}_{rate}"), pt.get(f"added_{pct}_{rate}")
                ok = None if a is None or c is None or c <= 0 else a / c <= limit
                out.append(f"  added {pct} @{rate}/s: {r(a, c)} (target <= {limit}x: {check(ok)})")
        a, c = same.get("rps"), pt.get("rps")
        out.append(f"  throughput: {r(a, c)} (raw; the proxies' shares of core 1 differ, see checks)")
        a, c = same.get("rps_per_core"), pt.get("rps_per_core")
        if a and c:
            out.append(f"  throughput per proxy CPU-second: {r(a, c)} (target >= 0.70x: {check(a / c >= 0.7)})")
        a, c = same.get("ttfb_overhead"), pt.get("ttfb_overhead")
        ok = None if a is None or c is None else a - c <= 300
        gap = _ms(a - c) if a is not None and c is not None else "n/a"
        out.append(f"  stream time to first content, over direct: {_ms(a)} ms vs {_ms(c)} ms, {gap} ms more "
                   f"(target <= 0.30 ms more: {check(ok)})")
        a, c = same.get("cpu_per_1k"), pt.get("cpu_per_1k")
        out.append(f"  CPU per request: {r(a, c)}")
    if same and cross:
        rate = b.plan.rates[0]
        a, c = cross.get(f"added_p50_{rate}"), same.get(f"added_p50_{rate}")
        if a is not None and c is not None:
            out.append(f"cross-protocol on top of same-protocol, p50 @{rate}/s: {_ms(a - c)} ms "
                       f"(target <= 0.30 ms: {check(a - c <= 300)})")
    if same and fb:
        rate = b.plan.rates[0]
        a, c = fb.get(f"added_p50_{rate}"), same.get(f"added_p50_{rate}")
        if a is not None and c is not None:
            out.append(f"one 429 fallback hop on top of same-protocol, p50 @{rate}/s: {_ms(a - c)} ms "
                       f"(target <= 0.30 ms: {check(a - c <= 300)})")
    if same and "same" in b.results:
        idle = b.results["same"].get("rss_idle")
        if isinstance(idle, float):
            out.append(f"Switchyard RSS idle: {idle:.1f} MB (target <= 50 MB: {check(idle <= 50)})")
        g = same.get("rss_growth")
        if g is not None:
            served = b.results["same"].get("served", 0)
            ok = check(g <= 1) if served >= 100_000 else f"n/a: only {served:,} requests"
            out.append(f"Switchyard RSS growth after {served:,} requests: {g:+.1f}% (target: none, <= 1%: {ok})")
    if same and ll:
        rate = b.plan.rates[0]
        out.append("LiteLLM vs Switchyard same-protocol (same run):")
        out.append(f"  added p50 @{rate}/s: LiteLLM {r(ll.get(f'added_p50_{rate}'), same.get(f'added_p50_{rate}'))}"
                   f" Switchyard's")
        out.append(f"  throughput: Switchyard {r(same.get('rps'), ll.get('rps'))} LiteLLM's (target >= 15x: "
                   f"{check(None if not ll.get('rps') else same.get('rps', 0) / ll['rps'] >= 15)})")
        out.append(f"  CPU per request: LiteLLM {r(ll.get('cpu_per_1k'), same.get('cpu_per_1k'))} Switchyard's")
        ri, si = b.results["litellm"].get("rss_idle"), b.results["same"].get("rss_idle")
        if isinstance(ri, float) and isinstance(si, float):
            out.append(f"  RSS idle: LiteLLM {r(ri, si)} Switchyard's")
    return out


def check_lines(b: Bench) -> list[str]:
    """Was the load generator (and core 0) ever the bottleneck? And was the box quiet?"""
    out = []
    worst_others = 0.0
    for p, res in b.results.items():
        t = res["throughput"]
        gen = t["gen_cpu"] / t["wall"] * 100
        core0 = (t["gen_cpu"] + t["upstream_cpu"]) / t["wall"] * 100
        proxy = t["proxy_cpu"] / t["wall"] * 100
        note = ""
        if p != "direct" and proxy < 90 and core0 > 90:
            note = "  <- core 0 (generator + upstream) saturated: throughput understated"
        elif p == "direct":
            note = "  (direct: core 0 is the limit by design)"
        out.append(f"  {TITLES[p]:>12} @c16: load generator {gen:5.1f}% of a core, core 0 total {core0:5.1f}%, "
                   f"proxy {proxy:5.1f}%{note}")
        for key in res:
            if key.startswith("rate") or key == "throughput":
                worst_others = max(worst_others, res[key]["others_cpu"] / res[key]["wall"] * 100)
    out.append(f"  other processes on the machine: up to {worst_others:.0f}% of a core during a measurement"
               + ("  <- a shared/noisy box: compare only figures from the same run" if worst_others > 10 else ""))
    return out


# ------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="~10 s smoke run: 1-second loads, 3 short streams, no soak")
    ap.add_argument("--paths", default=",".join(PATHS),
                    help=f"comma-separated subset of {','.join(PATHS)} (default: all); 'direct' is always measured")
    ap.add_argument("--switchyard-only", action="store_true", help="only direct and the Switchyard paths (CI smoke)")
    ap.add_argument("--no-install", action="store_true", help="never run apt-get or pip (missing tools are skipped)")
    ap.add_argument("--loadgen", choices=("auto", "wrk", "python"), default="auto",
                    help="load generator: wrk when available (auto), or the bench's own Python one")
    ap.add_argument("--json", help="also write every figure to this file")
    ap.add_argument("--keep", action="store_true", help="keep the work dir (logs, manifests) and print where")
    args = ap.parse_args(argv)

    ensure_repo_python()
    plan = QUICK if args.quick else FULL
    wanted = [p.strip() for p in args.paths.split(",") if p.strip()]
    if args.switchyard_only:
        wanted = ["direct", *SWITCHYARD_PATHS]
    unknown = set(wanted) - set(PATHS)
    if unknown:
        ap.error(f"unknown path(s): {', '.join(sorted(unknown))}")
    if "direct" not in wanted:
        wanted.insert(0, "direct")
    order = [p for p in PATHS if p in wanted]
    started = time.monotonic()

    notes: list[str] = []
    if args.loadgen == "python":
        wrk, note = None, "bench/pyclient.py (asked for with --loadgen python)"
    else:
        wrk, note = find_wrk(not args.no_install)
        if wrk is None and args.loadgen == "wrk":
            ap.error(note)
    notes.append(f"load generator: {note}" + ("; fixed rates paced by bench/wrk_post.lua (Debian's wrk has no -R)" if wrk else ""))
    litellm: Path | None = None
    if "litellm" in order:
        litellm, note = ensure_litellm(not args.no_install)
        notes.append(f"LiteLLM: {note}")
        if litellm is None:
            order.remove("litellm")
            say(note)
    cores = os.cpu_count() or 1
    pin = cores >= 2 and shutil.which("taskset") is not None
    notes.append("pinning: upstream + load generator on core 0, proxy on core 1 (taskset)" if pin
                 else "pinning: none (fewer than 2 cores or no taskset): figures are not comparable with pinned runs")
    core_proxy = 1 if pin else None
    core_zero = 0 if pin else None

    workdir = Path(tempfile.mkdtemp(prefix="switchyard-bench-"))
    bench = Bench(plan, workdir, wrk, pin=pin)
    py = sys.executable
    env_sy = {**os.environ, "PYTHONUNBUFFERED": "1"}

    def cleanup(*_a: Any) -> None:
        Proc.stop_all()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)

    signal.signal(signal.SIGTERM, lambda *_a: (cleanup(), sys.exit(143)))
    try:
        up = Proc("upstream", [py, str(BENCH / "upstream.py"), "--stream-chunks", str(plan.stream_chunks),
                               "--stream-chunk-delay-ms", str(plan.stream_chunk_delay_ms)], core_zero, workdir)
        bench.upstream = up
        port = int(up.wait_for(r"PORT (\d+)", 30).group(1))
        origin = f"http://127.0.0.1:{port}"

        def body(name: str, model: str) -> Path:
            req = {"model": model, "max_tokens": 64,
                   "messages": [{"role": "user", "content": "Say hello in one short sentence."}]}
            path = workdir / f"{name}.json"
            path.write_text(json.dumps(req))
            (workdir / f"stream-{name}.json").write_text(json.dumps({**req, "stream": True}))
            return path

        # direct
        t = Target("direct", f"{origin}/openai/v1/chat/completions", f"{origin}/stream/v1/chat/completions",
                   body("direct", "gpt-sim"), None)
        bench.measure(t, rss=False)

        if "passthrough" in order:
            pt = Proc("passthrough", [py, str(BENCH / "passthrough.py"), "--upstream", origin], core_proxy, workdir)
            pport = int(pt.wait_for(r"PORT (\d+)", 30).group(1))
            t = Target("passthrough", f"http://127.0.0.1:{pport}/openai/v1/chat/completions",
                       f"http://127.0.0.1:{pport}/stream/v1/chat/completions", body("passthrough", "gpt-sim"), pt)
            bench.measure(t, rss=True)
            bench.soak(t, plan.soak_requests)
            bench.results["passthrough"]["rss_end"] = rss_mb(pt.pid)
            bench.results["passthrough"]["served"] = bench.served.get(pt.pid, 0)
            pt.stop()

        sy_paths = [p for p in SWITCHYARD_PATHS if p in order]
        if sy_paths:
            folder = workdir / "manifests"
            folder.mkdir()
            (folder / "bench.yaml").write_text(manifests(origin))
            wire = switchyard_config(folder)
            sy = Proc("switchyard", [str(Path(py).parent / "switchyard"), "sidecar", "--port", "0", "--admin-host",
                                     "127.0.0.1", "--admin-port", "0"], core_proxy, workdir, env=env_sy)
            m = sy.wait_for(r"API on 127\.0\.0\.1:(\d+), admin on 127\.0\.0\.1:(\d+)", 30)
            api, admin = int(m.group(1)), int(m.group(2))
            req = urllib.request.Request(f"http://127.0.0.1:{admin}/admin/config", data=wire, method="PUT",
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=10) as r:
                if r.status != 200:
                    raise RuntimeError(f"config push answered {r.status}")
            first = True
            for p in sy_paths:
                alias = {"same": "bench-same", "cross": "bench-cross", "fallback": "bench-fallback"}[p]
                t = Target(p, f"http://127.0.0.1:{api}/v1/chat/completions",
                           f"http://127.0.0.1:{api}/v1/chat/completions" if p == "same" else None, body(p, alias), sy)
                if p == "same":
                    (workdir / "stream-same.json").write_text(json.dumps(
                        {**json.loads((workdir / "same.json").read_text()), "model": "bench-stream", "stream": True}))
                bench.measure(t, rss=first)
                if not first:
                    for k in ("rss_idle", "rss_warm", "rss_end", "served"):
                        bench.results[p][k] = "shared"
                first = False
            key = sy_paths[0]
            # Warm once every column has run: each loads its protocol's adapter on first use
            # (lazy), which is not growth.
            bench.results[key]["rss_warm"] = rss_mb(sy.pid)
            same_t = Target("same", f"http://127.0.0.1:{api}/v1/chat/completions", None, workdir / "same.json", sy)
            bench.soak(same_t, plan.soak_requests)
            bench.results[key]["rss_end"] = rss_mb(sy.pid)
            bench.results[key]["served"] = bench.served.get(sy.pid, 0)
            sy.stop()

        if litellm is not None:
            cfg = workdir / "litellm.yaml"
            cfg.write_text(litellm_config(origin))
            lport = free_port()
            env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "LITELLM_MASTER_KEY")}
            env.update(LITELLM_TELEMETRY="False", LITELLM_LOCAL_MODEL_COST_MAP="True", PYTHONUNBUFFERED="1",
                       DISABLE_ADMIN_UI="True", NO_DOCS="True")
            ll = Proc("litellm", [str(litellm), "--config", str(cfg), "--host", "127.0.0.1", "--port", str(lport),
                                  "--num_workers", "1"], core_proxy, workdir, env=env)
            deadline = time.monotonic() + 180
            while http_get(f"http://127.0.0.1:{lport}/health/liveliness") != 200:
                if ll.p.poll() is not None or time.monotonic() > deadline:
                    tail = ll.log.read_text(errors="replace")[-1500:]
                    raise RuntimeError(f"LiteLLM did not start:\n{tail}")
                time.sleep(0.5)
            time.sleep(1.0)  # let its start-up tasks settle before reading the idle RSS
            t = Target("litellm", f"http://127.0.0.1:{lport}/v1/chat/completions",
                       f"http://127.0.0.1:{lport}/v1/chat/completions", body("litellm", "bench-same"), ll)
            (workdir / "stream-litellm.json").write_text(json.dumps(
                {**json.loads((workdir / "litellm.json").read_text()), "model": "bench-stream", "stream": True}))
            bench.measure(t, rss=True)
            bench.results["litellm"]["rss_end"] = rss_mb(ll.pid)
            bench.results["litellm"]["served"] = bench.served.get(ll.pid, 0)
            ll.stop()
        up.stop()
    except BaseException:
        if args.keep:
            say(f"work dir kept: {workdir}")
        cleanup()
        raise

    elapsed = time.monotonic() - started
    table, derived = build_table(bench, order)
    mode = "QUICK (smoke: 1-second loads; figures only indicative)" if args.quick else "full"
    print()
    print(f"Switchyard side-by-side benchmark - {mode} run, {elapsed:.0f} s")
    print(f"machine: {cores} cores, {cpu_model()}, Python {sys.version.split()[0]}")
    for n in notes:
        print(n)
    print("added latency = the path's percentile minus direct's at the same rate (direct's own in parentheses);")
    print("  * = the path could not keep that rate (its latency there is mostly queueing)")
    print()
    print("\n".join(table))
    print()
    print("\n".join(ratio_lines(bench, derived)))
    print()
    print("checks:")
    print("\n".join(check_lines(bench)))
    if args.json:
        Path(args.json).write_text(json.dumps({"plan": plan.__dict__, "notes": notes, "results": bench.results,
                                               "derived": derived, "elapsed": elapsed}, indent=1, default=str))
    if args.keep:
        say(f"work dir kept: {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
