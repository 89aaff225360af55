"""Caller identity: recognised clients, self-declared names, and a bounded metric label."""

from __future__ import annotations

from switchyard.sidecar.routing.caller import identify, metric_label


def test_known_clients_are_recognised_from_their_user_agent() -> None:
    assert identify(None, "claude-cli/2.0.14 (external, cli)") == "claude-code"
    assert identify(None, "codex_cli_rs/0.46.0 (Ubuntu 24.4.0; x86_64)") == "codex"
    assert identify(None, "GeminiCLI/0.9.0 (linux; x64)") == "gemini-cli"
    assert identify(None, "OpenAI/Python 1.99.0") == "openai-sdk"
    assert identify(None, "curl/8.5.0") == "unknown"


def test_the_header_wins_and_must_be_a_short_token() -> None:
    assert identify("  Nightly-Batch ", "claude-cli/2.0") == "nightly-batch"
    assert identify("x" * 41, None) == "unknown"
    assert identify("a b", None) == "unknown"
    assert identify("ünïcode", None) == "unknown"


def test_metric_label_is_bounded_to_known_and_configured_names() -> None:
    configured = {"nightly-batch"}
    assert metric_label("claude-code", configured) == "claude-code"
    assert metric_label("unknown", configured) == "unknown"
    assert metric_label("nightly-batch", configured) == "nightly-batch"
    # a name a client made up: kept in the log line, "other" as a label value
    assert {metric_label(f"job-{i}", configured) for i in range(1000)} == {"other"}
