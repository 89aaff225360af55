"""Integration tier: the real sidecar, real HTTP on loopback, simulated upstreams."""

from harness import gateway, logs, sim  # noqa: F401  (fixtures)
