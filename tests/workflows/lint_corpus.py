"""Hand-made manifests for the `lint` corpus: each one a change to a compiled template, the verdict
Argo's validator gives it, and the source that says so (argo-workflows v4.1.2).

``expect`` is None for "Argo accepts it" or a substring of Argo's own error message.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

M = dict[str, Any]


@dataclass(frozen=True)
class Case:
    name: str
    mutate: Callable[[M], None]
    expect: str | None
    source: str


def tpl(m: M, name: str) -> M:
    return next(t for t in m["spec"]["templates"] if t["name"] == name)


def task(m: M, name: str) -> M:
    return next(t for t in tpl(m, "pipeline")["dag"]["tasks"] if t["name"] == name)


def arg(m: M, task_name: str, param: str) -> M:
    return next(p for p in task(m, task_name)["arguments"]["parameters"] if p["name"] == param)


def env(m: M, template: str, value: str) -> None:
    tpl(m, template)["script"]["env"].append({"name": "EXTRA", "value": value})


def _set(path: list[Any], value: Any) -> Callable[[M], None]:
    """Set ``value`` at ``path``; a path may start with ``__task__ NAME``, ``__tpl__ NAME``,
    ``__warg__ NAME`` (a workflow argument) or ``__targ__ TASK PARAM`` (a task's argument)."""
    def f(m: M) -> None:
        head, rest = path[0], path[1:]
        obj: Any
        if head == "__task__":
            obj, rest = task(m, rest[0]), rest[1:]
        elif head == "__tpl__":
            obj, rest = tpl(m, rest[0]), rest[1:]
        elif head == "__warg__":
            obj, rest = next(p for p in m["spec"]["arguments"]["parameters"] if p["name"] == rest[0]), rest[1:]
        elif head == "__targ__":
            obj, rest = arg(m, rest[0], rest[1]), rest[2:]
        else:
            obj, rest = m, path
        for key in rest[:-1]:
            obj = obj[key]
        obj[rest[-1]] = value
    return f


def _steps_template(m: M) -> None:
    m["spec"]["templates"].append({"name": "two-steps", "steps": [
        [{"name": "first", "template": "lint", "arguments": {"parameters": [
            {"name": "artifact-path", "value": "{{workflow.parameters.artifact-path}}"}]}}],
        [{"name": "second", "template": "lint", "arguments": {"parameters": [
            {"name": "artifact-path", "value": "{{steps.first.outputs.result}}-{{steps.first.status}}"}]}}]]})


def _artifact_output(m: M) -> None:
    tpl(m, "validate").setdefault("outputs", {})["artifacts"] = [{"name": "report", "path": "/tmp/report.md"}]
    tpl(m, "eval")["inputs"]["artifacts"].append({"name": "report", "path": "/tmp/in/report.md"})
    task(m, "eval")["arguments"]["artifacts"] = [{"name": "report",
                                                  "from": "{{tasks.validate.outputs.artifacts.report}}"}]


def _two_types(m: M) -> None:
    tpl(m, "lint")["suspend"] = {}


def _metric(field: str, value: Any) -> Callable[[M], None]:
    def f(m: M) -> None:
        metric = tpl(m, "lint")["metrics"]["prometheus"][0]
        if field == "label":
            metric["labels"][0]["key"] = value
        else:
            metric[field] = value
    return f


def _mixed_depends(m: M) -> None:
    task(m, "eval").pop("depends")
    task(m, "eval")["dependencies"] = ["lint", "validate"]


V = "workflow/validate/validate.go"
CASES: list[Case] = [
    # --- rejected by Argo, accepted by the old lint (issue 10) ---------------------------------
    Case("depends x.Completed", _set(["__task__", "eval", "depends"], "lint.Completed && validate"),
         "task result 'Completed' for task 'lint' is invalid", "workflow/common/ancestry.go ValidateTaskResults"),
    Case("metric name with '-'", _metric("name", "prompt-pipeline-result"),
         "metric name 'prompt-pipeline-result' is invalid", f"{V} validateTemplate; workflow/metrics/util.go"),
    Case("DAG mixing depends and dependencies", _mixed_depends,
         "cannot use both 'depends' and 'dependencies' in the same DAG template", f"{V} validateDAG"),
    Case("argument value outside its enum", _set(["__warg__", "target-environment", "value"], "qa"),
         "spec.arguments.target-environment.value should be present in spec.arguments.target-environment.enum",
         f"{V} validateArgumentsValues"),
    Case("activeDeadlineSeconds on a DAG template", _set(["__tpl__", "pipeline", "activeDeadlineSeconds"], 60),
         "templates.pipeline.activeDeadlineSeconds is only valid for leaf templates", f"{V} validateNonLeaf"),
    Case("metadata.name over 63 characters", _set(["metadata", "name"], "promptci-" + "x" * 60),
         "must not be more than 63 characters long (currently 69)", f"{V} WorkflowTemplate"),
    # --- rejected by Argo and by the old lint ----------------------------------------------------
    Case("dependency cycle", _set(["__task__", "lint", "depends"], "promote"),
         "dependency cycle detected", f"{V} verifyNoCycles"),
    Case("undefined dependency", _set(["__task__", "eval", "depends"], "validate && ghost"),
         "dependency 'ghost' not defined", f"{V} validateDAG"),
    Case("undefined task template", _set(["__task__", "validate", "template"], "nowhere"),
         "template name 'nowhere' undefined", f"{V} validateTemplateHolder"),
    Case("undefined entrypoint", _set(["spec", "entrypoint"], "main"),
         "template name 'main' undefined", f"{V} validateTemplateHolder"),
    Case("undefined exit handler", _set(["spec", "onExit"], "finally"),
         "template name 'finally' undefined", f"{V} validateTemplateHolder"),
    Case("invalid task name", _set(["__task__", "lint", "name"], "Lint_Step"),
         "'Lint_Step' is invalid: name must consist of alpha-numeric characters or '-'",
         f"{V} validateWorkflowFieldNames"),
    Case("duplicate task name", _set(["__task__", "validate", "name"], "lint"),
         "name 'lint' is not unique", f"{V} validateWorkflowFieldNames"),
    Case("duplicate template name", _set(["__tpl__", "validate", "name"], "lint"),
         "spec.templates[1].name 'lint' is not unique", f"{V} Workflow"),
    Case("invalid parameter name", _set(["__warg__", "dry-run", "name"], "dry run"),
         "Parameter/Artifact name must consist of alpha-numeric characters", f"{V} isValidParamOrArtifactName"),
    Case("input parameter not supplied",
         lambda m: task(m, "validate")["arguments"].update(parameters=[
             p for p in task(m, "validate")["arguments"]["parameters"] if p["name"] != "git-revision"]),
         "inputs.parameters.git-revision was not supplied", "workflow/common/util.go ProcessArgs"),
    Case("task argument without a value", lambda m: arg(m, "lint", "artifact-path").pop("value"),
         "artifact-path.value or templates.pipeline.tasks.lint.arguments.artifact-path.valueFrom is required",
         f"{V} validateArgumentsValues"),
    Case("undeclared input variable", lambda m: env(m, "lint", "{{inputs.parameters.nope}}"),
         "failed to resolve {{inputs.parameters.nope}}", f"{V} resolveAllVariables"),
    Case("item.key outside a fan-out", _set(["__targ__", "validate", "artifact-path", "value"], "{{item.path}}"),
         "failed to resolve {{item.path}}", f"{V} addItemsToScope"),
    Case("status of a task that is not an ancestor",
         _set(["__task__", "lint", "when"], "{{tasks.promote.status}} == Succeeded"),
         "failed to resolve {{tasks.promote.status}}", f"{V} addOutputsToScope (isAncestor)"),
    Case("argument from a task that is not an ancestor",
         _set(["__targ__", "lint", "artifact-path", "value"], "{{tasks.validate.outputs.parameters.count}}"),
         "missing dependency 'validate' for parameter 'artifact-path'", f"{V} validateDAGTaskArgumentDependency"),
    Case("unknown workflow label", lambda m: env(m, "lint", "{{workflow.labels.team}}"),
         "failed to resolve {{workflow.labels.team}}", f"{V} Workflow (labelSources)"),
    Case("metric without help", _metric("help", ""), "must contain a help string", f"{V} validateTemplate"),
    Case("metric label key with '-'", _metric("label", "artifact-type"),
         "metric label 'artifact-type' is invalid", "workflow/metrics/util.go ValidateMetricLabels"),
    Case("two template types", _two_types, "multiple template types specified", f"{V} validateTemplateType"),
    Case("unknown retry policy", _set(["__tpl__", "lint", "retryStrategy", "retryPolicy"], "Sometimes"),
         "Sometimes is not a valid RetryPolicy", f"{V} validateTemplateHolder"),
    Case("unknown podGC strategy", _set(["spec", "podGC", "strategy"], "OnSunday"),
         "podGC.strategy unknown strategy 'OnSunday'", f"{V} Workflow"),
    Case("parallelism on a script template", _set(["__tpl__", "lint", "parallelism"], 2),
         "templates.lint.parallelism is only valid for steps and dag templates", f"{V} validateLeaf"),
    Case("items-based condition on a task without items", _set(["__task__", "promote", "depends"],
                                                                "validate.AnySucceeded && approval"),
         "dependency 'validate' uses an items-based condition", f"{V} validateDAG"),
    Case("continueOn with depends", _set(["__task__", "lint", "continueOn"], {"failed": True}),
         "cannot use 'continueOn' when using 'depends'", f"{V} validateDAG"),
    Case("task name starting with a digit", _set(["__task__", "approval", "name"], "1approval"),
         "name cannot begin with a digit", f"{V} validateDAG"),
    Case("empty script image", _set(["__tpl__", "lint", "script", "image"], ""),
         "templates.lint.script.image may not be empty", f"{V} validateLeaf"),
    Case("timeout on a DAG", _set(["__tpl__", "pipeline", "timeout"], "1h"),
         "dag template doesn't support timeout field", f"{V} validateTemplate"),
    Case("withItems and withParam together", _set(["__task__", "eval", "withItems"], ["a"]),
         "only one of withItems, withParam, withSequence can be specified", f"{V} addItemsToScope"),
    Case("unknown field (strict schema)", _set(["__tpl__", "lint", "script", "imagePullPolicyy"], "Always"),
         "schema:", "api/jsonschema/schema.json (argo lint --strict)"),
    Case("name that is not a DNS subdomain", _set(["metadata", "name"], "PromptCI"),
         "lowercase RFC 1123 subdomain", "k8s apimachinery ValidateObjectMeta (the API server refuses it)"),
    # --- accepted by Argo (some rejected by the old lint) -----------------------------------------
    Case("{{workflow.labels.<declared key>}}",
         lambda m: env(m, "lint", "{{workflow.labels.app.kubernetes.io/part-of}}"),
         None, f"{V} Workflow (labelSources)"),
    Case("tasks.X.outputs.artifacts.*", _artifact_output, None, f"{V} addOutputsToScope"),
    Case("{{node.name}}, {{tasks.name}}, {{pod.name}}",
         lambda m: env(m, "lint", "{{node.name}} {{tasks.name}} {{pod.name}}"), None, f"{V} resolveAllVariables"),
    Case("steps template", _steps_template, None, f"{V} validateSteps"),
    Case("{{workflow.status}} outside the exit handler", lambda m: env(m, "lint", "{{workflow.status}}"), None,
         f"{V} Workflow (globalParams)"),
    Case("unknown {{workflow.parameters.*}} in a WorkflowTemplate",
         lambda m: env(m, "lint", "{{workflow.parameters.typo}}"), None,
         f"{V} resolveAllVariables (workflowTemplateValidation)"),
    Case("bare {{item}} outside a fan-out (a warning)", _set(["__targ__", "validate", "artifact-path", "value"],
                                                             "{{item}}"),
         None, "workflow/common/common.go GlobalVarValidWorkflowVariablePrefix ('item.', not 'item')"),
    Case("expression tag", lambda m: env(m, "lint", "{{=sprig.env('HOME')}}"), None,
         "util/template/validate.go Validate (expressions are not validated)"),
    Case("{{retries}} and {{lastRetry.exitCode}}", lambda m: env(m, "lint", "{{retries}} {{lastRetry.exitCode}}"),
         None, "workflow/common/common.go GlobalVarValidWorkflowVariablePrefix (not a checked root)"),
    Case("items-based condition on a fan-out", _set(["__task__", "promote", "depends"],
                                                    "eval.AnySucceeded && approval"),
         None, "workflow/common/ancestry.go GetTaskDependencies"),
    Case("argument the template does not declare",
         lambda m: task(m, "lint")["arguments"]["parameters"].append({"name": "extra", "value": "x"}),
         None, "workflow/common/util.go ProcessArgs (ignores undeclared arguments)"),
    Case("activeDeadlineSeconds on a suspend template", _set(["__tpl__", "approval", "activeDeadlineSeconds"], 60),
         None, f"{V} validateLeaf (suspend is validated as a leaf)"),
]
