"""The Argo Workflows JSON schema shipped with promptci, and the strict schema check `lint` runs.

The schema is ``workflows/argo/schemas/argo-workflows-v4.1.2.schema.json``, copied verbatim from
argoproj/argo-workflows ``api/jsonschema/schema.json`` at tag v4.1.2 (see that folder's README).
It is package data, so the check runs wherever promptci is installed; it never depends on a
sibling checkout. A missing or altered file is an error (:class:`SchemaError`), never a skip.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from config.problems import Problem, dotted
from config.settings import get_settings
from config.yamlio import Loaded

ARGO_VERSION = "v4.1.2"
SCHEMA_SHA256 = "3f84c5722c48a5aa815fe69119a9375fc3635114f8046da20ede55a8596529f5"
PACKAGED_SCHEMA = Path(__file__).resolve().parent / "schemas" / f"argo-workflows-{ARGO_VERSION}.schema.json"
SCHEMA_ENV = "PROMPTCI_ARGO_SCHEMA"
ARGO_KINDS = ("Workflow", "WorkflowTemplate", "ClusterWorkflowTemplate", "CronWorkflow")


class SchemaError(RuntimeError):
    """The Argo schema cannot be used: missing, unreadable, or not the pinned file."""


def find_schema(explicit: Path | None = None) -> Path:
    """Return the schema to validate against: ``explicit``, else ``$PROMPTCI_ARGO_SCHEMA``, else the packaged one.

    The packaged file must hash to :data:`SCHEMA_SHA256`; an explicit or env file must exist.
    Raises SchemaError with one line saying what is wrong and how to fix it.
    """
    chosen = explicit or get_settings().argo_schema
    if chosen is not None:
        if not chosen.is_file():
            raise SchemaError(f"Argo schema {chosen} does not exist (from --schema or ${SCHEMA_ENV})")
        return chosen
    return packaged_schema()


@lru_cache(maxsize=1)
def packaged_schema() -> Path:
    """Return the packaged schema after checking its sha256 against the pinned one (once per process)."""
    if not PACKAGED_SCHEMA.is_file():
        raise SchemaError(f"the packaged Argo {ARGO_VERSION} schema is missing ({PACKAGED_SCHEMA}); "
                          "reinstall promptci")
    digest = hashlib.sha256(PACKAGED_SCHEMA.read_bytes()).hexdigest()
    if digest != SCHEMA_SHA256:
        raise SchemaError(f"the packaged Argo schema {PACKAGED_SCHEMA} has sha256 {digest}, "
                          f"expected {SCHEMA_SHA256} (Argo {ARGO_VERSION}); restore it from git")
    return PACKAGED_SCHEMA


@lru_cache(maxsize=4)
def _validator(schema_path: str, kind: str) -> Any:
    from jsonschema import Draft202012Validator

    try:
        defs = json.loads(Path(schema_path).read_text())["definitions"]
    except (OSError, ValueError, KeyError) as exc:
        raise SchemaError(f"cannot read Argo schema {schema_path}: {exc}") from exc
    # Argo accepts ints where the published schema says string; and it rejects unknown fields
    # (`argo lint --strict`), which the published schema does not.
    loose = {"type": ["string", "integer", "number", "boolean"]}
    for name in ("io.k8s.apimachinery.pkg.util.intstr.IntOrString", "io.k8s.apimachinery.pkg.api.resource.Quantity"):
        defs[name] = loose
    for name, d in defs.items():
        props = d.get("properties", {}) if isinstance(d, dict) else {}
        if name.endswith(".Parameter"):
            for key in ("value", "default"):
                if props.get(key, {}).get("type") == "string":
                    props[key] = loose
        if isinstance(d, dict) and "properties" in d and "additionalProperties" not in d:
            d["additionalProperties"] = False
    return Draft202012Validator({"$ref": f"#/definitions/io.argoproj.workflow.v1alpha1.{kind}",
                                 "definitions": defs})


def schema_problems(manifest: Mapping[str, Any], schema_path: Path, display: str,
                    loaded: Loaded | None = None, at: tuple[str | int, ...] = ()) -> list[Problem]:
    """Return one problem per schema violation (strict: unknown fields are errors).

    ``at`` is where the manifest sits inside the loaded document (a Sensor's trigger), if not at its root.
    """
    kind = manifest.get("kind", "")
    if not isinstance(kind, str) or kind not in ARGO_KINDS:
        return [Problem(display, 0, 0, dotted((*at, "kind")), f"not an Argo Workflows kind: '{kind}'")]
    out = []
    for err in sorted(_validator(str(schema_path), kind).iter_errors(manifest), key=lambda e: list(e.path)):
        loc = (*at, *err.absolute_path)
        message = f"schema: {err.message[:200]}"
        out.append(loaded.problem(loc, message) if loaded is not None else Problem(display, 0, 0, dotted(loc), message))
    return out
