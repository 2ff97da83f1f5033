"""GitHub Models parity: each file below exercises one rule of gh-models, with the verdict gh-models
itself gives, taken from its source (github/gh-models at commit f38cd97, read with the fetch tool):

* ``pkg/prompt/prompt.go``
  - ``GetAzureChatMessageRole``: ``switch strings.ToLower(role)`` over system/user/assistant, else
    ``unknown message role: %s`` (so ``User`` works and ``developer`` fails);
  - ``JsonSchema.UnmarshalYAML``: ``jsonSchema must be a JSON string`` for a non-scalar node,
    ``invalid JSON in jsonSchema`` when json.Unmarshal into a map fails;
  - ``validateResponseFormat``: ``invalid responseFormat`` unless text/json_object/json_schema;
    for json_schema, ``jsonSchema is required``, ``must contain 'name' field``, ``'schema' field``;
  - ``TemplateString``: ``strings.ReplaceAll(result, "{{" + key + "}}", value)`` for each key of the
    test row, non-strings through ``fmt.Sprintf("%v")`` (so ``{{ x }}`` with spaces stays literal).
* ``cmd/eval/eval.go``
  - ``runStringEvaluator``: ``equals`` is ``response == equals``; ``contains``/``startsWith``/``endsWith``
    compare ``strings.ToLower`` of both; every value goes through ``templateString`` with the row first;
    an empty value falls to ``no string evaluation criteria specified``;
  - ``callModelWithRetry`` returns ``strings.TrimSpace(content)``: evaluators see the trimmed response;
  - ``runLLMEvaluator``/``runPluginEvaluator``: model-graded, no exact promptfoo equivalent here.

Where promptci is deliberately stricter (an unknown key, a placeholder the row leaves unfilled, an
evaluator it cannot reproduce exactly), ``STRICTER`` says so: promptci rejects, gh-models would run.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from config.catalog import load_catalog
from config.problems import Severity
from steps.artifact_files import load_all
from steps.render import render_prompt

HEAD = "name: parity\nmodel: openai/gpt-4.1-nano\n"
MSGS = "messages:\n  - role: system\n    content: Be brief.\n  - role: user\n    content: \"{{q}}\"\n"
ROW = "testData:\n  - q: hi\n"
EVAL = "evaluators:\n  - name: e\n    string:\n      contains: hi\n"

# (file name, content, gh-models verdict from its source, promptci problem (field, text) or None when accepted)
CASES = [
    ("role-upper.prompt.yml", HEAD + MSGS.replace("role: user", "role: User") + ROW + EVAL,
     "accepted: GetAzureChatMessageRole lower-cases 'User'", None),
    ("role-shout.prompt.yml", HEAD + MSGS.replace("role: system", "role: SYSTEM") + ROW + EVAL,
     "accepted: GetAzureChatMessageRole lower-cases 'SYSTEM'", None),
    ("role-developer.prompt.yml", HEAD + MSGS.replace("role: system", "role: developer") + ROW + EVAL,
     "rejected: unknown message role: developer", ("messages[0].role", "unknown message role 'developer'")),
    ("schema-no-name.prompt.yml", HEAD + "responseFormat: json_schema\njsonSchema: '{\"schema\": {}}'\n" + MSGS
     + ROW + EVAL, "rejected: jsonSchema must contain 'name' field", ("jsonSchema", "must contain 'name'")),
    ("schema-no-schema.prompt.yml", HEAD + "responseFormat: json_schema\njsonSchema: '{\"name\": \"x\"}'\n"
     + MSGS + ROW + EVAL, "rejected: jsonSchema must contain 'schema' field", ("jsonSchema", "'schema'")),
    ("schema-mapping.prompt.yml", HEAD + "responseFormat: json_schema\njsonSchema:\n  name: x\n  schema: {}\n"
     + MSGS + ROW + EVAL, "rejected: jsonSchema must be a JSON string", ("jsonSchema", "must be a JSON string")),
    ("schema-bad-json.prompt.yml", HEAD + "jsonSchema: '{name: x'\n" + MSGS + ROW + EVAL,
     "rejected: invalid JSON in jsonSchema", ("jsonSchema", "invalid JSON in jsonSchema")),
    ("schema-missing.prompt.yml", HEAD + "responseFormat: json_schema\n" + MSGS + ROW + EVAL,
     "rejected: jsonSchema is required when responseFormat is 'json_schema'", ("jsonSchema", "is required")),
    ("format-xml.prompt.yml", HEAD + "responseFormat: xml\n" + MSGS + ROW + EVAL,
     "rejected: invalid responseFormat: xml", ("responseFormat", "Input should be 'text'")),
    ("schema-ok.prompt.yml", HEAD + "responseFormat: json_schema\n"
     "jsonSchema: '{\"name\": \"answer\", \"schema\": {\"type\": \"object\"}}'\n" + MSGS + ROW + EVAL,
     "accepted: name and schema present", None),
    ("spaced-placeholder.prompt.yml", HEAD + MSGS.replace("{{q}}", "{{ q }}") + ROW + EVAL,
     "accepted: '{{ q }}' stays literal (TemplateString matches '{{q}}' exactly)",
     ("messages[1].content", "has spaces inside the braces")),
    ("content-detected.yml", HEAD + MSGS + ROW + EVAL,
     "accepted: gh-models reads any file it is given", None),
    ("four-unsupported.prompt.yml", HEAD + MSGS + ROW + "evaluators:\n"
     + "".join(f"  - name: u{i}\n    uses: github/{k}\n" for i, k in enumerate(["similarity", "coherence",
                                                                                "fluency"]))
     + "  - name: judge\n    llm:\n      modelId: openai/gpt-4.1\n      prompt: ok?\n      choices:\n"
       "        - {choice: 'yes', score: 1}\n",
     "runs them with a model (runLLMEvaluator)", ("evaluators[3]", "no exact promptfoo equivalent")),
    ("empty-evaluator.prompt.yml", HEAD + MSGS + ROW + "evaluators:\n  - name: e\n    string:\n      contains: ''\n",
     "rejected: no string evaluation criteria specified", ("evaluators[0].string", "is empty")),
    ("snake-params.prompt.yml", HEAD + "modelParameters:\n  max_tokens: 10\n" + MSGS + ROW + EVAL,
     "STRICTER: gh-models ignores the unknown key; promptci rejects it",
     ("modelParameters.max_tokens", "unknown field 'max_tokens'")),
    ("unfilled.prompt.yml", HEAD + MSGS + "testData:\n  - other: x\n" + EVAL,
     "STRICTER: gh-models sends '{{q}}' literally; promptci (validate) rejects the test", None),
]


def _load(tmp_path: Path, name: str, text: str):
    (tmp_path / name).write_text(text)
    files, problems = load_all([tmp_path / name], tmp_path)
    return (files[0] if files else None), problems


def test_there_are_at_least_15_parity_files():
    assert len(CASES) >= 15
    assert len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("name, text, gh_verdict, expected", CASES, ids=[c[0] for c in CASES])
def test_each_file_gets_the_verdict_of_gh_models(tmp_path: Path, name: str, text: str, gh_verdict: str,
                                                 expected: tuple[str, str] | None):
    art, problems = _load(tmp_path, name, text)
    errors = [p for p in problems if p.severity is Severity.ERROR]
    if expected is None or gh_verdict.startswith("accepted"):
        assert art is not None and errors == [], (gh_verdict, [p.format() for p in problems])
        assert art.github_models
    if expected is not None:
        found = problems + (art.warnings if art else [])
        field, text_part = expected
        assert any(p.field == field and text_part in p.message for p in found), \
            (gh_verdict, [p.format() for p in found])
        assert all(p.line > 0 for p in found)


def test_role_is_lower_cased_as_gh_models_sends_it(tmp_path: Path):
    art, _ = _load(tmp_path, "r.prompt.yml", HEAD + MSGS.replace("role: user", "role: User") + ROW + EVAL)
    assert [m["role"] for m in render_prompt(art.artifact, {"q": "hi"})] == ["system", "user"]


def test_four_unsupported_evaluators_are_four_problems_in_one_pass(tmp_path: Path):
    name, text = CASES[12][0], CASES[12][1]
    _, problems = _load(tmp_path, name, text)
    assert sorted(p.field for p in problems) == [f"evaluators[{i}]" for i in range(4)]
    assert len({p.line for p in problems}) == 4


def test_schema_problems_and_unsupported_evaluators_come_in_one_pass(tmp_path: Path):
    text = CASES[12][1].replace("role: system", "role: developer")
    _, problems = _load(tmp_path, "one-pass.prompt.yml", text)
    assert sorted(p.field for p in problems) == ["evaluators[0]", "evaluators[1]", "evaluators[2]",
                                                  "evaluators[3]", "messages[0].role"]


def test_placeholders_render_like_template_string(tmp_path: Path):
    """TemplateString: exact '{{key}}' only, values through Go's %v, '{{ key }}' left alone."""
    text = HEAD + ("messages:\n  - role: user\n    content: \"n={{n}} f={{f}} b={{b}} big={{big}} "
                   "l={{l}} keep={{ n }}\"\ntestData:\n  - {n: 3, f: 2.5, b: true, big: 1000000.0, l: [1, a]}\n"
                   + EVAL)
    art, problems = _load(tmp_path, "t.prompt.yml", text)
    assert art is not None, [p.format() for p in problems]
    out = render_prompt(art.artifact, art.artifact.tests[0].vars)
    assert out[0]["content"] == "n=3 f=2.5 b=true big=1e+06 l=[1 a] keep={{ n }}"


