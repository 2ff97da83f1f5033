"""GitHub Models ``.prompt.yml`` files, read with the rules of gh-models' own source.

Every rule below is pinned to github/gh-models by tests/config/test_github_models_parity.py:

* ``pkg/prompt/prompt.go``
  - ``GetAzureChatMessageRole``: a role is lower-cased, then must be system, user or
    assistant (``developer`` is an "unknown message role");
  - ``JsonSchema.UnmarshalYAML``: ``jsonSchema`` is a *string* holding a JSON object;
  - ``validateResponseFormat``: ``responseFormat`` is text, json_object or json_schema;
    json_schema needs ``jsonSchema`` with both ``name`` and ``schema``;
  - ``TemplateString``: ``{{key}}`` is replaced, for each key of the test row, by the
    value (``fmt`` ``%v`` for non-strings); ``{{ key }}`` with spaces stays literal.
* ``cmd/eval/eval.go``
  - ``runStringEvaluator``: ``contains``/``startsWith``/``endsWith`` compare lower-cased
    text, ``equals`` is an exact match; the evaluator value is templated with the row;
  - ``callModelWithRetry``: the response is ``strings.TrimSpace``-d before evaluation.

Where promptci is deliberately stricter than gh-models (unknown keys, a placeholder the
row does not fill, an evaluator it cannot run exactly), the parity test says so case by case.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from config.artifacts import (
    Assertion,
    Message,
    ModelParameters,
    PromptArtifact,
    Strict,
    TemplateSource,
    TestCase,
    VariableSpec,
)

Loc = tuple[str | int, ...]

GH_ROLES = ("system", "user", "assistant")
# gh-models' TemplateString replaces the exact text "{{" + key + "}}": no trimming inside the braces.
GH_PLACEHOLDER = re.compile(r"{{([^{}]*)}}")
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Keys that only GitHub Models prompt files have (content detection for files not named *.prompt.yml).
GH_ONLY_KEYS = frozenset({"name", "modelParameters", "testData", "evaluators", "responseFormat", "jsonSchema"})
NATIVE_ONLY_KEYS = frozenset({"kind", "id", "version", "owner", "variables", "evals", "parameters", "limits"})


def is_github_models(path: str, data: Any) -> bool:
    """Return True for a GitHub Models prompt: named ``*.prompt.yml``, or a mapping with
    ``messages`` + ``model`` + a gh-models-only key and none of the native prompt's keys."""
    if path.endswith((".prompt.yml", ".prompt.yaml")):
        return True
    if not isinstance(data, dict) or "messages" not in data or "model" not in data:
        return False
    return bool(GH_ONLY_KEYS & set(data)) and not NATIVE_ONLY_KEYS & set(data)


class GHModelParameters(Strict):
    """Exactly the keys GitHub Models reads; anything else (``max_tokens``…) is an error."""

    maxTokens: int | None = Field(default=None, gt=0)
    temperature: float | None = Field(default=None, ge=0, le=2)
    topP: float | None = Field(default=None, gt=0, le=1)


class GHMessage(Strict):
    role: str
    content: str = Field(min_length=1)

    @field_validator("role")
    @classmethod
    def _role(cls, v: str) -> str:
        if v.lower() not in GH_ROLES:  # prompt.go GetAzureChatMessageRole: strings.ToLower, then a switch
            raise ValueError(f"unknown message role '{v}': GitHub Models accepts {', '.join(GH_ROLES)} "
                             "(any case)")
        return v.lower()


class GHStringEvaluator(Strict):
    startsWith: str | None = None
    endsWith: str | None = None
    contains: str | None = None
    equals: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> GHStringEvaluator:
        given = [k for k, v in self.__dict__.items() if v is not None]
        if len(given) != 1:
            raise ValueError("a string evaluator needs exactly one of startsWith, endsWith, contains, equals")
        if self.__dict__[given[0]] == "":  # eval.go tests `!= ""`: an empty value is "no criteria"
            raise ValueError(f"string evaluator '{given[0]}' is empty; gh-models reports "
                             "'no string evaluation criteria specified'")
        return self


class GHChoice(Strict):
    choice: str
    score: float


class GHLLMEvaluator(Strict):
    modelId: str
    prompt: str
    choices: list[GHChoice]
    systemPrompt: str | None = None


