"""The operator's readiness when it serves the webhook (operator/main.py WebhookReadiness):
ready only once its webhook server answers and the managed configuration names this
operator's Service with this replica's CA (found on a real node: a TCP probe on the
webhook port passed before kopf had patched the configuration)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from switchyard.operator.main import WebhookReadiness
from switchyard.operator.settings import WebhookSettings

SERVICE = ("switchyard-system", "switchyard-webhook", 443)


def hook(ca: bytes | None, service: dict[str, Any] | None = None) -> dict[str, Any]:
    cc: dict[str, Any] = {"service": service or {"namespace": SERVICE[0], "name": SERVICE[1], "port": 443,
                                                 "path": "/inject-sidecar"}}
    if ca is not None:
        cc["caBundle"] = base64.b64encode(ca).decode()
    return {"name": "inject-sidecar.switchyard.dev", "clientConfig": cc}


@pytest.fixture
def ready(tmp_path: Path) -> WebhookReadiness:
    ca = tmp_path / "ca.crt"
    ca.write_bytes(b"-----BEGIN CERTIFICATE-----\nmine\n-----END CERTIFICATE-----\n")
    return WebhookReadiness(WebhookSettings(ca_file=str(ca)), SERVICE)


def test_configuration_with_our_service_and_ca_is_ours(ready: WebhookReadiness, tmp_path: Path) -> None:
    assert ready._ours([hook((tmp_path / "ca.crt").read_bytes())])


def test_no_webhooks_yet_is_not_ours(ready: WebhookReadiness) -> None:
    assert not ready._ours([])


def test_another_ca_is_not_ours(ready: WebhookReadiness) -> None:
    # an exiting replica of an earlier install re-patched the configuration with its CA
    assert not ready._ours([hook(b"someone else's CA")])
    assert not ready._ours([hook(None)])


def test_another_service_is_not_ours(ready: WebhookReadiness, tmp_path: Path) -> None:
    other = {"namespace": "elsewhere", "name": "switchyard-webhook", "port": 443}
    assert not ready._ours([hook((tmp_path / "ca.crt").read_bytes(), other)])


async def test_not_ready_while_the_webhook_server_does_not_answer(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again below: nothing listens there
    r = WebhookReadiness(WebhookSettings(port=port, ca_file=None), SERVICE)
    why = await r.not_ready()
    assert why and "does not answer" in why
