"""The receiver's bounded, coalescing run queue and its replay log.

:class:`RunQueue` holds at most ``capacity`` jobs (the running one included). A push to a
branch that already has a job waiting is merged into it, so however many pushes arrive while
a run is busy, the branch gets one more run, of the newest ``after``. A push that needs a new
job when ``capacity`` jobs exist raises :class:`QueueFull` (the receiver answers 429). Jobs
run one at a time on one worker thread: the receiver serves one repository and one checkout.

:class:`DeliveryLog` remembers accepted deliveries for 24 h (by delivery id and by body
digest), so a replayed request is refused even when its sender changed the unsigned
delivery-id header.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

log = logging.getLogger("promptci.receiver")

DEDUPE_SECONDS = 24 * 3600


@dataclass(frozen=True)
class Push:
    """One accepted push: where it came from, the revisions, and the types its payload proved changed.

    ``types`` is None when the payload cannot prove which types changed (no or truncated file
    lists, a body over the size cap, Bitbucket): then git decides at run time.
    """

    host: str
    delivery: str
    branch: str
    before: str
    after: str
    types: frozenset[str] | None
    reason: str


@dataclass
class Job:
    """Runs for one branch: the pushes merged into it and what became of them."""

    job_id: str
    branch: str
    pushes: list[Push]
    state: str = "queued"  # queued -> running -> done | error
    error: str | None = None
    runs: dict[str, str] = field(default_factory=dict)  # artifact type -> "queued|running|done|error: …"

    @property
    def types(self) -> frozenset[str] | None:
        """Return the union of the pushes' types, or None when any push left it to git."""
        out: set[str] = set()
        for p in self.pushes:
            if p.types is None:
                return None
            out |= p.types
        return frozenset(out)

    def summary(self) -> dict[str, object]:
        return {"run_id": self.job_id, "branch": self.branch, "state": self.state, "error": self.error,
                "after": self.pushes[-1].after, "pushes": len(self.pushes), "runs": dict(self.runs)}


class QueueFull(Exception):
    """Every slot of the run queue is taken."""


StartJob = Callable[[Job], None]


def _default_ids() -> Callable[[], str]:
    counter = itertools.count(1)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return lambda: f"{stamp}-{next(counter):04d}"


class RunQueue:
    """One worker thread runs ``start_job`` for each job in turn; see the module docstring."""

    def __init__(self, start_job: StartJob, capacity: int = 8, new_id: Callable[[], str] | None = None,
                 history: int = 1000):
        if capacity < 1:
            raise ValueError("the run queue needs at least one slot")
        self._start_job, self.capacity, self._new_id = start_job, capacity, new_id or _default_ids()
        self._cond = threading.Condition()
        self._pending: OrderedDict[str, Job] = OrderedDict()  # branch -> waiting job
        self._running: Job | None = None
        self._closed = False
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._history = history
        self._worker = threading.Thread(target=self._work, name="promptci-runs", daemon=True)
        self._worker.start()

    def submit(self, push: Push) -> tuple[Job, bool]:
        """Queue ``push``; return its job and whether it was merged into one already waiting.

        Raises QueueFull when a new job is needed and ``capacity`` jobs exist.
        """
        with self._cond:
            if self._closed:
                raise QueueFull("the receiver is shutting down")
            job = self._pending.get(push.branch)
            if job is not None:
                job.pushes.append(push)
                return job, True
            if len(self._pending) + (self._running is not None) >= self.capacity:
                raise QueueFull(f"{self.capacity} runs are queued or running")
            job = Job(self._new_id(), push.branch, [push])
            self._pending[push.branch] = job
            self._jobs[job.job_id] = job
            while len(self._jobs) > self._history:
                self._jobs.popitem(last=False)
            self._cond.notify()
            return job, False

    def get(self, job_id: str) -> Job | None:
        with self._cond:
            return self._jobs.get(job_id)

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if not self._pending:
                    return
                _, job = self._pending.popitem(last=False)
                self._running, job.state = job, "running"
            try:
                self._start_job(job)
                job.state = "error" if job.error else "done"
            except Exception as exc:  # noqa: BLE001 - a crashed run must not kill the worker
                job.state, job.error = "error", f"{type(exc).__name__}: {exc}"
                log.error("run %s failed to complete: %s", job.job_id, job.error)
            finally:
                with self._cond:
                    self._running = None

    def close(self, timeout: float = 10.0) -> None:
        """Let queued jobs finish, then stop the worker (waiting up to ``timeout``)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._worker.join(timeout)


class DeliveryLog:
    """Keys of accepted deliveries, each remembered for ``ttl`` seconds (at most ``max_entries``)."""

    def __init__(self, ttl: float = DEDUPE_SECONDS, max_entries: int = 100_000,
                 clock: Callable[[], float] = time.monotonic):
        self._ttl, self._max, self._clock = ttl, max_entries, clock
        self._seen: OrderedDict[str, float] = OrderedDict()  # key -> expiry, in insertion (= expiry) order
        self._lock = threading.Lock()

    def reserve(self, keys: Iterable[str]) -> str | None:
        """Record ``keys`` and return None, or return the first key already seen (recording nothing)."""
        keys = list(keys)
        now = self._clock()
        with self._lock:
            while self._seen and next(iter(self._seen.values())) <= now:
                self._seen.popitem(last=False)
            for k in keys:
                if k in self._seen:
                    return k
            for k in keys:
                self._seen[k] = now + self._ttl
            while len(self._seen) > self._max:
                self._seen.popitem(last=False)
        return None

    def release(self, keys: Iterable[str]) -> None:
        """Forget ``keys`` (a delivery that was not accepted may be redelivered)."""
        with self._lock:
            for k in keys:
                self._seen.pop(k, None)