class GHEvaluator(Strict):
    name: str = Field(pattern=r"^[^{}]+$")  # becomes a metric name (see Assertion.metric)
    string: GHStringEvaluator | None = None
    llm: GHLLMEvaluator | None = None
    uses: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> GHEvaluator:
        given = [k for k in ("string", "llm", "uses") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("an evaluator needs exactly one of string, llm, uses")
        return self


class GitHubModelsPrompt(Strict):
    """The GitHub Models ``.prompt.yml`` format, field for field."""

    name: str | None = None
    description: str | None = None
    model: str = Field(min_length=1)
    modelParameters: GHModelParameters = Field(default_factory=GHModelParameters)
    responseFormat: Literal["text", "json_object", "json_schema"] | None = None
    jsonSchema: Any = Field(default=None, validate_default=True)
    messages: list[GHMessage] = Field(min_length=1)
    testData: list[dict[str, Any]] = Field(default_factory=list)
    evaluators: list[GHEvaluator] = Field(default_factory=list)

    @field_validator("jsonSchema")
    @classmethod
    def _json_schema(cls, v: Any, info: ValidationInfo) -> dict[str, Any] | None:
        # prompt.go: UnmarshalYAML (a JSON string holding an object), then validateResponseFormat.
        parsed: dict[str, Any] | None = None
        if v is not None:
            if not isinstance(v, str):
                raise ValueError("jsonSchema must be a JSON string (write it as a YAML block scalar: "
                                 "jsonSchema: |-)")
            try:
                parsed = json.loads(v)
            except ValueError as exc:
                raise ValueError(f"invalid JSON in jsonSchema: {exc}") from None
            if not isinstance(parsed, dict):
                raise ValueError("jsonSchema must be a JSON object with 'name' and 'schema'")
        if info.data.get("responseFormat") == "json_schema":
            if parsed is None:
                raise ValueError("jsonSchema is required when responseFormat is 'json_schema'")
            missing = [k for k in ("name", "schema") if k not in parsed]
            if missing:
                raise ValueError(f"jsonSchema must contain {' and '.join(repr(k) for k in missing)} "
                                 "field(s) when responseFormat is 'json_schema'")
        return parsed


def go_value(value: Any) -> str:
    """Return ``value`` as gh-models' TemplateString writes it: the string itself, else Go's ``%v``."""
    if isinstance(value, str):
        return value
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _go_float(value)
    if isinstance(value, list):
        return "[" + " ".join(go_value(v) for v in value) + "]"
    if isinstance(value, dict):  # fmt prints maps with sorted keys
        return "map[" + " ".join(f"{k}:{go_value(value[k])}" for k in sorted(value, key=str)) + "]"
    return str(value)


def _go_float(f: float) -> str:
    """Return Go's ``%v`` of a float64: ``strconv.FormatFloat(f, 'g', -1, 64)`` — shortest round-trip
    digits, exponent form when the decimal exponent is < -4 or >= 6 (strconv/ftoa.go: "if precision
    was the shortest possible, use precision 6 for this decision"), e.g. 1e+06, 2.5, 3."""
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "+Inf" if f > 0 else "-Inf"
    if f == 0:
        return "-0" if math.copysign(1, f) < 0 else "0"
    sign, digits, exponent = Decimal(repr(f)).normalize().as_tuple()
    assert isinstance(exponent, int)
    exp = len(digits) + exponent - 1
    text = "".join(map(str, digits))
    if exp < -4 or exp >= 6:
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        out = f"{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    else:
        out = format(Decimal(repr(f)).normalize(), "f")
    return ("-" if sign else "") + out.lstrip("-")


def template_string(template: str, row: Mapping[str, Any]) -> str:
    """Return ``template`` rendered the way gh-models' TemplateString does.

    Only the exact text ``{{key}}`` for a key of ``row`` is replaced (in one pass, so a value
    that itself contains a placeholder is never expanded again); anything else stays literal.
    """
    def sub(m: re.Match[str]) -> str:
        key = m.group(1)
        return go_value(row[key]) if key in row else m.group(0)

    return GH_PLACEHOLDER.sub(sub, template)


def _js_string(text: str) -> str:
    """Return ``text`` as a JavaScript string literal with braces escaped (promptfoo runs Nunjucks on
    assertion values; ``\\u007b`` keeps ``{{`` literal and JavaScript decodes it back)."""
    return json.dumps(text, ensure_ascii=False).replace("{", "\\u007b").replace("}", "\\u007d")


# eval.go runStringEvaluator on the TrimSpace-d response. A javascript assertion states the rule exactly
# (promptfoo's starts-with/regex are case-sensitive, and its regex has no flags, so no anchored /i form).
_JS_RULES = {
    "contains": "output.trim().toLowerCase().includes({v}.toLowerCase())",
    "startsWith": "output.trim().toLowerCase().startsWith({v}.toLowerCase())",
    "endsWith": "output.trim().toLowerCase().endsWith({v}.toLowerCase())",
    "equals": "output.trim() === {v}",
}


def string_assertion(ev: GHEvaluator, row: Mapping[str, Any]) -> Assertion:
    """Return the promptfoo assertion that decides exactly as gh-models' string evaluator ``ev``."""
    assert ev.string is not None
    (key, value), = ((k, v) for k, v in ev.string.__dict__.items() if v is not None)
    expr = _JS_RULES[key].format(v=_js_string(template_string(value, row)))
    return Assertion(type="javascript", value=expr, metric=ev.name)


def gh_renderer(messages: list[GHMessage]) -> TemplateSource:
    """Return the TemplateSource that renders messages as gh-models does, and the variables they use."""
    used: dict[str, Loc] = {}
    for i, m in enumerate(messages):
        for name in GH_PLACEHOLDER.findall(m.content):
            if name and not any(c.isspace() for c in name):  # a testData key that fills it could exist
                used.setdefault(name, ("messages", i, "content"))

    def render(values: Mapping[str, Any]) -> list[dict[str, str]]:
        missing = sorted(set(used) - set(values))
        if missing:
            raise KeyError(missing[0])
        return [{"role": m.role, "content": template_string(m.content, values)} for m in messages]

    return TemplateSource("github-models", render, used)


def spaced_placeholders(gh: GitHubModelsPrompt) -> list[tuple[Loc, str]]:
    """Return a warning per ``{{ name }}`` with spaces: gh-models leaves it literal, which is rarely meant."""
    out: list[tuple[Loc, str]] = []
    for i, m in enumerate(gh.messages):
        for name in GH_PLACEHOLDER.findall(m.content):
            stripped = name.strip()
            if stripped and stripped != name and not any(c.isspace() for c in stripped):
                out.append((("messages", i, "content"),
                            f"'{{{{{name}}}}}' has spaces inside the braces: GitHub Models leaves it as literal "
                            f"text (write {{{{{stripped}}}}} to fill it in)"))
            elif any(c.isspace() for c in stripped):
                out.append((("messages", i, "content"),
                            f"'{{{{{name}}}}}' is sent as literal text: GitHub Models has no template logic, "
                            "only {{name}} filled from testData"))
    return out


def unsupported_evaluators(evaluators: Any) -> list[tuple[Loc, str]]:
    """Return one problem per ``llm``/``uses`` evaluator in the raw ``evaluators`` list, each at its index.

    Works on the raw data so these are reported in the same pass as any schema problem of the file.
    """
    out: list[tuple[Loc, str]] = []
    for i, ev in enumerate(evaluators if isinstance(evaluators, list) else []):
        if isinstance(ev, dict) and ev.get("string") is None and ("llm" in ev or "uses" in ev):
            kind = "llm" if "llm" in ev else f"uses: {ev.get('uses')}"
            out.append((("evaluators", i), f"evaluator '{ev.get('name')}' ({kind}) has no exact promptfoo "
                                           "equivalent; use a string evaluator, or a native prompt with a "
                                           "model-graded dataset"))
    return out


def from_github_models(gh: GitHubModelsPrompt, artifact_id: str) -> tuple[PromptArtifact | None, list[tuple[Loc, str]]]:
    """Return the native prompt equivalent of a GitHub Models prompt, or None and one problem per
    evaluator that has no exact promptfoo equivalent (every one of them, each at its own index)."""
    problems = unsupported_evaluators([ev.model_dump(exclude_none=True) for ev in gh.evaluators])
    if problems:
        return None, problems
    source = gh_renderer(gh.messages)
    tests = [TestCase.model_validate({
        "description": f"testData[{i}]", "vars": dict(row),
        "assert": [string_assertion(ev, row).model_dump() for ev in gh.evaluators]})
        for i, row in enumerate(gh.testData)]
    prompt = PromptArtifact(
        id=artifact_id,
        version="0.0.0",
        description=gh.description or gh.name or artifact_id,
        owner="github-models",
        model=gh.model,
        parameters=ModelParameters(temperature=gh.modelParameters.temperature,
                                   max_tokens=gh.modelParameters.maxTokens,
                                   top_p=gh.modelParameters.topP,
                                   response_format=gh.responseFormat),
        messages=[Message(role=m.role, content=m.content) for m in gh.messages],  # type: ignore[arg-type]
        # Declared variables follow the native naming rule; any other key is still filled by the renderer.
        variables={v: VariableSpec() for v in sorted(source.used) if IDENTIFIER.match(v)},
        tests=tests,
        json_schema=gh.jsonSchema,
    )
    return prompt.with_source(source), []
