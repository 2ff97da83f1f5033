"""What the Prompty and Dotprompt readers share: front matter with exact positions, and the
mapping of a foreign prompt onto the native model."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import ValidationError

from config.artifacts import (
    DatasetRef,
    Message,
    ModelParameters,
    PromptArtifact,
    TemplateSource,
    VariableSpec,
    check_id,
)
from config.problems import Problem
from config.validation import problems_from_error
from config.yamlio import Loaded, LoadError, parse_text

Loc = tuple[str | int, ...]


def front_matter(text: str, start: int, end: int, display: str) -> Loaded:
    """Return the YAML between ``text[start:end]`` parsed by promptci's loader, positions as in the file.

    Everything before ``start`` is blanked (newlines kept), so every line and column the
    loader reports is the one the user sees in the ``.prompty``/``.prompt`` file.
    """
    padded = re.sub(r"[^\n]", " ", text[:start]) + text[start:end]
    loaded = parse_text(padded, display)
    if not isinstance(loaded.data, dict):
        raise LoadError([loaded.problem((), "the front matter must be a mapping of fields")])
    return loaded


def line_of(text: str, offset: int) -> int:
    """Return the 1-based line of character ``offset`` in ``text``."""
    return text.count("\n", 0, offset) + 1


def mark_template_uses(loaded: Loaded, body: str, body_line: int, names: set[str]) -> dict[str, Loc]:
    """Return ``{name: ("template", name)}`` and record where each name first appears in the body,
    so problems about a variable point at its line in the template."""
    positions = loaded.positions
    used: dict[str, Loc] = {}
    for name in sorted(names):
        m = re.search(rf"\b{re.escape(name)}\b", body)
        pos = (body_line + body.count("\n", 0, m.start()), m.start() - body.rfind("\n", 0, m.start())) if m \
            else (body_line, 1)
        positions[("template", name)] = pos
        used[name] = ("template", name)
    return used


def unknown_keys(loaded: Loaded, known: set[str], fmt: str, loc: Loc = ()) -> list[Problem]:
    """Return an error per key of the mapping at ``loc`` that the format (or promptci) does not read."""
    data: Any = loaded.data
    for part in loc:
        data = data.get(part) if isinstance(data, dict) else None
    if not isinstance(data, dict):
        return []
    return [loaded.problem((*loc, k), f"unknown field '{k}' ({fmt} reads: {', '.join(sorted(known))})")
            for k in data if k not in known]


def build_prompt(loaded: Loaded, *, artifact_id: str, description: str | None, model: str,
                 params: dict[str, Any], params_loc: Loc, variables: dict[str, VariableSpec],
                 template: str, source: TemplateSource) -> tuple[PromptArtifact | None, list[Problem]]:
    """Return the native prompt for a foreign-format file (evals read from its ``evals`` key), or problems."""
    problems: list[Problem] = []
    try:
        check_id(artifact_id)
    except ValueError as exc:
        problems.append(loaded.problem((), f"the file name gives the prompt {exc}"))
    try:
        parameters = ModelParameters.model_validate(params)
    except ValidationError as exc:
        problems += problems_from_error(loaded, exc, params_loc)
        parameters = ModelParameters()
    evals: list[DatasetRef] = []
    raw_evals = loaded.data.get("evals", [])
    if not isinstance(raw_evals, list):
        problems.append(loaded.problem(("evals",), "evals must be a list of {name, path} datasets"))
    else:
        for i, ref in enumerate(raw_evals):
            try:
                evals.append(DatasetRef.model_validate(ref))
            except ValidationError as exc:
                problems += problems_from_error(loaded, exc, ("evals", i))
    if problems:
        return None, problems
    prompt = PromptArtifact(id=artifact_id, version="0.0.0", description=description or artifact_id,
                            owner=source.format, model=model, parameters=parameters,
                            messages=[Message(role="user", content=template or " ")],
                            variables=variables, evals=evals)
    return prompt.with_source(source), []


def renderer(render: Callable[[Mapping[str, Any]], list[dict[str, str]]]
             ) -> Callable[[Mapping[str, Any]], list[dict[str, str]]]:
    """Return ``render`` with its messages checked: chat roles only, text only."""
    def checked(values: Mapping[str, Any]) -> list[dict[str, str]]:
        out = render(values)
        for m in out:
            if m["role"] not in ("system", "user", "assistant", "developer"):
                raise ValueError(f"the template produced a message with role '{m['role']}'; "
                                 "use system, user or assistant")
        if not out:
            raise ValueError("the template rendered no messages")
        return out
    return checked
