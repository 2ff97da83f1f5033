"""Nothing a run started outlives it: the runner killed by SIGTERM or SIGKILL, then a re-run.

The step starts a grandchild in its own session (as promptfoo does) and sleeps. SIGTERM: the
runner cancels, kills every process of the run, removes its containers and records the run as
terminated. SIGKILL cannot be caught: the next run reaps what is left and records the killed run
as interrupted. Both executors.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.workflows.containers import REPO, containers_of_run, inline_template, require_podman
from workflows.runner import lifecycle
from workflows.runner.container import ContainerExecutor
from workflows.runner.scheduler import run_template

STEP = """import subprocess, sys, time
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"], start_new_session=True)
print("started", flush=True)
time.sleep(300)
"""
DRIVER = """import json, sys
from pathlib import Path
from workflows.runner.container import ContainerExecutor
from workflows.runner.scheduler import run_template
manifest, root, kind = json.loads(Path(sys.argv[1]).read_text()), Path(sys.argv[2]), sys.argv[3]
executor = ContainerExecutor(root / "cm", root / "secrets") if kind == "container" else None
result = run_template(manifest, {}, repo_root=root, runs_dir=root / "runs", run_id="victim", executor=executor)
sys.exit(result.exit_code)
"""


def start_runner(tmp_path: Path, kind: str, image: str) -> subprocess.Popen[bytes]:
    """Start a runner in its own process running the sleeping step; return once the step has started."""
    manifest = inline_template("victim", STEP, image, with_source=False)
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    runner = subprocess.Popen([sys.executable, "-c", DRIVER, str(tmp_path / "manifest.json"), str(tmp_path), kind],
                              cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, stderr=subprocess.PIPE)
    out = tmp_path / "runs" / "victim" / "tasks" / "step" / "attempt-1" / "stdout.txt"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if out.is_file() and "started" in out.read_text():
            return runner
        if runner.poll() is not None:
            pytest.fail(f"the runner ended early: {runner.stderr.read().decode() if runner.stderr else ''}")
        time.sleep(0.2)
    runner.kill()
    pytest.fail("the step never started")


def leftovers(token: str) -> tuple[dict[int, str], list[str]]:
    """Return (processes carrying the runner's token, containers of the run)."""
    return lifecycle.processes_with_token(token), containers_of_run("victim")


def run_record(tmp_path: Path) -> dict[str, Any]:
    return json.loads((tmp_path / "runs" / "victim" / "run.json").read_text())


def wait_gone(token: str, seconds: float = 30) -> tuple[dict[int, str], list[str]]:
    deadline = time.monotonic() + seconds
    while True:
        left = leftovers(token)
        if left == ({}, []) or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


@pytest.fixture(params=["process", "container"])
def kind(request: pytest.FixtureRequest) -> str:
    if request.param == "container":
        require_podman()
        request.getfixturevalue("step_image")
    return str(request.param)


@pytest.fixture
def image(kind: str) -> str:
    from workflows.templates import PipelineSettings

    return PipelineSettings().image


def test_sigterm_cancels_every_step_and_records_the_run(tmp_path: Path, kind: str, image: str) -> None:
    runner = start_runner(tmp_path, kind, image)
    token = lifecycle.runner_token(runner.pid)
    assert leftovers(token)[0] or containers_of_run("victim")  # the step is running
    runner.send_signal(signal.SIGTERM)
    assert runner.wait(timeout=120) == 1
    assert wait_gone(token) == ({}, [])
    record = run_record(tmp_path)
    assert record["status"] == "Error" and record["message"] == "terminated (SIGTERM)"
    assert not (tmp_path / "runs" / "victim" / lifecycle.STATE_FILE).exists()


def test_after_sigkill_a_rerun_reaps_every_stray_and_records_the_killed_run(
        tmp_path: Path, kind: str, image: str) -> None:
    runner = start_runner(tmp_path, kind, image)
    token = lifecycle.runner_token(runner.pid)
    runner.kill()
    runner.wait(timeout=60)
    time.sleep(1)
    processes, containers = leftovers(token)
    assert processes or containers, "SIGKILL left nothing behind: the re-run below would prove nothing"
    assert not (tmp_path / "runs" / "victim" / "run.json").exists()  # half state, until the re-run

    executor = ContainerExecutor(tmp_path / "cm", tmp_path / "secrets") if kind == "container" else None
    again = run_template(inline_template("again", "print('ok')\n", image, with_source=False), {},
                         repo_root=tmp_path, runs_dir=tmp_path / "runs", run_id="again", executor=executor)
    assert again.ok
    assert wait_gone(token, 10) == ({}, [])
    record = run_record(tmp_path)
    assert record["status"] == "Error" and record["message"].startswith("interrupted: the runner")
    assert not (tmp_path / "runs" / "victim" / lifecycle.STATE_FILE).exists()
