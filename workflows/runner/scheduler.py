"""Run a compiled WorkflowTemplate on this machine: exactly the dict ``submit.py dump`` writes.

There is no second description of the pipeline: the scheduler reads the template's DAG,
parameters, retry strategies and suspend/script templates, decides what runs when (as
Argo's controller does), and hands each attempt of a script node to an
:class:`~workflows.runner.executors.Executor` (by default the local one,
:func:`~workflows.runner.forking.local_executor`: the stage entry forked from a zygote that
already imported the stages, anything else as the
:class:`~workflows.runner.executors.ProcessExecutor` runs it, the way a pod does, the
template's command and args then the script file, in a subprocess).

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
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from collections.abc import Set as AbstractSet
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict
from pathlib import Path
from typing import Any

from steps.atomic import atomic_write
from workflows.runner import lifecycle
from workflows.runner.aggregate import AggregateError, Child, aggregate_outputs
from workflows.runner.checkout import verify_checkout
from workflows.runner.control import RunControl
from workflows.runner.dag import FULFILLED, TaskNode, assess_dag_phase, depends_expression, depends_satisfied
from workflows.runner.executors import Cancellation, Executor, RunContext
from workflows.runner.expr import ExpressionError, UnresolvedVariable, depends_names, eval_condition, substitute
from workflows.runner.forking import local_executor
from workflows.runner.metrics import record_metrics
from workflows.runner.nodes import POLL_SECONDS, NodeRunner, references_result, task_arguments
from workflows.runner.records import NodeRecord, RunError, RunResult, UnsupportedFeature
from workflows.runner.supported import check_supported, parse_duration

__all__ = ["DEFAULT_RUNS_DIR", "NodeRecord", "RunError", "RunResult", "UnsupportedFeature", "check_supported",
           "default_parallelism", "new_run_id", "record_metrics", "run_pipeline", "run_template", "verify_checkout"]

DEFAULT_RUNS_DIR = Path(".promptci/runs")
DEADLINE_MESSAGE = "Step exceeded its deadline"  # exec_control.go applyExecutionControl
STOP_MESSAGE = "workflow shutdown with strategy:  Stop"  # exec_control.go (two spaces, as Argo writes it)


def default_parallelism() -> int:
    """Return how many steps a local run runs at once when not told: the CPUs this process may use.

    Its CPU affinity (a container's or ``taskset``'s limit), else ``os.cpu_count()``; at least 1.
    Eval steps are CPU-bound (node + promptfoo, replaying recordings): more of them at once than
    cores only adds memory and contention (issue 16; figures in docs/pipelines.md). The template's
    ``spec.parallelism`` (the cluster's setting) still caps it, and ``--parallelism`` replaces it.
    """
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # no affinity on this platform (macOS)
        return max(1, os.cpu_count() or 1)


def new_run_id() -> str:
    """Return a sortable, unique run id (``local-YYYYmmdd-HHMMSS-xxxxxx``)."""
    return time.strftime("local-%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]


class _Run:
    """The state of one run: the DAG loop on this thread, the nodes on a thread pool."""

    def __init__(self, manifest: Mapping[str, Any], params: Mapping[str, str], *, run_id: str,
                 run_dir: Path, repo_root: Path, approve: bool, parallelism: int | None,
                 on_event: Callable[[NodeRecord], None] | None, env: Mapping[str, str] | None,
                 executor: Executor | None = None, volumes: Mapping[str, Path] | None = None):
        self.manifest = manifest
        self.spec = manifest["spec"]
        self.templates = {t["name"]: t for t in self.spec.get("templates", [])}
        self.run_id = run_id
        limits = [p for p in (parallelism or default_parallelism(), self.spec.get("parallelism")) if p]
        self.parallelism = int(min(limits))
        self.on_event = on_event or (lambda _n: None)
        self.nodes: list[NodeRecord] = []
        self.cancelled = Cancellation()
        self.executor: Executor = executor or local_executor()
        self.control = RunControl(run_dir)
        self.context = RunContext(run_id=run_id, run_dir=run_dir, repo_root=repo_root.resolve(),
                                  env=dict(os.environ if env is None else env), cancelled=self.cancelled,
                                  volumes=dict(volumes or {}))
        self.approve = approve
        self.wf_params = self._workflow_params(params)
        self.scope: dict[str, str] = {f"workflow.parameters.{k}": v for k, v in self.wf_params.items()}
        self.scope.update({"workflow.name": run_id, "workflow.namespace": "local", "workflow.uid": run_id})
        self.aggregate_errors: dict[str, str] = {}
        self.unstarted: list[NodeRecord] = []

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

    # -- the DAG -------------------------------------------------------------

    def run(self) -> tuple[str, str, dict[str, str]]:
        """Run the entrypoint DAG, then the exit handler; return (workflow phase, message, task phases).

        Every ready task is started (a failure cancels nothing: dag.go executeDAG visits every
        target); after each change the phase is assessed from the leaf tasks (dag.go assessDAGPhase).
        """
        entry = self.templates.get(self.spec.get("entrypoint", ""))
        if entry is None or "dag" not in entry:
            raise UnsupportedFeature("the entrypoint must be a dag template")
        fail_fast = entry["dag"].get("failFast", True)
        tasks = {t["name"]: t for t in entry["dag"]["tasks"]}
        deps: dict[str, list[str]] = {}
        for name, t in tasks.items():
            try:
                deps[name] = depends_names(depends_expression(t)) if depends_expression(t) else []
            except ExpressionError as exc:
                raise RunError(f"task '{name}': {exc}") from exc
        for name, ds in deps.items():
            unknown = [d for d in ds if d not in tasks]
            if unknown:
                raise RunError(f"task '{name}' depends on unknown task(s): {', '.join(unknown)}")
        wf_deadline = parse_duration(self.spec.get("activeDeadlineSeconds")) or None
        t0 = time.monotonic()
        runner = NodeRunner(templates=self.templates, context=self.context, executor=self.executor,
                            control=self.control, approve=self.approve, on_event=self.on_event,
                            result_refs=frozenset(t for t in tasks if references_result(entry, t)),
                            workflow_deadline=t0 + wf_deadline if wf_deadline else None)
        graph: dict[str, TaskNode] = {}
        groups: dict[str, list[NodeRecord]] = {}
        pending: deque[tuple[NodeRecord, Mapping[str, Any], Any]] = deque()
        running: dict[Future[None], NodeRecord] = {}
        message = ""
        with ThreadPoolExecutor(max_workers=self.parallelism + len(tasks)) as pool, self._cancel_on_interrupt():
            try:
                while True:
                    if not self.cancelled.is_set():
                        self._schedule(tasks, deps, graph, groups, pending)
                        for entry in list(pending):
                            node, task, item = entry
                            if self._is_pod(task) and self._pods(running) >= self.parallelism:
                                continue  # spec.parallelism counts pods; a suspend is not one
                            pending.remove(entry)
                            self._add(node)
                            graph.setdefault(node.task, TaskNode("Running"))
                            running[pool.submit(runner.execute, node, task, item, self._snapshot())] = node
                        phase = assess_dag_phase(deps, graph, fail_fast=fail_fast)
                        if phase != "Running" or (not running and not pending):
                            break
                    elif not running:
                        phase = "Failed"  # dag.go assessDAGPhase: a shut-down DAG fails
                        break
                    timeout = POLL_SECONDS
                    if wf_deadline and not self.cancelled.is_set():
                        timeout = max(0.0, min(timeout, t0 + wf_deadline - time.monotonic()))
                    done, _ = wait(list(running), timeout=timeout, return_when=FIRST_COMPLETED)
                    if not self.cancelled.is_set():
                        if wf_deadline and time.monotonic() - t0 >= wf_deadline:
                            message = f"workflow deadline of {wf_deadline:g}s exceeded"
                            self._cancel(DEADLINE_MESSAGE)
                        elif self.control.stop_requested():
                            message = "Stopped with strategy 'Stop'"
                            self._cancel(STOP_MESSAGE)
                    for fut in done:
                        node = running.pop(fut)
                        fut.result()
                        self._finished(node, tasks[node.task], graph, groups)
            except BaseException:  # Ctrl-C, SIGTERM, a crash: stop the steps, so the pool can wind down
                self._cancel("interrupted")
                raise
        self.unstarted = [n for n, _, _ in pending if n.task in groups]
        status = {name: n.phase for name, n in graph.items()}
        for name, task in tasks.items():
            if name not in status and phase == "Running":  # never became ready: a cycle; fail closed
                status[name] = "Error"
                self._record(name, task, "Error", "never became ready (dependency cycle?)")
        if phase == "Running":
            phase = "Error"
        bad = [n for n, s in status.items() if s in {"Failed", "Error"}]
        if phase != "Succeeded" and not message:
            message = "failed: " + ", ".join(bad) if bad else f"the DAG ended {phase}"
        exit_status = self._exit_handler(phase, runner, taken=set(status))
        if exit_status is not None:
            status[exit_status[0]] = exit_status[1]
            if exit_status[1] in {"Failed", "Error"} and phase == "Succeeded":
                phase, message = "Failed", "failed: the exit handler (onExit)"
        return phase, message, status

    def _is_pod(self, task: Mapping[str, Any]) -> bool:
        return "suspend" not in self.templates.get(task["template"], {})

    def _pods(self, running: Mapping[Future[None], NodeRecord]) -> int:
        return sum(1 for n in running.values() if self._is_pod({"template": n.template}))

    def _snapshot(self) -> dict[str, str]:
        return dict(self.scope)

    def _schedule(self, tasks: Mapping[str, Mapping[str, Any]], deps: Mapping[str, list[str]],
                  graph: dict[str, TaskNode], groups: dict[str, list[NodeRecord]],
                  pending: deque[tuple[NodeRecord, Mapping[str, Any], Any]]) -> None:
        """Decide every task that can be decided now: passes until one changes nothing (an Omitted
        task can make the next one decidable at once, whatever the tasks' order)."""
        while True:
            before = (len(graph), len(pending))
            self._schedule_pass(tasks, deps, graph, groups, pending)
            if (len(graph), len(pending)) == before:
                return

    def _schedule_pass(self, tasks: Mapping[str, Mapping[str, Any]], deps: Mapping[str, list[str]],
                  graph: dict[str, TaskNode], groups: dict[str, list[NodeRecord]],
                  pending: deque[tuple[NodeRecord, Mapping[str, Any], Any]]) -> None:
        """Give every task whose dependencies are fulfilled its node (dag.go executeDAGTask).

        In Argo's order: ``depends`` (else Omitted), references to the dependencies' outputs,
        ``when`` (else Skipped), then the fan-out (empty: Skipped).
        """
        queued = {n.task for n, _, _ in pending}
        for name, task in tasks.items():
            if name in graph or name in queued or any(
                    d not in graph or graph[d].phase not in FULFILLED for d in deps[name]):
                continue
            expr = depends_expression(task)
            try:
                if expr and not depends_satisfied(expr, graph):
                    self._omit(name, task, graph, "Omitted", "omitted: depends condition not met")
                    continue
            except ExpressionError as exc:
                self._omit(name, task, graph, "Error", str(exc))
                continue
            broken = [self.aggregate_errors[a] for a in self._ancestors(name, deps) if a in self.aggregate_errors]
            if broken:
                self._omit(name, task, graph, "Error", broken[0])
                continue
            if "when" in task:
                try:
                    cond = substitute(task["when"], self.scope)
                    if not eval_condition(cond):
                        self._omit(name, task, graph, "Skipped", f"when '{cond}' evaluated false")
                        continue
                except (UnresolvedVariable, ExpressionError) as exc:
                    self._omit(name, task, graph, "Error", f"when: {exc}")
                    continue
            try:
                items = self._items(task)
            except (UnresolvedVariable, ExpressionError, ValueError) as exc:
                self._omit(name, task, graph, "Error", f"withParam/withItems: {exc}")
                continue
            if items is None:
                pending.append((NodeRecord(name=name, task=name, template=task["template"]), task, None))
            elif not items:
                self._omit(name, task, graph, "Skipped", "Skipped, empty params")
            else:
                groups[name] = [NodeRecord(name=f"{name}({i})", task=name, template=task["template"])
                                for i in range(len(items))]
                graph[name] = TaskNode("Running", children=["Pending"] * len(items))
                pending.extend((node, task, item) for node, item in zip(groups[name], items, strict=True))
                self._announce(groups[name], task, items)

    def _announce(self, children: list[NodeRecord], task: Mapping[str, Any], items: list[Any]) -> None:
        """Report a fan-out's children as Pending, with their arguments, before any of them starts.

        So the progress view knows the whole fan-out (shards k/n, the tests still to run)
        while the parallelism limit holds most children back. A child whose arguments cannot
        be resolved yet is reported without them; starting it reports the error.
        """
        for node, item in zip(children, items, strict=True):
            with contextlib.suppress(UnresolvedVariable, ExpressionError):
                node.inputs = task_arguments(task, item, self.scope)
            self.on_event(node)

    @staticmethod
    def _ancestors(name: str, deps: Mapping[str, list[str]]) -> set[str]:
        """Return every task ``name`` depends on, directly or not (common.GetTaskAncestry)."""
        seen: set[str] = set()
        todo = list(deps[name])
        while todo:
            d = todo.pop()
            if d not in seen:
                seen.add(d)
                todo.extend(deps[d])
        return seen

    def _items(self, task: Mapping[str, Any]) -> list[Any] | None:
        if "withItems" in task:
            return list(task["withItems"])
        if "withParam" in task:
            value = json.loads(substitute(task["withParam"], self.scope))
            if not isinstance(value, list):
                raise ValueError("withParam must resolve to a JSON list")
            return value
        return None

    def _finished(self, node: NodeRecord, task: Mapping[str, Any], graph: dict[str, TaskNode],
                  groups: Mapping[str, list[NodeRecord]]) -> None:
        """Record a finished node; publish its outputs (a fan-out's once every child is done)."""
        name = node.task
        prefix = f"tasks.{name}.outputs"
        if name not in groups:
            graph[name] = TaskNode(node.status)
            for k, v in node.outputs.items():  # operator.go buildLocalScope: whatever the phase
                self.scope[f"{prefix}.parameters.{k}"] = v
            if node.result is not None:
                self.scope[f"{prefix}.result"] = node.result
            return
        children = groups[name]
        phases = [c.status for c in children]
        graph[name] = TaskNode("Running", children=phases)
        if any(p not in FULFILLED for p in phases):
            return
        phase = "Succeeded"
        for p in phases:  # dag.go executeDAGTask: the last failed/errored child's phase
            if p in {"Failed", "Error"}:
                phase = p
        graph[name] = TaskNode(phase, children=phases)
        try:
            self.scope.update(aggregate_outputs(name, [Child(i, c.status, c.outputs, c.result)
                                                       for i, c in enumerate(children)]))
        except AggregateError as exc:
            self.aggregate_errors[name] = str(exc)

    def _exit_handler(self, wf_status: str, runner: NodeRunner, taken: AbstractSet[str]) -> tuple[str, str] | None:
        """Run ``spec.onExit`` as Argo does: after the DAG, whatever its outcome (even after a stop).

        Returns (task name, status). The task is named after its template (so its metrics
        label matches the template's, as in Argo), unless a DAG task already has that name.
        """
        template = self.spec.get("onExit")
        if not template:
            return None
        name = template if template not in taken else f"onExit-{template}"
        self.scope["workflow.status"] = wf_status
        node = NodeRecord(name=name, task=name, template=template)
        self._add(node)
        self.cancelled.clear()
        runner.execute(node, {"name": name, "template": template}, None, self._snapshot(), exit_handler=True)
        return name, node.status

    def _add(self, node: NodeRecord) -> None:
        self.nodes.append(node)

    def _omit(self, name: str, task: Mapping[str, Any], graph: dict[str, TaskNode], status: str,
              message: str) -> None:
        graph[name] = TaskNode(status)
        self._record(name, task, status, message)

    def _record(self, name: str, task: Mapping[str, Any], status: str, message: str) -> None:
        node = NodeRecord(name=name, task=name, template=task.get("template", ""), status=status,
                          message=message)
        self._add(node)
        self.on_event(node)

    def _cancel(self, reason: str) -> None:
        self.cancelled.cancel(reason)
        self.executor.cancel()

    @contextlib.contextmanager
    def _cancel_on_interrupt(self) -> Iterator[None]:
        """Cancel every running step when the DAG loop is interrupted (Ctrl-C, SIGTERM, a crash).

        Entered after the thread pool, so it runs before the pool waits for its workers: an
        interrupted run stops its steps instead of waiting for them to finish.
        """
        try:
            yield
        except BaseException as exc:
            self._cancel("terminated (SIGTERM)" if isinstance(exc, lifecycle.Terminated) else "interrupted")
            raise


# --------------------------------------------------------------------------- public API


def materialize_volumes(manifest: Mapping[str, Any], configmaps: Mapping[str, Mapping[str, str]],
                        root: Path) -> dict[str, Path]:
    """Write each ConfigMap volume's keys as files under ``root/<volume>``; return the directories by volume.

    As the kubelet does for a ``configMap`` volume: one file per key, read-only. Raises
    RunError when a non-optional ConfigMap is not among ``configmaps``.
    """
    out: dict[str, Path] = {}
    for vol in (manifest.get("spec") or {}).get("volumes", []):
        ref = vol["configMap"]
        data = configmaps.get(ref["name"])
        if data is None and not ref.get("optional"):
            raise RunError(f"ConfigMap '{ref['name']}' (volume '{vol['name']}') is not available to the local run")
        d = root / vol["name"]
        d.mkdir(parents=True, exist_ok=True)
        for key, text in (data or {}).items():
            atomic_write(d / key, text)
            (d / key).chmod(0o444)
        out[vol["name"]] = d
    return out


def run_template(manifest: Mapping[str, Any], params: Mapping[str, str] | None = None, *,
                 repo_root: Path | None = None, run_id: str | None = None, runs_dir: Path | None = None,
                 approve: bool = False, parallelism: int | None = None, progress: bool = False,
                 env: Mapping[str, str] | None = None,
                 on_event: Callable[[NodeRecord], None] | None = None,
                 executor: Executor | None = None,
                 configmaps: Mapping[str, Mapping[str, str]] | None = None) -> RunResult:
    """Execute a compiled WorkflowTemplate dict locally and return the RunResult.

    Every run gets one run id and one directory (``runs_dir/run_id``) holding ``run.json``
    and, per task, ``inputs.json``, ``stdout.txt``/``stderr.txt`` and the outputs. Raises
    UnsupportedFeature (before running anything) for template features the runner lacks,
    and RunError for bad parameters. ``executor`` runs each script attempt (default:
    :func:`~workflows.runner.forking.local_executor`, one per run). ``configmaps`` (name -> key -> text) stand in for
    the cluster's ConfigMaps behind ``spec.volumes``; one that is named but not given is a
    RunError, as a pod whose volume cannot be mounted never starts.
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
        volumes = materialize_volumes(manifest, configmaps or {}, run_dir / "volumes")
        run = _Run(manifest, params or {}, run_id=rid, run_dir=run_dir, repo_root=root, approve=approve,
                   parallelism=parallelism, env=env, on_event=notify, executor=executor, volumes=volumes)
        verify_checkout(root, run.wf_params)
        run.control.open()
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
        message = "terminated (SIGTERM)" if isinstance(exc, lifecycle.Terminated) else "interrupted"
        run._cancel(message)
        status, tasks = "Error", {}
    finally:
        if view:
            view.stop()
        close = getattr(run.executor, "close", None)
        if close is not None:
            close()  # e.g. the container executor's removals: nothing of the run outlives run.json
    result = RunResult(run_id=rid, run_dir=run_dir, status=status, message=message, started=started,
                       finished=time.time(), nodes=list(run.nodes), tasks=tasks, unstarted=run.unstarted,
                       shared_cpu_seconds=getattr(run.executor, "shared_cpu_seconds", None))
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
    The policy ConfigMap is the trusted policy (config/policy.py): ``config_path``, else the
    trusted ref's. Raises ValueError for an unknown artifact type, ConfigError for a bad
    pipeline config, PolicyError when no trusted policy can be read.
    """
    from config.artifacts import ArtifactType
    from config.policy import trusted_policy_text
    from workflows.templates import POLICY_CONFIGMAP, PipelineSettings, build_template

    atype = ArtifactType(artifact_type)
    root = (repo_root or Path.cwd()).resolve()
    manifest = build_template(atype, PipelineSettings.load(config_path)).to_dict()
    full = {"repo-url": str(root), **params}
    env = {k: v for k, v in os.environ.items() if k != "PROMPTCI_CONFIG"}  # the mounted policy says it
    text, _ = trusted_policy_text(root, config_path)
    result = run_template(manifest, full, repo_root=root, run_id=run_id, approve=approve, progress=progress,
                          env=env, configmaps={POLICY_CONFIGMAP: {"pipeline.yaml": text}})
    record_metrics(manifest, result)
    return result
