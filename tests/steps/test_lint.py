import subprocess
import sys
from pathlib import Path

import pytest

from config.problems import has_errors
from steps.lint import lint_paths

GOOD = (Path(__file__).resolve().parents[2] / "prompts" / "ticket-classifier.yaml").read_text()


def lint(repo: Path, *paths: str) -> list[str]:
    return [p.format() for p in lint_paths([repo / p for p in paths or ("prompts",)], root=repo)
            if p.severity == "error"]


def test_samples_are_clean(repo: Path):
    for d in ("prompts", "model-configs", "rag-configs", "guardrails"):
        assert lint(repo, d) == []


@pytest.mark.parametrize("old, new, expected", [
    ("version: 1.0.0\n", "version: 1.0.0\nversion: 1.0.1\n",
     "prompts/ticket-classifier.yaml:4:1: version: duplicate key 'version'"),
    ("owner: team-support\n", "",
     "prompts/ticket-classifier.yaml:1:1: owner: required field is missing"),
    ("owner: team-support\n", "owner: team-support\nownr: typo\n",
     "prompts/ticket-classifier.yaml:6:1: ownr: unknown field 'ownr'"),
    ("  max_tokens: 100\n", "  max_tokens: lots\n",
     "prompts/ticket-classifier.yaml:10:3: parameters.max_tokens: Input should be a valid integer"),
    ("  - role: user\n", "  - role: customer\n",
     "prompts/ticket-classifier.yaml:17:5: messages[1].role: Input should be 'system', 'user'"),
    ("id: ticket-classifier\n", "id: other-name\n",
     "prompts/ticket-classifier.yaml:2:1: id: id 'other-name' does not match the file name"),
    ("description: Classifies", "description: [Classifies",
     "prompts/ticket-classifier.yaml:5:"),
])
def test_each_bad_field_is_one_line_with_position(repo: Path, old: str, new: str, expected: str):
    f = repo / "prompts" / "ticket-classifier.yaml"
    assert old in GOOD
    f.write_text(GOOD.replace(old, new, 1))
    errors = lint(repo, "prompts/ticket-classifier.yaml")
    assert any(line.startswith(expected) for line in errors), errors


def test_test_without_assertion_is_an_error(repo: Path):
    ds = repo / "evals" / "rag-answer" / "golden.yaml"
    ds.write_text(ds.read_text() + "- description: checks nothing\n  vars: {context: x, question: y}\n")
    errors = lint(repo, "prompts/rag-answer.yaml")
    assert errors == ["evals/rag-answer/golden.yaml:17:3: [2]: test has no assertion: it would pass "
                      "without checking anything"]


def test_csv_dataset_row_without_expectation(repo: Path):
    ds = repo / "evals" / "sql-generator" / "golden.csv"
    ds.write_text(ds.read_text() + "no checks,List all orders,,,\n")
    errors = lint(repo, "prompts/sql-generator.yaml")
    assert errors == ["evals/sql-generator/golden.csv:5:1: [3]: test has no assertion: it would pass "
                      "without checking anything"]


def test_missing_dataset_and_duplicate_ids(repo: Path):
    (repo / "evals" / "summarizer" / "golden.jsonl").unlink()
    (repo / "prompts" / "zz").mkdir()
    (repo / "prompts" / "zz" / "ticket-classifier.yaml").write_text(GOOD)
    errors = lint(repo)
    assert any("summarizer.json" in e and "dataset file not found" in e for e in errors)
    assert any(e.startswith("prompts/zz/ticket-classifier.yaml:2:1: id: id 'ticket-classifier' is "
                            "already used by prompts/ticket-classifier.yaml") for e in errors)


def test_github_models_misspelt_parameter_is_rejected(repo: Path):
    f = repo / "prompts" / "release-notes.prompt.yml"
    f.write_text(f.read_text().replace("maxTokens: 300", "max_tokens: 300"))
    assert lint(repo, "prompts/release-notes.prompt.yml") == [
        "prompts/release-notes.prompt.yml:6:3: modelParameters.max_tokens: unknown field 'max_tokens'"]


def test_github_models_unmappable_evaluator_is_an_error_not_dropped(repo: Path):
    f = repo / "prompts" / "release-notes.prompt.yml"
    f.write_text(f.read_text() + "  - name: similar\n    uses: github/similarity\n")
    [error] = lint(repo, "prompts/release-notes.prompt.yml")
    assert "evaluators[2]" in error and "no exact promptfoo equivalent" in error


