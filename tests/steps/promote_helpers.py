"""Builders shared by the promote, gitops and CLI tests: a source repo, a config, eval results."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

from config.pipeline import PromptPipelineConfig
from steps.contracts import BranchResult, EvalItem, content_hash
from steps.stores.store import LocalStore

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
    """One pipeline run's inputs to promote: what plan emitted and what eval returned."""

    planned: list[EvalItem]
    results: list[BranchResult]


def write_prompt(root: Path, aid: str, version: str = "1.0.0", note: str = "") -> str:
    """Write ``prompts/{aid}.yaml`` under ``root``; return its repo-relative path."""
    rel = f"prompts/{aid}.yaml"
    (root / "prompts").mkdir(parents=True, exist_ok=True)
    (root / rel).write_text(PROMPT.format(aid=aid, version=version, note=note or f"Artifact {aid}."))
    return rel


def run_for(root: Path, aid: str, *, pass_rate: float = 1.0, status: str = "passed",
            datasets: tuple[str, ...] = ("golden",), scores: dict[str, float] | None = None,
            baseline: float | None = None) -> Run:
    """Return the planned items and passing (or not) results for the artifact file already on disk."""
    rel = f"prompts/{aid}.yaml"
    h = content_hash((root / rel).read_bytes())
    planned = [EvalItem(artifact_id=aid, artifact_type="prompt", path=rel, dataset=d, content_hash=h)
               for d in datasets]
    results = [BranchResult(artifact_id=aid, artifact_type="prompt", path=rel, dataset=d, content_hash=h,
                            status=status,  # type: ignore[arg-type]
                            pass_rate=pass_rate, metric_scores=scores or {}, tests_total=10,
                            tests_passed=round(pass_rate * 10), baseline_pass_rate=baseline,
                            reasons=[] if status == "passed" else ["3 of 10 tests failed"])
               for d in datasets]
    return Run(planned, results)


def store_of(config: PromptPipelineConfig) -> LocalStore:
    return LocalStore(config.store.root)


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
