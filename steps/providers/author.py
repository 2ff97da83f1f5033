"""Compile hand-written answers into recordings: ``python -m steps.providers.author [--rekey]``.

``recordings/responses.yaml`` maps artifact id (or file path, which wins) → dataset → test description →
the answer (a string, or a list with one answer per repeat, or ``{error: ...}`` for a provider
error). This writes the keyed recording files the recorded provider serves, each marked
``origin: authored`` (no model gave it) and with no token usage (none was measured).

An answer is written for the prompt it was authored against. When the prompt (or a
variable, or a parameter) changes, the key changes and the old recording stops matching:
moving the answer onto the changed prompt is **re-keying**, which would let a canned answer
pass an edited prompt. It is refused, with one line per test, unless ``--rekey`` is given;
re-keyed recordings say ``rekeyed_from``. A recording a model gave is never overwritten by an
authored answer. Record from a model instead: ``PROMPTCI_RECORD=1`` (docs/eval.md).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from config.catalog import load_catalog
from config.yamlio import LoadError, load_file
from steps.artifact_files import discover, load_all
from steps.cli import repo_root_option
from steps.promptfoo import messages_prompt
from steps.providers.recordings import AUTHORED, params_key, recording_key, recording_path, write_recording


def _responses(value: Any) -> list[dict[str, Any]]:
    items = value if isinstance(value, list) else [value]
    out: list[dict[str, Any]] = []
    for v in items:
        if isinstance(v, dict) and "error" in v:
            out.append({"error": str(v["error"])})
        else:
            out.append({"output": str(v), "tokenUsage": {"prompt": 0, "completion": 0, "total": 0}})
    return out


def _recordings_of(out_dir: Path, artifact_id: str) -> list[tuple[Path, dict[str, Any]]]:
    """Return every readable recording of ``artifact_id`` with its parsed content."""
    found = []
    for p in sorted((out_dir / artifact_id).glob("*.json")):
        try:
            found.append((p, json.loads(p.read_text())))
        except (OSError, ValueError):
            continue
    return found


def author(repo_root: Path, responses_file: Path, out_dir: Path, sources: list[Path],
           rekey: bool = False) -> list[str]:
    """Write recordings for every test that has an answer; return one problem line per test not written.

    Problems: no answer; a changed prompt without ``rekey``; an existing recording a model gave.
    """
    from steps.eval import BranchError, load_tests, prepare_tests  # eval imports providers: avoid a cycle

    table = load_file(responses_file).data or {}
    files, problems = load_all([p for s in sources for p in discover(s)], repo_root)
    missing = [p.format() for p in problems]
    for af in files:
        answers = table.get(af.rel_path) or table.get(af.artifact_id)
        if answers is None or not hasattr(af.artifact, "messages"):
            continue
        resolved = load_catalog().resolve(af.artifact.model)  # type: ignore[union-attr]
        if resolved is None:
            missing.append(f"{af.rel_path}: model not in catalog")
            continue
        existing = _recordings_of(out_dir, af.artifact_id)
        for dataset in af.datasets:
            try:
                prepared = prepare_tests(af.artifact, load_tests(af, dataset)[0],  # type: ignore[arg-type]
                                         af.rel_path, dataset)
            except BranchError as exc:
                missing.append(str(exc))
                continue
            for t in prepared:
                where = f"{af.rel_path}: dataset '{dataset}', test '{t.description}'"
                value = (answers.get(dataset) or {}).get(t.description)
                if value is None:
                    missing.append(f"{where}: no response in {responses_file.name}")
                    continue
                pkey = params_key(af.artifact.parameters)  # type: ignore[union-attr]
                prompt = messages_prompt(t.messages)
                path = recording_path(out_dir, af.artifact_id, recording_key(resolved[0], pkey, prompt))
                mine = [(p, d) for p, d in existing if d.get("source") == af.rel_path
                        and d.get("dataset") == dataset and d.get("test") == t.description]
                current = next((d for p, d in mine if p == path), None)
                if current is not None and current.get("origin") != AUTHORED:
                    missing.append(f"{where}: {path.name} was recorded from a model; an authored answer "
                                   "never replaces it (drop the entry from responses.yaml)")
                    continue
                stale = [p for p, _ in mine if p != path]
                extra: dict[str, Any] = {"source": af.rel_path, "dataset": dataset}
                if current is None and stale:
                    if not rekey:
                        missing.append(f"{where}: the prompt changed since its answer was authored "
                                       f"({stale[0].name} no longer matches); review the answer, then re-run "
                                       "with --rekey to attach it to the changed prompt")
                        continue
                    extra["rekeyed_from"] = stale[0].name
                write_recording(out_dir, af.artifact_id, model=resolved[0], params=pkey, prompt=prompt,
                                messages=t.messages, responses=_responses(value), test=t.description,
                                origin=AUTHORED, extra=extra)
                for p in stale:
                    p.unlink(missing_ok=True)
    return missing


@click.command()
@repo_root_option()
@click.option("--responses", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="responses file (default recordings/responses.yaml)")
@click.option("--rekey", is_flag=True, help="attach authored answers to prompts changed since they were "
              "authored (the recordings say rekeyed_from); without it such tests are reported and skipped")
@click.argument("sources", nargs=-1, type=click.Path(path_type=Path))
def main(repo_root: Path, responses: Path | None, rekey: bool, sources: tuple[Path, ...]) -> None:
    """Write recordings for the artifacts under SOURCES (default: prompts/ and examples/)."""
    root = repo_root.resolve()
    responses = responses or root / "recordings" / "responses.yaml"
    srcs = [root / s for s in sources] or [p for p in (root / "prompts", root / "examples") if p.exists()]
    try:
        missing = author(root, responses, root / "recordings", srcs, rekey=rekey)
    except LoadError as exc:
        raise click.ClickException(str(exc)) from exc
    for line in missing:
        click.echo(line, err=True)
    sys.exit(1 if missing else 0)


if __name__ == "__main__":
    main()
