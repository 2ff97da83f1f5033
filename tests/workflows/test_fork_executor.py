"""The fork executor is the process executor, started faster: same requests, same results, same processes.

* Every stage of the real prompt and rag-config pipelines (lint, validate with its plan, an eval shard on promptfoo with
  recordings, promote into a GitOps repo, summary) runs once through the process executor and once
  forked, on the same checkout (created afresh at the same path) with the same run id: each node's
  phase, exit code, outputs, stdout, stderr and every file it wrote (its outputs, the store's records
  and reports, the GitOps tree) are the same, the checkout's path and the clocks aside.
* A forked step sees what a subprocess sees: exactly the step's environment (also in what it starts),
  its cwd, stdin /dev/null, its own session and process group, no inherited descriptor, the same
  ``sys.argv``/``sys.path``/stdio; exit codes (``sys.exit`` with a number or a message) are Python's.
* The deadline and a cancel kill the step's process group; closing the server, or the runner dying,
  leaves no process behind; a lost zygote is an Error (retried), never a pass.
* The zygote's imports read no environment variable and no working directory (what would leak the
  zygote's values into every step).
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from config.artifacts import ArtifactType
from config.pipeline import DEFAULT_CONFIG
from workflows.runner import lifecycle
from workflows.runner.executors import PROJECT_ROOT, Cancellation, ProcessExecutor, RunContext, StepRequest
from workflows.runner.forking import ForkExecutor, ForkServer, startup_env
from workflows.runner.progress import totals_lines
from workflows.runner.scheduler import run_template
from workflows.template_settings import PipelineSettings
from workflows.templates import POLICY_CONFIGMAP, build_template

PROMPTS = ("summarizer.json", "ticket-classifier.yaml")
ENTRY = ["-m", "workflows.stage_entry"]


def git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z", "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z"}
    return subprocess.run(["git", "-c", "user.name=dev", "-c", "user.email=dev@example.test", *args], cwd=cwd,
                          check=True, capture_output=True, text=True, env=env).stdout.strip()


CASES = {"prompt": ("prompts", PROMPTS), "rag-config": ("rag-configs", ("kb-search.yaml",))}
"""Per pipeline: the artifact directory and the samples of it; rag-config's eval runs the retriever (numpy)."""


def checkout(path: Path, artifact_type: str) -> Path:
    """Return a git checkout of samples of ``artifact_type`` with their sets and recordings (the same commit
    each time)."""
    folder, names = CASES[artifact_type]
    for name in ("model-configs", "evals", "recordings"):
        shutil.copytree(PROJECT_ROOT / name, path / name)
    (path / folder).mkdir()
    for name in names:
        shutil.copy(PROJECT_ROOT / folder / name, path / folder / name)
    git(path, "init", "-q", "-b", "main")
    git(path, "add", ".")
    git(path, "commit", "-qm", "samples")
    return path


