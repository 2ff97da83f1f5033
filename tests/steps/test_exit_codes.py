"""steps/exit_codes.py: the one exit-code policy (0 ok, 1 rejected, 2 usage/internal, 75 transient)."""

from __future__ import annotations

import click
import pytest

from config.problems import Problem, Severity, exit_code
from steps.exit_codes import ExitCode, Rejected, Transient, exit_code_for, outcome_code, remote_exit_code
from steps.promotion.report import PromotionReport


def test_the_codes_are_the_documented_ones() -> None:
    assert [(c.name, int(c)) for c in ExitCode] == [("OK", 0), ("REJECTED", 1), ("USAGE", 2), ("TRANSIENT", 75)]


@pytest.mark.parametrize(("kw", "code"), [
    ({"ok": True}, 0), ({"ok": False}, 1), ({"ok": False, "transient": True}, 75),
    ({"ok": False, "transient": True, "internal": True}, 2), ({"ok": True, "internal": True}, 2),
])
def test_outcome_code_orders_bug_over_transient_over_rejection(kw: dict[str, bool], code: int) -> None:
    assert outcome_code(**kw) == code


def test_checks_and_promotions_use_the_same_outcome_rule() -> None:
    err = Problem("a.yaml", 1, 1, "f", "bad")
    warn = Problem("a.yaml", 1, 1, "f", "meh", Severity.WARNING)
    bug = Problem("a.yaml", 1, 1, "", "crash", Severity.INTERNAL)
    assert [exit_code([]), exit_code([warn]), exit_code([err, warn]), exit_code([err, bug])] == [0, 0, 1, 2]
    assert PromotionReport(env="dev", run_id="r").exit_code == 0
    assert PromotionReport(env="dev", run_id="r", errors=["no plan"]).exit_code == 1
    assert PromotionReport(env="dev", run_id="r", errors=["gate"], infra=["store away"]).exit_code == 75


@pytest.mark.parametrize(("exc", "code"), [
    (SystemExit(None), 0), (SystemExit(0), 0), (SystemExit(1), 1), (SystemExit(75), 75), (SystemExit(2), 2),
    (SystemExit(3), 2), (SystemExit("message"), 2),
    (click.UsageError("bad flag"), 2), (click.BadParameter("x"), 2), (click.ClickException("boom"), 1),
    (click.exceptions.Exit(0), 0),
    (Rejected("gate failed"), 1), (Transient("store away"), 75),
    (ValueError("surprise"), 2), (KeyError("k"), 2), (FileNotFoundError("x"), 2),
])
def test_exit_code_for_exceptions(exc: BaseException, code: int) -> None:
    assert exit_code_for(exc) == code


class _Response:
    def __init__(self, status: int):
        self.status_code = status


class _HTTPError(OSError):
    def __init__(self, status: int):
        super().__init__(f"HTTP {status}")
        self.response = _Response(status)


class _StatusError(Exception):
    def __init__(self, status: int):
        super().__init__("refused")
        self.status_code = status


@pytest.mark.parametrize(("exc", "code"), [
    (ConnectionRefusedError("refused"), 75), (TimeoutError("slow"), 75),
    (_HTTPError(503), 75), (_HTTPError(429), 75), (_HTTPError(404), 1), (_HTTPError(401), 1),
    (_StatusError(500), 75), (_StatusError(409), 1),
    (Exception("Server returned status code 502"), 75), (Exception("Server returned status code 418"), 1),
    (ValueError("bad request body"), 1),
])
def test_remote_failures_are_transient_only_when_another_attempt_may_clear_them(exc: BaseException,
                                                                                code: int) -> None:
    assert remote_exit_code(exc) == code
