"""The warm promptfoo (steps/promptfoo_warm.py): the same results as cold, killed like cold, never left behind.

Real promptfoo (the pinned install). What a user would notice: an eval that ran on the run's warm
promptfoo gives the same per-item results, reports and cache as one run cold; a timeout still kills it;
a broker that is gone, or a shim that declines the job, only means the eval runs cold; no promptfoo,
Node or provider process outlives the job's client or the run.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from config.pipeline import load_pipeline_config
from steps import promptfoo, promptfoo_warm
from steps.contracts import Shard
from steps.eval import run_shard
from steps.promptfoo import PreparedTest, build_config, promptfoo_env, run_promptfoo, write_json
from steps.stores.store import LocalStore, run_key
from tests.steps.evalkit import read_json
from tests.steps.test_eval_batch import REPO, SAMPLE_TYPES, _norm_junit, _norm_md, _sample_items, _stable
from tests.steps.test_promptfoo_run import _config

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _pinned(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("PROMPTCI_PROMPTFOO_CMD", "PROMPTCI_PROMPTFOO_HOME", "PROMPTCI_PROMPTFOO_BROKER",
                "PROMPTCI_PROVIDER", "PROMPTCI_RECORD", "PROMPTCI_RECORDINGS_DIR"):
        monkeypatch.delenv(var, raising=False)


def _broker(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Return warm_for_run's context over this process's env, the address exported as a run exports it."""
    env = {k: v for k, v in os.environ.items() if k != promptfoo_warm.BROKER_ENV}

    class _Ctx:
        def __enter__(self) -> promptfoo_warm.WarmBroker:
            self.cm = promptfoo_warm.warm_for_run(env)
            broker = self.cm.__enter__()
            assert broker is not None
            monkeypatch.setenv(promptfoo_warm.BROKER_ENV, broker.address)
            return broker

        def __exit__(self, *exc: object) -> None:
            monkeypatch.delenv(promptfoo_warm.BROKER_ENV, raising=False)
            self.cm.__exit__(None, None, None)

    return _Ctx()


def _gone(pid: int) -> bool:
    """Return whether nothing of process group ``pid`` still runs (a zombie waiting to be reaped has ended)."""
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return True
    for entry in Path("/proc").iterdir():
        try:
            state, _ppid, pgrp = (entry / "stat").read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, ValueError):
            continue
        if int(pgrp) == pid and state != "Z":
            return False
    return True


def _slow_config(work_dir: Path, seconds: int = 120) -> Path:
    """A config whose provider is a script sleeping ``seconds`` (promptfoo's ``exec:`` provider)."""
    script = work_dir / "slow.sh"
    script.write_text(f"#!/bin/sh\nsleep {seconds}\necho late\n")
    script.chmod(0o755)
    path = work_dir / "promptfooconfig.json"
    write_json(path, build_config(description="slow", provider={"id": f"exec: {script}"}, grader={"id": "echo"},
                                  tests=[PreparedTest(0, "slow", {}, [{"role": "user", "content": "hi"}], [])]))
    return path


def test_warm_and_cold_give_the_same_per_item_results_on_every_sample_type(tmp_path, monkeypatch):
    """Each sample type as one shard, cold and then on a fresh broker's warm promptfoo: the same files."""
    cfg = load_pipeline_config()
    cold_store, warm_store = LocalStore(tmp_path / "cold"), LocalStore(tmp_path / "warm")
    checked = 0
    for artifact_type, folder in SAMPLE_TYPES:
        items = _sample_items(artifact_type, folder)
        shard = Shard(index=0, items=items, tests=0)
        cold = run_shard(shard, repo_root=REPO, run_id="r", target_env="dev", config=cfg, store=cold_store,
                         work_dir=tmp_path / "w1" / folder, no_cache=True)
        with _broker(monkeypatch) as broker:
            warm = run_shard(shard, repo_root=REPO, run_id="r", target_env="dev", config=cfg, store=warm_store,
                             work_dir=tmp_path / "w2" / folder, no_cache=True)
            assert broker.served == 1, folder  # it really ran warm (a declined job would run cold)
        for c, w in zip(cold, warm, strict=True):
            assert c.status == "passed", c.reasons
            assert c == w
            for name in ("result.json", "results.json"):
                c_doc, w_doc = (read_json(st.get_bytes(run_key("r", c.artifact_id, c.dataset, name)))
                                for st in (cold_store, warm_store))
                assert _stable(c_doc) == _stable(w_doc), (c.artifact_id, name)
            key = run_key("r", c.artifact_id, c.dataset, "junit.xml")
            assert _norm_junit(cold_store.get_bytes(key)) == _norm_junit(warm_store.get_bytes(key))
            key = run_key("r", c.artifact_id, c.dataset, "diff.md")
            assert _norm_md(cold_store.get_bytes(key)) == _norm_md(warm_store.get_bytes(key))
            checked += 1
        # promptfoo's stderr says the same (its stdout names the eval id and timings)
        c_err, w_err = ((tmp_path / w / folder).rglob("promptfoo.stderr.log") for w in ("w1", "w2"))
        strip = (lambda t: "\n".join(line.split(") ", 1)[-1] for line in t.splitlines()))  # noqa: E731
        assert [strip(p.read_text()) for p in sorted(c_err)] == [strip(p.read_text()) for p in sorted(w_err)]
    cache = sorted(p.relative_to(tmp_path / "cold") for p in (tmp_path / "cold" / "cache").rglob("*") if p.is_file())
    assert cache and cache == sorted(p.relative_to(tmp_path / "warm")
                                     for p in (tmp_path / "warm" / "cache").rglob("*") if p.is_file())
    assert checked >= 13


