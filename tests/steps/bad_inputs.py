"""The bad-input table for tests/steps/test_bad_inputs.py: one row per way a user's files go wrong.

Each case builds a small repository, runs ``lint`` or ``validate`` on a path and expects an exit
status and one problem line (``path:line:col: field: message`` — the fragment given must appear
in one printed line). Classes follow issue 13: tracebacks, silent passes, GitHub Models, unclear
messages, Prompty, Dotprompt, datasets and the file system.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

GOOD = """kind: prompt
id: p
version: 1.0.0
description: d
owner: team
model: gpt-4o-mini
messages:
  - role: system
    content: Be brief.
  - role: user
    content: "{{q}}"
variables:
  q: {type: string}
evals:
  - name: golden
    path: evals/p/golden.yaml
"""
DATASET = "- vars: {q: hi}\n  assert: [{type: contains, value: hi}]\n"
GH = """name: gh
model: openai/gpt-4.1-nano
messages:
  - role: system
    content: Be brief.
  - role: user
    content: "{{q}}"
testData:
  - q: hi
evals_placeholder: 1
evaluators:
  - name: e
    string:
      contains: hi
""".replace("evals_placeholder: 1\n", "")
PROMPTY = """---
name: x
model:
  id: gpt-4o-mini
inputs:
  - name: q
    kind: string
    required: true
template:
  format:
    kind: jinja2
  parser:
    kind: prompty
evals:
  - name: golden
    path: evals/p/golden.yaml
---
system:
Be brief.

user:
{{ q }}
"""
DOTPROMPT = """---
model: googleai/gemini-2.5-flash
config:
  temperature: 0
input:
  schema:
    q: string
evals:
  - name: golden
    path: evals/p/golden.yaml
