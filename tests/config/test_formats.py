"""Prompty and Dotprompt as first-class prompts: read and rendered by their own runtimes."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from pathlib import Path

import prompty
from dotpromptz import DataArgument, Dotprompt

from config.pipeline import PromptPipelineConfig
from config.problems import Severity
from steps.artifact_files import discover, load_all
from steps.lint import lint_paths
from steps.render import render_prompt, resolve_vars
from steps.validate import validate_paths
from tests.steps.bad_inputs import DATASET, DOTPROMPT, PROMPTY

REPO = Path(__file__).resolve().parents[2]


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


def _errors(problems):  # type: ignore[no-untyped-def]
    return [p.format() for p in problems if p.severity is not Severity.WARNING]


def test_the_samples_load_as_prompts_of_their_format():
    files, problems = load_all(discover(REPO / "prompts"), REPO)
    assert problems == []
    by_id = {f.artifact_id: f for f in files}
    assert by_id["faq-answer"].fmt == "prompty" and by_id["commit-message"].fmt == "dotprompt"
    assert by_id["release-notes"].fmt == "github-models"
    assert "_house-style" not in by_id  # a Dotprompt partial is read through the prompt that includes it


def test_prompty_renders_exactly_as_the_prompty_runtime(tmp_path: Path):
    """The sample's Jinja2 loop, rendered by promptci and by prompty.prepare directly, gives the same messages."""
    shutil.copy(REPO / "prompts" / "faq-answer.prompty", tmp_path / "faq-answer.prompty")
    (art,), problems = load_all([tmp_path / "faq-answer.prompty"], tmp_path)
    values = {"question": "How long?", "facts": ["a", "b"]}
    ours = render_prompt(art.artifact, resolve_vars(values, art.artifact.variables))
    agent = prompty.load(tmp_path / "faq-answer.prompty")
    theirs = [{"role": m.role, "content": m.text} for m in prompty.prepare(agent, values)]
    assert ours == theirs
    assert "[2] b" in ours[0]["content"] and ours[0]["content"].startswith("You answer questions about Acme Cloud")


def test_dotprompt_renders_exactly_as_dotpromptz_with_partials_and_if():
    (art,), _ = load_all([REPO / "prompts" / "commit-message.prompt"], REPO)
    values = {"summary": "fix x", "issue": 7}
    ours = render_prompt(art.artifact, resolve_vars(values, art.artifact.variables))
    source = (REPO / "prompts" / "commit-message.prompt").read_text()
    partial = (REPO / "prompts" / "_house-style.prompt").read_text()
    rendered = asyncio.run(Dotprompt(partials={"house-style": partial}).render(
        source, DataArgument(input={**values, "scope": "core"})))
    assert ours == [{"role": m.role.value, "content": "".join(p.text for p in m.content)} for m in rendered.messages]
    assert "imperative mood" in ours[0]["content"]  # the partial
    assert 'Mention "Fixes #7"' in ours[1]["content"] and "Scope: core" in ours[1]["content"]  # #if and default
    without = render_prompt(art.artifact, resolve_vars({"summary": "fix x"}, art.artifact.variables))
    assert "Fixes" not in without[1]["content"]


def test_picoschema_declares_optional_and_required_variables():
    (art,), _ = load_all([REPO / "prompts" / "commit-message.prompt"], REPO)
    spec = art.artifact.variables
    assert spec["summary"].required and not spec["issue"].required and spec["issue"].type == "integer"
    assert spec["scope"].default == "core"


def test_jinja_loop_variables_are_not_inputs(tmp_path: Path):
    """A `{% for t in items %}` loop variable is the template's own, not an undeclared input."""
    _write(tmp_path, {"prompts/p.prompty": PROMPTY.replace("{{ q }}", "{% for t in q %}{{ t | upper }}{% endfor %}"),
                      "evals/p/golden.yaml": DATASET})
    assert _errors(validate_paths([tmp_path / "prompts"], root=tmp_path)) == []


def test_tokens_are_counted_on_the_rendered_messages(tmp_path: Path):
    """The pipeline's token cap applies to what the format's runtime renders, per golden test."""
    long_q = "word " * 300
    _write(tmp_path, {"prompts/p.prompt": DOTPROMPT,
                      "evals/p/golden.yaml": f"- vars: {{q: '{long_q}'}}\n  assert: [{{type: contains, value: w}}]\n"})
    cfg = PromptPipelineConfig.model_validate({"defaults": {"token_limits": {"max_prompt_tokens": 100}}})
    errors = _errors(validate_paths([tmp_path / "prompts"], root=tmp_path, config=cfg))
    assert len(errors) == 1 and "rendered prompt is 3" in errors[0] and "over the pipeline's" in errors[0]
    assert errors[0].startswith("evals/p/golden.yaml:1:3: [0].vars:")


def test_a_dotprompt_model_resolves_through_the_catalog(tmp_path: Path):
    _write(tmp_path, {"prompts/p.prompt": DOTPROMPT.replace("googleai/gemini-2.5-flash", "vertexai/gemini-2.5-pro"),
                      "evals/p/golden.yaml": DATASET})
    assert _errors(validate_paths([tmp_path / "prompts"], root=tmp_path)) == []
    (art,), _ = load_all([tmp_path / "prompts" / "p.prompt"], tmp_path)
    assert art.artifact.model == "vertexai/gemini-2.5-pro"


def test_datasets_attach_as_in_native_prompts(tmp_path: Path):
    _write(tmp_path, {"prompts/p.prompty": PROMPTY.replace("evals/p/golden.yaml", "evals/p/missing.yaml")})
    assert _errors(lint_paths([tmp_path / "prompts"], root=tmp_path)) == [
        "prompts/p.prompty:16:5: evals[0].path: dataset file not found: evals/p/missing.yaml"]


def test_a_crash_on_one_file_is_one_promptci_bug_line_and_exit_2(tmp_path: Path):
    """Directory mode still reports the other files; the crash names its file and exits 2, not 1."""
    _write(tmp_path, {"prompts/a.yaml": "id: [broken\n", "prompts/p.prompt": DOTPROMPT, "evals/p/golden.yaml": DATASET})
    script = ("import sys, config.formats.dotprompt as d\n"
              "def boom(*a, **k): raise RuntimeError('simulated crash')\n"
              "d.read_dotprompt = boom\n"
              "from steps.lint import main\n"
              "sys.argv = ['lint', 'prompts', '--repo-root', '.']\nmain()\n")
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert "prompts/p.prompt:1:1: <file>: promptci bug: RuntimeError: simulated crash" in proc.stdout
    lines = proc.stdout.splitlines()
    assert any(line.startswith("prompts/a.yaml:") and "YAML syntax error" in line for line in lines)  # still reported
    assert "1 promptci bug(s): exit 2" in proc.stderr
