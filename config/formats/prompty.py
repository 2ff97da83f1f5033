"""Prompty (``.prompty``) files, read and rendered by Microsoft's ``prompty`` package.

``prompty`` (PyPI, ``prompty[jinja2,mustache]``) is the format's own runtime: its loader
(``Agent.load``) types the front matter, and ``prompty.prepare`` renders the body with
Jinja2 (sandboxed) or Mustache (chevron) and splits it into ``system:``/``user:``/
``assistant:`` messages, so a test renders here exactly as it does in Prompty. promptci
adds what the runtime leaves out: YAML positions and duplicate keys (our loader reads the
front matter first), unknown keys, the variables the template uses vs the declared
``inputs``, and the model id checked against the catalog (by validate).

``model.connection`` is dropped before loading: it says how to reach a provider at run
time (often ``${env:...}`` secrets); promptci picks the provider from its catalog, and
never resolves environment references while linting.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import chevron.tokenizer
import jinja2
import jinja2.meta
import jinja2.sandbox
import prompty
from prompty.core.errors import PromptyLoadError
from prompty.core.utils import _yaml_regex  # the runtime's own front-matter split

from config.artifacts import PromptArtifact, TemplateSource, VariableSpec
from config.formats.common import build_prompt, front_matter, line_of, mark_template_uses, renderer, unknown_keys
from config.problems import Problem
from config.yamlio import Loaded, LoadError

AGENT_KEYS = {"name", "displayName", "description", "metadata", "inputs", "outputs", "model", "template",
              "evals"}  # evals: promptci's golden datasets, as in native prompts (Prompty ignores the key)
MODEL_KEYS = {"id", "provider", "apiType", "connection", "options"}
OPTIONS = {"temperature": "temperature", "maxOutputTokens": "max_tokens", "topP": "top_p",
           "frequencyPenalty": "frequency_penalty", "presencePenalty": "presence_penalty", "seed": "seed",
           "stopSequences": "stop"}
KINDS = {"string": "string", "number": "number", "float": "number", "integer": "integer", "boolean": "boolean",
         "array": "list", "object": "object"}
_PATH = re.compile(r"^([A-Za-z_][\w.\[\]]*): (.+)$")


def _loc(path: str) -> tuple[str | int, ...]:
    """Return a location tuple for a Prompty error path such as ``inputs[1].items``."""
    out: list[str | int] = []
    for part in re.findall(r"[^.\[\]]+", path):
        out.append(int(part) if part.isdigit() else part)
    return tuple(out)


def _agent(loaded: Loaded, body: str) -> tuple[Any, list[Problem]]:
    data = dict(loaded.data)
    if isinstance(data.get("model"), dict):
        data["model"] = {k: v for k, v in data["model"].items() if k != "connection"}
    data.pop("evals", None)
    try:
        return prompty.Agent.load({**data, "instructions": body}, prompty.LoadContext()), []
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        m = _PATH.match(str(exc))
        loc, msg = (_loc(m.group(1)), m.group(2)) if m else ((), str(exc))
        return None, [loaded.problem(loc, f"Prompty: {msg}")]


def _used(kind: str, body: str, display: str, body_line: int) -> set[str]:
    """Return the variables the template reads; raise LoadError for a template syntax error."""
    if kind == "jinja2":
        env = jinja2.sandbox.ImmutableSandboxedEnvironment()
        try:
            return set(jinja2.meta.find_undeclared_variables(env.parse(body)))
        except jinja2.TemplateSyntaxError as exc:
            raise LoadError([Problem(display, body_line + (exc.lineno or 1) - 1, 1, "template",
                                     f"Jinja2 syntax error: {exc.message}")]) from exc
    names: set[str] = set()
    try:
        for tag, key in chevron.tokenizer.tokenize(body):
            if tag in ("variable", "no escape", "section", "inverted section") and key != ".":
                names.add(key.split(".")[0])
    except chevron.tokenizer.ChevronError as exc:
        raise LoadError([Problem(display, body_line, 1, "template", f"Mustache syntax error: {exc}")]) from exc
    return names


def read_prompty(text: str, display: str, artifact_id: str) -> tuple[PromptArtifact | None, Loaded, list[Problem]]:
    """Return (prompt, front matter, problems) for a ``.prompty`` file; raise LoadError if unreadable."""
    m = _yaml_regex.search(text) if re.match(r"^\s*---", text) else None
    if m is None:
        raise LoadError([Problem(display, 1, 1, "", "a .prompty file starts with YAML front matter between "
                                                    "'---' lines, then the template")])
    loaded = front_matter(text, m.start(1), m.end(1), display)
    body, body_line = m.group(2), line_of(text, m.start(2))
    problems = unknown_keys(loaded, AGENT_KEYS, "Prompty") + unknown_keys(loaded, MODEL_KEYS, "Prompty",
                                                                          ("model",))
    problems += unknown_keys(loaded, set(OPTIONS), "promptci", ("model", "options"))
    agent, more = _agent(loaded, body)
    problems += more
    if agent is None:
        return None, loaded, problems
    model_id = getattr(agent.model, "id", None)
    if not isinstance(model_id, str) or not model_id:
        problems.append(loaded.problem(("model",), "model.id is required: a model id or alias from "
                                                   "config/models.yaml"))
    raw_opts = (loaded.data.get("model") or {}).get("options") if isinstance(loaded.data.get("model"), dict) \
        else None
    params = {OPTIONS[k]: v for k, v in (raw_opts or {}).items() if k in OPTIONS} if isinstance(raw_opts, dict) \
        else {}
    variables: dict[str, VariableSpec] = {}
    for i, prop in enumerate(agent.inputs or []):
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", prop.name or ""):
            problems.append(loaded.problem(("inputs", i), f"input name {prop.name!r} must be an identifier "
                                                          "(letters, digits, '_')"))
        elif prop.kind not in KINDS:
            problems.append(loaded.problem(("inputs", i), f"input kind '{prop.kind}' is not supported; use one "
                                                          f"of {', '.join(KINDS)}"))
        else:
            variables[prop.name] = VariableSpec(type=KINDS[prop.kind], required=bool(prop.required),  # type: ignore[arg-type]
                                                default=prop.default, description=prop.description)
    kind = agent.template.format.kind if agent.template and agent.template.format else "jinja2"
    parser = agent.template.parser.kind if agent.template and agent.template.parser else "prompty"
    if parser != "prompty":
        problems.append(loaded.problem(("template", "parser"), f"template parser {parser!r} is not one Prompty "
                                                               "has; use prompty"))
    if kind not in ("jinja2", "mustache"):
        problems.append(loaded.problem(("template", "format"), f"template format '{kind}' is not one Prompty "
                                                               "renders; use jinja2 or mustache"))
        return None, loaded, problems
    used = mark_template_uses(loaded, body, body_line, _used(kind, body, display, body_line))

    def render(values: Mapping[str, Any]) -> list[dict[str, str]]:
        try:
            messages = prompty.prepare(agent, dict(values))
        except PromptyLoadError as exc:
            if getattr(exc, "field", None):
                raise KeyError(exc.field) from exc
            raise ValueError(str(exc)) from exc
        return [{"role": str(msg.role), "content": "".join(getattr(p, "value", "") for p in msg.parts)}
                for msg in messages]

    if problems:
        return None, loaded, problems
    source = TemplateSource(f"prompty/{kind}", renderer(render), used)
    prompt, more = build_prompt(loaded, artifact_id=artifact_id, description=agent.description or agent.name,
                                model=str(model_id), params=params, params_loc=("model", "options"),
                                variables=variables, template=body, source=source)
    return prompt, loaded, more
