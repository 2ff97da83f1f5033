"""run_branch end to end with REAL promptfoo (the pinned npm install) and the recorded provider."""

from __future__ import annotations

import os
import shlex
import stat
import sys
from pathlib import Path

import pytest

from config.pipeline import PromptPipelineConfig
from steps import promptfoo
from steps.contracts import BranchResult, EvalItem
from steps.eval import run_branch
from steps.eval_results import EvalResult, RunOutcome, TestOutcome, make_test_id
from steps.records import EvalRecord, put_signed
from steps.signing import signing_key
from steps.stores.store import LocalStore, baseline_key, run_key
from tests.steps.evalkit import NAMES, config, make_repo, read_json, record

pytestmark = pytest.mark.slow
GOOD = "Hello {name}, nice to meet you!"


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    monkeypatch.delenv("PROMPTCI_PROVIDER", raising=False)
    monkeypatch.delenv("PROMPTCI_RECORD", raising=False)
    monkeypatch.delenv("PROMPTCI_RECORDINGS_DIR", raising=False)
    monkeypatch.delenv("PROMPTCI_PROMPTFOO_CMD", raising=False)
    monkeypatch.setenv("PROMPTCI_CALL_LOG", str(tmp_path / "calls.log"))
    return {"repo": tmp_path / "repo", "store": tmp_path / "store", "work": tmp_path / "work",
            "calls": tmp_path / "calls.log"}


def _run(env: dict[str, Path], item: EvalItem, cfg: PromptPipelineConfig, run_id: str = "r1",
         no_cache: bool = False, target_env: str | None = None):
    return run_branch(item, repo_root=env["repo"], run_id=run_id, target_env=target_env, config=cfg,
                      store=LocalStore(env["store"]), work_dir=env["work"] / run_id, no_cache=no_cache)


def _calls(env: dict[str, Path]) -> int:
    return len(env["calls"].read_text().splitlines()) if env["calls"].exists() else 0


def _baseline(item: EvalItem, passes: dict[str, list[bool]]) -> EvalResult:
    tests = [TestOutcome(index=i, test_id=make_test_id(f"greets {n}", {"name": n}), description=f"greets {n}",
                         vars={"name": n}, runs=[RunOutcome(repeat=r, passed=p, score=float(p),
                                                            output=GOOD.format(name=n),
                                                            named_scores={"personal": float(p)})
                                                 for r, p in enumerate(runs)])
             for i, (n, runs) in enumerate(passes.items())]
    return EvalResult(artifact_id=item.artifact_id, dataset=item.dataset, content_hash="sha256:old",
                      model="gpt-4o-mini", provider="recorded", promptfoo_version="0.121.20",
                      repeats=len(next(iter(passes.values()))), tests=tests)


def _put_baseline(env, item: EvalItem, where: str, result: EvalResult) -> None:  # type: ignore[no-untyped-def]
    """Store ``result`` as ``where``'s baseline the way promote does: the signed eval record."""
    branch = BranchResult(**item.model_dump(), status="passed")
    put_signed(LocalStore(env["store"]), baseline_key(where, item.artifact_id, item.dataset),
               EvalRecord(run_id="promoted", branch=branch, result=result), signing_key(env["repo"], create=True))


def test_passing_branch_writes_reports_and_an_unchanged_rerun_calls_no_provider(env):
    item = make_repo(env["repo"])
    for n in NAMES:
        record(env["repo"], n, GOOD.format(name=n))
    first = _run(env, item, config())
    assert first.status == "passed", first.reasons
    assert (first.pass_rate, first.tests_total, first.tests_passed, first.cached) == (1.0, 3, 3, False)
    assert first.metric_scores == {"personal": 1.0}
    assert _calls(env) == 3
    store = LocalStore(env["store"])
    for name in ("result.json", "results.json", "report.html", "junit.xml", "diff.md", "diff.html"):
        assert run_key("r1", "greeter", "golden", name) in first.report_keys
        assert store.get_bytes(run_key("r1", "greeter", "golden", name))
    assert b"<testsuite" in (store.get_bytes(run_key("r1", "greeter", "golden", "junit.xml")) or b"")
    result = read_json(store.get_bytes(run_key("r1", "greeter", "golden", "result.json")))
    assert [t["description"] for t in result["tests"]] == [f"greets {n}" for n in NAMES]  # sorted by testIdx
    assert result["tests"][0]["runs"][0]["output"] == "Hello Ada, nice to meet you!"
    assert result["token_usage"]["total"] == 75

    again = _run(env, item, config(), run_id="r2")
    assert again.status == "passed" and again.cached
    assert _calls(env) == 3  # zero provider calls for the unchanged re-run
    assert store.get_bytes(run_key("r2", "greeter", "golden", "diff.md"))

    forced = _run(env, item, config(), run_id="r3", no_cache=True)
    assert forced.status == "passed" and not forced.cached
    assert _calls(env) == 6