def test_a_timeout_kills_the_warm_job_and_its_children(tmp_path, monkeypatch):
    work = tmp_path / "reports"
    work.mkdir()
    with _broker(monkeypatch) as broker:
        shim = broker._shims[0].proc
        proc = run_promptfoo(_slow_config(work), work, jobs=1, repeat=1, no_cache=True, timeout_s=30,
                             env=promptfoo_env(work))
        assert broker.served == 1
        assert proc.timed_out and proc.duration_s < 60
        assert proc.returncode == -signal.SIGKILL  # as Popen reports a killed child
        assert _gone(shim.pid)
        assert not [p for p in Path("/proc").iterdir() if p.name.isdigit() and _cmdline(p).endswith("slow.sh")]


def _cmdline(proc_dir: Path) -> str:
    try:
        return (proc_dir / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def test_a_dead_broker_or_a_declined_job_runs_cold_with_the_same_result(tmp_path, monkeypatch):
    expected = run_promptfoo(_config(_mk(tmp_path / "plain")), tmp_path / "plain", jobs=2, repeat=1, no_cache=True,
                             timeout_s=300, env=promptfoo_env(tmp_path / "plain"))
    assert expected.returncode == 0

    dead = tmp_path / "dead.sock"  # a broker that went away: its socket file, nobody listening
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(dead))
    s.close()
    monkeypatch.setenv(promptfoo_warm.BROKER_ENV, str(dead))
    work = _mk(tmp_path / "dead")
    proc = run_promptfoo(_config(work), work, jobs=2, repeat=1, no_cache=True, timeout_s=300, env=promptfoo_env(work))
    assert proc.returncode == 0 and _rows(work) == _rows(tmp_path / "plain")

    with _broker(monkeypatch) as broker:  # the shim declines: LOG_LEVEL is read when promptfoo loads
        work = _mk(tmp_path / "declined")
        proc = run_promptfoo(_config(work), work, jobs=2, repeat=1, no_cache=True, timeout_s=300,
                             env={**promptfoo_env(work), "LOG_LEVEL": "warn"})
        assert broker.served == 0 and _gone(broker._shims[0].proc.pid)
        assert proc.returncode == 0 and _rows(work) == _rows(tmp_path / "plain")
        work = _mk(tmp_path / "none-left")  # the one shim is used up: cold again
        proc = run_promptfoo(_config(work), work, jobs=2, repeat=1, no_cache=True, timeout_s=300,
                             env=promptfoo_env(work))
        assert broker.served == 0 and proc.returncode == 0 and _rows(work) == _rows(tmp_path / "plain")


def _mk(path: Path) -> Path:
    path.mkdir(parents=True)
    return path


def _rows(work: Path) -> list[tuple[str, bool, str]]:
    rows = json.loads((work / "results.json").read_text())["results"]["results"]
    return sorted((r["testCase"]["description"], r["success"], r["response"]["output"]) for r in rows)


CLIENT = """
import sys
from pathlib import Path
from types import SimpleNamespace
from steps.promptfoo import promptfoo_env, run_promptfoo
work = Path(sys.argv[1])
run_promptfoo(work / "promptfooconfig.json", work, jobs=1, repeat=1, no_cache=True, timeout_s=300,
              env=promptfoo_env(work))
"""


