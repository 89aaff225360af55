"""Switchyard: a Kubernetes-native LLM gateway."""

__version__ = "0.1.0"
