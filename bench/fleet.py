#!/usr/bin/env python3
"""Beyond one pod: N sidecars on one upstream, and the operator with N pods.

    python3 bench/fleet.py            # N = 1, 2, 4 sidecars; operator with 1 / 10 / 100 / 1,000 pods (~2.5 min)
    python3 bench/fleet.py --quick    # N = 1, 2; 1 / 10 / 100 pods; 1-second loads (~20 s; figures indicative)

A sidecar per app pod scales with the app. What this measures is what each added pod
costs, and where (docs/performance.md, "Beyond one pod" has one run and the model at 1,000 pods):

1. **Sidecars** (``--sidecars 1,2,4``). One simulator upstream (``/openai``, and
   ``/down`` answering 503 to everything, list-models included), and N
   ``switchyard sidecar`` processes that read the same config the way a pod does: the
   namespace's config Secret (``bundle.json``, written by the operator's own reconcile
   against an in-memory API server) mounted as a folder, and a downward-API labels
   file (``--config-dir``, ``--labels-file``). For each N:

   - a fixed total load (``--rate`` req/s in all, spread evenly: R/N per sidecar, one
     wrk per sidecar) and a saturation run (``16/N`` connections per sidecar, unpaced):
     each sidecar's CPU per 1,000 requests, total req/s, RSS per sidecar, and the
     upstream's view: its established connections (peak during the run, and still open
     after it, from /proc/net/tcp) and its requests;
   - an open tier: a binding whose primary is ``/down`` (breaker cooldown 1 s, max 2 s,
     so the prompt-free checks come every few seconds instead of every 300), opened in
     every sidecar by four requests each (they fall back and are served), then a quiet
     window: the list-models checks counted *at the simulator* (its fault's hit
     counter), per minute, and each sidecar's idle CPU (prober loop + config-file watch).

   With two cores or more the sidecars run on core 1 and the upstream and load
   generators on core 0 (``taskset``), as in bench/run.py: N sidecars then share one
   core, so the total saturation rate cannot grow with N here; the per-request cost is
   the figure that says whether sidecars share anything.

2. **Operator** (``--pods 1,10,100,1000``), with its own code and no cluster: the
   ``Reconciler`` of ``switchyard.operator.reconciler`` over an in-memory index (one
   namespace, two sources, two bindings selecting every pod) and a fake API server that
   counts writes (config Secret writes, status patches, pod annotations, Events). The N
   emulated pods all point their admin URL at one real sidecar (the same labels, so the
   same config and the same report), so every ``GET /admin/status`` is a real HTTP
   read of a real report. Passes measured (CPU time of this process, which runs only the
   operator then): the first after a start, the steady poll (no change), a poll after
   traffic (a binding's ``active.lastUsedAt`` moved), a binding change before the pods'
   volumes are refreshed, and the pass after they are.

Nothing here is asserted except that the operator wrote what its code says it writes;
figures move on a shared machine: compare only figures of one run.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import dataclasses
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
sys.path.insert(0, str(REPO))  # this tree's switchyard, as the sidecars it starts use (PYTHONPATH)


def _ensure_repo_python() -> None:
    """Re-run with the repo's venv when this interpreter cannot import Switchyard."""
    try:
        import switchyard.operator.reconciler  # noqa: F401
        import uvloop  # noqa: F401

        return
    except ImportError:
        pass
    venv_python = REPO / ".venv" / "bin" / "python"
    if not venv_python.exists() or Path(sys.prefix).resolve() == (REPO / ".venv").resolve():
        sys.exit("bench/fleet.py: run it with the repo's venv (make .venv/bin/.installed), or PYTHONPATH=<repo>")
    os.execv(str(venv_python), [str(venv_python), str(Path(__file__).resolve()), *sys.argv[1:]])


if __name__ == "__main__" and sys.argv[1:2] != ["upstream"]:
    _ensure_repo_python()

sys.path.insert(0, str(BENCH))
import run as common  # bench/run.py: process handling, /proc readers, wrk

NS = "team"
LABELS = {"app": "fleet"}
SAME, DOWN = "fleet-same", "fleet-down"
AUTH = "Bearer sk-bench-0123456789abcdef0123456789abcdef"
# The open tier's breaker in the bench: short, so its prompt-free checks show in seconds.
BENCH_COOLDOWN_SECONDS, BENCH_MAX_COOLDOWN_SECONDS = 1, 2


