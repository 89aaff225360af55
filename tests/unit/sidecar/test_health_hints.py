"""The shared-health message (contract/health.py) as data: what it accepts, what it refuses.
Over HTTP, with the signature and the problem form: tests/integration/test_shared_health.py."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from switchyard.sidecar.contract.health import MAX_HINTS, HealthHint, HealthHints

OK = {"source": "openai-main", "model": "gpt-5", "key": 1, "rate_limited_until": 1_800_000_000, "reason": "429(retry in 30s)"}


def test_a_hint_round_trips_and_carries_nothing_but_names_an_index_a_time_and_a_reason() -> None:
    hints = HealthHints.model_validate({"hints_version": 1, "hints": [OK, {"source": "s", "model": "m", "disabled": "401"}],
                                        "from_the_future": True})  # unknown fields are ignored
    assert [h.kind for h in hints.hints] == ["rate-limited", "disabled"]
    assert HealthHints.model_validate_json(hints.to_body()) == hints
    assert set(HealthHint.model_fields) == {"source", "model", "key", "rate_limited_until", "disabled", "reason"}


@pytest.mark.parametrize("bad", [
    {**OK, "key": "1"}, {**OK, "key": 1.0}, {**OK, "key": False}, {**OK, "key": 8}, {**OK, "key": -1},
    {**OK, "rate_limited_until": -1}, {**OK, "rate_limited_until": "soon"}, {**OK, "rate_limited_until": float("inf")},
    {**OK, "disabled": "401"}, {k: v for k, v in OK.items() if k != "rate_limited_until"},
    {**OK, "reason": "x" * 65}, {**OK, "reason": "line\nbreak"}, {**OK, "source": ""}, {**OK, "model": "m" * 257},
    {**OK, "source": 7},
])
def test_a_bad_hint_is_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        HealthHints.model_validate({"hints_version": 1, "hints": [bad]})


def test_the_set_is_bounded_and_versioned() -> None:
    HealthHints.model_validate({"hints_version": 1, "hints": [OK] * MAX_HINTS})
    for bad in ({"hints_version": 1, "hints": [OK] * (MAX_HINTS + 1)}, {"hints_version": 2, "hints": []},
                {"hints_version": "1", "hints": []}, {"hints_version": 1, "hints": {"0": OK}}):
        with pytest.raises(ValidationError):
            HealthHints.model_validate(bad)
