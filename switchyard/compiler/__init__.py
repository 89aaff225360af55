"""The compiler shared by the operator and standalone mode (pure; see compile.py)."""

from .compile import BindingReport, CompileResult, TierReport, compile_config, secrets_lookup

__all__ = ["BindingReport", "CompileResult", "TierReport", "compile_config", "secrets_lookup"]
