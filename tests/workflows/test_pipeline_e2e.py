"""The embedded default end to end: the sample prompts through lint ∥ validate → eval → promote.

Real everything: the compiled WorkflowTemplate run by the local runner, promptfoo on the
recorded responses, the local artifact store and a bare GitOps repo created on first run.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from workflows.submit import cli

REPO = Path(__file__).resolve().parents[2]


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """Return a git checkout holding the sample prompts, their golden sets and recordings."""
    src = tmp_path / "src"
    for name in ("prompts", "model-configs", "evals", "recordings", "examples"):
        shutil.copytree(REPO / name, src / name)
    git(src, "init", "-q", "-b", "main")
    git(src, "-c", "user.name=dev", "-c", "user.email=dev@example.test", "add", ".")
    git(src, "-c", "user.name=dev", "-c", "user.email=dev@example.test", "commit", "-qm", "samples")
    return src


@pytest.mark.slow
def test_samples_promote_then_a_failing_change_is_blocked(source: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PUSHGATEWAY_URL", raising=False)
    runner = CliRunner()

    first = runner.invoke(cli, ["run", "prompt", "--repo-root", str(source), "--run-id", "first"])
    assert first.exit_code == 0, first.output
    gitops = source / ".promptci" / "gitops.git"
    kustomization = yaml.safe_load(git(gitops, "show", "main:environments/dev/kustomization.yaml"))
    assert len(kustomization["resources"]) == 10  # 6 prompts + Prompty + Dotprompt + 2 local-model samples
    head = git(gitops, "rev-parse", "main")
    assert head[:12] in first.output and "promoted      ticket-classifier" in first.output
    store = source / ".promptci" / "store"
    first_summary = (store / "runs" / "first" / "summary.md").read_text()
    assert "All eval branches passed." in first_summary and first_summary.count("✅ passed") == 10
    # the two local-model samples replay recordings a model gave; the others are hand-written answers
    assert "| `order-lookup` | prompt | golden | 100.0% | — | 3/3 | accuracy 1.00, format 1.00 | no | 0/3 |" \
        in first_summary
    assert "| no | 2/2 |" in first_summary.split("`summarizer`")[1].splitlines()[0]

    # Unchanged inputs are served from the eval cache; --no-cache re-runs them.
    one = ["run", "prompt", "--repo-root", str(source), "-p", "artifact-path=prompts/summarizer.json"]
    assert runner.invoke(cli, [*one, "--run-id", "cached"]).exit_code == 0
    row = "| `summarizer` | prompt | golden | 100.0% | 100.0% | 2/2 | coverage 1.00, format 1.00, safety 1.00 |"
    assert f"{row} yes | 2/2 |" in (store / "runs" / "cached" / "summary.md").read_text()
    assert runner.invoke(cli, [*one, "--run-id", "fresh", "--no-cache"]).exit_code == 0
    assert f"{row} no | 2/2 |" in (store / "runs" / "fresh" / "summary.md").read_text()

    # A change that breaks ticket-classifier: only it is re-planned (base..head), its gate fails,
    # promote never runs, and the exit handler's summary says why.
    shutil.copy(source / "examples" / "failing" / "ticket-classifier.yaml",
                source / "prompts" / "ticket-classifier.yaml")
    git(source, "-c", "user.name=dev", "-c", "user.email=dev@example.test", "commit", "-qam", "shorter prompt")
    second = runner.invoke(cli, ["run", "prompt", "--repo-root", str(source), "--run-id", "second",
                                 "-p", "base-revision=HEAD~1", "-p", "git-revision=HEAD"])
    assert second.exit_code == 1, second.output
    assert git(gitops, "rev-parse", "main") == head  # nothing promoted
    summary = (store / "runs" / "second" / "summary.md").read_text()
    assert "`ticket-classifier` | prompt | golden | 33.3%" in summary
    assert "promotion is blocked" in summary
    assert "support-reply" not in summary  # unchanged artifacts were not re-evaluated
    assert (store / "runs" / "second" / "ticket-classifier" / "golden" / "diff.md").is_file()