def test_unknown_kind(repo: Path):
    f = repo / "guardrails" / "pii-and-injection.yaml"
    f.write_text(f.read_text().replace("kind: guardrail-policy", "kind: guardrail"))
    [error] = lint(repo, "guardrails")
    assert error.startswith("guardrails/pii-and-injection.yaml:1:1: kind: unknown kind 'guardrail'")


def test_cli_exit_codes_and_no_traceback(repo: Path):
    bad = repo / "prompts" / "bomb.yaml"
    text = 'a: &a ["x","x","x","x","x","x","x","x","x"]\n'
    prev = "a"
    for n in "bcdefghi":
        text += f"{n}: &{n} [" + ",".join([f"*{prev}"] * 9) + "]\n"
        prev = n
    bad.write_text(text)
    (repo / "prompts" / "big.yaml").write_bytes(b"a: " + b"x" * (20 * 1024 * 1024))
    (repo / "prompts" / "bin.json").write_bytes(b"\x00\x01\x02")
    (repo / "prompts" / "empty.yaml").write_bytes(b"")
    proc = subprocess.run([sys.executable, "-m", "steps.lint", "prompts", "--repo-root", str(repo)],
                          cwd=repo, capture_output=True, text=True,
                          env={"PYTHONPATH": str(Path(__file__).resolve().parents[2]), "PATH": "/usr/bin"})
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    lines = proc.stdout.splitlines()
    assert any(line.startswith("prompts/bomb.yaml:") and "alias bomb" in line for line in lines)
    assert any(line.startswith("prompts/big.yaml:1:1: <file>: file is") for line in lines)
    assert "prompts/bin.json:1:1: <file>: binary file (contains NUL bytes); artifacts are UTF-8 text" in lines
    assert "prompts/empty.yaml:1:1: <file>: empty file" in lines
    proc = subprocess.run([sys.executable, "-m", "steps.lint", "prompts", "--format", "json"],
                          cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip() == "[]"


def test_has_errors_ignores_warnings(repo: Path):
    assert not has_errors(lint_paths([repo / "prompts"], root=repo))


def test_paths_and_metric_names_that_could_read_as_argo_syntax_are_rejected(repo: Path):
    weird = repo / "prompts" / "{{workflow.name}}"
    weird.mkdir()
    (weird / "ticket-classifier.yaml").write_text(GOOD)
    (repo / "prompts" / "ticket-classifier.yaml").unlink()
    ds = repo / "evals" / "rag-answer" / "golden.yaml"
    ds.write_text(ds.read_text().replace("metric: citation", "metric: '{{inputs.parameters.x}}'"))
    errors = lint(repo)
    assert any(e.startswith("prompts/{{workflow.name}}/ticket-classifier.yaml:1:1: <file>: file path may only "
                            "contain letters") for e in errors), errors
    assert any(e.startswith("evals/rag-answer/golden.yaml:9:") and "[0].assert[1].metric: String should match" in e
               for e in errors), errors


def test_guardrail_and_rag_golden_data_is_linted_with_its_own_shape(tmp_path):
    from steps.lint import lint_paths

    (tmp_path / "guardrails").mkdir()
    (tmp_path / "rag-configs").mkdir()
    (tmp_path / "evals").mkdir()
    (tmp_path / "guardrails" / "g.yaml").write_text(
        "kind: guardrail-policy\nid: g\nversion: 1.0.0\nowner: qa\nrules: [{id: r, patterns: [x], action: block}]\n"
        "evals: [{name: golden, path: evals/g.yaml}]\n")
    (tmp_path / "evals" / "g.yaml").write_text(
        "cases:\n  - {description: a, input: x, expected: redact, category: pii}\n")
    (tmp_path / "rag-configs" / "k.yaml").write_text(
        "kind: rag-config\nid: k\nversion: 1.0.0\nowner: qa\nembedding_model: text-embedding-3-small\n"
        "chunk_size: 64\nchunk_overlap: 8\ntop_k: 3\nindex: {name: i, backend: faiss, type: lexical}\n")
    lines = [p.format() for p in lint_paths([tmp_path / "guardrails", tmp_path / "rag-configs"], root=tmp_path)]
    assert "evals/g.yaml:2:5: cases[0]: a redact case needs the expected `redacted` text" in lines
    assert any(line.startswith("rag-configs/k.yaml:1:1: evals: rag-config has no golden data") for line in lines), \
        lines
