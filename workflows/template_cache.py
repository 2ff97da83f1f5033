"""The compiled WorkflowTemplate of a local run, from a cache: Hera is imported only when the template changed.

Building a template is cheap once Hera is loaded, but loading Hera (its Argo models) costs ~0.8 s of every
``promptci run``. The manifest :func:`compiled_template` returns is exactly ``build_template(type,
settings).to_dict()``: a cached one is used only when everything it was built from is unchanged:

* the key (the file name): the artifact type, the settings (``PipelineSettings``, the pipeline config and
  the image included), the Python, Hera and pydantic versions and where the project's code lives;
* in the entry: the SHA-256 of every project module that was loaded when it was built (the templates'
  code, the stages, their bodies' signatures, the settings...: a superset of what the build read),
  checked on every read. A module edited since, or gone, means a rebuild.

Anything unreadable is a miss (rebuilt and rewritten); a cache that cannot be written is skipped.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from steps.atomic import atomic_write
from steps.user_cache import user_cache_dir
from workflows.template_settings import PipelineSettings

PROJECT_ROOT = Path(__file__).resolve().parents[1]
FORMAT = 1


def cache_dir() -> Path:
    """Return where ``run`` keeps compiled templates: ``$XDG_CACHE_HOME/promptci/templates`` (``~/.cache/...``).

    Per user, not per checkout: the entry depends on promptci's code and the settings, not on the repository
    evaluated, so a new checkout (or a bench's fresh one) finds it too.
    """
    return user_cache_dir() / "templates"


def compiled_template(artifact_type: str, settings: PipelineSettings, cache_dir: Path | None) -> dict[str, Any]:
    """Return the compiled manifest of ``promptci-<artifact_type>`` under ``settings`` (cached in ``cache_dir``)."""
    path = cache_dir / f"{cache_key(artifact_type, settings)}.json" if cache_dir else None
    cached = _read(path) if path else None
    if cached is not None:
        return cached
    from config.artifacts import ArtifactType
    from workflows.templates import build_template

    manifest: dict[str, Any] = build_template(ArtifactType(artifact_type), settings).to_dict()
    if path:
        with contextlib.suppress(OSError):
            atomic_write(path, json.dumps({"format": FORMAT, "sources": project_sources(), "manifest": manifest}))
    return manifest


def cache_key(artifact_type: str, settings: PipelineSettings) -> str:
    """Return the name of the cache entry of this type and these settings (a SHA-256, hex)."""
    import pydantic

    material = {"format": FORMAT, "type": artifact_type, "settings": settings.model_dump(mode="json"),
                "python": sys.version, "hera": _version("hera"), "pydantic": pydantic.VERSION,
                "project": str(PROJECT_ROOT)}
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()


def project_sources() -> dict[str, str]:
    """Return ``{path: SHA-256}`` of every project module loaded now (paths relative to the project)."""
    found = {}
    for module in list(sys.modules.values()):
        file = getattr(module, "__file__", None)
        if not file:
            continue
        path = Path(file).resolve()
        if PROJECT_ROOT in path.parents and ".venv" not in path.parts and path.is_file():
            found[str(path.relative_to(PROJECT_ROOT))] = _digest(path)
    return dict(sorted(found.items()))


def _read(path: Path) -> dict[str, Any] | None:
    """Return the manifest of the entry at ``path`` when every source it records is unchanged, else None."""
    try:
        entry = json.loads(path.read_text())
        if entry.get("format") != FORMAT or not entry.get("sources"):
            return None
        for name, digest in entry["sources"].items():
            if _digest(PROJECT_ROOT / name) != digest:
                return None
        manifest = entry["manifest"]
    except (OSError, ValueError, AttributeError, KeyError, TypeError):
        return None
    return manifest if isinstance(manifest, dict) else None


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "?"


__all__ = ["cache_dir", "cache_key", "compiled_template", "project_sources"]
