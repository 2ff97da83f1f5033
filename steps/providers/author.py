"""Compile hand-written or reviewed responses into recordings: ``python -m steps.providers.author``.

``recordings/responses.yaml`` maps artifact id (or file path, which wins) → dataset → test description →
the model's answer (a string, or a list with one answer per repeat, or
``{error: ...}`` for a provider error). This writes the keyed recording files
the recorded provider serves. Re-run it after changing a prompt or dataset:
the keys cover the rendered messages, so stale recordings stop matching
(a missing recording is an error, never a pass).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from config.catalog import load_catalog
from config.yamlio import LoadError, load_file
from steps.artifact_files import discover, load_all
from steps.promptfoo import messages_prompt
from steps.providers.recordings import params_key, write_recording


def _responses(value: Any) -> list[dict[str, Any]]:
    items = value if isinstance(value, list) else [value]
    out: list[dict[str, Any]] = []
    for v in items:
        if isinstance(v, dict) and "error" in v:
            out.append({"error": str(v["error"])})
        else:
            text = str(v)
            words = len(text.split())
            out.append({"output": text, "tokenUsage": {"prompt": 0, "completion": words, "total": words}})
    return out


def author(repo_root: Path, responses_file: Path, out_dir: Path, sources: list[Path]) -> list[str]:
    """Write recordings for every test that has a response; return one problem line per test without."""
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
        for dataset in af.datasets:
            try:
                prepared = prepare_tests(af.artifact, load_tests(af, dataset)[0],  # type: ignore[arg-type]
                                         af.rel_path, dataset)
            except BranchError as exc:
                missing.append(str(exc))
                continue
            for t in prepared:
                value = (answers.get(dataset) or {}).get(t.description)
                if value is None:
                    missing.append(f"{af.rel_path}: dataset '{dataset}', test '{t.description}': no response "
                                   f"in {responses_file.name}")
                    continue
                write_recording(out_dir, af.artifact_id, model=resolved[0],
                                params=params_key(af.artifact.parameters),  # type: ignore[union-attr]
                                prompt=messages_prompt(t.messages), messages=t.messages,
                                responses=_responses(value), test=t.description)
    return missing


@click.command()
@click.option("--root", type=click.Path(path_type=Path, file_okay=False), default=Path("."),
              help="repository root")
@click.option("--responses", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="responses file (default recordings/responses.yaml)")
@click.argument("sources", nargs=-1, type=click.Path(path_type=Path))
def main(root: Path, responses: Path | None, sources: tuple[Path, ...]) -> None:
    """Write recordings for the artifacts under SOURCES (default: prompts/ and examples/)."""
    root = root.resolve()
    responses = responses or root / "recordings" / "responses.yaml"
    srcs = [root / s for s in sources] or [p for p in (root / "prompts", root / "examples") if p.exists()]
    try:
        missing = author(root, responses, root / "recordings", srcs)
    except LoadError as exc:
        raise click.ClickException(str(exc)) from exc
    for line in missing:
        click.echo(line, err=True)
    sys.exit(1 if missing else 0)


if __name__ == "__main__":
    main()
