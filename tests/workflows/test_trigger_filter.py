"""The push rule decides realistic payloads as a user needs; the evaluator refuses what it cannot do exactly.

Agreement with Argo Events itself is measured in test_trigger_corpus.py (the oracle); this
file pins the rule's meaning on the hand-written fixtures and the evaluator's edges.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from config.pipeline import PromptPipelineConfig
from workflows.webhooks.bitbucket import decide_bitbucket_push
from workflows.webhooks.sensor_filter import FilterError, evaluate, go_float_text, go_regex, parse_event
from workflows.webhooks.trigger_filter import COMMIT_CAPS, decide_push, path_prefix_regex, push_filter

PAYLOADS = Path(__file__).resolve().parents[1] / "fixtures" / "payloads"
CASES: dict[str, dict[str, Any]] = json.loads((PAYLOADS / "cases.json").read_text())
DIRS = PromptPipelineConfig().artifact_dirs


def load(name: str) -> dict[str, Any]:
    return json.loads((PAYLOADS / f"{name}.json").read_text())


def triggered(host: str, payload: dict[str, Any] | str, dirs: dict[str, str] = DIRS,
              branch: str = "main") -> set[str]:
    body = payload if isinstance(payload, str) else json.dumps(payload)
    return {d.artifact_type for d in decide_push(host, body.encode(), dirs, branch) if d.triggered}


@pytest.mark.parametrize("name", sorted(CASES))
def test_prompt_pipeline_fires_exactly_when_expected(name: str) -> None:
    host = name.split("-", 1)[0]
    assert ("prompt" in triggered(host, load(name))) is CASES[name]["prompt"]


@pytest.mark.parametrize("host", ["github", "gitlab", "gitea"])
def test_precise_file_lists_trigger_only_the_touched_type(host: str) -> None:
    for case in ("normal", "several-commits", "branch-create", "forced-push"):
        expected = set(DIRS) if (host, case) == ("github", "forced-push") else {"prompt"}
        assert triggered(host, load(f"{host}-{case}")) == expected, case
    for case in ("branch-delete", "tag-push", "not-prompts", "other-branch"):
        assert triggered(host, load(f"{host}-{case}")) == set(), case


@pytest.mark.parametrize("host", ["github", "gitlab", "gitea"])
def test_lists_that_cannot_prove_anything_fire_every_type(host: str) -> None:
    assert triggered(host, load(f"{host}-empty-commits")) == set(DIRS)
    payload = load(f"{host}-not-prompts")
    del payload["commits"]
    assert triggered(host, payload) == set(DIRS)
    payload["commits"] = None
    assert triggered(host, payload) == set(DIRS)
    payload["commits"] = {"0": {"added": ["docs/x.md"]}}
    assert triggered(host, payload) == set(DIRS)


def test_a_list_at_the_hosts_cap_or_short_of_the_total_fires_every_type() -> None:
    gitlab = load("gitlab-not-prompts")
    assert triggered("gitlab", gitlab) == set()
    gitlab["total_commits_count"] = 40
    assert triggered("gitlab", gitlab) == set(DIRS)
    gitea = load("gitea-not-prompts")
    gitea["commits"] = gitea["commits"] * COMMIT_CAPS["gitea"]
    gitea["total_commits"] = COMMIT_CAPS["gitea"]
    assert triggered("gitea", gitea) == set(DIRS)
    gitea["commits"], gitea["total_commits"] = gitea["commits"][:4], 4
    assert triggered("gitea", gitea) == set()


def test_reasons_say_why() -> None:
    (d,) = decide_push("github", json.dumps(load("github-tag-push")).encode(), {"prompt": "prompts"})
    assert d.reason == "push to refs/tags/v1.4.0 is not refs/heads/main"
    (d,) = decide_push("github", json.dumps(load("github-branch-delete")).encode(), {"prompt": "prompts"})
    assert d.reason == "branch main was deleted"
    (d,) = decide_push("github", json.dumps(load("github-not-prompts")).encode(), {"prompt": "prompts"})
    assert d.reason == "no file under prompts/ changed"
    (d,) = decide_push("gitlab", json.dumps(load("gitlab-empty-commits")).encode(), {"prompt": "prompts"})
    assert (d.triggered, d.listed) == (True, False) and "plan decides from git diff" in d.reason
    (d,) = decide_push("gitlab", json.dumps(load("gitlab-normal")).encode(), {"prompt": "prompts"})
    assert (d.triggered, d.listed, d.reason) == (True, True, "files under prompts/ changed")


def test_oversized_payloads_skip_the_lists_but_keep_the_ref_rule() -> None:
    body = json.dumps(load("github-not-prompts")).encode()
    decisions = decide_push("github", body, DIRS, lists_usable=False)
    assert all(d.triggered and not d.listed and "size cap" in d.reason for d in decisions)
    tag = json.dumps(load("github-tag-push")).encode()
    assert not any(d.triggered for d in decide_push("github", tag, DIRS, lists_usable=False))


def test_configured_directory_and_branch_are_honoured() -> None:
    payload = load("gitlab-normal")
    dirs = {**DIRS, "prompt": "llm/prompts"}
    assert "prompt" not in triggered("gitlab", payload, dirs)
    payload["commits"][0]["modified"] = ["llm/prompts/support-reply.yaml"]
    assert "prompt" in triggered("gitlab", payload, dirs)
    assert triggered("gitlab", payload, dirs, branch="release") == set()
    payload["ref"] = "refs/heads/release"
    assert "prompt" in triggered("gitlab", payload, dirs, branch="release")


def test_dot_in_a_directory_matches_only_a_dot() -> None:
    payload = load("github-normal")
    payload["commits"][0].update(added=["promptsXv2/a.yaml"], modified=[], removed=[])
    assert triggered("github", payload, {"prompt": "prompts.v2"}) == set()
    payload["commits"][0]["added"] = ["prompts.v2/a.yaml"]
    assert triggered("github", payload, {"prompt": "prompts.v2"}) == {"prompt"}


def test_escaped_paths_fire_and_quotes_in_paths_do_not() -> None:
    raw = json.dumps(load("gitea-normal")).replace('"prompts/support-reply.yaml"', '"prompts\\/support-reply.yaml"')
    assert '\\/' in raw and triggered("gitea", raw) == {"prompt"}
    payload = load("gitea-normal")
    payload["commits"][0]["modified"] = ['docs/"prompts/x.yaml', 'a\\"prompts/b']
    assert triggered("gitea", payload) == set()


@pytest.mark.parametrize("branch", ["main'", "feat branch", "../x", "a{{b}}", "", "x/"])
def test_unsafe_branch_names_are_refused(branch: str) -> None:
    with pytest.raises(FilterError, match="branch"):
        push_filter("prompts", branch)


def test_unsafe_directories_and_unknown_hosts_are_refused() -> None:
    with pytest.raises(FilterError, match="artifact directory"):
        push_filter("prompts'||true", "main")
    with pytest.raises(FilterError, match="bitbucket"):
        push_filter("prompts", "main", "bitbucket")


def test_path_regex_matches_element_starts_only() -> None:
    rx = go_regex(path_prefix_regex("prompts"))
    assert rx.search('[["prompts/a.yaml"]]') and rx.search('[["x","\\u0070rompts\\u002Fa"]]')
    assert not rx.search('[{"prompts/a.yaml":1}]')  # an object key is not a listed path
    assert not rx.search('[["docs/x\\"prompts/a"]]') and not rx.search('[["src/prompts/a"]]')


def test_go_regex_dollar_means_end_of_text_as_in_go() -> None:
    assert go_regex("^refs/heads/main$").search("refs/heads/main")
    assert not go_regex("^refs/heads/main$").search("refs/heads/main\n")
    for pattern in ("a$b", "\\z", "(?i)x", "[[:alpha:]]"):
        with pytest.raises(FilterError):
            go_regex(pattern)


def test_github_numbers_are_printed_as_go_prints_float64() -> None:
    assert [go_float_text(t) for t in ("3", "3.0", "2e1", "-0", "1e21", "1.5e-7", "123456789012345678901")] == \
        ["3", "3", "20", "-0", "1e+21", "1.5e-7", "123456789012345680000"]
    assert parse_event("github", b'{"n": 3.0}')["body"]["n"] == "3"
    assert parse_event("gitlab", b'{"n": 3.0}')["body"]["n"] == "3.0"


def test_duplicate_keys_are_read_as_each_event_source_reads_them() -> None:
    body = b'{"ref": "refs/heads/main", "ref": "refs/heads/x"}'
    assert parse_event("github", body)["body"]["ref"] == "refs/heads/x"  # Go map: last wins
    assert parse_event("gitlab", body)["body"]["ref"] == "refs/heads/main"  # gjson on raw bytes: first wins


def test_evaluator_refuses_filters_it_does_not_implement() -> None:
    event = {"body": {"x": True, "a": "b"}}
    for bad in ({"data": [{"path": "body.x", "type": "bool", "value": ["true"]}]},
                {"exprs": [{"expr": "a == 'b'", "fields": [{"name": "a", "path": "body.a"}]}]},
                {"data": [{"path": "body.x|@this", "type": "string", "value": ["t"]}]},
                {"script": "return true"}):
        with pytest.raises(FilterError):
            evaluate(bad, event)


def test_bitbucket_push_fires_every_type_only_for_the_watched_branch() -> None:
    rows = [json.loads(line) for line in (PAYLOADS / "bitbucket-corpus.jsonl").read_text().splitlines()]
    normal = next(r for r in rows if r["case"] == "normal")["body"].encode()
    assert {d.artifact_type for d in decide_bitbucket_push(normal, DIRS) if d.triggered} == set(DIRS)
    assert not any(d.triggered for d in decide_bitbucket_push(normal, DIRS, branch="release"))
