"""Whether a failed attempt is retried, and after how long: Argo's ``processNodeRetries``.

Follows ``workflow/controller/operator.go`` (argo-workflows v4.1) step by step:

1. ``processNodeRetries``: a stopped workflow or a passed workflow deadline ends the
   retries ("retry exceeded workflow deadline");
2. with a ``backoff``, ``maxDuration`` counts from the first attempt's start; the wait is
   ``duration * factor^(attempts-1)`` after the last attempt finished, and it is waited
   *before* the policy, the limit and the expression are looked at (so a failure that
   will not be retried still waits the backoff), and only while ``limit`` allows more;
3. the policy (``RetryPolicyActual``: explicit, else ``Always`` when there is an
   expression, else ``OnFailure``);
4. ``limit`` (no limit: unlimited);
5. the expression, evaluated by expr-lang against ``buildRetryStrategyLocalScope``:
   ``lastRetry.exitCode`` is a *string* (``"-1"`` when there is none), as are
   ``lastRetry.status``, ``lastRetry.duration``, ``lastRetry.message`` and ``retries``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from workflows.runner.expr import eval_expr
from workflows.runner.records import UnsupportedFeature
from workflows.runner.supported import parse_duration


@dataclass(frozen=True)
class Attempt:
    """One finished attempt, as the retry rules see it."""

    phase: str
    exit_code: int | None
    message: str
    started: float
    finished: float


@dataclass(frozen=True)
class Verdict:
    """``wait`` seconds then ``retry``; or stop with ``message`` (empty when the attempt succeeded)."""

    retry: bool
    wait: float = 0.0
    message: str = ""


def retry_policy(strategy: Mapping[str, Any]) -> str:
    """Return the policy in force (workflow_types.go RetryStrategy.RetryPolicyActual)."""
    if strategy.get("retryPolicy"):
        return str(strategy["retryPolicy"])
    return "Always" if strategy.get("expression") else "OnFailure"


def retry_scope(attempts: list[Attempt]) -> dict[str, str]:
    """Return the expression's variables (operator.go buildRetryStrategyLocalScope)."""
    last = attempts[-1]
    return {"retries": str(len(attempts) - 1),
            "lastRetry.exitCode": "-1" if last.exit_code is None else str(last.exit_code),
            "lastRetry.status": last.phase, "lastRetry.duration": _go_seconds(last.finished - last.started),
            "lastRetry.message": last.message}


def _go_seconds(seconds: float) -> str:
    """Return ``fmt.Sprint(duration.Seconds())``: Go's %v of a float64 (shortest, no trailing .0)."""
    text = repr(round(seconds, 9))
    return text[:-2] if text.endswith(".0") else text


def decide(strategy: Mapping[str, Any], attempts: list[Attempt], now: float, *,
           workflow_over: str | None = None) -> Verdict:
    """Return whether to retry after ``attempts`` (the last one finished) and how long to wait first.

    ``workflow_over`` is the reason the workflow is over (stopped, deadline passed), if it is.
    ``now`` and the attempts' times are on the same clock (``time.time()``).
    """
    last = attempts[-1]
    if last.phase not in {"Failed", "Error"}:
        return Verdict(False)
    if workflow_over:
        return Verdict(False, message=workflow_over)
    limit = _limit(strategy)
    backoff = strategy.get("backoff")
    if backoff:
        max_deadline = None
        if backoff.get("maxDuration"):
            max_deadline = attempts[0].started + parse_duration(backoff["maxDuration"])
            if now > max_deadline:
                return Verdict(False, message="Max duration limit exceeded")
        if not backoff.get("duration"):
            raise UnsupportedFeature("no base duration specified for retryStrategy")
        wait = parse_duration(backoff["duration"])
        factor = int(str(backoff.get("factor") or 0))
        if factor > 0:
            wait *= factor ** (len(attempts) - 1)
        waiting_deadline = last.finished + wait
        if max_deadline is not None and waiting_deadline > max_deadline:
            return Verdict(False, message="Backoff would exceed max duration limit")
        if now < waiting_deadline and limit is not None and len(attempts) <= limit:
            # Argo requeues and re-enters processNodeRetries after the wait: the caller waits,
            # then asks again (deadline and stop are checked again first).
            return Verdict(True, wait=waiting_deadline - now)
    policy = retry_policy(strategy)
    on_failed, on_error = {"Always": (True, True), "OnError": (False, True), "OnFailure": (True, False),
                           # IsTransientErr matches Kubernetes/network error messages; no local
                           # attempt ends with one, so OnTransientError never retries here.
                           "OnTransientError": (False, False)}.get(policy, (None, None))
    if on_failed is None:
        raise UnsupportedFeature(f"{policy} is not a valid RetryPolicy")
    if (last.phase == "Failed" and not on_failed) or (last.phase == "Error" and not on_error):
        return Verdict(False, message=last.message)
    if limit is not None and len(attempts) > limit:
        return Verdict(False, message="No more retries left")
    expression = strategy.get("expression")
    if expression and not eval_expr(expression, retry_scope(attempts)):
        return Verdict(False, message="retryStrategy.expression evaluated to false")
    return Verdict(True)


def _limit(strategy: Mapping[str, Any]) -> int | None:
    value = strategy.get("limit")
    if value is None or value == "":
        return None
    try:
        return int(str(value))
    except ValueError as exc:
        raise UnsupportedFeature(f"retryStrategy.limit '{value}' is not an integer") from exc
