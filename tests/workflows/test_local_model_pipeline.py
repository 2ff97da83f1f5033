"""The live provider path end to end against a real model that runs here.

``PROMPTCI_PROVIDER=local``: ``submit.py run`` starts the bundled SmolLM2-135M server once
(steps/providers/local_model.py), the eval branches call it over HTTP through promptfoo's
``openai:chat`` provider (the code a real OpenAI-compatible API goes through), and the run
stops it at the end. Nothing is stubbed: the model, the Node server, promptfoo, the local
runner with its retryStrategy, the store and the GitOps repo are all real.

The model and the server's node modules come from ``make setup-local-model``. Without them
this test skips on a developer machine and FAILS in CI (``CI=true``): it never skips there.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from steps.eval import NETWORK_ERROR
from steps.providers import local_model
from tests.local_model_kit import require_local_model

REPO = Path(__file__).resolve().parents[2]
SAMPLES = ("order-lookup", "contact-extractor")


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """Return a git checkout holding the two local-model sample prompts and their golden sets."""
    require_local_model()
    src = tmp_path / "src"
    (src / "prompts").mkdir(parents=True)
    for name in SAMPLES:
        shutil.copy(REPO / "prompts" / f"{name}.yaml", src / "prompts")
        shutil.copytree(REPO / "evals" / name, src / "evals" / name)
    git(src, "init", "-q", "-b", "main")
    git(src, "-c", "user.name=dev", "-c", "user.email=dev@example.test", "add", ".")
    git(src, "-c", "user.name=dev", "-c", "user.email=dev@example.test", "commit", "-qm", "samples")
    return src


def _start(source: Path, run_id: str, log: Path, *extra: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k not in (local_model.URL_ENV, "PROMPTCI_RECORD")}
    env.update({"PROMPTCI_PROVIDER": "local", "PROMPTCI_LOCAL_REQUEST_LOG": str(log),
                "PROMPTCI_RECORDINGS_DIR": str(source / "no-recordings")})
    env.pop("PUSHGATEWAY_URL", None)
    return subprocess.Popen([sys.executable, str(REPO / "workflows" / "submit.py"), "run", "prompt",
                             "--repo-root", str(source), "--run-id", run_id, *extra],
                            cwd=source, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(proc: subprocess.Popen[str]) -> tuple[int, str]:
    out, _ = proc.communicate(timeout=900)
    return proc.returncode, out


def _calls(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def _results(source: Path, run_id: str) -> dict[str, dict[str, Any]]:
    base = source / ".promptci" / "store" / "runs" / run_id
    return {name: json.loads((base / name / "golden" / "result.json").read_text()) for name in SAMPLES}


def _outputs(results: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    return {name: [r["output"] for t in res["tests"] for r in t["runs"]] for name, res in results.items()}


def _assert_gone(calls: list[dict[str, Any]]) -> None:
    """Every server process that answered is gone, and its port is free again."""
    for pid in {c["pid"] for c in calls}:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    for port in {c["port"] for c in calls}:
        with socket.socket() as s:  # SO_REUSEADDR: connections in TIME_WAIT don't count, a listener does
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port))  # raises OSError (address in use) if anything still listens
            s.listen()


@pytest.mark.slow
def test_local_model_live_path_end_to_end(source: Path, tmp_path: Path) -> None:
    log = tmp_path / "requests.jsonl"
    tests = 6  # 3 golden tests per sample, 1 repeat

    # 1. A fresh run: every test is a real HTTP call to the one server the run started.
    code, out = _finish(_start(source, "first", log, "--no-cache"))
    assert code == 0, out
    calls = _calls(log)
    assert len(calls) == tests and len({c["pid"] for c in calls}) == 1
    first = _results(source, "first")
    for res in first.values():
        assert res["provider"] == "openai:chat:smollm2-135m-instruct"  # the live OpenAI-compatible provider
        for t in res["tests"]:
            run = t["runs"][0]
            assert run["passed"] and not run["authored"] and run["error"] is None
            # the model's own token counts (llama.cpp's token meter), not a word count
            assert run["tokens"]["prompt"] > 50 and 0 < run["tokens"]["completion"] <= 40
            assert run["tokens"]["total"] == run["tokens"]["prompt"] + run["tokens"]["completion"]
    summary = (source / ".promptci" / "store" / "runs" / "first" / "summary.md").read_text()
    assert "all 6 result(s) came from a model" in summary
    # Both items ran in ONE shard (6 test runs < eval.min_tests_per_shard): one promptfoo process served two
    # items with their own provider labels against the live server, and split the results per item.
    nodes = json.loads((source / ".promptci" / "runs" / "first" / "run.json").read_text())["nodes"]
    shards = [json.loads(n["inputs"]["shard"]) for n in nodes if n["task"] == "eval"]
    assert [(s["items"], s["tests"]) for s in shards] == [(2, tests)], shards
    _assert_gone(calls)

    # 2. Again with --no-cache, and the server SIGKILLed once it has answered a call: the branch that
    # lost it exits 75, the runner retries it, the restarted server answers, and the run passes with
    # byte-identical outputs (temperature 0 + seed, across requests and restarts).
    proc = _start(source, "second", log, "--no-cache")
    deadline = time.monotonic() + 600
    while len(_calls(log)) <= tests and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    victim = _calls(log)[-1]["pid"]
    os.kill(victim, signal.SIGKILL)
    code, out = _finish(proc)
    assert code == 0, out
    run = json.loads((source / ".promptci" / "runs" / "second" / "run.json").read_text())
    evals = [n for n in run["nodes"] if n["task"] == "eval"]
    retried = [n for n in evals if n["attempts"] > 1]
    assert retried, f"no eval branch was retried: {evals}"
    first_attempt = (Path(retried[0]["dir"]) / "attempt-1" / "stdout.txt").read_text()
    assert NETWORK_ERROR.search(first_attempt), first_attempt  # the lost connection, reported as such
    assert all(n["status"] == "Succeeded" for n in evals)
    second_calls = _calls(log)[tests:]
    assert len({c["pid"] for c in second_calls}) == 2  # the killed server and its restart
    assert _outputs(_results(source, "second")) == _outputs(first)
    _assert_gone(second_calls)

    # 3. Unchanged inputs: served from the eval cache, the model is not called at all.
    before = len(_calls(log))
    code, out = _finish(_start(source, "third", log))
    assert code == 0, out
    assert len(_calls(log)) == before
    third = (source / ".promptci" / "store" / "runs" / "third" / "summary.md").read_text()
    assert third.count("| yes |") == 2
