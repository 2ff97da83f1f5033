"""promptfoo run as the pipeline runs it: `node <entry>` of the pinned install on Node 22, state outside the reports.

Real promptfoo (the pinned install, `make setup`), its built-in ``echo`` provider: no recording,
no network. What a user would notice: no "Node.js 20 support ended" line in any run's output, a
reports directory without promptfoo.db, and ``$PROMPTCI_PROMPTFOO_CMD`` still taking over.
"""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
import stat
from pathlib import Path

import pytest

from steps import promptfoo
from steps.promptfoo import PreparedTest, build_config, promptfoo_env, run_promptfoo, state_dir, write_json

EOL = re.compile(r"support (has )?ended|end[- ]of[- ]life|\bEOL\b|no longer supported|unsupported node", re.I)
REPORTS = {"promptfooconfig.json", "results.json", "report.html", "results.junit.xml",
           "promptfoo.stdout.log", "promptfoo.stderr.log"}


def _config(work_dir: Path) -> Path:
    tests = [PreparedTest(i, f"greets {n}", {"name": n}, [{"role": "user", "content": f"Say hello to {n}"}],
                          [{"type": "icontains", "value": n}]) for i, n in enumerate(("Ada", "Grace"))]
    path = work_dir / "promptfooconfig.json"
    write_json(path, build_config(description="node22", tests=tests, provider={"id": "echo"},
                                  grader={"id": "echo"}))
    return path


def _run(work_dir: Path) -> promptfoo.ProcessResult:
    work_dir.mkdir(parents=True, exist_ok=True)
    return run_promptfoo(_config(work_dir), work_dir, jobs=2, repeat=1, no_cache=True, timeout_s=300,
                         env=promptfoo_env(work_dir))


