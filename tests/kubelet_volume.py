"""The test harness playing the kubelet's part in config delivery, for sidecars on loopback.

``AtomicVolume`` lays a Secret or downward-API volume out as the kubelet's atomic writer
does (a timestamped directory, a ``..data`` symlink swapped by one rename, each key a
symlink through it), so a sidecar reads exactly what it reads in a pod.

``KubeletPlayer`` keeps one pod's two volumes (the namespace's config Secret and the
pod's labels) in step with the API server the way a real kubelet does
(notes/real-node.md): at pod start, at every ``sync_seconds`` (the kubelet's
syncFrequency, 60 s by default, which gives 53-66 s on a real node) and at once when the
pod's annotations change (0.3-0.5 s on a real node). With the default sync, a change
that reaches the sidecar within a few seconds has come through the operator's
``switchyard.dev/config-version`` nudge.
"""

from __future__ import annotations

import base64
import os
import threading
import time
from pathlib import Path
from typing import Any

CONFIG_SECRET = "switchyard-config"
BUNDLE_KEY = "bundle.json"


class AtomicVolume:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.n = 0
        self.current: dict[str, bytes] | None = None

    def write(self, files: dict[str, bytes]) -> bool:
        """Publish ``files``; False (and nothing written) when they are what is there."""
        if files == self.current:
            return False
        self.n += 1
        ts = self.root / f"..{time.strftime('%Y_%m_%d_%H_%M_%S')}.{os.getpid()}.{self.n}"
        ts.mkdir()
        for name, data in files.items():
            (ts / name).write_bytes(data)
        tmp = self.root / "..data_tmp"
        if tmp.is_symlink():
            tmp.unlink()
        tmp.symlink_to(ts.name)
        os.replace(tmp, self.root / "..data")
        for name in files:
            link = self.root / name
            if not link.is_symlink():
                link.symlink_to(f"..data/{name}")
        for name in list(self.current or {}):
            if name not in files and (self.root / name).is_symlink():
                (self.root / name).unlink()
        self.current = dict(files)
        return True


def labels_file(labels: dict[str, str]) -> bytes:
    return "".join(f'{k}="{v}"\n' for k, v in sorted(labels.items())).encode()


class KubeletPlayer:
    """One pod's config volumes, kept in step with the API server by a thread."""

    def __init__(self, kube: Any, namespace: str, pod: str, root: Path, *, sync_seconds: float = 60.0,
                 poll_seconds: float = 0.1) -> None:
        self.kube, self.ns, self.pod = kube, namespace, pod
        self.config = AtomicVolume(root / "config")
        self.podinfo = AtomicVolume(root / "pod")
        self.config_dir, self.labels_path = str(root / "config"), str(root / "pod" / "labels")
        self.sync_seconds, self.poll_seconds = sync_seconds, poll_seconds
        self._stop = threading.Event()
        self._annotations: dict[str, str] | None = None
        self.refreshes: list[tuple[float, str]] = []  # (monotonic time, why) of each volume update
        self.sync()  # "pod start": the volumes exist before the sidecar starts
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _get(self, path: str) -> dict[str, Any] | None:
        status, body = self.kube.api("GET", path, timeout=10)
        return body if status == 200 and isinstance(body, dict) else None

    def sync(self, why: str = "start") -> None:
        pod = self._get(f"/api/v1/namespaces/{self.ns}/pods/{self.pod}")
        if pod is not None:
            self._annotations = dict((pod.get("metadata") or {}).get("annotations") or {})
            self.podinfo.write({"labels": labels_file((pod.get("metadata") or {}).get("labels") or {})})
        secret = self._get(f"/api/v1/namespaces/{self.ns}/secrets/{CONFIG_SECRET}")
        files = {k: base64.b64decode(v) for k, v in ((secret or {}).get("data") or {}).items()}
        if self.config.write(files):
            self.refreshes.append((time.monotonic(), why))

    def _run(self) -> None:
        last_sync = time.monotonic()
        while not self._stop.wait(self.poll_seconds):
            try:
                if time.monotonic() - last_sync >= self.sync_seconds:
                    last_sync = time.monotonic()
                    self.sync("periodic")
                    continue
                pod = self._get(f"/api/v1/namespaces/{self.ns}/pods/{self.pod}")
                if pod is None:
                    continue
                annotations = dict((pod.get("metadata") or {}).get("annotations") or {})
                if annotations != self._annotations:
                    self.sync("annotations changed")
            except Exception:  # the player keeps going, as a kubelet would
                continue

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
