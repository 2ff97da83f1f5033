"""Rendering ``{{variable}}`` placeholders in prompt messages.

The syntax is deliberately the small common subset of promptfoo's Nunjucks and
GitHub Models' templating: ``{{ name }}`` only, no filters or logic, so that
every tool renders a prompt the same way.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from config.artifacts import VAR_PATTERN, Message, VariableSpec


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
