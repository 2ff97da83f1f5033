"""The model catalog (``config/models.yaml``): which model ids exist and their limits."""

from __future__ import annotations

import difflib
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from config.yamlio import load_file

DEFAULT_CATALOG = Path(__file__).with_name("models.yaml")


class ModelEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    provider: Literal["openai", "anthropic", "google", "ollama", "openai-compatible", "local"]
    provider_model: str | None = None  # the provider's own id when it differs from ours
    api_base_env: str | None = None  # env var holding the base URL (openai-compatible / vLLM / local)
    context_window: int = Field(gt=0)
    max_output_tokens: int = Field(ge=0)
    encoding: Literal["cl100k_base", "o200k_base"]
    status: Literal["active", "deprecated", "retired"]
    replacement: str | None = None
    kind: Literal["chat", "embedding"] = "chat"
    aliases: list[str] = Field(default_factory=list)


class Catalog(BaseModel):
    model_config = ConfigDict(extra="forbid")

    models: dict[str, ModelEntry]

    @model_validator(mode="after")
    def _aliases_unique(self) -> Catalog:
        seen: dict[str, str] = {}
        for mid, entry in self.models.items():
            for name in [mid, *entry.aliases]:
                if name in seen and seen[name] != mid:
                    raise ValueError(f"alias '{name}' names both {seen[name]} and {mid}")
                seen[name] = mid
        return self

    def resolve(self, model_id: str) -> tuple[str, ModelEntry] | None:
        """Return (canonical id, entry) for an id or alias, or None if unknown."""
        if model_id in self.models:
            return model_id, self.models[model_id]
        for mid, entry in self.models.items():
            if model_id in entry.aliases:
                return mid, entry
        return None

    def suggest(self, model_id: str) -> str | None:
        """Return the closest known id or alias, for "did you mean" hints."""
        names = [n for mid, e in self.models.items() for n in (mid, *e.aliases)]
        close = difflib.get_close_matches(model_id, names, n=1, cutoff=0.5)
        return close[0] if close else None


@lru_cache(maxsize=8)
def load_catalog(path: Path = DEFAULT_CATALOG) -> Catalog:
    """Return the parsed catalog at ``path`` (cached; the catalog is read-only at run time)."""
    return Catalog.model_validate(load_file(path).data)