def say(msg: str) -> None:
    print(f"[fleet] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------ the upstream


async def _upstream_main() -> None:
    from switchyard.simulator import Mount, Simulator

    sim = Simulator(Mount("openai"), Mount("down", flavour="openai"), record_limit=0)
    # /down is an upstream that is down: 503 to generation and to list-models, so an open
    # tier stays open and its checks keep coming. Each fault's `hits` counts what it got.
    sim.fault("down", 503, persistent=True, endpoint="generate")
    sim.fault("down", 503, persistent=True, endpoint="models")
    await sim.start()
    print(f"PORT {sim.port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await sim.close()


def down_hits(origin: str) -> dict[str, int]:
    """What /down received, by endpoint, from the simulator's control API."""
    with urllib.request.urlopen(f"{origin}/_sim/down/faults", timeout=5) as r:
        faults = json.loads(r.read())
    if isinstance(faults, dict):
        faults = faults.get("faults", [])
    return {f["endpoint"]: int(f["hits"]) for f in faults}


def upstream_requests(origin: str) -> int:
    with urllib.request.urlopen(f"{origin}/_sim/", timeout=5) as r:
        data = json.loads(r.read())
    mounts = data.get("mounts", data) if isinstance(data, dict) else data
    items = mounts.values() if isinstance(mounts, dict) else mounts
    return sum(int(m.get("requests", 0)) for m in items)


def cpu_exact(pid: int) -> float:
    """CPU seconds of a process's live threads from the scheduler's nanosecond counters
    (/proc/PID/task/*/schedstat): for idle processes, where /proc/PID/stat's 10 ms ticks
    are too coarse. Falls back to the ticks."""
    total, seen = 0, False
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                total += int((task / "schedstat").read_text().split()[0])
                seen = True
            except (OSError, ValueError, IndexError):
                continue
    except OSError:
        pass
    return total / 1e9 if seen else common.cpu_seconds(pid)


def established(port: int) -> int:
    """Established TCP connections whose local port is ``port`` (the server's side)."""
    n = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if f[3] == "01" and int(f[1].rsplit(":", 1)[1], 16) == port:
                n += 1
    return n


class ConnSampler:
    """The peak of ``established(port)`` while it runs (sampled every 50 ms)."""

    def __init__(self, port: int) -> None:
        self.port, self.peak = port, 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, established(self.port))
            self._stop.wait(0.05)

    def __enter__(self) -> ConnSampler:
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join(5)


# -------------------------------------------------------------- the namespace


def b64(v: str) -> str:
    return base64.b64encode(v.encode()).decode()


def _obj(kind: str, name: str, spec: dict[str, Any], generation: int = 1) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": NS, "uid": f"uid-{kind}-{name}", "generation": generation},
            "spec": spec, "status": {}}


def namespace_objects(origin: str, *, same_cooldown: int = 30, generation: int = 1) -> dict[str, list[dict[str, Any]]]:
    """Two sources on the simulator and two bindings selecting every pod labelled app=fleet:
    ``fleet-same`` (primary /openai) and ``fleet-down`` (primary /down, fallback /openai)."""
    cred = {"name": "keys", "key": "openai"}
    sources = [
        _obj("ModelSource", "sim-openai", {"provider": "openai-compatible", "baseURL": f"{origin}/openai/v1",
                                           "defaultModel": "gpt-sim", "credentialRef": cred}),
        _obj("ModelSource", "sim-down", {"provider": "openai-compatible", "baseURL": f"{origin}/down/v1",
                                         "defaultModel": "gpt-sim", "credentialRef": cred}),
    ]
    bindings = [
        _obj("AssistantBinding", SAME, {"selector": {"matchLabels": LABELS}, "primary": {"sourceRef": {"name": "sim-openai"}},
                                        "breaker": {"cooldownSeconds": same_cooldown}}, generation),
        _obj("AssistantBinding", DOWN, {"selector": {"matchLabels": LABELS}, "primary": {"sourceRef": {"name": "sim-down"}},
                                        "fallbacks": [{"sourceRef": {"name": "sim-openai"}}],
                                        "breaker": {"cooldownSeconds": BENCH_COOLDOWN_SECONDS,
                                                    "maxCooldownSeconds": BENCH_MAX_COOLDOWN_SECONDS}}),
    ]
    secret = {"metadata": {"name": "keys", "namespace": NS, "resourceVersion": "1",
                           "labels": {"switchyard.dev/credential": "true"}},
              "data": {"openai": b64("sim-openai-key")}}
    return {"sources": sources, "bindings": bindings, "secrets": [secret]}


