"""The embedding provider of a rag-config's ``embedding_model``: recorded offline, live when configured.

Recordings are keyed like the chat recordings (``steps.providers.recordings``):
``sha256(model + "\\n" + params + "\\n" + text)`` with params ``{}``, one file per
text under ``recordings/<rag-config-id>/``, holding ``{"embedding": [...]}``. A
missing recording is an error naming the file, never a zero vector. Live mode
calls the OpenAI embeddings endpoint (``OPENAI_API_KEY``); ``PROMPTCI_RECORD=1``
calls it and writes the recordings.
"""

from __future__ import annotations

import json
import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from steps.atomic import atomic_write
from steps.providers.guardrail_provider import log_call
from steps.providers.recordings import recording_key, recording_path

NO_PARAMS = "{}"


class EmbeddingError(Exception):
    """An embedding could not be had (missing recording, provider error)."""


@dataclass
class EmbeddingProvider:
    """Returns embeddings for texts; ``mode`` is recorded, live or record."""

    mode: str
    model: str
    recordings_dir: Path
    artifact_id: str
    base_url: str = "https://api.openai.com/v1"

    def path(self, text: str) -> Path:
        """Return the recording file of ``text``."""
        return recording_path(self.recordings_dir, self.artifact_id, recording_key(self.model, NO_PARAMS, text))

    def __call__(self, texts: list[str]) -> list[list[float]]:
        log_call({"artifact": self.artifact_id, "kind": "embedding", "texts": len(texts)})
        if self.mode == "recorded":
            return [self._recorded(t) for t in texts]
        vectors = self._live(texts)
        if self.mode == "record":
            for t, v in zip(texts, vectors, strict=True):
                self.write(t, v)
        return vectors

    def write(self, text: str, vector: list[float]) -> Path:
        """Write one recording (atomically) and return its path."""
        path = self.path(text)
        doc = {"artifact": self.artifact_id, "model": self.model, "input": text, "embedding": vector}
        atomic_write(path, json.dumps(doc, ensure_ascii=False) + "\n")
        return path

    def _recorded(self, text: str) -> list[float]:
        path = self.path(text)
        try:
            vector = json.loads(path.read_text("utf-8"))["embedding"]
        except (OSError, ValueError, KeyError) as exc:
            raise EmbeddingError(f"rag-config {self.artifact_id}: no embedding recording for model {self.model} "
                                 f"and text {text[:40]!r} (expected {path}); record with PROMPTCI_RECORD=1") from exc
        if not isinstance(vector, list) or not vector:
            raise EmbeddingError(f"{path}: 'embedding' must be a non-empty list of numbers")
        return [float(x) for x in vector]

    def _live(self, texts: list[str]) -> list[list[float]]:
        key = os.environ.get("OPENAI_API_KEY")
        if not key:
            raise EmbeddingError("the live embedding provider needs OPENAI_API_KEY in the environment")
        req = urllib.request.Request(f"{self.base_url}/embeddings",
                                     data=json.dumps({"model": self.model, "input": texts}).encode(),
                                     headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=120) as resp:  # noqa: S310 (a configured https endpoint)
                data = json.load(resp)["data"]
        except (OSError, ValueError, KeyError) as exc:
            raise EmbeddingError(f"rag-config {self.artifact_id}: live embedding call failed: {exc}") from exc
        return [list(map(float, d["embedding"])) for d in sorted(data, key=lambda d: d["index"])]
