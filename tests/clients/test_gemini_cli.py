"""Gemini CLI (`gemini -p`) through standalone Switchyard, against the simulator.

Gemini CLI speaks the Gemini API to the server root (`GOOGLE_GEMINI_BASE_URL`). With
`-m ALIAS` it makes only the streaming call (no JSON-mode routing call first, whose
schema mismatch would make it retry for over a minute). The primary is a Gemini tier,
the fallback an OpenAI-chat one.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from realcli import CLIENT_KEY, KEYS, CliResult, Stack, binding, client_binary, run_cli, stack

from switchyard.simulator import Reply, ToolCall

CLIENT = "gemini-cli"
BINDING = binding("gemini-cli", ["gemini-*"], primary="gemini", fallback="openai")
ALIAS = "gemini-2.5-pro"
PROMPT = "Say hello to the simulator"

SETTINGS = {
    "privacy": {"usageStatisticsEnabled": False},
    "telemetry": {"enabled": False},
    "general": {"disableAutoUpdate": True, "disableUpdateNag": True, "enableAutoUpdate": False, "enableAutoUpdateNotification": False},
    "security": {"auth": {"selectedType": "gemini-api-key"}, "folderTrust": {"enabled": False}},
    "ui": {"hideTips": True, "hideBanner": True},
}


async def gemini(st: Stack, tmp: Path, model: str | None = ALIAS) -> CliResult:
    home = tmp / "home"
    work = tmp / "work"
    work.mkdir(exist_ok=True)
    (home / ".gemini").mkdir(parents=True, exist_ok=True)
    (home / ".gemini" / "settings.json").write_text(json.dumps(SETTINGS))
    env = st.env(home)
    env.update(GEMINI_API_KEY=CLIENT_KEY, GOOGLE_GEMINI_BASE_URL=st.api, GEMINI_CLI_TRUST_WORKSPACE="true", GEMINI_CLI_NO_RELAUNCH="true")
    argv = [str(client_binary("gemini-cli")), *(["-m", model] if model else []), "-p", PROMPT, "--output-format", "json"]
    res = await run_cli(argv, env, cwd=work)
    assert res.code is not None, "gemini did not finish within its deadline (killed)\n" + res.describe() + "\n" + st.gateway_log()
    return res


def answer(st: Stack, res: CliResult) -> str:
    assert res.code == 0, res.describe() + "\n" + st.gateway_log()
    assert st.tripwire.attempts == [], f"gemini tried to leave the machine: {st.tripwire.attempts}"
    assert res.leftovers == [], f"gemini left processes running: {res.leftovers}"
    try:
        out = json.loads(res.stdout)
    except ValueError:
        raise AssertionError("gemini did not print its JSON result\n" + res.describe()) from None
    assert "error" not in out or not out["error"], res.describe()
    return out["response"]


async def only_request_line(st: Stack) -> dict:
    lines = await st.logged("gemini-cli", 1)
    assert len(lines) == 1, (lines, st.gateway_log())
    return lines[0]


def user_texts(contents: list[dict]) -> list[str]:
    return [p["text"] for c in contents if c.get("role") == "user" for p in c.get("parts", []) if "text" in p]


async def test_gemini_answered_by_the_gemini_primary(tmp_path: Path) -> None:
    async with stack(tmp_path, BINDING) as st:
        res = await gemini(st, tmp_path)
        text = answer(st, res)
        # Gemini CLI's session context and the prompt arrive as one user turn; the
        # simulator echoes the turn.
        assert text.startswith("Simulated gemini reply from sim-gemini. You said: <session_context>"), res.describe()
        [req] = st.generations("gemini")
        assert (req.method, req.path, req.query, req.model, req.stream) == (
            "POST", "/gemini/v1beta/models/sim-gemini:streamGenerateContent", {"alt": "sse"}, "sim-gemini", True)
        assert req.headers["x-goog-api-key"] == KEYS["gemini"] and CLIENT_KEY.encode() not in req.raw
        assert PROMPT in user_texts(req.body["contents"])
        assert req.body["tools"][0]["functionDeclarations"], "Gemini CLI's function declarations reach the tier"
        assert st.generations("openai") == []
        line = await only_request_line(st)
        assert (line["ingress"], line["stream"], line["status"], line["tier"], line["source"], line["trail"]) == (
            "gemini", True, 200, 0, "gemini", []), line
        assert (await st.last_used("gemini-cli"))["tier"] == 0


async def test_gemini_primary_429_answered_by_an_openai_chat_fallback(tmp_path: Path) -> None:
    async with stack(tmp_path, BINDING) as st:
        st.sim.fault("gemini", "429", persistent=True, retry_after=60)
        res = await gemini(st, tmp_path)
        text = answer(st, res)
        assert text.startswith("Simulated openai reply from sim-gpt. You said:"), res.describe()
        assert [r.outcome for r in st.generations("gemini")] == ["fault:429"]
        [req] = st.generations("openai")
        assert (req.method, req.path, req.model, req.stream, req.outcome) == ("POST", "/openai/v1/chat/completions", "sim-gpt", True, "ok")
        assert req.headers["authorization"] == f"Bearer {KEYS['openai']}" and CLIENT_KEY.encode() not in req.raw
        assert PROMPT in json.dumps(req.body["messages"][-1])
        assert any(t.get("type") == "function" for t in req.body["tools"])
        line = await only_request_line(st)
        assert (line["ingress"], line["status"], line["tier"], line["source"]) == ("gemini", 200, 1, "openai"), line
        assert any("429" in t for t in line["trail"]), line
        last = await st.last_used("gemini-cli")
        assert (last["tier"], last["source"], last["model"]) == (1, "openai", "sim-gpt")


async def test_gemini_tool_round_trip_through_the_openai_chat_fallback(tmp_path: Path) -> None:
    """A read_file call answered by the OpenAI-chat fallback, run by Gemini CLI, and its
    functionResponse sent back as a tool message paired with the call's id."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "hello.txt").write_text("MAGIC-TOKEN-4242\n")
    async with stack(tmp_path, BINDING) as st:
        st.sim.fault("gemini", "429", persistent=True, retry_after=60)
        st.sim.script("openai", Reply(text="Reading it.", tool_calls=[ToolCall("read_file", {"file_path": str(work / "hello.txt")}, id="call_read_1")]),
                      Reply(text="The file says MAGIC."))
        res = await gemini(st, tmp_path)
        assert answer(st, res) == "The file says MAGIC.", res.describe()
        first, second = st.generations("openai")
        assert first.outcome == second.outcome == "scripted"
        call, result = second.body["messages"][-2:]
        assert call["role"] == "assistant" and call["tool_calls"][0]["function"]["name"] == "read_file"
        assert json.loads(call["tool_calls"][0]["function"]["arguments"]) == {"file_path": str(work / "hello.txt")}
        assert result["role"] == "tool" and result["tool_call_id"] == call["tool_calls"][0]["id"]
        assert "MAGIC-TOKEN-4242" in json.dumps(result["content"])
        assert len(st.generations("gemini")) == 1
        lines = await st.logged("gemini-cli", 2)
        assert [(r["status"], r["tier"], r["source"]) for r in lines] == [(200, 1, "openai")] * 2, lines


