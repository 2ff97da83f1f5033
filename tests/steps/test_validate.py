import re
from pathlib import Path

import tiktoken
from hypothesis import given, settings
from hypothesis import strategies as st

from config.problems import Severity
from steps.tokens import default_cache, seed_tiktoken_cache
from steps.validate import chat_tokens, chat_tokens_at_most, validate_paths


def run(repo: Path, path: str = "prompts") -> tuple[list[str], list[str]]:
    problems = validate_paths([repo / path], root=repo)
    errors = [p.format() for p in problems if p.severity is Severity.ERROR]
    warnings = [p.format() for p in problems if p.severity is Severity.WARNING]
    return errors, warnings


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_samples_validate(repo: Path):
    for d in ("prompts", "model-configs", "rag-configs", "guardrails"):
        assert run(repo, d) == ([], [])


def test_unknown_model_suggests_the_closest(repo: Path):
    edit(repo / "prompts" / "ticket-classifier.yaml", "model: config:support-default", "model: gpt-4o-mnii")
    errors, _ = run(repo, "prompts/ticket-classifier.yaml")
    assert errors == ["prompts/ticket-classifier.yaml:7:1: model: unknown model 'gpt-4o-mnii'; "
                      "did you mean 'gpt-4o-mini'?"]


def test_retired_is_an_error_and_deprecated_a_warning(repo: Path):
    edit(repo / "prompts" / "ticket-classifier.yaml", "model: config:support-default", "model: gpt-3.5-turbo-0613")
    edit(repo / "prompts" / "support-reply.yaml", "model: config:support-default", "model: gpt-4-turbo")
    errors, warnings = run(repo)
    assert errors == ["prompts/ticket-classifier.yaml:7:1: model: model 'gpt-3.5-turbo-0613' is retired; "
                      "use 'gpt-4o-mini'"]
    assert warnings == ["prompts/support-reply.yaml:7:1: model: warning: model 'gpt-4-turbo' is deprecated; "
                        "migrate to 'gpt-4o'"]


def test_a_model_config_reference_is_resolved_and_its_model_checked(repo: Path):
    assert run(repo, "prompts/support-reply.yaml") == ([], [])  # model: config:support-default
    edit(repo / "model-configs" / "support-default.yaml", "model: gpt-4o-mini", "model: gpt-3.5-turbo-0613")
    errors, _ = run(repo, "prompts/support-reply.yaml")
    assert errors == ["prompts/support-reply.yaml:7:1: model: model 'gpt-3.5-turbo-0613' is retired; "
                      "use 'gpt-4o-mini'"]
    edit(repo / "prompts" / "support-reply.yaml", "config:support-default", "config:no-such-config")
    errors, _ = run(repo, "prompts/support-reply.yaml")
    assert errors == ["prompts/support-reply.yaml:7:1: model: model 'config:no-such-config' names no model-config: "
                      "model-configs/no-such-config.yaml does not exist"]


def test_prompt_over_its_token_limit_names_the_test(repo: Path):
    edit(repo / "prompts" / "rag-answer.yaml", "max_prompt_tokens: 6000", "max_prompt_tokens: 90")
    errors, _ = run(repo, "prompts/rag-answer.yaml")
    assert len(errors) == 1
    assert errors[0].startswith("evals/rag-answer/golden.yaml:2:3: [0].vars: rendered prompt is ")
    assert "over the prompt's limits.max_prompt_tokens of 90" in errors[0]


def test_context_window_counts_reserved_output(repo: Path):
    f = repo / "prompts" / "sql-generator.yaml"
    edit(f, "model: gpt-4.1-mini", "model: qwen2.5-7b-instruct")
    edit(f, "max_tokens: 500", "max_tokens: 8000")
    edit(f, "max_prompt_tokens: 2000", "max_prompt_tokens: 100000")
    ds = repo / "evals" / "sql-generator" / "golden.csv"
    ds.write_text(ds.read_text() + "huge," + ("revenue " * 30000) + ",starts-with: SELECT,,\n")
    errors, _ = run(repo, "prompts/sql-generator.yaml")
    assert any(e.startswith("evals/sql-generator/golden.csv:5:1: [3].vars: rendered prompt (")
               and "8000 reserved output tokens exceeds qwen2.5-7b-instruct's context window of 32768" in e
               for e in errors), errors


def test_undeclared_and_unused_variables(repo: Path):
    f = repo / "prompts" / "support-reply.yaml"
    edit(f, "Ticket: {{ticket}}", "Ticket: {{ticket}} ({{severity}})")
    edit(f, "  language: {type: string, required: false, default: English}\n",
         "  language: {type: string, required: false, default: English}\n  tone: {type: string}\n")
    errors, _ = run(repo, "prompts/support-reply.yaml")
    assert "prompts/support-reply.yaml:19:5: messages[1].content: variable 'severity' is used but not " \
           "declared under 'variables'" in errors
    assert "prompts/support-reply.yaml:28:3: variables.tone: variable 'tone' is declared but never used" \
           in errors


