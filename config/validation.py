"""Turn Pydantic validation errors into ``path:line:col: field: message`` problems."""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ValidationError

from config.problems import Problem
from config.yamlio import Loaded

M = TypeVar("M", bound=BaseModel)

_MESSAGES = {
    "extra_forbidden": "unknown field",
    "missing": "required field is missing",
}


def problems_from_error(loaded: Loaded, exc: ValidationError, prefix: tuple[str | int, ...] = ()
                        ) -> list[Problem]:
    """Return one Problem per Pydantic error, anchored at the offending key or value."""
    out = []
    for err in exc.errors(include_url=False):
        loc = tuple(p for p in (*prefix, *err["loc"]) if not (isinstance(p, str) and "[" in p))
        msg = _MESSAGES.get(err["type"], err["msg"])
        if err["type"] == "extra_forbidden":
            msg = f"unknown field '{loc[-1]}'" if loc else msg
        elif err["type"] not in _MESSAGES and err["type"] != "value_error" and "input" in err \
                and not isinstance(err["input"], dict | list):
            msg = f"{msg} (got {err['input']!r})"
        out.append(loaded.problem(loc, msg.removeprefix("Value error, ")))
    return out


def validate_loaded(model: type[M], loaded: Loaded) -> tuple[M | None, list[Problem]]:
    """Return (instance, []) when ``loaded.data`` fits ``model``, else (None, problems)."""
    try:
        return model.model_validate(loaded.data), []
    except ValidationError as exc:
        return None, problems_from_error(loaded, exc)
