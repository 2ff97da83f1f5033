"""promptfoo custom provider (Python) that runs a guardrail policy: the eval's evaluator is the engine itself.

promptfoo loads this file in a persistent worker and calls ``call_api`` once per
golden case. The prompt is the case (``{"input", "output"}``) as JSON inside one
user message (``steps.promptfoo.messages_prompt``); the output is the engine's
decision as JSON, which the case's assertions check. Category-only rules ask
the classifier (``steps.guardrails.classifier``) in the provider mode of the run.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from config.artifacts import GuardrailPolicyArtifact
from config.settings import get_settings
from steps.artifact_files import load_artifact
from steps.guardrails.classifier import ClassifierError, ModelClassifier
from steps.guardrails.engine import PolicyEngine


def log_call(line: dict[str, Any]) -> None:
    """Append one line per provider call to ``$PROMPTCI_CALL_LOG`` (tests count calls with it)."""
    log = get_settings().call_log
    if log:
        with open(log, "a", encoding="utf-8") as f:
            f.write(json.dumps(line) + "\n")


@lru_cache(maxsize=8)
def _engine(policy_path: str, repo_root: str, mode: str, model: str, recordings_dir: str) -> PolicyEngine:
    af = load_artifact(Path(policy_path), Path(repo_root))
    policy = af.artifact
    assert isinstance(policy, GuardrailPolicyArtifact)
    classifier = None
    if policy.classifier is not None:
        classifier = ModelClassifier(mode=mode, model=model, parameters=policy.classifier.parameters,
                                     recordings_dir=Path(recordings_dir), policy_id=policy.id)
    return PolicyEngine(policy, classifier)


def call_api(prompt: str, options: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    """Return ``{"output": decision JSON}`` for one case, or ``{"error": ...}`` (the branch is then an error)."""
    cfg = options.get("config") or {}
    case = json.loads(json.loads(prompt)[0]["content"])
    test = ((context or {}).get("test") or {}).get("description", "")
    log_call({"artifact": cfg.get("artifact_id"), "test": test, "kind": "guardrail"})
    try:
        engine = _engine(cfg["policy_path"], cfg["repo_root"], cfg["mode"], cfg.get("classifier_model") or "",
                         cfg["recordings_dir"])
        decision = engine.evaluate(input=case.get("input"), output=case.get("output"))
    except ClassifierError as exc:
        return {"error": f"test '{test}': {exc}"}
    return {"output": json.dumps(decision.as_dict(), ensure_ascii=False)}