def test_a_client_that_dies_gets_its_warm_job_killed_and_nothing_outlives_the_run(tmp_path, monkeypatch):
    work = tmp_path / "reports"
    work.mkdir()
    _slow_config(work)
    with _broker(monkeypatch) as broker:
        shim = broker._shims[0].proc
        root = broker.root
        client = subprocess.Popen([sys.executable, "-c", CLIENT, str(work)], cwd=REPO,
                                  env={**os.environ, "PYTHONPATH": str(REPO)})
        deadline = time.monotonic() + 120
        while broker.served == 0 and time.monotonic() < deadline and client.poll() is None:
            time.sleep(0.1)
        assert broker.served == 1
        client.send_signal(signal.SIGKILL)  # like the runner killing the step's group
        client.wait()
        deadline = time.monotonic() + 10
        while not _gone(shim.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _gone(shim.pid)
        assert not [p for p in Path("/proc").iterdir() if p.name.isdigit() and _cmdline(p).endswith("slow.sh")]
    assert not root.exists()

    with _broker(monkeypatch) as broker:  # a shim nobody asked for
        spare = broker._shims[0].proc
    assert _gone(spare.pid) and not broker.root.exists()

    with _broker(monkeypatch) as broker:  # the run skipped its evals (all cached): the spare goes at once
        spare = broker._shims[0].proc
        broker.on_event(SimpleNamespace(task="validate", status="Succeeded"))
        assert spare.poll() is None
        broker.on_event(SimpleNamespace(task="eval", status="Skipped"))
        assert _gone(spare.pid)
        other = tmp_path / "after"
        other.mkdir()
        proc = run_promptfoo(_config(other), other, jobs=2, repeat=1, no_cache=True, timeout_s=300,
                             env=promptfoo_env(other))
        assert proc.returncode == 0 and broker.served == 0  # cold, as without a broker
    assert promptfoo.state_dir(work).exists() is False


def _shims_of_this_process() -> list[str]:
    """Return the command lines of the warm shims this test process started (node is setpriv's exec: our child)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == os.getpid() and promptfoo_warm.SHIM.name in _cmdline(entry):
            found.append(_cmdline(entry))
    return found


def test_settings_read_after_the_shim_started_stop_it_or_move_it(tmp_path, monkeypatch):
    """The shim starts before the settings are read (a small run's critical path). Settings that rule it out
    kill it before the block runs, and never export a broker; another install's home restarts it there."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("PROMPTCI_")}
    for setting in ({"PROMPTCI_PROMPTFOO_BROKER": "off"}, {"PROMPTCI_PROMPTFOO_CMD": "false"}):
        env = {**base, **setting}
        with promptfoo_warm.warm_for_run(env) as broker:
            assert broker is None
            assert env.get(promptfoo_warm.BROKER_ENV) == setting.get(promptfoo_warm.BROKER_ENV)  # untouched
            assert _shims_of_this_process() == []
        assert env == {**base, **setting}

    home = tmp_path / "other-install"  # the same pinned install, seen from another home
    home.mkdir()
    for name in ("node_modules", promptfoo.NODE_DIR):
        (home / name).symlink_to(promptfoo.REPO_ROOT / name)
    env = {**base, "PROMPTCI_PROMPTFOO_HOME": str(home)}
    with promptfoo_warm.warm_for_run(env) as broker:
        assert broker is not None and env[promptfoo_warm.BROKER_ENV] == broker.address
        assert broker.entry == str(promptfoo.entry_script(home))
        assert [cmd for cmd in _shims_of_this_process() if str(home) not in cmd] == []  # the first one is gone
        assert len(_shims_of_this_process()) == 1
    assert _shims_of_this_process() == []

    monkeypatch.setattr(promptfoo, "REPO_ROOT", tmp_path / "no-install-here")  # only the named home has one
    with promptfoo_warm.warm_for_run(env) as broker:
        assert broker is not None and broker.entry == str(promptfoo.entry_script(home))


def test_the_warm_promptfoos_cpu_is_counted_for_the_run(tmp_path, monkeypatch):
    """The shim is the runner's child, not the eval step's, so no step's CPU-s holds it: the broker hands it
    over once (``promptci run`` puts it in the run's totals), for a job it ran and for a spare it killed."""
    work = tmp_path / "reports"
    work.mkdir()
    with _broker(monkeypatch) as broker:
        assert broker.take_cpu_seconds() is None  # nothing ended yet
        proc = run_promptfoo(_config(work), work, jobs=2, repeat=1, no_cache=True, timeout_s=300,
                             env=promptfoo_env(work))
        assert proc.returncode == 0 and broker.served == 1
        used = broker.take_cpu_seconds()
        assert used is not None and used > 0.2  # promptfoo's load and its job, not a rounding error
        assert broker.take_cpu_seconds() is None  # handed over once
    with _broker(monkeypatch) as broker:
        broker.release()  # the run's evals were skipped: the spare is killed, what its load took noted
        assert broker.take_cpu_seconds() is not None
