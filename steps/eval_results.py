"""The typed eval result of one branch, parsed from promptfoo's ``results.json``.

``EvalResult`` is also the baseline format: a branch stores it as
``result.json`` and promote copies it to ``baselines/{env}/…``. It keeps every
repeat of every test (not just averages), so a later run can be judged per
test against it (3/3 → 2/3 is visible).
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

SCHEMA_VERSION = 1
ERROR_REASON = 2  # promptfoo's ResultFailureReason.ERROR (1 is ASSERT: a plain quality failure)


class ResultsError(Exception):
    """promptfoo's output cannot be turned into a result (missing, not JSON, wrong shape)."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TokenUsage(_Model):
    prompt: int = 0
    completion: int = 0
    total: int = 0

    def add(self, other: TokenUsage) -> TokenUsage:
        """Return the sum of two usages (usage is summed over runs and tests)."""
        return TokenUsage(prompt=self.prompt + other.prompt, completion=self.completion + other.completion,
                          total=self.total + other.total)


class RunOutcome(_Model):
    """One run (one repeat) of one test."""

    repeat: int
    passed: bool
    score: float
    reason: str = ""
    error: str | None = Field(default=None, description="provider/tool error; a quality failure is not one")
    output: str = ""
    named_scores: dict[str, float] = Field(default_factory=dict)
    latency_ms: float = 0.0
    tokens: TokenUsage = Field(default_factory=TokenUsage)
    cost: float = 0.0
    authored: bool = Field(default=False, description="the answer was written by hand (a recording whose "
                                                      "origin is 'authored'), not given by a model")


class TestOutcome(_Model):
    """All runs of one golden test, in repeat order."""

    __test__: ClassVar[bool] = False  # not a pytest class

    index: int
    test_id: str = Field(description="stable id from description + vars, to match tests across runs")
    description: str
    vars: dict[str, Any] = Field(default_factory=dict)
    runs: list[RunOutcome]

    @property
    def passes(self) -> int:
        """Return how many runs passed."""
        return sum(r.passed for r in self.runs)

    def passed(self, required: int) -> bool:
        """Return True when at least ``required`` runs (k of N) passed."""
        return self.passes >= required

    def failure_reason(self) -> str:
        """Return the first failing run's reason (what a user needs to see first)."""
        for r in self.runs:
            if not r.passed:
                return r.error or r.reason or "failed"
        return ""


class EvalResult(_Model):
    """The measured outcome of one eval branch, independent of thresholds (those are judged in gates)."""

    schema_version: int = SCHEMA_VERSION
    artifact_id: str
    dataset: str
    content_hash: str
    model: str
    provider: str
    promptfoo_version: str
    repeats: int
    tests: list[TestOutcome]
    token_usage: TokenUsage = Field(default_factory=TokenUsage)
    cost: float = 0.0
    latency_ms_avg: float = 0.0
    duration_s: float = 0.0
    judged_against: dict[str, Any] | None = Field(
        default=None, description="model-config branches: the prompt baseline (store key and content hash) "
                                  "the config was judged against; promote keeps it with the config's baseline")

    @property
    def authored_runs(self) -> int:
        """Return how many runs were answered by a hand-written recording rather than a model."""
        return sum(r.authored for t in self.tests for r in t.runs)

    @property
    def errors(self) -> list[str]:
        """Return one line per run that errored (provider error, missing recording...)."""
        return [f"test '{t.description}' run {r.repeat + 1}: {r.error}"
                for t in self.tests for r in t.runs if r.error]

    def pass_rate(self, required: int) -> float:
        """Return the fraction of tests with at least ``required`` passing runs (0.0 with no tests)."""
        if not self.tests:
            return 0.0
        return sum(t.passed(required) for t in self.tests) / len(self.tests)

    def metric_scores(self) -> dict[str, float]:
        """Return the average score of each named metric over every run that reported it."""
        sums: dict[str, list[float]] = defaultdict(list)
        for t in self.tests:
            for r in t.runs:
                for name, v in r.named_scores.items():
                    sums[name].append(v)
        return {k: sum(v) / len(v) for k, v in sorted(sums.items())}


