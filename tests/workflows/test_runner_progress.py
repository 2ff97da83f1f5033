"""What a user sees of a local run: shard progress lines, rates, an ETA, the final table; the default parallelism."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from tests.workflows.pipeline_fixtures import pipeline_template
from tests.workflows.shard_fixtures import burn_template, sharded_template
from workflows.runner.progress import ProgressView, print_summary
from workflows.runner.records import NodeRecord, RunResult
from workflows.runner.scheduler import run_template
from workflows.runner.tally import outcomes, shard_counts, throughput

PROJECT = Path(__file__).resolve().parents[2]


def _run(tmp_path: Path, manifest: dict[str, Any], env: dict[str, str] | None = None, **kw: Any) -> RunResult:
    return run_template(manifest, {}, repo_root=tmp_path, runs_dir=tmp_path / "runs",
                        env={**os.environ, **(env or {})}, **kw)


def _summary(result: RunResult) -> str:
    buf = io.StringIO()
    print_summary(result, Console(file=buf, width=200, force_terminal=False))
    return buf.getvalue()


def _row(summary: str, name: str) -> list[str]:
    """Return the cells of the final table's row for node ``name``."""
    line = next(line for line in summary.splitlines() if re.search(rf"\b{re.escape(name)}\s", line))
    return [c.strip() for c in line.strip().strip("│┃|").split("│")]


