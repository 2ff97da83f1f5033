"""Which template features the local runner honours, and the check that refuses the rest.

A feature is never silently ignored: anything outside these sets raises
:class:`UnsupportedFeature` naming it before anything runs. Cluster-only settings
(image, resources, service accounts, pod GC...) are accepted and listed in ``run.json``
under ``not_applied``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from typing import Any

from workflows.runner.records import UnsupportedFeature

# Features the runner understands, per level. Anything else is an UnsupportedFeature.
SPEC_KEYS = {"entrypoint", "arguments", "templates", "parallelism", "activeDeadlineSeconds", "metrics",
             "onExit", "volumes"}
TEMPLATE_KEYS = {"name", "dag", "script", "suspend", "inputs", "outputs", "metrics", "retryStrategy",
                 "activeDeadlineSeconds"}
SCRIPT_KEYS = {"command", "args", "source", "env", "workingDir", "volumeMounts"}
TASK_KEYS = {"name", "template", "arguments", "depends", "dependencies", "when", "withParam", "withItems"}
DAG_KEYS = {"tasks", "failFast"}
RETRY_KEYS = {"limit", "retryPolicy", "expression", "backoff"}
PARAM_KEYS = {"name", "value", "default", "description", "enum", "valueFrom"}
OUT_ARTIFACT_KEYS = {"name", "path", "optional", "archive"}
# Cluster-only settings: accepted, recorded as not applied, and without local effect.
NOT_APPLIED_SPEC = {"serviceAccountName", "podGC", "ttlStrategy", "artifactRepositoryRef"}
NOT_APPLIED_TEMPLATE = {"serviceAccountName"}
NOT_APPLIED_SCRIPT = {"image", "imagePullPolicy", "resources", "envFrom"}


def _check_keys(where: str, obj: Mapping[str, Any], allowed: AbstractSet[str],
                not_applied: AbstractSet[str] = frozenset(),
                noted: set[str] | None = None) -> None:
    for key in obj:
        if key in allowed:
            continue
        if key in not_applied:
            if noted is not None:
                noted.add(f"{where}.{key}")
            continue
        raise UnsupportedFeature(f"{where}: '{key}' is not supported by the local runner")


def check_supported(manifest: Mapping[str, Any]) -> list[str]:
    """Raise UnsupportedFeature for any feature the runner cannot honour.

    Returns the cluster-only settings found (accepted but with no local effect).
    """
    noted: set[str] = set()
    spec = manifest.get("spec") or {}
    _check_keys("spec", spec, SPEC_KEYS, NOT_APPLIED_SPEC, noted)
    volumes = set()
    for vol in spec.get("volumes", []):  # only ConfigMaps: the runner is handed their data (run_template)
        _check_keys(f"spec.volumes[{vol.get('name')}]", vol, {"name", "configMap"})
        if "configMap" not in vol:
            raise UnsupportedFeature(f"spec.volumes[{vol.get('name')}]: only configMap volumes are supported")
        _check_keys(f"spec.volumes[{vol.get('name')}].configMap", vol["configMap"], {"name", "optional"})
        volumes.add(vol["name"])
    for tpl in spec.get("templates", []):
        where = f"template '{tpl.get('name')}'"
        _check_keys(where, tpl, TEMPLATE_KEYS, NOT_APPLIED_TEMPLATE, noted)
        kinds = [k for k in ("dag", "script", "suspend") if k in tpl]
        if len(kinds) != 1:
            raise UnsupportedFeature(f"{where}: needs exactly one of dag, script, suspend")
        if "script" in tpl:
            _check_keys(f"{where}.script", tpl["script"], SCRIPT_KEYS, NOT_APPLIED_SCRIPT, noted)
            for env in tpl["script"].get("env", []):
                _check_keys(f"{where}.script.env[{env.get('name')}]", env, {"name", "value"})
            for mount in tpl["script"].get("volumeMounts", []):
                _check_keys(f"{where}.script.volumeMounts[{mount.get('name')}]", mount,
                            {"name", "mountPath", "readOnly"})
                if mount.get("name") not in volumes:
                    raise UnsupportedFeature(f"{where}: volumeMount '{mount.get('name')}' names no spec.volumes entry")
        if "dag" in tpl:
            _check_keys(f"{where}.dag", tpl["dag"], DAG_KEYS)
            for task in tpl["dag"].get("tasks", []):
                _check_keys(f"{where} task '{task.get('name')}'", task, TASK_KEYS)
                args = task.get("arguments") or {}
                _check_keys(f"{where} task '{task.get('name')}'.arguments", args, {"parameters"})
        if "suspend" in tpl:
            _check_keys(f"{where}.suspend", tpl["suspend"], {"duration"})
        if "retryStrategy" in tpl:
            _check_keys(f"{where}.retryStrategy", tpl["retryStrategy"], RETRY_KEYS)
            _check_keys(f"{where}.retryStrategy.backoff", tpl["retryStrategy"].get("backoff", {}),
                        {"duration", "factor", "maxDuration"})
        inputs = tpl.get("inputs") or {}
        _check_keys(f"{where}.inputs", inputs, {"parameters", "artifacts"})
        for art in inputs.get("artifacts", []):
            _check_keys(f"{where}.inputs.artifacts[{art.get('name')}]", art, {"name", "path", "git"})
            if "git" not in art:
                raise UnsupportedFeature(f"{where}: input artifact '{art.get('name')}' is not a git "
                                         "artifact (only git inputs map to the local checkout)")
        outputs = tpl.get("outputs") or {}
        _check_keys(f"{where}.outputs", outputs, {"parameters", "artifacts"})
        for p in outputs.get("parameters", []):
            _check_keys(f"{where}.outputs.parameters[{p.get('name')}]", p, PARAM_KEYS)
            vf = p.get("valueFrom") or {}
            if set(vf) != {"path"}:
                raise UnsupportedFeature(f"{where}: output parameter '{p.get('name')}' needs valueFrom.path")
        for a in outputs.get("artifacts", []):
            _check_keys(f"{where}.outputs.artifacts[{a.get('name')}]", a, OUT_ARTIFACT_KEYS)
    return sorted(noted)


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")


def parse_duration(text: str | int | float | None) -> float:
    """Return seconds for an Argo/Go duration (``10s``, ``1m30s``, ``500ms``) or a bare number."""
    if text is None or text == "":
        return 0.0
    if isinstance(text, int | float) or re.fullmatch(r"\d+(\.\d+)?", str(text)):
        return float(text)
    parts = _DURATION.findall(str(text))
    if not parts or "".join(n + u for n, u in parts) != str(text):
        raise UnsupportedFeature(f"cannot parse duration '{text}'")
    scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    return sum(float(n) * scale[u] for n, u in parts)
