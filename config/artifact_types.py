"""The four artifact types, alone: what a command line needs before it loads their schemas.

``config/artifacts.py`` holds the typed (pydantic) schemas and re-exports :class:`ArtifactType`; this module
imports nothing heavy, so ``promptci run`` can name its pipelines (and start its warm promptfoo, the critical
path of a small run) before pydantic is imported.
"""

from __future__ import annotations

from enum import StrEnum


class ArtifactType(StrEnum):
    """The artifact kinds; each gets its own WorkflowTemplate and default directory."""

    PROMPT = "prompt"
    MODEL_CONFIG = "model-config"
    RAG_CONFIG = "rag-config"
    GUARDRAIL_POLICY = "guardrail-policy"

    @property
    def default_dir(self) -> str:
        """Return the repo directory this type lives in by default (``prompts/`` for prompts)."""
        return {
            ArtifactType.PROMPT: "prompts",
            ArtifactType.MODEL_CONFIG: "model-configs",
            ArtifactType.RAG_CONFIG: "rag-configs",
            ArtifactType.GUARDRAIL_POLICY: "guardrails",
        }[self]
