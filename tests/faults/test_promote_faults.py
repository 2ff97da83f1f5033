"""Fault injection at every point of promote, each followed by a re-run (docs/pipelines.md, "Failures").

For every fault: the exit code of each attempt and how many attempts the template's
retryStrategy makes; the git state (the remote's head and what is live); the store state
(the env baselines); and, after the fault is removed and the step re-run with no manual
step, that the store agrees with git. Each case adds one line to the figures printed at
the end of the session (tests/faults/conftest.py).
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from steps.records import record_key
from tests.faults.conftest import FaultFigures
from tests.faults.harness import World
from tests.steps.promote_helpers import Run

T = 75  # transient: retried
K = "killed"


@dataclass(frozen=True)
class Fault:
    """One row of the failure table: how to inject it, and what the attempts must be."""

    name: str
    kind: str  # "infra" (exit 75 or killed, retried) or "policy" (exit 1, final)
    inject: Callable[[World, Run], Run]
    codes: tuple[int | str, ...]
    promoted_during_fault: bool | None = None  # None: either is fine (the push may or may not land)


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/gitops.git"  # bound, never listening


def _store_down(w: World, r: Run) -> Run:
    w.proxy.go_down()
    return r


def _store_503(w: World, r: Run) -> Run:
    w.proxy.mode = "503"
    return r


def _at(pattern: str, when: str, action: str) -> Callable[[World, Run], Run]:
    def inject(w: World, r: Run) -> Run:
        w.proxy.at(pattern, when, w.proxy.go_down if action == "down" else w.proxy.kill_target)
        return r
    return inject


def _hook(hook: str, action: str) -> Callable[[World, Run], Run]:
    def inject(w: World, r: Run) -> Run:
        w.arm_hook(hook, action)
        return r
    return inject


def _remote_unreachable(w: World, r: Run) -> Run:
    w.write_config(repo_url=_closed_port_url())
    return r


def _forged(w: World, r: Run) -> Run:
    """A hand-written record claiming a pass, without a signature (what `--results` used to allow)."""
    bad = w.run("a", "3.0.0", pass_rate=0.2, status="failed")
    k = record_key(bad.run_id, "a", "golden")
    doc = yaml.safe_load(w.store.get_bytes(k) or b"")
    doc["branch"]["status"], doc["branch"]["pass_rate"] = "passed", 1.0
    del doc["signature"]
    w.store.put_bytes(k, yaml.safe_dump(doc).encode())
    return bad


def _altered(w: World, r: Run) -> Run:
    bad = w.run("a", "3.0.0", pass_rate=0.2, status="failed")
    k = record_key(bad.run_id, "a", "edge")
    w.store.put_bytes(k, (w.store.get_bytes(k) or b"").replace(b'"failed"', b'"passed"'))
    return bad


def _loosened_config(w: World, r: Run) -> Run:
    weak = w.run("a", "3.0.0", pass_rate=0.5)
    (w.src / "config").mkdir(exist_ok=True)
    (w.src / "config/pipeline.yaml").write_text(yaml.safe_dump({"defaults": {"eval": {"min_pass_rate": 0.3}}}))
    return weak


def _future_date(w: World, r: Run) -> Run:
    return w.run("a", "3.0.0", when=4102444800)


def _below_threshold(w: World, r: Run) -> Run:
    return w.run("a", "3.0.0", pass_rate=0.5)


def _missing_branch(w: World, r: Run) -> Run:
    return w.run("a", "3.0.0", skip=("edge",))


def _rerun_after_rollback(w: World, r: Run) -> Run:
    assert w.promote(r)[-1].code == 0  # v2 promoted, then rolled back to v1 by hand (the CLI)
    assert w.rollback("a", "dev").returncode == 0
    return r  # the CI retry of the run that was rolled back


FAULTS = [
    Fault("store unreachable before the push", "infra", _store_down, (T, T, T), False),
    Fault("store answers 503", "infra", _store_503, (T, T, T), False),
    Fault("store down while content records are written (before push)", "infra",
          _at(r"PUT .*/evals/", "before", "down"), (T, T, T), False),
    Fault("store down right after the push", "infra", _hook("post-receive", "store-down"), (T, T, T), True),
    Fault("store down after the first baseline", "infra", _at(r"PUT .*/baselines/", "after", "down"),
          (T, T, T), True),
    Fault("SIGKILL before the push", "infra", _at(r"PUT .*/evals/", "before", "kill"), (K, 0), True),
    Fault("SIGKILL during the push (refs not updated)", "infra", _hook("pre-receive", "kill"), (K, 0), True),
    Fault("SIGKILL right after the push", "infra", _hook("post-receive", "kill"), (K, 0), True),
    Fault("SIGKILL after the first baseline", "infra", _at(r"PUT .*/baselines/", "after", "kill"), (K, 0), True),
    Fault("GitOps remote unreachable", "infra", _remote_unreachable, (T, T, T), False),
    Fault("push declined by the remote", "infra", _hook("pre-receive", "decline"), (T, T, T), False),
    Fault("hand-written passing record (unsigned)", "policy", _forged, (1,), False),
    Fault("altered eval record", "policy", _altered, (1,), False),
    Fault("checkout loosens min_pass_rate", "policy", _loosened_config, (1,), False),
    Fault("committer date in the future", "policy", _future_date, (1,), False),
    Fault("quality gate not met", "policy", _below_threshold, (1,), False),
    Fault("an eval branch left no record", "policy", _missing_branch, (1,), False),
    Fault("CI retry of a rolled-back run", "policy", _rerun_after_rollback, (1,), False),
]


@pytest.fixture
def world(tmp_path: Path, s3_endpoint: str, request: pytest.FixtureRequest) -> Iterator[World]:
    w = World(tmp_path, s3_endpoint, prefix=f"faults/{request.node.name}")
    yield w
    w.proxy.close()


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_fault_then_rerun(world: World, fault: Fault, fault_figures: FaultFigures) -> None:
    w = world
    v1 = w.run("a", "1.0.0")
    assert [a.code for a in w.promote(v1)] == [0]
    assert not w.inconsistencies()
    v2 = w.run("a", "2.0.0")
    candidate = fault.inject(w, v2)
    head, live, baselines = w.head(), w.live("dev")["a"].content_hash, w.baselines()

    attempts = w.promote(candidate)

    codes = tuple(K if a.killed else a.code for a in attempts)
    text = "\n".join(a.output for a in attempts)
    now_live = w.live("dev")["a"].content_hash
    promoted = now_live == candidate.content_hash != live
    # Fail closed: never a success over an inconsistent state; a refusal changes nothing; an
    # infrastructure failure is retried and leaves git either as it was or holding the candidate.
    fail_closed = codes == fault.codes and (
        (attempts[-1].code != 0 or not w.inconsistencies())
        and (fault.kind == "infra" or (w.head() == head and w.baselines() == baselines))
        and now_live in (live, candidate.content_hash)
        and (fault.promoted_during_fault is None or promoted == fault.promoted_during_fault))
    if fault.kind == "infra":
        assert "Traceback" not in text
    w.heal()
    rerun = w.promote(candidate)
    expected_live = candidate.content_hash if fault.kind == "infra" else live
    consistent = (not w.inconsistencies() and w.live("dev")["a"].content_hash == expected_live
                  and rerun[-1].code == (0 if fault.kind == "infra" else 1))
    fault_figures.record(fault.name, fault.kind, codes, fail_closed, consistent)

    assert codes == fault.codes, text
    assert fail_closed, text
    assert consistent, "\n".join([*w.inconsistencies(), *(a.output for a in rerun)])
