"""The benches cannot rot: the generator makes a runnable repo, the floor and layout read what runs, a quick bench runs.

No timed assertion here: a bench's figures are compared in its own run, never against a constant.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench import generate, layout
from bench.bench_lint import check_cmd
from bench.floor import PROVIDER_VAR, FloorError, floor_config, run_floor
from bench.pipeline_runs import breakdown, run_pipeline

ROOT = Path(__file__).resolve().parents[2]


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and ".git" not in p.relative_to(root).parts}


def test_generator_is_deterministic_and_answers_every_test(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    assert generate.generate(a, 3, tests=2) == 3
    generate.generate(b, 3, tests=2)
    assert _files(a) == _files(b)  # same N and seed: byte-identical repos
    for i in range(3):
        pid = generate.prompt_id(i)
        assert len(list((a / "recordings" / pid).glob("*.json"))) == 2  # one recording per test
    for stage in ("lint", "validate"):
        proc = subprocess.run(check_cmd(stage, a), shell=True, capture_output=True, text=True, cwd=ROOT,
                              check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    assert generate.git(a, "status", "--porcelain") == ""  # everything committed on main


def test_generator_refuses_a_non_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "x").write_text("mine")
    with pytest.raises(generate.GenerateError):
        generate.generate(tmp_path, 1)


def _cfg(artifact: str, tests: list[str]) -> dict[str, object]:
    provider = {"id": "file:///x/recorded.js", "label": f"recorded:{artifact}",
                "config": {"artifact_id": artifact, "role": "target"}}
    grader = {"id": "file:///x/recorded.js", "config": {"artifact_id": artifact, "role": "grader"}}
    return {"prompts": [{"raw": "{{ promptci_messages }}"}], "providers": [provider],
            "defaultTest": {"options": {"provider": grader}},
            "tests": [{"description": t, "vars": {"promptci_messages": t}} for t in tests]}


def test_floor_runs_every_test_against_its_own_provider_and_repeats() -> None:
    config, count = floor_config([_cfg("a", ["a1", "a2"]), _cfg("b", ["b1"])], {"b": 3})
    assert count == 5 == len(config["tests"])  # b's one test three times (its policy repeats it)
    by_desc = {t["description"]: json.loads(t["vars"][PROVIDER_VAR]) for t in config["tests"]}
    assert by_desc["a1"]["config"]["artifact_id"] == "a" and by_desc["b1"]["config"]["artifact_id"] == "b"
    assert all(t["options"]["provider"]["config"]["role"] == "grader" for t in config["tests"])


def test_floor_follows_a_shard_configs_provider_filter() -> None:
    shard = _cfg("a", ["a1"])
    b = _cfg("b", ["b1"])
    shard["providers"] = [*shard["providers"], *b["providers"]]  # type: ignore[misc]
    shard["tests"] = [{**shard["tests"][0], "providers": ["recorded:a"]},  # type: ignore[index]
                      {**b["tests"][0], "providers": ["recorded:b"]}]  # type: ignore[index]
    shard["tests"][1]["options"] = {"repeat": 3}  # type: ignore[index]
    config, count = floor_config([shard], {"b": 3})
    assert len(config["tests"]) == 2 and count == 4  # b's test repeats itself: written once, run 3 times
    owners = [json.loads(t["vars"][PROVIDER_VAR])["config"]["artifact_id"] for t in config["tests"]]
    assert owners == ["a", "b"]
    shard["tests"] = [{"description": "x", "vars": {}}]  # two providers and no filter: ambiguous
    with pytest.raises(FloorError):
        floor_config([shard], {})


def test_pods_come_from_the_compiled_template() -> None:
    manifest = layout.compiled()
    fan, source, _ = layout.fanout(manifest)
    pods = layout.pods(manifest, {fan: 17})
    assert pods[fan] == 17
    assert source in pods and manifest["spec"]["onExit"] in pods
    suspends = [n for n, t in layout.entry_tasks(manifest).items()
                if "suspend" in layout.templates(manifest)[t["template"]]]
    assert suspends and not set(suspends) & set(pods)  # an approval is no pod


@pytest.mark.slow
def test_quick_lint_bench_runs() -> None:
    proc = subprocess.run([sys.executable, "bench/bench_lint.py", "--quick", "--prompts", "20"],
                          capture_output=True, text=True, cwd=ROOT, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "as the DAG runs them" in proc.stdout and "load" in proc.stdout


@pytest.mark.slow
def test_quick_store_bench_writes_every_phase_and_every_item_passes() -> None:
    proc = subprocess.run([sys.executable, "bench/bench_store.py", "--quick", "--delay-ms", "5"],
                          capture_output=True, text=True, cwd=ROOT, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    phases = [line for line in proc.stdout.splitlines() if " writer(s): " in line]
    assert len(phases) == 6 and all("items passed;" in line for line in phases), proc.stdout
    assert "+5 ms, 1 writer(s)" in proc.stdout and "61 PUT + 5 GET" in proc.stdout  # 5 items, 12 PUTs + 1 GET each
    assert proc.stdout.count("=> ") == 3 and "load" in proc.stdout


@pytest.mark.slow
def test_generated_repo_runs_and_its_floor_evaluates_the_same_tests(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    generate.generate(repo, 2, tests=2)
    measured, run_dir = run_pipeline("run", repo, "smoke", logs=tmp_path / "logs")
    assert measured.returncode == 0, (tmp_path / "logs" / "smoke.log").read_text()[-3000:]
    assert measured.cpu_s > 0 and measured.peak_rss_mb > 0
    parts = dict((name, (wall, cpu)) for name, wall, cpu in breakdown(run_dir, measured))
    # every stage that ran is a segment, inside the measured wall, and the CLI's own share is not negative
    assert {"lint", "validate", "promote", "summary"} <= parts.keys() and any(k.startswith("eval") for k in parts)
    assert all(0 <= wall <= measured.wall_s for wall, _ in parts.values())
    assert parts["validate"][1] is not None and parts["validate"][1] > 0
    floor = run_floor(run_dir, repo, tmp_path / "floor")
    assert floor.tests == floor.passed == 4  # 2 prompts x 2 tests, every one answered from the recordings
