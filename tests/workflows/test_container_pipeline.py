"""The whole pipeline, every node in its own container, against what a cluster shares and nothing else.

Every artifact type runs with ``--executor container``: each step is a container from the step image
with a fresh clone of the source, its Secrets from a secrets directory, and no disk shared with any
other step. The shared services are real and on loopback: a moto S3 server (the store: plans,
branch results, cache, baselines), a GitOps remote over smart HTTP with credentials, and a
Pushgateway. The same pipeline with the process executor must reach the same verdicts, promote
the same content and report the same metrics series.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import boto3
import pytest
from click.testing import CliRunner

from config.profiles import load_profile, render_config
from steps.gitops.configmaps import parse_configmap
from tests.gitserver import git_http_server, init_bare
from tests.steps.test_metrics import pushgateway, samples  # noqa: F401 - the fixture is used by name
from tests.workflows.containers import REPO, containers_of_run, git_repo
from workflows.submit import TYPES, cli

USER, TOKEN = "promptci-bot", "gitops-token-for-tests"
SIGNING_KEY = "0123456789abcdef" * 4
SAMPLES = ("prompts", "model-configs", "rag-configs", "guardrails", "evals", "recordings")


def source_repo(path: Path, s3_url: str, prefix: str, gitops_url: str) -> Path:
    """Return a git checkout of the samples whose committed config is the cluster profile pointed here."""
    for name in SAMPLES:
        shutil.copytree(REPO / name, path / name)
    config = load_profile("cluster")
    config = config.model_copy(update={
        "store": config.store.model_copy(update={"endpoint_url": s3_url, "prefix": prefix}),
        "gitops": config.gitops.model_copy(update={"repo_url": gitops_url})})
    return git_repo(path, {"config/pipeline.yaml": render_config(config)})


def secrets_dir(path: Path) -> Path:
    """Return a secrets directory laid out as the container executor reads it (<name>/<key>)."""
    values = {"promptci-store": {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                                 "AWS_DEFAULT_REGION": "us-east-1"},
              "promptci-gitops": {"PROMPTCI_GIT_USERNAME": USER, "PROMPTCI_GIT_TOKEN": TOKEN},
              "promptci-signing": {"PROMPTCI_SIGNING_KEY": SIGNING_KEY}}
    for name, keys in values.items():
        (path / name).mkdir(parents=True)
        for key, value in keys.items():
            (path / name / key).write_text(value)
    return path


def run_all(src: Path, prefix: str, extra: list[str], gateway: str, types: tuple[str, ...] = tuple(TYPES)
            ) -> dict[str, list[Any]]:
    """Run each type (one CLI run each); return per type the Pushgateway's promptci series after it."""
    series: dict[str, list[Any]] = {}
    for t in types:
        result = CliRunner().invoke(cli, ["run", t, "--repo-root", str(src), "--run-id", f"{prefix}-{t}", *extra],
                                    env={"PUSHGATEWAY_URL": gateway, "ARGO_SERVER": ""})
        assert result.exit_code == 0, result.output
        with urllib.request.urlopen(f"{gateway}/metrics", timeout=5) as resp:
            text = resp.read().decode()
        series[t] = sorted((name, sorted(labels)) for name, labels in samples(text)
                           if name.startswith(("prompt_pipeline_", "model_config_pipeline_", "rag_config_pipeline_",
                                               "guardrail_policy_pipeline_")) and not name.endswith("_sum"))
    return series


def s3_json(s3: Any, key: str) -> Any:
    return json.loads(s3.get_object(Bucket="promptci", Key=key)["Body"].read())


def branches(s3: Any, prefix: str, run_id: str) -> dict[tuple[str, str], dict[str, Any]]:
    """Return every branch result of ``run_id`` read from S3, keyed by (artifact, dataset)."""
    plan = s3_json(s3, f"{prefix}/runs/{run_id}/plan.json")["items"]  # the signed plan record
    return {(i["artifact_id"], i["dataset"]): s3_json(
        s3, f"{prefix}/runs/{run_id}/{i['artifact_id']}/{i['dataset']}/branch.json") for i in plan}


def promoted(bare: Path, tmp: Path) -> dict[str, str]:
    """Return {artifact id: content hash} of what the GitOps remote holds in dev."""
    work = tmp / f"read-{bare.name}"
    subprocess.run(["git", "clone", "-q", str(bare), str(work)], check=True)
    return {cm.artifact_id: cm.content_hash for cm in
            (parse_configmap(p.read_text(), str(p)) for p in sorted((work / "environments" / "dev").glob("*.yaml"))
             if p.name != "kustomization.yaml")}


