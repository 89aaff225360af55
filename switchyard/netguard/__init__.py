"""The low-level network guard shared by the sidecar and the operator.

``addresses`` classifies hosts and addresses a ModelSource may not reach by default
(link-local, cloud metadata); ``resolver`` refuses them at connect time, whatever a name
resolves to. The compiler judges a ``baseURL`` as written with ``addresses``; the
sidecar's upstream pools and the operator's catalog fetch resolve through ``resolver``.
Nothing here imports anything else of Switchyard.
"""