def apply_merge(current: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """RFC 7386: what the API server stores after a merge patch."""
    out = dict(current)
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = apply_merge(out[k], v)
        else:
            out[k] = v
    return out


class FakeKube:
    """The API server calls the reconciler makes, in memory, counted. Writes come back
    into the index at once (as the watch would bring them)."""

    def __init__(self, world: Any) -> None:
        self.world = world
        self.secrets: dict[str, dict[str, Any]] = {}
        self.counts: dict[str, int] = {}
        self.patched: list[str] = []  # the objects whose status was patched, in order
        self.rv = 0

    def _count(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1

    async def get_role_binding(self, ns: str | None, name: str) -> dict[str, Any] | None:
        self._count("get_role_binding")
        return None

    async def get_secret(self, ns: str, name: str) -> dict[str, Any] | None:
        self._count("get_secret")
        return self.secrets.get(name)

    def _store(self, body: dict[str, Any]) -> dict[str, Any]:
        self.rv += 1
        stored = {**body, "metadata": {**body["metadata"], "resourceVersion": str(self.rv)}}
        self.secrets[body["metadata"]["name"]] = stored
        return stored

    async def create_secret(self, ns: str, body: dict[str, Any]) -> dict[str, Any]:
        self._count("secret_write")
        return self._store(body)

    async def replace_secret(self, ns: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        self._count("secret_write")
        return self._store(body)

    async def annotate_pod(self, ns: str, name: str, annotations: dict[str, str]) -> None:
        from switchyard.sidecar.contract.delivery import CONFIG_VERSION_ANNOTATION

        self._count("pod_annotate")
        pods = self.world.pods_by_ns[ns]
        for i, p in enumerate(pods):
            if p.name == name:
                pods[i] = dataclasses.replace(p, config_version=annotations.get(CONFIG_VERSION_ANNOTATION, p.config_version))

    async def patch_status(self, plural: str, ns: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        self._count("status_patch")
        self.patched.append(name)
        index = {"assistantbindings": self.world.bindings_by_ns, "modelsources": self.world.sources_by_ns,
                 "capabilityprofiles": self.world.profiles_by_ns}[plural][ns]
        for i, snap in enumerate(index):
            if snap.name == name:
                index[i] = dataclasses.replace(snap, status=apply_merge(snap.status, patch))
        return {}

    async def create_event(self, *a: Any) -> None:
        self._count("event")

    async def close(self) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        """An API call this fake does not know (the operator's code moves): counted, answers None."""
        if name.startswith("_"):
            raise AttributeError(name)

        async def call(*_a: Any, **_k: Any) -> None:
            self._count(f"other:{name}")

        return call

    def bundle(self) -> bytes:
        from switchyard.sidecar.contract.delivery import BUNDLE_KEY, CONFIG_SECRET

        return base64.b64decode(self.secrets[CONFIG_SECRET]["data"][BUNDLE_KEY])


def make_world(objs: dict[str, list[dict[str, Any]]], pods: list[Any]) -> Any:
    from switchyard.operator.world import World, snapshot, snapshot_secret

    return World(
        sources_by_ns={NS: [snapshot("ModelSource", o) for o in objs["sources"]]},
        bindings_by_ns={NS: [snapshot("AssistantBinding", o) for o in objs["bindings"]]},
        pods_by_ns={NS: pods},
        secrets_by_key={(NS, s["metadata"]["name"]): [snapshot_secret(s, keep_data=True)] for s in objs["secrets"]},
    )


def emulated_pods(n: int, admin_url: str | None) -> list[Any]:
    from switchyard.operator.selection import PodInfo

    return [PodInfo(NS, f"app-{i:04d}", f"uid-pod-{i}", dict(LABELS), "Running", "127.0.0.1", admin_url, f"uid-pod-{i}|1")
            for i in range(n)]


def reconciler(world: Any, kube: FakeKube) -> Any:
    from switchyard.operator.reconciler import Reconciler
    from switchyard.operator.settings import Settings

    return Reconciler(Settings(), world, kube)  # type: ignore[arg-type]


def operator_bundle(origin: str) -> bytes:
    """The namespace's config Secret content, written by one operator pass (no pods)."""
    world = make_world(namespace_objects(origin), [])
    kube = FakeKube(world)
    asyncio.run(reconciler(world, kube).reconcile_namespace(NS))
    return kube.bundle()


def write_pod_files(folder: Path, bundle: bytes) -> tuple[Path, Path]:
    """What the kubelet mounts in a pod: the config Secret's key and the labels file."""
    from switchyard.sidecar.contract.delivery import BUNDLE_KEY

    config_dir, pod_dir = folder / "config", folder / "pod"
    config_dir.mkdir(parents=True, exist_ok=True)
    pod_dir.mkdir(parents=True, exist_ok=True)
    tmp = config_dir / f".{BUNDLE_KEY}.tmp"
    tmp.write_bytes(bundle)
    tmp.replace(config_dir / BUNDLE_KEY)  # a new inode, as the kubelet's symlink swap gives
    (pod_dir / "labels").write_text("".join(f'{k}="{v}"\n' for k, v in LABELS.items()))
    return config_dir, pod_dir / "labels"


# ------------------------------------------------------------------ sidecars


@dataclasses.dataclass
class Sidecar:
    proc: common.Proc
    api: int
    admin: int

    @property
    def pid(self) -> int:
        return self.proc.pid


def start_sidecars(n: int, config_dir: Path, labels: Path, core: int | None, workdir: Path, tag: str) -> list[Sidecar]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPO)}
    argv = [sys.executable, "-m", "switchyard", "sidecar", "--port", "0", "--admin-port", "0", "--admin-host", "127.0.0.1",
            "--config-dir", str(config_dir), "--labels-file", str(labels), "--log-level", "warning"]
    procs = [common.Proc(f"sidecar-{tag}{i}", argv, core, workdir, env=env) for i in range(n)]
    out = []
    for p in procs:
        m = p.wait_for(r"API on 127\.0\.0\.1:(\d+), admin on 127\.0\.0\.1:(\d+)", 60)
        out.append(Sidecar(p, int(m.group(1)), int(m.group(2))))
    return out


def admin_status(sc: Sidecar) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{sc.admin}/admin/status", timeout=5) as r:
        return json.loads(r.read())


def wait_until(what: str, check: Any, timeout: float) -> None:
    """Poll ``check()`` until true (a bench's bounded wait for a process's state, never a test's)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)


def tier_state(status: dict[str, Any], binding: str, tier: int) -> str | None:
    for b in status.get("bindings") or []:
        if b.get("name") == binding:
            for t in b.get("tiers") or []:
                if t.get("tier") == tier:
                    return (t.get("breaker") or {}).get("state")
    return None


def chat(sc: Sidecar, model: str) -> int:
    body = json.dumps({"model": model, "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{sc.api}/v1/chat/completions", data=body, method="POST",
                                 headers={"Content-Type": "application/json", "Authorization": AUTH})
    with urllib.request.urlopen(req, timeout=10) as r:
        r.read()
        return r.status


def load_all(wrk: str | None, scs: list[Sidecar], body: Path, *, seconds: float, connections: int, rate: float | None,
             core0: list[str]) -> list[dict[str, Any]]:
    """One load generator per sidecar, all at once; each one's BENCH figures."""
    procs = []
    for sc in scs:
        url = f"http://127.0.0.1:{sc.api}/v1/chat/completions"
        if wrk:
            argv = [*core0, wrk, "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "10s",
                    "-s", str(BENCH / "wrk_post.lua"), url]
            env = {**os.environ, "BENCH_BODY": str(body), "BENCH_RATE": str(int(rate or 0))}
        else:
            argv = [*core0, sys.executable, str(BENCH / "pyclient.py"), "load", "--url", url, "--body", str(body),
                    "--duration", str(seconds), "--connections", str(connections)]
            argv += ["--rate", str(rate)] if rate else []
            env = None
        procs.append(subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env))
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=seconds + 60)
        m = re.search(r"^BENCH (\{.*\})$", stdout, re.M)
        if p.returncode != 0 or not m:
            raise RuntimeError(f"load generator failed: {stdout[-400:]} {stderr[-400:]}")
        r = json.loads(m.group(1))
        r["errors"] = sum(r[k] for k in ("err_connect", "err_read", "err_write", "err_status", "err_timeout"))
        r["rps"] = r["requests"] / (r["duration_us"] / 1e6) if r["duration_us"] else 0.0
        out.append(r)
    return out


