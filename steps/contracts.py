"""Typed records that travel between pipeline stages (as JSON through Argo parameters).

The plan step emits ``EvalItem``s (one per changed artifact × dataset) for the
eval fan-out; every eval branch emits a ``BranchResult``; promote consumes the
whole list. Keeping them here lets each stage be a plain, separately tested
function while the wire format stays one definition.
"""

from __future__ import annotations

import hashlib
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

BRANCH_FILE = "branch.json"  # the BranchResult of one item, next to its record (runs/{run}/{artifact}/{dataset}/)


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EvalItem(_Record):
    """One eval branch: an artifact file and one of its golden datasets."""

    artifact_id: str
    artifact_type: str
    path: str = Field(description="artifact file, relative to the repo root")
    dataset: str = Field(description="dataset name ('inline' for tests embedded in the artifact)")
    content_hash: str


class Shard(_Record):
    """Items one eval task runs in ONE promptfoo process (plan packs them; eval reads them from the plan)."""

    index: int = Field(ge=0, description="0..n-1, stable for the same input")
    items: list[EvalItem] = Field(min_length=1, description="sorted as plan sorted them")
    tests: int = Field(ge=0, description="test runs (tests × repeats) of its items: the packing weight")


class ShardRef(_Record):
    """The eval fan-out parameter (``{{item}}``) naming one shard: small, no paths and no text."""

    index: int = Field(ge=0)
    items: int = Field(ge=1, description="how many items")
    tests: int = Field(ge=0, description="test runs")


class BranchResult(_Record):
    """The verdict of one eval branch. ``status`` other than 'passed' blocks promotion."""

    artifact_id: str
    artifact_type: str
    path: str
    dataset: str
    content_hash: str
    status: Literal["passed", "failed", "error"]
    pass_rate: float | None = None
    metric_scores: dict[str, float] = Field(default_factory=dict)
    tests_total: int = 0
    tests_passed: int = 0
    baseline_pass_rate: float | None = None
    reasons: list[str] = Field(default_factory=list, description="why the branch failed or errored")
    retryable: bool = Field(default=False, description="an error another attempt may clear (store or network "
                                                        "unreachable); quality failures never are")
    cached: bool = False
    runs_total: int = Field(default=0, description="test runs measured (tests × repeats)")
    authored_runs: int = Field(default=0, description="runs answered by a hand-written recording, not a model")
    report_keys: list[str] = Field(default_factory=list, description="artifact-store keys written")


def wire_result(result: BranchResult) -> BranchResult:
    """Return ``result`` as it may travel between Argo tasks: without free-text ``reasons``.

    When Argo aggregates a fan-out's outputs it decodes and re-encodes the JSON, which
    undoes ``to_wire``'s escaping; so text that could hold ``{{`` (a failure reason
    quoting a prompt) stays in the artifact store and never reaches another task's
    parameters. Only passed branches reach promote, which needs no reasons.
    Every other field is an id, a hash, a number, or a name lint restricts.
    """
    return result.model_copy(update={"reasons": []})


def content_hash(data: bytes) -> str:
    """Return the ``sha256:…`` hash that identifies artifact content across stages and environments."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def to_wire(obj: BaseModel | list[BaseModel]) -> str:
    """Return compact JSON for an Argo parameter, with every ``{{`` escaped.

    Argo expands ``{{...}}`` in parameter values it substitutes; artifact text
    (a failure reason quoting a prompt, say) must stay data. Structural JSON
    never contains ``{{`` (an object always opens with a key), so the only
    occurrences are inside strings, where ``\\u007b`` is a valid escape that
    decodes back to ``{``.
    """
    if isinstance(obj, list):
        text = "[" + ",".join(o.model_dump_json() for o in obj) + "]"
    else:
        text = obj.model_dump_json()
    return text.replace("{{", "\\u007b\\u007b")