# Without -m, Gemini CLI first makes a JSON-mode routing call (generateContent with
# generationConfig.responseJsonSchema) and then the streaming call. Its routing schema
# uses the Gemini Schema's upper-case type names inside responseJsonSchema:
# {"type": "OBJECT", "properties": {"complexity_reasoning": {"type": "STRING"}, ...}}.
ROUTING_ANSWER = {"complexity_reasoning": "a greeting", "complexity_score": 3}


class UpperCaseSchemaTypes(AssertionError):
    """The routing call's schema reached (or was refused for) a non-Gemini tier with
    Gemini's upper-case type names, which are not JSON Schema."""




def _types(schema: object) -> set[str]:
    if isinstance(schema, dict):
        found = {schema["type"]} if isinstance(schema.get("type"), str) else set()
        return found.union(*(_types(v) for v in schema.values()))
    if isinstance(schema, list):
        return set().union(*(_types(v) for v in schema))
    return set()


@pytest.mark.parametrize("fallback", ["openai", "anthropic"])
async def test_gemini_default_model_routing_call_through_a_fallback(tmp_path: Path, fallback: str) -> None:
    async with stack(tmp_path, binding("gemini-cli", ["gemini-*"], primary="gemini", fallback=fallback)) as st:
        st.sim.fault("gemini", "429", persistent=True, retry_after=60)
        # Both answer structured output natively (builtin-anthropic has output_config.format):
        # the answer is the JSON text itself.
        routing = Reply(text=json.dumps(ROUTING_ANSWER))
        st.sim.script(fallback, routing, Reply(text="MAIN ANSWER from the fallback"))
        res = await gemini(st, tmp_path, model=None)
        lines = await st.logged("gemini-cli", 2)
        refused = [r for r in lines if r["status"] == 400 and "root is an object" in (r.get("error") or "")]
        if refused:
            raise UpperCaseSchemaTypes(f"the gateway answered the routing call 400: {refused[0]['error']!r}")
        gens = st.generations(fallback)
        assert gens, res.describe() + "\n" + st.gateway_log()
        if fallback == "openai":
            schema = gens[0].body["response_format"]["json_schema"]["schema"]
        else:
            schema = gens[0].body["output_config"]["format"]["schema"]
        if any(t != t.lower() for t in _types(schema)):
            raise UpperCaseSchemaTypes(f"the {fallback} tier received the schema {schema}")
        assert answer(st, res) == "MAIN ANSWER from the fallback", res.describe()
        assert [(r["status"], r["tier"]) for r in lines] == [(200, 1), (200, 1)], lines
        assert [r.endpoint for r in gens] == ["generate", "generate"] and [r.stream for r in gens] == [False, True]
