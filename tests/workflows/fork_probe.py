"""Stage functions for tests/workflows/test_fork_executor.py, run through the real stage entry.

``python -P -m workflows.stage_entry tests.workflows.fork_probe:<function> ...`` is the command shape the
fork executor forks, so these run forked under it and as a subprocess under the process executor.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def describe(label: str, report: Path) -> None:
    """Write to ``report`` what a step can see of its process, and print ``label``.

    The open descriptors are listed first, before anything here opens one (the listing's own is the same both
    ways); a child started to list them would race with the parent closing its ends of the child's pipes.
    """
    pid = os.getpid()
    fds = os.listdir("/proc/self/fd")
    facts = {
        "environ": dict(os.environ),
        "cwd": os.getcwd(),
        "stdin_is_devnull": os.path.samestat(os.fstat(0), os.stat(os.devnull)),
        "own_session": os.getsid(0) == pid,
        "own_group": os.getpgid(0) == pid,
        "fds": sorted(int(fd) for fd in fds),
        "argv": sys.argv,
        "path": sys.path,
        "tempdir": tempfile.gettempdir(),
        "stdout": [sys.stdout.encoding, sys.stdout.line_buffering, sys.stdout.isatty()],
        "child_env": subprocess.run([sys.executable, "-c", "import os, json; print(json.dumps(dict(os.environ)))"],
                                    capture_output=True, text=True, check=True).stdout,
    }
    report.write_text(json.dumps(facts, sort_keys=True))
    print(label)
    print("to stderr", file=sys.stderr)


def leave(code: str) -> None:
    """Exit with ``code`` (an int, or text: Python prints it and exits 1) after some output."""
    print("leaving", flush=False)
    sys.exit(int(code) if code.lstrip("-").isdigit() else code)


def linger(pidfile: str, session: str) -> None:
    """Start a grandchild (in its own session when ``session`` is ``own``, as promptfoo can), record its pid,
    then sleep."""
    grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"],
                                  start_new_session=session == "own")
    Path(pidfile).write_text(str(grandchild.pid))
    print("started", flush=True)
    time.sleep(300)


def burn(seconds: str) -> None:
    """Use the CPU for about ``seconds`` (so the attempt's CPU-s can be checked)."""
    end = time.process_time() + float(seconds)
    while time.process_time() < end:
        pass
