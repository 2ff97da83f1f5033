"""Offline ``argo lint``: a port of argo-workflows v4.1.2 ``workflow/validate/validate.go``, then the schema.

What Argo's validator rejects is an **error**, with Argo's own message (``validate.go``
function named in each method's docstring); what it accepts is never an error. A few things
Argo accepts but that fail later or are almost surely typos are **warnings** (they never fail
``lint``): a workflow-level metric the controller cannot construct, an argument the template does
not declare, an unknown ``{{workflow.parameters.*}}`` in a WorkflowTemplate, an expression tag
(the local runner does not evaluate them). Unlike Argo, which stops at the first error, every
problem is reported, each located by the manifest path (line and column when read from a file).
Then the strict schema (:mod:`workflows.argo.schema`, shipped with the package).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from config.problems import Problem, Severity, dotted
from config.yamlio import Loaded
from workflows.argo import dag as dagrules
from workflows.argo.schema import find_schema, schema_problems
from workflows.argo.scope import (
    add_items_to_scope,
    add_outputs_to_scope,
    global_params,
    is_leaf,
    is_pod_type,
    tags,
    template_type,
    unresolved,
)

__all__ = ["find_schema", "lint_manifest", "schema_problems"]

# k8s apimachinery validation.IsDNS1123Subdomain (the API server refuses other names)
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
MAX_NAME = {"CronWorkflow": 52}  # validate.go maxCharsInCronWorkflowName; others maxCharsInObjectName = 63
NAME_WORDS = {"Workflow": "workflow", "WorkflowTemplate": "workflow template",
              "ClusterWorkflowTemplate": "cluster workflow template", "CronWorkflow": "cron workflow"}
FIELD_NAME = re.compile(r"^[a-zA-Z0-9][-a-zA-Z0-9]*$")  # workflowFieldNameFmt
PARAM_NAME = re.compile(r"^[-a-zA-Z0-9_]+$")  # paramOrArtifactNameRegex
FIELD_NAME_ERR = ("name must consist of alpha-numeric characters or '-', and must start with an "
                  "alpha-numeric character (e.g. My-name1-2, 123-NAME)")
PARAM_NAME_ERR = ("Parameter/Artifact name must consist of alpha-numeric characters, '_' or '-' "
                  "e.g. my_param_1, MY-PARAM-1")
METRIC_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")  # prometheus LegacyValidation, and no ':'
POD_GC = {"", "OnPodCompletion", "OnPodSuccess", "OnWorkflowCompletion", "OnWorkflowSuccess"}
RETRY_POLICIES = {"", "Always", "OnError", "OnFailure", "OnTransientError"}
TYPES_MSG = "choose one of: container, containerSet, steps, script, resource, dag, suspend, template, template ref"

Loc = tuple[str | int, ...]


def _json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True)


class _Linter:
    """One manifest's walk, in the order ``validate.Workflow`` walks it."""

    def __init__(self, manifest: Mapping[str, Any], loaded: Loaded | None, display: str,
                 known_templates: Mapping[str, Mapping[str, Any]], at: Loc = ()):
        self.m = manifest
        self.at = at
        self.kind = manifest.get("kind", "")
        self.loaded = loaded
        self.display = display
        self.known = known_templates
        self.problems: list[Problem] = []
        self.spec_loc: Loc = ("spec", "workflowSpec") if self.kind == "CronWorkflow" else ("spec",)
        spec = manifest.get("spec") or {}
        self.spec: Mapping[str, Any] = (spec.get("workflowSpec") or {}) if self.kind == "CronWorkflow" else spec
        self.template_validation = self.kind in {"WorkflowTemplate", "ClusterWorkflowTemplate"}
        self.validated: set[str] = set()

    def add(self, loc: Loc, message: str, severity: Severity = Severity.ERROR) -> None:
        loc = (*self.at, *loc)
        if self.loaded is not None:
            self.problems.append(self.loaded.problem(loc, message, severity=severity))
        else:
            self.problems.append(Problem(self.display, 0, 0, dotted(loc), message, severity))

    def warn(self, loc: Loc, message: str) -> None:
        self.add(loc, message, Severity.WARNING)

    def s(self, *loc: str | int) -> Loc:
        return (*self.spec_loc, *loc)

    # --- the manifest -------------------------------------------------------------------------

    def run(self) -> list[Problem]:
        """``validate.Workflow`` (and ``WorkflowTemplate``/``CronWorkflow``, which wrap it)."""
        self._name()
        ref = self.spec.get("workflowTemplateRef")
        ref_spec: Mapping[str, Any] = {}
        if ref:
            if self.spec.get("templates"):  # WorkflowTemplateRefFields
                self.add(self.s("templates"), "Templates is invalid field in spec if workflow referred "
                                              "WorkflowTemplate reference")
            found = self.known.get(ref.get("name", ""))
            if found is None:
                kind = "clusterworkflowtemplates" if ref.get("clusterScope") else "workflowtemplates"
                self.add(self.s("workflowTemplateRef", "name"),
                         f'{kind}.argoproj.io "{ref.get("name")}" not found')
                return self.problems
            ref_spec = found.get("spec") or {}
        self.templates = {t.get("name"): t for t in (ref_spec or self.spec).get("templates") or []
                          if isinstance(t, dict)}
        self._field_names(self.s("templates"), self.spec.get("templates") or [], "spec.templates")
        args = self._merged_args(ref_spec)
        self._arguments(self.s("arguments"), "spec.arguments.", args, allow_empty=True)
        self.globals = global_params(self.m, args)
        entry = self.spec.get("entrypoint") or ref_spec.get("entrypoint")
        if not entry and not self.template_validation:
            self.add(self.s("entrypoint"), "spec.entrypoint is required")
        elif entry and not ref:
            # a Workflow's entrypoint gets the Workflow's arguments; a template's, FakeArguments
            self._holder(self.s("entrypoint"), entry,
                         args=None if self.template_validation else {"parameters": args})
        on_exit = self.spec.get("onExit") or ref_spec.get("onExit")
        if on_exit:
            self._holder(self.s("onExit"), on_exit)
        self._hooks(self.s("hooks"), self.spec.get("hooks") or {}, "hooks")
        strategy = (self.spec.get("podGC") or {}).get("strategy", "")
        if strategy not in POD_GC:
            self.add(self.s("podGC", "strategy"), f"podGC.strategy unknown strategy '{strategy}'")
        self._spec_metrics()
        for i, tpl in enumerate((ref_spec or self.spec).get("templates") or []):
            if isinstance(tpl, dict):
                self._template(self.s("templates", i), tpl)
        return self.problems

    def _name(self) -> None:
        meta = self.m.get("metadata") or {}
        name = meta.get("name") or ""
        limit = MAX_NAME.get(self.kind, 63)
        if len(name) > limit:
            self.add(("metadata", "name"), f"{NAME_WORDS.get(self.kind, 'workflow')} name \"{name}\" must not be "
                                           f"more than {limit} characters long (currently {len(name)})")
        if not name and not meta.get("generateName"):
            self.add(("metadata",), "name or generateName is required")
        elif name and not DNS_SUBDOMAIN.match(name):  # the API server's ValidateObjectMeta
            self.add(("metadata", "name"), f"invalid name '{name}': a lowercase RFC 1123 subdomain must consist "
                                           "of lower case alphanumeric characters, '-' or '.'")
        if self.kind == "CronWorkflow":
            spec = self.m.get("spec") or {}
            if not spec.get("schedule") and not spec.get("schedules"):
                self.add(("spec", "schedules"), "cron workflow must have at least one schedule")

    def _merged_args(self, ref_spec: Mapping[str, Any]) -> list[Mapping[str, Any]]:
        """``util.MergeParameters``: the Workflow's own parameters win over the template's."""
        own = list((self.spec.get("arguments") or {}).get("parameters") or [])
        names = {p.get("name") for p in own}
        return own + [p for p in (ref_spec.get("arguments") or {}).get("parameters") or []
                      if p.get("name") not in names]

    def _spec_metrics(self) -> None:
        """Workflow-level metrics are not validated by ``validate.go``; the controller's ``computeMetrics``
        reports "could not construct metric" at run time and emits nothing, hence a warning."""
        for j, metric in enumerate((self.spec.get("metrics") or {}).get("prometheus") or []):
            for message in _metric_problems(metric):
                self.warn(self.s("metrics", "prometheus", j), f"the controller will not emit this metric: {message}")

    # --- names and arguments ------------------------------------------------------------------

    def _field_names(self, loc: Loc, items: list[Any], prefix: str, params: bool = False) -> None:
        """``validateWorkflowFieldNames``: required, well-formed (``isValidWorkflowFieldName`` or
        ``isValidParamOrArtifactName``) and unique names."""
        seen: set[str] = set()
        for i, item in enumerate(items):
            name = (item or {}).get("name") or ""
            if not name:
                self.add((*loc, i), f"{prefix}[{i}].name is required")
                continue
            if params:
                errs = [] if PARAM_NAME.match(name) else [PARAM_NAME_ERR]
            else:
                errs = (["must be no more than 128 characters"] if len(name) > 128 else []) \
                    + ([] if FIELD_NAME.match(name) else [FIELD_NAME_ERR])
            if errs:
                self.add((*loc, i, "name"), f"{prefix}[{i}].name: '{name}' is invalid: {';'.join(errs)}")
            if name in seen:
                self.add((*loc, i, "name"), f"{prefix}[{i}].name '{name}' is not unique")
            seen.add(name)

    def _arguments(self, loc: Loc, prefix: str, params: list[Mapping[str, Any]], allow_empty: bool,
                   artifacts: list[Mapping[str, Any]] | None = None) -> None:
        """``validateArguments``: field names, then ``validateArgumentsValues``."""
        self._field_names((*loc, "parameters"), params, f"{prefix}parameters", params=True)
        self._field_names((*loc, "artifacts"), artifacts or [], f"{prefix}artifacts", params=True)
        for j, p in enumerate(params):
            name, ploc = p.get("name"), (*loc, "parameters", j)
            vf = p.get("valueFrom")
            if vf is None and "value" not in p and not allow_empty:
                self.add(ploc, f"{prefix}{name}.value or {prefix}{name}.valueFrom is required")
            if vf is not None and (not ({"configMapKeyRef", "event", "supplied"} & set(vf))
                                   or {"path", "jsonPath", "parameter", "expression"} & set(vf)):
                self.add((*ploc, "valueFrom"), f"{prefix}{name}.valueFrom only allows: default, configMapKeyRef "
                                               "and supplied")
            if "enum" in p:
                if not p["enum"]:
                    self.add((*ploc, "enum"), f"{prefix}{name}.enum should contain at least one value")
                elif "value" not in p:
                    if allow_empty:
                        return  # validateArgumentsValues returns here: later parameters go unchecked
                    self.add(ploc, f"{prefix}{name}.value is required")
                elif str(p["value"]) not in [str(e) for e in p["enum"]]:
                    self.add((*ploc, "value"), f"{prefix}{name}.value should be present in {prefix}{name}.enum list")
        for j, a in enumerate(artifacts or []):
            if not a.get("from") and not (set(a) - {"name", "path", "mode", "optional", "fromExpression"}):
                self.add((*loc, "artifacts", j), f"{prefix}{a.get('name')}.from, artifact location, or key is "
                                                 "required")

    def _hooks(self, loc: Loc, hooks: Mapping[str, Any], base: str) -> None:
        """``validateHooks``: every hook but ``exit`` needs an expression."""
        for name, hook in hooks.items():
            if name != "exit" and not (hook or {}).get("expression"):
                self.add((*loc, name), f"{base}.{name} Expression required")

    # --- templates ----------------------------------------------------------------------------

    def _holder(self, loc: Loc, name: str | None, *, ref: Mapping[str, Any] | None = None,
                args: Mapping[str, Any] | None = None, prefix: str = "") -> Mapping[str, Any] | None:
        """``validateTemplateHolder`` + ``ProcessArgs``: the template a task, step or entrypoint names,
        and (given ``args``) that each input parameter without a value is supplied."""
        if ref is not None:
            if name:
                self.add(loc, f"{prefix}template name cannot be specified with templateRef")
            target = (self.known.get(ref.get("name", "")) or {}).get("spec", {})
            tpl = next((t for t in target.get("templates") or [] if t.get("name") == ref.get("template")), None)
            if tpl is None:
                self.add(loc, f"{prefix}template reference {ref.get('name')}.{ref.get('template')} not found")
            return tpl
        tpl = self.templates.get(name)
        if tpl is None:
            self.add(loc, f"{prefix}template name '{name}' undefined")
            return None
        if args is not None:
            given = {p.get("name") for p in args.get("parameters") or []}
            for p in (tpl.get("inputs") or {}).get("parameters") or []:
                if p.get("name") not in given and "value" not in p and "default" not in p \
                        and not (p.get("valueFrom") or {}).get("configMapKeyRef"):
                    self.add(loc, f"{prefix}inputs.parameters.{p.get('name')} was not supplied")
            for p in args.get("parameters") or []:
                if p.get("name") not in {q.get("name") for q in (tpl.get("inputs") or {}).get("parameters") or []}:
                    self.warn(loc, f"{prefix}template '{name}' has no input parameter '{p.get('name')}' "
                                   "(Argo ignores it)")
        return tpl

    def _template(self, loc: Loc, tpl: Mapping[str, Any]) -> None:
        """``validateTemplate``: type, inputs, timeouts, then steps/DAG/leaf, outputs, retry policy, metrics."""
        name = tpl.get("name", "")
        if name in self.validated:
            return
        self.validated.add(name)
        p = f"templates.{name}"
        types = [k for k in ("container", "containerSet", "steps", "script", "resource", "dag", "suspend", "data",
                             "http", "plugin") if tpl.get(k) is not None]
        if not types:
            self.add(loc, f"{p} template type unspecified. {TYPES_MSG}")
        elif len(types) > 1:
            self.add(loc, f"{p} multiple template types specified. {TYPES_MSG}")
        scope = self._inputs(loc, tpl)
        if is_pod_type(tpl):
            scope["pod.name"] = True
        leaf = is_leaf(tpl)
        if tpl.get("timeout") not in (None, ""):
            if not leaf:
                self.add((*loc, "timeout"), f"{template_type(tpl)} template doesn't support timeout field")
            elif str(tpl["timeout"]).lstrip("+-").isdigit():
                self.add((*loc, "timeout"), f"{name} has invalid duration format in timeout")
        if tpl.get("pendingTimeout") not in (None, "") and not leaf:
            self.add((*loc, "pendingTimeout"), f"{template_type(tpl)} template doesn't support pendingTimeout field")
        scope.update(self.globals)
        kind = template_type(tpl)
        if kind == "steps":
            self._steps(loc, tpl, scope)
        elif kind == "dag":
            self._dag(loc, tpl, scope)
        else:
            self._leaf(loc, tpl, scope)
        self._outputs(loc, tpl, scope)
        policy = (tpl.get("retryStrategy") or {}).get("retryPolicy", "")
        if policy not in RETRY_POLICIES:
            self.add((*loc, "retryStrategy", "retryPolicy"), f"{policy} is not a valid RetryPolicy")
        for j, metric in enumerate((tpl.get("metrics") or {}).get("prometheus") or []):
            for message in _metric_problems(metric):
                self.add((*loc, "metrics", "prometheus", j), f"{p} {message}")

    def _inputs(self, loc: Loc, tpl: Mapping[str, Any]) -> dict[str, Any]:
        """``validateInputs``: names, and the scope the inputs open."""
        name, inputs = tpl.get("name"), tpl.get("inputs") or {}
        params, arts = inputs.get("parameters") or [], inputs.get("artifacts") or []
        self._field_names((*loc, "inputs", "parameters"), params, f"templates.{name}.inputs.parameters", True)
        self._field_names((*loc, "inputs", "artifacts"), arts, f"templates.{name}.inputs.artifacts", True)
        scope: dict[str, Any] = {f"inputs.parameters.{p.get('name')}": True for p in params}
        # validateInputs adds {{inputs.parameters}} only with parameters, but ProcessArgs' SubstituteParams
        # (workflow/common/util.go) replaces it in every template before anything is checked
        scope["inputs.parameters"] = True
        for j, art in enumerate(arts):
            ref = f"inputs.artifacts.{art.get('name')}"
            scope[ref] = True
            if is_leaf(tpl):
                scope[f"{ref}.path"] = True
            elif art.get("path"):
                self.add((*loc, "inputs", "artifacts", j, "path"),
                         f"templates.{name}.{ref}.path only valid in container/script templates")
            if art.get("from"):
                self.add((*loc, "inputs", "artifacts", j, "from"), f"templates.{name}.{ref}.from not valid in inputs")
            if "git" in art and not (art["git"] or {}).get("repo"):
                self.add((*loc, "inputs", "artifacts", j, "git"), f"templates.{name}.{ref}.git.repo is required")
        return scope

    def _resolve(self, loc: Loc, obj: Any, scope: Mapping[str, Any], prefix: str) -> None:
        """``resolveAllVariables`` over every string of ``obj`` (Argo checks the JSON of the whole object)."""
        for sloc, text in _walk_strings(obj, loc):
            for tag in unresolved(text, scope, self.globals, self.template_validation):
                self.add(sloc, f"{prefix}failed to resolve {{{{{tag}}}}}")
            for tag in tags(text):
                t = tag.strip()
                if t == "item" and "item" not in scope:
                    self.warn(sloc, "'{{item}}' outside withItems/withParam: Argo's validator does not check it, "
                                    "and nothing ever resolves it")
                elif tag.startswith("="):
                    self.warn(sloc, f"expression tag '{{{{{tag}}}}}' is not evaluated by the local runner")
                elif self.template_validation and t.startswith("workflow.parameters.") and t not in self.globals:
                    self.warn(sloc, f"'{{{{{t}}}}}' is not a parameter of this template; Argo accepts it "
                                    "only because a Workflow could supply it")

    def _leaf(self, loc: Loc, tpl: Mapping[str, Any], scope: Mapping[str, Any]) -> None:
        """``validateLeaf``: variables, image, resource action, activeDeadlineSeconds, parallelism."""
        name = tpl.get("name")
        self._resolve(loc, {k: v for k, v in tpl.items() if k != "outputs"}, scope, f"templates.{name}: ")
        defaults = self.spec.get("templateDefaults") or {}
        for kind in ("container", "script"):
            if tpl.get(kind) is not None and not tpl[kind].get("image") \
                    and not (defaults.get(kind) or {}).get("image"):
                self.add((*loc, kind, "image"), f"templates.{name}.{kind}.image may not be empty")
        action = (tpl.get("resource") or {}).get("action")
        if tpl.get("resource") is not None and action not in {"get", "create", "apply", "delete", "replace", "patch"}:
            self.add((*loc, "resource", "action"), f"templates.{name}.resource.action must be one of: get, create, "
                                                   "apply, delete, replace, patch")
        deadline = tpl.get("activeDeadlineSeconds")
        if deadline is not None and not _int_or_argo_variable(deadline):
            self.add((*loc, "activeDeadlineSeconds"), f"templates.{name}.activeDeadlineSeconds must be a positive "
                                                      "integer > 0 or an argo variable")
        if tpl.get("parallelism") is not None:
            self.add((*loc, "parallelism"), f"templates.{name}.parallelism is only valid for steps and dag templates")

    def _non_leaf(self, loc: Loc, tpl: Mapping[str, Any]) -> None:
        """``validateNonLeaf``."""
        if tpl.get("activeDeadlineSeconds") is not None:
            self.add((*loc, "activeDeadlineSeconds"),
                     f"templates.{tpl.get('name')}.activeDeadlineSeconds is only valid for leaf templates")

    def _outputs(self, loc: Loc, tpl: Mapping[str, Any], scope: Mapping[str, Any]) -> None:
        """``validateOutputs`` (names, variables, paths, parameter sources)."""
        name, outputs = tpl.get("name"), tpl.get("outputs") or {}
        self._field_names((*loc, "outputs", "parameters"), outputs.get("parameters") or [],
                          f"templates.{name}.outputs.parameters", True)
        self._field_names((*loc, "outputs", "artifacts"), outputs.get("artifacts") or [],
                          f"templates.{name}.outputs.artifacts", True)
        self._resolve((*loc, "outputs"), outputs, scope, f"templates.{name}.outputs ")
        for j, art in enumerate(outputs.get("artifacts") or []):
            if not is_leaf(tpl) and art.get("path"):
                self.add((*loc, "outputs", "artifacts", j, "path"), f"templates.{name}.outputs.artifacts."
                                                                    f"{art.get('name')}.path only valid in "
                                                                    "container/script templates")
        for j, param in enumerate(outputs.get("parameters") or []):
            ref, ploc = f"templates.{name}.outputs.parameters.{param.get('name')}", (*loc, "outputs", "parameters", j)
            vf = param.get("valueFrom")
            if vf is not None and "value" in param:
                self.add(ploc, f"{ref} has both valueFrom and value specified, choose one")
            elif vf is None and "value" not in param:
                self.add(ploc, f"{ref} does not have valueFrom or value specified")
            elif vf is not None and template_type(tpl) in {"container", "containerSet", "script"} \
                    and not vf.get("path") and "supplied" not in vf:
                self.add(ploc, f"{ref}.path must be specified for {template_type(tpl)} templates")

    def _steps(self, loc: Loc, tpl: Mapping[str, Any], scope: dict[str, Any]) -> None:
        """``validateSteps``: names, items, arguments, variables; each step sees earlier steps' outputs."""
        self._non_leaf(loc, tpl)
        name = tpl.get("name")
        seen: set[str] = set()
        for i, group in enumerate(tpl.get("steps") or []):
            for k, step in enumerate(group or []):
                sloc, sname = (*loc, "steps", i, k), step.get("name") or ""
                if not sname:
                    self.add(sloc, f"templates.{name}.steps[{i}].name is required")
                    continue
                if sname in seen:
                    self.add((*sloc, "name"), f"templates.{name}.steps[{i}].name '{sname}' is not unique")
                if not FIELD_NAME.match(sname) or len(sname) > 128:
                    self.add((*sloc, "name"), f"templates.{name}.steps[{i}].name '{sname}' is invalid: "
                                              f"{FIELD_NAME_ERR}")
                seen.add(sname)
                scope[f"steps.{sname}.status"] = True
                prefix = f"templates.{name}.steps[{i}].{sname} "
                step_scope = dict(scope)
                err = add_items_to_scope(step, step_scope)
                if err:
                    self.add(sloc, prefix + err)
                args = step.get("arguments") or {}
                self._arguments((*sloc, "arguments"), f"templates.{name}.steps[{i}].{sname}.arguments.",
                                args.get("parameters") or [], False, args.get("artifacts"))
                target = self._holder((*sloc, "template"), step.get("template"), ref=step.get("templateRef"),
                                      args=args, prefix=prefix)
                self._hooks((*sloc, "hooks"), step.get("hooks") or {}, f"templates.{name}.steps[{i}].{sname}")
                self._resolve(sloc, step, step_scope, f"templates.{name}.steps ")
                aggregate = bool(step.get("withItems") or step.get("withParam"))
                add_outputs_to_scope(target, "steps", sname, scope, self.globals, aggregate=aggregate, ancestor=False)

    def _dag(self, loc: Loc, tpl: Mapping[str, Any], scope: dict[str, Any]) -> None:
        """``validateDAG``: names, depends/dependencies rules, task results, cycles, targets, variables
        (outputs of every task, ``.status`` of ancestors only), arguments, ``validateDAGTaskArgumentDependency``."""
        self._non_leaf(loc, tpl)
        name = tpl.get("name")
        tasks = [t for t in (tpl.get("dag") or {}).get("tasks") or [] if isinstance(t, dict)]
        if not tasks:
            self.add((*loc, "dag", "tasks"), f"templates.{name} must have at least one task")
            return
        tloc = (*loc, "dag", "tasks")
        self._field_names(tloc, tasks, f"templates.{name}.tasks")
        by_name = {t.get("name", ""): t for t in tasks}
        using_depends = any(t.get("depends") for t in tasks)
        deps = {t.get("name", ""): dagrules.task_dependencies(t, by_name) for t in tasks}
        resolved: dict[str, Mapping[str, Any] | None] = {}
        for j, t in enumerate(tasks):
            tname, prefix = t.get("name", ""), f"templates.{name}.tasks.{t.get('name', '')} "
            if (using_depends or t.get("dependencies")) and tname[:1].isdigit():
                self.add((*tloc, j, "name"), f"templates.{name}.tasks.{tname} name cannot begin with a digit when "
                                             "using either 'depends' or 'dependencies'")
            if using_depends and t.get("dependencies"):
                self.add((*tloc, j, "dependencies"), f"templates.{name} cannot use both 'depends' and "
                                                     "'dependencies' in the same DAG template")
            if using_depends and t.get("continueOn") is not None:
                self.add((*tloc, j, "continueOn"), f"templates.{name} cannot use 'continueOn' when using 'depends'. "
                                                   "Instead use 'dep-task.Failed'/'dep-task.Errored'")
            resolved[tname] = self._holder((*tloc, j, "template"), t.get("template"), ref=t.get("templateRef"),
                                           prefix=prefix)
            aggregate = bool(t.get("withItems") or t.get("withParam"))
            add_outputs_to_scope(resolved[tname], "tasks", tname, scope, self.globals, aggregate=aggregate,
                                 ancestor=False)
            for message in dagrules.task_result_problems(t):
                self.add((*tloc, j, "depends"), prefix + message)
            field = "depends" if t.get("depends") else "dependencies"
            for dep, items_based in deps[tname].items():
                if dep not in by_name:
                    self.add((*tloc, j, field), f"{prefix}dependency '{dep}' not defined")
                elif items_based and not dagrules.has_items(by_name[dep]):
                    self.add((*tloc, j, field), f"{prefix}dependency '{dep}' uses an items-based condition such "
                                                "as .AnySucceeded or .AllFailed but does not contain any items")
        graph = {n: [d for d in ds if d in by_name] for n, ds in deps.items()}
        cycle = dagrules.find_cycle([t.get("name", "") for t in tasks], graph)
        if cycle:
            self.add((*tloc, [t.get("name") for t in tasks].index(cycle[0]), "depends"),
                     f"templates.{name}.tasks dependency cycle detected: {'->'.join(cycle)}")
        for target in str((tpl.get("dag") or {}).get("target") or "").split():
            if target not in by_name and not dagrules.is_parameter(target):
                self.add((*loc, "dag", "target"), f"templates.{name}.targets: target '{target}' is not defined")
        for j, t in enumerate(tasks):
            self._task((*tloc, j), f"templates.{name}", t, by_name, graph, resolved, scope)

    def _task(self, loc: Loc, where: str, task: Mapping[str, Any], by_name: Mapping[str, Mapping[str, Any]],
              graph: Mapping[str, list[str]], resolved: Mapping[str, Mapping[str, Any] | None],
              scope: Mapping[str, Any]) -> None:
        tname = task.get("name", "")
        prefix = f"{where}.tasks.{tname} "
        task_scope = dict(scope)
        ancestry = dagrules.ancestors(tname, graph)
        for a in ancestry:
            aggregate = bool(by_name[a].get("withItems") or by_name[a].get("withParam"))
            add_outputs_to_scope(resolved.get(a), "tasks", a, task_scope, self.globals, aggregate=aggregate,
                                 ancestor=True)
        if task.get("hooks"):
            task_scope[f"tasks.{tname}.status"] = True
        err = add_items_to_scope(task, task_scope)
        if err:
            self.add(loc, prefix + err)
        self._resolve(loc, task, task_scope, prefix)
        args = task.get("arguments") or {}
        self._arguments((*loc, "arguments"), f"{where}.tasks.{tname}.arguments.", args.get("parameters") or [],
                        False, args.get("artifacts"))
        for k, p in enumerate(args.get("parameters") or []):  # validateDAGTaskArgumentDependency
            value = str(p.get("value", ""))
            if value.startswith("{{tasks.") and value.split(".")[1] not in ancestry:
                self.add((*loc, "arguments", "parameters", k, "value"),
                         f"{prefix}missing dependency '{value.split('.')[1]}' for parameter '{p.get('name')}'")
        for k, a in enumerate(args.get("artifacts") or []):
            source = str(a.get("from", ""))
            if source.startswith("{{tasks.") and source.split(".")[1] not in ancestry:
                self.add((*loc, "arguments", "artifacts", k, "from"),
                         f"{prefix}missing dependency '{source.split('.')[1]}' for artifact '{a.get('name')}'")
        self._hooks((*loc, "hooks"), task.get("hooks") or {}, f"{where}.tasks.{tname}")
        if task.get("template") in self.templates:
            self._holder((*loc, "template"), task.get("template"), args=args, prefix=prefix)


