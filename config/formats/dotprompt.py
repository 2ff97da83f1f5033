"""Dotprompt (``.prompt``) files, read and rendered by Google's ``dotpromptz`` package.

Why ``dotpromptz`` (PyPI) and not the npm ``dotprompt``: both come from google/dotprompt
and implement the same spec, but the Python one runs in-process with lint and validate
(no Node child process per file or per test, no JSON bridge for positions), is pure
Python (``dotpromptz-handlebars``) and installs offline from the same pip cache as the
rest of promptci. Its ``Dotprompt.parse`` validates the front matter, ``picoschema_to_json_schema``
expands Picoschema, and ``Dotprompt.render`` renders Handlebars with Dotprompt's helpers
(``{{role}}``, ``{{#if}}``, ``{{#each}}``, ``{{json}}``...) and partials, which is what a
test is rendered with here.

Partials follow Dotprompt's directory convention: ``{{> tone}}`` is the file ``_tone.prompt``
beside the prompt. They are read through the prompts that include them, never as prompts.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dotpromptz import DataArgument, Dotprompt, FrontmatterError, picoschema_to_json_schema
from dotpromptz._parse import RESERVED_METADATA_KEYWORDS, identify_frontmatter
from dotpromptz_handlebars._render import compile_template  # the renderer's own parse, for variables used
from dotpromptz_handlebars._types import Block, Mustache, Partial

from config.artifacts import PromptArtifact, TemplateSource, VariableSpec
from config.formats.common import build_prompt, front_matter, line_of, mark_template_uses, renderer, unknown_keys
from config.problems import Problem
from config.yamlio import Loaded, LoadError, read_text

CONFIG = {"temperature": "temperature", "maxOutputTokens": "max_tokens", "topP": "top_p",
          "stopSequences": "stop", "seed": "seed"}
HELPERS = {"role", "history", "section", "media", "json", "ifEquals", "unlessEquals", "if", "unless", "each",
           "with", "lookup", "log"}
SCOPED = {"each", "with"}  # Handlebars: inside these blocks names resolve against the item, not the input
JSON_TYPES = {"string": "string", "number": "number", "integer": "integer", "boolean": "boolean",
              "array": "list", "object": "object"}
ROLES = {"system": "system", "user": "user", "model": "assistant"}


def _var(token: str) -> str | None:
    """Return the input variable a Handlebars path reads (``user.name`` -> ``user``), or None."""
    if not token or token[0] in "\"'@" or token in ("this", "true", "false", "null", "undefined") \
            or token.startswith(("this.", "../", "./")) or token.lstrip("-").replace(".", "").isdigit():
        return None
    return token.split(".")[0].split("/")[0]


def _walk(nodes: list[Any], partials: dict[str, list[Any]], out: set[str], seen: set[str]) -> None:
    for node in nodes:
        if isinstance(node, Mustache | Block):
            call = node.call
            name = call.get("name", "")
            args = [a for a in call.get("args", []) if isinstance(a, str)]
            tokens = args + [v for v in call.get("hash", {}).values() if isinstance(v, str)]
            if name not in HELPERS and not args:
                tokens = [name]
            out.update(v for t in tokens if (v := _var(t)))
            if isinstance(node, Block):
                if name not in SCOPED:
                    _walk(node.body, partials, out, seen)
                _walk(node.inverse, partials, out, seen)
        elif isinstance(node, Partial) and node.name in partials and node.name not in seen:
            _walk(partials[node.name], partials, out, seen | {node.name})


def _partials(body: str, directory: Path, root: Path, display: str, line: int) -> dict[str, str]:
    """Return the source of every partial the template (transitively) includes, read from ``_name.prompt``."""
    found: dict[str, str] = {}
    todo = [body]
    while todo:
        for node in _flatten(_compile(todo.pop(), display, line)):
            if isinstance(node, Partial) and node.name not in found:
                path = directory / f"_{node.name}.prompt"
                rp = os.path.relpath(os.path.realpath(path), os.path.realpath(root))
                if not path.is_file() or rp.startswith(".."):
                    raise LoadError([Problem(display, line, 1, "template", f"partial '{node.name}' not found: "
                                                                           f"expected _{node.name}.prompt beside "
                                                                           "the prompt, inside the repository")])
                found[node.name] = read_text(path, rp)
                todo.append(found[node.name])
    return found


def _flatten(nodes: list[Any]) -> list[Any]:
    out = []
    for node in nodes:
        out.append(node)
        if isinstance(node, Block):
            out += _flatten(node.body) + _flatten(node.inverse)
    return out


def _compile(source: str, display: str, line: int) -> list[Any]:
    try:
        return compile_template(source)
    except (ValueError, RecursionError) as exc:
        raise LoadError([Problem(display, line, 1, "template", f"Handlebars syntax error: {exc}")]) from exc


def _variables(schema: dict[str, Any], defaults: Any) -> dict[str, VariableSpec]:
    """Return the declared variables of a JSON schema (expanded from Picoschema) with ``input.default``."""
    required = set(schema.get("required", []))
    defaults = defaults if isinstance(defaults, dict) else {}
    out = {}
    for name, prop in (schema.get("properties") or {}).items():
        types = prop.get("type", "string") if isinstance(prop, dict) else "string"
        if isinstance(types, list):
            types = next((t for t in types if t != "null"), "string")
        out[name] = VariableSpec(type=JSON_TYPES.get(types, "object"),  # type: ignore[arg-type]
                                 required=name in required, default=defaults.get(name),
                                 description=prop.get("description") if isinstance(prop, dict) else None)
    return out


async def _expand(schema: Any) -> dict[str, Any]:
    """Return the JSON schema of a Picoschema (or JSON schema) input declaration, ``{}`` for none."""
    return await picoschema_to_json_schema(schema) or {}


def read_dotprompt(text: str, display: str, artifact_id: str, path: Path, root: Path
                   ) -> tuple[PromptArtifact | None, Loaded, list[Problem]]:
    """Return (prompt, front matter, problems) for a ``.prompt`` file; raise LoadError if unreadable."""
    try:
        ident = identify_frontmatter(text, source_name=display)
    except FrontmatterError as exc:
        raise LoadError([Problem(display, exc.line, exc.column, "", f"Dotprompt: {exc.reason}")]) from exc
    if not ident.declared:
        raise LoadError([Problem(display, 1, 1, "", "a Dotprompt file starts with YAML front matter between "
                                                    "'---' lines (promptci needs at least 'model')")])
    breaks = [m.end() for m in re.finditer(r"\r\n|\r|\n", text)]
    start = breaks[ident.content_line - 2]  # the front matter starts on the line after the opening '---'
    loaded = front_matter(text, start, start + len(ident.frontmatter), display)
    body_at = len(text) - len(ident.body) + (len(ident.body) - len(ident.body.lstrip()))
    body_line = line_of(text, body_at)
    problems = [p for p in unknown_keys(loaded, {*RESERVED_METADATA_KEYWORDS, "metadata", "evals"}, "Dotprompt")
                if "." not in p.field]  # namespaced keys (a.b) are Dotprompt extensions
    problems += unknown_keys(loaded, set(CONFIG), "promptci", ("config",))
    dp = Dotprompt()
    try:
        parsed: Any = dp.parse(text, source_name=display)
    except FrontmatterError as exc:
        return None, loaded, problems + [Problem(display, exc.line, exc.column, "", f"Dotprompt: {exc.reason}")]
    if not isinstance(parsed.model, str) or not parsed.model:
        problems.append(loaded.problem(("model",), "model is required: a model id or alias from "
                                                   "config/models.yaml"))
    schema: dict[str, Any] = {}
    if parsed.input is not None and parsed.input.schema is not None:
        try:
            schema = asyncio.run(_expand(parsed.input.schema))
        except (ValueError, TypeError) as exc:
            msg = str(exc).rstrip(".")
            problems.append(loaded.problem(("input", "schema"), msg if msg.startswith("Picoschema") else
                                           f"Picoschema: {msg}"))
    variables = _variables(schema, parsed.input.default if parsed.input else None)
    partial_sources = _partials(parsed.template, path.parent, root, display, body_line)
    used: set[str] = set()
    _walk(_compile(parsed.template, display, body_line),
          {n: _compile(s, display, body_line) for n, s in partial_sources.items()}, used, set())
    if problems:
        return None, loaded, problems
    engine = Dotprompt(partials=partial_sources)

    def render(values: Mapping[str, Any]) -> list[dict[str, str]]:
        rendered: Any = asyncio.run(engine.render(text, DataArgument(input=dict(values))))
        out = []
        for msg in rendered.messages:
            parts = [getattr(p, "text", None) for p in msg.content]
            if any(t is None for t in parts):
                raise ValueError("the template renders media or tool parts; promptci evaluates text prompts")
            role = getattr(msg.role, "value", str(msg.role))
            out.append({"role": ROLES.get(role, role), "content": "".join(t or "" for t in parts)})
        return out

    source = TemplateSource("dotprompt", renderer(render),
                            mark_template_uses(loaded, ident.body, body_line, used))
    params = {CONFIG[k]: v for k, v in (parsed.config or {}).items() if k in CONFIG}
    prompt, more = build_prompt(loaded, artifact_id=artifact_id, description=parsed.description or parsed.name,
                                model=str(parsed.model), params=params, params_loc=("config",),
                                variables=variables, template=parsed.template, source=source)
    return prompt, loaded, more
