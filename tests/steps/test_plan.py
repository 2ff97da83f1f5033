"""plan(): changed artifacts × datasets, from git, for the eval fan-out."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from config.artifacts import ArtifactType
from steps.plan import NoGoldenData, PlanError, plan

REPO = Path(__file__).resolve().parents[2]


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True,
                          text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    for name in ("prompts", "evals", "model-configs"):
        shutil.copytree(REPO / name, tmp_path / name)
    _git(tmp_path, "init", "-q", "-b", "main")
    _git(tmp_path, "-c", "user.email=t@t", "-c", "user.name=t", "add", ".")
    _git(tmp_path, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "-m", "base")
    return tmp_path


def _commit(root: Path, msg: str) -> str:
    _git(root, "add", "-A")
    _git(root, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "-m", msg)
    return _git(root, "rev-parse", "HEAD")


def _ids(items: list) -> set[tuple[str, str]]:
    return {(i.artifact_id, i.dataset) for i in items}


def test_without_base_every_artifact_and_dataset_is_planned(repo: Path) -> None:
    items = plan("prompts", ArtifactType.PROMPT, repo_root=repo, git_revision=None, base_revision=None)
    assert ("support-reply", "golden") in _ids(items)
    assert {i.artifact_id for i in items} >= {"support-reply", "summarizer", "sql-generator"}
    assert all(i.content_hash.startswith("sha256:") and i.artifact_type == "prompt" for i in items)
    zeros = plan("prompts", ArtifactType.PROMPT, repo_root=repo, git_revision=None, base_revision="0" * 40)
    assert _ids(zeros) == _ids(items)


def test_only_changed_artifacts_are_planned(repo: Path) -> None:
    base = _git(repo, "rev-parse", "HEAD")
    p = repo / "prompts" / "summarizer.json"
    p.write_text(p.read_text().replace('"description": "', '"description": "Now: ', 1))
    head = _commit(repo, "edit summarizer")
    items = plan("prompts", ArtifactType.PROMPT, repo_root=repo, git_revision=head, base_revision=base)
    assert {i.artifact_id for i in items} == {"summarizer"}
    assert plan("prompts", ArtifactType.PROMPT, repo_root=repo, git_revision=head, base_revision=head) == []


def test_changed_dataset_reruns_its_artifact(repo: Path) -> None:
    base = _git(repo, "rev-parse", "HEAD")
    golden = repo / "evals" / "support-reply" / "golden.yaml"
    golden.write_text(golden.read_text() + "\n# one more comment\n")
    head = _commit(repo, "touch dataset")
    items = plan("prompts", ArtifactType.PROMPT, repo_root=repo, git_revision=head, base_revision=base)
    assert {i.artifact_id for i in items} == {"support-reply"}


def test_uncommitted_and_untracked_changes_count_without_a_revision(repo: Path) -> None:
    base = _git(repo, "rev-parse", "HEAD")
    shutil.copy(repo / "prompts" / "summarizer.json", repo / "prompts" / "summarizer-2.json")
    text = (repo / "prompts" / "summarizer-2.json").read_text()
    (repo / "prompts" / "summarizer-2.json").write_text(text.replace('"id": "summarizer"', '"id": "summarizer-2"'))
    items = plan("prompts", ArtifactType.PROMPT, repo_root=repo, git_revision=None, base_revision=base)
    assert {i.artifact_id for i in items} == {"summarizer-2"}


def test_deleted_artifact_is_not_planned(repo: Path) -> None:
    base = _git(repo, "rev-parse", "HEAD")
    (repo / "prompts" / "summarizer.json").unlink()
    head = _commit(repo, "delete summarizer")
    assert plan("prompts", ArtifactType.PROMPT, repo_root=repo, git_revision=head, base_revision=base) == []


def test_changing_a_model_config_plans_exactly_its_dependents_datasets(repo: Path) -> None:
    base = _git(repo, "rev-parse", "HEAD")
    mc = repo / "model-configs" / "support-default.yaml"
    mc.write_text(mc.read_text().replace("version: 1.0.0", "version: 1.0.1"))
    head = _commit(repo, "bump the config")
    items = plan("model-configs", ArtifactType.MODEL_CONFIG, repo_root=repo, git_revision=head,
                 base_revision=base)
    assert _ids(items) == {("support-default", "support-reply/golden"),
                           ("support-default", "ticket-classifier/golden")}
    # the prompts that use it are re-planned too (their cache key holds the config's hash)
    prompts = plan("prompts", ArtifactType.PROMPT, repo_root=repo, git_revision=head, base_revision=base)
    assert {i.artifact_id for i in prompts} == {"support-reply", "ticket-classifier"}


def test_changing_an_unrelated_prompt_does_not_plan_the_model_config(repo: Path) -> None:
    base = _git(repo, "rev-parse", "HEAD")
    p = repo / "prompts" / "sql-generator.yaml"
    p.write_text(p.read_text().replace("version:", "# edited\nversion:", 1))
    head = _commit(repo, "edit sql-generator")
    assert plan("model-configs", ArtifactType.MODEL_CONFIG, repo_root=repo, git_revision=head,
                base_revision=base) == []


def test_an_artifact_without_golden_data_stops_the_plan(repo: Path) -> None:
    (repo / "model-configs" / "unused.yaml").write_text(
        "kind: model-config\nid: unused\nversion: 1.0.0\nowner: qa\nmodel: gpt-4o\n")
    with pytest.raises(NoGoldenData, match="unused.yaml: no prompt uses it"):
        plan("model-configs", ArtifactType.MODEL_CONFIG, repo_root=repo, git_revision=None, base_revision=None)
    (repo / "guardrails").mkdir()
    (repo / "guardrails" / "g.yaml").write_text(
        "kind: guardrail-policy\nid: g\nversion: 1.0.0\nowner: qa\n"
        "rules: [{id: r, patterns: [x], action: block}]\n")
    with pytest.raises(NoGoldenData, match="g.yaml: it has no golden data"):
        plan("guardrails", ArtifactType.GUARDRAIL_POLICY, repo_root=repo, git_revision=None, base_revision=None)


def test_unknown_revision_and_missing_path_stop_the_plan(repo: Path) -> None:
    with pytest.raises(PlanError, match="git diff"):
        plan("prompts", ArtifactType.PROMPT, repo_root=repo, git_revision="HEAD", base_revision="deadbeef")
    with pytest.raises(FileNotFoundError, match="no-such-dir"):
        plan("no-such-dir", ArtifactType.PROMPT, repo_root=repo, git_revision=None, base_revision=None)
