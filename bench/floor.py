"""The floor of an eval run: ONE bare promptfoo process over the same tests, with the same recordings.

The configs a pipeline run handed promptfoo are read back from its run directory (every
``promptfooconfig*.json`` its eval nodes wrote), so the floor evaluates exactly those tests with
exactly those providers, whatever the layout was (one config per branch, or one per shard). The count
is checked against the run's own per-item ``result.json`` in the store (tests × repeats): a floor that
would evaluate fewer or more test runs than the pipeline did is refused, never reported. (The
``config`` promptfoo copies into its results.json is not used: it holds the prompts unescaped, which
would change the recording keys.) Each test names the provider its config gave it, and
``bench/floor_provider.js`` hands the call to that provider (steps/providers/recorded.js): one node
process, the same lookups, the same answers. Tests of an artifact whose policy repeats them are
written that many times (promptfoo's ``--repeat`` is global). The floor calls promptfoo's entry
with node from the pinned install: the cheapest way to run it there is.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.measure import Measured, run  # noqa: E402

FLOOR_PROVIDER = BENCH / "floor_provider.js"
PROVIDER_VAR = "promptci_floor_provider"


class FloorError(Exception):
    """The floor could not be built or did not evaluate every test."""


@dataclass(frozen=True)
class Floor:
    """The floor's measurement, how many test runs it evaluated, and how many of them passed."""

    measured: Measured
    tests: int
    passed: int


def stored(store_run: Path) -> tuple[dict[str, int], int]:
    """Return (repeats by artifact id, test runs) of a run, from its per-item ``result.json`` in the store."""
    repeats: dict[str, int] = {}
    runs = 0
    for path in sorted(store_run.rglob("result.json")):
        result = json.loads(path.read_text())
        repeats[str(result.get("artifact_id"))] = int(result.get("repeats") or 1)
        runs += sum(len(t.get("runs", [])) for t in result.get("tests", []))
    return repeats, runs


def harvest(run_dir: Path) -> list[dict[str, Any]]:
    """Return every promptfoo config the eval nodes of a run wrote (last attempt of each node wins)."""
    by_node: dict[str, Path] = {}
    for path in sorted(run_dir.rglob("promptfooconfig*.json")):
        parts = path.relative_to(run_dir).parts
        node = parts[1] if len(parts) > 1 and parts[0] == "tasks" else str(path.parent)
        by_node[f"{node}/{path.name}"] = path  # attempt-2 sorts after attempt-1
    return [json.loads(p.read_text()) for p in by_node.values()]


def _provider_of(test: dict[str, Any], providers: list[dict[str, Any]]) -> dict[str, Any]:
    """Return the provider a test runs against: its own, the one its ``providers`` filter names, or the only one."""
    if isinstance(test.get("provider"), dict):
        return dict(test["provider"])
    wanted = test.get("providers")
    if wanted:
        for p in providers:
            if p.get("label") in wanted or p.get("id") in wanted:
                return p
        raise FloorError(f"test {test.get('description')!r}: no provider matches {wanted}")
    if len(providers) != 1:
        raise FloorError(f"test {test.get('description')!r}: {len(providers)} providers and no filter")
    return providers[0]


def floor_config(configs: list[dict[str, Any]], repeats: dict[str, int]) -> tuple[dict[str, Any], int]:
    """Return (one promptfoo config holding every test of ``configs``, test runs in it).

    ``repeats`` maps an artifact id (the provider config's ``artifact_id``) to its repeats; a test that
    carries its own ``options.repeat`` is written once and counted that many times.
    """
    if not configs:
        raise FloorError("the run wrote no promptfoo config (nothing was evaluated)")
    tests: list[dict[str, Any]] = []
    count = 0
    for cfg in configs:
        grader = (cfg.get("defaultTest") or {}).get("options", {}).get("provider")
        for test in cfg.get("tests", []):
            provider = _provider_of(test, cfg.get("providers", []))
            copy = {k: v for k, v in test.items() if k not in ("provider", "providers")}
            copy["vars"] = {**test.get("vars", {}), PROVIDER_VAR: json.dumps(provider, sort_keys=True)}
            if grader and not (test.get("options") or {}).get("provider"):
                copy["options"] = {**(test.get("options") or {}), "provider": grader}
            own = (test.get("options") or {}).get("repeat")
            if own:  # the test repeats itself (promptfoo >= 0.123's per-test options.repeat): keep it so
                tests.append(copy)
                count += int(own)
            else:
                n = repeats.get(str((provider.get("config") or {}).get("artifact_id")), 1)
                tests += [copy] * n
                count += n
    first = configs[0]
    return {"description": "promptci bench floor", "prompts": first["prompts"],
            "providers": [{"id": f"file://{FLOOR_PROVIDER}", "label": "floor"}], "tests": tests,
            "sharing": False}, count


