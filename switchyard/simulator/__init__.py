"""Simulated upstream LLM providers, for tests, the bench and `switchyard simulate`.

Switchyard's promises are about what happens when an upstream misbehaves, so the
project needs upstreams that misbehave on demand and speak each provider's wire format
exactly: OpenAI Chat Completions (also OpenRouter and openai-compatible servers),
Anthropic Messages and Gemini generateContent, streaming and not. This package is
that emulator:

- `Simulator` (server.py): an async context manager on a loopback port, for tests;
- `build_app` / `Mount` (app.py): the aiohttp app, with a JSON control API at `/_sim/`;
- `Reply`, `ToolCall`, `Usage`, `RawReply` (replies.py): scripted answers;
- `Fault`, `parse_fault_spec` (faults.py): 429/5xx/529/4xx, hang, empty, reset,
  malformed, slow, error-event — queued or persistent (every Nth, seeded rate);
- wire_openai.py, wire_openai_responses.py, wire_anthropic.py, wire_gemini.py: the
  wire formats (pure; the Responses API is the `openai-responses` flavour);
- cli.py: `switchyard simulate`.

User documentation: docs/simulate.md.
"""

from .app import FLAVOURS, PROVIDERS, Mount, MountState, RecordedRequest, build_app
from .faults import FAULT_KINDS, Fault, parse_fault_spec
from .replies import RawReply, Reply, ToolCall, Usage
from .server import Simulator

__all__ = [
    "FAULT_KINDS",
    "FLAVOURS",
    "PROVIDERS",
    "Fault",
    "Mount",
    "MountState",
    "RawReply",
    "RecordedRequest",
    "Reply",
    "Simulator",
    "ToolCall",
    "Usage",
    "build_app",
    "parse_fault_spec",
]
