"""Codex CLI (`codex exec`) through standalone Switchyard, against the simulator.

Codex speaks only the OpenAI Responses API (streaming, `/v1/responses`), configured as a
custom `model_providers` entry in `$CODEX_HOME/config.toml`. No tier here speaks
Responses: the primary is an OpenAI-chat tier, the fallback an Anthropic one, so every
answer is a translation, and a 429 from the primary moves Codex's request to Anthropic.
"""

from __future__ import annotations

import json
from pathlib import Path

from realcli import CLIENT_KEY, KEYS, CliResult, Stack, binding, client_binary, run_cli, stack

from switchyard.simulator import Reply, ToolCall

CLIENT = "codex"
BINDING = binding("codex", ["codex", "gpt-*"], primary="openai", fallback="anthropic")
PROMPT = "Say hello to the simulator"


def codex_home(home: Path, st: Stack) -> Path:
    ch = home / ".codex"
    ch.mkdir(parents=True, exist_ok=True)
    (ch / "config.toml").write_text(f"""
model = "gpt-5"
model_provider = "switchyard"
check_for_update_on_startup = false

[model_providers.switchyard]
name = "Switchyard"
base_url = "{st.api}/v1"
env_key = "SWITCHYARD_CLIENT_KEY"
wire_api = "responses"
request_max_retries = 0
stream_max_retries = 0

[analytics]
enabled = false

[feedback]
enabled = false

# Everything that would fetch from GitHub or chatgpt.com at start (plugin sync, apps).
[features]
plugins = false
remote_plugin = false
plugin_sharing = false
apps = false
in_app_updates = false
""")
    return ch


async def codex(st: Stack, tmp: Path) -> CliResult:
    home = tmp / "home"
    work = tmp / "work"
    work.mkdir(exist_ok=True)
    env = st.env(home)
    env.update(CODEX_HOME=str(codex_home(home, st)), SWITCHYARD_CLIENT_KEY=CLIENT_KEY, RUST_LOG="warn")
    argv = [str(client_binary("codex")), "exec", "--skip-git-repo-check", "--sandbox", "read-only", PROMPT]
    res = await run_cli(argv, env, cwd=work)
    assert res.code is not None, "codex did not finish within its deadline (killed)\n" + res.describe() + "\n" + st.gateway_log()
    return res


async def only_request_line(st: Stack) -> dict:
    lines = await st.logged("codex", 1)
    assert len(lines) == 1, (lines, st.gateway_log())
    return lines[0]


def check_ran(st: Stack, res: CliResult) -> str:
    assert res.code == 0, res.describe() + "\n" + st.gateway_log()
    assert st.tripwire.attempts == [], f"codex tried to leave the machine: {st.tripwire.attempts}"
    assert res.leftovers == [], f"codex left processes running: {res.leftovers}"
    return res.stdout.strip()


async def test_codex_answered_by_the_openai_chat_primary(tmp_path: Path) -> None:
    async with stack(tmp_path, BINDING) as st:
        res = await codex(st, tmp_path)
        answer = check_ran(st, res)
        assert answer == f"Simulated openai reply from sim-gpt. You said: {PROMPT}", res.describe()
        [req] = st.generations("openai")
        assert (req.method, req.path, req.model, req.stream) == ("POST", "/openai/v1/chat/completions", "sim-gpt", True)
        assert req.headers["authorization"] == f"Bearer {KEYS['openai']}" and CLIENT_KEY.encode() not in req.raw
        assert any(t.get("type") == "function" for t in req.body.get("tools", [])), "Codex's function tools reach the tier"
        assert st.generations("anthropic") == []
        line = await only_request_line(st)
        assert (line["ingress"], line["stream"], line["status"], line["tier"], line["source"], line["trail"]) == (
            "openai-responses", True, 200, 0, "openai", []), line
        assert (await st.last_used("codex"))["tier"] == 0


