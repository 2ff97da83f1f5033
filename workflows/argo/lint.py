"""Offline ``argo lint``: the semantic checks the JSON schema cannot express, then the schema.

Checks, on a WorkflowTemplate/Workflow manifest dict:
* names are valid (metadata, templates, tasks, parameters) and unique;
* the entrypoint, every task's template and every ``depends`` reference resolve;
* the DAG has no dependency cycle;
* every ``{{...}}`` variable is in scope (workflow parameters, the template's inputs, outputs
  of tasks the task depends on, ``item`` only inside a fan-out); expression tags are refused;
* every task supplies each input parameter its template requires, and nothing unknown;
* finally the strict schema (``schema.json`` of Argo Workflows, unknown fields are errors).

Each problem is a :class:`config.problems.Problem` located by the manifest path (line and
column when the manifest was read from a file).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from config.problems import Problem
from config.yamlio import Loaded
from workflows.runner.expr import ExpressionError, depends_names, variables

DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
TEMPLATE_NAME = re.compile(r"^[a-zA-Z0-9][-a-zA-Z0-9]*$")
PARAM_NAME = re.compile(r"^[-a-zA-Z0-9_]+$")
GLOBAL_VARS = {"workflow.name", "workflow.namespace", "workflow.uid", "workflow.serviceAccountName",
               "workflow.creationTimestamp", "workflow.mainEntrypoint", "workflow.priority",
               "workflow.parameters"}
SPEC_METRIC_VARS = {"workflow.status", "workflow.duration", "workflow.failures"}
TEMPLATE_METRIC_VARS = {"status", "duration", "exitCode", "resourcesDuration.cpu", "resourcesDuration.memory"}
POD_VARS = {"pod.name", "retries", "node.name", "inputs.parameters"}
SHARED_SCHEMA = Path(__file__).resolve().parents[3] / "shared" / "schemas" / "argo-workflows" / "schema.json"
SCHEMA_ENV = "PROMPTCI_ARGO_SCHEMA"

Loc = tuple[str | int, ...]


def _walk_strings(obj: Any, loc: Loc) -> Iterator[tuple[Loc, str]]:
    if isinstance(obj, str):
        yield loc, obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _walk_strings(v, (*loc, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _walk_strings(v, (*loc, i))


class _Linter:
    def __init__(self, manifest: Mapping[str, Any], loaded: Loaded | None, display: str):
        self.m = manifest
        self.loaded = loaded
        self.display = display
        self.problems: list[Problem] = []
        self.spec = manifest.get("spec") or {}
        self.templates = {t.get("name"): t for t in self.spec.get("templates", []) if isinstance(t, dict)}

    def add(self, loc: Loc, message: str) -> None:
        if self.loaded is not None:
            self.problems.append(self.loaded.problem(loc, message))
        else:
            from config.problems import dotted

            self.problems.append(Problem(self.display, 0, 0, dotted(loc), message))

    def run(self) -> list[Problem]:
        name = (self.m.get("metadata") or {}).get("name") or ""
        if not name or len(name) > 253 or not DNS_SUBDOMAIN.match(name):
            self.add(("metadata", "name"), f"invalid name '{name}': lowercase letters, digits, '-' and '.'")
        wf_params = self._params(("spec", "arguments", "parameters"),
                                 (self.spec.get("arguments") or {}).get("parameters", []))
        self.global_vars = GLOBAL_VARS | {f"workflow.parameters.{p}" for p in wf_params}
        self._names()
        entry = self.spec.get("entrypoint")
        if entry not in self.templates:
            self.add(("spec", "entrypoint"), f"entrypoint '{entry}' is not a template")
        on_exit = self.spec.get("onExit")
        if on_exit is not None and on_exit not in self.templates:
            self.add(("spec", "onExit"), f"exit handler '{on_exit}' is not a template")
        for loc, text in _walk_strings(self.spec.get("metrics"), ("spec", "metrics")):
            self._vars(loc, text, self.global_vars | SPEC_METRIC_VARS)
        for i, tpl in enumerate(self.spec.get("templates", [])):
            self._template(i, tpl)
        return self.problems

    def _params(self, loc: Loc, params: list[Any]) -> list[str]:
        names = []
        for j, p in enumerate(params or []):
            n = p.get("name", "")
            if not PARAM_NAME.match(n):
                self.add((*loc, j, "name"), f"invalid parameter name '{n}'")
            if n in names:
                self.add((*loc, j, "name"), f"parameter '{n}' is declared twice")
            names.append(n)
        return names

    def _names(self) -> None:
        seen: set[str] = set()
        for i, tpl in enumerate(self.spec.get("templates", [])):
            n = tpl.get("name", "")
            if not TEMPLATE_NAME.match(n) or len(n) > 128:
                self.add(("spec", "templates", i, "name"), f"invalid template name '{n}'")
            if n in seen:
                self.add(("spec", "templates", i, "name"), f"template '{n}' is defined twice")
            seen.add(n)

    def _inputs_of(self, tpl: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
        return {p.get("name"): p for p in (tpl.get("inputs") or {}).get("parameters", [])}

    def _template(self, i: int, tpl: Mapping[str, Any]) -> None:
        loc: Loc = ("spec", "templates", i)
        inputs = self._params((*loc, "inputs", "parameters"), list(self._inputs_of(tpl).values()))
        arts = [a.get("name") for a in (tpl.get("inputs") or {}).get("artifacts", [])]
        scope = self.global_vars | POD_VARS | {f"inputs.parameters.{p}" for p in inputs} \
            | {f"inputs.artifacts.{a}.path" for a in arts}
        if tpl.get("name") == self.spec.get("onExit"):  # only an exit handler sees the workflow's outcome
            scope |= SPEC_METRIC_VARS
        for key, value in tpl.items():
            if key == "dag":
                self._dag((*loc, "dag"), value, scope)
            elif key == "metrics":
                for sloc, text in _walk_strings(value, (*loc, "metrics")):
                    self._vars(sloc, text, scope | TEMPLATE_METRIC_VARS)
            else:
                for sloc, text in _walk_strings(value, (*loc, key)):
                    self._vars(sloc, text, scope)

    def _vars(self, loc: Loc, text: str, scope: set[str]) -> None:
        for var in variables(text):
            if var.startswith("="):
                self.add(loc, f"expression tag '{{{{{var}}}}}' is not allowed")
            elif var not in scope:
                self.add(loc, f"variable '{{{{{var}}}}}' is not in scope here")

    def _dag(self, loc: Loc, dag: Mapping[str, Any], scope: set[str]) -> None:
        tasks = dag.get("tasks", [])
        by_name: dict[str, int] = {}
        for j, t in enumerate(tasks):
            n = t.get("name", "")
            if not TEMPLATE_NAME.match(n):
                self.add((*loc, "tasks", j, "name"), f"invalid task name '{n}'")
            if n in by_name:
                self.add((*loc, "tasks", j, "name"), f"task '{n}' is defined twice")
            by_name[n] = j
        deps: dict[str, list[str]] = {}
        for j, t in enumerate(tasks):
            tloc = (*loc, "tasks", j)
            try:
                names = depends_names(t["depends"]) if "depends" in t else list(t.get("dependencies", []))
            except ExpressionError as exc:
                self.add((*tloc, "depends"), str(exc))
                names = []
            for d in names:
                if d not in by_name:
                    self.add((*tloc, "depends" if "depends" in t else "dependencies"),
                             f"task '{t.get('name')}' depends on undefined task '{d}'")
            deps[t.get("name", "")] = [d for d in names if d in by_name]
            if t.get("template") not in self.templates:
                self.add((*tloc, "template"), f"task '{t.get('name')}' uses undefined template "
                                              f"'{t.get('template')}'")
        cycle = _find_cycle(deps)
        if cycle:
            j = by_name[cycle[0]]
            self.add((*loc, "tasks", j, "depends"), "dependency cycle: " + " -> ".join(cycle))
        for j, t in enumerate(tasks):
            self._task((*loc, "tasks", j), t, deps, scope)

    def _task(self, loc: Loc, task: Mapping[str, Any], deps: Mapping[str, list[str]], scope: set[str]) -> None:
        ancestors = _ancestors(task.get("name", ""), deps)
        task_scope = set(scope)
        for a in ancestors:
            tname = next((t.get("template") for t in self._dag_tasks() if t.get("name") == a), None)
            tpl = self.templates.get(tname) or {}
            outs = (tpl.get("outputs") or {}).get("parameters", [])
            task_scope |= {f"tasks.{a}.outputs.parameters.{p.get('name')}" for p in outs}
            task_scope |= {f"tasks.{a}.{x}" for x in ("status", "id", "startedAt", "finishedAt", "exitCode")}
            if "script" in tpl or "container" in tpl:
                task_scope.add(f"tasks.{a}.outputs.result")
        if "withItems" in task or "withParam" in task:
            task_scope.add("item")
            for it in task.get("withItems") or []:
                if isinstance(it, dict):
                    task_scope |= {f"item.{k}" for k in it}
        for key, value in task.items():
            if key in {"name", "template", "depends", "dependencies"}:
                continue
            # withParam is resolved before its items exist, so {{item}} is out of scope there
            s = task_scope - {"item"} if key in {"withParam", "when"} else task_scope
            for sloc, text in _walk_strings(value, (*loc, key)):
                self._vars(sloc, text, s)
        target = self.templates.get(task.get("template"))
        if target is None:
            return
        declared = self._inputs_of(target)
        given = [p.get("name") for p in (task.get("arguments") or {}).get("parameters", [])]
        for name, p in declared.items():
            if name not in given and "value" not in p and "default" not in p:
                self.add((*loc, "arguments"), f"task '{task.get('name')}' does not supply parameter "
                                              f"'{name}' required by template '{target.get('name')}'")
        for k, name in enumerate(given):
            if name not in declared:
                self.add((*loc, "arguments", "parameters", k, "name"),
                         f"template '{target.get('name')}' has no input parameter '{name}'")

    def _dag_tasks(self) -> list[Mapping[str, Any]]:
        return [t for tpl in self.templates.values() for t in (tpl.get("dag") or {}).get("tasks", [])]


def _ancestors(name: str, deps: Mapping[str, list[str]]) -> set[str]:
    out: set[str] = set()
    stack = list(deps.get(name, []))
    while stack:
        d = stack.pop()
        if d not in out:
            out.add(d)
            stack += deps.get(d, [])
    return out


def _find_cycle(deps: Mapping[str, list[str]]) -> list[str] | None:
    """Return one dependency cycle as a list of task names (first repeated at the end), or None."""
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        path.append(n)
        for d in deps.get(n, []):
            if state.get(d) == 1:
                return path[path.index(d):] + [d]
            if d not in state and (found := visit(d)):
                return found
        path.pop()
        state[n] = 2
        return None

    for n in sorted(deps):
        if n not in state and (found := visit(n)):
            return found
    return None


def lint_manifest(manifest: Mapping[str, Any], *, display: str = "", loaded: Loaded | None = None,
                  schema: Path | None = None) -> list[Problem]:
    """Return every semantic problem, then the schema problems, of one Argo manifest.

    ``schema`` is an Argo Workflows ``schema.json``; without it ``$PROMPTCI_ARGO_SCHEMA`` or
    ``../shared/schemas`` is used when present (see :func:`find_schema`).
    """
    shown = display or (manifest.get("metadata") or {}).get("name", "<manifest>")
    problems = _Linter(manifest, loaded, shown).run()
    schema_path = schema or find_schema()
    if schema_path is not None:
        problems += schema_problems(manifest, schema_path, shown, loaded)
    return problems


def find_schema() -> Path | None:
    """Return the Argo Workflows schema to validate against, or None when none is available."""
    import os

    explicit = os.environ.get(SCHEMA_ENV)
    if explicit:
        return Path(explicit)
    return SHARED_SCHEMA if SHARED_SCHEMA.is_file() else None


@lru_cache(maxsize=4)
def _validator(schema_path: str, kind: str) -> Any:
    from jsonschema import Draft202012Validator

    defs = json.loads(Path(schema_path).read_text())["definitions"]
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
                    loaded: Loaded | None = None) -> list[Problem]:
    """Return one problem per schema violation (strict: unknown fields are errors)."""
    kind = manifest.get("kind", "")
    if kind not in {"Workflow", "WorkflowTemplate", "ClusterWorkflowTemplate", "CronWorkflow"}:
        return [Problem(display, 0, 0, "kind", f"not an Argo Workflows kind: '{kind}'")]
    out = []
    for err in sorted(_validator(str(schema_path), kind).iter_errors(manifest), key=lambda e: list(e.path)):
        loc = tuple(err.absolute_path)
        if loaded is not None:
            out.append(loaded.problem(loc, f"schema: {err.message[:200]}"))
        else:
            from config.problems import dotted

            out.append(Problem(display, 0, 0, dotted(loc), f"schema: {err.message[:200]}"))
    return out