def test_test_missing_a_required_variable(repo: Path):
    ds = repo / "evals" / "support-reply" / "golden.yaml"
    edit(ds, "      customer_name: Lee\n", "")
    errors, _ = run(repo, "prompts/support-reply.yaml")
    assert errors == ["evals/support-reply/golden.yaml:12:5: tests[1].vars: test does not supply required "
                      "variable(s): customer_name"]


def test_unparsable_file_is_reported_not_a_crash(repo: Path):
    (repo / "prompts" / "broken.yaml").write_text("id: [unclosed\n")
    errors, _ = run(repo)
    assert len(errors) == 1 and errors[0].startswith("prompts/broken.yaml:2:1: <file>: YAML syntax error")


def test_rag_config_needs_an_embedding_model(repo: Path):
    edit(repo / "rag-configs" / "kb-search.yaml", "embedding_model: text-embedding-3-small",
         "embedding_model: gpt-4o")
    errors, _ = run(repo, "rag-configs")
    assert errors == ["rag-configs/kb-search.yaml:6:1: embedding_model: model 'gpt-4o' is an chat model; "
                      "a embedding model is needed"]


def test_token_counts_equal_tiktoken_offline(tmp_path: Path, monkeypatch):
    # No network: any download attempt by tiktoken would fail this test.
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr("tiktoken.load.read_file", lambda *_: (_ for _ in ()).throw(OSError("offline")))
    seed_tiktoken_cache()
    text = "Résumé: 42 naïve cafés — ünïcödé ✓ and code `x = {'a': 1}`"
    for name in ("cl100k_base", "o200k_base"):
        enc = tiktoken.get_encoding(name)
        assert len(enc.encode(text)) > 5
        msgs = [{"role": "system", "content": text}, {"role": "user", "content": "hi"}]
        expected = 3 + sum(3 + len(enc.encode(m["content"])) + len(enc.encode(m["role"])) for m in msgs)
        assert chat_tokens(msgs, name) == expected


@settings(max_examples=200, deadline=None)
@given(texts=st.lists(st.text(max_size=400), min_size=1, max_size=4))
def test_the_byte_bound_is_never_below_the_exact_count(texts: list[str]):
    """Validate skips tiktoken when the byte bound fits every limit: the bound must hold for every encoding."""
    msgs = [{"role": ("system", "user", "assistant")[i % 3], "content": t} for i, t in enumerate(texts)]
    msgs.append({"role": "user", "content": "lone surrogate \ud800 and <|endoftext|>"})
    for name in ("cl100k_base", "o200k_base"):
        assert chat_tokens_at_most(msgs) >= chat_tokens(msgs, name)


def test_a_cap_between_the_exact_count_and_the_byte_bound_is_not_broken(repo: Path):
    """The byte bound only decides when counting is needed: what is reported, and when, is the exact count."""
    f = repo / "prompts" / "rag-answer.yaml"
    edit(f, "max_prompt_tokens: 6000", "max_prompt_tokens: 1")
    errors, _ = run(repo, "prompts/rag-answer.yaml")
    counts = [int(re.search(r"rendered prompt is (\d+) tokens", e).group(1)) for e in errors]  # type: ignore[union-attr]
    assert len(counts) == 2 and all(n > 1 for n in counts)
    edit(f, "max_prompt_tokens: 1", f"max_prompt_tokens: {max(counts)}")
    assert run(repo, "prompts/rag-answer.yaml") == ([], [])  # far fewer tokens than bytes: no count, no error
    edit(f, f"max_prompt_tokens: {max(counts)}", f"max_prompt_tokens: {max(counts) - 1}")
    errors, _ = run(repo, "prompts/rag-answer.yaml")
    assert [f"rendered prompt is {max(counts)} tokens (cl100k_base), over the prompt's limits.max_prompt_tokens "
            f"of {max(counts) - 1}" in e for e in errors].count(True) == counts.count(max(counts)) == len(errors)


def test_the_default_encoding_cache_follows_the_environment_at_call_time(tmp_path: Path, monkeypatch):
    """A step forked from a pre-loaded process (the local runner's zygote) has its own XDG_CACHE_HOME."""
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")
    monkeypatch.delenv("TIKTOKEN_CACHE_DIR")  # recorded, so what seeding sets is undone after the test
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache() == tmp_path / "xdg" / "promptci" / "tiktoken"
    assert seed_tiktoken_cache() == tmp_path / "xdg" / "promptci" / "tiktoken"
    assert len(list((tmp_path / "xdg" / "promptci" / "tiktoken").iterdir())) == 2  # both encodings seeded
