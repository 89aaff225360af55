"""Container images for the node tier, built on this machine (no registry is reachable):

* the pause image (the pod sandbox): a static C program that waits in ``pause()``;
* a Python base image from Debian packages (``mmdebstrap``), a stand-in for the official
  ``python:3.11-slim-bookworm`` (a venv first on PATH, so ``python`` and ``pip`` behave
  the same);
* the project's image, from its Dockerfile, unmodified (``buildah bud`` with
  ``PYTHON_IMAGE`` pointing at that base);

and the Debian packages the node needs. Pause and base are cached as OCI archives under
``<cache>/node-images/`` (paid once per machine); the project's image is rebuilt each run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from .common import KubeToolsError, cache_root, file_lock, log, run

EXIT_NODE_FAILED = 9

APT_PACKAGES = ("containerd", "runc", "containernetworking-plugins", "iptables", "conntrack", "buildah",
                "umoci", "skopeo", "mmdebstrap", "gcc", "libc6-dev", "openssl", "iproute2", "nftables")

PAUSE_IMAGE = "localhost/switchyard-pause:1"
BASE_SUITE = "bookworm"
BASE_IMAGE = "localhost/switchyard-python-base:3.11-bookworm"
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates")
APP_IMAGE = "localhost/switchyard:dev"
# The name pods use (`image: switchyard:dev`); the CRI normalises it to this.
APP_IMAGE_CRI = "docker.io/library/switchyard:dev"

PAUSE_C = r"""
/* The pod sandbox's process: wait for a signal, exit on TERM/INT, reap children. */
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
static void stop(int s) { (void)s; _exit(0); }
static void reap(int s) { (void)s; while (waitpid(-1, NULL, WNOHANG) > 0) {} }
int main(void) {
    struct sigaction a = {0}, r = {0};
    a.sa_handler = stop; sigaction(SIGINT, &a, NULL); sigaction(SIGTERM, &a, NULL);
    r.sa_handler = reap; r.sa_flags = SA_NOCLDSTOP; sigaction(SIGCHLD, &r, NULL);
    for (;;) pause();
    return 1;
}
"""


def images_dir() -> Path:
    return cache_root() / "node-images"


def _err(msg: str) -> KubeToolsError:
    return KubeToolsError(msg, EXIT_NODE_FAILED)


def _sh(argv: list[str], what: str, timeout: float = 600, **kw: object) -> str:
    return run(argv, timeout=timeout, what=what, code=EXIT_NODE_FAILED, **kw)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- Debian packages


def missing_packages(pkgs: tuple[str, ...] = APT_PACKAGES) -> list[str]:
    missing = []
    for p in pkgs:
        cp = subprocess.run(["dpkg-query", "-W", "-f=${Status}", p], capture_output=True, text=True)
        if cp.returncode != 0 or "install ok installed" not in cp.stdout:
            missing.append(p)
    return missing


def ensure_packages(pkgs: tuple[str, ...] = APT_PACKAGES) -> None:
    """apt-get install what is missing (one `apt-get update` first). Needs root and apt."""
    if not shutil.which("dpkg-query"):
        raise _err("no dpkg-query: the node tier needs a Debian-like machine")
    missing = missing_packages(pkgs)
    if not missing:
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise _err(f"missing Debian packages {missing} and no root/apt-get to install them")
    with file_lock(cache_root() / "apt.lock", 30 * 60, "apt-get"):
        missing = missing_packages(pkgs)
        if not missing:
            return
        log(f"apt-get install {' '.join(missing)}")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        _sh(["apt-get", "update", "-qq"], "apt-get update", timeout=900, env=env)
        _sh(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], "apt-get install",
            timeout=1800, env=env)


# --------------------------------------------------------------------------- buildah helpers


def _buildah_has(name: str) -> bool:
    return subprocess.run(["buildah", "inspect", "--type", "image", name], capture_output=True).returncode == 0


def _load_archive(archive: Path, name: str) -> None:
    """Make ``name`` exist in buildah's storage from our cached OCI archive."""
    if _buildah_has(name):
        return
    out = _sh(["buildah", "pull", "--quiet", f"oci-archive:{archive}"], f"buildah pull {archive.name}")
    image_id = out.strip().splitlines()[-1]
    _sh(["buildah", "tag", image_id, name], f"buildah tag {name}")


def _commit_and_save(ctr: str, name: str, archive: Path) -> None:
    _sh(["buildah", "commit", "--quiet", "--rm", ctr, name], f"buildah commit {name}")
    tmp = archive.with_name(f".{archive.name}.tmp{os.getpid()}")
    tmp.unlink(missing_ok=True)
    _sh(["buildah", "push", "--quiet", name, f"oci-archive:{tmp}:{name}"], f"buildah push {name}")
    os.replace(tmp, archive)


