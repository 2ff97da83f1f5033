"""Sensor ≡ receiver, measured: every corpus body through Argo Events' own filter code and through ours.

The oracle (``../shared/tools/sensor-filter-oracle``) is argo-events v1.9.11's
``pkg/sensors/dependencies/filter.go`` (``Filter``/``filterExpr``/``filterData``) over gjson
v1.19, fed the event data exactly as the v1.9.11 github/gitlab/webhook EventSources build it.
It reads the Sensor *as ``dump`` writes it* (the YAML file), so a change to the manifest
that the Python side does not share fails here. In CI (``CI=true``) a missing oracle fails
the test; elsewhere it skips.

The test also writes nothing but checks docs/triggers.md: its host x case table must be the
one these results produce (``PROMPTCI_WRITE_DOCS=1`` rewrites it).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from config.pipeline import PromptPipelineConfig
from workflows.events import write_event_manifests
from workflows.webhooks.bitbucket import decide_bitbucket_push
from workflows.webhooks.trigger_filter import decide_push

REPO = Path(__file__).resolve().parents[2]
# ../shared beside the clone (CI); PROMPTCI_SHARED points elsewhere (e.g. from a git worktree).
SHARED = Path(os.environ.get("PROMPTCI_SHARED", REPO.parent / "shared"))
ORACLE = SHARED / "tools" / "sensor-filter-oracle" / "sensor-filter-oracle"
CORPUS = REPO / "tests" / "fixtures" / "payloads" / "corpus.jsonl"
BITBUCKET = REPO / "tests" / "fixtures" / "payloads" / "bitbucket-corpus.jsonl"
DOCS = REPO / "docs" / "triggers.md"
DIRS = PromptPipelineConfig().artifact_dirs
ORACLE_HOST = {"github": "github", "gitlab": "gitlab", "gitea": "webhook"}  # Gitea: the generic webhook
TABLE_CASES = ("normal", "truncated", "no file lists", "tag", "delete", "other branch")
START, END = "<!-- corpus-table:start -->", "<!-- corpus-table:end -->"


def load(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def oracle() -> Path:
    if not os.access(ORACLE, os.X_OK):
        if os.environ.get("CI") == "true":
            pytest.fail(f"the Argo Events filter oracle is missing at {ORACLE}; CI must have ../shared")
        pytest.skip(f"Argo Events filter oracle not found at {ORACLE}")
    return ORACLE


@pytest.fixture(scope="module")
def dumped_filters(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], dict[str, Any]]:
    """Return (host, artifact type) -> the dependency's filters, read back from the dumped Sensor YAML."""
    out = tmp_path_factory.mktemp("dump")
    (sensor_file,) = [p for p in write_event_manifests(out) if p.name.startswith("sensor-")]
    sensor = yaml.safe_load(sensor_file.read_text())
    return {tuple(d["name"].split("-", 1)): d["filters"] for d in sensor["spec"]["dependencies"]}  # type: ignore[misc]


def run_oracle(oracle: Path, cases: list[dict[str, Any]]) -> dict[str, bool]:
    """Return case id -> whether Argo Events' filter code lets the event through."""
    stdin = "".join(json.dumps(c) + "\n" for c in cases)
    proc = subprocess.run([str(oracle)], input=stdin, capture_output=True, text=True, timeout=300, check=True)
    results = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(results) == len(cases), proc.stderr
    return {r["id"]: r["pass"] for r in results}


@pytest.fixture(scope="module")
def decisions(oracle: Path, dumped_filters: dict[tuple[str, str], dict[str, Any]]) -> list[dict[str, Any]]:
    """Return per corpus body: the types the Sensor fires, the types the receiver fires, and ``expect``."""
    corpus = load(CORPUS)
    cases = [{"id": f"{row['id']}|{atype}", "host": ORACLE_HOST[row["host"]],
              "filter": dumped_filters[(row["host"], atype)], "body": row["body"]}
             for row in corpus for atype in DIRS]
    sensor = run_oracle(oracle, cases)
    out = []
    for row in corpus:
        python = decide_push(row["host"], row["body"].encode(), DIRS)
        out.append({**row, "sensor": sorted(t for t in DIRS if sensor[f"{row['id']}|{t}"]),
                    "receiver": sorted(d.artifact_type for d in python if d.triggered)})
    return out


