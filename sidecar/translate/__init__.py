"""Protocol translation: one adapter per wire protocol around one neutral form.

`neutral` is the meeting point; `base` the adapter contract and registry; `sse` the
event-stream codec; `openai_chat`, `anthropic_messages`, `gemini` and
`openai_responses` the adapters. Everything here is pure (no I/O, no clock).
"""

import importlib

ADAPTER_MODULES = ("openai_chat", "anthropic_messages", "gemini", "openai_responses")


def load_all() -> None:
    """Import every adapter module present, which registers it."""
    for name in ADAPTER_MODULES:
        try:
            importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