def _int_or_argo_variable(value: Any) -> bool:
    """``intstr.IsValidIntOrArgoVariable`` and the ``> 0`` check of ``validateLeaf``."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return value >= 0
    text = str(value)
    if re.fullmatch(r"\{\{.*\}\}", text.strip()):
        return True
    return text.isdigit()


def _metric_problems(metric: Mapping[str, Any]) -> list[str]:
    """The metric checks of ``validateTemplate``: ``metrics.IsValidMetricName``, ``ValidateMetricLabels``,
    a help string, ``ValidateMetricValues`` (workflow/metrics/util.go)."""
    out = []
    name = str(metric.get("name", ""))
    if not METRIC_NAME.match(name):
        out.append(f"metric name '{name}' is invalid. Metric names must contain alphanumeric characters or '_'")
    for label in metric.get("labels") or []:
        if not METRIC_NAME.match(str(label.get("key", ""))):
            out.append(f"metric label '{label.get('key')}' is invalid: keys may only contain alphanumeric "
                       "characters or '_'")
    if not metric.get("help"):
        out.append(f"metric '{name}' must contain a help string under 'help: ' field")
    for kind in ("gauge", "counter", "histogram"):
        if metric.get(kind) is not None and not metric[kind].get("value"):
            out.append(f"metric '{name}' error: missing {kind}.value")
    return out


def _walk_strings(obj: Any, loc: Loc) -> Iterator[tuple[Loc, str]]:
    if isinstance(obj, str):
        yield loc, obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _walk_strings(v, (*loc, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _walk_strings(v, (*loc, i))


def lint_manifest(manifest: Mapping[str, Any], *, display: str = "", loaded: Loaded | None = None,
                  schema: Path | None = None,
                  known_templates: Mapping[str, Mapping[str, Any]] | None = None,
                  at: Loc = ()) -> list[Problem]:
    """Return what Argo's validator rejects (errors) and promptci's warnings, then the schema problems.

    ``schema`` defaults to :func:`workflows.argo.schema.find_schema` (the packaged, sha-pinned
    schema); a missing or altered schema raises SchemaError, it is never skipped.
    ``known_templates`` maps WorkflowTemplate names to manifests, for Workflows that reference one;
    ``at`` locates a manifest embedded in another (a Sensor's trigger) for the problems' positions.
    """
    meta = manifest.get("metadata")
    shown = display or (meta.get("name") if isinstance(meta, dict) else None) or "<manifest>"
    structural = schema_problems(manifest, find_schema(schema), shown, loaded, at)
    problems: list[Problem] = []
    try:
        linter = _Linter(manifest, loaded, shown, known_templates or {}, at)
        problems = linter.problems
        problems = linter.run()
    except (AttributeError, TypeError, KeyError, ValueError):
        # Argo unmarshals into typed structs before validate.go runs; a manifest of the wrong shape
        # stops there. The schema problems say what is wrong; without any, this is a bug of ours.
        if not structural:
            raise
    return problems + structural
