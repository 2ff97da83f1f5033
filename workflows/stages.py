"""The pipeline's step functions, as Hera runner scripts.

Each function is what one Argo pod (or one local-runner subprocess) executes through
``python -m hera.workflows.runner -e workflows.stages:<name>``. They are thin: parse the
parameters, call the matching function in ``steps/``, write outputs, and choose the exit
code. Imports of ``steps.*`` are inside the bodies so that importing this module (to build
templates) needs none of the stage dependencies.

Exit codes are the retry contract of the templates' ``retryStrategy``:
* 0: the stage passed;
* 1: the stage ran and said no (lint errors, a failed quality gate): never retried;
* 75 (``EX_TEMPFAIL``): a transient failure (network, timeout): retried.

The repository is the working directory (the template sets ``workingDir`` to where the
``source`` git artifact is checked out; the local runner maps it to the local checkout).
"""

# No ``from __future__ import annotations``: Hera reads the real annotation objects.
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from hera.workflows import Artifact, Parameter, script

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

ArtifactPath = Annotated[str, Parameter(name="artifact-path")]
ArtifactTypeParam = Annotated[str, Parameter(name="artifact-type")]
TargetEnv = Annotated[str, Parameter(name="target-environment")]
DryRun = Annotated[str, Parameter(name="dry-run")]


def repo_root() -> Path:
    """Return the source checkout the stage works on: the working directory (see module doc)."""
    return Path.cwd()


def load_config(root: Path) -> "PromptPipelineConfig":
    """Return the policy this stage applies: the trusted config, tightened by the revision's own.

    Trusted: ``$PROMPTCI_CONFIG`` (the mounted ConfigMap on a cluster, ``--config`` locally),
    else ``config/pipeline.yaml`` at the trusted ref (config/policy.py), never the checkout.
    Exits 1 with one line per field when the revision's config loosens a gate, 2 when no
    trusted policy can be read.
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
    return policy.config


def run_id() -> str:
    """Return the run id: the local runner's, or the Argo workflow name (set in the template env)."""
    return os.environ.get(RUN_ID_ENV) or "local"


def truthy(value: str | bool) -> bool:
    """Return the boolean an Argo string parameter (``true``/``false``) stands for."""
    return value if isinstance(value, bool) else value.strip().lower() in {"true", "1", "yes"}


def _save(config: "PromptPipelineConfig", key: str, obj: Any) -> None:
    """Store ``obj`` as JSON at ``key`` in the artifact store; exit 75 (retry) when the store is away."""
    from steps.stores.s3store import open_store
    from steps.stores.store import StoreError, put_json

    try:
        put_json(open_store(config.store), key, obj)
    except StoreError as exc:
        print(f"store: cannot write {key}: {exc}", file=sys.stderr)
        sys.exit(EXIT_TRANSIENT)


def _save_plan(config: "PromptPipelineConfig", root: Path, items: list[Any]) -> None:
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


def _problems_stage(kind: str, artifact_path: str) -> None:
    from config.problems import has_errors, render

    root = repo_root()
    if kind == "lint":
        from steps.lint import lint_paths as check
    else:
        from steps.validate import validate_paths as check
    problems = check([root / artifact_path], root=root)
    if problems:
        print(render(problems))
    if has_errors(problems):
        sys.exit(EXIT_FAILED)
    print(f"{kind}: {artifact_path}: ok")


@script(constructor="runner")
def lint(artifact_path: ArtifactPath) -> None:
    """Lint the artifacts under ``artifact-path``; exit 1 on any error (prints one line per problem)."""
    _problems_stage("lint", artifact_path)


@script(constructor="runner")
def validate(artifact_path: ArtifactPath) -> None:
    """Validate the artifacts under ``artifact-path`` against their schemas and the model catalog."""
    _problems_stage("validate", artifact_path)


@script(constructor="runner")
def plan(
    artifact_path: ArtifactPath,
    artifact_type: ArtifactTypeParam,
    git_revision: Annotated[str, Parameter(name="git-revision")],
    base_revision: Annotated[str, Parameter(name="base-revision")],
    target_environment: TargetEnv,
    dry_run: DryRun,
    items: Annotated[Path, Parameter(name="items", output=True)],
    needs_approval: Annotated[Path, Parameter(name="needs-approval", output=True)],
    count: Annotated[Path, Parameter(name="count", output=True)],
) -> None:
    """Write the eval fan-out list (``items``: JSON EvalItems), its length (``count``) and
    whether promotion needs approval.

    ``needs-approval`` is ``true`` only when there is something to promote into an environment
    whose gate asks for manual approval (and this is not a dry run).
    """
    from config.artifacts import ArtifactType
    from config.yamlio import LoadError
    from steps.contracts import to_wire
    from steps.plan import PlanError
    from steps.plan import plan as make_plan

    root = repo_root()
    config = load_config(root)
    try:
        found = make_plan(artifact_path, ArtifactType(artifact_type), repo_root=root,
                          git_revision=git_revision or None, base_revision=base_revision or None)
    except (PlanError, FileNotFoundError) as exc:
        print(f"plan: {exc}", file=sys.stderr)
        sys.exit(EXIT_FAILED)
    except LoadError as exc:  # lint reports these too; plan must not guess around them
        for p in exc.problems:
            print(p.format(), file=sys.stderr)
        sys.exit(EXIT_FAILED)
    if target_environment not in config.promotion.chain:
        print(f"target-environment: '{target_environment}' is not in promotion.chain "
              f"({', '.join(config.promotion.chain)})", file=sys.stderr)
        sys.exit(EXIT_FAILED)
    approval = bool(found) and config.promotion.gate(target_environment).manual_approval \
        and not truthy(dry_run)
    _save_plan(config, root, list(found))
    items.write_text(to_wire(list(found)))
    needs_approval.write_text("true" if approval else "false")
    count.write_text(str(len(found)))
    for it in found:
        print(f"plan: {it.path} × {it.dataset}")
    print(f"plan: {len(found)} eval branch(es); approval needed: {str(approval).lower()}")


