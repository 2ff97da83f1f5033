"""promptci's exit codes, and the one place outcomes and exceptions are turned into them.

=====  =========  ================================================================================
code   name       meaning
=====  =========  ================================================================================
0      OK         done: every check and gate passed (warnings allowed)
1      REJECTED   a check or gate rejected the input, or a remote refused the request: final, never retried
2      USAGE      bad usage or configuration, or promptci itself failed (a bug): fix and run again
75     TRANSIENT  an infrastructure failure (store, Argo or GitOps remote unreachable, a timeout): retry
=====  =========  ================================================================================

75 is ``EX_TEMPFAIL`` of sysexits.h; the templates' ``retryStrategy`` retries exactly that code.
Commands raise ``Rejected`` / ``Transient`` or ``sys.exit`` with an ``ExitCode``; the top-level
wrapper (``workflows/cli/main.py``) turns anything else into one line and code 2.
"""

from __future__ import annotations

import re
from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    REJECTED = 1
    USAGE = 2
    TRANSIENT = 75


class Rejected(Exception):
    """A check, gate or remote refused: exit 1. The message is the one line the user sees."""


class Transient(Exception):
    """Infrastructure was away (store, remote, timeout): exit 75, worth another attempt."""


# An HTTP status that another attempt may clear (rate limit, server error, gateway).
TRANSIENT_STATUS = frozenset({429, 500, 502, 503, 504})


def outcome_code(*, ok: bool, transient: bool = False, internal: bool = False) -> ExitCode:
    """Return the code of an outcome: a promptci bug (2) over a transient failure (75) over a rejection (1).

    Why this order: a bug must be reported, not retried; a transient failure may turn a rejection
    into a pass once the store answers, so it is retried before the rejection is believed.
    """
    if internal:
        return ExitCode.USAGE
    if transient:
        return ExitCode.TRANSIENT
    return ExitCode.OK if ok else ExitCode.REJECTED


def remote_exit_code(exc: BaseException) -> ExitCode:
    """Return the code for a failed call to a remote server (the Argo Server, the Kubernetes API).

    75 when it was unreachable, timed out or answered 429/5xx; 1 otherwise (refused: bad request,
    unauthorized, not found...). ``requests`` errors (connection refused, DNS, timeout) are
    ``OSError`` subclasses. Hera (``hera.exceptions.exception_from_server_response``) maps
    400/401/403/404/409/500/501 to subclasses with a ``status_code`` and every other status
    (502, 503, 504, 429) to a bare ``HeraException`` whose message reads ``Server returned status code N``.
    """
    response = getattr(exc, "response", None)  # requests.HTTPError (an OSError) carries the response
    status = getattr(response, "status_code", None) or getattr(exc, "status_code", None)
    if status is None and (m := re.match(r"Server returned status code (\d+)", str(exc))):
        status = int(m.group(1))
    if status is not None:
        return ExitCode.TRANSIENT if int(status) in TRANSIENT_STATUS else ExitCode.REJECTED
    return ExitCode.TRANSIENT if isinstance(exc, OSError) else ExitCode.REJECTED


def exit_code_for(exc: BaseException) -> ExitCode:
    """Return the exit code for an exception that ended a command.

    ``SystemExit`` keeps a code of the policy (another code, or a message, is 2); click's usage
    errors are 2 and its other errors keep their code when it is one of the policy's; ``Rejected``
    is 1, ``Transient`` 75; bad configuration (pipeline config, policy, ``PROMPTCI_*`` settings) is 2.
    Anything else is unexpected: a promptci bug, 2.
    """
    import click

    if isinstance(exc, SystemExit):
        return _policy_code(exc.code)
    if isinstance(exc, click.exceptions.Exit):
        return _policy_code(exc.exit_code)
    if isinstance(exc, click.UsageError):
        return ExitCode.USAGE
    if isinstance(exc, click.ClickException):
        return _policy_code(exc.exit_code)
    if isinstance(exc, Rejected):
        return ExitCode.REJECTED
    if isinstance(exc, Transient):
        return ExitCode.TRANSIENT
    return ExitCode.USAGE


def _policy_code(code: object) -> ExitCode:
    """Return ``code`` as an ExitCode: None is 0 (as for ``sys.exit()``), anything outside the policy is 2."""
    if code is None:
        return ExitCode.OK
    if isinstance(code, int) and code in ExitCode._value2member_map_:
        return ExitCode(code)
    return ExitCode.USAGE


__all__ = ["ExitCode", "Rejected", "TRANSIENT_STATUS", "Transient", "exit_code_for", "outcome_code",
           "remote_exit_code"]