# --------------------------------------------------------------------------- pause


def pause_archive() -> Path:
    return images_dir() / "pause-1.oci.tar"


def ensure_pause_image() -> Path:
    archive = pause_archive()
    if archive.is_file():
        return archive
    images_dir().mkdir(parents=True, exist_ok=True)
    with file_lock(images_dir() / "pause.lock", 15 * 60, "pause image build"):
        if archive.is_file():
            return archive
        t0 = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="pause-", dir=images_dir()) as td:
            src, exe = Path(td) / "pause.c", Path(td) / "pause"
            src.write_text(PAUSE_C)
            _sh(["gcc", "-Os", "-static", "-Wall", "-o", str(exe), str(src)], "gcc pause.c")
            _sh(["strip", str(exe)], "strip pause")
            ctr = _sh(["buildah", "from", "scratch"], "buildah from scratch").strip()
            _sh(["buildah", "copy", ctr, str(exe), "/pause"], "buildah copy pause")
            _sh(["buildah", "config", "--entrypoint", '["/pause"]', "--user", "65535:65535", ctr],
                "buildah config pause")
            _commit_and_save(ctr, PAUSE_IMAGE, archive)
        log(f"pause image built in {time.monotonic() - t0:.0f}s -> {archive}")
    return archive


# --------------------------------------------------------------------------- Python base


def base_archive() -> Path:
    return images_dir() / f"python-base-{BASE_SUITE}.oci.tar"


def ensure_base_image() -> Path:
    """A Debian bookworm Python 3.11 image (mmdebstrap minbase + a venv first on PATH)."""
    archive = base_archive()
    if archive.is_file():
        _load_archive(archive, BASE_IMAGE)
        return archive
    images_dir().mkdir(parents=True, exist_ok=True)
    with file_lock(images_dir() / "base.lock", 30 * 60, "base image build"):
        if archive.is_file():
            _load_archive(archive, BASE_IMAGE)
            return archive
        t0 = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="base-", dir=images_dir()) as td:
            rootfs = Path(td) / "rootfs.tar"
            _sh(["mmdebstrap", "--variant=minbase", "--quiet", f"--include={','.join(BASE_PACKAGES)}",
                 "--customize-hook=chroot \"$1\" python3 -m venv /opt/venv",
                 "--customize-hook=rm -rf \"$1\"/var/lib/apt/lists/* \"$1\"/var/cache/apt/*.bin",
                 BASE_SUITE, str(rootfs)], "mmdebstrap", timeout=1800)
            ctr = _sh(["buildah", "from", "scratch"], "buildah from scratch").strip()
            _sh(["buildah", "add", ctr, str(rootfs), "/"], "buildah add rootfs")
            _sh(["buildah", "config",
                 "--env", "PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                 "--env", "LANG=C.UTF-8", "--cmd", '["python3"]', ctr], "buildah config base")
            _commit_and_save(ctr, BASE_IMAGE, archive)
        log(f"base image built in {time.monotonic() - t0:.0f}s -> {archive}")
    return archive


# --------------------------------------------------------------------------- the project's image


def build_app_image(repo: Path, out: Path) -> Path:
    """``buildah bud`` of the repository's Dockerfile, unmodified, on the local base image;
    saved as an OCI archive named APP_IMAGE_CRI at ``out``."""
    ensure_base_image()
    t0 = time.monotonic()
    argv = ["buildah", "bud", "--quiet", "--pull=never", "--network=host", "--layers=false",
            "--build-arg", f"PYTHON_IMAGE={BASE_IMAGE}", "-f", str(repo / "Dockerfile"), "-t", APP_IMAGE]
    # pip inside the build needs the machine's pip config and CA bundle (package downloads
    # here go through the machine's TLS proxy); they are mounted for RUN steps only.
    for f in ("/etc/pip.conf", "/etc/ssl/certs/ca-certificates.crt"):
        if Path(f).is_file():
            argv += ["-v", f"{f}:{f}:ro"]
    env = dict(os.environ)
    for k in ("PIP_CERT", "PIP_DEFAULT_TIMEOUT"):
        if k in env:
            argv += ["--build-arg", f"{k}={env[k]}"]
    _sh([*argv, str(repo)], "buildah bud Dockerfile", timeout=1800, cwd=repo)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    _sh(["buildah", "push", "--quiet", APP_IMAGE, f"oci-archive:{out}:{APP_IMAGE_CRI}"], "buildah push app")
    log(f"switchyard image built in {time.monotonic() - t0:.0f}s -> {out}")
    return out
