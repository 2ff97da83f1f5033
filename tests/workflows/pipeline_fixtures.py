"""Small runner-script steps and a test WorkflowTemplate shaped like the real pipeline.

The local runner is generic over the compiled dict, so these exercise it without the
real lint/eval/promote steps: each step sleeps, fails or fans out on request.
"""

# No ``from __future__ import annotations``: Hera reads the real annotation objects.
import json
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any

from hera.workflows import DAG, Parameter, RetryStrategy, Script, WorkflowTemplate, script
from hera.workflows.script import RunnerScriptConstructor


@script(constructor="runner")
def work(label: str, seconds: str) -> None:
    """Sleep ``seconds`` then print ``label``; fail when label is in $FIXTURE_FAIL."""
    time.sleep(float(seconds))
    print(label)
    if label in os.environ.get("FIXTURE_FAIL", "").split(","):
        sys.exit(1)


@script(constructor="runner")
def fan(count: str, items: Annotated[Path, Parameter(name="items", output=True)]) -> None:
    """Write a JSON list of ``count`` items (objects, like plan's EvalItems)."""
    items.write_text(json.dumps([{"n": i, "text": "say {{hi}}"} for i in range(int(count))]))


@script(constructor="runner")
def branch(item: str, seconds: str, result: Annotated[Path, Parameter(name="result", output=True)]) -> None:
    """One fan-out branch: sleep, write a result, exit 1 when item n is $FIXTURE_FAIL_BRANCH."""
    data = json.loads(item)
    time.sleep(float(seconds))
    failed = str(data["n"]) == os.environ.get("FIXTURE_FAIL_BRANCH")
    result.write_text(json.dumps({"n": data["n"], "status": "failed" if failed else "passed",
                                  "text": data["text"]}))
    if failed:
        sys.exit(1)


@script(constructor="runner")
def collect(results: str, out: str) -> None:
    """Fan-in: write the aggregated results to ``out`` (proves what reached the last step)."""
    Path(out).write_text(results)


@script(constructor="runner")
def show_policy(out: str) -> None:
    """Copy the file ``$POLICY`` names (a mounted ConfigMap key) to ``out``."""
    Path(out).write_text(Path(os.environ["POLICY"]).read_text())


@script(constructor="runner")
def flaky(counter: str, failures: str, code: str) -> None:
    """Exit ``code`` for the first ``failures`` attempts (counted in file ``counter``), then pass."""
    path = Path(counter)
    n = int(path.read_text()) if path.exists() else 0
    path.write_text(str(n + 1))
    if n < int(failures):
        sys.exit(int(code))


def _s(fn: Any, name: str, retries: int = 0, deadline: str | None = None) -> Script:
    return Script(name=name, source=fn.wrapped_function, image="python:3.11",
                  constructor=RunnerScriptConstructor(outputs_directory="/tmp/hera-outputs"),
                  command=["python"], active_deadline_seconds=deadline,
                  retry_strategy=RetryStrategy(limit=str(retries), retry_policy="Always",
                                               expression='lastRetry.exitCode == "75"') if retries else None)


def pipeline_template(*, seconds: float = 0.0, branch_seconds: float = 0.0, branches: int = 3,
                      out: str = "/dev/null", parallelism: int | None = None) -> dict[str, Any]:
    """Return a compiled template: a ∥ b → fan → branch(withParam) → collect."""
    with WorkflowTemplate(name="fixture-pipeline", entrypoint="main", parallelism=parallelism,
                          arguments=[Parameter(name="seconds", value=str(seconds)),
                                     Parameter(name="branches", value=str(branches)),
                                     Parameter(name="out", value=out)]) as wt:
        w, f, b, c = _s(work, "work"), _s(fan, "fan"), _s(branch, "branch"), _s(collect, "collect")
        with DAG(name="main"):
            w(name="lint", arguments={"label": "lint", "seconds": "{{workflow.parameters.seconds}}"})
            w(name="validate", arguments={"label": "validate", "seconds": "{{workflow.parameters.seconds}}"})
            f(name="plan", depends="lint && validate",
              arguments={"count": "{{workflow.parameters.branches}}"})
            b(name="eval", depends="lint && validate && plan", with_param="{{tasks.plan.outputs.parameters.items}}",
              arguments={"item": "{{item}}", "seconds": str(branch_seconds)})
            c(name="promote", depends="eval", arguments={
                "results": "{{tasks.eval.outputs.parameters.result}}", "out": "{{workflow.parameters.out}}"})
    return wt.to_dict()


def flaky_template(counter: str, failures: int, code: int, retries: int) -> dict[str, Any]:
    """Return a one-task template whose step fails ``failures`` times with exit ``code``."""
    with WorkflowTemplate(name="fixture-flaky", entrypoint="main") as wt:
        fl = _s(flaky, "flaky", retries=retries)
        with DAG(name="main"):
            fl(name="flaky", arguments={"counter": counter, "failures": str(failures), "code": str(code)})
    return wt.to_dict()


@script(constructor="runner")
def record_status(out: str) -> None:
    """Exit handler: write the workflow status the runner put in $WF_STATUS to ``out``."""
    Path(out).write_text(os.environ["WF_STATUS"])


def exit_handler_template(out: str) -> dict[str, Any]:
    """Return a template: lint → eval (fails on request), with an exit handler recording the status."""
    from hera.workflows import Env

    with WorkflowTemplate(name="fixture-exit", entrypoint="main", on_exit="report") as wt:
        w = _s(work, "work")
        record_status_source = record_status.wrapped_function  # type: ignore[attr-defined]  # hera's decorated function
        Script(name="report", source=record_status_source, image="python:3.11",
               constructor=RunnerScriptConstructor(outputs_directory="/tmp/hera-outputs"), command=["python"],
               env=[Env(name="WF_STATUS", value="{{workflow.status}}")],
               inputs=[Parameter(name="out", value=out)])
        with DAG(name="main"):
            w(name="lint", arguments={"label": "lint", "seconds": "0"})
            w(name="eval", depends="lint", arguments={"label": "eval", "seconds": "0"})
    return wt.to_dict()


def configmap_template(out: str) -> dict[str, Any]:
    """Return a one-step template that mounts ConfigMap ``policy`` at /etc/promptci and copies its key to ``out``."""
    from hera.workflows import Env
    from hera.workflows.models import ConfigMapVolumeSource, Volume, VolumeMount

    with WorkflowTemplate(name="cm", entrypoint="main", arguments=[Parameter(name="out", value=out)],
                          volumes=[Volume(name="cfg", config_map=ConfigMapVolumeSource(name="policy"))]) as wt:
        show_policy_source = show_policy.wrapped_function  # type: ignore[attr-defined]  # hera's decorated function
        s = Script(name="show", source=show_policy_source, image="python:3.11",
                   constructor=RunnerScriptConstructor(outputs_directory="/tmp/hera-outputs"), command=["python"],
                   env=[Env(name="POLICY", value="/etc/promptci/pipeline.yaml")],
                   volume_mounts=[VolumeMount(name="cfg", mount_path="/etc/promptci", read_only=True)])
        with DAG(name="main"):
            s(name="show", arguments={"out": "{{workflow.parameters.out}}"})
    return wt.to_dict()