---
{{role "system"}}
Be brief.
{{role "user"}}
{{q}}
"""


@dataclass
class Case:
    """One bad input: files to write (or a setup function), the command, and what must be printed."""

    id: str
    files: dict[str, str | bytes]
    expect: str  # a fragment of one printed problem line, usually "path:line:col: field: message"
    cmd: str = "lint"
    target: str = "prompts"
    exit: int = 1
    setup: Callable[[Path], None] | None = None
    extra: dict[str, str] = field(default_factory=dict)


def native(old: str, new: str, expect: str, cmd: str = "lint", cid: str | None = None) -> Case:
    assert old in GOOD, old
    return Case(cid or f"native:{new.strip()[:40]}", {"prompts/p.yaml": GOOD.replace(old, new, 1),
                                                       "evals/p/golden.yaml": DATASET}, expect, cmd)


def dataset(name: str, content: str | bytes, expect: str, cid: str) -> Case:
    return Case(cid, {"prompts/p.yaml": GOOD.replace("evals/p/golden.yaml", f"evals/p/{name}"),
                      f"evals/p/{name}": content}, expect)


def raw(content: str | bytes, expect: str, cid: str, name: str = "prompts/p.yaml") -> Case:
    return Case(cid, {name: content}, expect)


def gh(old: str, new: str, expect: str, cid: str, cmd: str = "lint") -> Case:
    assert old in GH, old
    return Case(cid, {"prompts/g.prompt.yml": GH.replace(old, new, 1)}, expect, cmd)


def prompty(old: str, new: str, expect: str, cid: str, cmd: str = "lint") -> Case:
    assert old in PROMPTY, old
    return Case(cid, {"prompts/p.prompty": PROMPTY.replace(old, new, 1), "evals/p/golden.yaml": DATASET},
                expect, cmd)


def dotprompt(old: str, new: str, expect: str, cid: str, cmd: str = "lint") -> Case:
    assert old in DOTPROMPT, old
    return Case(cid, {"prompts/p.prompt": DOTPROMPT.replace(old, new, 1), "evals/p/golden.yaml": DATASET},
                expect, cmd)


def _fifo(root: Path) -> None:
    os.mkfifo(root / "prompts" / "pipe.yaml")


def _link_out(root: Path) -> None:
    outside = root.parent / f"{root.name}-outside.yaml"
    outside.write_text(GOOD)
    (root / "prompts" / "p.yaml").unlink()
    (root / "prompts" / "p.yaml").symlink_to(outside)


def _dataset_link_out(root: Path) -> None:
    outside = root.parent / f"{root.name}-outside-ds.yaml"
    outside.write_text(DATASET)
    (root / "evals" / "p" / "golden.yaml").unlink()
    (root / "evals" / "p" / "golden.yaml").symlink_to(outside)


def _dev_zero(root: Path) -> None:
    (root / "prompts" / "zero.yaml").symlink_to("/dev/zero")


def _empty_dir(root: Path) -> None:
    (root / "prompts" / "p.yaml").unlink()


def _deep_jsonl(depth: int) -> str:
    return json.dumps({"vars": {"q": "hi"}, "assert": [{"type": "contains", "value": "hi"}]}) + "\n" + \
        '{"vars": {"q": ' + "[" * depth + "]" * depth + '}, "assert": [{"type": "contains", "value": "x"}]}\n'


TAGS = [
    ("description: d", "description: !Ref X", "prompts/p.yaml:4:14: description: unknown YAML tag '!Ref'"),
    ("description: d", "description: !GetAtt a.b", "unknown YAML tag '!GetAtt'"),
    ("description: d", "description: !Sub '${x}'", "unknown YAML tag '!Sub'"),
    ("description: d", "description: !!python/name:os.system", "YAML tag '!!python/name:os.system' is refused"),
    ("description: d", "description: !!python/object/apply:os.system [ls]",
     "prompts/p.yaml:4:14: description: YAML tag '!!python/object/apply:os.system' is refused"),
    ("description: d", "description: !!python/object:__main__.X {}", "is refused"),
    ("description: d", "description: !!python/tuple [1, 2]", "'!!python/tuple' is refused"),
    ("description: d", "description: !!set {a, b}", "unknown YAML tag '!!set'"),
    ("description: d", "description: !!omap [{a: 1}]", "unknown YAML tag '!!omap'"),
    ("model: gpt-4o-mini", "model: !env MODEL", "prompts/p.yaml:6:8: model: unknown YAML tag '!env'"),
    ("    content: Be brief.", "    content: !include sys.txt", "prompts/p.yaml:9:14: messages[0].content: "
                                                                 "unknown YAML tag '!include'"),
    ("owner: team", "!k owner: team", "prompts/p.yaml:5:1: <file>: unknown YAML tag '!k'"),
    ("tags", "tags", ""),  # placeholder removed below
]
TAGS = [t for t in TAGS if t[2]]

CASES: list[Case] = [
    # --- class 1: tracebacks (unknown tags, deep nesting, broken pipeline config)
    *[native(old, new, expect, cid=f"tag:{new.split()[1]}") for old, new, expect in TAGS],
    dataset("golden.jsonl", _deep_jsonl(5000), "evals/p/golden.jsonl:2:1: <file>: JSON nesting deeper than 64",
            "jsonl-depth-5000"),
    dataset("golden.jsonl", _deep_jsonl(100), "evals/p/golden.jsonl:2:1: <file>: JSON nesting deeper than 64",
            "jsonl-depth-100"),
    dataset("golden.json", "[" * 3000 + "]" * 3000, "evals/p/golden.json:1:", "json-depth-3000"),
    raw("a: " + "[" * 80 + "]" * 80 + "\n", "nesting deeper than 64", "yaml-depth-80"),
    raw("[" * 5000 + "]" * 5000, "prompts/p.yaml:1:", "yaml-flow-depth-5000"),
    Case("pipeline-config-unknown-key", {"prompts/p.yaml": GOOD, "evals/p/golden.yaml": DATASET},
         "passRateThreshold", cmd="validate", extra={"pipeline": "defaults:\n  passRateThreshold: 1\n"}),
    Case("pipeline-config-bad-yaml", {"prompts/p.yaml": GOOD, "evals/p/golden.yaml": DATASET},
         "YAML syntax error", cmd="validate", extra={"pipeline": "defaults: [\n"}),
    Case("pipeline-config-tag", {"prompts/p.yaml": GOOD, "evals/p/golden.yaml": DATASET},
         "unknown YAML tag '!Ref'", cmd="validate", extra={"pipeline": "defaults: !Ref x\n"}),
    # --- class 2: silent passes
    raw("# notes\n", "prompts/README.md:1:1: <file>: unsupported format '.md': supported formats are",
        "unsupported-md", name="prompts/README.md"),
    raw("hello", "unsupported format '.txt'", "unsupported-txt", name="prompts/p.txt"),
    raw("hello", "unsupported format (no extension)", "unsupported-noext", name="prompts/Makefile"),
    raw("<x/>", "unsupported format '.xml'", "unsupported-xml", name="prompts/p.xml"),
    raw("a = 1", "unsupported format '.toml'", "unsupported-toml", name="prompts/p.toml"),
    raw("{}", "unsupported format '.jinja'", "unsupported-jinja", name="prompts/p.jinja"),
    Case("fifo", {"prompts/p.yaml": GOOD, "evals/p/golden.yaml": DATASET},
         "prompts/pipe.yaml:1:1: <file>: not a regular file (a FIFO)", setup=_fifo),
    Case("dev-zero", {"prompts/p.yaml": GOOD, "evals/p/golden.yaml": DATASET},
         "prompts/zero.yaml:1:1: <file>: resolves to /dev/zero, outside the repository", setup=_dev_zero),
    Case("dev-zero-direct", {"prompts/p.yaml": GOOD}, "/dev/zero:1:1: <file>: resolves to /dev/zero, outside",
         target="/dev/zero"),
    Case("symlink-out", {"prompts/p.yaml": GOOD, "evals/p/golden.yaml": DATASET},
         "prompts/p.yaml:1:1: <file>: resolves to", setup=_link_out),
    Case("dataset-symlink-out", {"prompts/p.yaml": GOOD, "evals/p/golden.yaml": DATASET},
         "prompts/p.yaml:16:5: evals[0].path: dataset path must stay inside the repo", setup=_dataset_link_out),
    Case("empty-dir", {"prompts/p.yaml": GOOD}, "prompts:1:1: <file>: no artifact files found", setup=_empty_dir),
    Case("missing-path", {"prompts/p.yaml": GOOD}, "nope:1:1: <file>: no such file or directory", target="nope"),
    dataset("golden.csv", "q,q,__expected\nhi,ho,contains: h\n",
            "evals/p/golden.csv:1:3: q: duplicate column 'q' (first at column 1)", "csv-dup-column"),
    dataset("golden.csv", "q,__expected,__expected\nhi,a,b\n", "duplicate column '__expected'", "csv-dup-expected"),
    dataset("golden.csv", "description,q,description\nx,hi,y\n", "duplicate column 'description'",
            "csv-dup-description"),
    Case("override-glob-matches-nothing", {"prompts/p.yaml": GOOD, "evals/p/golden.yaml": DATASET},
         "overrides[0].match: warning: 'nomatch-*' matches no artifact", cmd="validate", exit=0,
         extra={"pipeline": "overrides:\n  - match: nomatch-*\n    eval: {min_pass_rate: 1}\n"}),
    # --- class 3: GitHub Models
    gh("role: system", "role: developer", "prompts/g.prompt.yml:4:5: messages[0].role: unknown message role "
                                          "'developer'", "gh-developer"),
    gh("role: system", "role: tool", "unknown message role 'tool'", "gh-tool-role"),
    gh("model: openai/gpt-4.1-nano\n", "model: openai/gpt-4.1-nano\nresponseFormat: json_schema\n"
       "jsonSchema: '{\"schema\": {}}'\n", "prompts/g.prompt.yml:4:1: jsonSchema: jsonSchema must contain 'name'",
       "gh-schema-no-name"),
    gh("model: openai/gpt-4.1-nano\n", "model: openai/gpt-4.1-nano\njsonSchema: '{'\n",
       "prompts/g.prompt.yml:3:1: jsonSchema: invalid JSON in jsonSchema", "gh-schema-bad-json"),
    gh("model: openai/gpt-4.1-nano\n", "model: openai/gpt-4.1-nano\nresponseFormat: json_schema\n",
       "jsonSchema: jsonSchema is required", "gh-schema-missing"),
    gh("model: openai/gpt-4.1-nano\n", "model: openai/gpt-4.1-nano\nmodelParameters: {max_tokens: 5}\n",
       "modelParameters.max_tokens: unknown field 'max_tokens'", "gh-max-tokens"),
    gh("      contains: hi\n", "      contains: hi\n  - name: l\n    uses: github/similarity\n"
       "  - name: m\n    uses: github/fluency\n", "evaluators[2]: evaluator 'm' (uses: github/fluency)",
       "gh-two-unsupported"),
    gh("      contains: hi\n", "      contains: ''\n", "evaluators[0].string: string evaluator 'contains' is empty",
       "gh-empty-evaluator"),
    gh("      contains: hi\n", "      contains: hi\n      equals: hi\n", "exactly one of startsWith",
       "gh-two-string-keys"),
    gh("model: openai/gpt-4.1-nano", "model: openai/gpt-9", "model: unknown model 'openai/gpt-9'", "gh-unknown-model",
       cmd="validate"),
    gh("  - q: hi\n", "  - other: hi\n", "testData[0]: test does not supply required variable(s): q",
       "gh-row-missing-var", cmd="validate"),
    Case("gh-spaced", {"prompts/g.prompt.yml": GH.replace('"{{q}}"', '"{{ q }} {{q}}"')},
         "warning: '{{ q }}' has spaces", exit=0),
    Case("gh-template-logic", {"prompts/g.prompt.yml": GH.replace("Be brief.", "Be {{#if x}}brief{{/if}}.")},
         "'{{#if x}}' is sent as literal text: GitHub Models has no template logic", exit=0),
    prompty("    kind: prompty", "    kind: markdown", "template.parser: template parser 'markdown' is not one",
            "prompty-parser"),
    Case("gh-by-content-bad-role", {"prompts/g.yml": GH.replace("role: system", "role: robot")},
         "prompts/g.yml:4:5: messages[0].role: unknown message role 'robot'"),
    # --- class 4: messages that say what to write
    raw("\ufeffkind: prompt\n".encode("utf-16-le"), "file is encoded as UTF-16 LE; save it as UTF-8", "utf16le-bom"),
    raw(GOOD.encode("utf-16"), "file is encoded as UTF-16", "utf16-python"),
    raw(GOOD.encode("utf-16-be"), "file is encoded as UTF-16 BE", "utf16be-nobom"),
    raw(GOOD.encode("utf-16-le"), "file is encoded as UTF-16 LE", "utf16le-nobom"),
    raw(GOOD.encode("utf-32"), "file is encoded as UTF-32 LE", "utf32"),
    raw(GOOD.encode("latin-1").replace(b"Be brief", b"Be br\xe9f"), "prompts/p.yaml:9:19: <file>: file is not "
                                                                    "valid UTF-8 (byte 0xe9)", "latin1"),
    raw(b"kind: prompt\n\x00\x01", "prompts/p.yaml:2:1: <file>: binary file (contains NUL bytes)", "nul-bytes"),
    raw(b"", "prompts/p.yaml:1:1: <file>: empty file", "empty-file"),
    raw(b"  \n\n", "empty file", "blank-file"),
    raw(b"a: " + b"x" * (1024 * 1024 + 10), "limit is 1048576", "too-big"),
    native("id: p", "id: P", "prompts/p.yaml:2:1: id: id 'P' is not valid: max 63 characters: lowercase a-z",
           cid="id-upper"),
    native("id: p", "id: " + "a" * 70, "max 63 characters", cid="id-long"),
    native("id: p", "id: prömpt", "id 'prömpt' is not valid", cid="id-unicode"),
    native("id: p", "id: -p", "starting and ending with a letter", cid="id-dash"),
    native("version: 1.0.0", "version: 01.02.03", "prompts/p.yaml:3:1: version: version '01.02.03' is not semver",
           cid="semver-leading-zero"),
    native("version: 1.0.0", "version: '1.0'", "is not semver", cid="semver-two-parts"),
    native("version: 1.0.0", "version: v1.0.0", "version 'v1.0.0' is not semver", cid="semver-v"),
    native("version: 1.0.0", "version: 1.0.0-", "is not semver", cid="semver-dangling"),
    native("version: 1.0.0", "version: 1.0", "version: Input should be a valid string", cid="semver-float"),
    native('    content: "{{q}}"', '    content: "{% for t in q %}{{ t }}{% endfor %}"',
           "prompts/p.yaml:11:5: messages[1].content: '{% for t in q %}': templates use {{name}} only; Jinja",
           cmd="validate", cid="jinja-for"),
    native('    content: "{{q}}"', '    content: "{{ q | upper }}"', "Jinja blocks, filters and expressions are "
                                                                     "not supported in native prompts (use a Prompty",
           cmd="validate", cid="jinja-filter"),
    native('    content: "{{q}}"', '    content: "{{q.x}}"', "'{{q.x}}': templates use {{name}} only",
           cmd="validate", cid="jinja-attr"),
    native('    content: "{{q}}"', '    content: "{{q}} {{r}}"', "messages[1].content: variable 'r' is used but "
                                                                  "not declared under 'variables'", cmd="validate",
           cid="undeclared"),
    native("  q: {type: string}", "  q: {type: string}\n  z: {type: string}", "variables.z: variable 'z' is "
                                                                            "declared but never used",
           cmd="validate", cid="unused"),
    native("model: gpt-4o-mini", "model: gpt-4o-mimi", "prompts/p.yaml:6:1: model: unknown model 'gpt-4o-mimi'; "
                                                       "did you mean", cmd="validate", cid="unknown-model"),
    native("model: gpt-4o-mini", "model: gpt-3.5-turbo-0613", "is retired; use 'gpt-4o-mini'", cmd="validate",
           cid="retired-model"),
    native("model: gpt-4o-mini", "model: text-embedding-3-small", "is an embedding model", cmd="validate",
           cid="embedding-model"),
    # --- schema, syntax and structure (lint)
    native("owner: team\n", "", "prompts/p.yaml:1:1: owner: required field is missing", cid="missing-owner"),
    native("model: gpt-4o-mini\n", "", "model: required field is missing", cid="missing-model"),
    native("description: d\n", "", "description: required field is missing", cid="missing-description"),
    native("id: p\n", "", "id: required field is missing", cid="missing-id"),
    native("version: 1.0.0\n", "", "version: required field is missing", cid="missing-version"),
    native("owner: team", "owner: team\nownr: typo", "prompts/p.yaml:6:1: ownr: unknown field 'ownr'",
           cid="unknown-field"),
    native("kind: prompt", "kind: prompts", "kind: unknown kind 'prompts'", cid="unknown-kind"),
    native("kind: prompt", "kind: [prompt]", "unknown kind ['prompt']", cid="kind-list"),
    native("    content: Be brief.", "    content: ''", "messages[0].content: String should have at least 1",
           cid="empty-content"),
    native("  - role: system", "  - role: customer", "messages[0].role: Input should be 'system'", cid="bad-role"),
    native("messages:\n", "parameters: {temperature: 3}\nmessages:\n", "parameters.temperature: Input should be "
                                                                      "less than or equal to 2", cid="temperature"),
    native("messages:\n", "parameters: {max_tokens: -1}\nmessages:\n", "greater than 0", cid="max-tokens-neg"),
    native("messages:\n", "parameters: {max_tokens: lots}\nmessages:\n", "Input should be a valid integer",
           cid="max-tokens-str"),
    native("messages:\n", "parameters: {response_format: xml}\nmessages:\n", "response_format: Input should be",
           cid="response-format"),
    native("  q: {type: string}", "  q-x: {type: string}", "String should match pattern", cid="var-name"),
    native("  q: {type: string}", "  q: {type: text}", "variables.q.type: Input should be", cid="var-type"),
    native("  - name: golden", "  - name: none", "'none' is a reserved dataset name", cid="reserved-dataset"),
    native("evals/p/golden.yaml", "evals/p/gold en.yaml", "dataset path may only contain", cid="unsafe-path"),
    native("evals/p/golden.yaml", "../outside.yaml", "dataset path must stay inside the repo", cid="path-dotdot"),
    native("evals/p/golden.yaml", "evals/p/missing.yaml", "prompts/p.yaml:16:5: evals[0].path: dataset file not "
                                                          "found", cid="dataset-missing"),
    native("evals:\n  - name: golden\n    path: evals/p/golden.yaml\n", "",
           "evals: prompt has no golden tests; add an eval dataset", cid="no-tests"),
    native("  - name: golden\n    path: evals/p/golden.yaml\n",
           "  - name: golden\n    path: evals/p/golden.yaml\n  - name: golden\n    path: evals/p/golden.yaml\n",
           "duplicate dataset name 'golden'", cid="dup-dataset"),
    native("version: 1.0.0", "version: 1.0.0\nversion: 1.0.1", "prompts/p.yaml:4:1: version: duplicate key "
                                                               "'version' (first defined at line 3)",
           cid="dup-key-top"),
    native("    content: Be brief.", "    content: Be brief.\n    content: again", "duplicate key 'content'",
           cid="dup-key-nested"),
    native("  q: {type: string}", "  q: {type: string, type: number}", "duplicate key 'type'", cid="dup-key-flow"),
    native("owner: team", "base: &b {x: 1}\nowner: team\nother:\n  <<: *b", "merge keys ('<<') are not supported",
           cid="merge-key"),
    native("description: d", "description: [d", "prompts/p.yaml:", cid="syntax-bracket"),
    native("description: d", "description: 'd", "YAML syntax error", cid="syntax-quote"),
    native("owner: team", "owner: team\n  bad: indent", "YAML syntax error", cid="syntax-indent"),
    native("owner: team", "owner:\tteam\n\tx: 1", "YAML syntax error", cid="syntax-tab"),
    native("owner: team", "owner: team: x", "YAML syntax error", cid="syntax-colon"),
    native("id: p", "id: q", "prompts/p.yaml:2:1: id: id 'q' does not match the file name", cid="id-mismatch"),
    raw("- just\n- a list\n", "an artifact must be a mapping of fields", "not-a-mapping"),
    raw("just text\n", "an artifact must be a mapping", "scalar-doc"),
    raw("---\n...\n", "empty document", "empty-document"),
    raw("[]", "an artifact must be a mapping", "json-list", name="prompts/p.json"),
    raw('{"id": "p", "id": "q"}', "duplicate key 'id'", "json-dup-key", name="prompts/p.json"),
    raw('{"id": ', "JSON syntax error", "json-syntax", name="prompts/p.json"),
    raw("a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
        "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n",
        "alias bomb", "alias-bomb"),
    # --- datasets
    dataset("golden.csv", "q\nhi\n", "evals/p/golden.csv:2:1: [0]: test has no assertion", "csv-no-assert"),
    dataset("golden.csv", "q,__expected\nhi,contains: h,extra\n", "row has more cells than the header",
            "csv-extra-cell"),
    dataset("golden.csv", "", "empty file", "csv-empty"),
    dataset("golden.jsonl", '{"vars": {"q": "hi"}, "assert": [{"type": "contains", "value": "h"}]}\n{"vars": \n',
            "evals/p/golden.jsonl:2:", "jsonl-syntax"),
    dataset("golden.yaml", "tests: {q: hi}\n", "a dataset must be a non-empty list of tests", "ds-not-list"),
    dataset("golden.yaml", "[]\n", "a dataset must be a non-empty list", "ds-empty-list"),
    dataset("golden.yaml", "- vars: {q: hi}\n  assert: [{type: containz, value: h}]\n",
            "unknown assertion type 'containz'", "ds-unknown-assertion"),
    dataset("golden.yaml", "- vars: {q: hi}\n  assert: []\n", "test has no assertion", "ds-no-assertion"),
    dataset("golden.yaml", "- vars: {q: hi}\n  asert: [{type: contains, value: h}]\n", "unknown field 'asert'",
            "ds-unknown-key"),
    dataset("golden.yaml", "- vars: !Ref x\n  assert: [{type: contains, value: h}]\n", "unknown YAML tag '!Ref'",
            "ds-tag"),
    dataset("golden.yaml", DATASET.encode("utf-16"), "file is encoded as UTF-16", "ds-utf16"),
    dataset("golden.yaml", b"\x00\x00\x00", "binary file", "ds-binary"),
    dataset("golden.txt", "q,hi", "unsupported dataset type '.txt'", "ds-txt"),
    # --- Prompty
    raw("system:\nhi\n", "a .prompty file starts with YAML front matter", "prompty-no-front-matter",
        name="prompts/p.prompty"),
    prompty("name: x", "name: [x", "prompts/p.prompty:3:6: <file>: YAML syntax error", "prompty-syntax"),
    prompty("name: x", "name: x\nname: y", "prompts/p.prompty:3:1: name: duplicate key 'name'", "prompty-dup-key"),
    prompty("name: x", "name: !Ref x", "prompts/p.prompty:2:7: name: unknown YAML tag '!Ref'", "prompty-tag"),
    prompty("name: x", "name: x\nauthr: me", "prompts/p.prompty:3:1: authr: unknown field 'authr' (Prompty reads",
            "prompty-unknown-key"),
    prompty("    kind: string\n    required: true", "    kind: array", "inputs[0].items: Prompty: missing required",
            "prompty-array-items"),
    prompty("{{ q }}", "{% for x in q %}{{ x }}", "prompts/p.prompty:22:1: template: Jinja2 syntax error",
            "prompty-jinja-syntax"),
    prompty("{{ q }}", "{{ q }} {{ r }}", "template.r: variable 'r' is used but not declared under 'inputs'",
            "prompty-undeclared", cmd="validate"),
    prompty("    kind: jinja2", "    kind: liquid", "template format 'liquid' is not one Prompty renders",
            "prompty-liquid"),
    prompty("    kind: string\n    required: true", "    kind: thread", "input kind 'thread' is not supported",
            "prompty-thread"),
    prompty("  id: gpt-4o-mini", "  id: gpt-4o-mimi", "prompts/p.prompty:3:1: model: unknown model 'gpt-4o-mimi'",
            "prompty-unknown-model", cmd="validate"),
    prompty("  id: gpt-4o-mini", "  id: gpt-4o-mini\n  options:\n    topK: 3",
            "model.options.topK: unknown field 'topK' (promptci reads", "prompty-topk"),
    prompty("  id: gpt-4o-mini", "  id: gpt-4o-mini\n  options:\n    temperature: 9",
            "Input should be less than or equal to 2", "prompty-temperature"),
    prompty("{{ q }}", "{{ q | bogusfilter }}",
            "prompts/p.prompty:22:1: template: Jinja2 syntax error: No filter named",
            "prompty-unknown-filter"),
    prompty("{{ q }}", "{{ q.upper(1, 2, 3) }}", "jinja2 could not render the template", "prompty-render-error",
            cmd="validate"),
    # --- Dotprompt
    raw("hello {{x}}\n", "a Dotprompt file starts with YAML front matter", "dotprompt-no-front-matter",
        name="prompts/p.prompt"),
    raw("---\nmodel: x\n", "Dotprompt: ", "dotprompt-unclosed", name="prompts/p.prompt"),
    dotprompt("model: googleai/gemini-2.5-flash", "model: googleai/gemini-2.5-flash\nmodel: x",
              "prompts/p.prompt:3:1: model: duplicate key 'model'", "dotprompt-dup-key"),
    dotprompt("    q: string", "    q: strin", "input.schema: Picoschema: unsupported scalar type 'strin'",
              "dotprompt-picoschema"),
    dotprompt("{{q}}", "{{> missing}}", "partial 'missing' not found", "dotprompt-partial"),
    dotprompt("{{q}}", "{{#if q}}{{q}}", "Handlebars syntax error", "dotprompt-unclosed-block"),
    dotprompt("{{q}}", "{{q}} {{r}}", "template.r: variable 'r' is used but not declared under 'input.schema'",
              "dotprompt-undeclared", cmd="validate"),
    dotprompt("  temperature: 0", "  temperature: 0\n  topK: 3", "config.topK: unknown field 'topK'",
              "dotprompt-config"),
    dotprompt("model: googleai/gemini-2.5-flash\n", "", "model: model is required", "dotprompt-no-model"),
    dotprompt("model: googleai/gemini-2.5-flash", "model: googleai/gemini-9", "unknown model 'googleai/gemini-9'",
              "dotprompt-unknown-model", cmd="validate"),
    dotprompt("model: googleai/gemini-2.5-flash", "model: !Ref x", "prompts/p.prompt:2:8: model: unknown YAML tag",
              "dotprompt-tag"),
    dotprompt("config:\n", "toolz: [a]\nconfig:\n", "prompts/p.prompt:3:1: toolz: unknown field 'toolz' "
                                                   "(Dotprompt reads", "dotprompt-unknown-key"),
]
