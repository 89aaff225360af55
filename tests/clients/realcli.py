"""Run a real coding CLI, headless, through `switchyard run` against the simulator.

`Stack` is one test's world: a `Simulator` (in the test's event loop) with an Anthropic,
an OpenAI-chat and a Gemini mount, a folder of manifests pointing at them, and
`switchyard run -f FOLDER` as a child process on OS-chosen ports (bench/soak.py's
`SidecarProcess`) with its own `XDG_STATE_HOME`, so its admin token is a file the test
reads. `run_cli` starts a CLI in its own process group with a private HOME and
everything that would leave the machine switched off, and kills the group if it
outlives its deadline.

Keeping the CLIs off the network: besides each client's own switches (set by the
tests), every child gets `HTTP(S)_PROXY` pointing at a `Tripwire` on loopback with
`NO_PROXY` covering only loopback, so a request to anywhere else that a client makes
through a proxy-aware stack never leaves: the tripwire records where it wanted to go
(the `CONNECT` line) and hangs up. Tests assert it stayed silent.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import shutil
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson

import pytest

from switchyard.simulator import Mount, Simulator

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "hack"))
import coding_clients  # noqa: E402
_spec = importlib.util.spec_from_file_location("switchyard_soak", REPO / "bench" / "soak.py")
assert _spec is not None and _spec.loader is not None
soak = sys.modules.get("switchyard_soak")
if soak is None:
    soak = importlib.util.module_from_spec(_spec)
    sys.modules["switchyard_soak"] = soak
    _spec.loader.exec_module(soak)

# Upstream keys the gateway holds (the simulator requires them); the CLIs get another.
KEYS = {"anthropic": "sk-ant-sim-KEY-c1a7", "openai": "sk-openai-sim-KEY-0d3e", "gemini": "AIza-sim-KEY-9f21"}
CLIENT_KEY = "sk-client-placeholder-never-forwarded"

# One answer from a CLI run, bounded: no CLI here should need more than this.
CLI_TIMEOUT_S = 60.0


class Tripwire:
    """A fake HTTP proxy on loopback that lets nothing through: each connection's first
    line (`CONNECT host:443 HTTP/1.1`, or `GET http://...`) is recorded, then it is closed."""

    def __init__(self) -> None:
        self.attempts: list[str] = []
        self._server: asyncio.Server | None = None

    async def start(self) -> Tripwire:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5):
                line = await reader.readline()
            self.attempts.append(line.decode(errors="replace").strip() or "(connection without a request line)")
        writer.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


def offline_env(home: Path, proxy: str) -> dict[str, str]:
    """A child environment: private HOME and XDG folders, every proxy variable pointing
    at `proxy` (a Tripwire) except for loopback, no inherited credentials."""
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TERM", "NODE_EXTRA_CA_CERTS", "SSL_CERT_FILE", "TZ")}
    dead = proxy
    for sub in ("config", "cache", "data", "state"):
        (home / f".{sub}").mkdir(parents=True, exist_ok=True)
    return {
        **keep,
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_DATA_HOME": str(home / ".data"),
        "XDG_STATE_HOME": str(home / ".state"),
        "TMPDIR": str(home),
        "HTTP_PROXY": dead,
        "HTTPS_PROXY": dead,
        "http_proxy": dead,
        "https_proxy": dead,
        "ALL_PROXY": dead,
        "NO_PROXY": "127.0.0.1,localhost,::1",
        "no_proxy": "127.0.0.1,localhost,::1",
        "CI": "1",
        "NO_COLOR": "1",
        "NO_UPDATE_NOTIFIER": "1",
        "DO_NOT_TRACK": "1",
    }


@dataclass
class CliResult:
    argv: list[str]
    code: int | None  # None: killed at the deadline
    stdout: str
    stderr: str
    seconds: float
    leftovers: list[str]  # processes of this run still alive after it ended (then killed)

    def describe(self) -> str:
        return (
            f"`{' '.join(self.argv[:1] + self.argv[1:6])} ...` exit {self.code} after {self.seconds:.1f}s\n"
            f"--- stdout ---\n{self.stdout[-3000:]}\n--- stderr ---\n{self.stderr[-3000:]}"
        )


RUN_MARK = "SWITCHYARD_CLIENTS_RUN"


def _marked(mark: str) -> list[tuple[int, str]]:
    """Processes of ours whose environment carries `RUN_MARK=mark` (a CLI's descendants
    inherit it, even those that left its process group)."""
    needle = f"{RUN_MARK}={mark}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                found.append((int(entry.name), (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:200]))
    return found


async def run_cli(argv: list[str], env: dict[str, str], cwd: Path, timeout: float = CLI_TIMEOUT_S) -> CliResult:
    """Run to completion in a new session (process group); at the deadline the whole
    group is killed and the result says so (code None). Descendants still alive at the
    end (a daemon that left the group) are killed by pid and listed in `leftovers`."""
    t0 = time.monotonic()
    mark = os.urandom(8).hex()
    env = {**env, RUN_MARK: mark}
    proc = await asyncio.create_subprocess_exec(
        *argv, cwd=cwd, env=env, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, start_new_session=True,
    )
    code: int | None
    try:
        async with asyncio.timeout(timeout):
            out, err = await proc.communicate()
        code = proc.returncode
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        out, err = await proc.communicate()
        code = None
    finally:
        # Whatever the CLI left behind in its group (helpers, MCP servers) goes too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
    leftovers = []
    for pid, cmd in _marked(mark):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
            leftovers.append(f"{pid} {cmd}")
    return CliResult(argv, code, out.decode(errors="replace"), err.decode(errors="replace"), time.monotonic() - t0, leftovers)


# --------------------------------------------------------------------------- the world


def manifests(sim: Simulator, bindings: str, first_byte_seconds: float = 10) -> str:
    timeouts = f"{{connectSeconds: 2, firstByteSeconds: {first_byte_seconds:g}, totalSeconds: 30}}"
    sources = f"""
