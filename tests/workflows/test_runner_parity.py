"""The local runner schedules as Argo's controller does; each test names the Argo source it follows.

Steps are tiny ``sh`` scripts (the runner executes them as a pod would run the script),
so these tests run in seconds. Argo sources: argo-workflows v4.1 (``fetch
github:argoproj/argo-workflows``), workflow/controller/{dag.go,operator.go,workflowpod.go,
exec_control.go}, workflow/executor/executor.go, workflow/util/util.go.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from workflows.runner.dag import TaskNode, assess_dag_phase
from workflows.runner.executors import ProcessExecutor, StepRequest, StepResult
from workflows.runner.records import NodeRecord, RunResult
from workflows.runner.scheduler import run_template

OUT = "/tmp/hera-outputs"


def sh(name: str, source: str, *, outputs: tuple[str, ...] = (), inputs: tuple[str, ...] = (),
       **extra: Any) -> dict[str, Any]:
    """Return a script template running ``source`` in sh; ``$OUT/<name>`` files are its output parameters."""
    tpl: dict[str, Any] = {"name": name, "script": {"image": "alpine:3", "command": ["sh"], "source": source,
                                                   "env": [{"name": "OUT", "value": OUT}]}, **extra}
    if inputs:
        tpl["inputs"] = {"parameters": [{"name": i} for i in inputs]}
    if outputs:
        tpl["outputs"] = {"parameters": [{"name": o, "valueFrom": {"path": f"{OUT}/{o}"}} for o in outputs]}
    return tpl


def workflow(templates: list[dict[str, Any]], tasks: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    """Return a WorkflowTemplate manifest whose entrypoint DAG ``main`` has ``tasks``."""
    dag: dict[str, Any] = {"tasks": tasks}
    if "failFast" in spec:
        dag["failFast"] = spec.pop("failFast")
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "WorkflowTemplate", "metadata": {"name": "parity"},
            "spec": {"entrypoint": "main", "templates": [*templates, {"name": "main", "dag": dag}], **spec}}


OK = sh("ok", "exit 0")
FAIL = sh("fail", "exit 1")
SLOW_OK = sh("slow-ok", "sleep 1; exit 0")


def run(tmp_path: Path, manifest: dict[str, Any], **kw: Any) -> RunResult:
    return run_template(manifest, {}, repo_root=tmp_path, runs_dir=tmp_path / "runs", env=dict(os.environ), **kw)


def node(result: RunResult, name: str) -> NodeRecord:
    return next(n for n in result.nodes if n.name == name)


# --------------------------------------------------------------------------- failure and depends


def test_a_failure_cancels_no_sibling_and_the_phase_comes_from_the_leaves(tmp_path: Path) -> None:
    """dag.go executeDAG starts every ready task whatever failed; assessDAGPhase judges the leaves.

    ``bad`` fails while ``slow`` runs; ``after-slow`` still starts (the old runner skipped it,
    "fail fast"). ``bad`` is a leaf, so the workflow fails.
    """
    result = run(tmp_path, workflow([OK, FAIL, SLOW_OK], [
        {"name": "bad", "template": "fail"},
        {"name": "slow", "template": "slow-ok"},
        {"name": "after-slow", "template": "ok", "depends": "slow"},
    ]))
    assert node(result, "bad").status == "Failed"
    assert node(result, "after-slow").status == "Succeeded"
    assert result.status == "Failed" and "bad" in result.message


def test_depends_failed_and_any_succeeded_run_as_argo_runs_them(tmp_path: Path) -> None:
    """dag.go evaluateDependsLogic: ``X.Failed`` runs after a failure; ``AnySucceeded`` counts a fan-out's
    children and is false for a task that is not a fan-out; assessDAGPhase: only leaves decide.

    The failed task and the partly failed fan-out are not leaves, every leaf succeeded or
    was omitted below a success, so the workflow succeeds (the old runner: "any task failed").
    """
    fan = sh("maybe", '[ "{{inputs.parameters.n}}" != 1 ]', inputs=("n",))
    result = run(tmp_path, workflow([OK, FAIL, fan], [
        {"name": "bad", "template": "fail"},
        {"name": "on-failure", "template": "ok", "depends": "bad.Failed"},
        {"name": "fan", "template": "maybe", "withItems": [0, 1, 2],
         "arguments": {"parameters": [{"name": "n", "value": "{{item}}"}]}},
        {"name": "some-passed", "template": "ok", "depends": "fan.AnySucceeded"},
        {"name": "single", "template": "ok"},
        {"name": "single-any", "template": "ok", "depends": "single.AnySucceeded"},
    ]))
    assert node(result, "on-failure").status == "Succeeded"
    assert [node(result, f"fan({i})").status for i in range(3)] == ["Succeeded", "Failed", "Succeeded"]
    assert result.tasks["fan"] == "Failed"
    assert node(result, "some-passed").status == "Succeeded"
    assert node(result, "single-any").status == "Omitted"
    assert result.status == "Succeeded", result.message


def test_an_omitted_leaf_inherits_its_failed_branch(tmp_path: Path) -> None:
    """dag.go assessDAGPhase: an Omitted leaf takes the phase of the branch above it (Failed)."""
    result = run(tmp_path, workflow([OK, FAIL], [
        {"name": "bad", "template": "fail"},
        {"name": "next", "template": "ok", "depends": "bad"},
    ]))
    assert node(result, "next").status == "Omitted"
    assert result.status == "Failed"


def test_dag_phase_rules_match_assess_dag_phase() -> None:
    """dag.go assessDAGPhase + phase_node.go, case by case (no processes: the rule itself).

    * a running node keeps the DAG Running, whatever failed;
    * with failFast a failed leaf fails the DAG before the other leaves exist; without it the DAG waits;
    * an Omitted leaf reached from a success and from a failure counts as Failed;
    * a Skipped leaf below a success counts as Succeeded.
    """
    deps = {"a": [], "b": [], "c": ["b"]}
    failed_leaf = {"a": TaskNode("Failed"), "b": TaskNode("Succeeded")}  # c not created yet
    assert assess_dag_phase(deps, failed_leaf, fail_fast=True) == "Failed"
    assert assess_dag_phase(deps, failed_leaf, fail_fast=False) == "Running"
    assert assess_dag_phase(deps, {"a": TaskNode("Failed"), "b": TaskNode("Running")}, fail_fast=True) == "Running"
    both = {"x": [], "y": [], "z": ["x", "y"]}
    assert assess_dag_phase(both, {"x": TaskNode("Succeeded"), "y": TaskNode("Failed"), "z": TaskNode("Omitted")},
                            fail_fast=True) == "Failed"
    assert assess_dag_phase({"x": [], "z": ["x"]}, {"x": TaskNode("Succeeded"), "z": TaskNode("Skipped")},
                            fail_fast=True) == "Succeeded"
    fan = {"f": [], "z": ["f"]}
    assert assess_dag_phase(fan, {"f": TaskNode("Failed", ["Succeeded", "Failed"]), "z": TaskNode("Omitted")},
                            fail_fast=True) == "Failed"
    assert assess_dag_phase(deps, {}, fail_fast=True, shutdown=True) == "Failed"


def test_depends_results_are_argos_task_results() -> None:
    """dag.go evaluateDependsLogic TaskResults: no ``Completed``; AnySucceeded/AllFailed only for a fan-out."""
    from workflows.runner.dag import depends_satisfied
    from workflows.runner.expr import ExpressionError

    with pytest.raises(ExpressionError, match="task result 'Completed' for task 'a' is invalid"):
        depends_satisfied("a.Completed", {"a": TaskNode("Succeeded")})
    assert not depends_satisfied("a.AllFailed", {"a": TaskNode("Failed")})
    assert depends_satisfied("a.AllFailed", {"a": TaskNode("Failed", ["Failed", "Failed"])})
    assert not depends_satisfied("a.AllFailed", {"a": TaskNode("Failed", ["Failed", "Error"])})
    assert depends_satisfied("a", {"a": TaskNode("Skipped")}) and not depends_satisfied("a", {"a": TaskNode("Omitted")})


# --------------------------------------------------------------------------- aggregated outputs


def test_fan_out_outputs_aggregate_as_argo_encodes_them(tmp_path: Path) -> None:
    """operator.go processAggregateNodeOutputs / aggregatedJSONValueList / loopNodes.

    Only Succeeded children, in loop-index order (child 0 finishes last); objects and arrays
    parsed and re-encoded by Go's json.Marshal (keys sorted, no spaces, ``<`` escaped,
    numbers as float64); one non-object value makes the whole list raw strings.
    """
    values = ['{"b": 1, "a": "<x>"}', "[1, 2.50]", "{}", '{"failed": true}']
    writer = sh("write", "v='{{inputs.parameters.v}}'; sleep {{inputs.parameters.wait}}; mkdir -p \"$OUT\"; "
                         "printf '%s' \"$v\" > \"$OUT/v\"; [ \"$v\" != '{\"failed\": true}' ]",
                outputs=("v",), inputs=("v", "wait"))
    keep = sh("keep", "mkdir -p \"$OUT\"; printf '%s' '{{inputs.parameters.all}}' > \"$OUT/all\"",
              outputs=("all",), inputs=("all",))
    items = [{"v": v, "wait": "1" if i == 0 else "0"} for i, v in enumerate(values)]
    item_args = {"parameters": [{"name": "v", "value": "{{item.v}}"}, {"name": "wait", "value": "{{item.wait}}"}]}
    mixed = [{"v": v, "wait": "0"} for v in ('{"a": 1}', "7")]
    result = run(tmp_path, workflow([writer, keep], [
        {"name": "fan", "template": "write", "withItems": items,
         "arguments": item_args},
        {"name": "mixed", "template": "write", "withItems": mixed,
         "arguments": item_args},
        {"name": "all", "template": "keep", "depends": "fan.AnySucceeded",
         "arguments": {"parameters": [{"name": "all", "value": "{{tasks.fan.outputs.parameters.v}}"}]}},
        {"name": "raw", "template": "keep", "depends": "mixed",
         "arguments": {"parameters": [{"name": "all", "value": "{{tasks.mixed.outputs.parameters.v}}"}]}},
    ]))
    assert node(result, "fan(3)").status == "Failed"
    assert node(result, "all").outputs["all"] == '[{"a":"\\u003cx\\u003e","b":1},[1,2.5],{}]'
    assert json.loads(node(result, "raw").outputs["all"]) == ['{"a": 1}', "7"]


def test_outputs_result_is_captured_only_when_referenced(tmp_path: Path) -> None:
    """operator.go hasOutputResultRef: stdout becomes outputs.result only when the DAG references it;
    executor.go CaptureScriptResult trims a single trailing newline."""
    talk = sh("talk", "printf 'hello\\n\\n'")
    keep = sh("keep", "mkdir -p \"$OUT\"; printf '%s' '{{inputs.parameters.all}}' > \"$OUT/all\"",
              outputs=("all",), inputs=("all",))
    result = run(tmp_path, workflow([talk, keep], [
        {"name": "quiet", "template": "talk"},
        {"name": "loud", "template": "talk"},
        {"name": "use", "template": "keep", "depends": "loud",
         "arguments": {"parameters": [{"name": "all", "value": "{{tasks.loud.outputs.result}}"}]}},
    ]))
    assert result.ok, result.message
    assert node(result, "quiet").result is None
    assert node(result, "loud").result == "hello\n"
    assert (Path(node(result, "quiet").dir) / "stdout.txt").read_text() == "hello\n\n"


# --------------------------------------------------------------------------- retries


def _retrying(source: str, expression: str, *, limit: int = 2, backoff: str | None = None) -> dict[str, Any]:
    strategy: dict[str, Any] = {"limit": str(limit), "retryPolicy": "Always", "expression": expression}
    if backoff:
        strategy["backoff"] = {"duration": backoff, "factor": "2"}
    return workflow([sh("step", source, retryStrategy=strategy)], [{"name": "step", "template": "step"}])


def test_exit_code_in_a_retry_expression_is_a_string(tmp_path: Path) -> None:
    """operator.go buildRetryStrategyLocalScope: lastRetry.exitCode is a string; expr-lang never
    finds ``"75" == 75``: compared with a number, an exit 75 is not retried; with ``"75"`` it is."""
    as_number = run(tmp_path, _retrying("exit 75", "lastRetry.exitCode == 75"))
    assert node(as_number, "step").attempts == 1
    as_string = run(tmp_path, _retrying("exit 75", 'lastRetry.exitCode == "75"'))
    assert node(as_string, "step").attempts == 3
    assert "No more retries left" in node(as_string, "step").message


def test_a_missing_exit_code_is_minus_one(tmp_path: Path) -> None:
    """operator.go buildRetryStrategyLocalScope: no exit code (the step never started) reads as "-1"."""
    manifest = _retrying("exit 0", 'lastRetry.exitCode == "-1"', limit=1)
    manifest["spec"]["templates"][0]["script"]["command"] = ["/nonexistent/interpreter"]
    result = run(tmp_path, manifest)
    assert node(result, "step").status == "Error" and node(result, "step").attempts == 2


def test_the_backoff_is_waited_before_the_expression_is_checked(tmp_path: Path) -> None:
    """operator.go processNodeRetries: with retries left, the backoff comes before the policy and the
    expression, so a failure the expression will not retry still waits its backoff first."""
    events: list[str] = []
    result = run(tmp_path, _retrying("exit 1", 'lastRetry.exitCode == "75"', backoff="1s"),
                 on_event=lambda n: events.append(n.message) if n.name == "step" else None)
    assert node(result, "step").attempts == 1
    assert any(m.startswith("exit code 1; backoff") and m.endswith("before retrying") for m in events)
    assert node(result, "step").message == "exit code 1; retryStrategy.expression evaluated to false"


# --------------------------------------------------------------------------- deadlines


class RecordingExecutor(ProcessExecutor):
    """A ProcessExecutor that also keeps each request's pod deadline (what the scheduler hands the pod)."""

    def __init__(self) -> None:
        super().__init__()
        self.deadlines: list[float | None] = []

    def run(self, request: StepRequest) -> StepResult:
        self.deadlines.append(request.active_deadline_seconds)
        return super().run(request)


