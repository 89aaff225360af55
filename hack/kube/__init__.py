"""Test-cluster tooling for Switchyard (standard library only, Python 3.11).

One module per topic; ``hack/kube_tools.py`` is the command line and re-exports the API
the tests use.

* :mod:`kube.common`    pins, exit codes, the error type, cache paths, subprocess and lock helpers
* :mod:`kube.procs`     child processes: start, poll, stop by recorded PID
* :mod:`kube.gobuild`   Go wrapper-module builds (kube-apiserver, etcd, node binaries, CoreDNS)
* :mod:`kube.clients`   kubectl and helm from their pinned PyPI wheel
* :mod:`kube.pki`       a throwaway CA and certificates, made with the ``openssl`` command
* :mod:`kube.apiserver` the loopback etcd + kube-apiserver cluster of the e2e tier
* :mod:`kube.node`      the real single-node cluster of the node tier (containerd, kubelet, ...)
"""