def test_plain_lines_of_a_sharded_run_show_shards_rates_eta_and_the_final_totals(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = sharded_template("2:6,3:9,1:3", cached=4, seconds=0.3, parallelism=1)
    result = _run(tmp_path, manifest, env={"FIXTURE_FAIL_ITEMS": "1.2", "FIXTURE_ERROR_ITEMS": "0.0"},
                  progress=True)
    assert result.ok, result.message  # the fixture's shards report failed items without failing
    lines = capsys.readouterr().err.splitlines()
    text = "\n".join(lines)
    # The fan-out is announced once with its totals, before the first shard starts.
    assert "eval: 3 shards, 6 items, 18 tests" in text
    assert "eval(1): Running (shard 1: 3 items, 9 tests)" in text
    done = [line for line in lines if re.match(r"\s*eval\(\d\): Succeeded", line)]
    assert [re.search(r"shards (\d)/3", line).group(1) for line in done] == ["1", "2", "3"]  # type: ignore[union-attr]
    first, last = done[0], done[-1]
    # After the first shard (2 items, 6 tests of 18) the ETA is a number; at the end it is 0.
    assert re.search(r"items 2/6 \(\d+\.\d+/s\) · tests 6/18 \(\d+\.\d+/s\) · ETA \d+s", first), first
    assert last.endswith("ETA 0s") and "items 6/6" in last and "tests 18/18" in last
    # One line per state change, never a flood: start + end per node, the announcement, the run's start.
    assert len(lines) <= 2 * len(result.nodes) + 2, text

    summary = _summary(result)
    row = _row(summary, "eval(1)")
    assert (row[1], row[3], row[4]) == ("Succeeded", "3", "9")
    assert _row(summary, "validate")[3:5] == ["", ""]  # not a shard: no items or tests
    assert re.search(r"shards: 3/3 done · items 6 · tests 18 · \d+\.\d+ items/s · \d+\.\d+ tests/s", summary)
    assert "items: 4 passed, 1 failed, 1 errored, 0 cached; 4 settled in plan without a run" in summary
    cpu = re.search(r"wall (\d+\.\d)s · CPU (\d+\.\d)s", summary)
    assert cpu and float(cpu.group(2)) > 0, summary


def test_shards_without_per_item_verdicts_are_counted_by_their_exit_code(tmp_path: Path) -> None:
    result = _run(tmp_path, sharded_template("2:4,3:6", seconds=0.1, verdicts=False),
                  env={"FIXTURE_FAIL_ITEMS": "1.0"})
    assert not result.ok and result.tasks["eval"] == "Failed"
    summary = _summary(result)
    assert "items: 2 passed, 0 failed, 0 errored, 0 cached; 3 in failed shards (their logs say which failed)\n" \
        in summary, summary


def test_the_eta_is_the_tests_left_over_the_observed_tests_per_second() -> None:
    def shard(i: int, items: int, tests: int, status: str, started: float, finished: float | None) -> NodeRecord:
        return NodeRecord(name=f"eval({i})", task="eval", template="eval", status=status, started=started,
                          finished=finished, inputs={"shard": json.dumps({"index": i, "items": items,
                                                                          "tests": tests})})

    waiting = NodeRecord(name="eval(2)", task="eval", template="eval",
                         inputs={"shard": '{"index":2,"items":5,"tests":20}'})
    nodes = [shard(0, 2, 10, "Succeeded", 100.0, 110.0), shard(1, 3, 30, "Running", 100.0, None), waiting]
    before = throughput([nodes[1], waiting], now=105.0)
    assert before and before.eta_seconds is None and "ETA ?" in before.line()  # nothing observed yet
    now = throughput(nodes, now=120.0)
    assert now is not None
    # 10 tests done in the 20 s since the first shard started: 0.5 tests/s; 50 tests left: 100 s.
    assert (now.tests_per_second, now.items_per_second, now.eta_seconds) == (0.5, 0.1, 100.0)
    assert now.line() == "shards 1/3 · items 2/10 (0.10/s) · tests 10/60 (0.50/s) · ETA 1m40s"


def test_a_node_without_a_shard_input_shows_as_before(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    assert shard_counts(NodeRecord(name="eval(0)", task="eval", template="e", inputs={"item": "{}"})) is None
    for bad in ("not json", "[1]", '{"index": 0, "items": 0, "tests": 3}', '{"index": 0, "items": 1}'):
        assert shard_counts(NodeRecord(name="x", task="x", template="x", inputs={"shard": bad})) is None
    result = _run(tmp_path, pipeline_template(branches=2), progress=True)
    assert result.ok, result.message
    err = capsys.readouterr().err
    assert "shards" not in err and "ETA" not in err
    assert "  eval(1): Succeeded in " in err and "  lint: Running" in err
    summary = _summary(result)
    assert "shards" not in summary
    assert _row(summary, "eval(0)")[3:5] == ["", ""]
    # Per-item branches that report a verdict are still counted.
    assert "items: 2 passed, 0 failed, 0 errored, 0 cached" in summary
    # In a log (no terminal, no COLUMNS) the table is not squeezed into 80 columns: nothing is cut short.
    monkeypatch.delenv("COLUMNS", raising=False)
    print_summary(result)
    log = capsys.readouterr().out
    assert "…" not in log and re.search(r"eval\(1\)\s*│\s*Succeeded\s*│", log), log


def test_the_live_view_on_a_terminal_draws_the_shards_bar() -> None:
    buf = io.StringIO()
    view = ProgressView("r", Console(file=buf, force_terminal=True, width=160))
    view.start()
    try:
        assert view.live is not None  # a terminal gets the live view, not lines
        for i, status in enumerate(["Succeeded", "Running"]):
            view.update(NodeRecord(name=f"eval({i})", task="eval", template="e", status=status, started=1.0,
                                   finished=2.0 if status == "Succeeded" else None,
                                   inputs={"shard": json.dumps({"index": i, "items": 4, "tests": 8})}))
    finally:
        view.stop()
    assert "Running (shard" not in buf.getvalue()
    out = io.StringIO()
    Console(file=out, width=160, force_terminal=False).print(view._render())
    assert "shards 1/2 · items 4/8" in out.getvalue() and "tests 8/16" in out.getvalue()


def test_outcomes_count_cached_results_and_ignore_other_outputs() -> None:
    nodes = [NodeRecord(name="a", task="a", template="a", outputs={"result": json.dumps(
                 {"status": "passed", "cached": True})}),
             NodeRecord(name="b", task="b", template="b", outputs={"result": "free text"}),
             NodeRecord(name="c", task="c", template="c", outputs={"result": json.dumps(
                 [{"status": "failed"}, {"status": "weird"}])})]
    got = outcomes(nodes)
    assert (got.passed, got.failed, got.errored, got.cached, got.settled_in_plan) == (1, 1, 0, 1, None)
    # A fully cached re-run: validate plans no shard, so eval is Skipped and every item was settled in plan.
    validate = NodeRecord(name="validate", task="validate", template="v", outputs={"shards": "[]", "count": "3"})
    assert outcomes([validate]).settled_in_plan == 3
    validate.outputs["shards"] = '[{"index":0,"items":2,"tests":4}]'
    assert outcomes([validate]).settled_in_plan == 1
    validate.outputs["count"] = "0"  # all live already: plan does not say how many it settled
    assert outcomes([validate]).settled_in_plan is None


def test_shards_that_never_started_are_in_the_final_table(tmp_path: Path) -> None:
    from workflows.runner.control import request_stop

    def stop_at_first_shard(node: NodeRecord) -> None:
        if node.name == "eval(0)" and node.status == "Running":
            request_stop(tmp_path / "runs" / "stopped")

    result = _run(tmp_path, sharded_template("1:1,1:1,1:1", seconds=30.0, parallelism=1), run_id="stopped",
                  on_event=stop_at_first_shard)
    assert not result.ok
    summary = _summary(result)
    assert _row(summary, "eval(2)")[1] == "Pending"
    assert "shards: 1/3 done" in summary


def test_the_default_parallelism_is_the_cores_this_process_may_use(tmp_path: Path) -> None:
    cores = len(os.sched_getaffinity(0))
    probe = "from workflows.runner.scheduler import default_parallelism as d; print(d())"
    assert subprocess.run([sys.executable, "-c", probe], cwd=PROJECT, capture_output=True, text=True,
                          check=True).stdout.strip() == str(cores)
    one_cpu = subprocess.run([sys.executable, "-c", probe], cwd=PROJECT, capture_output=True, text=True,
                             check=True, preexec_fn=lambda: os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}))
    assert one_cpu.stdout.strip() == "1"
    # A run without --parallelism runs as many shards at once as there are cores, no more.
    manifest = sharded_template(",".join(["1:1"] * (cores + 1)), seconds=1.0)
    result = _run(tmp_path, manifest)
    assert result.ok, result.message
    shards = [n for n in result.nodes if n.task == "eval"]
    most = max(sum(1 for o in shards if o.started <= n.started < o.finished) for n in shards)  # type: ignore[operator]
    assert most == cores


