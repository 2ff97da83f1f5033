"""Faults outside promote: the provider's network during eval, and the store during the summary.

Rows of the failure table in docs/pipelines.md; each adds a line to the suite's figures.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import yaml
from hera.workflows import DAG, Env, Script, WorkflowTemplate
from hera.workflows.script import RunnerScriptConstructor

from steps.contracts import content_hash
from steps.eval import run_branch
from steps.stores.store import LocalStore
from tests.faults.conftest import FaultFigures
from tests.steps.evalkit import make_repo
from tests.workflows.pipeline_fixtures import work
from workflows import stages
from workflows.runner.scheduler import run_template

pytestmark = pytest.mark.slow


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_provider_unreachable_is_a_retryable_error_not_a_quality_failure(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fault_figures: FaultFigures) -> None:
    """Live eval against a provider that refuses connections: the branch is an error, retryable (the
    stage exits 75 and Argo retries it); nothing passes and nothing is promoted."""
    repo = tmp_path / "repo"
    item = make_repo(repo)
    prompt = repo / "prompts" / "greeter.yaml"
    doc = yaml.safe_load(prompt.read_text())
    doc["model"] = "qwen2.5-7b-instruct"  # openai-compatible, base URL from $VLLM_BASE_URL
    prompt.write_text(yaml.safe_dump(doc, sort_keys=False))
    item = item.model_copy(update={"content_hash": content_hash(prompt.read_bytes())})
    monkeypatch.setenv("VLLM_BASE_URL", f"http://127.0.0.1:{_closed_port()}/v1")
    monkeypatch.setenv("OPENAI_COMPATIBLE_API_KEY", "sk-test-not-a-real-key")
    monkeypatch.setenv("PROMPTCI_PROVIDER", "live")
    monkeypatch.setenv("PROMPTFOO_REQUEST_BACKOFF_MS", "1")  # promptfoo's own retries, shortened
    for var in ("PROMPTCI_RECORD", "HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"):
        monkeypatch.delenv(var, raising=False)
    from tests.steps.evalkit import config

    res = run_branch(item, repo_root=repo, run_id="net", target_env=None, config=config(),
                     store=LocalStore(tmp_path / "store"), work_dir=tmp_path / "work", no_cache=True)

    ok = res.status == "error" and res.retryable
    fault_figures.record("provider unreachable during eval", "infra", (75 if ok else res.status,), ok, ok)
    assert res.status == "error", res
    assert res.retryable, res.reasons


def test_summary_without_its_store_never_turns_a_green_run_red(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fault_figures: FaultFigures) -> None:
    """The exit handler (the real summary stage) cannot reach the store: it reports `summary:
    unavailable` as its own status and exits 0, so the run (whose promotion committed) stays green."""
    with WorkflowTemplate(name="green", entrypoint="main", on_exit="summary") as wt:
        step = Script(name="work", source=work.wrapped_function, image="python:3.11", command=["python"],
                      constructor=RunnerScriptConstructor(outputs_directory="/tmp/hera-outputs"))
        Script(name="summary", source=stages.summary.wrapped_function, image="python:3.11", command=["python"],
               constructor=RunnerScriptConstructor(outputs_directory="/tmp/hera-outputs"),
               env=[Env(name=stages.WORKFLOW_STATUS_ENV, value="{{workflow.status}}")])
        with DAG(name="main"):
            step(name="promote", arguments={"label": "promoted", "seconds": "0"})
    trusted = tmp_path / "trusted.yaml"
    trusted.write_text(yaml.safe_dump({"store": {"kind": "s3", "bucket": "promptci",
                                                 "endpoint_url": f"http://127.0.0.1:{_closed_port()}"}}))
    env = {**os.environ, "PROMPTCI_CONFIG": str(trusted), "PROMPTCI_S3_ATTEMPTS": "1",
           "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y", "AWS_DEFAULT_REGION": "us-east-1"}

    result = run_template(wt.to_dict(), {}, repo_root=tmp_path, runs_dir=tmp_path / "runs", env=env)

    summary = next(n for n in result.nodes if n.name == "summary")
    out = (Path(summary.dir) / "stdout.txt").read_text() if summary.dir else ""
    ok = result.status == "Succeeded" and summary.status == "Succeeded" and "summary: unavailable" in out
    fault_figures.record("store down during the summary exit handler", "infra", (summary.exit_code,), ok, ok)
    assert result.status == "Succeeded", [(n.name, n.status, n.message) for n in result.nodes]
    assert "summary: unavailable" in out and "Could not connect" in out


def test_store_unreachable_during_eval_is_retryable(tmp_path: Path, s3_endpoint: str,
                                                    fault_figures: FaultFigures) -> None:
    """The store drops every connection (S3 behind the fault proxy): the branch is a retryable error
    (exit 75), it writes no record, so promote can never take it for a result."""
    from steps.stores.s3store import S3Store
    from tests.faults.proxy import FaultProxy
    from tests.steps.evalkit import NAMES, config, record

    proxy = FaultProxy(s3_endpoint)
    try:
        repo = tmp_path / "repo"
        item = make_repo(repo)
        for n in NAMES:
            record(repo, n, f"Hello {n}, nice to meet you!")
        proxy.go_down()
        store = S3Store("promptci", "evalfault", endpoint_url=proxy.url, region="us-east-1", attempts=2)
        res = run_branch(item, repo_root=repo, run_id="down", target_env=None, config=config(), store=store,
                         work_dir=tmp_path / "work")
        proxy.mode = "up"
        nothing = store.list_keys("runs/down/")
    finally:
        proxy.close()
    ok = res.status == "error" and res.retryable and nothing == []
    fault_figures.record("store unreachable during eval", "infra", (75 if ok else res.status,), ok, ok)
    assert res.status == "error" and res.retryable, res.reasons
    assert nothing == []  # no record, no half-written result


def test_argo_api_unreachable_exits_75(tmp_path: Path, fault_figures: FaultFigures) -> None:
    """`submit` and `register` against an Argo server that refuses connections exit 75 (retry), not 1."""
    from click.testing import CliRunner

    from workflows.submit import cli

    url = f"http://127.0.0.1:{_closed_port()}"
    env = {"ARGO_SERVER": url, "ARGO_TOKEN": "t", "KUBE_API_SERVER": url, "KUBE_TOKEN": "t"}
    codes = (CliRunner().invoke(cli, ["submit", "prompt", "-p", "repo-url=x"], env=env).exit_code,
             CliRunner().invoke(cli, ["register"], env=env).exit_code)
    ok = codes == (75, 75)
    fault_figures.record("Argo API unreachable (submit, register)", "infra", codes, ok, ok)
    assert codes == (75, 75)
