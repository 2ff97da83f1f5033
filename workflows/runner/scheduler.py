"""Run a compiled WorkflowTemplate on this machine: exactly the dict ``submit.py dump`` writes.

There is no second description of the pipeline: the runner reads the template's DAG,
parameters, retry strategies and script steps, and executes each script step the way a
pod does, ``python -m hera.workflows.runner -e module:function ARGS_FILE``, in a
subprocess, reading output parameters from the files the step wrote.

Local mapping of cluster concepts (documented in docs/pipelines.md):
* the ``git`` input artifact is the local checkout (``repo_root``); ``workingDir`` and any
  path under the artifact's path map into it;
* every other absolute container path (outputs directory, output artifacts) maps into the
  task's directory under the run directory;
* ``python`` is this interpreter; ``envFrom`` secrets come from this process's environment;
* image, resources, service accounts, pod GC, TTL and the artifact repository are cluster
  settings with no local meaning: they are listed in ``run.json`` under ``not_applied``.

Any other template feature raises :class:`UnsupportedFeature` naming it before anything
runs: a feature is never silently ignored.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from collections.abc import Set as AbstractSet
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from steps.atomic import atomic_write
from workflows.runner.expr import (
    ExpressionError,
    UnresolvedVariable,
    depends_names,
    eval_condition,
    eval_depends,
    substitute,
)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_RUNS_DIR = Path(".promptci/runs")

# Features the runner understands, per level. Anything else is an UnsupportedFeature.
SPEC_KEYS = {"entrypoint", "arguments", "templates", "parallelism", "activeDeadlineSeconds", "metrics",
             "onExit"}
TEMPLATE_KEYS = {"name", "dag", "script", "suspend", "inputs", "outputs", "metrics", "retryStrategy",
                 "activeDeadlineSeconds"}
SCRIPT_KEYS = {"command", "args", "source", "env", "workingDir"}
TASK_KEYS = {"name", "template", "arguments", "depends", "dependencies", "when", "withParam", "withItems"}
DAG_KEYS = {"tasks", "failFast"}
RETRY_KEYS = {"limit", "retryPolicy", "expression", "backoff"}
PARAM_KEYS = {"name", "value", "default", "description", "enum", "valueFrom"}
OUT_ARTIFACT_KEYS = {"name", "path", "optional", "archive"}
# Cluster-only settings: accepted, recorded as not applied, and without local effect.
NOT_APPLIED_SPEC = {"serviceAccountName", "podGC", "ttlStrategy", "artifactRepositoryRef"}
NOT_APPLIED_TEMPLATE = {"serviceAccountName"}
NOT_APPLIED_SCRIPT = {"image", "imagePullPolicy", "resources", "envFrom"}

TERMINAL = {"Succeeded", "Failed", "Error", "Skipped", "Omitted"}
STAGE_RESULT = {"Succeeded": "succeeded", "Failed": "failed", "Error": "error", "Skipped": "skipped",
                "Omitted": "skipped"}


class UnsupportedFeature(Exception):
    """The template uses something the local runner does not implement (named in the message)."""


class RunError(Exception):
    """The run could not start: bad or missing parameters, unknown entrypoint..."""


@dataclass
class NodeRecord:
    """One executed (or skipped) task, or one branch of a fan-out (``eval(0)``)."""

    name: str
    task: str
    template: str
    status: str = "Pending"
    message: str = ""
    started: float | None = None
    finished: float | None = None
    attempts: int = 0
    exit_code: int | None = None
    outputs: dict[str, str] = field(default_factory=dict)
    result: str | None = None
    dir: str = ""

    @property
    def duration(self) -> float:
        """Return seconds between start and finish (0 for a node that never ran)."""
        if self.started is None or self.finished is None:
            return 0.0
        return self.finished - self.started


@dataclass
class RunResult:
    """The outcome of one local run; ``ok`` only when the workflow succeeded."""

    run_id: str
    run_dir: Path
    status: str
    message: str
    started: float
    finished: float
    nodes: list[NodeRecord]
    tasks: dict[str, str]

    @property
    def ok(self) -> bool:
        return self.status == "Succeeded"

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    @property
    def duration_seconds(self) -> float:
        return self.finished - self.started

    def stage_results(self) -> dict[str, str]:
        """Return ``{task: succeeded|failed|skipped|error}`` for metrics and summaries."""
        return {t: STAGE_RESULT.get(s, "error") for t, s in self.tasks.items()}


# --------------------------------------------------------------------------- checks


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


# --------------------------------------------------------------------------- helpers

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
                 on_event: Callable[[NodeRecord], None] | None, env: Mapping[str, str] | None):
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
        self.procs: set[subprocess.Popen[bytes]] = set()
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
        with ThreadPoolExecutor(max_workers=self.parallelism) as pool:
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
        with self.lock:
            for proc in list(self.procs):
                proc.kill()

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
        script = tpl["script"]
        scope = dict(self.scope)
        scope.update({f"inputs.parameters.{k}": v for k, v in inputs.items()})
        scope["inputs.parameters"] = json.dumps([{"name": k, "value": v} for k, v in inputs.items()])
        mapper = _PathMapper(tpl, self.repo_root, attempt_dir / "fs")
        source_file = attempt_dir / "script"
        atomic_write(source_file, substitute(script.get("source", ""), scope))
        command = [substitute(c, scope) for c in script.get("command", ["python"])]
        if command and command[0] in {"python", "python3"}:
            command[0] = sys.executable  # the same environment the project is installed in
        argv = command + [substitute(a, scope) for a in script.get("args", [])] + [str(source_file)]
        env = dict(self.base_env)
        for e in script.get("env", []):
            value = substitute(str(e.get("value", "")), scope)
            env[e["name"]] = mapper.map(value) if value.startswith("/") else value
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH")) if p)
        cwd = mapper.map(script["workingDir"]) if script.get("workingDir") else str(self.repo_root)
        timeout = parse_duration(tpl.get("activeDeadlineSeconds")) or None
        attempt_dir.mkdir(parents=True, exist_ok=True)
        with open(attempt_dir / "stdout.txt", "wb") as out, open(attempt_dir / "stderr.txt", "wb") as err:
            try:
                proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=err)
            except OSError as exc:
                node.status, node.exit_code, node.message = "Error", None, f"cannot start step: {exc}"
                return
            with self.lock:
                self.procs.add(proc)
            try:
                code = proc.wait(timeout=timeout)
                deadline_hit = False
            except subprocess.TimeoutExpired:
                proc.kill()
                code, deadline_hit = proc.wait(), True
            finally:
                with self.lock:
                    self.procs.discard(proc)
        node.exit_code = code
        node.result = (attempt_dir / "stdout.txt").read_text(errors="replace").rstrip("\n")
        if deadline_hit:
            node.status, node.message = "Failed", f"activeDeadlineSeconds ({timeout:g}s) exceeded"
        elif self.cancelled.is_set():
            node.status, node.message = "Failed", "cancelled: workflow deadline exceeded"
        elif code != 0:
            node.status, node.message = "Failed", f"exit code {code}"
        else:
            node.status, node.message = "Succeeded", ""
        self._collect_outputs(node, tpl, mapper)

    def _collect_outputs(self, node: NodeRecord, tpl: Mapping[str, Any], mapper: _PathMapper) -> None:
        outputs = tpl.get("outputs") or {}
        node.outputs = {}
        missing = []
        for p in outputs.get("parameters", []):
            path = Path(mapper.map(p["valueFrom"]["path"]))
            if path.is_file():
                node.outputs[p["name"]] = path.read_text()
            elif "default" in p["valueFrom"] or "default" in p:
                node.outputs[p["name"]] = str(p["valueFrom"].get("default", p.get("default")))
            else:
                missing.append(f"output parameter '{p['name']}'")
        for a in outputs.get("artifacts", []):
            if not Path(mapper.map(a["path"])).exists() and not a.get("optional"):
                missing.append(f"output artifact '{a['name']}'")
        if missing and node.status == "Succeeded":
            node.status, node.message = "Error", "step did not produce " + ", ".join(missing)

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


class _PathMapper:
    """Map container paths to local ones: git input artifacts to the checkout, the rest per task."""

    def __init__(self, tpl: Mapping[str, Any], repo_root: Path, fs_root: Path):
        self.mounts = [(PurePosixPath(a["path"]), repo_root)
                       for a in (tpl.get("inputs") or {}).get("artifacts", []) if "git" in a]
        self.fs_root = fs_root

    def map(self, container_path: str) -> str:
        p = PurePosixPath(container_path)
        for mount, local in self.mounts:
            if p == mount or mount in p.parents:
                return str(local / p.relative_to(mount))
        return str(self.fs_root / p.relative_to("/"))


def verify_checkout(root: Path, params: Mapping[str, str]) -> None:
    """Raise RunError unless the checkout is exactly ``git-revision`` (when one is given).

    In Argo the git artifact checks out that revision; locally the runner uses the
    checkout as it is. Evaluating one thing and recording another revision in the GitOps
    commit would be a lie, so a run asked for a revision the checkout is not at
    (another commit, or uncommitted changes) stops before anything runs.
    """
    rev = (params.get("git-revision") or "").strip()
    if not rev:
        return

    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False)

    want = git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    head = git("rev-parse", "HEAD")
    if want.returncode != 0:
        raise RunError(f"git-revision '{rev}' is not a commit in {root}; fetch it, or run without it")
    if head.returncode != 0 or head.stdout.strip() != want.stdout.strip():
        raise RunError(f"git-revision '{rev}' is not the checked-out HEAD of {root} "
                       f"({head.stdout.strip()[:12] or 'none'}); check it out first: the local runner "
                       "evaluates the checkout")
    dirty = git("status", "--porcelain", "--", ".", ":(exclude).promptci")
    if dirty.stdout.strip():
        first = dirty.stdout.strip().splitlines()[0]
        raise RunError(f"the checkout has changes not in git-revision '{rev}' ({first.strip()}, ...); "
                       "commit or stash them, or run without git-revision")


# --------------------------------------------------------------------------- public API


def run_template(manifest: Mapping[str, Any], params: Mapping[str, str] | None = None, *,
                 repo_root: Path | None = None, run_id: str | None = None, runs_dir: Path | None = None,
                 approve: bool = False, parallelism: int | None = None, progress: bool = False,
                 env: Mapping[str, str] | None = None,
                 on_event: Callable[[NodeRecord], None] | None = None) -> RunResult:
    """Execute a compiled WorkflowTemplate dict locally and return the RunResult.

    Every run gets one run id and one directory (``runs_dir/run_id``) holding ``run.json``
    and, per task, ``inputs.json``, ``stdout.txt``/``stderr.txt`` and the outputs. Raises
    UnsupportedFeature (before running anything) for template features the runner lacks,
    and RunError for bad parameters.
    """
    not_applied = check_supported(manifest)
    rid = run_id or new_run_id()
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}", rid):
        raise RunError(f"run id '{rid}' must be letters, digits, '.', '_' or '-'")
    root = (repo_root or Path.cwd()).resolve()
    run_dir = ((runs_dir or root / DEFAULT_RUNS_DIR) / rid).resolve()
    if run_dir.exists():
        raise RunError(f"run directory {run_dir} already exists (run ids are unique)")
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
                   parallelism=parallelism, env=env, on_event=notify)
        verify_checkout(root, run.wf_params)
    except RunError:
        shutil.rmtree(run_dir, ignore_errors=True)  # nothing ran: leave no run behind
        raise
    started = time.time()
    if view:
        view.start()
    try:
        status, message, tasks = run.run()
    except KeyboardInterrupt:
        run._cancel()
        status, message, tasks = "Error", "interrupted", {}
    finally:
        if view:
            view.stop()
    result = RunResult(run_id=rid, run_dir=run_dir, status=status, message=message, started=started,
                       finished=time.time(), nodes=list(run.nodes), tasks=tasks)
    summary = {"run_id": rid, "template": manifest.get("metadata", {}).get("name"), "status": status,
               "message": message, "duration_seconds": round(result.duration_seconds, 3),
               "parameters": run.wf_params, "tasks": tasks, "nodes": [asdict(n) for n in result.nodes],
               "not_applied": not_applied}
    atomic_write(run_dir / "run.json", json.dumps(summary, indent=2))
    return result


def record_metrics(manifest: Mapping[str, Any], result: RunResult) -> str | None:
    """Record the run's metrics through ``steps.metrics``; return a note when that is unavailable."""
    try:
        from steps.metrics import record_pipeline_run  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return "metrics not recorded: steps.metrics is not available"
    labels = manifest.get("metadata", {}).get("labels", {})
    record_pipeline_run(artifact_type=labels.get("promptci.dev/artifact-type", "unknown"),
                        result="succeeded" if result.ok else "failed",
                        duration_seconds=result.duration_seconds, stage_results=result.stage_results(),
                        run_dir=result.run_dir, pushgateway_url=os.environ.get("PUSHGATEWAY_URL"))
    return None


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
