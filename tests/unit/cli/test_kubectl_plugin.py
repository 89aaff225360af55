"""`kubectl switchyard`'s pure parts: selectors, rendering of status, models, test and
explain (the cluster-facing parts run in tests/e2e/test_chart_kubectl_plugin.py)."""

from __future__ import annotations

from switchyard.cli.kubectl_plugin import (
    BAD_NEWS,
    FAILED,
    OK,
    PodAnswer,
    explain_binding,
    pod_proxy_base,
    render_models,
    render_status,
    render_test,
    selector_string,
    sidecar_admin_port,
)

BINDING = {
    "metadata": {"name": "support", "namespace": "team-a", "generation": 2},
    "spec": {"aliases": ["support"], "selector": {"matchLabels": {"app": "support"}}},
    "status": {
        "observedGeneration": 2,
        "summary": {"primary": "openai-main/gpt-4o"},
        "chain": [
            {"tier": 0, "source": "openai-main", "model": "gpt-4o", "protocol": "openai-chat", "resolvable": True,
             "breaker": {"state": "open", "openInPods": 1, "reportingPods": 1, "lastFailure": "500", "lastFailureAt": "2026-01-01T00:00:00Z"}},
            {"tier": 1, "source": "local-llama", "model": "llama", "protocol": "openai-chat", "resolvable": True,
             "breaker": {"state": "closed", "reportingPods": 1}},
            {"tier": 2, "source": "anthropic", "model": "claude", "protocol": "anthropic-messages", "resolvable": False,
             "reason": "SecretNotFound", "message": "Secret anthropic-key not found"},
        ],
        "active": {"tier": 1, "source": "local-llama", "model": "llama", "lastUsedAt": "2026-01-01T00:00:01Z", "pods": 1},
        "pods": {"selected": 1, "configured": 1},
        "conditions": [{"type": "Ready", "status": "True", "reason": "Serving", "message": "serving from tier1"}],
    },
}


def test_selector_string() -> None:
    assert selector_string(None) == ""
    assert selector_string({"matchLabels": {"b": "2", "a": "1"}, "matchExpressions": [
        {"key": "env", "operator": "In", "values": ["x", "y"]}, {"key": "gone", "operator": "DoesNotExist"},
        {"key": "t", "operator": "NotIn", "values": ["z"]}, {"key": "has", "operator": "Exists"}]}) == (
        "a=1,b=2,env in (x,y),!gone,t notin (z),has")


def test_sidecar_admin_port_and_proxy_path() -> None:
    pod = {"spec": {"containers": [{"name": "app"}, {"name": "switchyard", "ports": [{"name": "sy-admin", "containerPort": 4101}]}]}}
    assert sidecar_admin_port(pod) == 4101
    assert sidecar_admin_port({"spec": {"containers": [{"name": "app"}]}}) is None
    assert pod_proxy_base("http://127.0.0.1:8001", "team-a", "app-0", 4001) == (
        "http://127.0.0.1:8001/api/v1/namespaces/team-a/pods/app-0:4001/proxy")


def test_status_shows_chain_breakers_active_and_why_a_tier_cannot_serve() -> None:
    lines, code = render_status(BINDING, [{"metadata": {"name": "app-0"}, "status": {"phase": "Running", "podIP": "10.0.0.5"}}])
    text = "\n".join(lines)
    assert code == BAD_NEWS  # tier 2 cannot serve
    assert "1*" in text and "open in 1/1 pods, last failure 500" in text
    lines, _ = render_status({**BINDING, "status": {**BINDING["status"], "chain": [
        {"tier": 0, "source": "a", "model": "m", "resolvable": True, "breaker": {
            "state": "disabled", "disabledInPods": 1, "rateLimitedInPods": 1, "reportingPods": 2,
            "disabledReason": "401", "lastFailure": "401", "lastFailureClass": "permanent"}}]}}, [])
    assert "disabled, rate-limited in 1/2 pods, disabled in 1/2 pods, disabled for 401, last failure 401 [permanent]" in "\n".join(lines)
    assert "no: SecretNotFound" in text and "tier2: Secret anthropic-key not found" in text
    assert "active:   tier1 local-llama/llama" in text
    assert "app-0  Running  10.0.0.5" in text
    assert "Ready=True (Serving)" in text


def test_status_shows_the_bindings_usage_and_cost() -> None:
    usage = {"inputTokens": 1234567, "outputTokens": 8910, "cachedInputTokens": 1000000, "cacheWriteTokens": 300,
             "reasoningTokens": 0, "pods": 2, "cost": [{"currency": "EUR", "amount": "0.002775"}, {"currency": "USD", "amount": "12.5"}]}
    lines, _ = render_status({**BINDING, "status": {**BINDING["status"], "usage": usage}}, [])
    text = "\n".join(lines)
    assert "  usage:    1,234,567 tokens in (1,000,000 read from cache, 300 written to it), 8,910 out" in text
    assert "  cost:     0.002775 EUR, 12.5 USD" in text
    assert "since each of 2 pods' sidecar started" in text
    lines, _ = render_status(BINDING, [])
    assert "  usage:    - (no usage reported yet)" in lines


