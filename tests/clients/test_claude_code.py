"""Claude Code (`claude -p`) through standalone Switchyard, against the simulator.

Claude Code speaks Anthropic Messages to the server root (`ANTHROPIC_BASE_URL`). The
binding's primary is an Anthropic tier; its fallback an OpenAI-chat one, so when the
primary answers 429 the gateway translates Claude Code's request and the answer comes
from another protocol. Claude Code itself would retry a 429 for minutes: the test
proves it never sees one.
"""

from __future__ import annotations

import json
from pathlib import Path

from realcli import CLIENT_KEY, KEYS, CliResult, Stack, binding, client_binary, run_cli, stack

from switchyard.simulator import Reply, ToolCall

CLIENT = "claude-code"
BINDING = binding("claude-code", ["claude-*"], primary="anthropic", fallback="openai")
PROMPT = "Say hello to the simulator"


class MidConversationSystemRefused(AssertionError):
    """The gateway refused Claude Code's first request for its `role: system` turn."""


def claude_env(home: Path, st: Stack) -> dict[str, str]:
    env = st.env(home)
    env.update(
        ANTHROPIC_BASE_URL=st.api,
        ANTHROPIC_API_KEY=CLIENT_KEY,
        CLAUDE_CONFIG_DIR=str(home / ".claude"),
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",  # no telemetry, error reports, update checks
        DISABLE_TELEMETRY="1",
        DISABLE_ERROR_REPORTING="1",
        DISABLE_AUTOUPDATER="1",
    )
    return env


