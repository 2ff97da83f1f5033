"""Property-based fuzzing of lint and validate (hypothesis), with a fixed budget so CI runs it every time.

Whatever the bytes or the structure of a prompt, a dataset (YAML, JSON, JSONL, CSV), a Prompty or
a Dotprompt file, lint and validate must answer with problem lines and exit 0 or 1: never a
traceback, never a "promptci bug" (exit 2), and within 1 s of CPU per run. ``derandomize`` makes
the examples the same on every run, so a failure here reproduces.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import config.formats.dotprompt  # noqa: F401 - the runtimes' imports are not part of a case's CPU budget
import config.formats.prompty  # noqa: F401
from steps.artifact_files import load_artifact
from steps.cli import run_check
from steps.datasets import _read_dataset
from steps.lint import lint_paths
from steps.validate import validate_paths
from tests.steps.bad_inputs import DATASET, DOTPROMPT, GH, GOOD, PROMPTY

BUDGET = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
values = st.recursive(scalars, lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids,
                                                                                          max_size=4), max_leaves=25)
TEMPLATES = {"prompts/p.yaml": GOOD, "prompts/g.prompt.yml": GH, "prompts/p.prompty": PROMPTY,
             "prompts/p.prompt": DOTPROMPT}
SNIPPETS = ["{{", "}}", "{%", "%}", "---", "!Ref x", "!!python/object/apply:os.system [ls]", "&a", "*a", "<<: *a",
            ": ", "\n  - ", "\t", "\x00", "\ufeff", "'", '"', "[", "]", "{", "}", "#", "{{#if x}}", "{{/if}}",
            "{{> p}}", "{{role \"user\"}}", "system:\n", "user:\n", "ü", "\r\n", "? ", "|", ">", "%YAML 1.1\n"]


def _run(files: dict[str, bytes]) -> None:
    """Write ``files`` into a fresh repo, run lint and validate on prompts/, check the contract."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "prompts").mkdir()
        for name, content in files.items():
            f = root / name
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_bytes(content)
        for name, check in (("lint", lint_paths), ("validate", validate_paths)):
            load_artifact.cache_clear()  # type: ignore[attr-defined]
            _read_dataset.cache_clear()  # type: ignore[attr-defined]
            cpu = time.process_time()
            rc = run_check(name, check, [root / "prompts"], root, "json")
            cpu = time.process_time() - cpu
            assert rc in (0, 1), (name, rc, files)
            assert cpu < 1.0, (name, cpu, files)


@BUDGET
@given(name=st.sampled_from(sorted(TEMPLATES)), data=st.binary(max_size=3000))
def test_any_bytes_as_an_artifact(name: str, data: bytes) -> None:
    _run({name: data})


@BUDGET
@given(name=st.sampled_from(sorted(TEMPLATES)), cuts=st.lists(st.tuples(st.integers(0, 10_000),
                                                                      st.sampled_from(SNIPPETS)), max_size=6))
def test_spliced_templates(name: str, cuts: list[tuple[int, str]]) -> None:
    text = TEMPLATES[name]
    for at, snippet in cuts:
        i = at % (len(text) + 1)
        text = text[:i] + snippet + text[i:]
    _run({name: text.encode("utf-8", "surrogatepass"), "evals/p/golden.yaml": DATASET.encode()})


@BUDGET
@given(doc=values, as_json=st.booleans())
def test_any_structure_as_an_artifact(doc: object, as_json: bool) -> None:
    if as_json:
        _run({"prompts/p.json": json.dumps(doc).encode()})
    else:
        _run({"prompts/p.yaml": yaml.safe_dump(doc, allow_unicode=True).encode()})


@BUDGET
@given(kind=st.sampled_from(["yaml", "json", "jsonl", "csv"]), rows=st.lists(values, max_size=5),
       header=st.lists(st.sampled_from(["q", "description", "__expected", "__expected1", "x", ""]), max_size=5),
       cells=st.lists(st.lists(st.text(max_size=10), max_size=6), max_size=4))
def test_any_dataset(kind: str, rows: list[object], header: list[str], cells: list[list[str]]) -> None:
    if kind == "csv":
        import csv
        import io

        buf = io.StringIO()
        csv.writer(buf).writerows([header, *cells])
        content = buf.getvalue()
    elif kind == "jsonl":
        content = "\n".join(json.dumps(r) for r in rows)
    elif kind == "json":
        content = json.dumps(rows)
    else:
        content = yaml.safe_dump(rows, allow_unicode=True)
    prompt = GOOD.replace("evals/p/golden.yaml", f"evals/p/golden.{kind}")
    _run({"prompts/p.yaml": prompt.encode(), f"evals/p/golden.{kind}": content.encode("utf-8", "surrogatepass")})