def measure_load(wrk: str | None, scs: list[Sidecar], up: common.Proc, port: int, origin: str, body: Path, *,
                 seconds: float, connections: int, rate: float | None, core0: list[str]) -> dict[str, Any]:
    cpu0 = [common.cpu_seconds(sc.pid) for sc in scs]
    up_cpu0, up_req0 = common.cpu_seconds(up.pid), upstream_requests(origin)
    busy0, wall0 = common.machine_busy_seconds(), time.monotonic()
    with ConnSampler(port) as conns:
        runs = load_all(wrk, scs, body, seconds=seconds, connections=connections, rate=rate, core0=core0)
    wall = time.monotonic() - wall0
    busy = common.machine_busy_seconds() - busy0
    cpu = [common.cpu_seconds(sc.pid) - c for sc, c in zip(scs, cpu0, strict=True)]
    reqs = [r["requests"] for r in runs]
    return {
        "wall": wall,
        "requests": reqs,
        "errors": sum(r["errors"] for r in runs),
        "rps_total": sum(r["rps"] for r in runs),
        "p50_us": [r["p50_us"] for r in runs],
        "p99_us": [r["p99_us"] for r in runs],
        "cpu": cpu,
        "cpu_per_1k": [c / q * 1000 if q else 0.0 for c, q in zip(cpu, reqs, strict=True)],
        "upstream_cpu": common.cpu_seconds(up.pid) - up_cpu0,
        "upstream_requests": upstream_requests(origin) - up_req0,
        "conn_peak": conns.peak,
        "conn_after": established(port),
        "busy_cores": busy / wall if wall else 0.0,
    }