async def claude(st: Stack, tmp: Path) -> tuple[CliResult, dict]:
    work = tmp / "work"
    work.mkdir(exist_ok=True)
    argv = [str(client_binary("claude-code")), "-p", PROMPT, "--output-format", "json"]
    res = await run_cli(argv, claude_env(tmp / "home", st), cwd=work)
    assert res.code is not None, "claude did not finish within its deadline (killed)\n" + res.describe() + "\n" + st.gateway_log()
    assert st.tripwire.attempts == [], f"claude tried to leave the machine: {st.tripwire.attempts}"
    assert res.leftovers == [], f"claude left processes running: {res.leftovers}"
    try:
        out = json.loads(res.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise AssertionError("claude did not print its JSON result\n" + res.describe()) from None
    if "messages.1.role: must be user or assistant" in str(out.get("result")):
        raise MidConversationSystemRefused(res.describe())
    assert res.code == 0 and out.get("is_error") is False, res.describe() + "\n" + st.gateway_log()
    return res, out


async def only_request_line(st: Stack) -> dict:
    lines = await st.logged("claude-code", 1)
    assert len(lines) == 1, (lines, st.gateway_log())
    return lines[0]


async def test_claude_code_answered_by_the_anthropic_primary(tmp_path: Path) -> None:
    async with stack(tmp_path, BINDING) as st:
        res, out = await claude(st, tmp_path)
        assert out["result"].startswith("Simulated anthropic reply from sim-claude."), res.describe()
        assert PROMPT in out["result"]
        [req] = st.generations("anthropic")
        assert (req.method, req.path, req.model, req.stream) == ("POST", "/anthropic/v1/messages", "sim-claude", True)
        assert req.headers["x-api-key"] == KEYS["anthropic"] and CLIENT_KEY.encode() not in req.raw
        assert req.headers.get("anthropic-version")
        assert len(req.body["tools"]) >= 10  # Claude Code's own tool definitions, passed through
        assert st.generations("openai") == []
        line = await only_request_line(st)
        assert (line["ingress"], line["status"], line["tier"], line["source"], line["trail"]) == ("anthropic-messages", 200, 0, "anthropic", [])
        assert (await st.last_used("claude-code"))["tier"] == 0


async def test_claude_code_primary_429_answered_by_an_openai_chat_fallback(tmp_path: Path) -> None:
    async with stack(tmp_path, BINDING) as st:
        st.sim.fault("anthropic", "429", persistent=True, retry_after=60)
        res, out = await claude(st, tmp_path)
        assert out["result"].startswith("Simulated openai reply from sim-gpt."), res.describe()
        assert PROMPT in out["result"]
        assert [r.outcome for r in st.generations("anthropic")] == ["fault:429"]
        [req] = st.generations("openai")
        assert (req.method, req.path, req.model, req.stream, req.outcome) == ("POST", "/openai/v1/chat/completions", "sim-gpt", True, "ok")
        assert req.headers["authorization"] == f"Bearer {KEYS['openai']}" and CLIENT_KEY.encode() not in req.raw
        line = await only_request_line(st)
        assert (line["ingress"], line["status"], line["tier"], line["source"]) == ("anthropic-messages", 200, 1, "openai"), line
        assert any("429" in t for t in line["trail"]), line
        last = await st.last_used("claude-code")
        assert (last["tier"], last["source"], last["model"]) == (1, "openai", "sim-gpt")
        assert res.seconds < 20, f"the fallback should answer at once, not after Claude Code's own retries: {res.seconds:.1f}s"


async def test_claude_code_tool_round_trip_through_the_openai_chat_fallback(tmp_path: Path) -> None:
    """A Read tool call answered by the OpenAI-chat fallback, run by Claude Code, and its
    result sent back: both turns translated, the tier ids kept paired."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "hello.txt").write_text("MAGIC-TOKEN-4242\n")
    async with stack(tmp_path, BINDING) as st:
        st.sim.fault("anthropic", "429", persistent=True, retry_after=60)
        st.sim.script("openai", Reply(text="Reading it.", tool_calls=[ToolCall("Read", {"file_path": str(work / "hello.txt")}, id="call_read_1")]),
                      Reply(text="The file says MAGIC."))
        res, out = await claude(st, tmp_path)
        assert out["result"] == "The file says MAGIC." and out["num_turns"] == 2 and out["permission_denials"] == [], res.describe()
        first, second = st.generations("openai")
        assert first.outcome == second.outcome == "scripted"
        call, result = second.body["messages"][-2:]
        assert call["role"] == "assistant" and call["tool_calls"][0]["id"] == "call_read_1"
        assert call["tool_calls"][0]["function"]["name"] == "Read"
        assert json.loads(call["tool_calls"][0]["function"]["arguments"]) == {"file_path": str(work / "hello.txt")}
        assert result["role"] == "tool" and result["tool_call_id"] == "call_read_1" and "MAGIC-TOKEN-4242" in result["content"]
        # The primary was tried once; its Retry-After kept the second turn off it.
        assert len(st.generations("anthropic")) == 1
        lines = await st.logged("claude-code", 2)
        assert [(r["status"], r["tier"]) for r in lines] == [(200, 1), (200, 1)], lines
        assert len(lines[1]["trail"]) == 1 and lines[1]["trail"][0].startswith("tier0=rate-limited"), lines


async def test_claude_code_every_tier_429_waits_the_shortest_retry_after(tmp_path: Path) -> None:
    """Both tiers rate-limited (Retry-After 2 s and 1 s): the gateway answers Claude Code
    one 429 in Anthropic's shape with the shortest wait; Claude Code honours it, and its
    retry is served by the tier that is free again, well before its own backoff schedule."""
    async with stack(tmp_path, BINDING) as st:
        st.sim.fault("anthropic", "429", retry_after=2)
        st.sim.fault("openai", "429", retry_after=1)
        res, out = await claude(st, tmp_path)
        assert out["result"].startswith("Simulated openai reply from sim-gpt."), res.describe()
        lines = await st.logged("claude-code", 2)
        assert [(r["status"], r["outcome"], r["tier"]) for r in lines] == [(429, "all-tiers-failed", None), (200, "success", 1)], lines
        assert lines[0]["trail"] == ["tier0=429(retry in 2s)", "tier1=429(retry in 1s)"], lines
        assert [r.outcome for r in st.generations("anthropic")] == ["fault:429"]  # still rate-limited at the retry
        assert [r.outcome for r in st.generations("openai")] == ["fault:429", "ok"]
        assert res.seconds < 20, res.describe()
