"""Recordings for the offline provider: readable JSON files under ``recordings/<artifact-id>/``.

The key is ``sha256(model + "\\n" + params + "\\n" + prompt)`` where ``prompt``
is exactly what promptfoo hands the provider (the rendered messages as JSON,
see :func:`steps.promptfoo.messages_prompt`). ``recorded.js`` computes the same
key, so a recording written here is the one it serves.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from config.artifacts import ModelParameters
from config.settings import get_settings
from steps.atomic import atomic_write

RECORDINGS_ENV = "PROMPTCI_RECORDINGS_DIR"
JS_PROVIDER = Path(__file__).with_name("recorded.js")


def recordings_dir(repo_root: Path) -> Path:
    """Return where recordings live: ``$PROMPTCI_RECORDINGS_DIR`` or ``<repo>/recordings``."""
    return (get_settings().recordings_dir or repo_root / "recordings").resolve()


def params_key(params: ModelParameters) -> str:
    """Return the canonical JSON of the parameters that change a model's answer (unset ones omitted)."""
    return json.dumps(params.model_dump(exclude_none=True), sort_keys=True, separators=(",", ":"))


def recording_key(model: str, params: str, prompt: str) -> str:
    """Return the hex sha256 that names a recording (same formula as ``recorded.js``)."""
    return hashlib.sha256(f"{model}\n{params}\n{prompt}".encode()).hexdigest()


def recording_path(root: Path, artifact_id: str, key: str) -> Path:
    """Return the file holding the recording ``key`` of ``artifact_id``."""
    return root / artifact_id / f"{key[:24]}.json"


AUTHORED = "authored"


def write_recording(root: Path, artifact_id: str, *, model: str, params: str, prompt: str,
                    messages: list[dict[str, str]], responses: list[dict[str, Any]],
                    origin: dict[str, str] | str, test: str = "", extra: dict[str, Any] | None = None) -> Path:
    """Write (atomically) one recording and return its path.

    ``responses`` holds one entry per repeat (``{"output", "tokenUsage"}``, or
    ``{"error"}`` for a recorded provider error); a single entry serves every repeat.
    ``origin`` says who answered: ``"authored"`` (written by hand) or
    ``{"model", "provider", "recorded_at"}`` for answers a model gave.
    """
    key = recording_key(model, params, prompt)
    path = recording_path(root, artifact_id, key)
    doc = {"artifact": artifact_id, "test": test, **(extra or {}), "model": model, "params": json.loads(params),
           "origin": origin, "messages": messages, "responses": responses}
    atomic_write(path, json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    return path


def recordings_digest(root: Path, artifact_id: str) -> str:
    """Return a hash of every recording of ``artifact_id`` (part of the cache key: new answers, new run)."""
    h = hashlib.sha256()
    base = root / artifact_id
    if base.is_dir():
        for p in sorted(base.glob("*.json")):
            h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()
