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


def make_repo(root: Path, *, names: list[str] = NAMES, extra_assert: list[dict[str, Any]] | None = None) -> EvalItem:
    """Write the greeter prompt and a golden set (one test per name) under ``root``; return its EvalItem."""
    (root / "prompts").mkdir(parents=True, exist_ok=True)
    (root / "evals" / "greeter").mkdir(parents=True, exist_ok=True)
    prompt = root / "prompts" / "greeter.yaml"
    prompt.write_text(yaml.safe_dump(PROMPT, sort_keys=False))
    tests = [{"description": f"greets {n}", "vars": {"name": n},
              "assert": [{"type": "icontains", "value": n, "metric": "personal"}, *(extra_assert or [])]}
             for n in names]
    (root / "evals" / "greeter" / "golden.yaml").write_text(yaml.safe_dump({"tests": tests}))
    return EvalItem(artifact_id="greeter", artifact_type="prompt", path="prompts/greeter.yaml", dataset="golden",
                    content_hash=content_hash(prompt.read_bytes()))


def record(root: Path, name: str, *responses: str | dict[str, Any]) -> Path:
    """Write the recording for the test of ``name``: one response per repeat (str = output)."""
    values = {"name": name, "braces": "{{not a var}}"}
    messages = render_messages([Message(**m) for m in PROMPT["messages"]], values)
    return write_recording(root / "recordings", "greeter", model="gpt-4o-mini",
                           params=params_key(ModelParameters(temperature=0)),
                           prompt=messages_prompt(messages), messages=messages,
                           responses=[r if isinstance(r, dict) else
                                      {"output": r, "tokenUsage": {"prompt": 20, "completion": 5, "total": 25}}
                                      for r in responses],
                           test=f"greets {name}", origin="authored")


def config(**eval_overrides: Any) -> PromptPipelineConfig:
    """Return a pipeline config whose defaults are the given eval thresholds."""
    base = {"min_pass_rate": 1.0, "max_regression": 0.0, "timeout_seconds": 60}
    base.update(eval_overrides)
    return PromptPipelineConfig.model_validate({"defaults": {"eval": base}})


def read_json(data: bytes | None) -> Any:
    assert data is not None
    return json.loads(data)
