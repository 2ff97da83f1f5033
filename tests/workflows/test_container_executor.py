"""The container executor runs each node the way its pod would: real containers from the step image."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from config.artifacts import ArtifactType
from tests.workflows.containers import containers_of_run, git_repo, inline_template
from tests.workflows.test_safe_path import lint_only, plant_malicious_code, policy_configmaps
from workflows.runner.container import ContainerExecutor, StepSetupError, common_root, cpu_limit, memory_limit
from workflows.runner.executors import Cancellation, RunContext, StepRequest
from workflows.runner.records import RunResult
from workflows.runner.scheduler import run_template
from workflows.templates import SAFE_DIRECTORY_ENV, PipelineSettings, build_template

GIT_HEAD = """import subprocess, sys
out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True)
print(out.stdout.strip() or out.stderr.strip())
sys.exit(out.returncode)
"""


def run(tmp_path: Path, manifest: dict[str, Any], params: dict[str, str] | None = None,
        executor: ContainerExecutor | None = None, run_id: str = "c") -> RunResult:
    ex = executor or ContainerExecutor(tmp_path / "configmaps", tmp_path / "secrets")
    return run_template(manifest, params or {}, repo_root=tmp_path, runs_dir=tmp_path / "runs", run_id=run_id,
                        env=dict(os.environ), executor=ex, configmaps=policy_configmaps())


def step_log(result: RunResult, name: str = "step") -> str:
    node = next(n for n in result.nodes if n.name == name)
    return "".join((Path(node.dir) / f).read_text() for f in ("stdout.txt", "stderr.txt"))


def test_quantities_and_output_roots() -> None:
    assert memory_limit("512Mi") == str(512 * 2**20) and memory_limit("1G") == str(10**9)
    assert cpu_limit("500m") == "0.5" and cpu_limit("2") == "2"
    with pytest.raises(StepSetupError):
        memory_limit("lots")
    paths = ["/tmp/hera-outputs/parameters/items", "/tmp/hera-outputs/artifacts/reports"]
    assert str(common_root(paths)) == "/tmp/hera-outputs"
    assert str(common_root(["/tmp/hera-outputs/parameters/result"])) == "/tmp/hera-outputs/parameters"
    assert common_root(["/a", "/b/c"]) is None


def test_dubious_ownership_is_reproduced_then_fixed_by_the_scoped_safe_directory(
        tmp_path: Path, step_image: str) -> None:
    src = git_repo(tmp_path / "src", {"README": "x"})
    params = {"repo-url": str(src)}
    # The bug: the checkout is owned by the cloning uid, the step runs as 10001: git refuses it.
    broken = run(tmp_path, inline_template("t", GIT_HEAD, step_image), params, run_id="without")
    assert not broken.ok
    assert "dubious ownership" in step_log(broken)
    # The fix the real templates carry: safe.directory for exactly the checkout's path.
    env = {e.name: e.value for e in SAFE_DIRECTORY_ENV}
    assert env["GIT_CONFIG_VALUE_0"] == "/work/src"
    fixed = run(tmp_path, inline_template("t", GIT_HEAD, step_image, env=env), params, run_id="with")
    assert fixed.ok, step_log(fixed)
    assert step_log(fixed).split()[0] == (src / ".git" / "refs" / "heads" / "main").read_text().strip()


def test_a_malicious_checkout_is_not_imported_in_the_image(tmp_path: Path, repo: Path, step_image: str) -> None:
    plant_malicious_code(repo)
    src = git_repo(repo, {})
    manifest = lint_only(build_template(ArtifactType.PROMPT, PipelineSettings()).to_dict())
    result = run(tmp_path, manifest, {"repo-url": str(src)})
    log = step_log(result, "lint")
    assert result.ok, log
    assert "prompts: ok" in log and "PWNED" not in log


def test_secrets_come_from_the_secrets_dir_only_and_never_on_the_command_line(
        tmp_path: Path, step_image: str, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "secrets" / "promptci-store").mkdir(parents=True)
    (tmp_path / "secrets" / "promptci-store" / "AWS_SECRET_ACCESS_KEY").write_text("from-the-secret")
    monkeypatch.setenv("RUNNER_ONLY_SECRET", "must-not-leak")
    show = ("import os\nprint(os.environ.get('AWS_SECRET_ACCESS_KEY'), os.environ.get('RUNNER_ONLY_SECRET'),"
            " os.environ.get('ARGO_CONTAINER_NAME'), os.getuid())\n")
    manifest = inline_template("s", show, step_image, with_source=False, script={"envFrom": [
        {"secretRef": {"name": "promptci-store", "optional": True}},
        {"secretRef": {"name": "promptci-absent", "optional": True}}]})
    result = run(tmp_path, manifest)
    assert result.ok, step_log(result)
    assert step_log(result).split() == ["from-the-secret", "None", "main", "10001"]
    ex = ContainerExecutor(tmp_path / "configmaps", tmp_path / "secrets")
    (tmp_path / "attempt").mkdir()
    request = StepRequest(node="step", template=manifest["spec"]["templates"][1], inputs={},
                          attempt_dir=tmp_path / "attempt", context=RunContext(
                              run_id="r", run_dir=tmp_path, repo_root=tmp_path, env={},
                              cancelled=Cancellation()))
    argv, secret_env = ex._podman_run_args(request, "name")
    assert secret_env == {"AWS_SECRET_ACCESS_KEY": "from-the-secret"}
    assert "from-the-secret" not in " ".join(argv) and "AWS_SECRET_ACCESS_KEY" in argv
    # A required Secret that is absent stops the node before any container starts, like a pod.
    manifest["spec"]["templates"][1]["script"]["envFrom"] = [{"secretRef": {"name": "promptci-absent"}}]
    missing = run(tmp_path, manifest, run_id="missing")
    assert not missing.ok and "Secret 'promptci-absent' not found" in missing.nodes[-1].message


def test_memory_limit_and_deadline_are_enforced_and_no_container_is_left(tmp_path: Path, step_image: str) -> None:
    hog = "b = bytearray(400 * 1024 * 1024)\nprint(len(b))\n"
    oom = run(tmp_path, inline_template("m", hog, step_image, with_source=False,
                                        script={"resources": {"limits": {"memory": "64Mi"}}}), run_id="oom")
    node = oom.nodes[-1]
    assert not oom.ok and node.exit_code == 137  # killed by the memory cgroup (400 MB > 64Mi)
    slow = run(tmp_path, inline_template("d", "import time\ntime.sleep(60)\n", step_image, with_source=False,
                                         extra={"activeDeadlineSeconds": "2"}), run_id="deadline")
    node = slow.nodes[-1]
    assert not slow.ok and "activeDeadlineSeconds (2s) exceeded" in node.message
    assert node.duration < 30
    assert containers_of_run("oom") == [] and containers_of_run("deadline") == []


def test_a_config_map_volume_is_mounted_read_only_from_the_config_maps_dir(tmp_path: Path, step_image: str) -> None:
    (tmp_path / "configmaps" / "promptci-pipeline-config").mkdir(parents=True)
    (tmp_path / "configmaps" / "promptci-pipeline-config" / "pipeline.yaml").write_text("store: {}\n")
    read = ("import pathlib\np = pathlib.Path('/etc/promptci/pipeline.yaml')\nprint(p.read_text().strip())\n"
            "try:\n    p.write_text('x')\nexcept OSError as e:\n    print('read-only', e.errno)\n")
    manifest = inline_template("v", read, step_image, with_source=False,
                               script={"volumeMounts": [{"name": "config", "mountPath": "/etc/promptci"}]},
                               extra={"volumes": [{"name": "config",
                                                   "configMap": {"name": "promptci-pipeline-config"}}]})
    result = run(tmp_path, manifest)
    assert result.ok, step_log(result)
    assert step_log(result).splitlines()[:2] == ["store: {}", "read-only 30"]
