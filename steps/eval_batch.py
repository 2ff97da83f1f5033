"""Measuring a shard's items in ONE promptfoo process, and splitting its outputs back per item.

Every item keeps its own target provider, grader, repeats and tests. The
config lists one provider entry per item, under a label unique in the shard
(``#k artifact/dataset``), and every test names its item's provider with
promptfoo's test-level ``providers`` filter and carries the item's grader and
repeats in its ``options`` (see ``tests/steps/test_eval_batch.py`` for where
promptfoo implements both). So promptfoo runs exactly the (test, provider,
repeat) rows the items would run on their own, each row's ``repeatIndex``
counting from 0 per test as it does alone: the recorded provider picks the
same response per repeat.

The outputs are split per item by ``steps.eval_split``.

A timed-out shard process writes nothing, so every item it was measuring is
unfinished: each becomes a transient (retryable) error.
"""

from __future__ import annotations

import json
import logging
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from steps import promptfoo
from steps.eval_results import EvalResult, ResultsError, result_of
from steps.eval_run import check_runs, local_server, run_promptfoo
from steps.eval_spec import BranchError, SpecError, TransientBranchError
from steps.eval_split import Part, ShardDoc, index_doc, shard_label, split_junit, split_results

__all__ = ["Outcome", "Part", "build_shard_config", "measure_batch", "shard_label"]
Outcome = tuple[EvalResult, dict[str, bytes]] | BranchError

log = logging.getLogger(__name__)
PROMPT_LABEL = "promptci"


def build_shard_config(parts: list[Part]) -> dict[str, Any]:
    """Return the promptfoo config that runs every part's tests on its own provider only.

    The same prompt as ``promptfoo.build_config``; the metadata adds
    ``promptci_item`` (the part's position) to map rows back to their item.
    """
    first = parts[0].prep.spec
    return {
        "description": f"shard of {len(parts)} item(s)",
        "prompts": [{"raw": "{{ promptci_messages }}", "label": PROMPT_LABEL}],
        "providers": [{**p.prep.spec.target, "label": p.label} for p in parts],
        # Every test sets its own grader; the default only keeps promptfoo from probing for one.
        "defaultTest": {"options": {"provider": first.grader}},
        "tests": [{
            "description": t.description,
            "vars": {"promptci_messages": promptfoo.messages_prompt(t.messages)},
            "assert": t.assertions,
            "providers": [p.label],
            "options": {"provider": p.prep.spec.grader, "repeat": p.prep.thresholds.repeats},
            "metadata": {"promptci_index": t.index, "promptci_vars": t.vars, "promptci_item": k},
        } for k, p in enumerate(parts) for t in p.prep.spec.prepared],
        "sharing": False,
    }


def _outcome(part: Part, k: int, shard: ShardDoc, junit: ET.Element | ET.ParseError | None,
             proc: promptfoo.ProcessResult) -> tuple[EvalResult, dict[str, bytes]]:
    """Return one item's (result, files) from the shard's outputs; raise BranchError when they are not whole.

    ``junit``: the shard's JUnit XML, parsed (or why it could not be; None when promptfoo wrote none).
    The item's ``results.json`` is also written to its work dir (record mode reads it there).
    """
    prep, item = part.prep, part.prep.item
    part.work_dir.mkdir(parents=True, exist_ok=True)
    own = split_results(shard, k, part)
    path = part.work_dir / promptfoo.OUTPUTS["results"]
    promptfoo.write_json(path, own)
    try:
        result = result_of(own, path.name, artifact_id=item.artifact_id, dataset=item.dataset,
                           content_hash=item.content_hash, model=prep.spec.model,
                           provider=str(prep.spec.target["id"]), promptfoo_version=prep.version,
                           repeats=prep.thresholds.repeats)
    except ResultsError as exc:
        raise BranchError(f"promptfoo exited {proc.returncode}: {exc}") from exc
    result.duration_s = proc.duration_s
    files = {"results.json": path.read_bytes()}
    if isinstance(junit, ET.ParseError):
        raise BranchError(f"promptfoo's {promptfoo.OUTPUTS['junit']} is not XML: {junit}")
    if junit is not None and (own_junit := split_junit(junit, part)) is not None:
        files["junit.xml"] = own_junit
    if prep.mode == "record" and prep.spec.record is not None:
        prep.spec.record(path)
    check_runs(prep, result, proc.returncode)
    return result, files