def fleet_run(n: int, args: argparse.Namespace, wrk: str | None, up: common.Proc, port: int, origin: str,
              config_dir: Path, labels: Path, workdir: Path, pin: bool, v1: bytes) -> dict[str, Any]:
    core1 = 1 if pin else None
    core0 = ["taskset", "-c", "0"] if pin else []
    say(f"{n} sidecar(s): starting")
    scs = start_sidecars(n, config_dir, labels, core1, workdir, f"n{n}-")
    try:
        wait_until("every sidecar to load the config files", lambda: all(runs(s, v1) for s in scs), 30)
        rss_idle = [common.rss_mb(s.pid) for s in scs]
        body = workdir / "same.json"
        body.write_text(json.dumps({"model": SAME, "max_tokens": 16,
                                    "messages": [{"role": "user", "content": "Say hello in one short sentence."}]}))
        if args.warmup:
            load_all(wrk, scs, body, seconds=args.warmup, connections=2, rate=None, core0=core0)
        say(f"{n} sidecar(s): fixed load, {args.rate} req/s in all ({args.rate / n:g} each), {args.seconds:g} s")
        fixed = measure_load(wrk, scs, up, port, origin, body, seconds=args.seconds, connections=max(2, 8 // n),
                             rate=args.rate / n, core0=core0)
        conns = args.connections or max(2, 16 // n)
        say(f"{n} sidecar(s): saturation, {conns} connections each, {args.seconds:g} s")
        sat = measure_load(wrk, scs, up, port, origin, body, seconds=args.seconds, connections=conns,
                           rate=None, core0=core0)
        rss_warm = [common.rss_mb(s.pid) for s in scs]

        # Idle, every tier closed: what a sidecar costs with no traffic (prober loop and
        # config-file watch, once a second each).
        say(f"{n} sidecar(s): idle for {args.idle_window:g} s")
        quiet0, tq = [cpu_exact(s.pid) for s in scs], time.monotonic()
        time.sleep(args.idle_window)  # the measurement window itself
        quiet = [(cpu_exact(s.pid) - c) / (time.monotonic() - tq) * 60 * 1000 for s, c in zip(scs, quiet0, strict=True)]

        # The open tier: four requests open fleet-down's primary in each sidecar (they are
        # served by the fallback), then a quiet window counts its checks at the simulator.
        for sc in scs:
            for _ in range(4):
                chat(sc, DOWN)
        wait_until("fleet-down's primary to be open in every sidecar",
                   lambda: all(tier_state(admin_status(s), DOWN, 0) == "open" for s in scs), 15)
        hits0, t0 = down_hits(origin), time.monotonic()
        idle0 = [cpu_exact(s.pid) for s in scs]
        conn_idle = established(port)
        say(f"{n} sidecar(s): open tier, counting its prompt-free checks for {args.probe_window:g} s")
        time.sleep(args.probe_window)  # the measurement window itself (nothing waits on it)
        hits1, window = down_hits(origin), time.monotonic() - t0
        idle_cpu = [cpu_exact(s.pid) - c for s, c in zip(scs, idle0, strict=True)]
        probes = hits1.get("models", 0) - hits0.get("models", 0)
        gen_leak = hits1.get("generate", 0) - hits0.get("generate", 0)
        return {
            "n": n, "rss_idle": rss_idle, "rss_warm": rss_warm, "fixed": fixed, "sat": sat,
            "probe_window": window, "probes": probes, "probes_per_min": probes / window * 60,
            "generate_to_open_tier": gen_leak, "quiet_cpu_ms_per_min": quiet, "idle_cpu_ms_per_min": [c / window * 60 * 1000 for c in idle_cpu],
            "conn_idle": conn_idle,
        }
    finally:
        for sc in scs:
            sc.proc.stop()


# ------------------------------------------------------------------ operator


class AdminCounter:
    """Counts the reconciler's admin-API calls (aiohttp's tracing, on its session)."""

    def __init__(self) -> None:
        import aiohttp

        self.calls: dict[str, int] = {}
        self.trace = aiohttp.TraceConfig()

        async def start(_session: Any, _ctx: Any, params: Any) -> None:
            key = f"{params.method} {params.url.path}"
            self.calls[key] = self.calls.get(key, 0) + 1

        self.trace.on_request_start.append(start)


def _diff(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: after.get(k, 0) - before.get(k, 0) for k in set(after) | set(before) if after.get(k, 0) != before.get(k, 0)}


async def operator_run(n: int, origin: str, sc: Sidecar, sc_files: tuple[Path, Path], v1: bytes, rounds: int) -> dict[str, Any]:
    """The reconciler with n emulated pods: each kind of pass, its CPU and what it wrote."""
    import aiohttp

    objs = namespace_objects(origin)
    world = make_world(objs, emulated_pods(n, f"http://127.0.0.1:{sc.admin}"))
    kube = FakeKube(world)
    rec = reconciler(world, kube)
    counter = AdminCounter()
    rec.session = aiohttp.ClientSession(trust_env=False, trace_configs=[counter.trace])
    passes: dict[str, dict[str, Any]] = {}

    async def one(kind: str) -> dict[str, Any]:
        k0, a0, p0 = dict(kube.counts), dict(counter.calls), len(kube.patched)
        s0 = cpu_exact(sc.pid)
        c0, w0 = time.process_time(), time.perf_counter()
        await rec.reconcile_namespace(NS)
        cpu, wall = time.process_time() - c0, time.perf_counter() - w0
        out = {"cpu": cpu, "wall": wall, "kube": _diff(kube.counts, k0), "admin": _diff(counter.calls, a0),
               "patched": sorted(kube.patched[p0:]),
               "sidecar_cpu": cpu_exact(sc.pid) - s0}
        passes.setdefault(kind, []).append(out)  # type: ignore[attr-defined]
        return out

    try:
        await one("first")
        if kube.bundle() != v1:
            raise RuntimeError("the operator's config Secret differs from the one the sidecar mounts")
        for _ in range(rounds):
            await one("steady")
        # Traffic: the binding's active tier gets a newer lastUsedAt (seconds precision).
        sec = int(time.time())
        await asyncio.to_thread(wait_until, "the next wall-clock second", lambda: int(time.time()) > sec, 2)
        await asyncio.to_thread(chat, sc, SAME)
        await one("after traffic")
        # A binding changes (its breaker's cooldown): new generation, new bundle.
        changed = namespace_objects(origin, same_cooldown=31, generation=2)["bindings"][0]
        from switchyard.operator.world import snapshot

        world.bindings_by_ns[NS][:] = [snapshot("AssistantBinding", changed) if b.name == SAME else b
                                       for b in world.bindings_by_ns[NS]]
        await one("binding changed")
        v2 = kube.bundle()
        # The kubelet refreshes the mounted Secret; the sidecar reads it within its watch interval.
        write_pod_files(sc_files[0].parent, v2)
        await asyncio.to_thread(wait_until, "the sidecar to load the new config files", lambda: runs(sc, v2), 10)
        await one("volumes refreshed")
    finally:
        await rec.session.close()
        # Back to the first config for the next n.
        write_pod_files(sc_files[0].parent, v1)
        await asyncio.to_thread(wait_until, "the sidecar to load the first config again", lambda: runs(sc, v1), 10)
    return {"n": n, "passes": passes}


def pod_version(bundle: bytes) -> str:
    """The config version a pod labelled LABELS runs from this bundle (the sidecar's own function)."""
    from switchyard.sidecar.contract.delivery import ConfigBundle, assemble

    return assemble(ConfigBundle.from_file(bundle), dict(LABELS)).version


def runs(sc: Sidecar, bundle: bytes) -> bool:
    st = admin_status(sc)
    return st.get("version") == pod_version(bundle) and not st.get("config_error")


# ------------------------------------------------------------------ output


def _f(v: float, d: int = 1) -> str:
    return f"{v:,.{d}f}"


def _spread(vals: list[float], d: int = 3) -> str:
    if len(vals) == 1:
        return _f(vals[0], d)
    return f"{_f(statistics.mean(vals), d)} ({_f(min(vals), d)}-{_f(max(vals), d)})"


def table(rows: list[tuple[str, list[str]]], heads: list[str]) -> list[str]:
    w0 = max(len(r[0]) for r in rows)
    widths = [max(len(h), *(len(r[1][i]) for r in rows)) for i, h in enumerate(heads)]
    lines = [f"{'':<{w0}}  " + "  ".join(f"{h:>{w}}" for h, w in zip(heads, widths, strict=True))]
    lines.append("-" * len(lines[0]))
    for label, vals in rows:
        lines.append(f"{label:<{w0}}  " + "  ".join(f"{v:>{w}}" for v, w in zip(vals, widths, strict=True)))
    return lines


def fleet_table(results: list[dict[str, Any]], args: argparse.Namespace) -> list[str]:
    heads = [f"N={r['n']}" for r in results]
    rows: list[tuple[str, list[str]]] = []
    for key, title in (("fixed", f"fixed load, {args.rate:g} req/s in all"), ("sat", f"saturation, {args.connections or '16/N'} connections each")):
        rows.append((f"{title}:", ["" for _ in results]))
        rows.append(("  total req/s", [_f(r[key]["rps_total"], 0) for r in results]))
        rows.append(("  CPU s / 1,000 req per sidecar, mean (min-max)", [_spread(r[key]["cpu_per_1k"]) for r in results]))
        rows.append(("  p50 / p99 latency, ms (worst sidecar)",
                     [f"{max(r[key]['p50_us']) / 1000:.2f} / {max(r[key]['p99_us']) / 1000:.2f}" for r in results]))
        rows.append(("  upstream requests", [f"{r[key]['upstream_requests']:,}" for r in results]))
        rows.append(("  upstream CPU s / 1,000 req",
                     [_f(r[key]["upstream_cpu"] / max(1, r[key]["upstream_requests"]) * 1000, 3) for r in results]))
        rows.append(("  upstream connections: peak / open after", [f"{r[key]['conn_peak']} / {r[key]['conn_after']}" for r in results]))
        rows.append(("  errors", [str(r[key]["errors"]) for r in results]))
    rows.append(("idle sidecar CPU, ms per minute (each), tiers closed", [_spread(r["quiet_cpu_ms_per_min"], 1) for r in results]))
    rows.append(("RSS per sidecar, MB: idle", [_spread(r["rss_idle"], 1) for r in results]))
    rows.append(("RSS per sidecar, MB: after the loads", [_spread(r["rss_warm"], 1) for r in results]))
    rows.append((f"open tier (cooldown {BENCH_COOLDOWN_SECONDS} s, max {BENCH_MAX_COOLDOWN_SECONDS} s):", ["" for _ in results]))
    rows.append(("  checks at the upstream, per minute", [_f(r["probes_per_min"], 0) for r in results]))
    rows.append(("  ... per sidecar per minute", [_f(r["probes_per_min"] / r["n"], 1) for r in results]))
    rows.append(("  user requests sent to the open tier", [str(r["generate_to_open_tier"]) for r in results]))
    rows.append(("  idle sidecar CPU, ms per minute (each), checks included", [_spread(r["idle_cpu_ms_per_min"], 1) for r in results]))
    rows.append(("  upstream connections while idle", [str(r["conn_idle"]) for r in results]))
    return table(rows, heads)


def _short(name: str) -> str:
    return {SAME: "s", DOWN: "d"}.get(name, name)


def operator_table(results: list[dict[str, Any]]) -> list[str]:
    heads = [f"{r['n']:,} pods" for r in results]
    rows: list[tuple[str, list[str]]] = []
    kinds = ("first", "steady", "after traffic", "binding changed", "volumes refreshed")
    for kind in kinds:
        rows.append((f"{kind} pass:", ["" for _ in results]))
        ps = [r["passes"][kind] for r in results]
        rows.append(("  operator CPU ms (median)", [_f(statistics.median(x["cpu"] for x in p) * 1000) for p in ps]))
        rows.append(("  operator CPU us per pod", [_f(statistics.median(x["cpu"] for x in p) * 1e6 / r["n"], 0)
                                                   for p, r in zip(ps, results, strict=True)]))
        rows.append(("  wall ms", [_f(statistics.median(x["wall"] for x in p) * 1000) for p in ps]))
        last = [p[-1] for p in ps]
        rows.append(("  GET /admin/status", [str(x["admin"].get("GET /admin/status", 0)) for x in last]))
        rows.append(("  config Secret writes", [str(x["kube"].get("secret_write", 0)) for x in last]))
        rows.append(("  status patches (bindings: s = fleet-same, d = fleet-down)",
                     [f"{x['kube'].get('status_patch', 0)}" + (f" ({','.join(_short(n) for n in x['patched'])})" if x["patched"] else "")
                      for x in last]))
        rows.append(("  pod annotations (kubelet nudges)", [str(x["kube"].get("pod_annotate", 0)) for x in last]))
        other = [sum(v for k, v in x["kube"].items() if k not in ("secret_write", "status_patch", "pod_annotate"))
                 + sum(v for k, v in x["admin"].items() if k != "GET /admin/status") for x in last]
        rows.append(("  other API calls (Secret reads, Events, admin writes)", [str(o) for o in other]))
    steady = [r["passes"]["steady"] for r in results]
    rows.append(("sidecar CPU us per status read (steady)",
                 [_f(statistics.median(x["sidecar_cpu"] for x in p) * 1e6 / r["n"], 0) for p, r in zip(steady, results, strict=True)]))
    return table(rows, heads)


# ------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke run: N = 1, 2; 1 / 10 / 100 pods; 1-second loads")
    ap.add_argument("--sidecars", default=None, help="comma-separated sidecar counts (default 1,2,4; quick 1,2)")
    ap.add_argument("--pods", default=None, help="comma-separated emulated pod counts (default 1,10,100,1000; quick 1,10,100)")
    ap.add_argument("--rate", type=float, default=None, help="total offered req/s of the fixed load (default 400; quick 200)")
    ap.add_argument("--seconds", type=float, default=None, help="length of each load (default 5; quick 1)")
    ap.add_argument("--probe-window", type=float, default=None, help="seconds the open tier's checks are counted (default 20; quick 3)")
    ap.add_argument("--idle-window", type=float, default=None, help="seconds of idle CPU measured, tiers closed (default 10; quick 1)")
    ap.add_argument("--connections", type=int, default=None, help="connections per sidecar in the saturation run (default 16/N)")
    ap.add_argument("--loadgen", choices=("auto", "wrk", "python"), default="auto")
    ap.add_argument("--skip-operator", action="store_true")
    ap.add_argument("--skip-sidecars", action="store_true")
    ap.add_argument("--json", help="also write every figure to this file")
    ap.add_argument("--keep", action="store_true", help="keep the work dir (logs, config files)")
    args = ap.parse_args(argv)
    q = args.quick
    sizes = [int(s) for s in (args.sidecars or ("1,2" if q else "1,2,4")).split(",")]
    pod_counts = [int(s) for s in (args.pods or ("1,10,100" if q else "1,10,100,1000")).split(",")]
    args.rate = args.rate or (200.0 if q else 400.0)
    args.seconds = args.seconds or (1.0 if q else 5.0)
    args.probe_window = args.probe_window or (3.0 if q else 20.0)
    args.idle_window = args.idle_window or (1.0 if q else 10.0)
    args.warmup = 0 if q else 1
    rounds = 1 if q else 3
    started = time.monotonic()

    if args.loadgen == "python":
        wrk, note = None, "bench/pyclient.py (--loadgen python)"
    else:
        wrk, note = common.find_wrk(False)
        if wrk is None and args.loadgen == "wrk":
            ap.error(note)
    cores = os.cpu_count() or 1
    pin = cores >= 2 and shutil.which("taskset") is not None
    workdir = Path(tempfile.mkdtemp(prefix="switchyard-fleet-"))
    py = sys.executable
    fleet: list[dict[str, Any]] = []
    ops: list[dict[str, Any]] = []
    op_error: str | None = None
    try:
        up = common.Proc("upstream", [py, str(Path(__file__).resolve()), "upstream"], 0 if pin else None, workdir,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
        port = int(up.wait_for(r"PORT (\d+)", 30).group(1))
        origin = f"http://127.0.0.1:{port}"
        v1 = operator_bundle(origin)
        config_dir, labels = write_pod_files(workdir / "mount", v1)
        if not args.skip_sidecars:
            for n in sizes:
                fleet.append(fleet_run(n, args, wrk, up, port, origin, config_dir, labels, workdir, pin, v1))
        if not args.skip_operator:
            op_dir = workdir / "op-mount"
            op_files = write_pod_files(op_dir, v1)
            [sc] = start_sidecars(1, *op_files, 1 if pin else None, workdir, "op-")
            wait_until("the operator-phase sidecar to load its config", lambda: runs(sc, v1), 30)
            for _ in range(4):  # its fleet-down primary open, so the reports carry an open tier
                chat(sc, DOWN)
            chat(sc, SAME)
            if pin:
                os.sched_setaffinity(0, {0})  # the operator (this process) on core 0, its sidecar on core 1
            for n in pod_counts:
                say(f"operator: {n} emulated pod(s)")
                try:
                    ops.append(asyncio.run(operator_run(n, origin, sc, op_files, v1, rounds)))
                except Exception as e:  # the operator's code moves under other branches: say it, go on
                    op_error = f"{n} pods: {type(e).__name__}: {e}"
                    say(f"operator phase failed: {op_error}")
                    break
            if pin:
                os.sched_setaffinity(0, set(range(cores)))
            sc.proc.stop()
        up.stop()
    except BaseException:
        common.Proc.stop_all()
        if args.keep:
            say(f"work dir kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
        raise

    elapsed = time.monotonic() - started
    mode = "QUICK (smoke: 1-second loads; figures only indicative)" if q else "full"
    print()
    print(f"Switchyard fleet benchmark - {mode} run, {elapsed:.0f} s")
    print(f"machine: {cores} cores, {common.cpu_model()}, Python {sys.version.split()[0]}; load generator: {note}")
    print("pinning: " + ("sidecars on core 1 (N share it), upstream + load generators + operator on core 0" if pin
                         else "none (fewer than 2 cores or no taskset)"))
    if fleet:
        print()
        print("N sidecars, one upstream (each sidecar reads the same mounted config Secret):")
        print("\n".join(fleet_table(fleet, args)))
        busy = max(max(r["fixed"]["busy_cores"], r["sat"]["busy_cores"]) for r in fleet)
        print(f"checks: the machine was busy {busy:.2f} cores at most during a load (of {cores}); "
              "other processes' share moves absolute figures")
    if ops:
        print()
        print("Operator, one namespace, 2 bindings selecting N emulated pods (one real sidecar answers their status reads):")
        print("\n".join(operator_table(ops)))
    if op_error:
        print(f"operator phase incomplete: {op_error}")
    if args.json:
        Path(args.json).write_text(json.dumps({"fleet": fleet, "operator": ops, "operator_error": op_error,
                                               "elapsed": elapsed}, indent=1, default=str))
    if args.keep:
        say(f"work dir kept: {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if op_error else 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["upstream"]:
        import uvloop

        uvloop.run(_upstream_main())
        sys.exit(0)
    sys.exit(main())