def test_each_pod_gets_its_own_deadline_clamped_to_the_workflows(tmp_path: Path) -> None:
    """workflowpod.go: a pod's activeDeadlineSeconds is the template's, or what is left of the workflow's
    when that is less; it counts from each pod's (attempt's) start, not from the first attempt."""
    manifest = _retrying("exit 75", 'lastRetry.exitCode == "75"', limit=1)
    manifest["spec"]["templates"][0]["activeDeadlineSeconds"] = "30"
    own = RecordingExecutor()
    run(tmp_path, manifest, executor=own)
    assert own.deadlines == [30.0, 30.0]
    manifest["spec"]["activeDeadlineSeconds"] = 600
    manifest["spec"]["templates"][0]["activeDeadlineSeconds"] = "3600"
    clamped = RecordingExecutor()
    run(tmp_path, manifest, executor=clamped)
    assert len(clamped.deadlines) == 2 and all(d is not None and 590 < d <= 600 for d in clamped.deadlines)


# --------------------------------------------------------------------------- suspend, resume, stop


@pytest.fixture
def suspended_run(tmp_path: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Start a run whose DAG suspends at ``approval``; yield (its run dir, a dict filled with the result)."""
    manifest = workflow([OK, {"name": "approval", "suspend": {}}, sh("report", "exit 0")], [
        {"name": "approval", "template": "approval"},
        {"name": "after", "template": "ok", "depends": "approval"},
    ], onExit="report")
    box: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: box.update(result=run(tmp_path, manifest, run_id="r")))
    thread.start()
    run_dir = tmp_path / "runs" / "r"
    for _ in range(300):
        waiting = run_dir / "control" / "suspended.json"
        if waiting.exists() and json.loads(waiting.read_text()) == ["approval"]:
            break
        time.sleep(0.1)
    else:
        pytest.fail("the run never suspended")
    yield run_dir, box
    thread.join(timeout=60)


def test_resume_releases_a_waiting_suspend(suspended_run: tuple[Path, dict[str, Any]]) -> None:
    """util.go ResumeWorkflow: resume marks the suspend nodes active now Succeeded; the DAG goes on."""
    from workflows.runner.control import request_resume

    run_dir, box = suspended_run
    assert request_resume(run_dir) == ["approval"]
    for _ in range(600):
        if "result" in box:
            break
        time.sleep(0.1)
    result = box["result"]
    assert result.ok, result.message
    assert node(result, "approval").message == "resumed"
    assert node(result, "after").status == "Succeeded"


def test_stop_fails_the_suspend_and_still_runs_the_exit_handler(suspended_run: tuple[Path, dict[str, Any]]) -> None:
    """Stop strategy (exec_control.go applyExecutionControl, dag.go assessDAGPhase isShutdown):
    waiting steps fail with Argo's message, nothing new starts, the exit handler runs, the run fails."""
    from workflows.runner.control import request_stop

    run_dir, box = suspended_run
    request_stop(run_dir)
    for _ in range(600):
        if "result" in box:
            break
        time.sleep(0.1)
    result = box["result"]
    assert result.status == "Failed" and result.message == "Stopped with strategy 'Stop'"
    assert node(result, "approval").message == "workflow shutdown with strategy:  Stop"
    assert "after" not in result.tasks
    assert node(result, "report").status == "Succeeded"


# --------------------------------------------------------------------------- when, parameters


def test_conditions_never_equate_a_string_and_a_number() -> None:
    """steps.go shouldExecute (govaluate: bare words are strings, DeepEqual) and util/expr/argoexpr
    EvalBool (expr-lang: unknown names are errors, ``"75" == 75`` is false)."""
    from workflows.runner.expr import ExpressionError, eval_condition, eval_expr

    assert eval_condition("75 == 75") and eval_condition("Succeeded == Succeeded")
    assert not eval_condition("'75' == 75") and eval_condition("3 > 0")
    assert eval_expr('lastRetry.exitCode == "75"', {"lastRetry.exitCode": "75"})
    assert not eval_expr("lastRetry.exitCode == 75", {"lastRetry.exitCode": "75"})
    assert eval_expr('lastRetry.status == "Error" or retries == "0"', {"lastRetry.status": "x", "retries": "0"})
    with pytest.raises(ExpressionError, match="unknown name"):
        eval_expr("lastRetry.exitcode == 75", {"lastRetry.exitCode": "75"})


def test_a_false_when_skips_and_a_skipped_leaf_does_not_fail_the_run(tmp_path: Path) -> None:
    """dag.go executeDAGTask (``when`` false: Skipped, "when '...' evaluated false") and assessDAGPhase
    (a Skipped leaf inherits its branch's Succeeded)."""
    manifest = workflow([OK], [
        {"name": "first", "template": "ok"},
        {"name": "gated", "template": "ok", "depends": "first", "when": "{{workflow.parameters.go}} == true"},
    ], arguments={"parameters": [{"name": "go", "value": "false", "enum": ["true", "false"]}]})
    result = run(tmp_path, manifest)
    assert node(result, "gated").status == "Skipped"
    assert node(result, "gated").message == "when 'false == true' evaluated false"
    assert result.ok
    from workflows.runner.records import RunError

    with pytest.raises(RunError, match="'maybe' is not one of true, false"):
        run_template(manifest, {"go": "maybe"}, repo_root=tmp_path, runs_dir=tmp_path / "runs")


def test_tasks_listed_before_their_dependencies_are_decided_all_the_same(tmp_path: Path) -> None:
    """dag.go executeDAGTask recurses into dependencies first, so the order tasks are written in
    does not matter: ``c`` (listed first) is Omitted below the Omitted ``b``, not left undecided."""
    result = run(tmp_path, workflow([OK, FAIL], [
        {"name": "c", "template": "ok", "depends": "b"},
        {"name": "b", "template": "ok", "depends": "a"},
        {"name": "a", "template": "fail"},
    ]))
    assert [result.tasks[t] for t in ("a", "b", "c")] == ["Failed", "Omitted", "Omitted"]
    assert result.status == "Failed" and result.message == "failed: a"


def test_an_unknown_task_result_in_depends_is_refused_before_anything_runs(tmp_path: Path) -> None:
    """common/ancestry.go ValidateTaskResults: ``X.Bogus`` is invalid; one line, nothing runs."""
    from workflows.runner.records import RunError

    with pytest.raises(RunError, match=r"task 'b': unknown task result '\.Bogus'"):
        run(tmp_path, workflow([OK], [{"name": "a", "template": "ok"},
                                      {"name": "b", "template": "ok", "depends": "a.Bogus"}]))


def test_a_retry_expression_sees_the_nodes_inputs(tmp_path: Path) -> None:
    """operator.go executeTemplate: common.ProcessArgs substitutes the whole template, so ``{{inputs...}}``
    in ``retryStrategy.expression`` is resolved before processNodeRetries evaluates it."""
    step = sh("step", "exit 75", inputs=("code",),
              retryStrategy={"limit": "1", "expression": 'lastRetry.exitCode == "{{inputs.parameters.code}}"'})
    result = run(tmp_path, workflow([step], [{"name": "step", "template": "step",
                                              "arguments": {"parameters": [{"name": "code", "value": "75"}]}}]))
    assert node(result, "step").attempts == 2
