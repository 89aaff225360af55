"""Child processes of the test clusters: free ports, polling with a deadline, start with a
log file, stop by recorded PID (SIGTERM, bounded wait, SIGKILL)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from collections.abc import Callable

from .common import EXIT_CLUSTER_FAILED, KubeToolsError, tail

_PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")


class PortInUse(Exception):
    pass


def free_port() -> int:
    """A TCP port on 127.0.0.1 the OS just handed out (bind port 0). Used for the
    binaries that cannot report the port they bound; callers retry on a collision."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _PROXY_VARS}
    no_proxy = "127.0.0.1,localhost,::1"
    env["NO_PROXY"] = env["no_proxy"] = no_proxy
    return env


def set_pdeathsig() -> None:  # runs in the child before exec: die with the parent
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def poll_until(what: str, timeout: float, probe: Callable[[], object], *,
                alive: Callable[[], None] | None = None, interval: float = 0.1) -> object:
    """Call probe() until it returns something truthy, or raise after ``timeout`` seconds.

    ``alive`` is called each round and should raise if what we wait for can no longer
    happen (its process died), so a crash is reported at once, not at the deadline.
    """
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        if alive:
            alive()
        try:
            r = probe()
            if r:
                return r
        except Exception as e:
            last = e
        if time.monotonic() > deadline:
            raise KubeToolsError(f"timed out after {timeout:.0f}s waiting for {what}"
                                 + (f" (last error: {last})" if last else ""), EXIT_CLUSTER_FAILED)
        time.sleep(interval)  # poll interval under a deadline
        interval = min(interval * 1.5, 1.0)


class Proc:
    def __init__(self, name: str, argv: list[str], log: Path, *, detach: bool,
                 env: dict[str, str] | None = None) -> None:
        self.name, self.argv, self.log = name, argv, log
        with open(log, "ab") as lf:
            self.popen = subprocess.Popen(
                argv, stdout=lf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=env if env is not None else child_env(), start_new_session=True,
                preexec_fn=None if detach else set_pdeathsig,
            )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def check_alive(self) -> None:
        rc = self.popen.poll()
        if rc is None:
            return
        last = tail(self.log, 30)
        if "address already in use" in last:
            raise PortInUse(f"{self.name}: port collision")
        raise KubeToolsError(f"{self.name} exited with {rc} during start-up; last log lines:\n{last}",
                             EXIT_CLUSTER_FAILED)

    def stop(self, grace: float) -> None:
        terminate(self.popen.pid, grace, wait=lambda t: self.popen.wait(timeout=t))


def terminate(pid: int, grace: float, wait: Callable[[float], object] | None = None) -> None:
    """SIGTERM, wait at most ``grace`` seconds, then SIGKILL (the whole process group)."""
    def signal_group(sig: int) -> bool:
        try:
            os.killpg(pid, sig)
            return True
        except ProcessLookupError:
            return False
        except PermissionError:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
            return True

    if not signal_group(signal.SIGTERM):
        if wait:
            with contextlib.suppress(Exception):
                wait(1)
        return
    if wait is None:  # not our child: poll for its disappearance
        def wait(t: float) -> None:
            poll_until(f"pid {pid} to exit", t, lambda: not pid_alive(pid))
    try:
        wait(grace)
        return
    except (subprocess.TimeoutExpired, KubeToolsError):
        pass
    signal_group(signal.SIGKILL)
    with contextlib.suppress(Exception):
        wait(10)


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][:1] != "Z"
    except (OSError, IndexError):
        return False