def test_below_threshold_fails_with_the_failing_test_named(env):
    item = make_repo(env["repo"])
    record(env["repo"], "Ada", GOOD.format(name="Ada"))
    record(env["repo"], "Grace", "Hi there!")
    record(env["repo"], "Linus", GOOD.format(name="Linus"))
    res = _run(env, item, config(min_pass_rate=0.9))
    assert res.status == "failed"
    assert not res.retryable  # a quality failure is final: never retried
    assert res.tests_passed == 2 and res.pass_rate == pytest.approx(2 / 3)
    assert any("below the minimum 90.0%" in r for r in res.reasons)
    diff = (LocalStore(env["store"]).get_bytes(run_key("r1", "greeter", "golden", "diff.md")) or b"").decode()
    assert "greets Grace: 0/1 runs passed" in diff and "Hi there!" in diff


def test_regression_against_the_promoted_baseline_fails_only_when_a_baseline_exists(env):
    item = make_repo(env["repo"])
    record(env["repo"], "Ada", GOOD.format(name="Ada"))
    record(env["repo"], "Grace", "Hi there!")
    record(env["repo"], "Linus", GOOD.format(name="Linus"))
    cfg = config(min_pass_rate=0.5, max_regression=0.1)
    new = _run(env, item, cfg, target_env="staging")
    assert new.status == "passed" and new.baseline_pass_rate is None  # no baseline: absolute thresholds

    _put_baseline(env, item, "staging", _baseline(item, {n: [True] for n in NAMES}))
    res = _run(env, item, cfg, run_id="r2", target_env="staging")
    assert res.cached  # the measurement is reused, the verdict is not
    assert res.status == "failed"
    assert res.baseline_pass_rate == 1.0
    assert any("regressed 33.3% against the baseline" in r for r in res.reasons)
    diff = (LocalStore(env["store"]).get_bytes(run_key("r2", "greeter", "golden", "diff.md")) or b"").decode()
    assert "## Newly failing" in diff and "greets Grace: 1/1 → 0/1" in diff


def test_flaky_test_is_judged_k_of_n_per_test(env):
    item = make_repo(env["repo"])
    record(env["repo"], "Ada", GOOD.format(name="Ada"))
    record(env["repo"], "Grace", GOOD.format(name="Grace"), "Hi!", GOOD.format(name="Grace"))  # 2 of 3
    record(env["repo"], "Linus", GOOD.format(name="Linus"))
    _put_baseline(env, item, "dev", _baseline(item, {n: [True, True, True] for n in NAMES}))
    strict = _run(env, item, config(repeats=3, k_of_n=3, max_regression=0.5, min_pass_rate=0.9))
    assert strict.status == "failed"
    assert any("2/3 tests passed, each needing 3 of 3 runs" in r for r in strict.reasons)
    diff = (LocalStore(env["store"]).get_bytes(run_key("r1", "greeter", "golden", "diff.md")) or b"").decode()
    assert "greets Grace: 3/3 → 2/3 runs passed" in diff
    assert _calls(env) == 9  # every repeat reached the provider: none served from one cache entry

    lenient = _run(env, item, config(repeats=3, k_of_n=2, max_regression=0.5, min_pass_rate=0.9), run_id="r2")
    assert lenient.status == "passed", lenient.reasons
    assert lenient.pass_rate == 1.0


def test_provider_error_and_missing_recording_are_errors_naming_the_test(env):
    item = make_repo(env["repo"])
    record(env["repo"], "Ada", GOOD.format(name="Ada"))
    record(env["repo"], "Grace", {"error": "400 invalid_request_error: context length exceeded"})
    res = _run(env, item, config(min_pass_rate=0.0))  # even with no quality bar, errors block
    assert res.status == "error"
    text = "\n".join(res.reasons)
    assert "test 'greets Grace'" in text and "400 invalid_request_error: context length exceeded" in text
    assert "test 'greets Linus'" in text and "no recording for model gpt-4o-mini" in text