@pytest.fixture(autouse=True)
def _pinned(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROMPTCI_PROMPTFOO_CMD", raising=False)
    monkeypatch.delenv("PROMPTCI_PROMPTFOO_HOME", raising=False)


def test_promptfoo_runs_on_node_22_with_no_end_of_life_warning(tmp_path: Path) -> None:
    """`make run` must not print "Node.js 20 support ended" (promptfoo 0.121 on Node 20 did, every run)."""
    proc = _run(tmp_path / "reports")
    assert proc.returncode == 0, proc.stderr_tail
    out = (tmp_path / "reports" / "promptfoo.stdout.log").read_text() + \
        (tmp_path / "reports" / "promptfoo.stderr.log").read_text()
    assert [line for line in out.splitlines() if EOL.search(line)] == []
    rows = json.loads((tmp_path / "reports" / "results.json").read_text())["results"]["results"]
    assert sorted(r["success"] for r in rows) == [True, True]
    node = promptfoo.default_command()[0]
    assert promptfoo._node_problem(node, ">=22.22.0") is None  # the Node that ran it is 22.22+


def test_the_reports_dir_holds_no_promptfoo_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """promptfoo.db (and the rest of its config dir) goes to a state dir outside the reports, removed after;
    and no eval is written into it (``--no-write``: nothing reads it, and writing every result cost ~0.4 s of a
    31-test eval's ~2.5 s, bench/bench_pipeline.py)."""
    listing = tmp_path / "state-listing"
    db_copy = tmp_path / "promptfoo.db"
    wrapper = tmp_path / "wrapper.sh"  # $PROMPTCI_PROMPTFOO_CMD: sees the state while promptfoo's run ends
    real = " ".join(promptfoo.default_command())
    wrapper.write_text(f'#!/bin/sh\n{real} "$@"\nrc=$?\nfind "$PROMPTFOO_CONFIG_DIR" -type f > {listing}\n'
                       f'cp "$PROMPTFOO_CONFIG_DIR/promptfoo.db" {db_copy}\nexit $rc\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PROMPTCI_PROMPTFOO_CMD", str(wrapper))
    reports = tmp_path / "reports"
    proc = _run(reports)
    assert proc.returncode == 0, proc.stderr_tail
    assert {p.name for p in reports.rglob("*")} == REPORTS  # nothing else: no promptfoo.db, no config dir
    written = listing.read_text().split()
    assert any(Path(p).name == "promptfoo.db" for p in written), written  # promptfoo did keep its db...
    assert all(Path(p).is_relative_to(state_dir(reports)) for p in written)  # ...outside the reports
    assert not state_dir(reports).exists()  # and it is gone after the run
    with contextlib.closing(sqlite3.connect(db_copy)) as db:
        assert db.execute("SELECT count(*) FROM evals").fetchone() == (0,)


def test_the_command_is_node_and_the_installed_bin_entry_not_npx() -> None:
    node, entry = promptfoo.default_command()
    manifest = json.loads((promptfoo.promptfoo_home() / "node_modules/promptfoo/package.json").read_text())
    assert Path(entry) == promptfoo.promptfoo_home() / "node_modules/promptfoo" / manifest["bin"]["promptfoo"]
    assert Path(node).name == "node" and "npx" not in " ".join(promptfoo.default_command())


def test_a_too_old_node_is_refused_with_the_fix(tmp_path: Path) -> None:
    pkg = tmp_path / "node_modules" / "promptfoo"
    pkg.mkdir(parents=True)
    (pkg / "package.json").write_text(json.dumps({"version": "9.9.9", "engines": {"node": ">=22.22.0"},
                                                  "bin": {"promptfoo": "dist/entry.js"}}))
    (pkg / "dist").mkdir()
    (pkg / "dist" / "entry.js").write_text("")
    old = tmp_path / ".node" / "bin" / "node"
    old.parent.mkdir(parents=True)
    old.write_text("#!/bin/sh\necho v20.20.2\n")
    old.chmod(0o755)
    with pytest.raises(promptfoo.PromptfooMissing, match=r"is Node v20\.20\.2, promptfoo needs >=22\.22\.0; "
                                                         r"run `make setup`"):
        promptfoo.default_command(tmp_path)
    (pkg / "package.json").write_text(json.dumps({"version": "9.9.9", "bin": {"promptfoo": "dist/gone.js"}}))
    with pytest.raises(promptfoo.PromptfooMissing, match="names no runnable bin.promptfoo"):
        promptfoo.entry_script(tmp_path)


PROVIDER_JS = """
class P {
  id() { return "shape"; }
  async callApi(prompt) {
    if (prompt.includes("Linus")) return { error: "503 upstream unavailable" };
    return { output: "hello " + prompt, tokenUsage: { prompt: 5, completion: 7, total: 12 } };
  }
}
module.exports = P;
"""


def test_results_json_keeps_every_field_the_parser_reads(tmp_path: Path) -> None:
    """A pass, a quality failure and a provider error through real promptfoo: the exit code, the fields
    steps/eval_results.py reads, and the verdicts it derives. A promptfoo upgrade that moves any of
    these fails here (0.123.1 only added keys: response.tokenUsage is now filled out with cached,
    numRequests, completionDetails and assertions, which the parser reduces to prompt/completion/total)."""
    from steps.eval_results import parse_results

    (tmp_path / "shape.js").write_text(PROVIDER_JS)
    reports = tmp_path / "reports"
    reports.mkdir()
    tests = [PreparedTest(i, f"greets {n}", {"name": n}, [{"role": "user", "content": f"Hi {n}"}],
                          [{"type": "icontains", "value": want}])
             for i, (n, want) in enumerate((("Ada", "ada"), ("Grace", "nowhere"), ("Linus", "x")))]
    cfg = reports / "promptfooconfig.json"
    write_json(cfg, build_config(description="shape", tests=tests, provider={"id": f"file://{tmp_path}/shape.js"},
                                 grader={"id": "echo"}))
    proc = run_promptfoo(cfg, reports, jobs=1, repeat=1, no_cache=True, timeout_s=300, env=promptfoo_env(reports))
    assert proc.returncode == 100, proc.stderr_tail  # failures and errors alike: 100 (the verdict is ours)
    rows = sorted(json.loads((reports / "results.json").read_text())["results"]["results"],
                  key=lambda r: r["testIdx"])
    for r in rows:
        assert {"testIdx", "success", "score", "failureReason", "namedScores", "latencyMs", "cost", "response",
                "gradingResult", "testCase"} <= r.keys(), sorted(r)
        assert {"promptci_index", "promptci_vars"} <= r["testCase"]["metadata"].keys()
    assert [r["failureReason"] for r in rows] == [0, 1, 2]  # none, ASSERT, ERROR
    assert {"prompt", "completion", "total"} <= rows[0]["response"]["tokenUsage"].keys()
    assert rows[2]["response"]["error"] == "503 upstream unavailable"
    result = parse_results(reports / "results.json", artifact_id="a", dataset="d", content_hash="h", model="m",
                           provider="shape", promptfoo_version=promptfoo.installed_version(), repeats=1)
    runs = [t.runs[0] for t in result.tests]
    assert [(r.passed, r.error) for r in runs] == [(True, None), (False, None), (False, "503 upstream unavailable")]
    assert "nowhere" in runs[1].reason
    assert (result.token_usage.prompt, result.token_usage.completion, result.token_usage.total) == (10, 14, 24)