@script(constructor="runner")
def eval_branch(
    item: Annotated[str, Parameter(name="item")],
    target_environment: TargetEnv,
    no_cache: Annotated[str, Parameter(name="no-cache")],
    result: Annotated[Path, Parameter(name="result", output=True)],
    reports: Annotated[Path, Artifact(name="reports", output=True)],
) -> None:
    """Run one eval branch (one artifact × dataset) and write its BranchResult as ``result``.

    Exits 1 when the branch did not pass, so the fan-out fails and promote never runs;
    exits 75 on a transient error so ``retryStrategy`` retries it.
    """
    from steps.contracts import EvalItem, to_wire, wire_result
    from steps.stores.store import run_key

    root = repo_root()
    config = load_config(root)
    parsed = EvalItem.model_validate_json(item)
    reports.mkdir(parents=True, exist_ok=True)
    try:
        from steps.eval import run_branch
        from steps.stores.s3store import open_store

        outcome = run_branch(parsed, repo_root=root, run_id=run_id(),
                             target_env=target_environment or None, config=config,
                             store=open_store(config.store), work_dir=reports, no_cache=truthy(no_cache))
    except TRANSIENT_ERRORS as exc:
        print(f"eval: transient error, will be retried: {exc}", file=sys.stderr)
        sys.exit(EXIT_TRANSIENT)
    _save(config, run_key(run_id(), parsed.artifact_id, parsed.dataset, BRANCH_FILE),
          outcome.model_dump(mode="json"))
    result.write_text(to_wire(wire_result(outcome)))
    print(f"eval: {parsed.artifact_id} × {parsed.dataset}: {outcome.status}"
          + (f" (pass rate {outcome.pass_rate:.2f})" if outcome.pass_rate is not None else ""))
    for reason in outcome.reasons:
        print(f"  - {reason}")
    if outcome.status == "error" and outcome.retryable:
        sys.exit(EXIT_TRANSIENT)  # e.g. the store was unreachable: worth another attempt (retryStrategy)
    if outcome.status != "passed":
        sys.exit(EXIT_FAILED)


@script(constructor="runner")
def promote(
    target_environment: TargetEnv,
    dry_run: DryRun,
    approved: Annotated[str, Parameter(name="approved")],
    git_revision: Annotated[str, Parameter(name="git-revision")],
) -> None:
    """Promote this run's artifacts into ``target-environment`` (all or nothing).

    Reads the run's signed plan and eval records from the store by run id (never from
    parameters). Exit code: 0 promoted, 1 refused, 75 infrastructure failure (retried).
    """
    from steps.promote import promote_run
    from steps.signing import SignatureError, signing_key
    from steps.stores.s3store import open_store
    from steps.stores.store import StoreError

    root = repo_root()
    config = load_config(root)
    try:
        key = signing_key(root)
        store = open_store(config.store)
    except (SignatureError, StoreError) as exc:
        print(f"promote: {exc}", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    report = promote_run(run_id(), env=target_environment, repo_root=root, config=config, store=store, key=key,
                         approved=truthy(approved), dry_run=truthy(dry_run), source_revision=git_revision,
                         run_link=os.environ.get(RUN_LINK_ENV))
    print(report.render())
    sys.exit(report.exit_code)


@script(constructor="runner")
def summary() -> None:
    """The exit handler: write the run's eval summary (PR-comment Markdown) to the store and print it.

    It runs whatever happened, so a failed run still explains itself. It reads the plan and
    every branch's full result (with reasons) from the store, not from parameters: a branch
    with no stored result crashed or timed out, and is reported as such.

    It always exits 0: the summary is a report, not a gate. When it cannot be built (the
    store is away after the S3 client's own retries) it prints ``summary: unavailable`` as its
    own status, and a run whose promotion was committed stays green (docs/pipelines.md).
    """
    from pydantic import ValidationError

    from config.policy import PolicyError, load_trusted
    from steps.contracts import BranchResult, EvalItem
    from steps.records import plan_key
    from steps.reports import write_run_summary
    from steps.stores.s3store import open_store
    from steps.stores.store import StoreError, get_json, run_key

    root = repo_root()
    rid = run_id()
    status = os.environ.get(WORKFLOW_STATUS_ENV, "Unknown")
    try:
        config = load_trusted(root)[0]
        store = open_store(config.store)
        planned = get_json(store, plan_key(rid))
        if planned is None:
            print(f"summary: run {rid} {status}; no eval was planned (lint, validate or plan did not pass)")
            return
        results = []
        for raw in planned.get("items", []) if isinstance(planned, dict) else []:
            item = EvalItem.model_validate(raw)
            stored = get_json(store, run_key(rid, item.artifact_id, item.dataset, BRANCH_FILE))
            if stored is None:
                results.append(BranchResult(**item.model_dump(), status="error",
                                            reasons=["no result: the branch crashed, timed out or never ran"]))
            else:
                results.append(BranchResult.model_validate(stored))
        text = write_run_summary(results, store, rid)
    except (PolicyError, StoreError, ValidationError, ValueError) as exc:
        print(f"summary: unavailable: run {rid} {status}; the summary could not be built: {exc}")
        return
    print(f"summary: run {rid} {status}; written to {store.describe()}/runs/{rid}/summary.md")
    print(text)


STAGES = {"lint": lint, "validate": validate, "plan": plan, "eval": eval_branch, "promote": promote,
          "summary": summary}
