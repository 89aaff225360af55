"""Failure classification and every Retry-After form providers use."""

from email.utils import formatdate

import pytest

from switchyard.sidecar.routing.classify import from_status, parse_duration, retry_after_seconds
from datetime import UTC

NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "12"}, 12.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"retry-after-ms": "250"}, 0.25),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"retry-after": formatdate(NOW + 30, usegmt=True)}, 30.0),
        ({"x-ratelimit-reset-requests": "6m0s"}, 360.0),
        ({"x-ratelimit-reset-requests": "1s", "x-ratelimit-reset-tokens": "20ms"}, 1.0),
        ({"retry-after": "soon"}, None),
        ({}, None),
    ],
)
def test_retry_after_forms(headers: dict[str, str], expected: float | None) -> None:
    got = retry_after_seconds(headers, NOW)
    assert got == (pytest.approx(expected, abs=1) if expected is not None else None)


@pytest.mark.parametrize(("text", "seconds"), [("1h2m3s", 3723), ("0.5s", 0.5), ("250ms", 0.25), ("", None), ("x", None)])
def test_go_durations(text: str, seconds: float | None) -> None:
    assert parse_duration(text) == seconds


def test_statuses_map_to_fallback_reasons() -> None:
    assert from_status(429, {"retry-after": "3"}, wall_now=NOW).trail_text() == "429(retry in 3s)"
    assert from_status(503, {}, wall_now=NOW).reason == "5xx"
    assert from_status(529, {}, wall_now=NOW).reason == "5xx"
    assert from_status(400, {}, wall_now=NOW).reason == "client-error"
    assert from_status(401, {}, wall_now=NOW).reason == "auth-error"
    assert from_status(403, {}, wall_now=NOW, quota=True).reason == "429"


def test_anthropic_reset_instants() -> None:
    from datetime import datetime

    at = datetime.fromtimestamp(NOW + 42, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert retry_after_seconds({"anthropic-ratelimit-tokens-reset": at}, NOW) == pytest.approx(42, abs=1)


@pytest.mark.parametrize(
    ("status", "cls"), [(429, "rate-limited"), (500, "transient"), (529, "transient"), (401, "permanent"), (403, "permanent"), (404, "client"), (400, "client")]
)
def test_failure_classes(status: int, cls: str) -> None:
    assert from_status(status, {}, wall_now=NOW).cls == cls


def test_a_404_is_the_tiers_only_when_it_names_the_tiers_model() -> None:
    """Issue 15: a 404 for a file id one client named disabled the tier for everyone."""
    assert from_status(404, {}, wall_now=NOW).reason == "client-error"
    assert from_status(404, {}, wall_now=NOW, model_not_found=True).reason == "not-found"
