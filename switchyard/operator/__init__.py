"""The Kubernetes operator: resources in, compiled config out to the sidecars, health back.

Layers (higher imports lower, never the other way round)::

    main            kopf registrations only: thin, typed, each calls one function below
    reconciler      the control loop: a work queue of namespaces and catalogs, leader-gated
    push, health,   I/O with the sidecars' admin API and the providers' list-models
    catalog, kube   endpoints; ``kube`` is the only Kubernetes API client
    leader          Lease-based leader election (two replicas: one writes, one waits warm)
    world           the kopf indexes, read as plain snapshots per namespace
    status, conditions, selection, events, webhook, workqueue, settings
                    pure: no I/O, the clock passed in; tested without a cluster

The unit of reconciliation is a namespace: every reference (sourceRef, profile, Secret,
pod selector) stays inside one, so recomputing a namespace is exact and cheap, and a
change to any source, profile, Secret or pod re-reconciles every binding that could use it.
The compiler (``switchyard.compiler``) is reused unchanged; the operator adds lookups,
I/O and status. See docs/operator.md.
"""