apiVersion: switchyard.dev/v1alpha1
kind: ModelSource
metadata: {{name: anthropic}}
spec:
  provider: anthropic
  baseURL: {sim.base_url("anthropic")}
  defaultModel: sim-claude
  credentialRef: {{env: SIM_ANTHROPIC_KEY}}
  timeouts: {timeouts}
---
apiVersion: switchyard.dev/v1alpha1
kind: ModelSource
metadata: {{name: openai}}
spec:
  provider: openai-compatible
  baseURL: {sim.base_url("openai")}
  defaultModel: sim-gpt
  capabilityProfileRef: {{name: builtin-openai}}
  credentialRef: {{env: SIM_OPENAI_KEY}}
  timeouts: {timeouts}
---
apiVersion: switchyard.dev/v1alpha1
kind: ModelSource
metadata: {{name: gemini}}
spec:
  provider: gemini
  baseURL: {sim.base_url("gemini")}
  defaultModel: sim-gemini
  credentialRef: {{env: SIM_GEMINI_KEY}}
  timeouts: {timeouts}
"""
    return sources + "\n---\n" + bindings


def binding(name: str, aliases: list[str], primary: str, fallback: str) -> str:
    return f"""apiVersion: switchyard.dev/v1alpha1
kind: AssistantBinding
metadata: {{name: {name}}}
spec:
  aliases: {orjson.dumps(aliases).decode()}
  primary: {{sourceRef: {{name: {primary}}}}}
  fallbacks: [{{sourceRef: {{name: {fallback}}}}}]
