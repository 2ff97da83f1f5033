"""Rollback and status against a real bare GitOps remote."""

from __future__ import annotations

from pathlib import Path

import pytest

from steps.gitops.env_status import environment_status
from steps.gitops.rollback import RollbackError, rollback_artifact
from tests.steps.promote_helpers import (
    commit_count,
    git,
    live_content,
    make_config,
    promote,
    remote_of,
    run_for,
    store_of,
    write_prompt,
)


@pytest.fixture
def setup(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Promote a@1.0.0, a@1.1.0, a@1.2.0 and b@1.0.0 to dev; return (tmp, config)."""
    src = tmp_path / "src"
    config = make_config(tmp_path, chain=["dev", "prod"])
    for i, (aid, version) in enumerate([("a", "1.0.0"), ("a", "1.1.0"), ("b", "1.0.0"), ("a", "1.2.0")]):
        write_prompt(src, aid, version)
        report = promote(src, config, run_for(src, aid, store_of(config), run_id=f"r{i}"), "dev")
        assert report.ok, report.render()
    return tmp_path, config


def test_default_rollback_restores_previous_content_by_new_commit(setup) -> None:  # type: ignore[no-untyped-def]
    tmp, config = setup
    before = commit_count(config)
    old_history = git(remote_of(config), "rev-list", "main").split()
    b_before = live_content(config, "dev", "b")

    result = rollback_artifact("a", env="dev", config=config, repo_root=tmp / "src")

    assert (result.from_version, result.to_version) == ("1.2.0", "1.1.0")
    assert "version: 1.1.0" in live_content(config, "dev", "a")
    assert commit_count(config) == before + 1
    # A new commit on top: the old history is intact (never rewritten).
    assert git(remote_of(config), "rev-list", "main").split()[1:] == old_history
    subject = git(remote_of(config), "log", "-1", "--format=%s%n%b", "main")
    assert subject.startswith("rollback(dev): a 1.1.0 sha256:")
    assert "Rolled-Back-From: 1.2.0 sha256:" in subject
    assert live_content(config, "dev", "b") == b_before  # nothing else touched
    status = environment_status(config, tmp / "src").as_dict()
    assert status["artifacts"]["a"]["dev"]["version"] == "1.1.0"
    assert status["artifacts"]["a"]["prod"] is None
    assert "rolled back a in dev: 1.2.0" in result.render()


def test_rollback_to_version_and_to_commit(setup) -> None:  # type: ignore[no-untyped-def]
    tmp, config = setup
    assert rollback_artifact("a", env="dev", config=config, repo_root=tmp / "src", to="1.0.0").to_version == "1.0.0"
    assert "version: 1.0.0" in live_content(config, "dev", "a")
    first_a = git(remote_of(config), "log", "--format=%H", "--reverse", "main", "--",
                  "environments/dev/promptci-prompt-a.yaml").split()[2]  # the 1.2.0 promotion
    result = rollback_artifact("a", env="dev", config=config, repo_root=tmp / "src", to=first_a[:10])
    assert result.to_version == "1.2.0"
    assert "version: 1.2.0" in live_content(config, "dev", "a")


def test_rollback_to_live_version_makes_no_commit(setup) -> None:  # type: ignore[no-untyped-def]
    tmp, config = setup
    before = commit_count(config)
    result = rollback_artifact("a", env="dev", config=config, repo_root=tmp / "src", to="1.2.0")
    assert result.commit is None and commit_count(config) == before
    assert "already live" in result.render()


def test_rollback_errors_are_clear(setup) -> None:  # type: ignore[no-untyped-def]
    tmp, config = setup
    with pytest.raises(RollbackError, match=r"never held version or commit '9\.9\.9'; known: 1\.2\.0"):
        rollback_artifact("a", env="dev", config=config, repo_root=tmp / "src", to="9.9.9")
    with pytest.raises(RollbackError, match="nope is not live in dev"):
        rollback_artifact("nope", env="dev", config=config, repo_root=tmp / "src")
    with pytest.raises(RollbackError, match="b has no earlier content"):
        rollback_artifact("b", env="dev", config=config, repo_root=tmp / "src")
    with pytest.raises(RollbackError, match="unknown environment 'qa'"):
        rollback_artifact("a", env="qa", config=config, repo_root=tmp / "src")


def test_status_of_missing_local_repo_is_empty_and_creates_nothing(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    status = environment_status(config, tmp_path)
    assert status.artifacts == {} and not remote_of(config).exists()
