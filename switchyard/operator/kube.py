"""The operator's only Kubernetes API client (besides kopf's own watches).

A thin aiohttp client that authenticates exactly as kopf does: it is built from the
``kopf.ConnectionInfo`` the operator's login handler returns (service account in a pod,
kubeconfig elsewhere), and logs in again once on a 401 (projected service-account
tokens rotate). It writes status through the status subresource, posts Events, reads
Secrets on demand and manages the leader Lease. Nothing else in the operator talks to
the API server.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

import aiohttp
import kopf
import orjson

from switchyard.api.models import GROUP, VERSION

log = logging.getLogger("switchyard.operator.kube")

MERGE_PATCH = "application/merge-patch+json"
USER_AGENT = "switchyard-operator"  # the field manager name in managedFields


RETRY_STATUSES = frozenset({409, 429, 500, 502, 503, 504})
MAX_RETRY_WAIT_SECONDS = 5.0


class KubeError(Exception):
    def __init__(self, status: int, reason: str, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message
        self.retry_after = retry_after


def _seconds(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


Login = Callable[[], Awaitable[kopf.ConnectionInfo]]


class Kube:
    def __init__(self, login: Login, *, timeout_seconds: float = 15.0) -> None:
        self._login = login
        self._info: kopf.ConnectionInfo | None = None
        self._session: aiohttp.ClientSession | None = None
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds, sock_connect=5.0)
        self.retry_delays: tuple[float, ...] = (0.2, 1.0)  # seconds before the 2nd and 3rd attempt

    async def _connect(self) -> None:
        self._info = await self._login()
        if self._session is not None:
            await self._session.close()
        info = self._info
        connector = aiohttp.TCPConnector(ssl=False if info.insecure else info.as_ssl_context(), limit=20)
        self._session = aiohttp.ClientSession(
            connector=connector,
            headers={**info.as_http_headers(), "User-Agent": USER_AGENT},
            timeout=self._timeout,
            trust_env=info.trust_env,
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(
        self, method: str, path: str, body: Any = None, *, content_type: str = "application/json", retry_login: bool = True
    ) -> Any:
        """One API call. Reads and merge patches (idempotent: the same patch twice gives the
        same object) are retried on the API server's transient answers (409, 429, 5xx,
        honouring Retry-After) and on dropped connections, ``len(retry_delays)`` times; a
        create is not (nor the lease's conditional patch, ``patch_lease``)."""
        retriable = method in ("GET", "PATCH")
        delays = self.retry_delays if retriable else ()
        for attempt in range(len(delays) + 1):
            try:
                return await self._request_once(method, path, body, content_type=content_type, retry_login=retry_login)
            except KubeError as e:
                if attempt == len(delays) or e.status not in RETRY_STATUSES:
                    raise
                wait = min(max(delays[attempt], e.retry_after or 0.0), MAX_RETRY_WAIT_SECONDS)
                log.info("%s %s answered %d; retrying in %.1fs", method, path, e.status, wait)
            except (aiohttp.ClientConnectionError, TimeoutError) as e:
                if attempt == len(delays):
                    raise
                wait = delays[attempt]
                log.info("%s %s failed (%s); retrying in %.1fs", method, path, type(e).__name__, wait)
                await self._connect()
            await asyncio.sleep(wait)  # backoff between attempts
        raise AssertionError("unreachable")  # pragma: no cover

    async def _request_once(
        self, method: str, path: str, body: Any = None, *, content_type: str = "application/json", retry_login: bool = True
    ) -> Any:
        if self._session is None or self._info is None:
            await self._connect()
        assert self._session is not None and self._info is not None
        url = self._info.server.rstrip("/") + path
        data = None if body is None else orjson.dumps(body)
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = content_type
        async with self._session.request(method, url, data=data, headers=headers) as resp:
            raw = await resp.read()
            if resp.status == 401 and retry_login:
                await self._connect()
                return await self._request_once(method, path, body, content_type=content_type, retry_login=False)
            if resp.status >= 400:
                try:
                    st = orjson.loads(raw)
                    reason, message = str(st.get("reason", "")), str(st.get("message", ""))
                except (orjson.JSONDecodeError, AttributeError):
                    reason, message = resp.reason or "", raw[:300].decode(errors="replace")
                raise KubeError(resp.status, reason, message, retry_after=_seconds(resp.headers.get("Retry-After")))
            return orjson.loads(raw) if raw else None

    # -- switchyard objects ---------------------------------------------------------

    @staticmethod
    def object_path(plural: str, namespace: str, name: str) -> str:
        return f"/apis/{GROUP}/{VERSION}/namespaces/{quote(namespace)}/{plural}/{quote(name)}"

    async def patch_status(self, plural: str, namespace: str, name: str, status_patch: dict[str, Any]) -> dict[str, Any]:
        """A JSON merge patch of ``.status`` through the status subresource."""
        return await self.request(
            "PATCH", self.object_path(plural, namespace, name) + "/status", {"status": status_patch}, content_type=MERGE_PATCH
        )

    # -- core -----------------------------------------------------------------------

    async def get_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return await self.request("GET", f"/api/v1/namespaces/{quote(namespace)}/secrets/{quote(name)}")
        except KubeError as e:
            if e.status == 404:
                return None
            raise

    async def create_secret(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self.request("POST", f"/api/v1/namespaces/{quote(namespace)}/secrets", body)

    async def replace_secret(self, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """PUT with the resourceVersion read before: a concurrent writer gets a 409."""
        return await self.request("PUT", f"/api/v1/namespaces/{quote(namespace)}/secrets/{quote(name)}", body)

    async def annotate_pod(self, namespace: str, name: str, annotations: dict[str, str]) -> None:
        await self.request(
            "PATCH", f"/api/v1/namespaces/{quote(namespace)}/pods/{quote(name)}",
            {"metadata": {"annotations": annotations}}, content_type=MERGE_PATCH,
        )

    async def create_event(self, namespace: str, event: dict[str, Any]) -> None:
        await self.request("POST", f"/api/v1/namespaces/{quote(namespace)}/events", event)

    # -- leases ---------------------------------------------------------------------

    @staticmethod
    def lease_path(namespace: str, name: str | None = None) -> str:
        base = f"/apis/coordination.k8s.io/v1/namespaces/{quote(namespace)}/leases"
        return f"{base}/{quote(name)}" if name else base

    async def get_role_binding(self, namespace: str | None, name: str) -> dict[str, Any] | None:
        """A RoleBinding (namespace given) or a ClusterRoleBinding (namespace None); None if absent."""
        base = "/apis/rbac.authorization.k8s.io/v1"
        path = (f"{base}/namespaces/{quote(namespace)}/rolebindings/{quote(name)}" if namespace is not None
                else f"{base}/clusterrolebindings/{quote(name)}")
        try:
            return await self.request("GET", path)
        except KubeError as e:
            if e.status == 404:
                return None
            raise

    async def get_lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return await self.request("GET", self.lease_path(namespace, name))
        except KubeError as e:
            if e.status == 404:
                return None
            raise

    async def create_lease(self, namespace: str, lease: dict[str, Any]) -> dict[str, Any]:
        return await self.request("POST", self.lease_path(namespace), lease)

    async def patch_lease(self, namespace: str, name: str, resource_version: str, spec: dict[str, Any]) -> dict[str, Any]:
        """A merge patch of the spec, conditional on ``resource_version`` (409 when someone
        else wrote since). Not a PUT: Leases allow create-on-update, so a PUT racing a
        delete (helm uninstall) would bring back a Lease owned by nobody; a patch of a
        missing Lease is a 404. Not retried, as a 409 here means "someone else wrote"."""
        body = {"metadata": {"resourceVersion": resource_version}, "spec": spec}
        return await self._request_once("PATCH", self.lease_path(namespace, name), body, content_type=MERGE_PATCH)