def test_a_steps_cpu_seconds_include_the_children_it_waited_for(tmp_path: Path) -> None:
    result = _run(tmp_path, burn_template(0.5))
    assert result.ok, result.message
    node = result.nodes[0]
    own = float((Path(node.dir) / "stdout.txt").read_text().split()[-1])  # the step's own process_time()
    assert node.cpu_seconds is not None and node.cpu_seconds >= own + 0.5


def test_the_cpu_total_adds_what_ran_outside_the_steps_and_names_it(tmp_path: Path) -> None:
    """The fork server's imports and the warm promptfoo's CPU are in no step's CPU-s; the total adds them and
    says how much each was, and a part that rounds to nothing is not listed as "0.0s"."""
    from workflows.runner.progress import totals_lines
    from workflows.runner.records import RunResult

    node = NodeRecord(name="eval(0)", task="eval", template="e", status="Succeeded", started=1.0, finished=2.0,
                      cpu_seconds=0.5)
    run = RunResult(run_id="r", run_dir=tmp_path, status="Succeeded", message="", started=0.0, finished=3.0,
                    nodes=[node], tasks={"eval": "Succeeded"}, shared_cpu_seconds=0.8, promptfoo_cpu_seconds=2.2)
    assert totals_lines(run)[-1] == ("wall 3.0s · CPU 3.5s (of which 0.8s the fork server's imports (shared by "
                                     "the steps), 2.2s the warm promptfoo an eval ran on)")
    run.shared_cpu_seconds, run.promptfoo_cpu_seconds = 0.01, None
    assert totals_lines(run)[-1] == "wall 3.0s · CPU 0.5s"
