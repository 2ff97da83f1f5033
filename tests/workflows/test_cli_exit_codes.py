"""The exit-code policy, enforced in one place (workflows/cli/main.py ``main``): 0 ok, 1 rejected, 2 usage or
internal error, 75 transient; never a traceback."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from steps.exit_codes import Rejected, Transient
from workflows.cli.main import cli, main

REPO = Path(__file__).resolve().parents[2]


def _run(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as ended:
        main(argv)
    code = ended.value.code
    assert isinstance(code, int)
    return code


@pytest.fixture
def raising() -> Iterator[dict[str, BaseException]]:
    """A throw-away ``boom`` command that raises what the test puts in the dict."""
    box: dict[str, BaseException] = {}

    @cli.command("boom")
    def boom() -> None:
        raise box["exc"]

    yield box
    del cli.commands["boom"]


@pytest.mark.parametrize(("exc", "code"), [
    (Rejected("gate support-reply: pass rate 0.5 < 0.9"), 1), (Transient("store unreachable"), 75),
    (RuntimeError("unexpected\nsecond line"), 2), (KeyError("x"), 2), (SystemExit(75), 75), (SystemExit(3), 2),
    (click.UsageError("bad flag"), 2),
])
def test_the_wrapper_maps_what_ended_a_command(raising: dict[str, BaseException], exc: BaseException, code: int,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    raising["exc"] = exc
    assert _run(["boom"]) == code
    err = capsys.readouterr().err
    assert "Traceback" not in err
    if isinstance(exc, RuntimeError):
        assert err.strip().splitlines() == ["promptci: RuntimeError: unexpected (an internal error: please report it)"]


def test_usage_errors_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["--help"]) == 0
    assert _run(["no-such-command"]) == 2
    assert _run(["status", "--format", "table"]) == 2
    assert "'table' is not one of 'text', 'json'" in capsys.readouterr().err


def test_a_bad_promptci_variable_is_one_line_and_exit_2(monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PROMPTCI_EVAL_JOBS", "lots")
    assert _run(["config", "--show-env"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("PROMPTCI_EVAL_JOBS='lots': ")


def test_a_manifest_that_fails_lint_is_rejected_with_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "wf.yaml"
    bad.write_text("apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata:\n  generateName: x-\n"
                   "spec:\n  entrypoint: missing\n  templates:\n  - name: main\n    container:\n      image: busybox\n")
    assert _run(["lint", str(bad)]) == 1
    assert "missing" in capsys.readouterr().out


def test_the_console_script_never_prints_a_traceback(tmp_path: Path) -> None:
    """A crash deep in a command (an unreadable config file) is one line and exit 2, from a real process."""
    config = tmp_path / "pipeline.yaml"
    config.write_bytes(b"\xff\xfe not yaml at all: [")
    proc = subprocess.run([sys.executable, "workflows/submit.py", "dump", "--out", str(tmp_path / "out"),
                           "--config", str(config)], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) >= 1
