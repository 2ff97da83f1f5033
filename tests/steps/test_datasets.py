from pathlib import Path

import pytest

from config.yamlio import LoadError
from steps.datasets import load_dataset, read_guardrail_cases, read_rag_dataset

REPO = Path(__file__).resolve().parents[2]


def test_every_sample_format_loads():
    other_types = {"pii-and-injection", "kb-search"}  # guardrail cases and a RAG golden set
    counts = {p.parent.name + p.suffix: len(load_dataset(p)) for p in (REPO / "evals").rglob("golden.*")
              if p.parent.name not in other_types}
    assert counts == {"support-reply.yaml": 3, "summarizer.jsonl": 2, "sql-generator.csv": 3,
                      "ticket-classifier.json": 3, "rag-answer.yaml": 2, "faq-answer.yaml": 2,
                      "commit-message.jsonl": 2, "order-lookup.yaml": 3, "contact-extractor.yaml": 3}
    assert len(read_guardrail_cases(REPO / "evals" / "pii-and-injection" / "golden.yaml")) == 43
    rag = read_rag_dataset(REPO / "evals" / "kb-search" / "golden.yaml")
    assert (len(rag.documents), len(rag.queries)) == (32, 22)


def test_guardrail_and_rag_datasets_report_each_problem_at_its_line(tmp_path: Path):
    g = tmp_path / "g.yaml"
    g.write_text("cases:\n  - {description: a, input: x, expected: block, category: pii}\n"
                 "  - {description: a, input: y, expected: allow, category: pii, redacted: z}\n")
    with pytest.raises(LoadError) as exc:
        read_guardrail_cases(g)
    lines = [p.format() for p in exc.value.problems]
    assert any(":3:5: cases[1]: `redacted` is only for cases expected to be redacted" in line for line in lines), lines
    r = tmp_path / "r.yaml"
    r.write_text("documents: [{id: a, text: t}]\nqueries: [{query: q, relevant: [b]}]\n")
    with pytest.raises(LoadError, match="queries\\[0\\] names unknown documents: b"):
        read_rag_dataset(r)


def test_csv_expectations_become_assertions():
    tests = load_dataset(REPO / "evals" / "sql-generator" / "golden.csv")
    first = tests[0]
    assert first.description == "revenue by country"
    assert first.vars == {"question": "Total revenue per country in 2025"}
    assert [(a.type, a.value) for a in first.assert_] == [
        ("starts-with", "SELECT"), ("icontains", "GROUP BY"), ("not-icontains", "DELETE")]


def test_csv_bare_expectation_means_equals(tmp_path: Path):
    f = tmp_path / "d.csv"
    f.write_text("q,__expected\nhi,hello there\n")
    [t] = load_dataset(f)
    assert (t.assert_[0].type, t.assert_[0].value) == ("equals", "hello there")


def test_jsonl_syntax_error_names_the_line(tmp_path: Path):
    f = tmp_path / "d.jsonl"
    f.write_text('{"vars": {}, "assert": [{"type": "contains", "value": "x"}]}\n{"vars": \n')
    with pytest.raises(LoadError) as exc:
        load_dataset(f, "d.jsonl")
    assert exc.value.problems[0].format().startswith("d.jsonl:2:")


def test_unknown_assertion_type_is_reported_at_its_line(tmp_path: Path):
    f = tmp_path / "d.yaml"
    f.write_text("- vars: {a: 1}\n  assert:\n    - type: contians\n      value: x\n")
    with pytest.raises(LoadError) as exc:
        load_dataset(f, "d.yaml")
    [p] = exc.value.problems
    assert p.format().startswith("d.yaml:3:7: [0].assert[0].type: unknown assertion type 'contians'")


def test_json_artifact_errors_have_lines(repo: Path):
    from steps.lint import lint_paths

    f = repo / "prompts" / "summarizer.json"
    f.write_text(f.read_text().replace('"owner": "team-sre",', '"owner": "team-sre",\n  "ownerz": 1,'))
    [p] = lint_paths([f], root=repo)
    assert p.format() == "prompts/summarizer.json:7:3: ownerz: unknown field 'ownerz'"
