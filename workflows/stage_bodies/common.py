"""What every stage body shares: exit codes, the run's identity, the policy it applies, the store.

Exit codes are the retry contract of the templates' ``retryStrategy``:
* 0: the stage passed;
* 1: the stage ran and said no (lint errors, a failed quality gate): never retried;
* 75 (``EX_TEMPFAIL``): a transient failure (network, timeout): retried.

The repository is the working directory (the template sets ``workingDir`` to where the
``source`` git artifact is checked out; the local runner maps it to the local checkout).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from config.pipeline import PromptPipelineConfig

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_TRANSIENT = 75
CONFIG_ENV = "PROMPTCI_CONFIG"
RUN_ID_ENV = "PROMPTCI_RUN_ID"
RUN_LINK_ENV = "PROMPTCI_RUN_LINK"
WORKFLOW_STATUS_ENV = "PROMPTCI_WORKFLOW_STATUS"
BRANCH_FILE = "branch.json"
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
    return os.environ.get(RUN_ID_ENV) or "local"


def truthy(value: str | bool) -> bool:
    """Return the boolean an Argo string parameter (``true``/``false``) stands for."""
    return value if isinstance(value, bool) else value.strip().lower() in {"true", "1", "yes"}


def save(config: PromptPipelineConfig, key: str, obj: Any) -> None:
    """Store ``obj`` as JSON at ``key`` in the artifact store; exit 75 (retry) when the store is away."""
    from steps.stores.s3store import open_store
    from steps.stores.store import StoreError, put_json

    try:
        put_json(open_store(config.store), key, obj)
    except StoreError as exc:
        print(f"store: cannot write {key}: {exc}", file=sys.stderr)
        sys.exit(EXIT_TRANSIENT)


def save_plan(config: PromptPipelineConfig, root: Path, items: list[Any]) -> None:
    """Store the run's plan signed (promote trusts nothing else); exit 75 when the store is away."""
    from steps.records import PlanRecord, plan_key, put_signed
    from steps.signing import SignatureError, signing_key
    from steps.stores.s3store import open_store
    from steps.stores.store import StoreError

    try:
        put_signed(open_store(config.store), plan_key(run_id()), PlanRecord(run_id=run_id(), items=items),
                   signing_key(root, create=True))
    except SignatureError as exc:
        print(f"plan: cannot sign the plan: {exc}", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    except StoreError as exc:
        print(f"store: cannot write the plan: {exc}", file=sys.stderr)
        sys.exit(EXIT_TRANSIENT)