def make_test_id(description: str, vars: dict[str, Any]) -> str:
    """Return a short stable id for a test, used to pair tests of a run with the baseline's."""
    blob = json.dumps({"d": description, "v": vars}, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _num(v: Any) -> float:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else 0.0


def _tokens(raw: Any) -> TokenUsage:
    raw = raw if isinstance(raw, dict) else {}
    return TokenUsage(prompt=int(_num(raw.get("prompt"))), completion=int(_num(raw.get("completion"))),
                      total=int(_num(raw.get("total"))))


def _run(raw: dict[str, Any], repeat: int) -> RunOutcome:
    response = raw.get("response") if isinstance(raw.get("response"), dict) else {}
    assert isinstance(response, dict)
    grading = raw.get("gradingResult") if isinstance(raw.get("gradingResult"), dict) else {}
    assert isinstance(grading, dict)
    error = None
    if raw.get("failureReason") == ERROR_REASON or response.get("error"):
        error = str(response.get("error") or raw.get("error") or "promptfoo reported an error")
    output = response.get("output")
    if output is not None and not isinstance(output, str):
        output = json.dumps(output, ensure_ascii=False)
    named = raw.get("namedScores") if isinstance(raw.get("namedScores"), dict) else {}
    assert isinstance(named, dict)
    return RunOutcome(
        repeat=repeat,
        passed=bool(raw.get("success")) and error is None,
        score=_num(raw.get("score")),
        reason=str(grading.get("reason") or raw.get("error") or ""),
        error=error,
        output=output or "",
        named_scores={str(k): _num(v) for k, v in named.items()},
        latency_ms=_num(raw.get("latencyMs")),
        tokens=_tokens(response.get("tokenUsage") or raw.get("tokenUsage")),
        cost=_num(raw.get("cost")),
        authored=(response.get("metadata") or {}).get("promptci_origin") == "authored",
    )


def parse_results(path: Path, *, artifact_id: str, dataset: str, content_hash: str, model: str,
                  provider: str, promptfoo_version: str, repeats: int) -> EvalResult:
    """Return the typed result of promptfoo's ``results.json`` at ``path``.

    Rows are sorted by ``testIdx`` (promptfoo writes them in completion order)
    and grouped per test via the ``promptci_index`` metadata the config
    builder puts on every test, so repeats land on their own test. Raises
    ResultsError when the file is missing, not JSON, or not promptfoo's shape.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ResultsError(f"promptfoo wrote no {path.name}") from exc
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ResultsError(f"{path.name} is not JSON ({exc.msg} at line {exc.lineno})") from exc
    return result_of(doc, path.name, artifact_id=artifact_id, dataset=dataset, content_hash=content_hash,
                     model=model, provider=provider, promptfoo_version=promptfoo_version, repeats=repeats)


def result_of(doc: Any, name: str, *, artifact_id: str, dataset: str, content_hash: str, model: str,
              provider: str, promptfoo_version: str, repeats: int) -> EvalResult:
    """Return the typed result of promptfoo's results document ``doc`` (already parsed; ``name`` names it).

    What ``parse_results`` does after reading the file; it exists so a shard's
    split documents (steps/eval_batch.py), already in memory, are not written
    and parsed again. Raises ResultsError when ``doc`` is not promptfoo's shape.
    """
    rows = doc.get("results", {}).get("results") if isinstance(doc, dict) else None
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise ResultsError(f"{name} has no results.results list (not a promptfoo v3 results file)")
    rows = sorted(rows, key=lambda r: _num(r.get("testIdx")))
    grouped: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        meta = (r.get("testCase") or {}).get("metadata") or {}
        idx = meta.get("promptci_index")
        if not isinstance(idx, int):
            raise ResultsError(f"{name}: a result (testIdx {r.get('testIdx')}) lacks promptci_index "
                               "metadata; it was not produced from a promptci config")
        grouped[idx].append(r)
    tests = []
    usage = TokenUsage()
    cost = 0.0
    latencies: list[float] = []
    for idx in sorted(grouped):
        group = grouped[idx]
        case = group[0].get("testCase") or {}
        meta = case.get("metadata") or {}
        raw_vars = meta.get("promptci_vars")
        user_vars: dict[str, Any] = raw_vars if isinstance(raw_vars, dict) else {}
        description = str(case.get("description") or f"test {idx + 1}")
        runs = [_run(r, i) for i, r in enumerate(group)]
        for run in runs:
            usage = usage.add(run.tokens)
            cost += run.cost
            latencies.append(run.latency_ms)
        tests.append(TestOutcome(index=idx, test_id=make_test_id(description, user_vars),
                                 description=description, vars=user_vars, runs=runs))
    return EvalResult(artifact_id=artifact_id, dataset=dataset, content_hash=content_hash, model=model,
                      provider=provider, promptfoo_version=promptfoo_version, repeats=repeats, tests=tests,
                      token_usage=usage, cost=cost,
                      latency_ms_avg=sum(latencies) / len(latencies) if latencies else 0.0)


def load_result(data: bytes, what: str) -> EvalResult:
    """Return the EvalResult stored in ``data`` (a baseline or cache entry).

    Raises ResultsError naming the first bad field when it is malformed.
    """
    try:
        return EvalResult.model_validate_json(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise ResultsError(f"{what} is not a valid eval result: {loc}: {first['msg']}") from exc
