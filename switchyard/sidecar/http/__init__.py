"""The sidecar's HTTP layer: every route of both listeners and their thin handlers.

``routes`` is the one route table of the API listener (which path speaks which
protocol); ``api`` its handlers, each naming its ingress adapter and handing over to
the pipeline; ``admin`` the admin listener (config pushes, status, health, metrics).
Nothing is registered at import time: ``app`` builds both applications from these tables.
"""