def expected_types(expect: Any) -> list[str]:
    return sorted(DIRS) if expect == "all" else list(expect)


def test_corpus_is_large_and_covers_what_the_issue_lists() -> None:
    corpus = load(CORPUS)
    assert len(corpus) >= 300
    assert {r["host"] for r in corpus} == {"github", "gitlab", "gitea"}
    cases = {r["case"] for r in corpus}
    for host in ("github", "gitlab", "gitea"):
        assert {r["case"] for r in corpus if r["host"] == host} >= set(TABLE_CASES)
    for needle in ("near miss", "escaped", "quote", "commits missing", "commits null", "empty commit list",
                   "truncated", "list at the cap"):
        assert any(needle in c for c in cases), needle
    for d in DIRS.values():
        assert any(f"({d})" in c for c in cases), d


def test_sensor_and_receiver_decide_every_body_identically(decisions: list[dict[str, Any]]) -> None:
    disagree = [(d["id"], d["case"], d["sensor"], d["receiver"]) for d in decisions if d["sensor"] != d["receiver"]]
    assert disagree == [], f"{len(disagree)} of {len(decisions)} bodies decided differently"


def test_every_body_fires_what_a_user_expects(decisions: list[dict[str, Any]]) -> None:
    wrong = [(d["id"], d["case"], d["sensor"], d["expect"]) for d in decisions
             if d["sensor"] != expected_types(d["expect"])]
    assert wrong == []


def _cell(types: list[str], *, all_types: list[str], receiver: bool = False) -> str:
    if not types:
        return "no"
    if types == all_types:
        return "fires; `git diff` picks the types" if receiver else "fires (all types; plan decides)"
    return "fires (" + ", ".join(types) + ")"


def table(decisions: list[dict[str, Any]]) -> str:
    """Return the markdown host x case table from the corpus results (and the Bitbucket receiver cases)."""
    all_types = sorted(DIRS)
    lines = ["| host | case | Sensor (cluster) | receiver (`serve`) |", "|---|---|---|---|"]
    for host in ("github", "gitlab", "gitea"):
        for case in TABLE_CASES:
            (row,) = [d for d in decisions if d["host"] == host and d["case"] == case]
            lines.append(f"| {host} | {case} | {_cell(row['sensor'], all_types=all_types)} | "
                         f"{_cell(row['receiver'], all_types=all_types, receiver=True)} |")
    for row in bitbucket_rows():
        lines.append(f"| bitbucket | {row['case']} | not deployed (no verifiable EventSource) | "
                     f"{_cell(row['receiver'], all_types=all_types, receiver=True)} |")
    return "\n".join(lines)


def bitbucket_rows(cases: tuple[str, ...] = TABLE_CASES) -> Iterator[dict[str, Any]]:
    """Yield the Bitbucket Cloud corpus rows of ``cases`` with the receiver's decision (no Sensor exists)."""
    for row in load(BITBUCKET):
        if row["case"] in cases:
            fired = decide_bitbucket_push(row["body"].encode(), DIRS)
            yield {**row, "receiver": sorted(d.artifact_type for d in fired if d.triggered)}


def test_bitbucket_pushes_fire_every_type_or_nothing() -> None:
    rows = list(bitbucket_rows(tuple(r["case"] for r in load(BITBUCKET))))
    assert len(rows) >= len(TABLE_CASES)
    assert [(r["case"], r["receiver"]) for r in rows] == [(r["case"], expected_types(r["expect"])) for r in rows]


