"""Run a compiled WorkflowTemplate on this machine: exactly the dict ``submit.py dump`` writes.

There is no second description of the pipeline: the scheduler reads the template's DAG,
parameters, retry strategies and suspend/script templates, decides what runs when (as
Argo's controller does), and hands each attempt of a script node to an
:class:`~workflows.runner.executors.Executor` (by default the
:class:`~workflows.runner.executors.ProcessExecutor`, which runs the step the way a pod
does, ``python -m hera.workflows.runner -e module:function ARGS_FILE``, in a subprocess).

Local mapping of cluster concepts (documented in docs/pipelines.md):
* the ``git`` input artifact is the local checkout (``repo_root``); ``workingDir`` and any
  path under the artifact's path map into it;
* every other absolute container path (outputs directory, output artifacts) maps into the
  task's directory under the run directory;
* ``python`` is this interpreter; ``envFrom`` secrets come from this process's environment;
* image, resources, service accounts, pod GC, TTL and the artifact repository are cluster
  settings with no local meaning: they are listed in ``run.json`` under ``not_applied``.

Any other template feature raises :class:`UnsupportedFeature` (``supported.py``) naming it
before anything runs: a feature is never silently ignored.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from collections.abc import Set as AbstractSet
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict
from pathlib import Path
from typing import Any

from steps.atomic import atomic_write
from workflows.runner import lifecycle
from workflows.runner.checkout import verify_checkout
from workflows.runner.executors import Executor, ProcessExecutor, RunContext, StepRequest
from workflows.runner.expr import (
    ExpressionError,
    UnresolvedVariable,
    depends_names,
    eval_condition,
    eval_depends,
    substitute,
)
from workflows.runner.metrics import record_metrics
from workflows.runner.records import TERMINAL, NodeRecord, RunError, RunResult, UnsupportedFeature
from workflows.runner.supported import check_supported, parse_duration

__all__ = ["DEFAULT_RUNS_DIR", "NodeRecord", "RunError", "RunResult", "UnsupportedFeature", "check_supported",
           "new_run_id", "record_metrics", "run_pipeline", "run_template", "verify_checkout"]

DEFAULT_RUNS_DIR = Path(".promptci/runs")


# --------------------------------------------------------------------------- helpers

def _item_text(item: Any) -> str:
    return item if isinstance(item, str) else json.dumps(item, separators=(",", ":"))


def _aggregate(values: list[str]) -> str:
    """Return the JSON list Argo makes of a fan-out's output values (parsed when all are JSON)."""
    try:
        return json.dumps([json.loads(v) for v in values])
    except json.JSONDecodeError:
        return json.dumps(values)


