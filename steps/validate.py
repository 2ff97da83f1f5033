"""The validate stage: do artifacts make sense against the model catalog and their own limits?

* model ids exist in the catalog (with a "did you mean"); deprecated models
  warn, retired ones fail;
* for every golden test case, the rendered messages' tiktoken count plus the
  reserved output fits the model's context window, and the prompt's own and
  the pipeline's token limits;
* template variables used = declared, and every test supplies the required ones.

Validate runs in parallel with lint and must not assume linted input: an
unparsable file is reported as a problem, never a crash.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from config.artifacts import (
    VAR_PATTERN,
    GuardrailPolicyArtifact,
    ModelConfigArtifact,
    PromptArtifact,
    RagConfigArtifact,
    model_config_ref,
)
from config.catalog import Catalog, ModelEntry, load_catalog
from config.pipeline import PromptPipelineConfig, load_pipeline_config
from config.problems import Problem, Severity
from config.yamlio import LoadError
from steps.artifact_files import ArtifactFile, load_all, rel
from steps.cli import check_command
from steps.datasets import DatasetFile, read_dataset
from steps.lint import expand
from steps.model_refs import RefError, resolve_model
from steps.render import MissingVariable, render_messages, resolve_vars
from steps.tokens import TOKENS_PER_MESSAGE, TOKENS_REPLY_PRIMER, encoding


@lru_cache(maxsize=16384)
def _tokens(encoding_name: str, text: str) -> int:
    # System prompts repeat across every test case of a prompt; count each text once.
    return len(encoding(encoding_name).encode(text, disallowed_special=()))


def chat_tokens(messages: list[dict[str, str]], encoding_name: str) -> int:
    """Return the prompt tokens of a chat request (same formula as steps.tokens.count_chat_tokens)."""
    return TOKENS_REPLY_PRIMER + sum(
        TOKENS_PER_MESSAGE + _tokens(encoding_name, m["content"]) + _tokens(encoding_name, m["role"])
        for m in messages)


def _model(art: ArtifactFile, loc: tuple[str | int, ...], model_id: str, catalog: Catalog,
           want: str = "chat") -> tuple[Problem | None, ModelEntry | None]:
    found = catalog.resolve(model_id)
    if found is None:
        hint = catalog.suggest(model_id)
        msg = f"unknown model '{model_id}'" + (f"; did you mean '{hint}'?" if hint else "")
        return art.loaded.problem(loc, msg), None
    mid, entry = found
    if entry.kind != want:
        return art.loaded.problem(loc, f"model '{model_id}' is an {entry.kind} model; a {want} model "
                                       "is needed"), None
    if entry.status == "retired":
        repl = f"; use '{entry.replacement}'" if entry.replacement else ""
        return art.loaded.problem(loc, f"model '{model_id}' is retired{repl}"), None
    if entry.status == "deprecated":
        repl = f"; migrate to '{entry.replacement}'" if entry.replacement else ""
        return art.loaded.problem(loc, f"model '{model_id}' is deprecated{repl}",
                                  severity=Severity.WARNING), entry
    return None, entry


def _cases(art: ArtifactFile, prompt: PromptArtifact) -> list[tuple[dict[str, Any], Any]]:
    """Return (vars, at) for every golden test, where at(msg) builds a Problem at that test.

    Datasets that are missing or do not parse are skipped: lint reports them.
    """
    cases: list[tuple[dict[str, Any], Any]] = []
    for ref in prompt.evals:
        path = art.root / ref.path
        if not path.is_file():
            continue
        try:
            ds: DatasetFile = read_dataset(path, rel(path, art.root))
        except LoadError:
            continue
        for i, t in enumerate(ds.tests):
            cases.append((t.vars, lambda msg, _ds=ds, _i=i, **kw: _ds.problem(_i, ("vars",), msg, **kw)))
    for i, t in enumerate(prompt.tests):
        loc = ("testData", i) if art.github_models else ("tests", i, "vars")
        cases.append((t.vars, lambda msg, _loc=loc, **kw: art.loaded.problem(_loc, msg, **kw)))
    return cases


def _validate_prompt(art: ArtifactFile, prompt: PromptArtifact, catalog: Catalog,
                     cfg: PromptPipelineConfig) -> list[Problem]:
    problems: list[Problem] = []
    model_loc = ("model",)
    ref = model_config_ref(prompt.model)
    if ref is None:
        problem, entry = _model(art, model_loc, prompt.model, catalog)
    else:  # model: config:<id> — the model-config's own model is what runs
        try:
            resolved = resolve_model(prompt, art.root)
            problem, entry = _model(art, model_loc, resolved.model, catalog)
            prompt = prompt.model_copy(update={"parameters": resolved.parameters})
        except RefError as exc:
            problem, entry = art.loaded.problem(model_loc, str(exc)), None
    if problem:
        problems.append(problem)

    used_at: dict[str, tuple[str | int, ...]] = {}
    for i, m in enumerate(prompt.messages):
        for name in VAR_PATTERN.findall(m.content):
            used_at.setdefault(name, ("messages", i, "content"))
    declared = prompt.variables
    if not art.github_models:  # GitHub Models has no declarations; its variables are what it uses
        for name, loc in used_at.items():
            if name not in declared:
                problems.append(art.loaded.problem(loc, f"variable '{name}' is used but not declared "
                                                        "under 'variables'"))
        for name in declared:
            if name not in used_at:
                problems.append(art.loaded.problem(("variables", name), f"variable '{name}' is declared "
                                                                        "but never used"))

    limits = cfg.for_artifact(prompt.id).token_limits
    max_out = prompt.parameters.max_tokens or prompt.limits.max_output_tokens
    if entry is not None and max_out and entry.max_output_tokens and max_out > entry.max_output_tokens:
        problems.append(art.loaded.problem(("parameters", "max_tokens"),
                                           f"max_tokens {max_out} exceeds {prompt.model}'s output limit "
                                           f"of {entry.max_output_tokens}"))
    reserve = (max_out or (entry.max_output_tokens if entry else 0)) if limits.reserve_output_tokens else 0
    caps = [(c, src) for c, src in ((prompt.limits.max_prompt_tokens, "the prompt's limits.max_prompt_tokens"),
                                    (limits.max_prompt_tokens, "the pipeline's token_limits.max_prompt_tokens"))
            if c]

    cases = _cases(art, prompt)
    required = {n for n, v in declared.items() if v.required and v.default is None}
    if art.github_models:
        required = set(used_at)
    worst = 0
    for values, at in cases:
        missing = sorted(required - set(values))
        if missing:
            problems.append(at(f"test does not supply required variable(s): {', '.join(missing)}"))
            continue
        unknown = sorted(set(values) - set(used_at) - set(declared))
        if unknown and not art.github_models:
            problems.append(at(f"test sets variable(s) the prompt never uses: {', '.join(unknown)}",
                               severity=Severity.WARNING))
        if entry is None:
            continue
        try:
            rendered = render_messages(prompt.messages, resolve_vars(values, declared))
        except MissingVariable as exc:
            problems.append(at(f"no value for variable '{exc.args[0]}'"))
            continue
        n = chat_tokens(rendered, entry.encoding)
        worst = max(worst, n)
        for cap, src in caps:
            if n > cap:
                problems.append(at(f"rendered prompt is {n} tokens ({entry.encoding}), over {src} of {cap}"))
        if n + reserve > entry.context_window:
            problems.append(at(f"rendered prompt ({n} tokens) + {reserve} reserved output tokens exceeds "
                               f"{prompt.model}'s context window of {entry.context_window}"))
    if not cases and entry is not None:
        n = chat_tokens([m.model_dump() for m in prompt.messages], entry.encoding)
        for cap, src in caps:
            if n > cap:
                problems.append(art.loaded.problem(("messages",), f"prompt is {n} tokens, over {src} of {cap}"))
    return problems


def _validate_other(art: ArtifactFile, catalog: Catalog) -> list[Problem]:
    a = art.artifact
    problems: list[Problem] = []
    if isinstance(a, ModelConfigArtifact):
        problem, entry = _model(art, ("model",), a.model, catalog)
        problems += [problem] if problem else []
        for i, fb in enumerate(a.fallbacks):
            p, _ = _model(art, ("fallbacks", i), fb, catalog)
            problems += [p] if p else []
        if entry and a.parameters.max_tokens and a.parameters.max_tokens > entry.max_output_tokens:
            problems.append(art.loaded.problem(("parameters", "max_tokens"),
                                               f"max_tokens exceeds {a.model}'s output limit of "
                                               f"{entry.max_output_tokens}"))
    elif isinstance(a, RagConfigArtifact):
        problem, entry = _model(art, ("embedding_model",), a.embedding_model, catalog, want="embedding")
        problems += [problem] if problem else []
        if entry and a.chunk_size > entry.context_window:
            problems.append(art.loaded.problem(("chunk_size",), f"chunk_size {a.chunk_size} exceeds "
                                               f"{a.embedding_model}'s input limit of {entry.context_window}"))
    elif isinstance(a, GuardrailPolicyArtifact):
        ids = [r.id for r in a.rules]
        for i, rid in enumerate(ids):
            if ids.index(rid) != i:
                problems.append(art.loaded.problem(("rules", i, "id"), f"duplicate rule id '{rid}'"))
    return problems


def validate_paths(paths: Sequence[str | Path], *, root: Path | None = None, catalog: Catalog | None = None,
                   config: PromptPipelineConfig | None = None) -> list[Problem]:
    """Return every validation problem (errors and warnings) in the artifact files at ``paths``."""
    root = (root or Path.cwd()).resolve()
    catalog = catalog or load_catalog()
    cfg = config or load_pipeline_config()
    files, problems = expand(paths, root)
    artifacts, load_problems = load_all(files, root)
    problems += load_problems
    for art in artifacts:
        if isinstance(art.artifact, PromptArtifact):
            problems += _validate_prompt(art, art.artifact, catalog, cfg)
        else:
            problems += _validate_other(art, catalog)
    return problems


main = check_command("validate", validate_paths,
                     "Validate artifacts: catalog model ids, token budgets, template variables.")

if __name__ == "__main__":
    main()