def test_docs_table_is_generated_from_these_results(decisions: list[dict[str, Any]]) -> None:
    text = DOCS.read_text()
    assert START in text and END in text, f"{DOCS} lost its {START} … {END} markers"
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    fresh = f"{head}{START}\n{table(decisions)}\n{END}{tail}"
    if os.environ.get("PROMPTCI_WRITE_DOCS") == "1":
        DOCS.write_text(fresh)
    assert text == fresh, "docs/triggers.md's table is stale: rerun with PROMPTCI_WRITE_DOCS=1"


# ---------------------------------------------------------------- seeded random bodies

_PIECES = ["prompts/", "guardrails/", "rag-configs/", "model-configs/", "docs/", '"', "\\", '\\"', "/", "\u2028",
           "<", "&", "ü", "prompts", ".yaml", " ", "\n", "\\u0070", "[", "]", ",", "{", "}"]


def _random_body(rnd: random.Random, host: str) -> str:
    """Return a push body with adversarial paths, odd types and totals, sometimes ``\\/``-escaped."""
    sha = lambda: "".join(rnd.choice("0123456789abcdef") for _ in range(40))  # noqa: E731
    path = lambda: "".join(rnd.choice(_PIECES) for _ in range(rnd.randint(1, 5)))  # noqa: E731
    lists = lambda: ([path() for _ in range(rnd.randint(0, 3))] if rnd.random() < 0.6  # noqa: E731
                     else rnd.choice([None, "prompts/a", 3, {"a": "prompts/x"}, [["prompts/y"]], True, []]))
    commits: Any = rnd.choice([None, "x", 5, {"a": 1}]) if rnd.random() < 0.1 else [
        {"id": sha(), **{k: lists() for k in ("added", "modified", "removed") if rnd.random() < 0.9}}
        for _ in range(rnd.choice([0, 1, 2, 3, 4, 5, 6, 19, 20, 21]))]
    body: dict[str, Any] = {"ref": rnd.choice(["refs/heads/main"] * 12 + ["refs/heads/main\n", "refs/tags/v1", 5]),
                            "before": rnd.choice([sha(), "0" * 40, "zz"]),
                            "after": rnd.choice([sha()] * 10 + ["0" * 40, sha().upper(), 7])}
    if commits is not None or rnd.random() < 0.5:
        body["commits"] = commits
    n = len(commits) if isinstance(commits, list) else 0
    if host != "github" and rnd.random() < 0.8:
        total = "total_commits_count" if host == "gitlab" else "total_commits"
        body[total] = rnd.choice([n, n, n + 1, str(n), float(n)])
    if host == "github" and rnd.random() < 0.3:
        body["forced"] = rnd.choice([True, False, "true", 1])
    text = json.dumps(body, ensure_ascii=rnd.random() < 0.5, indent=rnd.choice([None, 2]))
    return text.replace("/", "\\/") if rnd.random() < 0.3 else text


def test_seeded_random_bodies_are_decided_identically(oracle: Path,
                                                      dumped_filters: dict[tuple[str, str], dict[str, Any]]) -> None:
    rnd = random.Random(20261129)
    bodies = [(host, _random_body(rnd, host)) for host in rnd.choices(["github", "gitlab", "gitea"], k=600)]
    sensor = run_oracle(oracle, [{"id": f"{i}|{t}", "host": ORACLE_HOST[h], "filter": dumped_filters[(h, t)], "body": b}
                                 for i, (h, b) in enumerate(bodies) for t in DIRS])
    fired = disagree = 0
    for i, (host, body) in enumerate(bodies):
        python = sorted(d.artifact_type for d in decide_push(host, body.encode(), DIRS) if d.triggered)
        argo = sorted(t for t in DIRS if sensor[f"{i}|{t}"])
        fired += bool(argo)
        disagree += python != argo
    assert disagree == 0 and fired > 100  # the bodies exercise the file rules, not only the ref check
