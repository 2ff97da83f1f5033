"""The shipped samples: every recorded sample passes end to end; the sample change fails its gate."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from config.pipeline import load_pipeline_config
from steps.artifact_files import discover, load_artifact
from steps.contracts import EvalItem
from steps.eval import run_branch
from steps.reports import write_run_summary
from steps.stores.store import LocalStore, run_key

REPO = Path(__file__).resolve().parents[2]
# discover() leaves out what is not an artifact, such as the Dotprompt partial prompts/_house-style.prompt.
SAMPLES = sorted(p.relative_to(REPO).as_posix() for p in discover(REPO / "prompts"))


def _items(path: str) -> list[EvalItem]:
    af = load_artifact(REPO / path, REPO)
    return [EvalItem(artifact_id=af.artifact_id, artifact_type=af.artifact_type.value, path=path, dataset=d,
                     content_hash=af.content_hash) for d in af.datasets]


@pytest.mark.slow
def test_samples_pass_with_their_recordings_and_the_failing_change_fails(tmp_path, monkeypatch):
    for var in ("PROMPTCI_PROVIDER", "PROMPTCI_RECORD", "PROMPTCI_RECORDINGS_DIR", "PROMPTCI_PROMPTFOO_CMD"):
        monkeypatch.delenv(var, raising=False)
    cfg = load_pipeline_config()
    store = LocalStore(tmp_path / "store")
    items = [i for p in SAMPLES for i in _items(p)]
    assert len(items) >= 6

    def run(args: tuple[str, EvalItem]):
        run_id, item = args
        return run_branch(item, repo_root=REPO, run_id=run_id, target_env="dev", config=cfg, store=store,
                          work_dir=tmp_path / "work" / run_id / item.artifact_id, no_cache=True)

    changes = _items("examples/failing/ticket-classifier.yaml") + _items("examples/failing-local/order-lookup.yaml")
    jobs = [("samples", i) for i in items] + [("change", i) for i in changes]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(run, jobs))
    samples, change = results[:len(items)], results[len(items):]
    assert {(r.artifact_id, r.status) for r in samples} == {(i.artifact_id, "passed") for i in items}, \
        [r.reasons for r in samples if r.status != "passed"]
    for r in samples:
        assert store.get_bytes(run_key("samples", r.artifact_id, r.dataset, "diff.md"))
    assert [r.status for r in change] == ["failed", "failed"]
    assert "pass rate 33.3% is below the minimum 80.0%" in change[0].reasons[0]
    # the local model's regression, as it answered: the shortened prompt gets no JSON back
    assert change[1].tests_passed == 0 and change[1].authored_runs == 0
    by_id = {r.artifact_id: r for r in samples}
    assert by_id["order-lookup"].authored_runs == 0 and by_id["contact-extractor"].authored_runs == 0
    assert by_id["summarizer"].authored_runs == by_id["summarizer"].runs_total == 2
    summary = write_run_summary(results, store, "samples")
    authored = sum(r.authored_runs for r in results)
    assert f"Answers: {authored} of {sum(r.runs_total for r in results)} result(s) came from authored" in summary
    assert "2 of" in summary and (tmp_path / "store" / "runs" / "samples" / "summary.md").exists()