def test_models_marks_default_and_allow_list() -> None:
    src = {"metadata": {"name": "openai-main", "namespace": "team-a"},
           "spec": {"provider": "openai", "defaultModel": "gpt-4o", "models": ["gpt-4o", "gpt-5"]},
           "status": {"catalog": {"models": ["gpt-4o", "gpt-4o-mini"], "count": 2, "fetchedAt": "2026-01-01T00:00:00Z"},
                      "conditions": [{"type": "CredentialValid", "status": "True", "reason": "Valid"},
                                     {"type": "CatalogReady", "status": "True", "reason": "Fetched"}]}}
    lines, code = render_models(src)
    text = "\n".join(lines)
    assert "gpt-4o       default, allowed" in text and "gpt-4o-mini  not in spec.models" in text
    assert "warning: gpt-5 is configured but not in the catalog" in text and code == BAD_NEWS


def test_render_test() -> None:
    ok = {"binding": "support", "ok": True, "unbound": False, "prompt_sent": False, "tiers": [
        {"tier": 0, "source": "a", "model": "m", "ok": True, "checks": {"source_resolved": True}, "breaker": "closed"},
        {"tier": 1, "source": "b", "model": "n", "ok": False, "checks": {"source_resolved": True, "credential_present": False},
         "breaker": "closed", "problem": "SecretNotFound"}]}
    lines, code = render_test("support", [PodAnswer("app-0", 200, ok)])
    text = "\n".join(lines)
    assert code == OK and "pod app-0: ok  (prompt sent: no)" in text and "failed: credential_present" in text
    assert render_test("support", [PodAnswer("app-1", error="refused")])[1] == FAILED
    assert render_test("support", [])[1] == FAILED


def test_explain_names_the_serving_tier_and_why_earlier_tiers_were_passed_over() -> None:
    status = {"version": "v1", "loaded_at": 1.0, "bindings": [{
        "name": "support", "unbound": False, "last_used": {"tier": 2, "source": "c", "model": "z", "at": 1700000000.0},
        "tiers": [
            {"tier": 0, "source": "a", "model": "x", "resolvable": True, "problem": None,
             "breaker": {"state": "open", "retry_in_seconds": 12.4, "last_failure": "500", "last_failure_class": "transient",
                         "last_failure_at": 1699999999.0, "transitions": [{"at": 1699999999.0, "from": "closed", "to": "open", "reason": "2 failures"}]}},
            {"tier": 1, "source": "b", "model": "y", "resolvable": True, "problem": None,
             "breaker": {"state": "rate-limited", "rate_limited_for_seconds": 30.0, "last_failure": "429"}},
            {"tier": 2, "source": "c", "model": "z", "resolvable": True, "problem": None, "breaker": {"state": "closed"}},
        ]}]}
    lines, code = explain_binding("support", [("app-0", status)])
    text = "\n".join(lines)
    assert code == BAD_NEWS
    assert "by tier2 c/z (a fallback)" in text
    assert "tier0 a/x: passed over: breaker open (retry in 12s); last failure 500 [transient]" in text
    assert "tier1 b/y: passed over: rate-limited by the upstream for 30s more" in text
    assert "closed -> open: 2 failures" in text
    unbound = {"bindings": [{"name": "parked", "unbound": True, "tiers": []}]}
    assert "unbound" in explain_binding("parked", [("app-0", unbound)])[0][0]
    assert explain_binding("nobody", [("app-0", unbound)])[1] == FAILED


def test_explain_lists_the_keys_of_a_several_key_tier_by_index() -> None:
    status = {"version": "v1", "bindings": [{
        "name": "support", "unbound": False, "last_used": {"tier": 0, "source": "a", "model": "x", "at": 1700000000.0},
        "tiers": [{"tier": 0, "source": "a", "model": "x", "resolvable": True, "breaker": {"state": "closed"}, "keys": [
            {"index": 0, "state": "rate-limited", "rate_limited_for_seconds": 20.2, "last_failure": "429(retry in 30s)"},
            {"index": 1, "state": "disabled", "disabled_reason": "401"},
            {"index": 2, "state": "unresolvable", "problem": "SecretKeyMissing: Secret k has no key c"},
            {"index": 3, "state": "usable"}]}]}]}
    text = "\n".join(explain_binding("support", [("app-0", status)])[0])
    assert "      key 0: rate-limited (21s more; last failure 429(retry in 30s))" in text
    assert "      key 1: disabled (401)" in text
    assert "      key 2: unresolvable (SecretKeyMissing: Secret k has no key c)" in text
    assert "      key 3: usable" in text


def test_status_shows_the_bindings_limits_when_it_has_some() -> None:
    limits = {"requestsPerMinute": {"limit": 600, "used": 212, "left": 388, "reportingPods": 3},
              "tokensPerDay": {"limit": 2000000, "used": 4113, "left": 1995887, "reportingPods": 3,
                               "resetsAt": "2026-12-06T00:00:00Z"}}
    lines, _ = render_status({**BINDING, "status": {**BINDING["status"], "limits": limits}}, [])
    text = "\n".join(lines)
    assert "  limits:   requestsPerMinute 212 of 600 used (388 left)" in text
    assert "            tokensPerDay 4,113 of 2,000,000 used (1,995,887 left), resets 2026-12-06T00:00:00Z" in text
    lines, _ = render_status(BINDING, [])
    assert not any("limits:" in line for line in lines)
