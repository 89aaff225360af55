"""The sidecar's two contracts with whoever configures it (the operator, standalone mode).

``config``: the compiled config a sidecar is given (versioned, no Kubernetes types).
``report``: the status report a sidecar gives back (tier health, breaker states).
The operator and the compiler import only these from the sidecar (and the network guard).
"""