def test_gh_models_catalog_ids_are_aliases_of_real_models():
    cat = load_catalog()
    for gh_id, canonical in [("openai/gpt-4.1-nano", "gpt-4.1-nano"), ("openai/gpt-4o-mini", "gpt-4o-mini"),
                             ("openai/gpt-4.1", "gpt-4.1"), ("openai/o3-mini", "o3-mini")]:
        found = cat.resolve(gh_id)
        assert found is not None and found[0] == canonical


# (evaluator, value, model output, gh-models verdict per runStringEvaluator on the TrimSpace-d output)
STRING_RULES = [
    ("contains", "HELLO", "well hello there", True),
    ("contains", "bye", "well hello there", False),
    ("startsWith", "## What's new", "  ## what's NEW in 2.4\n- x", True),
    ("startsWith", "## What's new", "Intro\n## What's new", False),
    ("endsWith", "DONE.", "All done.\n\n", True),
    ("endsWith", "done", "done?", False),
    ("equals", "Yes", " Yes \n", True),
    ("equals", "Yes", "yes", False),
    ("contains", "{{city}}", "The capital is PARIS.", True),  # the value is templated with the row first
    ("contains", "a{{b", "x a{{b y", True),  # braces stay literal through promptfoo's Nunjucks
]


def test_string_evaluators_decide_as_gh_models(tmp_path: Path):
    node = shutil.which("node")
    assert node, "node is needed to run promptfoo's javascript assertions"
    checks = []
    for i, (kind, value, output, verdict) in enumerate(STRING_RULES):
        text = (HEAD + MSGS + "testData:\n  - {q: hi, city: Paris}\n"
                f"evaluators:\n  - name: e\n    string:\n      {kind}: {json.dumps(value)}\n")
        art, problems = _load(tmp_path, f"s{i}.prompt.yml", text)
        assert art is not None, [p.format() for p in problems]
        (assertion,) = art.artifact.tests[0].assert_
        assert assertion.type == "javascript" and "{" not in assertion.value.replace("\\u007b", "")
        checks.append({"expr": assertion.value, "output": output, "verdict": verdict})
    # promptfoo runs a one-line javascript assertion as `return <expr>` with `output` in scope.
    script = ("const cs = JSON.parse(require('fs').readFileSync(0, 'utf8'));"
              "const run = c => Boolean(new Function('output', 'return ' + c.expr)(c.output));"
              "console.log(JSON.stringify(cs.map(run)));")
    proc = subprocess.run([node, "-e", script], input=json.dumps(checks), capture_output=True, text=True, check=True)
    assert json.loads(proc.stdout) == [c["verdict"] for c in checks]


def test_a_placeholder_the_row_leaves_unfilled_is_rejected_by_validate(tmp_path: Path):
    """STRICTER than gh-models, whose TemplateString would send '{{q}}' to the model as text."""
    from steps.validate import validate_paths

    name, text = next((c[0], c[1]) for c in CASES if c[0] == "unfilled.prompt.yml")
    (tmp_path / name).write_text(text)
    problems = [p for p in validate_paths([tmp_path / name], root=tmp_path) if p.severity is Severity.ERROR]
    assert [(p.field, p.message) for p in problems] == [
        ("testData[0]", "test does not supply required variable(s): q")]
