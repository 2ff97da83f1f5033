"""The classifier behind category-only guardrail rules, through the configured provider.

The classifier is a chat model asked which of a rule's categories a text falls
into. Offline it is served from recordings keyed exactly like the prompts'
(``steps.providers.recordings``: model, parameters and the rendered messages),
under ``recordings/<policy-id>/``; a missing recording is an error, never an
"allow". Live it calls the catalog's OpenAI-compatible chat endpoint.

Recordings are written by ``PROMPTCI_RECORD=1`` runs, or from a reviewed table
of answers with ``python -m steps.guardrails.classifier ANSWERS.yaml``.
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from config.artifacts import ModelParameters
from config.yamlio import load_file
from steps.cli import repo_root_option
from steps.promptfoo import messages_prompt
from steps.providers.recordings import AUTHORED, params_key, recording_key, recording_path, write_recording

SYSTEM = ("You are a content classifier. Answer with the comma-separated categories from the list that the "
          "text belongs to, or with the single word none.")


class ClassifierError(Exception):
    """No answer could be had (missing recording, provider error); the case must be an error."""


def classifier_messages(text: str, categories: list[str]) -> list[dict[str, str]]:
    """Return the chat messages sent to the classifier (the recording key covers them)."""
    return [{"role": "system", "content": SYSTEM},
            {"role": "user", "content": f"Categories: {', '.join(categories)}\nText: {text}"}]


def parse_answer(answer: str, categories: list[str]) -> set[str]:
    """Return the categories named in the classifier's answer (anything else is ignored)."""
    said = {part.strip().lower() for part in answer.replace("\n", ",").split(",")}
    return {c for c in categories if c in said}


@dataclass
class ModelClassifier:
    """A classifier callable for ``PolicyEngine``: recorded, recording or live."""

    mode: str  # "recorded" | "live" | "record"
    model: str
    parameters: ModelParameters
    recordings_dir: Path
    policy_id: str
    base_url: str = "https://api.openai.com/v1"

    def __call__(self, text: str, categories: list[str]) -> set[str]:
        messages = classifier_messages(text, categories)
        pkey = params_key(self.parameters)
        if self.mode == "recorded":
            key = recording_key(self.model, pkey, messages_prompt(messages))
            path = recording_path(self.recordings_dir, self.policy_id, key)
            try:
                doc = json.loads(path.read_text("utf-8"))
                response = doc["responses"][0]
            except (OSError, ValueError, KeyError, IndexError) as exc:
                raise ClassifierError(f"policy {self.policy_id}: no classifier recording for model {self.model} "
                                      f"(expected {path}); record it with PROMPTCI_RECORD=1 or "
                                      "python -m steps.guardrails.classifier") from exc
            if "error" in response:
                raise ClassifierError(f"policy {self.policy_id}: classifier error: {response['error']}")
            return parse_answer(str(response.get("output", "")), categories)
        answer = self._live(messages)
        if self.mode == "record":
            write_recording(self.recordings_dir, self.policy_id, model=self.model, params=pkey,
                            prompt=messages_prompt(messages), messages=messages,
                            responses=[{"output": answer}], test=text[:80],
                            origin={"model": self.model, "provider": f"openai:{self.base_url}",
                                    "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
        return parse_answer(answer, categories)

    def _live(self, messages: list[dict[str, str]]) -> str:
        key = os.environ.get("OPENAI_API_KEY")
        if not key:
            raise ClassifierError("the live classifier needs OPENAI_API_KEY in the environment")
        body: dict[str, Any] = {"model": self.model, "messages": messages,
                                **self.parameters.model_dump(exclude_none=True)}
        body.pop("response_format", None)
        req = urllib.request.Request(f"{self.base_url}/chat/completions", data=json.dumps(body).encode(),
                                     headers={"Authorization": f"Bearer {key}",
                                              "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:  # noqa: S310 (a configured https endpoint)
                return str(json.load(resp)["choices"][0]["message"]["content"])
        except (OSError, ValueError, KeyError, IndexError) as exc:
            raise ClassifierError(f"policy {self.policy_id}: live classifier call failed: {exc}") from exc


@click.command()
@repo_root_option()
@click.argument("answers", type=click.Path(path_type=Path, dir_okay=False))
def main(repo_root: Path, answers: Path) -> None:
    """Write classifier recordings from ANSWERS: {policy-id: {model, categories, answers: {text: answer}}}."""
    table = load_file(answers).data or {}
    for policy_id, spec in table.items():
        params = ModelParameters.model_validate(spec.get("parameters") or {})
        for text, answer in spec["answers"].items():
            messages = classifier_messages(text, list(spec["categories"]))
            write_recording(repo_root / "recordings", policy_id, model=spec["model"], params=params_key(params),
                            prompt=messages_prompt(messages), messages=messages,
                            responses=[{"output": str(answer)}], test=text[:80], origin=AUTHORED)


if __name__ == "__main__":
    main()