@pytest.mark.slow
def test_the_pipeline_in_containers_persists_in_shared_services_and_matches_the_process_executor(
        tmp_path: Path, step_image: str, s3_endpoint: str, pushgateway: str,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch) -> None:
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    served = tmp_path / "served"
    served.mkdir()
    remotes = {side: init_bare(served, f"{side}.git") for side in ("container", "process")}
    with git_http_server(served, USER, TOKEN) as git_url:
        # --- every node in its own container -------------------------------------------------------
        src = source_repo(tmp_path / "src-c", s3_endpoint, "c", f"{git_url}/container.git")
        options = ["--executor", "container", "--secrets-dir", str(secrets_dir(tmp_path / "secrets")),
                   "--configmaps-dir", str(tmp_path / "configmaps")]
        c_series = run_all(src, "c1", options, pushgateway)
        first = {t: branches(s3, "c", f"c1-{t}") for t in TYPES}
        assert all(b["status"] == "passed" for bs in first.values() for b in bs.values())
        assert sum(len(bs) for bs in first.values()) >= 9
        # summary found the plan and every branch in S3 (the containers share no disk)
        for t in TYPES:
            summary = s3.get_object(Bucket="promptci", Key=f"c/runs/c1-{t}/summary.md")["Body"].read().decode()
            assert "All eval branches passed." in summary
            assert summary.count("✅ passed") == len(first[t])
        # every promotion is a commit in the remote
        log = subprocess.run(["git", "--git-dir", str(remotes["container"]), "log", "--format=%H", "main"],
                             capture_output=True, text=True, check=True).stdout.split()
        assert len(log) >= len(TYPES)
        in_dev = promoted(remotes["container"], tmp_path)
        assert set(in_dev) == {a for bs in first.values() for (a, _d) in bs}

        # an unchanged re-run is all cache hits: promptfoo (and so any provider) is never called.
        run_all(src, "c2", options, pushgateway)
        again = {t: branches(s3, "c", f"c2-{t}") for t in TYPES}
        assert {t: set(bs) for t, bs in again.items()} == {t: set(bs) for t, bs in first.items()}
        evaluated = [b for bs in again.values() for b in bs.values() if b["tests_total"]]
        assert len(evaluated) >= 6 and all(b["cached"] for b in evaluated)
        assert all(containers_of_run(f"{p}-{t}") == [] for p in ("c1", "c2") for t in TYPES)

        # --- the same with the process executor (Secrets from the environment) ---------------------
        for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                           "AWS_DEFAULT_REGION": "us-east-1", "PROMPTCI_GIT_USERNAME": USER,
                           "PROMPTCI_GIT_TOKEN": TOKEN, "PROMPTCI_SIGNING_KEY": SIGNING_KEY}.items():
            monkeypatch.setenv(key, value)
        src_p = source_repo(tmp_path / "src-p", s3_endpoint, "p", f"{git_url}/process.git")
        p_series = run_all(src_p, "p1", [], pushgateway)
        processed = {t: branches(s3, "p", f"p1-{t}") for t in TYPES}
        verdicts = {t: {k: (b["status"], b["pass_rate"]) for k, b in bs.items()} for t, bs in first.items()}
        assert verdicts == {t: {k: (b["status"], b["pass_rate"]) for k, b in bs.items()}
                            for t, bs in processed.items()}
        assert promoted(remotes["process"], tmp_path) == in_dev
        assert p_series == c_series


def test_in_a_container_the_local_disk_profile_is_refused(tmp_path: Path, step_image: str) -> None:
    """The checkout has no config: the packaged default (a local store and GitOps repo) applies, and is refused."""
    src = tmp_path / "src"
    for name in SAMPLES:
        shutil.copytree(REPO / name, src / name)
    git_repo(src, {})
    result = CliRunner().invoke(cli, ["run", "prompt", "--repo-root", str(src), "--run-id", "local-profile",
                                      "--executor", "container", "--secrets-dir", str(tmp_path / "secrets")],
                                env={"PUSHGATEWAY_URL": "", "ARGO_SERVER": ""})
    assert result.exit_code == 1, result.output
    plan = src / ".promptci" / "runs" / "local-profile" / "tasks" / "validate" / "stderr.txt"  # validate plans
    lines = plan.read_text().splitlines()
    assert lines[0].startswith("store.kind: 'local'") and lines[1].startswith("gitops.repo_url:")
    assert "refusing to run with a local-disk profile in a pod" in lines[2]
    assert containers_of_run("local-profile") == []