def measure_batch(parts: list[Part], work_dir: Path, no_cache: bool) -> tuple[list[Outcome], bytes | None]:
    """Run ONE promptfoo process over every part; return each part's (result, files) or its error, and
    promptfoo's HTML report of the whole shard (None when it wrote none).

    A part whose setup fails (a RAG index that cannot be built) is an error
    and the rest still run. A problem of the process itself (it timed out, wrote
    no results) is every remaining part's error; a timeout is transient.
    The process's timeout is the sum of the items' ``timeout_seconds`` (what they
    would get one after the other). The items' files hold no ``report.html``: the
    caller stores the shard's once (``steps.eval_split.report_stub``).
    """
    out: list[Outcome | None] = [None] * len(parts)
    ready: list[int] = []
    for k, part in enumerate(parts):
        try:
            if part.prep.spec.setup is not None:
                part.prep.spec.setup()
            ready.append(k)
        except (BranchError, SpecError) as exc:
            out[k] = exc if isinstance(exc, BranchError) else BranchError(str(exc))
        except Exception as exc:  # fail closed, this item only
            out[k] = _crash(exc)
    report = _run_ready([parts[k] for k in ready], ready, out, work_dir, no_cache) if ready else None
    return [o if o is not None else BranchError("promptfoo produced no result for this item") for o in out], report


def _run_ready(parts: list[Part], where: list[int], out: list[Any], work_dir: Path, no_cache: bool) -> bytes | None:
    """Run promptfoo over ``parts`` and store each one's outcome at its position ``where[i]`` in ``out``;
    return promptfoo's HTML report when it wrote one."""
    work_dir.mkdir(parents=True, exist_ok=True)
    specs = [p.prep.spec for p in parts]
    hosts = sorted({h for s in specs for h in s.hosts})
    extra_env: dict[str, str] = {}
    for s in specs:
        extra_env.update(s.env)
    env = {**promptfoo.promptfoo_env(work_dir, hosts), **extra_env}
    timeout = sum(p.prep.thresholds.timeout_seconds for p in parts)
    record = any(p.prep.mode == "record" for p in parts)
    cfg_path = work_dir / "promptfooconfig.json"
    for name in promptfoo.OUTPUTS.values():
        (work_dir / name).unlink(missing_ok=True)
    try:
        # The bundled model server starts once for the shard; it points the local providers at itself.
        with local_server([p for s in specs for p in (s.target, s.grader)], work_dir):
            promptfoo.write_json(cfg_path, build_shard_config(parts))
            proc = run_promptfoo(cfg_path, work_dir, repeat=1, no_cache=no_cache or record, timeout_s=timeout,
                                 env=env)
    except BranchError as exc:
        for k in where:
            out[k] = exc
        return None
    if proc.timed_out:
        for k in where:
            out[k] = TransientBranchError(f"the shard's promptfoo timed out after {timeout}s (the sum of its "
                                          "items' timeout_seconds) before this item finished; its process "
                                          "group was killed")
        return None
    results_path = work_dir / promptfoo.OUTPUTS["results"]
    try:
        doc = json.loads(results_path.read_bytes())
        if not isinstance(doc, dict):
            raise ValueError("not a JSON object")
        shard = index_doc(doc)
    except (OSError, ValueError, ResultsError) as exc:
        tail = (proc.stderr_tail.strip().splitlines() or ["(no stderr)"])[-1]
        why = "wrote no results.json" if isinstance(exc, FileNotFoundError) else f"results.json: {exc}"
        for k in where:
            out[k] = BranchError(f"promptfoo exited {proc.returncode}: {why}; last stderr line: {tail}")
        return None
    junit = _parsed(work_dir / promptfoo.OUTPUTS["junit"])
    for part, k, pos in zip(parts, range(len(parts)), where, strict=True):
        try:
            out[pos] = _outcome(part, k, shard, junit, proc)
        except BranchError as exc:
            out[pos] = exc
        except Exception as exc:  # fail closed, this item only
            out[pos] = _crash(exc)
    html = work_dir / promptfoo.OUTPUTS["html"]
    return html.read_bytes() if html.exists() else None


def _parsed(path: Path) -> ET.Element | ET.ParseError | None:
    """Return the XML document at ``path`` parsed, why it is not XML, or None when there is no such file."""
    try:
        return ET.fromstring(path.read_bytes())
    except FileNotFoundError:
        return None
    except ET.ParseError as exc:
        return exc


def _crash(exc: Exception) -> BranchError:
    """Return the error of an item whose setup or split crashed (logged with its traceback)."""
    log.exception("an item of the shard crashed")
    return BranchError(f"eval stage crashed: {type(exc).__name__}: {exc}")
