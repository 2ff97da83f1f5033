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

import fnmatch
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
from config.pipeline import DEFAULT_CONFIG, ConfigError, PromptPipelineConfig, load_pipeline_config
from config.problems import Problem, Severity, internal_problem
from config.yamlio import LoadError, load_file
from steps.artifact_files import ArtifactFile, discover, inside, load_all, rel
from steps.cli import check_command
from steps.datasets import DatasetFile, read_dataset
from steps.lint import expand
from steps.model_refs import RefError, resolve_model
from steps.render import (
    NATIVE_SYNTAX_HINT,
    MissingVariable,
    RenderError,
    render_prompt,
    resolve_vars,
    unsupported_syntax,
)
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


def chat_tokens_at_most(messages: list[dict[str, str]]) -> int:
    """Return an upper bound of :func:`chat_tokens` under every catalog encoding, without loading one.

    tiktoken's encodings are byte-level BPE: ``encode`` cuts the text's UTF-8 bytes into tokens
    of one byte or more (tiktoken ``CoreBPE::encode_ordinary``; with ``disallowed_special=()``
    special-token text is ordinary text), so a text has at most as many tokens as bytes. Loading
    an encoding costs ~0.5 s; the exact count is only needed when this bound could break a limit.
    ``surrogatepass`` sizes a lone surrogate as tiktoken sees it (U+FFFD, 3 bytes).
    """
    return TOKENS_REPLY_PRIMER + sum(
        TOKENS_PER_MESSAGE + len(m["content"].encode("utf-8", "surrogatepass"))
        + len(m["role"].encode("utf-8", "surrogatepass")) for m in messages)


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


def _input_loc(art: ArtifactFile, name: str) -> tuple[str | int, ...]:
    inputs = art.loaded.data.get("inputs")
    if isinstance(inputs, list):
        idx = next((i for i, p in enumerate(inputs) if isinstance(p, dict) and p.get("name") == name), None)
        return ("inputs", idx) if idx is not None else ("inputs",)
    return ("inputs", name)


def _schema_loc(art: ArtifactFile, name: str) -> tuple[str | int, ...]:
    schema = (art.loaded.data.get("input") or {}).get("schema")
    keys = [k for k in schema if isinstance(k, str) and k.split("(")[0].rstrip("?") == name] \
        if isinstance(schema, dict) else []
    return ("input", "schema", keys[0]) if keys else ("input", "schema")


# Where each format declares its variables: (the key named in messages, the location of one declaration).
DECLARED_UNDER = {
    "native": ("variables", lambda art, name: ("variables", name)),
    "prompty": ("inputs", _input_loc),
    "dotprompt": ("input.schema", _schema_loc),
}


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
    if prompt.source is not None:  # GitHub Models, Prompty, Dotprompt: the format's own reading of its template
        used_at = dict(prompt.source.used)
    else:
        syntax = [art.loaded.problem(("messages", i, "content"), f"'{bad[0]}': {NATIVE_SYNTAX_HINT}")
                  for i, m in enumerate(prompt.messages) if (bad := unsupported_syntax(m.content))]
        if syntax:  # the variables of a template we cannot read would only mislead: one line says why
            return problems + syntax
        for i, m in enumerate(prompt.messages):
            for name in VAR_PATTERN.findall(m.content):
                used_at.setdefault(name, ("messages", i, "content"))
    declared = prompt.variables
    if not art.github_models:  # GitHub Models has no declarations; its variables are what it uses
        where, decl_loc = DECLARED_UNDER.get(art.fmt, DECLARED_UNDER["native"])
        for name, loc in used_at.items():
            if name not in declared:
                problems.append(art.loaded.problem(loc, f"variable '{name}' is used but not declared "
                                                        f"under '{where}'"))
        for name in declared:
            if name not in used_at:
                problems.append(art.loaded.problem(decl_loc(art, name), f"variable '{name}' is declared "
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
    # The most tokens a rendered prompt may have without breaking any limit.
    fits = min([c for c, _ in caps] + ([entry.context_window - reserve] if entry is not None else []), default=0)
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
            rendered = render_prompt(prompt, resolve_vars(values, declared))
        except MissingVariable as exc:
            problems.append(at(f"no value for variable '{exc.args[0]}'"))
            continue
        except RenderError as exc:
            problems.append(at(str(exc)))
            continue
        if chat_tokens_at_most(rendered) <= fits:
            continue  # no limit can be broken: the exact count is not needed
        n = chat_tokens(rendered, entry.encoding)
        for cap, src in caps:
            if n > cap:
                problems.append(at(f"rendered prompt is {n} tokens ({entry.encoding}), over {src} of {cap}"))
        if n + reserve > entry.context_window:
            problems.append(at(f"rendered prompt ({n} tokens) + {reserve} reserved output tokens exceeds "
                               f"{prompt.model}'s context window of {entry.context_window}"))
    messages = [m.model_dump() for m in prompt.messages]
    if not cases and entry is not None and chat_tokens_at_most(messages) > fits:
        n = chat_tokens(messages, entry.encoding)
        problems += [art.loaded.problem(("messages",), f"prompt is {n} tokens, over {src} of {cap}")
                     for cap, src in caps if n > cap]
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
    config_path = root / "config" / "pipeline.yaml"
    if not config_path.is_file():
        config_path = DEFAULT_CONFIG
    try:
        cfg = config or load_pipeline_config(config_path)
    except ConfigError as exc:  # a broken config/pipeline.yaml: one line per problem, never a traceback
        return exc.problems
    files, problems = expand(paths, root)
    artifacts, load_problems = load_all(files, root)
    problems += load_problems
    for art in artifacts:
        try:
            if isinstance(art.artifact, PromptArtifact):
                problems += _validate_prompt(art, art.artifact, catalog, cfg)
            else:
                problems += _validate_other(art, catalog)
        except Exception as exc:  # noqa: BLE001 - one file's crash is one "promptci bug" line
            problems.append(internal_problem(art.rel_path, exc))
    if config is None and inside(config_path, root):  # the repository's own config: are its globs used?
        problems += unmatched_overrides(cfg, root, config_path)
    return problems


def unmatched_overrides(cfg: PromptPipelineConfig, root: Path, config_path: Path) -> list[Problem]:
    """Return a warning per ``overrides[].match`` that names no artifact in the repository's artifact dirs.

    A glob that matches nothing is almost always a typo or a renamed artifact, and its
    stricter gate silently applies to nothing.
    """
    ids: set[str] = set()
    for directory in cfg.artifact_dirs.values():
        base = root / directory
        if base.is_dir():
            ids |= {a.artifact_id for a in load_all(discover(base), root)[0]}
    if not ids:
        return []
    loaded = load_file(config_path, rel(config_path, root))
    return [loaded.problem(("overrides", i, "match"), f"'{o.match}' matches no artifact in "
                                                      f"{', '.join(sorted(cfg.artifact_dirs.values()))}",
                           severity=Severity.WARNING)
            for i, o in enumerate(cfg.overrides) if not any(fnmatch.fnmatchcase(a, o.match) for a in ids)]


main = check_command("validate", validate_paths,
                     "Validate artifacts: catalog model ids, token budgets, template variables.")

if __name__ == "__main__":
    main()
