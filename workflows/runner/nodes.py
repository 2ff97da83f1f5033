"""Run one node of the DAG: resolve its inputs, then suspend, or run its script with retries.

The scheduler decides *when* a node runs; this module decides what happens inside it, as
Argo's controller does for one task: input parameters (``common.ProcessArgs``),
``{{...}}`` substitution of the script, retries (``retry.py``, operator.go
``processNodeRetries``), a suspend that waits for ``resume`` (util.go ``ResumeWorkflow``),
and the pod's deadline (workflowpod.go: the template's ``activeDeadlineSeconds`` clamped
to what is left of the workflow's, counted from the pod's start). One attempt is handed
to an :class:`~workflows.runner.executors.Executor`.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from steps.atomic import atomic_write
from workflows.runner.control import RunControl
from workflows.runner.executors import Executor, RunContext, StepRequest, StepResult
from workflows.runner.expr import ExpressionError, UnresolvedVariable, substitute
from workflows.runner.records import NodeRecord, RunError, UnsupportedFeature
from workflows.runner.retry import Attempt, decide
from workflows.runner.supported import parse_duration

POLL_SECONDS = 0.2


def item_text(item: Any) -> str:
    """Return the text ``{{item}}`` stands for: a string as is, anything else as compact JSON."""
    return item if isinstance(item, str) else json.dumps(item, separators=(",", ":"))


def task_arguments(task: Mapping[str, Any], item: Any, scope: Mapping[str, str]) -> dict[str, str]:
    """Return the task's argument values, ``{{item}}`` (and ``{{item.KEY}}``) and ``scope`` substituted.

    What Argo passes the node's template (common.ProcessArgs); the scheduler also uses it to
    show a fan-out child's arguments before the child starts. Raises UnresolvedVariable.
    """
    local = dict(scope)
    if item is not None:
        local["item"] = item_text(item)
        if isinstance(item, dict):
            local.update({f"item.{k}": item_text(v) for k, v in item.items()})
    return {p["name"]: substitute(str(p.get("value", "")), local)
            for p in (task.get("arguments") or {}).get("parameters", [])}


def references_result(dag_template: Mapping[str, Any], task: str) -> bool:
    """Return whether the DAG template references ``tasks.<task>.outputs.result``.

    operator.go hasOutputResultRef / generateOutputResultRegex: the template's JSON is
    searched for ``tasks.NAME.outputs.result`` or ``tasks['NAME'].outputs.result``; only
    then does the executor capture stdout (executor.go CaptureScriptResult).
    """
    text = json.dumps(dag_template)
    return bool(re.search(rf"tasks\.{task}\.outputs\.result", text)
                or re.search(rf"tasks\[['\"]{task}['\"]\]\.outputs.result", text))


@dataclass
class NodeRunner:
    """Everything one node needs from its run; shared by the run's threads (it holds no per-node state)."""

    templates: Mapping[str, Mapping[str, Any]]
    context: RunContext
    executor: Executor
    control: RunControl
    approve: bool
    on_event: Callable[[NodeRecord], None]
    result_refs: frozenset[str]
    workflow_deadline: float | None = None
    """``time.monotonic()`` at which the workflow's activeDeadlineSeconds passes."""

    def execute(self, node: NodeRecord, task: Mapping[str, Any], item: Any, scope: Mapping[str, str], *,
                exit_handler: bool = False) -> None:
        """Run ``node`` to its end; its record holds the phase, outputs and times afterwards.

        Any crash fails this node closed (Error), never the run silently.
        """
        tpl = self.templates.get(task["template"])
        task_dir = self.context.run_dir / "tasks" / re.sub(r"[^\w.-]+", "_", node.name)
        node.dir = str(task_dir)
        node.status, node.started = "Running", time.time()
        self.on_event(node)
        try:
            if tpl is None:
                raise RunError(f"template '{task['template']}' does not exist")
            inputs = node.inputs = self._inputs(tpl, task, item, scope)
            atomic_write(task_dir / "inputs.json", json.dumps(inputs, indent=2))
            if "suspend" in tpl:
                self._suspend(node, tpl)
            else:
                capture = not exit_handler and task["name"] in self.result_refs
                self._script_with_retries(node, tpl, inputs, scope, task_dir, capture, exit_handler)
        except Exception as exc:  # noqa: BLE001 - any crash fails this node closed
            known = RunError | UnresolvedVariable | ExpressionError | UnsupportedFeature
            node.status, node.message = "Error", str(exc) if isinstance(exc, known) else \
                f"{type(exc).__name__}: {exc}"
        node.finished = time.time()
        self.on_event(node)

    def _inputs(self, tpl: Mapping[str, Any], task: Mapping[str, Any], item: Any,
                scope: Mapping[str, str]) -> dict[str, str]:
        args = task_arguments(task, item, scope)
        values: dict[str, str] = {}
        for p in (tpl.get("inputs") or {}).get("parameters", []):
            name = p["name"]
            if name in args:
                values[name] = args[name]
            elif "value" in p or "default" in p:
                values[name] = str(p.get("value", p.get("default")))
            else:
                raise RunError(f"task '{task['name']}': input parameter '{name}' is not supplied")
        extra = sorted(set(args) - set(values))
        if extra:
            raise RunError(f"task '{task['name']}': template '{tpl['name']}' has no input parameter(s) "
                           f"{', '.join(extra)}")
        return values

    def _suspend(self, node: NodeRecord, tpl: Mapping[str, Any]) -> None:
        """Wait until ``resume`` (or ``duration``) as Argo does; fail when the run is stopped or out of time."""
        if self.approve:
            node.status, node.message = "Succeeded", "approved (--approve)"
            return
        duration = parse_duration(tpl["suspend"].get("duration")) or None
        ends = time.monotonic() + duration if duration else None
        node.message = (f"suspended: resume with `python workflows/submit.py resume {self.context.run_id}` "
                        f"(or `stop {self.context.run_id}`)")
        self.control.waiting(node.name, True)
        self.on_event(node)
        try:
            while True:
                if self.control.resumed(node.name):
                    node.status, node.message = "Succeeded", "resumed"
                    return
                if ends is not None and time.monotonic() >= ends:
                    node.status, node.message = "Succeeded", ""
                    return
                if self.context.cancelled.is_set():
                    node.status, node.message = "Failed", self.context.cancelled.reason
                    return
                self.context.cancelled.wait(POLL_SECONDS)
        finally:
            self.control.waiting(node.name, False)

    def _script_with_retries(self, node: NodeRecord, tpl: Mapping[str, Any], inputs: dict[str, str],
                             scope: Mapping[str, str], task_dir: Path, capture: bool, exit_handler: bool) -> None:
        strategy = dict(tpl.get("retryStrategy") or {})
        if strategy.get("expression"):  # ProcessArgs substitutes the whole template, the expression too
            strategy["expression"] = substitute(str(strategy["expression"]), step_scope(scope, inputs))
        attempts: list[Attempt] = []
        while True:
            node.attempts += 1
            step = self._script_once(node, tpl, inputs, scope, task_dir / f"attempt-{node.attempts}", capture,
                                     exit_handler)
            attempts.append(Attempt(step.phase, step.exit_code, step.message, step.started, step.finished))
            if not strategy:
                break
            verdict = decide(strategy, attempts, time.time(), workflow_over=self._over(exit_handler))
            if verdict.retry:  # waiting to retry is not done: a fan-out must not be judged on this attempt
                node.status = "Running"
            while verdict.retry and verdict.wait > 0:
                node.message = f"{step.message}; backoff {verdict.wait:.1f}s before retrying"
                self.on_event(node)
                self.context.cancelled.wait(verdict.wait)
                verdict = decide(strategy, attempts, time.time(), workflow_over=self._over(exit_handler))
            if not verdict.retry:
                node.status = step.phase  # no retry after all (e.g. the expression, checked after the backoff)
                if verdict.message and verdict.message != step.message:
                    node.message = f"{step.message}; {verdict.message}" if step.message else verdict.message
                else:
                    node.message = step.message
                break
        latest = task_dir / f"attempt-{node.attempts}"
        for name in ("stdout.txt", "stderr.txt"):
            if (latest / name).exists():
                shutil.copyfile(latest / name, task_dir / name)

    def _over(self, exit_handler: bool) -> str | None:
        """Return why the workflow is over (stopped, out of time), if it is; an exit handler ignores it."""
        if exit_handler:
            return None
        if self.context.cancelled.is_set():
            return self.context.cancelled.reason
        if self.workflow_deadline is not None and time.monotonic() >= self.workflow_deadline:
            return "retry exceeded workflow deadline"
        return None

    def _pod_deadline(self, tpl: Mapping[str, Any], exit_handler: bool) -> float | None:
        """Return the pod's activeDeadlineSeconds (workflowpod.go: min of the template's and the workflow's left)."""
        own = parse_duration(tpl.get("activeDeadlineSeconds")) or None
        if exit_handler or self.workflow_deadline is None:
            return own
        left = max(0.0, self.workflow_deadline - time.monotonic())
        return left if own is None or left < own else own

    def _script_once(self, node: NodeRecord, tpl: Mapping[str, Any], inputs: dict[str, str],
                     scope: Mapping[str, str], attempt_dir: Path, capture: bool, exit_handler: bool) -> StepResult:
        """Run one attempt through the executor and copy what it reports onto the node."""
        request = StepRequest(node=node.name, template=resolve_script(tpl, step_scope(scope, inputs)), inputs=inputs,
                              attempt_dir=attempt_dir, context=self.context, capture_result=capture,
                              active_deadline_seconds=self._pod_deadline(tpl, exit_handler))
        step = self.executor.run(request)
        node.status, node.message, node.exit_code = step.phase, step.message, step.exit_code
        node.attempt_phases.append(step.phase)
        if step.cpu_seconds is not None:
            node.cpu_seconds = (node.cpu_seconds or 0.0) + step.cpu_seconds
        if step.exit_code is not None:  # a step that never started leaves the last attempt's values
            node.outputs, node.result = step.outputs, step.result
        return step


