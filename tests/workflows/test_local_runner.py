"""The local runner executes compiled templates: concurrency, fan-out/fan-in, fail-fast, retries."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hera.workflows import DAG, Container, Suspend, WorkflowTemplate

from tests.workflows.pipeline_fixtures import configmap_template, flaky_template, pipeline_template
from workflows.runner.scheduler import NodeRecord, RunError, RunResult, UnsupportedFeature, run_template


def _run(tmp_path: Path, manifest: dict[str, Any], params: dict[str, str] | None = None,
         env: dict[str, str] | None = None, **kw: Any) -> RunResult:
    import os

    full_env = {**os.environ, **(env or {})}
    return run_template(manifest, params or {}, repo_root=tmp_path, runs_dir=tmp_path / "runs", env=full_env,
                        **kw)


def _node(result: RunResult, name: str) -> NodeRecord:
    return next(n for n in result.nodes if n.name == name)


def _overlap(a: NodeRecord, b: NodeRecord) -> bool:
    assert a.started and a.finished and b.started and b.finished
    return a.started < b.finished and b.started < a.finished


def test_parallel_stages_and_branches_overlap_and_fan_in_gets_every_result(tmp_path: Path) -> None:
    out = tmp_path / "collected.json"
    result = _run(tmp_path, pipeline_template(seconds=0.5, branch_seconds=0.5, branches=3, out=str(out)),
                  run_id="r-1", parallelism=3)  # not the default (the cores): overlap even on one core
    assert result.ok, result.message
    assert _overlap(_node(result, "lint"), _node(result, "validate"))
    branches = [_node(result, f"eval({i})") for i in range(3)]
    assert _overlap(branches[0], branches[1])
    assert all(b.status == "Succeeded" for b in branches)
    collected = json.loads(out.read_text())
    assert [r["n"] for r in collected] == [0, 1, 2]
    # Text inside a parameter is data: "{{hi}}" reaches the last step unexpanded.
    assert collected[0]["text"] == "say {{hi}}"
    # One run id, one directory: summary, and per task its inputs, log and outputs.
    assert result.run_dir == (tmp_path / "runs" / "r-1").resolve()
    summary = json.loads((result.run_dir / "run.json").read_text())
    assert summary["run_id"] == "r-1" and summary["status"] == "Succeeded"
    lint_dir = result.run_dir / "tasks" / "lint"
    assert (lint_dir / "stdout.txt").read_text().strip() == "lint"
    assert json.loads((lint_dir / "inputs.json").read_text()) == {"label": "lint", "seconds": "0.5"}
    assert json.loads(_node(result, "plan").outputs["items"])[0]["n"] == 0
    with pytest.raises(RunError, match="already exists"):
        _run(tmp_path, pipeline_template(), run_id="r-1")


def test_failing_branch_skips_promote_and_fails_the_run(tmp_path: Path) -> None:
    out = tmp_path / "collected.json"
    result = _run(tmp_path, pipeline_template(branches=2, out=str(out)), env={"FIXTURE_FAIL_BRANCH": "1"})
    assert not result.ok and result.exit_code != 0
    assert _node(result, "eval(1)").status == "Failed"
    assert result.tasks["eval"] == "Failed"
    assert result.tasks["promote"] in {"Omitted", "Skipped"}
    assert _node(result, "promote").started is None
    assert not out.exists()
    assert result.stage_results()["promote"] == "skipped"


def test_failing_lint_stops_everything_downstream(tmp_path: Path) -> None:
    result = _run(tmp_path, pipeline_template(), env={"FIXTURE_FAIL": "lint"})
    assert not result.ok
    assert result.tasks["lint"] == "Failed"
    assert {result.tasks[t] for t in ("plan", "eval", "promote")} <= {"Omitted", "Skipped"}


def test_parallelism_one_runs_steps_one_at_a_time_and_empty_fan_out_skips(tmp_path: Path) -> None:
    result = _run(tmp_path, pipeline_template(seconds=0.2, branches=0), parallelism=1)
    assert not _overlap(_node(result, "lint"), _node(result, "validate"))
    assert result.tasks["eval"] == "Skipped"
    # With no branch there is no aggregate to fan in: the fan-in step errors rather than run blind
    # (the real templates guard promote with `when: count > 0`).
    assert result.tasks["promote"] == "Error" and "unresolved variable" in _node(result, "promote").message


def test_transient_exit_is_retried_quality_failure_is_not(tmp_path: Path) -> None:
    counter = tmp_path / "count"
    ok = _run(tmp_path, flaky_template(str(counter), failures=2, code=75, retries=3))
    assert ok.ok and _node(ok, "flaky").attempts == 3
    counter2 = tmp_path / "count2"
    bad = _run(tmp_path, flaky_template(str(counter2), failures=2, code=1, retries=3))
    assert not bad.ok and _node(bad, "flaky").attempts == 1 and counter2.read_text() == "1"


def test_unknown_and_missing_parameters_are_refused(tmp_path: Path) -> None:
    with pytest.raises(RunError, match="unknown parameter"):
        _run(tmp_path, pipeline_template(), {"nope": "1"})
    manifest = pipeline_template()
    del manifest["spec"]["arguments"]["parameters"][0]["value"]
    with pytest.raises(RunError, match="'seconds' is required"):
        _run(tmp_path, manifest)


def test_unsupported_feature_is_named_not_ignored(tmp_path: Path) -> None:
    with WorkflowTemplate(name="c", entrypoint="main") as wt:
        c = Container(name="box", image="alpine", command=["true"])
        with DAG(name="main"):
            c(name="box")
    with pytest.raises(UnsupportedFeature, match="'container'"):
        _run(tmp_path, wt.to_dict())
    manifest = pipeline_template()
    manifest["spec"]["templates"][0]["script"]["volumeMounts"] = [{"name": "x", "mountPath": "/x"}]
    with pytest.raises(UnsupportedFeature, match="volumeMount 'x' names no spec.volumes entry"):
        _run(tmp_path, manifest)
    manifest["spec"]["volumes"] = [{"name": "x", "emptyDir": {}}]
    with pytest.raises(UnsupportedFeature, match=r"spec.volumes\[x\]: 'emptyDir' is not supported"):
        _run(tmp_path, manifest)


def test_a_configmap_volume_is_mounted_from_the_data_given_and_required(tmp_path: Path) -> None:
    out = tmp_path / "seen.yaml"
    manifest = configmap_template(str(out))
    with pytest.raises(RunError, match="ConfigMap 'policy' .* is not available to the local run"):
        _run(tmp_path, manifest)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())  # nothing ran

    result = _run(tmp_path, manifest, configmaps={"policy": {"pipeline.yaml": "defaults: {}\n"}})

    assert result.ok, [n.message for n in result.nodes]
    assert out.read_text() == "defaults: {}\n"


def _approval_template(deadline: int | None = None) -> dict[str, Any]:
    with WorkflowTemplate(name="a", entrypoint="main", active_deadline_seconds=deadline) as wt:
        s = Suspend(name="approval")
        with DAG(name="main"):
            s(name="approval")
    return wt.to_dict()


def test_approval_suspend_waits_until_the_workflow_deadline_unless_approved(tmp_path: Path) -> None:
    """A suspend neither passes nor fails at once: it waits (here until the workflow deadline).

    Argo: operator.go failSuspendedAndPendingNodesAfterDeadlineOrShutdown and exec_control.go
    ("Step exceeded its deadline"); resuming is tested in test_runner_parity.py.
    """
    refused = _run(tmp_path, _approval_template(deadline=1))
    assert not refused.ok and _node(refused, "approval").status == "Failed"
    assert _node(refused, "approval").message == "Step exceeded its deadline"
    assert "deadline" in refused.message
    approved = _run(tmp_path, _approval_template(), approve=True)
    assert approved.ok


def test_step_deadline_fails_the_step(tmp_path: Path) -> None:
    manifest = pipeline_template(seconds=5)
    for tpl in manifest["spec"]["templates"]:
        if tpl["name"] == "work":
            tpl["activeDeadlineSeconds"] = "1"
    result = _run(tmp_path, manifest)
    assert not result.ok
    assert "activeDeadlineSeconds" in _node(result, "lint").message


@pytest.mark.parametrize("fail, status", [("", "Succeeded"), ("eval", "Failed"), ("lint", "Failed")])
def test_exit_handler_runs_whatever_happened_and_sees_the_status(tmp_path: Path, fail: str, status: str) -> None:
    from tests.workflows.pipeline_fixtures import exit_handler_template

    out = tmp_path / "status.txt"
    result = _run(tmp_path, exit_handler_template(str(out)), env={"FIXTURE_FAIL": fail})
    assert result.ok is (status == "Succeeded")
    assert _node(result, "report").status == "Succeeded"  # named after its template, as its metrics are
    assert out.read_text() == status


def test_a_run_for_a_revision_must_find_the_checkout_at_it(tmp_path: Path) -> None:
    import subprocess

    from workflows.runner.scheduler import verify_checkout

    def git(*args: str) -> str:
        return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@e", *args], cwd=tmp_path,
                              check=True, capture_output=True, text=True).stdout.strip()

    git("init", "-q", "-b", "main")
    (tmp_path / "p.yaml").write_text("a: 1\n")
    git("add", "."), git("commit", "-qm", "one")
    first = git("rev-parse", "HEAD")
    (tmp_path / "p.yaml").write_text("a: 2\n")
    git("commit", "-qam", "two")

    verify_checkout(tmp_path, {"git-revision": ""})  # no revision: the working tree, as it is
    verify_checkout(tmp_path, {"git-revision": "HEAD"})
    with pytest.raises(RunError, match="is not the checked-out HEAD"):
        verify_checkout(tmp_path, {"git-revision": first})
    with pytest.raises(RunError, match="is not a commit"):
        verify_checkout(tmp_path, {"git-revision": "0" * 40})
    (tmp_path / ".promptci").mkdir()
    (tmp_path / ".promptci" / "state").write_text("runs and stores do not count")
    verify_checkout(tmp_path, {"git-revision": "HEAD"})
    (tmp_path / "p.yaml").write_text("a: 3\n")
    with pytest.raises(RunError, match="changes not in git-revision"):
        verify_checkout(tmp_path, {"git-revision": "HEAD"})
    # Through the runner: refused before anything runs, and no run directory is left behind.
    from hera.workflows import Parameter

    from tests.workflows.pipeline_fixtures import _s, work

    with WorkflowTemplate(name="fixture-rev", entrypoint="main",
                          arguments=[Parameter(name="git-revision", value="HEAD")]) as wt:
        w = _s(work, "work")
        with DAG(name="main"):
            w(name="lint", arguments={"label": "lint", "seconds": "0"})
    with pytest.raises(RunError, match="changes not in git-revision"):
        _run(tmp_path, wt.to_dict(), run_id="r-rev")
    assert not (tmp_path / "runs" / "r-rev").exists()
