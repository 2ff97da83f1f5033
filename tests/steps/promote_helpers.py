"""Builders shared by the promote, gitops and CLI tests: a git source repo, a config, signed eval records.

Records are written the way the pipeline writes them (steps/records.py, signed with the
checkout's local key), so promote reads them from the store by run id, as in a real run.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from config.pipeline import PromptPipelineConfig
from steps.contracts import BranchResult, EvalItem, content_hash
from steps.eval_results import EvalResult, RunOutcome, TestOutcome
from steps.records import EvalRecord, PlanRecord, plan_key, put_signed, record_key
from steps.signing import signing_key
from steps.stores.store import ArtifactStore, LocalStore

PROMPT = """kind: prompt
id: {aid}
version: {version}
owner: team-a
model: gpt-4o-mini
messages:
  - role: system
    content: |
      You answer support tickets for {{{{ product }}}}.
      {note}
  - role: user
    content: "{{{{ question }}}}"
"""


def make_config(tmp: Path, **promotion: object) -> PromptPipelineConfig:
    """Return a config whose GitOps repo is a (not yet existing) bare repo under ``tmp``."""
    data: dict[str, object] = {
        "defaults": {"eval": {"min_pass_rate": 0.8, "max_regression": 0.1}},
        "promotion": promotion or {"chain": ["dev", "staging", "prod"],
                                   "environments": {"staging": {"min_pass_rate": 0.9},
                                                    "prod": {"min_pass_rate": 0.95,
                                                             "manual_approval": True}}},
        "gitops": {"repo_url": str(tmp / "remote" / "gitops.git"), "branch": "main",
                   "path": "environments", "namespace": "genai", "author_name": "Promo Bot",
                   "author_email": "promo@example.test"},
        "store": {"kind": "local", "root": str(tmp / "store")},
    }
    return PromptPipelineConfig.model_validate(data)


@dataclass
class Run:
    """One pipeline run as promote sees it: its id, the source commit, and what was planned."""

    run_id: str
    revision: str
    planned: list[EvalItem]

    @property
    def content_hash(self) -> str:
        return self.planned[0].content_hash


def write_prompt(root: Path, aid: str, version: str = "1.0.0", note: str = "") -> str:
    """Write ``prompts/{aid}.yaml`` under ``root``; return its repo-relative path."""
    rel = f"prompts/{aid}.yaml"
    (root / "prompts").mkdir(parents=True, exist_ok=True)
    (root / rel).write_text(PROMPT.format(aid=aid, version=version, note=note or f"Artifact {aid}."))
    return rel


_CLOCK = itertools.count(int(time.time()) - 100_000, 10)


def commit_source(root: Path, when: int | None = None, message: str = "change") -> str:
    """Commit everything under ``root`` (a git repo, created if needed) at committer time ``when``; return the sha.

    Without ``when``, commits get strictly increasing past times (ten seconds apart), so
    a later commit is always the newer source revision, as it would be in real life.
    """
    when = next(_CLOCK) if when is None else when
    if not (root / ".git").exists():
        git(root, "init", "-q", "-b", "main")
        (root / ".gitignore").write_text(".promptci/\n")
    env = {**os.environ, "GIT_AUTHOR_NAME": "dev", "GIT_AUTHOR_EMAIL": "dev@example.test",
           "GIT_COMMITTER_NAME": "dev", "GIT_COMMITTER_EMAIL": "dev@example.test"}
    env["GIT_COMMITTER_DATE"] = env["GIT_AUTHOR_DATE"] = f"@{when} +0000"
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run(["git", "commit", "-q", "--allow-empty", "-m", message], cwd=root, check=True, env=env)
    return git(root, "rev-parse", "HEAD").strip()


def eval_result(aid: str, dataset: str, chash: str, pass_rate: float, scores: dict[str, float] | None = None,
                tests: int = 20) -> EvalResult:
    """Return an EvalResult of ``tests`` tests of which ``round(pass_rate * tests)`` passed."""
    passes = round(pass_rate * tests)
    return EvalResult(artifact_id=aid, dataset=dataset, content_hash=chash, model="gpt-4o-mini",
                      provider="recorded", promptfoo_version="0.121.20", repeats=1, tests=[
                          TestOutcome(index=i, test_id=f"t{i}", description=f"t{i}", runs=[
                              RunOutcome(repeat=0, passed=i < passes, score=1.0 if i < passes else 0.0,
                                         named_scores=dict(scores or {}))])
                          for i in range(tests)])


def run_for(root: Path, aid: str, store: ArtifactStore, *, run_id: str | None = None, pass_rate: float = 1.0,
            status: str = "passed", datasets: tuple[str, ...] = ("golden",),
            scores: dict[str, float] | None = None, when: int | None = None, path: str | None = None,
            artifact_type: str = "prompt", skip: tuple[str, ...] = (), unmeasured: bool = False) -> Run:
    """Commit the artifact file on disk, then store the run's signed plan and eval records, as the
    pipeline's plan and eval stages do. ``skip``: datasets planned whose branch wrote no record;
    ``unmeasured``: records that claim a verdict without a measured EvalResult.
    Run ids default to ``run-N``, N counting the runs already in the store."""
    rel = path or f"prompts/{aid}.yaml"
    if run_id is None:
        run_id = f"run-{sum(k.endswith('/plan.json') for k in store.list_keys('runs/')) + 1}"
    revision = commit_source(root, when, f"{aid} for {run_id}")
    h = content_hash((root / rel).read_bytes())
    key = signing_key(root, create=True)
    planned = [EvalItem(artifact_id=aid, artifact_type=artifact_type, path=rel, dataset=d, content_hash=h)
               for d in datasets]
    put_signed(store, plan_key(run_id), PlanRecord(run_id=run_id, items=planned), key)
    for item in planned:
        if item.dataset in skip:
            continue
        result = None if unmeasured else eval_result(aid, item.dataset, h, pass_rate, scores)
        branch = BranchResult(**item.model_dump(), status=status,  # type: ignore[arg-type]
                              pass_rate=None if result is None else pass_rate, metric_scores=scores or {},
                              tests_total=0 if result is None else len(result.tests),
                              tests_passed=0 if result is None else sum(t.passed(1) for t in result.tests),
                              reasons=[] if status == "passed" else ["3 of 10 tests failed"])
        put_signed(store, record_key(run_id, aid, item.dataset),
                   EvalRecord(run_id=run_id, branch=branch, result=result), key)
    return Run(run_id, revision, planned)


def store_of(config: PromptPipelineConfig) -> LocalStore:
    return LocalStore(config.store.root)


def promote(src: Path, config: PromptPipelineConfig, run: Run, env: str, **kw: object):  # type: ignore[no-untyped-def]
    """Run promote_run for ``run`` on the checkout ``src`` with the run's revision and the local key."""
    from steps.promote import promote_run

    kw.setdefault("source_revision", run.revision)
    return promote_run(run.run_id, env=env, repo_root=src, config=config, store=store_of(config),
                       key=signing_key(src), **kw)  # type: ignore[arg-type]