def tree(root: Path, skip: tuple[str, ...] = ()) -> dict[str, bytes]:
    """Return every file under ``root`` by relative path (``skip`` prefixes and git's object stores left out:
    a commit's id holds its time; the commits are compared through what they check out)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not re.search(r"\.git/(objects|index$)", str(p.relative_to(root)))
            and not str(p.relative_to(root)).startswith(skip)}


CLOCKS = [re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?"),  # ISO times
          re.compile(rb'"(\w*(duration|latency|Latency|Duration|cpu|time|Time|started|finished|created)\w*|evalId|id)"'
                     rb'\s*:\s*("[^"]*"|[\d.e-]+)'),  # clocks and measured times in JSON
          re.compile(rb'\btime="[\d.]+"'),  # JUnit's
          re.compile(rb"hmac-sha256:[0-9a-f]{64}"),  # a record's signature covers its clocks
          re.compile(rb"\(node:\d+\)"),  # a pid in Node's warnings
          re.compile(rb"\b1[78]\d{8}(\.\d+)?\b"),  # epoch seconds
          re.compile(rb"\b1[78]\d{11}\b"),  # epoch milliseconds
          re.compile(rb"\b\d+(\.\d+)?\s?(ms|s)\b"),  # durations printed
          re.compile(rb"\b[0-9a-f]{40}\b"),  # commit ids (a commit's time is in its id)
          re.compile(rb"\b[0-9a-f]{12}\b"),  # short commit ids
          re.compile(rb"eval-[A-Za-z0-9-]+")]  # promptfoo's eval ids


def normalised(data: bytes, root: Path) -> bytes:
    data = data.replace(str(root).encode(), b"<checkout>")
    for pattern in CLOCKS:
        data = pattern.sub(b"<clock>", data)
    return data


def run_all_stages(root: Path, executor: Any, trusted: str, artifact_type: str) -> tuple[Any, dict[str, bytes]]:
    manifest = build_template(ArtifactType(artifact_type), PipelineSettings()).to_dict()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROMPTCI_")}
    env["PROMPTCI_PROVIDER"] = "recorded"
    env["PROMPTCI_SIGNING_KEY"] = "ab" * 32  # one key for both runs: the same records sign the same
    result = run_template(manifest, {"repo-url": str(root), "artifact-path": CASES[artifact_type][0]}, repo_root=root,
                          run_id="same-run", env=env, executor=executor, configmaps={
                              POLICY_CONFIGMAP: {"pipeline.yaml": trusted}})
    files = {normalised(name.encode(), root).decode(): comparable(name, data, root)  # a name can hold a hash
             for name, data in tree(root, skip=(".promptci/runs/same-run/volumes", ".promptci/cache")).items()}
    return result, files


def comparable(name: str, data: bytes, root: Path) -> Any:
    """Return what of a file must be the same both ways: its bytes (clocks masked), or for a pickle the object.

    A pickle's bytes hold the iteration order of sets of strings (pydantic's ``__pydantic_fields_set__``), which
    follows the process's string hash seed: two subprocesses differ there as much as a fork and a subprocess.
    """
    return state(pickle.loads(data)) if name.endswith(".pickle") else normalised(data, root)  # noqa: S301


def state(value: Any) -> Any:
    """Return ``value`` as plain data to compare: models dumped, arrays listed, objects by their attributes."""
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, list | tuple):
        return [state(v) for v in value]
    if isinstance(value, dict):
        return {k: state(v) for k, v in value.items()}
    if hasattr(value, "__dict__") and not callable(value):
        return {type(value).__qualname__: {k: state(v) for k, v in vars(value).items()}}
    return value if isinstance(value, str | int | float | bool | type(None)) else repr(value)


@pytest.mark.parametrize("artifact_type", sorted(CASES))
def test_every_stage_gives_the_same_results_forked_and_as_a_subprocess(tmp_path: Path, artifact_type: str) -> None:
    trusted = DEFAULT_CONFIG.read_text().replace("  max_shards: 8", "  max_shards: 1")
    forked, root = ForkExecutor(), tmp_path / "repo"
    by_process, process_files = run_all_stages(checkout(root, artifact_type), ProcessExecutor(), trusted,
                                               artifact_type)
    root.rename(tmp_path / "by-process")  # the same path for both runs: some keys hash it
    by_fork, fork_files = run_all_stages(checkout(root, artifact_type), forked, trusted, artifact_type)

    assert by_process.status == "Succeeded", by_process.message
    stages = {n.template for n in by_process.nodes if n.exit_code is not None}
    assert stages == {"lint", "validate", "eval", "promote", "summary"}  # every stage ran
    assert forked.forked_attempts == len([n for n in by_fork.nodes if n.exit_code is not None])  # all forked

    def facts(result: Any, root: Path) -> list[tuple[Any, ...]]:
        return [(n.name, n.status, n.exit_code, n.message,
                 {k: normalised(v.encode(), root) for k, v in n.outputs.items()}) for n in result.nodes]

    assert facts(by_fork, root) == facts(by_process, root)
    assert sorted(fork_files) == sorted(process_files)
    differ = [name for name in process_files if fork_files[name] != process_files[name]]
    assert differ == [], "\n".join(f"{name}:\n" + "\n".join(list(difflib.unified_diff(
        str(process_files[name]).splitlines(), str(fork_files[name]).splitlines(), lineterm="", n=0))[:12])
        for name in differ)
    assert any(name.endswith("stdout.txt") and b"promoted" in data for name, data in fork_files.items())
    # The imports the forked steps no longer pay are counted where they went, in the run's CPU total.
    assert by_process.shared_cpu_seconds is None and (by_fork.shared_cpu_seconds or 0) > 0.05
    assert "the fork server's imports (shared by the steps)" in totals_lines(by_fork)[-1]


# ------------------------------------------------------------------ one step, both ways


def request(tmp_path: Path, label: str, target: str, ins: dict[str, str], *, env: dict[str, str] | None = None,
            outs: tuple[str, ...] = (), deadline: float | None = None,
            cancelled: Cancellation | None = None) -> StepRequest:
    """Return one attempt of a stage-entry step running ``tests.workflows.fork_probe:<target>``."""
    args = [*ENTRY, f"tests.workflows.fork_probe:{target}", *[f"--in={k}={k}" for k in ins],
            *[f"--out={k}={k}" for k in outs]]
    template = {"name": target, "script": {
        "command": ["python", "-P"], "args": args,
        "source": json.dumps([{"name": k, "value": v} for k, v in ins.items()]),
        "env": [{"name": "hera__outputs_directory", "value": "/tmp/hera-outputs"},
                {"name": "STEP_ONLY", "value": "1"}]},
        "outputs": {"parameters": [{"name": k, "valueFrom": {"path": f"/tmp/hera-outputs/parameters/{k}"}}
                                   for k in outs]}}
    base = {k: v for k, v in os.environ.items() if k != "ZYGOTE_ONLY"}
    context = RunContext(run_id="r", run_dir=tmp_path, repo_root=tmp_path, env={**base, **(env or {})},
                         cancelled=cancelled or Cancellation())
    return StepRequest(node=target, template=template, inputs=ins, attempt_dir=tmp_path / label,
                       context=context, active_deadline_seconds=deadline)


@pytest.fixture
def server(tmp_path: Path) -> Any:
    """A zygote whose environment holds one variable no step has (ZYGOTE_ONLY)."""
    started = ForkServer({**os.environ, "ZYGOTE_ONLY": "leak"}, tmp_path)
    yield started
    started.close()


def _same_process_view(tmp_path: Path, server: ForkServer) -> tuple[dict[str, Any], dict[str, Any]]:
    views = []
    for label, executor in (("process", ProcessExecutor()), ("fork", ForkExecutor(server))):
        result = executor.run(request(tmp_path, label, "describe", {"label": label}, outs=("report",)))
        assert (result.phase, result.exit_code) == ("Succeeded", 0), result.stderr_path.read_text()
        assert (result.stdout_path.read_text(), result.stderr_path.read_text()) == (f"{label}\n", "to stderr\n")
        assert getattr(executor, "forked_attempts", 1) == 1
        views.append(json.loads(result.outputs["report"]))
    return views[0], views[1]


def test_a_forked_step_sees_what_a_subprocess_sees(tmp_path: Path, server: ForkServer) -> None:
    process, fork = _same_process_view(tmp_path, server)
    for view in (process, fork):
        assert "ZYGOTE_ONLY" not in view["environ"] and view["environ"]["STEP_ONLY"] == "1"
        assert "ZYGOTE_ONLY" not in view["child_env"] and '"STEP_ONLY": "1"' in view["child_env"]
        assert view["stdin_is_devnull"] and view["own_session"] and view["own_group"]
        assert view["fds"] == [0, 1, 2, 3]  # stdio and the listing's own: nothing inherited
    for key in ("environ", "child_env"):
        process[key] = process[key].replace(str(tmp_path / "process"), "<attempt>") \
            if isinstance(process[key], str) else {k: v.replace(str(tmp_path / "process"), "<attempt>")
                                                   for k, v in process[key].items()}
        fork[key] = fork[key].replace(str(tmp_path / "fork"), "<attempt>") \
            if isinstance(fork[key], str) else {k: v.replace(str(tmp_path / "fork"), "<attempt>")
                                                for k, v in fork[key].items()}
    process["argv"][-1] = fork["argv"][-1] = "<script>"
    assert fork == process


@pytest.mark.parametrize(("code", "status", "stderr"), [("0", 0, ""), ("1", 1, ""), ("75", 75, ""),
                                                        ("300", 300 & 0xFF, ""), ("bye", 1, "bye\n")])
def test_exit_codes_and_messages_are_pythons(tmp_path: Path, server: ForkServer, code: str, status: int,
                                             stderr: str) -> None:
    seen = []
    for label, executor in (("process", ProcessExecutor()), ("fork", ForkExecutor(server))):
        result = executor.run(request(tmp_path, label, "leave", {"code": code}))
        seen.append((result.exit_code, result.phase, result.stdout_path.read_text(), result.stderr_path.read_text()))
    assert seen[0] == seen[1] == (status, "Succeeded" if status == 0 else "Failed", "leaving\n", stderr)


def test_the_cpu_seconds_of_a_forked_step_are_its_own(tmp_path: Path, server: ForkServer) -> None:
    result = ForkExecutor(server).run(request(tmp_path, "burn", "burn", {"seconds": "0.5"}))
    assert result.phase == "Succeeded" and result.cpu_seconds is not None
    assert 0.45 <= result.cpu_seconds < 5


def _gone(pid: int, seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] \
            if Path(f"/proc/{pid}/stat").exists() else "X"
        if state == "Z":
            return True
        time.sleep(0.1)
    return False


def test_the_deadline_kills_the_forked_steps_process_group(tmp_path: Path, server: ForkServer) -> None:
    pidfile = tmp_path / "grandchild.pid"
    result = ForkExecutor(server).run(request(tmp_path, "slow", "linger", {"pidfile": str(pidfile), "session": "same"},
                                                      deadline=2))
    assert result.phase == "Failed" and result.message == "activeDeadlineSeconds (2s) exceeded"
    assert result.exit_code == -signal.SIGKILL
    assert _gone(int(pidfile.read_text()))  # the step's whole group, as the process executor kills it


def test_cancel_kills_a_running_forked_step_and_the_server_survives(tmp_path: Path, server: ForkServer) -> None:
    import threading

    pidfile = tmp_path / "grandchild.pid"
    executor, cancelled = ForkExecutor(server), Cancellation()
    done: list[Any] = []
    worker = threading.Thread(target=lambda: done.append(executor.run(request(
        tmp_path, "victim", "linger", {"pidfile": str(pidfile), "session": "own"}, cancelled=cancelled))))
    worker.start()
    deadline = time.monotonic() + 60
    while not pidfile.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    cancelled.cancel("workflow shutdown with strategy:  Stop")
    executor.cancel()
    worker.join(30)
    assert done and done[0].phase == "Failed" and done[0].message == "workflow shutdown with strategy:  Stop"
    assert _gone(int(pidfile.read_text()))
    assert server.alive()  # the next run of this CLI call still forks
    again = ForkExecutor(server).run(request(tmp_path, "again", "leave", {"code": "0"}))
    assert again.phase == "Succeeded"


def test_closing_the_server_ends_every_step_and_a_lost_step_is_an_error(tmp_path: Path) -> None:
    import threading

    server = ForkServer(dict(os.environ), tmp_path)
    pidfile = tmp_path / "grandchild.pid"
    executor = ForkExecutor(server)
    done: list[Any] = []
    worker = threading.Thread(target=lambda: done.append(executor.run(request(
        tmp_path, "lost", "linger", {"pidfile": str(pidfile), "session": "same"}))))
    worker.start()
    deadline = time.monotonic() + 60
    while not pidfile.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    server.close()
    worker.join(30)
    assert not server.alive()
    assert done and done[0].phase in ("Error", "Failed") and done[0].phase != "Succeeded"
    assert _gone(int(pidfile.read_text()))
    # With its zygote gone, the executor runs the next step as a subprocess: same result, nothing forked.
    after = ForkExecutor(server).run(request(tmp_path, "after", "leave", {"code": "0"}))
    assert after.phase == "Succeeded" and after.stdout_path.read_text() == "leaving\n"


def test_a_runner_killed_with_sigkill_leaves_no_zygote_and_no_step(tmp_path: Path) -> None:
    driver = f"""
