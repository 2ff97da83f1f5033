"""The push filter decides every realistic payload case the way the issue requires."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from config.pipeline import PromptPipelineConfig
from workflows.webhooks.trigger_filter import FilterError, decide_push, evaluate, push_filter

PAYLOADS = Path(__file__).resolve().parents[1] / "fixtures" / "payloads"
CASES: dict[str, dict[str, Any]] = json.loads((PAYLOADS / "cases.json").read_text())
DIRS = PromptPipelineConfig().artifact_dirs


def load(name: str) -> dict[str, Any]:
    return json.loads((PAYLOADS / f"{name}.json").read_text())


def triggered(payload: dict[str, Any], dirs: dict[str, str] = DIRS, branch: str = "main") -> set[str]:
    return {d.artifact_type for d in decide_push(payload, dirs, branch) if d.triggered}


def test_fixture_table_covers_every_required_case_for_every_host() -> None:
    required = {"normal", "several-commits", "branch-create", "branch-delete", "tag-push", "not-prompts",
                "forced-push"}
    for host in ("github", "gitlab", "gitea"):
        assert required <= {n.split("-", 1)[1] for n in CASES if n.startswith(host + "-")}


@pytest.mark.parametrize("name", sorted(CASES))
def test_prompt_pipeline_fires_exactly_when_expected(name: str) -> None:
    assert ("prompt" in triggered(load(name))) is CASES[name]["prompt"]


@pytest.mark.parametrize("host", ["github", "gitlab", "gitea"])
def test_precise_file_lists_trigger_only_the_touched_type(host: str) -> None:
    for case in ("normal", "several-commits", "branch-create", "forced-push"):
        assert triggered(load(f"{host}-{case}")) == {"prompt"}, case
    for case in ("branch-delete", "tag-push", "not-prompts", "other-branch"):
        assert triggered(load(f"{host}-{case}")) == set(), case


@pytest.mark.parametrize("host", ["github", "gitlab", "gitea"])
def test_untrustworthy_file_lists_trigger_every_type_conservatively(host: str) -> None:
    assert triggered(load(f"{host}-empty-commits")) == set(DIRS)
    assert triggered(load(f"{host}-twenty-commits")) == set(DIRS)
    payload = load(f"{host}-normal")
    del payload["commits"]  # Bitbucket-style: no file lists at all
    assert triggered(payload) == set(DIRS)


def test_removed_file_alone_triggers() -> None:
    payload = load("github-normal")
    payload["commits"][0].update(added=[], modified=[], removed=["prompts/retired.yaml"])
    assert triggered(payload) == {"prompt"}


def test_directory_is_anchored_at_the_start_of_the_path() -> None:
    payload = load("github-normal")
    payload["commits"][0].update(added=["src/prompts/x.yaml", "myprompts/y.yaml", "prompts.yaml"],
                                 modified=[], removed=[])
    assert triggered(payload) == set()


def test_configured_directory_and_branch_are_honoured() -> None:
    payload = load("gitlab-normal")
    dirs = {**DIRS, "prompt": "llm/prompts"}
    assert "prompt" not in triggered(payload, dirs)
    payload["commits"][0]["modified"] = ["llm/prompts/support-reply.yaml"]
    assert "prompt" in triggered(payload, dirs)
    assert triggered(payload, dirs, branch="release") == set()
    payload["ref"] = "refs/heads/release"
    assert "prompt" in triggered(payload, dirs, branch="release")


def test_dot_in_a_directory_matches_only_a_dot() -> None:
    payload = load("github-normal")
    payload["commits"][0].update(added=["promptsXv2/a.yaml"], modified=[], removed=[])
    assert triggered(payload, {"prompt": "prompts.v2"}) == set()
    payload["commits"][0]["added"] = ["prompts.v2/a.yaml"]
    assert triggered(payload, {"prompt": "prompts.v2"}) == {"prompt"}


def test_sha256_repositories_and_deletions() -> None:
    payload = load("gitea-normal")
    payload["after"] = "ab" * 32
    assert triggered(payload) == {"prompt"}
    payload["after"] = "0" * 64
    assert triggered(payload) == set()


def test_reasons_name_why_a_push_was_ignored() -> None:
    (d,) = decide_push(load("github-tag-push"), {"prompt": "prompts"})
    assert d.reason == "push to refs/tags/v1.4.0 is not refs/heads/main"
    (d,) = decide_push(load("github-branch-delete"), {"prompt": "prompts"})
    assert d.reason == "branch main was deleted"
    (d,) = decide_push(load("github-not-prompts"), {"prompt": "prompts"})
    assert d.reason == "no file under prompts/ changed"


@pytest.mark.parametrize("branch", ["main'", "feat branch", "../x", "a{{b}}", ""])
def test_unsafe_branch_names_are_refused(branch: str) -> None:
    with pytest.raises(FilterError, match="branch"):
        push_filter("prompts", branch)


def test_unsafe_directories_are_refused() -> None:
    with pytest.raises(FilterError, match="artifact directory"):
        push_filter("prompts'||true", "main")


def test_file_filter_value_is_anchored_on_the_leading_quote() -> None:
    f = push_filter("prompts/", "main")
    files = next(d for d in f["data"] if d["path"].startswith("[body.commits"))
    assert files["path"] == "[body.commits.#.added,body.commits.#.modified,body.commits.#.removed]"
    assert files["value"] == ['"prompts/']


def test_evaluator_refuses_filters_it_does_not_understand() -> None:
    with pytest.raises(FilterError):
        evaluate({"data": [{"path": "body.x", "type": "bool", "value": ["true"]}]}, {"body": {"x": True}})
    with pytest.raises(FilterError):
        evaluate({"exprs": [{"expr": "a == 'b'", "fields": [{"name": "a", "path": "body.a"}]}]},
                 {"body": {"a": "b"}})