def promptfoo_command() -> list[str]:
    """Return the command that runs the pinned promptfoo with node directly (what the floor runs)."""
    from steps import promptfoo

    pipeline = promptfoo.command()
    if Path(pipeline[0]).name.startswith("node"):
        return pipeline  # the pipeline already calls node on promptfoo's entry
    home = Path(getattr(promptfoo, "HOME", ROOT))
    manifest = json.loads((home / "node_modules" / "promptfoo" / "package.json").read_text())
    bin_ = manifest["bin"]["promptfoo"] if isinstance(manifest["bin"], dict) else manifest["bin"]
    node = shutil.which("node")
    if node is None:
        raise FloorError("node is not on PATH")
    return [node, str(home / "node_modules" / "promptfoo" / bin_)]


def repeats_of(repo: Path, artifact_ids: set[str]) -> dict[str, int]:
    """Return each artifact's repeats under the repo's policy (``config/pipeline.yaml``)."""
    from config.pipeline import load_pipeline_config

    policy = repo / "config" / "pipeline.yaml"
    cfg = load_pipeline_config(policy if policy.exists() else None)
    return {a: cfg.for_artifact(a).thresholds_for(None).repeats for a in artifact_ids}


def run_floor(run_dir: Path, repo: Path, work: Path, label: str = "one bare promptfoo",
              extra_args: Sequence[str] = ()) -> Floor:
    """Measure one promptfoo process over every test the run at ``run_dir`` evaluated; return it.

    ``repo``'s store is the local one (``.promptci/store``, as the benches' repos configure it).
    Raises FloorError when the floor's test runs differ from the pipeline's, or one was not answered
    (a provider error: then the floor is not the same work).
    """
    from steps.promptfoo import default_jobs, promptfoo_env

    repeats, expected = stored(repo / ".promptci" / "store" / "runs" / run_dir.name)
    configs = harvest(run_dir)
    ids = {str((p.get("config") or {}).get("artifact_id")) for c in configs for p in c.get("providers", [])}
    config, count = floor_config(configs, {**repeats_of(repo, ids), **repeats})
    if expected and count != expected:
        raise FloorError(f"the floor would run {count} test runs, the pipeline ran {expected} (run {run_dir.name})")
    work.mkdir(parents=True, exist_ok=True)
    (work / "floor.json").write_text(json.dumps(config, indent=1))
    results = work / "results.json"
    cmd = [*promptfoo_command(), "eval", "-c", str(work / "floor.json"), "-o", str(results),
           "-j", str(default_jobs()), "--no-table", "--no-progress-bar", "--no-share", *extra_args]
    measured = run(label, cmd, cwd=work, env=promptfoo_env(work), log=work / "floor.log")
    try:
        stats = json.loads(results.read_text())["results"]["stats"]
    except (OSError, ValueError, KeyError) as exc:
        raise FloorError(f"floor wrote no results ({exc}); see {work / 'floor.log'}") from exc
    passed, failed, errors = (int(stats.get(k, 0)) for k in ("successes", "failures", "errors"))
    # Every run answered (no provider error) and judged: a failed assertion is the same work (the samples
    # hold a deliberately flaky repeat that k_of_n forgives), an error or a missing run is not.
    if errors or passed + failed != count:
        raise FloorError(f"floor: {passed} passed, {failed} failed, {errors} errors of {count} test runs; "
                         f"see {work / 'floor.log'}")
    return Floor(measured, count, passed)