import os, sys, time
sys.path.insert(0, {str(PROJECT_ROOT)!r})
from pathlib import Path
from workflows.runner import lifecycle
from workflows.runner.forking import ForkServer
server = ForkServer(dict(os.environ), Path({str(tmp_path)!r}))
mine, out = server.start(['tests.workflows.fork_probe:linger', '--in=pidfile=pidfile', '--in=session=session',
                          {str(tmp_path / 'in.json')!r}],
                         {{**os.environ, 'PYTHONPATH': {str(PROJECT_ROOT)!r},
                           lifecycle.TOKEN_ENV: lifecycle.runner_token()}}, {str(tmp_path)!r}, 1, 2), None
print(server.pid, flush=True)
time.sleep(300)
"""
    (tmp_path / "in.json").write_text(json.dumps([{"name": "pidfile", "value": str(tmp_path / "gc.pid")},
                                                  {"name": "session", "value": "own"}]))
    runner = subprocess.Popen([sys.executable, "-c", driver], stdout=subprocess.PIPE, text=True, cwd=tmp_path)
    zygote = int(runner.stdout.readline()) if runner.stdout else 0
    deadline = time.monotonic() + 60
    while not (tmp_path / "gc.pid").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    grandchild = int((tmp_path / "gc.pid").read_text())
    token = lifecycle.runner_token(runner.pid)
    assert lifecycle.processes_with_token(token)  # the zygote and its step carry the runner's token
    runner.kill()
    runner.wait()
    assert _gone(zygote)  # it saw its control socket close
    # The step died with its zygote (PR_SET_PDEATHSIG); its own-session grandchild is what reaping is for.
    lifecycle.reap_strays(None)
    assert _gone(grandchild)
    assert lifecycle.processes_with_token(token) == {}


def test_a_step_with_other_startup_variables_runs_as_a_subprocess(tmp_path: Path, server: ForkServer) -> None:
    executor = ForkExecutor(server)
    result = executor.run(request(tmp_path, "utf8", "leave", {"code": "0"}, env={"PYTHONUTF8": "1"}))
    assert result.phase == "Succeeded" and executor.forked_attempts == 0
    assert startup_env({"PYTHONUTF8": "1", "LC_ALL": "C", "LANG": "C", "HOME": "/x"}) == {
        "PYTHONUTF8": "1", "LC_ALL": "C", "LANG": "C"}


def test_a_command_other_than_the_stage_entry_runs_as_a_subprocess(tmp_path: Path, server: ForkServer) -> None:
    executor = ForkExecutor(server)
    req = request(tmp_path, "inline", "leave", {"code": "0"})
    req.template["script"].update(command=["python"], args=[], source="print('inline')")  # type: ignore[index]
    result = executor.run(req)
    assert (result.phase, result.stdout_path.read_text(), executor.forked_attempts) == ("Succeeded", "inline\n", 0)


def test_the_zygotes_imports_read_nothing_a_step_sets_and_a_step_differing_on_them_is_not_forked(
        tmp_path: Path, server: ForkServer) -> None:
    """A value a module reads at import stays the zygote's in every fork: the zygote reports what its imports
    read, none of it is what the templates set per step, and a step whose value differs runs as a subprocess."""
    read = server.imports_read()
    assert read is not None and read["failed"] == [] and "*" not in read["env"]
    manifest = build_template(ArtifactType.PROMPT, PipelineSettings()).to_dict()
    per_step = {e["name"] for t in manifest["spec"]["templates"] for e in (t.get("script") or {}).get("env", [])}
    per_step |= {lifecycle.TOKEN_ENV, "PYTHONPATH", "PROMPTCI_EVAL_SHARDS_CAP", "PROMPTCI_CONFIG"}
    assert per_step & set(read["env"]) == set()
    assert [name for name in read["env"] if name.startswith("PROMPTCI_")] == []  # settings are read when used
    assert "HOME" in read["env"]  # the watch works: something does read $HOME at import
    executor = ForkExecutor(server)
    assert executor.run(request(tmp_path, "same", "leave", {"code": "0"})).phase == "Succeeded"
    assert executor.forked_attempts == 1
    other = executor.run(request(tmp_path, "other-home", "leave", {"code": "0"}, env={"HOME": str(tmp_path)}))
    assert other.phase == "Succeeded" and executor.forked_attempts == 1  # not forked
    # rich keeps the working directory it was imported in (rich/__init__.py _IMPORT_CWD): a step elsewhere
    # is not forked either.
    assert read["cwd"]
    elsewhere = request(tmp_path, "elsewhere", "leave", {"code": "0"})
    (tmp_path / "elsewhere").mkdir()
    elsewhere = dataclasses.replace(elsewhere, context=dataclasses.replace(elsewhere.context,
                                                                           repo_root=tmp_path / "elsewhere"))
    assert executor.run(elsewhere).phase == "Succeeded" and executor.forked_attempts == 1


def test_a_run_of_inline_scripts_starts_no_zygote(tmp_path: Path) -> None:
    executor = ForkExecutor()
    req = request(tmp_path, "inline", "leave", {"code": "0"})
    req.template["script"].update(command=["python"], args=[], source="print('inline')")  # type: ignore[index]
    assert executor.run(req).phase == "Succeeded"
    executor.close()
    assert executor.shared_cpu_seconds is None and executor.forked_attempts == 0  # no zygote was started
