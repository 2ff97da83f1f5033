"""Which ``{{...}}`` variables Argo's validator accepts where: a port of the scope rules of
argo-workflows v4.1.2 ``workflow/validate/validate.go``.

* :func:`unresolved` is ``resolveAllVariables``: only tags under a root prefix of
  ``common.GlobalVarValidWorkflowVariablePrefix`` are checked; expression tags (``{{=...}}``)
  are never checked (``util/template/validate.go Validate``); a few prefixes are always allowed
  (``outputs.``, ``workflow.creationTimestamp``, ``workflow.scheduledTime``, ``workflow.duration``,
  ``tasks.name``, ``steps.name``, ``node.name``, and ``workflow.parameters`` when a
  WorkflowTemplate is validated on its own).
* :func:`add_outputs_to_scope` is ``addOutputsToScope``; :func:`add_items_to_scope` is
  ``addItemsToScope``; :func:`global_params` is what ``Workflow`` and
  ``newTemplateValidationCtx`` put in ``tctx.globalParams``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

# fasttemplate with "{{" / "}}": the tag is everything between them (Argo trims spaces before lookup)
TAG = re.compile(r"\{\{(.*?)\}\}", re.S)
# workflow/common/common.go GlobalVarValidWorkflowVariablePrefix
VALIDATED_ROOTS = ("item.", "steps.", "inputs.", "outputs.", "pod.", "workflow.", "tasks.")
ANY_ITEM = "item.*"  # anyItemMagicValue
ANY_WORKFLOW_OUTPUT_PARAMETER = "workflow.outputs.parameters.*"
ANY_WORKFLOW_OUTPUT_ARTIFACT = "workflow.outputs.artifacts.*"
ALWAYS_ALLOWED_PREFIXES = ("outputs.", "workflow.creationTimestamp", "workflow.scheduledTime",
                           "workflow.duration", "tasks.name", "steps.name", "node.name")
# validate.go paramRegex: a value that is itself one {{parameter}} (globalName resolved at runtime)
PARAM_RE = re.compile(r"{{[-a-zA-Z0-9]+(\.[-a-zA-Z0-9_]+)*}}")


def tags(text: str) -> list[str]:
    """Return every ``{{...}}`` tag of ``text`` as written, expression tags included."""
    return [m.group(1) for m in TAG.finditer(text)]


def unresolved(text: str, scope: Mapping[str, Any], global_names: Mapping[str, Any],
               template_validation: bool) -> list[str]:
    """Return the tags of ``text`` that ``resolveAllVariables`` rejects ("failed to resolve {{tag}}")."""
    out = []
    for tag in tags(text):
        if tag.startswith("="):
            continue  # kindExpression: "we do not validate expression templates"
        t = tag.strip()
        if not t.startswith(VALIDATED_ROOTS) or t in scope or t in global_names:
            continue
        if (t == "item" or t.startswith("item.")) and ANY_ITEM in scope:
            continue
        if t.startswith("workflow.outputs.parameters.") and ANY_WORKFLOW_OUTPUT_PARAMETER in scope:
            continue
        if t.startswith("workflow.outputs.artifacts.") and ANY_WORKFLOW_OUTPUT_ARTIFACT in scope:
            continue
        if t.startswith(ALWAYS_ALLOWED_PREFIXES):
            continue
        if t.startswith("workflow.parameters") and template_validation:
            continue
        out.append(tag)
    return out


def global_params(manifest: Mapping[str, Any], args: list[Mapping[str, Any]]) -> dict[str, bool]:
    """Return the names ``Workflow`` (validate.go) makes global for a Workflow or WorkflowTemplate."""
    spec = manifest.get("spec") or {}
    meta = manifest.get("metadata") or {}
    wf_meta = spec.get("workflowMetadata") or {}
    names = {f"workflow.{k}" for k in ("name", "namespace", "mainEntrypoint", "serviceAccountName", "uid", "status")}
    if args:
        names |= {"workflow.parameters", "workflow.parameters.json"}
    names |= {f"workflow.parameters.{p.get('name')}" for p in args if p.get("name")}
    labels = set(meta.get("labels") or {}) | set(wf_meta.get("labels") or {}) | set(wf_meta.get("labelsFrom") or {})
    annotations = set(meta.get("annotations") or {}) | set(wf_meta.get("annotations") or {})
    names |= {f"workflow.labels.{k}" for k in labels} | {"workflow.labels", "workflow.labels.json"}
    names |= {f"workflow.annotations.{k}" for k in annotations} | {"workflow.annotations", "workflow.annotations.json"}
    if spec.get("priority") is not None:
        names.add("workflow.priority")
    if spec.get("onExit"):
        names.add("workflow.failures")
    return dict.fromkeys(names, True)


def template_type(tpl: Mapping[str, Any]) -> str | None:
    """Return the template's type as ``Template.GetType`` does (first match wins), or None."""
    for key in ("container", "containerSet", "steps", "dag", "script", "resource", "data", "suspend", "http",
                "plugin"):
        if tpl.get(key) is not None:
            return key
    return None