"""


@dataclass
class Stack:
    sim: Simulator
    gateway: Any  # soak.SidecarProcess
    root: Path
    admin_token: str
    tripwire: Tripwire

    def env(self, home: Path) -> dict[str, str]:
        return offline_env(home, self.tripwire.url)

    @property
    def api(self) -> str:
        return self.gateway.api

    def request_log(self) -> list[dict[str, Any]]:
        """The sidecar's per-request log lines (JSON, msg "request")."""
        out = []
        for line in list(self.gateway.lines):
            line = line.strip()
            if not line.startswith("{"):
                continue
            with contextlib.suppress(orjson.JSONDecodeError):
                rec = orjson.loads(line)
                if rec.get("msg") == "request":
                    out.append(rec)
        return out

    async def logged(self, binding_name: str, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        """The request log lines of a binding, once `count` of them have been read from
        the gateway's stderr (a line is written as a request ends, and read by another
        task): polled under a deadline; whatever is there at the deadline is returned
        for the test's assertion to show."""
        deadline = time.monotonic() + timeout
        delay = 0.01
        while True:
            lines = [r for r in self.request_log() if r.get("binding") == binding_name]
            if len(lines) >= count or time.monotonic() > deadline:
                return lines
            await asyncio.sleep(delay)  # poll interval under a deadline
            delay = min(delay * 2, 0.2)

    def gateway_log(self) -> str:
        return "".join(self.gateway.lines[-80:])

    async def status(self) -> dict[str, Any]:
        async with aiohttp.ClientSession() as s:
            async with s.get(self.gateway.admin + "/admin/status", headers={"Authorization": f"Bearer {self.admin_token}"}) as r:
                assert r.status == 200, (r.status, await r.text())
                return orjson.loads(await r.read())

    async def last_used(self, binding_name: str) -> dict[str, Any] | None:
        for b in (await self.status())["bindings"]:
            if b["name"] == binding_name:
                return b.get("last_used")
        raise AssertionError(f"no binding {binding_name} in the admin status")

    def generations(self, mount: str) -> list[Any]:
        return [r for r in self.sim.requests(mount) if r.endpoint == "generate"]


@contextlib.asynccontextmanager
async def stack(tmp: Path, bindings: str, *, first_byte_seconds: float = 10):
    """Simulator + `switchyard run` on a folder of manifests; both stopped at exit.
    `first_byte_seconds`: every tier's deadline for the first byte of an answer."""
    mounts = [
        Mount("anthropic", api_key=KEYS["anthropic"]),
        Mount("openai", flavour="openai", api_key=KEYS["openai"]),
        Mount("gemini", api_key=KEYS["gemini"]),
    ]
    async with Simulator(*mounts, port=0, hang_max_seconds=15) as sim:
        folder = tmp / "manifests"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "all.yaml").write_text(manifests(sim, bindings, first_byte_seconds))
        state = tmp / "gateway-state"
        env = {
            "XDG_STATE_HOME": str(state),
            "SIM_ANTHROPIC_KEY": KEYS["anthropic"],
            "SIM_OPENAI_KEY": KEYS["openai"],
            "SIM_GEMINI_KEY": KEYS["gemini"],
            "SWITCHYARD_ADMIN_TOKEN": "",
        }
        proc = await soak.SidecarProcess(["run", "-f", str(folder), "--log-level", "info"], env).start()
        tripwire = await Tripwire().start()
        try:
            token = (state / "switchyard" / "admin-token").read_text().strip()
            yield Stack(sim, proc, tmp, token, tripwire)
        finally:
            await tripwire.close()
            await proc.stop(10)


# --------------------------------------------------------------------------- installs

MODE = os.environ.get("SWITCHYARD_CLIENTS", "")
REQUIRED = MODE == "1"
_installed: dict[str, Path | str] = {}


def client_binary(name: str) -> Path:
    """The pinned CLI's binary, installed on first use (once per session); skips (or,
    with SWITCHYARD_CLIENTS=1, fails) when it cannot be had."""
    c = coding_clients.CLIENTS[name]
    if MODE == "0":
        pytest.skip("SWITCHYARD_CLIENTS=0: the real-clients tier is switched off")
    if name not in _installed and not shutil.which("node"):
        _installed[name] = f"{c.package}@{c.version} cannot run here: no `node` on PATH"
    if name not in _installed:
        try:
            _installed[name] = coding_clients.ensure_client(c, log=lambda m: sys.stderr.write(m + "\n"))
        except coding_clients.ClientsError as e:
            _installed[name] = f"{c.package}@{c.version} is not installable here: {e} (exit code {e.code})"
    got = _installed[name]
    if isinstance(got, str):
        if REQUIRED:
            pytest.fail(f"SWITCHYARD_CLIENTS=1 but {got}", pytrace=False)
        pytest.skip(got + " (python hack/coding_clients.py install; SWITCHYARD_CLIENTS=1 makes this a failure)")
    return got