def _wrapper(tmp: Path, body: str) -> str:
    script = tmp / "promptfoo-wrapper.sh"
    real = shlex.join(promptfoo.default_command())
    script.write_text("#!/bin/sh\n" + body.replace("REAL", real) + "\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(script)


@pytest.mark.parametrize("body, expected", [
    # a real promptfoo crash: its config is corrupted before it starts
    ('printf "{" > "$3"\nexec REAL "$@"', "promptfoo exited 1: promptfoo wrote no results.json"),
    # promptfoo runs, but results.json is not JSON
    ('REAL "$@"\nprintf "not json" > results.json\nexit 100', "results.json is not JSON"),
    # promptfoo runs and matches no test
    ('exec REAL "$@" --filter-pattern "no-such-test"', "zero tests"),
])
def test_tool_faults_fail_closed(env, tmp_path, monkeypatch, body, expected):
    item = make_repo(env["repo"])
    for n in NAMES:
        record(env["repo"], n, GOOD.format(name=n))
    monkeypatch.setenv("PROMPTCI_PROMPTFOO_CMD", _wrapper(tmp_path, body))
    res = _run(env, item, config(min_pass_rate=0.0))
    assert res.status == "error"
    assert any(expected in r for r in res.reasons), res.reasons


def test_timeout_kills_the_whole_process_group(env, tmp_path, monkeypatch):
    item = make_repo(env["repo"])
    for n in NAMES:
        record(env["repo"], n, GOOD.format(name=n))
    pidfile = tmp_path / "pid"
    monkeypatch.setenv("PROMPTCI_PROMPTFOO_CMD", _wrapper(tmp_path, f'echo $$ > {pidfile}\nexec REAL "$@"'))
    monkeypatch.setenv("PROMPTCI_RECORDED_DELAY_MS", "60000")
    res = _run(env, item, config(timeout_seconds=3))
    assert res.status == "error"
    assert any("timed out after 3s" in r for r in res.reasons)
    assert res.retryable  # a hang is transient: the stage exits 75 and Argo retries it
    with pytest.raises(ProcessLookupError):  # nothing left in promptfoo's process group
        os.killpg(int(pidfile.read_text()), 0)


def test_golden_data_rules(env, tmp_path):
    item = make_repo(env["repo"])
    none = item.model_copy(update={"dataset": "none"})  # the old "no golden data" path is gone
    res = _run(env, none, config())
    assert res.status == "error" and "no dataset named 'none'" in res.reasons[0]


def test_model_graded_assertions_are_rejected_with_the_recorded_provider(env):
    item = make_repo(env["repo"], extra_assert=[{"type": "llm-rubric", "value": "is friendly"}])
    res = _run(env, item, config())
    assert res.status == "error"
    assert "model-graded assertions (llm-rubric)" in res.reasons[0]
    assert _calls(env) == 0


def test_unknown_provider_setting_is_an_error(env, monkeypatch):
    item = make_repo(env["repo"])
    monkeypatch.setenv("PROMPTCI_PROVIDER", "recordd")
    res = _run(env, item, config())
    assert res.status == "error" and "PROMPTCI_PROVIDER='recordd'" in res.reasons[0]


def test_live_provider_without_a_key_is_an_error_not_a_leak(env, monkeypatch):
    item = make_repo(env["repo"])
    monkeypatch.setenv("PROMPTCI_PROVIDER", "live")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    res = _run(env, item, config())
    assert res.status == "error" and "needs OPENAI_API_KEY in the environment" in res.reasons[0]


if sys.platform == "win32":  # pragma: no cover
    pytest.skip("process groups are POSIX", allow_module_level=True)


@pytest.fixture
def s3(s3_endpoint: str) -> str:
    return s3_endpoint


def test_branch_writes_everything_to_s3(env, s3):
    from steps.stores.s3store import S3Store

    item = make_repo(env["repo"])
    for n in NAMES:
        record(env["repo"], n, GOOD.format(name=n))
    store = S3Store("promptci", "ci/", endpoint_url=s3, region="us-east-1")
    res = run_branch(item, repo_root=env["repo"], run_id="s3run", target_env=None, config=config(),
                     store=store, work_dir=env["work"], no_cache=False)
    assert res.status == "passed", res.reasons
    assert store.list_keys("runs/s3run/") == sorted(
        run_key("s3run", "greeter", "golden", n)
        for n in ("result.json", "results.json", "report.html", "junit.xml", "diff.md", "diff.html", "record.json"))


def test_an_unreachable_store_makes_the_branch_an_error(env, monkeypatch):
    import socket

    from steps.stores.s3store import S3Store

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    item = make_repo(env["repo"])
    store = S3Store("promptci", endpoint_url=f"http://127.0.0.1:{port}", region="us-east-1", attempts=2)
    res = run_branch(item, repo_root=env["repo"], run_id="r", target_env=None, config=config(), store=store,
                     work_dir=env["work"])
    assert res.status == "error" and "artifact store (s3://promptci/" in res.reasons[0]
    assert res.retryable  # the eval step exits 75, which retryStrategy retries
