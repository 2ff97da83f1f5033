"""Helpers for the eval-stage tests: a tiny repo with one prompt, its golden set and recordings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from config.artifacts import Message, ModelParameters
from config.pipeline import PromptPipelineConfig
from steps.contracts import EvalItem, content_hash
from steps.promptfoo import messages_prompt
from steps.providers.recordings import params_key, write_recording
from steps.render import render_messages

PROMPT: dict[str, Any] = {
    "kind": "prompt", "id": "greeter", "version": "1.0.0", "description": "Greets a user.", "owner": "qa",
    "model": "gpt-4o-mini", "parameters": {"temperature": 0},
    "messages": [{"role": "system", "content": "Greet the user by name. Keep {{braces}} literal."},
                 {"role": "user", "content": "My name is {{name}}."}],
    "variables": {"name": {"type": "string"}, "braces": {"type": "string", "default": "{{not a var}}"}},
    "evals": [{"name": "golden", "path": "evals/greeter/golden.yaml"}],
}
NAMES = ["Ada", "Grace", "Linus"]


def make_repo(root: Path, *, names: list[str] = NAMES, extra_assert: list[dict[str, Any]] | None = None,
              prompt_id: str = "greeter", datasets: dict[str, list[str]] | None = None) -> EvalItem:
    """Write a greeter prompt and its golden sets (one test per name) under ``root``; return the first's EvalItem.

    ``datasets`` maps dataset names to their names (default: ``golden`` with ``names``).
    """
    datasets = datasets or {"golden": names}
    (root / "prompts").mkdir(parents=True, exist_ok=True)
    (root / "evals" / prompt_id).mkdir(parents=True, exist_ok=True)
    prompt = root / "prompts" / f"{prompt_id}.yaml"
    doc = {**PROMPT, "id": prompt_id, "evals": [{"name": d, "path": f"evals/{prompt_id}/{d}.yaml"} for d in datasets]}
    prompt.write_text(yaml.safe_dump(doc, sort_keys=False))
    for dataset, people in datasets.items():
        tests = [{"description": f"greets {n}", "vars": {"name": n},
                  "assert": [{"type": "icontains", "value": n, "metric": "personal"}, *(extra_assert or [])]}
                 for n in people]
        (root / "evals" / prompt_id / f"{dataset}.yaml").write_text(yaml.safe_dump({"tests": tests}))
    return EvalItem(artifact_id=prompt_id, artifact_type="prompt", path=f"prompts/{prompt_id}.yaml",
                    dataset=next(iter(datasets)), content_hash=content_hash(prompt.read_bytes()))


def record(root: Path, name: str, *responses: str | dict[str, Any], prompt_id: str = "greeter") -> Path:
    """Write the recording for the test of ``name``: one response per repeat (str = output)."""
    values = {"name": name, "braces": "{{not a var}}"}
    messages = render_messages([Message(**m) for m in PROMPT["messages"]], values)
    return write_recording(root / "recordings", prompt_id, model="gpt-4o-mini",
                           params=params_key(ModelParameters(temperature=0)),
                           prompt=messages_prompt(messages), messages=messages,
                           responses=[r if isinstance(r, dict) else
                                      {"output": r, "tokenUsage": {"prompt": 20, "completion": 5, "total": 25}}
                                      for r in responses],
                           test=f"greets {name}", origin="authored")


def config(overrides: dict[str, dict[str, Any]] | None = None, **eval_overrides: Any) -> PromptPipelineConfig:
    """Return a pipeline config whose defaults are the given eval thresholds.

    ``overrides`` maps an artifact id (or glob) to the eval thresholds it gets instead.
    """
    base = {"min_pass_rate": 1.0, "max_regression": 0.0, "timeout_seconds": 60}
    base.update(eval_overrides)
    return PromptPipelineConfig.model_validate({
        "defaults": {"eval": base},
        "overrides": [{"match": m, "eval": ev} for m, ev in (overrides or {}).items()]})


def read_json(data: bytes | None) -> Any:
    assert data is not None
    return json.loads(data)
