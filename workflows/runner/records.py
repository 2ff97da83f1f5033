"""What a local run records: one NodeRecord per node, one RunResult per run, and the run's errors.

Shared by the scheduler, the executors, the progress view and the CLI, so none of them
imports another's internals.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

TERMINAL = {"Succeeded", "Failed", "Error", "Skipped", "Omitted"}
STAGE_RESULT = {"Succeeded": "succeeded", "Failed": "failed", "Error": "error", "Skipped": "skipped",
                "Omitted": "skipped"}


class UnsupportedFeature(Exception):
    """The template uses something the local runner does not implement (named in the message)."""


class RunError(Exception):
    """The run could not start: bad or missing parameters, unknown entrypoint..."""


@dataclass
class NodeRecord:
    """One executed (or skipped) task, or one branch of a fan-out (``eval(0)``)."""

    name: str
    task: str
    template: str
    status: str = "Pending"
    message: str = ""
    started: float | None = None
    finished: float | None = None
    attempts: int = 0
    attempt_phases: list[str] = field(default_factory=list)
    """The phase each attempt ended in, in order (metrics count retried attempts, as Argo does)."""
    exit_code: int | None = None
    outputs: dict[str, str] = field(default_factory=dict)
    result: str | None = None
    dir: str = ""
    inputs: dict[str, str] = field(default_factory=dict)
    """The node's input parameters: a fan-out child's arguments once it is created, all of them once it starts
    (the progress view reads an eval shard's counts from its ``shard`` input)."""
    cpu_seconds: float | None = None
    """User + system CPU seconds of the step's processes over all its attempts, or None when the
    executor does not measure it (the process executor does, from ``wait4``)."""

    @property
    def duration(self) -> float:
        """Return seconds between start and finish (0 for a node that never ran)."""
        if self.started is None or self.finished is None:
            return 0.0
        return self.finished - self.started


@dataclass
class RunResult:
    """The outcome of one local run; ``ok`` only when the workflow succeeded."""

    run_id: str
    run_dir: Path
    status: str
    message: str
    started: float
    finished: float
    nodes: list[NodeRecord]
    tasks: dict[str, str]
    unstarted: list[NodeRecord] = field(default_factory=list)
    """Fan-out children that never started (the run failed or was stopped first): Pending, with their inputs."""
    shared_cpu_seconds: float | None = None
    """CPU-s spent for the steps outside them: the fork executor's zygote importing the stages once."""
    promptfoo_cpu_seconds: float | None = None
    """CPU-s of the run's warm promptfoo (steps/promptfoo_warm.py): an eval's promptfoo run outside its step's
    process tree, so in no node's CPU-s. Set by ``promptci run``, which owns the broker."""

    @property
    def ok(self) -> bool:
        return self.status == "Succeeded"

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    @property
    def duration_seconds(self) -> float:
        return self.finished - self.started

    def stage_results(self) -> dict[str, str]:
        """Return ``{task: succeeded|failed|skipped|error}`` for metrics and summaries."""
        return {t: STAGE_RESULT.get(s, "error") for t, s in self.tasks.items()}