def step_scope(scope: Mapping[str, str], inputs: Mapping[str, str]) -> dict[str, str]:
    """Return ``scope`` plus the node's ``inputs.parameters.*`` (what a template's ``{{...}}`` may use)."""
    local = dict(scope)
    local.update({f"inputs.parameters.{k}": v for k, v in inputs.items()})
    local["inputs.parameters"] = json.dumps([{"name": k, "value": v} for k, v in inputs.items()])
    return local


def resolve_script(tpl: Mapping[str, Any], scope: Mapping[str, str]) -> dict[str, Any]:
    """Return a copy of a script template with ``{{...}}`` resolved in its source, command, args, env
    and git input artifacts.

    Argo's controller substitutes these before it creates the pod; every executor gets the result.
    """
    script = dict(tpl["script"])
    script["source"] = substitute(script.get("source", ""), scope)
    script["command"] = [substitute(c, scope) for c in script.get("command", ["python"])]
    script["args"] = [substitute(a, scope) for a in script.get("args", [])]
    script["env"] = [{**e, "value": substitute(str(e.get("value", "")), scope)} for e in script.get("env", [])]
    inputs = dict(tpl.get("inputs") or {})
    if inputs.get("artifacts"):  # the git artifact's repo and revision: what the init container clones
        inputs["artifacts"] = [{**a, "git": {k: substitute(v, scope) if isinstance(v, str) else v
                                             for k, v in a["git"].items()}} if "git" in a else a
                               for a in inputs["artifacts"]]
    return {**tpl, "script": script, **({"inputs": inputs} if inputs else {})}