def new_run_id() -> str:
    """Return a sortable, unique run id (``local-YYYYmmdd-HHMMSS-xxxxxx``)."""
    return time.strftime("local-%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]


# --------------------------------------------------------------------------- the runner


class _Run:
    """The state of one run. One instance per run; tasks execute on a thread pool."""

    def __init__(self, manifest: Mapping[str, Any], params: Mapping[str, str], *, run_id: str,
                 run_dir: Path, repo_root: Path, approve: bool, parallelism: int | None,
                 on_event: Callable[[NodeRecord], None] | None, env: Mapping[str, str] | None,
                 executor: Executor | None = None):
        self.manifest = manifest
        self.spec = manifest["spec"]
        self.templates = {t["name"]: t for t in self.spec.get("templates", [])}
        self.run_id = run_id
        self.run_dir = run_dir
        self.repo_root = repo_root.resolve()
        self.approve = approve
        limits = [p for p in (parallelism, self.spec.get("parallelism")) if p]
        self.parallelism = int(min(limits)) if limits else 4
        self.on_event = on_event or (lambda _n: None)
        self.base_env = dict(os.environ if env is None else env)
        self.nodes: list[NodeRecord] = []
        self.lock = threading.Lock()
        self.failed = threading.Event()
        self.cancelled = threading.Event()
        self.executor: Executor = executor or ProcessExecutor()
        self.context = RunContext(run_id=run_id, run_dir=run_dir, repo_root=self.repo_root, env=self.base_env,
                                  cancelled=self.cancelled)
        self.wf_params = self._workflow_params(params)
        self.scope: dict[str, str] = {f"workflow.parameters.{k}": v for k, v in self.wf_params.items()}
        self.scope.update({"workflow.name": run_id, "workflow.namespace": "local", "workflow.uid": run_id})

    def _workflow_params(self, given: Mapping[str, str]) -> dict[str, str]:
        declared = {p["name"]: p for p in (self.spec.get("arguments") or {}).get("parameters", [])}
        unknown = sorted(set(given) - set(declared))
        if unknown:
            raise RunError(f"unknown parameter(s): {', '.join(unknown)}; "
                           f"the template takes: {', '.join(declared)}")
        out: dict[str, str] = {}
        for name, p in declared.items():
            value = given.get(name, p.get("value", p.get("default")))
            if value is None:
                raise RunError(f"parameter '{name}' is required (pass -p {name}=...)")
            if p.get("enum") and str(value) not in p["enum"]:
                raise RunError(f"parameter '{name}'='{value}' is not one of {', '.join(p['enum'])}")
            out[name] = str(value)
        return out

    # -- DAG ---------------------------------------------------------------

    def run(self) -> tuple[str, str, dict[str, str]]:
        entry = self.templates.get(self.spec.get("entrypoint", ""))
        if entry is None or "dag" not in entry:
            raise UnsupportedFeature("the entrypoint must be a dag template")
        fail_fast = entry["dag"].get("failFast", True)
        tasks = {t["name"]: t for t in entry["dag"]["tasks"]}
        deps = {name: self._deps_of(t) for name, t in tasks.items()}
        for name, ds in deps.items():
            unknown = [d for d in ds if d not in tasks]
            if unknown:
                raise RunError(f"task '{name}' depends on unknown task(s): {', '.join(unknown)}")
        status: dict[str, str] = {}
        groups: dict[str, list[NodeRecord]] = {}
        running: dict[Future[None], str] = {}
        deadline = parse_duration(self.spec.get("activeDeadlineSeconds"))
        t0 = time.monotonic()
        message = ""
        with ThreadPoolExecutor(max_workers=self.parallelism) as pool, self._cancel_on_interrupt():
            while True:
                for name, task in tasks.items():
                    if name in status or any(status.get(d) not in TERMINAL for d in deps[name]):
                        continue
                    status[name] = "Running"
                    verdict = self._gate(task, status, fail_fast)
                    if verdict is not None:
                        status[name] = verdict[0]
                        self._record_skip(name, task, *verdict)
                        continue
                    try:
                        items = self._items(task)
                    except (UnresolvedVariable, ExpressionError, ValueError) as exc:
                        status[name] = "Error"
                        self._record_skip(name, task, "Error", f"withParam/withItems: {exc}")
                        self.failed.set()
                        continue
                    if items == []:
                        status[name] = "Skipped"
                        self._record_skip(name, task, "Skipped", "empty withParam/withItems: nothing to run")
                        continue
                    nodes = []
                    for i, item in enumerate(items if items is not None else [None]):
                        node_name = name if items is None else f"{name}({i})"
                        node = NodeRecord(name=node_name, task=name, template=task["template"])
                        with self.lock:
                            self.nodes.append(node)
                        nodes.append(node)
                        fut = pool.submit(self._execute, node, task, item)
                        running[fut] = name
                    groups[name] = nodes
                if not running:
                    break
                timeout = max(0.0, deadline - (time.monotonic() - t0)) if deadline else None
                done, _ = wait(list(running), timeout=timeout, return_when=FIRST_COMPLETED)
                if not done:
                    message = f"workflow deadline of {deadline:g}s exceeded"
                    self._cancel()
                    done, _ = wait(list(running))
                for fut in done:
                    name = running.pop(fut)
                    fut.result()
                    if not any(f for f, n in running.items() if n == name):
                        status[name] = self._group_status(groups[name])
                        if status[name] in {"Failed", "Error"}:
                            self.failed.set()
        for name, task in tasks.items():
            if name not in status:  # never became ready: a dependency cycle; fail closed
                status[name] = "Error"
                self._record_skip(name, task, "Error", "never became ready (dependency cycle?)")
        bad = [n for n, s in status.items() if s in {"Failed", "Error"}]
        wf_status = "Failed" if bad or message else "Succeeded"
        if bad and not message:
            message = "failed: " + ", ".join(bad)
        exit_status = self._exit_handler(wf_status, taken=set(status))
        if exit_status is not None:
            status[exit_status[0]] = exit_status[1]
            if exit_status[1] in {"Failed", "Error"} and wf_status == "Succeeded":
                wf_status, message = "Failed", "failed: the exit handler (onExit)"
        return wf_status, message, status

    def _exit_handler(self, wf_status: str, taken: AbstractSet[str]) -> tuple[str, str] | None:
        """Run ``spec.onExit`` as Argo does: after the DAG, whatever its outcome.

        Returns (task name, status). The task is named after its template (so its metrics
        label matches the template's, as in Argo), unless a DAG task already has that name.
        """
        template = self.spec.get("onExit")
        if not template:
            return None
        name = template if template not in taken else f"onExit-{template}"
        self.scope["workflow.status"] = wf_status
        node = NodeRecord(name=name, task=name, template=template)
        with self.lock:
            self.nodes.append(node)
        self._execute(node, {"name": name, "template": template}, None, exit_handler=True)
        return name, node.status

    def _deps_of(self, task: Mapping[str, Any]) -> list[str]:
        if "depends" in task:
            return depends_names(task["depends"])
        return list(task.get("dependencies", []))

    def _gate(self, task: Mapping[str, Any], status: Mapping[str, str],
              fail_fast: bool) -> tuple[str, str] | None:
        """Return (status, reason) when the task must not run, else None."""
        expr = task.get("depends") or " && ".join(task.get("dependencies", [])) or None
        if expr and not eval_depends(expr, lambda n, r: _satisfies(status[n], r)):
            return "Omitted", f"depends not satisfied: {expr}"
        if fail_fast and self.failed.is_set():
            return "Skipped", "skipped: an upstream task failed (fail fast)"
        if "when" in task:
            try:
                cond = substitute(task["when"], self.scope)
                if not eval_condition(cond):
                    return "Skipped", f"when '{cond}' is false"
            except (UnresolvedVariable, ExpressionError) as exc:
                self.failed.set()
                return "Error", f"when: {exc}"
        return None

    def _items(self, task: Mapping[str, Any]) -> list[Any] | None:
        if "withItems" in task:
            return list(task["withItems"])
        if "withParam" in task:
            value = json.loads(substitute(task["withParam"], self.scope))
            if not isinstance(value, list):
                raise ValueError("withParam must resolve to a JSON list")
            return value
        return None

    def _group_status(self, nodes: list[NodeRecord]) -> str:
        states = {n.status for n in nodes}
        for s in ("Error", "Failed"):
            if s in states:
                return s
        return "Succeeded" if states <= {"Succeeded", "Skipped"} else "Error"

    def _record_skip(self, name: str, task: Mapping[str, Any], status: str, message: str) -> None:
        node = NodeRecord(name=name, task=name, template=task.get("template", ""), status=status,
                          message=message)
        with self.lock:
            self.nodes.append(node)
        self.on_event(node)

    def _cancel(self) -> None:
        self.cancelled.set()
        self.executor.cancel()

    @contextlib.contextmanager
    def _cancel_on_interrupt(self) -> Iterator[None]:
        """Cancel every running step when the DAG loop is interrupted (Ctrl-C, SIGTERM, a crash).

        Entered after the thread pool, so it runs before the pool waits for its workers: an
        interrupted run stops its steps instead of waiting for them to finish.
        """
        try:
            yield
        except BaseException:
            self._cancel()
            raise

    # -- one node ------------------------------------------------------------

    def _execute(self, node: NodeRecord, task: Mapping[str, Any], item: Any, exit_handler: bool = False) -> None:
        """Run one node (with retries) and publish its outputs into the scope.

        The exit handler runs even after a failure or a deadline, as in Argo.
        """
        tpl = self.templates.get(task["template"])
        task_dir = self.run_dir / "tasks" / re.sub(r"[^\w.-]+", "_", node.name)
        node.dir = str(task_dir)
        if exit_handler:
            self.cancelled.clear()
        elif self.failed.is_set() or self.cancelled.is_set():
            node.status, node.message = "Skipped", "skipped: an upstream task failed (fail fast)"
            self.on_event(node)
            return
        node.status, node.started = "Running", time.time()
        self.on_event(node)
        try:
            if tpl is None:
                raise RunError(f"template '{task['template']}' does not exist")
            inputs = self._inputs(tpl, task, item)
            atomic_write(task_dir / "inputs.json", json.dumps(inputs, indent=2))
            if "suspend" in tpl:
                self._suspend(node, tpl)
            else:
                self._script_with_retries(node, tpl, inputs, task_dir)
        except Exception as exc:  # noqa: BLE001 - any crash fails this node closed, never the run silently
            node.status, node.message = "Error", f"{type(exc).__name__}: {exc}" if not isinstance(
                exc, RunError | UnresolvedVariable | ExpressionError | UnsupportedFeature) else str(exc)
        node.finished = time.time()
        if node.status in {"Failed", "Error"}:
            self.failed.set()
        self._publish(node, task)
        self.on_event(node)

    def _inputs(self, tpl: Mapping[str, Any], task: Mapping[str, Any], item: Any) -> dict[str, str]:
        scope = dict(self.scope)
        if item is not None:
            scope["item"] = _item_text(item)
            if isinstance(item, dict):
                scope.update({f"item.{k}": _item_text(v) for k, v in item.items()})
        args = {p["name"]: substitute(str(p.get("value", "")), scope)
                for p in (task.get("arguments") or {}).get("parameters", [])}
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
        duration = tpl["suspend"].get("duration")
        if duration:
            time.sleep(parse_duration(duration))
            node.status = "Succeeded"
        elif self.approve:
            node.status, node.message = "Succeeded", "approved (--approve)"
        else:
            node.status = "Failed"
            node.message = ("manual approval required: this step suspends on Argo until resumed; "
                            "re-run locally with --approve to approve it")

    def _script_with_retries(self, node: NodeRecord, tpl: Mapping[str, Any], inputs: dict[str, str],
                             task_dir: Path) -> None:
        retry = tpl.get("retryStrategy") or {}
        limit = int(retry.get("limit", 0)) if retry else 0
        policy = retry.get("retryPolicy", "OnFailure")
        backoff = retry.get("backoff") or {}
        delay, factor = parse_duration(backoff.get("duration")), float(backoff.get("factor", 1) or 1)
        max_total = parse_duration(backoff.get("maxDuration")) if backoff.get("maxDuration") else None
        waited = 0.0
        while True:
            node.attempts += 1
            self._script_once(node, tpl, inputs, task_dir / f"attempt-{node.attempts}")
            if node.status == "Succeeded" or self.cancelled.is_set() or node.attempts > limit:
                break
            if not self._should_retry(node, policy, retry.get("expression")):
                break
            if max_total is not None and waited + delay > max_total:
                break
            time.sleep(delay)
            waited += delay
            delay *= factor
        latest = task_dir / f"attempt-{node.attempts}"
        for name in ("stdout.txt", "stderr.txt"):
            if (latest / name).exists():
                shutil.copyfile(latest / name, task_dir / name)

    def _should_retry(self, node: NodeRecord, policy: str, expression: str | None) -> bool:
        by_policy = {"Always": True, "OnFailure": node.status == "Failed", "OnError": node.status == "Error",
                     "OnTransientError": node.status == "Error"}
        if policy not in by_policy:
            raise UnsupportedFeature(f"retryPolicy '{policy}'")
        if not by_policy[policy]:
            return False
        if expression:
            code = "" if node.exit_code is None else str(node.exit_code)
            return eval_condition(expression, {"lastRetry.status": node.status, "lastRetry.exitCode": code})
        return True

    def _script_once(self, node: NodeRecord, tpl: Mapping[str, Any], inputs: dict[str, str],
                     attempt_dir: Path) -> None:
        """Run one attempt through the executor and copy what it reports onto the node."""
        scope = dict(self.scope)
        scope.update({f"inputs.parameters.{k}": v for k, v in inputs.items()})
        scope["inputs.parameters"] = json.dumps([{"name": k, "value": v} for k, v in inputs.items()])
        request = StepRequest(node=node.name, template=_resolve_script(tpl, scope), inputs=inputs,
                              attempt_dir=attempt_dir, context=self.context)
        step = self.executor.run(request)
        node.status, node.message, node.exit_code = step.phase, step.message, step.exit_code
        if step.exit_code is not None:  # a step that never started leaves the last attempt's values
            node.outputs, node.result = step.outputs, step.result

    def _publish(self, node: NodeRecord, task: Mapping[str, Any]) -> None:
        """Put a finished node's outputs in scope (aggregated lists for a fan-out)."""
        name = task["name"]
        with self.lock:
            prefix = f"tasks.{name}.outputs"
            siblings = [n for n in self.nodes if n.task == name]
            fan_out = "withParam" in task or "withItems" in task
            if not fan_out:
                for k, v in node.outputs.items():
                    self.scope[f"{prefix}.parameters.{k}"] = v
                if node.result is not None:
                    self.scope[f"{prefix}.result"] = node.result
                return
            ordered = sorted(siblings, key=lambda n: int(n.name.rsplit("(", 1)[1].rstrip(")")))
            keys = {k for n in ordered for k in n.outputs}
            for k in keys:
                self.scope[f"{prefix}.parameters.{k}"] = _aggregate([n.outputs[k] for n in ordered
                                                                     if k in n.outputs])
            results = [n.result for n in ordered if n.result]
            self.scope[f"{prefix}.result"] = _aggregate(results)


def _satisfies(state: str, result: str | None) -> bool:
    if result is None:
        return state in {"Succeeded", "Skipped"}
    return {
        "Succeeded": state == "Succeeded", "Failed": state == "Failed", "Errored": state == "Error",
        "Skipped": state == "Skipped", "Omitted": state == "Omitted", "Daemoned": False,
        "Completed": state in {"Succeeded", "Failed"}, "AnySucceeded": state == "Succeeded",
        "AllFailed": state == "Failed",
    }[result]


def _resolve_script(tpl: Mapping[str, Any], scope: Mapping[str, str]) -> dict[str, Any]:
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


# --------------------------------------------------------------------------- public API


def run_template(manifest: Mapping[str, Any], params: Mapping[str, str] | None = None, *,
                 repo_root: Path | None = None, run_id: str | None = None, runs_dir: Path | None = None,
                 approve: bool = False, parallelism: int | None = None, progress: bool = False,
                 env: Mapping[str, str] | None = None,
                 on_event: Callable[[NodeRecord], None] | None = None,
                 executor: Executor | None = None) -> RunResult:
    """Execute a compiled WorkflowTemplate dict locally and return the RunResult.

    Every run gets one run id and one directory (``runs_dir/run_id``) holding ``run.json``
    and, per task, ``inputs.json``, ``stdout.txt``/``stderr.txt`` and the outputs. Raises
    UnsupportedFeature (before running anything) for template features the runner lacks,
    and RunError for bad parameters. ``executor`` runs each script attempt (default: a
    :class:`ProcessExecutor`, one per run).
    """
    not_applied = check_supported(manifest, getattr(executor, "applies", None))
    rid = run_id or new_run_id()
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}", rid):
        raise RunError(f"run id '{rid}' must be letters, digits, '.', '_' or '-'")
    root = (repo_root or Path.cwd()).resolve()
    runs_root = (runs_dir or root / DEFAULT_RUNS_DIR).resolve()
    run_dir = runs_root / rid
    if run_dir.exists():
        raise RunError(f"run directory {run_dir} already exists (run ids are unique)")
    containers = bool(getattr(executor, "uses_containers", False))
    for line in lifecycle.reap_strays(runs_root, containers):  # what a killed runner left behind
        print(f"runner: {line}", file=sys.stderr)
    run_dir.mkdir(parents=True)
    view = None
    if progress:
        from workflows.runner.progress import ProgressView

        view = ProgressView(rid)
    callbacks = [c for c in (on_event, view.update if view else None) if c]

    def notify(node: NodeRecord) -> None:
        for callback in callbacks:
            callback(node)

    try:
        run = _Run(manifest, params or {}, run_id=rid, run_dir=run_dir, repo_root=root, approve=approve,
                   parallelism=parallelism, env=env, on_event=notify, executor=executor)
        verify_checkout(root, run.wf_params)
    except RunError:
        shutil.rmtree(run_dir, ignore_errors=True)  # nothing ran: leave no run behind
        raise
    started = time.time()
    lifecycle.write_state(run_dir, rid, type(run.executor).__name__, containers)
    if view:
        view.start()
    try:
        with lifecycle.terminate_as_interrupt():
            status, message, tasks = run.run()
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM: the steps were cancelled; record it
        run._cancel()
        status, tasks = "Error", {}
        message = "terminated (SIGTERM)" if isinstance(exc, lifecycle.Terminated) else "interrupted"
    finally:
        if view:
            view.stop()
    result = RunResult(run_id=rid, run_dir=run_dir, status=status, message=message, started=started,
                       finished=time.time(), nodes=list(run.nodes), tasks=tasks)
    summary = {"run_id": rid, "template": manifest.get("metadata", {}).get("name"), "status": status,
               "message": message, "duration_seconds": round(result.duration_seconds, 3),
               "parameters": run.wf_params, "tasks": tasks, "nodes": [asdict(n) for n in result.nodes],
               "not_applied": not_applied}
    atomic_write(run_dir / lifecycle.RESULT_FILE, json.dumps(summary, indent=2))
    lifecycle.clear_state(run_dir)
    return result


def run_pipeline(artifact_type: str, params: dict[str, str], run_id: str, *, repo_root: Path | None = None,
                 approve: bool = False, progress: bool = False, config_path: str | None = None) -> RunResult:
    """Run the ``promptci-<artifact_type>`` pipeline on the local checkout and record its metrics.

    ``repo-url`` defaults to the checkout itself (the runner maps the git artifact to it).
    Raises ValueError for an unknown artifact type, ConfigError for a bad pipeline config.
    """
    from config.artifacts import ArtifactType
    from workflows.templates import PipelineSettings, build_template

    atype = ArtifactType(artifact_type)
    root = (repo_root or Path.cwd()).resolve()
    manifest = build_template(atype, PipelineSettings.load(config_path)).to_dict()
    full = {"repo-url": str(root), **params}
    env = dict(os.environ)
    if config_path:
        env["PROMPTCI_CONFIG"] = str(Path(config_path).resolve())
    result = run_template(manifest, full, repo_root=root, run_id=run_id, approve=approve, progress=progress,
                          env=env)
    record_metrics(manifest, result)
    return result
