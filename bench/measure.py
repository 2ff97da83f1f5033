"""What every bench measures a command with: wall, CPU-s of the whole process tree, peak RSS of the tree, load.

A figure here is always one real process (and everything it starts) run to its end:

* wall: ``time.perf_counter()`` around the process;
* CPU-s: user + system time of every descendant, from ``getrusage(RUSAGE_CHILDREN)`` before and after.
  This process becomes a child subreaper (``prctl(PR_SET_CHILD_SUBREAPER)``), so a grandchild whose
  parent did not wait for it (promptfoo's workers, a killed step's children) is reparented here and
  reaped, and its CPU is counted too;
* peak RSS: the largest *sum* of the resident set sizes of every process in the tree, sampled every
  ``interval`` seconds from ``/proc`` (not the largest single child: a fan-out of 8 pythons at 100 MB
  each is 800 MB). Sampling can miss a peak shorter than the interval; shared pages count once per process.

The machine is shared: :func:`load` is printed next to every figure, and benches compare figures
measured side by side in one run, never against a constant.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

PAGE = os.sysconf("SC_PAGE_SIZE")
PR_SET_CHILD_SUBREAPER = 36


@dataclass(frozen=True)
class Measured:
    """One process tree run to its end."""

    label: str
    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    returncode: int
    load: tuple[float, float, float]
    """``os.getloadavg()`` when the process started."""
    started_at: float = 0.0
    """``time.time()`` when the process started: places a run's own timestamps (run.json) on the wall."""

    def line(self) -> str:
        """Return the figure as one line: wall, CPU-s, peak RSS, exit status and load."""
        return (f"{self.label}: wall {self.wall_s:.2f} s, CPU {self.cpu_s:.2f} s, peak RSS {self.peak_rss_mb:.0f} MB"
                f" (tree), exit {self.returncode}, load {fmt_load(self.load)}")


def load() -> tuple[float, float, float]:
    """Return the 1/5/15-minute load averages (what every figure is printed with)."""
    return os.getloadavg()


def fmt_load(value: tuple[float, float, float] | None = None) -> str:
    """Return the load averages as ``1.23/1.00/0.80 on 2 cores``."""
    one, five, fifteen = value or load()
    return f"{one:.2f}/{five:.2f}/{fifteen:.2f} on {os.cpu_count()} cores"


def become_subreaper(on: bool = True) -> bool:
    """Make orphaned descendants reparent to this process (Linux), or stop doing so; return whether that worked.

    :func:`run` turns it on for one measured process tree and off again after, so a process that measured
    once (a test session) does not collect every later orphan as a zombie nobody reaps.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1 if on else 0, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _children_map() -> dict[int, list[int]]:
    """Return parent pid -> child pids of every process on the machine (one /proc scan)."""
    kids: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        ppid = int(stat[stat.rfind(b")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(entry.name))
    return kids


def tree_rss(root: int) -> int:
    """Return the summed resident set size in bytes of ``root`` and all its descendants (0 when gone)."""
    kids = _children_map()
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo += kids.get(pid, [])
        with contextlib.suppress(OSError, ValueError, IndexError), open(f"/proc/{pid}/statm") as fh:
            total += int(fh.read().split()[1]) * PAGE
    return total


def _reap_orphans() -> None:
    """Reap descendants that were reparented here (subreaper) and have exited, so their CPU is counted."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def run(label: str, cmd: Sequence[str], *, cwd: Path | None = None, env: Mapping[str, str] | None = None,
        log: Path | None = None, interval: float = 0.25, timeout: float | None = None) -> Measured:
    """Run ``cmd`` to its end and return its wall, tree CPU-s and sampled peak tree RSS.

    Only one measured process runs at a time (the CPU comes from this process's children totals).
    Output goes to ``log`` (or is discarded). A process past ``timeout`` is killed and its return
    code is what the kill gave.
    """
    become_subreaper()
    _reap_orphans()
    started_load = load()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115 (closed below)
    peak = 0
    started_at = time.time()
    t0 = time.perf_counter()
    try:
        proc = subprocess.Popen(list(cmd), cwd=cwd, env=dict(env) if env is not None else None,
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        stop = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not stop.is_set():
                peak = max(peak, tree_rss(proc.pid))
                stop.wait(interval)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
        wall = time.perf_counter() - t0
        stop.set()
        sampler.join()
    finally:
        if log:
            out.close()  # type: ignore[union-attr]
    _reap_orphans()
    become_subreaper(False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Measured(label, wall, cpu, peak / 2**20, code, started_load, started_at)


def ratio(a: float, b: float) -> float:
    """Return ``a / b`` (infinity when ``b`` is 0)."""
    return a / b if b else float("inf")


QUICK_ENV = "BENCH_QUICK"


def quick(flag: bool = False) -> bool:
    """Return whether to run smoke sizes: ``--quick`` given, or ``BENCH_QUICK`` set and not ``0``.

    Quick figures prove the bench still works; they are too small to quote.
    """
    return flag or os.environ.get(QUICK_ENV, "") not in ("", "0")


def cpu_now() -> float:
    """Return CPU-s used so far by this process (every thread) and its reaped descendants."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime
