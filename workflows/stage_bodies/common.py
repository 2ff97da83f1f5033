"""What every stage body shares: exit codes, the run's identity, the policy it applies, the store.

Exit codes are the retry contract of the templates' ``retryStrategy``:
* 0: the stage passed;
* 1: the stage ran and said no (lint errors, a failed quality gate): never retried;
* 75 (``EX_TEMPFAIL``): a transient failure (network, timeout): retried.

The repository is the working directory (the template sets ``workingDir`` to where the
``source`` git artifact is checked out; the local runner maps it to the local checkout).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from steps.exit_codes import ExitCode

if TYPE_CHECKING:
    from config.pipeline import PromptPipelineConfig

EXIT_FAILED = ExitCode.REJECTED
EXIT_USAGE = ExitCode.USAGE
EXIT_TRANSIENT = ExitCode.TRANSIENT
CONFIG_ENV = "PROMPTCI_CONFIG"
RUN_ID_ENV = "PROMPTCI_RUN_ID"
RUN_LINK_ENV = "PROMPTCI_RUN_LINK"
WORKFLOW_STATUS_ENV = "PROMPTCI_WORKFLOW_STATUS"
# Errors worth another attempt: the network, a provider or the store being briefly away.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (ConnectionError, TimeoutError)


def repo_root() -> Path:
    """Return the source checkout the stage works on: the working directory (see module doc)."""
    return Path.cwd()


def load_config(root: Path) -> PromptPipelineConfig:
    """Return the policy this stage applies: the trusted config, tightened by the revision's own.

    Trusted: ``$PROMPTCI_CONFIG`` (the mounted ConfigMap on a cluster, ``--config`` locally),
    else ``config/pipeline.yaml`` at the trusted ref (config/policy.py), never the checkout.
    Exits 1 with one line per field when the revision's config loosens a gate, 2 when no
    trusted policy can be read.
    Exits 2 as well when, in a pod, the policy keeps state on the pod's own disk (:func:`refuse_in_pod`).
    """
    from config.policy import PolicyError, PolicyLoosened, effective_policy

    try:
        policy = effective_policy(root)
    except PolicyLoosened as exc:
        print("\n".join(exc.lines), file=sys.stderr)
        sys.exit(EXIT_FAILED)
    except PolicyError as exc:
        print("\n".join(exc.lines), file=sys.stderr)
        sys.exit(EXIT_USAGE)
    for line in policy.tightened + policy.ignored:
        print(line, file=sys.stderr)
    refuse_in_pod(policy.config)
    return policy.config


def refuse_in_pod(config: PromptPipelineConfig) -> None:
    """Exit 2 with one line per setting when running in a pod with a config whose state dies with it."""
    from steps.persistence import pod_refusal

    lines = pod_refusal(config)
    if lines:
        print("\n".join(lines), file=sys.stderr)
        sys.exit(EXIT_USAGE)


def run_id() -> str:
    """Return the run id: the local runner's, or the Argo workflow name (set in the template env)."""
    from config.settings import get_settings

    return get_settings().run_id or "local"


def truthy(value: str | bool) -> bool:
    """Return the boolean an Argo string parameter (``true``/``false``) stands for."""
    return value if isinstance(value, bool) else value.strip().lower() in {"true", "1", "yes"}


def fail(code: int, *lines: str) -> NoReturn:
    """Print ``lines`` to stderr (one per problem) and end the stage with ``code`` (steps/exit_codes.py)."""
    for line in lines:
        print(line, file=sys.stderr)
    sys.exit(code)