def is_leaf(tpl: Mapping[str, Any]) -> bool:
    """``Template.IsLeaf``: container, containerSet, script, resource, data, http, plugin."""
    return template_type(tpl) in {"container", "containerSet", "script", "resource", "data", "http", "plugin"}


def is_pod_type(tpl: Mapping[str, Any]) -> bool:
    """``Template.IsPodType``: the templates that run a pod."""
    return template_type(tpl) in {"container", "containerSet", "script", "resource", "data"}


def has_output(tpl: Mapping[str, Any]) -> bool:
    """``Template.HasOutput``: the template has an exit code and ``outputs.result``."""
    cset = tpl.get("containerSet") or {}
    main = any(c.get("name") == "main" for c in cset.get("containers") or [])
    return any(tpl.get(k) is not None for k in ("container", "script", "data", "http", "plugin")) or main


def add_outputs_to_scope(tpl: Mapping[str, Any] | None, prefix: str, name: str, scope: dict[str, Any],
                         global_names: dict[str, Any], *, aggregate: bool, ancestor: bool) -> None:
    """``addOutputsToScope``: what ``{{prefix.name.*}}`` a later reference may use."""
    ref = f"{prefix}.{name}"
    scope.update(dict.fromkeys((f"{ref}.id", f"{ref}.startedAt", f"{ref}.finishedAt", f"{ref}.hostNodeName"), True))
    if ancestor:
        scope[f"{ref}.status"] = True
    if tpl is None:
        return
    if tpl.get("daemon"):
        scope[f"{ref}.ip"] = True
    if has_output(tpl):
        scope[f"{ref}.outputs.result"] = scope[f"{ref}.exitCode"] = True
    outputs = tpl.get("outputs") or {}
    for kind in ("parameters", "artifacts"):
        for out in outputs.get(kind) or []:
            scope[f"{ref}.outputs.{kind}.{out.get('name')}"] = True
            global_name = out.get("globalName")
            if global_name and not PARAM_RE.search(global_name):
                scope[f"workflow.outputs.{kind}.{global_name}"] = True
                global_names[f"workflow.outputs.{kind}.{global_name}"] = True
            elif global_name:
                scope[f"workflow.outputs.{kind}.*"] = True
    if aggregate:
        if template_type(tpl) in {"script", "containerSet"}:
            scope[f"{ref}.outputs.result"] = scope[f"{ref}.exitCode"] = True
        scope[f"{ref}.outputs.parameters"] = True


def add_items_to_scope(step: Mapping[str, Any], scope: dict[str, Any]) -> str | None:
    """``addItemsToScope``: put ``item``/``item.<key>`` in scope; return Argo's error or None."""
    items, param, seq = step.get("withItems") or [], step.get("withParam"), step.get("withSequence")
    if sum(bool(x) for x in (items, param, seq is not None)) > 1:
        return "only one of withItems, withParam, withSequence can be specified"
    if items:
        for val in items:
            if isinstance(val, list):
                scope.update({f"item.[{i}]": True for i in range(len(val))})
            elif isinstance(val, dict):
                scope.update({f"item.{k}": True for k in val})
            else:
                scope["item"] = True
    elif param:
        scope["item"] = scope[ANY_ITEM] = True
    elif seq is not None:
        if seq.get("count") is not None and seq.get("end") is not None:
            return "only one of count or end can be defined in withSequence"
        scope["item"] = True
    return None