async def test_codex_primary_429_answered_by_an_anthropic_fallback(tmp_path: Path) -> None:
    async with stack(tmp_path, BINDING) as st:
        st.sim.fault("openai", "429", persistent=True, retry_after=60)
        res = await codex(st, tmp_path)
        answer = check_ran(st, res)
        # Codex sends its environment context and the prompt as two user messages; an
        # Anthropic tier gets them as one user turn with two text blocks (the simulator
        # echoes the whole turn).
        assert answer.startswith("Simulated anthropic reply from sim-claude. You said: <environment_context>"), res.describe()
        assert [r.outcome for r in st.generations("openai")] == ["fault:429"]
        [req] = st.generations("anthropic")
        assert (req.method, req.path, req.model, req.stream, req.outcome) == ("POST", "/anthropic/v1/messages", "sim-claude", True, "ok")
        assert req.headers["x-api-key"] == KEYS["anthropic"] and req.headers.get("anthropic-version")
        assert [m["role"] for m in req.body["messages"]] == ["user"]
        assert req.body["messages"][-1]["content"][-1] == {"type": "text", "text": PROMPT}
        assert any(t.get("name") == "exec_command" for t in req.body["tools"])
        assert CLIENT_KEY.encode() not in req.raw
        line = await only_request_line(st)
        assert (line["ingress"], line["status"], line["tier"], line["source"]) == ("openai-responses", 200, 1, "anthropic"), line
        assert any("429" in t for t in line["trail"]), line
        last = await st.last_used("codex")
        assert (last["tier"], last["source"], last["model"]) == (1, "anthropic", "sim-claude")


async def test_codex_tool_round_trip_through_the_anthropic_fallback(tmp_path: Path) -> None:
    """An exec_command call answered by the Anthropic fallback, run by Codex (in its
    read-only sandbox), and its output sent back as a tool_result. The answer's signed
    thinking travels to Codex as a Responses reasoning item and comes back intact at the
    head of the assistant turn (Anthropic wants it there in a tool loop)."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "hello.txt").write_text("MAGIC-TOKEN-4242\n")
    async with stack(tmp_path, BINDING) as st:
        st.sim.fault("openai", "429", persistent=True, retry_after=60)
        st.sim.script("anthropic", Reply(text="Reading it.", thinking="I should read the file first.", signature="c2lnbmF0dXJlLW9uZQ==",
                                         tool_calls=[ToolCall("exec_command", {"cmd": "cat hello.txt"}, id="toolu_exec_1")]),
                      Reply(text="The file says MAGIC."))
        res = await codex(st, tmp_path)
        assert check_ran(st, res) == "The file says MAGIC.", res.describe()
        first, second = st.generations("anthropic")
        assert first.outcome == second.outcome == "scripted"
        call, result = second.body["messages"][-2:]
        assert call["role"] == "assistant"
        assert call["content"][0] == {"type": "thinking", "thinking": "I should read the file first.", "signature": "c2lnbmF0dXJlLW9uZQ=="}
        [use] = [b for b in call["content"] if b["type"] == "tool_use"]
        assert (use["id"], use["name"], use["input"]["cmd"]) == ("toolu_exec_1", "exec_command", "cat hello.txt")
        [res_block] = [b for b in result["content"] if b["type"] == "tool_result"]
        assert res_block["tool_use_id"] == "toolu_exec_1" and "MAGIC-TOKEN-4242" in json.dumps(res_block["content"])
        assert len(st.generations("openai")) == 1
        lines = await st.logged("codex", 2)
        assert [(r["status"], r["tier"], r["source"]) for r in lines] == [(200, 1, "anthropic")] * 2, lines


async def test_codex_hung_primary_answered_by_the_anthropic_fallback_after_first_byte_deadline(tmp_path: Path) -> None:
    """The primary accepts the request and never answers: at its first-byte deadline
    (2 s here) the gateway moves on, and Codex, which waits, gets the fallback's answer."""
    async with stack(tmp_path, BINDING, first_byte_seconds=2) as st:
        st.sim.fault("openai", "hang", persistent=True, max_seconds=15)
        res = await codex(st, tmp_path)
        assert check_ran(st, res).startswith("Simulated anthropic reply from sim-claude."), res.describe()
        assert [r.outcome for r in st.generations("openai")] == ["fault:hang"]
        line = await only_request_line(st)
        assert (line["status"], line["tier"], line["source"]) == (200, 1, "anthropic"), line
        assert len(line["trail"]) == 1 and line["trail"][0].startswith("tier0=timeout"), line
        assert 2 <= res.seconds < 15, res.describe()
