"""Rendering prompts: ``{{variable}}`` placeholders in native messages, or the format's own runtime.

The native syntax is deliberately the small common subset of promptfoo's Nunjucks
and GitHub Models' templating: ``{{ name }}`` only, no filters or logic, so that
every tool renders a prompt the same way. Prompts read from another format
(GitHub Models, Prompty, Dotprompt) carry their own renderer
(:class:`config.artifacts.TemplateSource`), and :func:`render_prompt` uses it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from config.artifacts import VAR_PATTERN, Message, PromptArtifact, VariableSpec


class MissingVariable(KeyError):
    """A placeholder has no value and no default."""


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def resolve_vars(values: Mapping[str, Any], spec: Mapping[str, VariableSpec]) -> dict[str, Any]:
    """Return ``values`` completed with the declared defaults of variables not supplied."""
    out = {k: v.default for k, v in spec.items() if v.default is not None}
    out.update(values)
    return out


def render_text(template: str, values: Mapping[str, Any]) -> str:
    """Return ``template`` with every placeholder replaced; raise MissingVariable if one has no value."""

    def sub(m: Any) -> str:
        name = m.group(1)
        if name not in values:
            raise MissingVariable(name)
        return _text(values[name])

    return VAR_PATTERN.sub(sub, template)


def render_messages(messages: Sequence[Message], values: Mapping[str, Any]) -> list[dict[str, str]]:
    """Return chat messages (``{"role", "content"}`` dicts) rendered with ``values``."""
    return [{"role": m.role, "content": render_text(m.content, values)} for m in messages]


class RenderError(ValueError):
    """The format's runtime could not render the template with these values (not a missing variable)."""


def render_prompt(prompt: PromptArtifact, values: Mapping[str, Any]) -> list[dict[str, str]]:
    """Return the chat messages of ``prompt`` rendered with ``values`` (defaults already applied).

    Raises MissingVariable for a variable with no value and RenderError for any other
    failure of a foreign format's runtime, so callers report one line, never a traceback.
    """
    source = prompt.source
    if source is None:
        return render_messages(prompt.messages, values)
    try:
        return source.render(values)
    except KeyError as exc:
        raise MissingVariable(exc.args[0] if exc.args else "?") from exc
    except Exception as exc:  # noqa: BLE001 - a template runtime's failure on user input is a user-facing problem
        raise RenderError(f"{source.format} could not render the template: {type(exc).__name__}: {exc}") from exc


# Anything template-like that is not a plain {{name}}: Jinja/Nunjucks blocks, filters, expressions.
_TEMPLATE_TAG = re.compile(r"{%.*?%}|{{(?!\s*[A-Za-z_][A-Za-z0-9_]*\s*}}).*?}}", re.S)


def unsupported_syntax(content: str) -> list[str]:
    """Return each template construct a native prompt cannot hold (``{% for %}``, ``{{ x | upper }}``)."""
    return [m.group(0)[:40] for m in _TEMPLATE_TAG.finditer(content)]


NATIVE_SYNTAX_HINT = ("templates use {{name}} only; Jinja blocks, filters and expressions are not supported "
                      "in native prompts (use a Prompty .prompty file for Jinja2)")