def git(cwd: Path, *args: str) -> str:
    """Return the stdout of a git command (test-side inspection, not the code under test)."""
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def remote_of(config: PromptPipelineConfig) -> Path:
    return Path(config.gitops.repo_url)


def commit_count(config: PromptPipelineConfig) -> int:
    return int(git(remote_of(config), "rev-list", "--count", "main").strip())


def show(config: PromptPipelineConfig, path: str, rev: str = "main") -> str:
    """Return a file of the remote GitOps repo at ``rev``."""
    return git(remote_of(config), "show", f"{rev}:{path}")


def live_content(config: PromptPipelineConfig, env: str, aid: str) -> str:
    """Return the artifact file content held by the ConfigMap of ``aid`` in ``env``."""
    doc = yaml.safe_load(show(config, f"environments/{env}/promptci-prompt-{aid}.yaml"))
    return str(doc["data"][f"{aid}.yaml"])


def run_of_many(root: Path, aids: list[str], store: ArtifactStore, run_id: str) -> Run:
    """Commit the files of ``aids`` on disk, then store ONE run's signed plan and passed records of all of
    them (golden, 20 of 20), as plan and eval do for a run that changed several artifacts."""
    revision = commit_source(root, None, f"{', '.join(aids)} for {run_id}")
    key = signing_key(root, create=True)
    planned = [EvalItem(artifact_id=aid, artifact_type="prompt", path=f"prompts/{aid}.yaml", dataset="golden",
                        content_hash=content_hash((root / f"prompts/{aid}.yaml").read_bytes())) for aid in aids]
    put_signed(store, plan_key(run_id), PlanRecord(run_id=run_id, items=planned), key)
    for item in planned:
        result = eval_result(item.artifact_id, item.dataset, item.content_hash, 1.0)
        branch = BranchResult(**item.model_dump(), status="passed", pass_rate=1.0, tests_total=20, tests_passed=20)
        put_signed(store, record_key(run_id, item.artifact_id, item.dataset),
                   EvalRecord(run_id=run_id, branch=branch, result=result), key)
    return Run(run_id, revision, planned)
