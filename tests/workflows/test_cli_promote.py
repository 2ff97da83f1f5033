"""The promote / rollback / status click commands, end to end on a real local GitOps repo."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from steps.stores.store import LocalStore
from tests.steps.promote_helpers import commit_count, commit_source, live_content, make_config, run_for, write_prompt
from workflows.cli.promote import promote_cmd, rollback_cmd, status_cmd


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A source repo with config/pipeline.yaml pointing at a GitOps repo under it (relative URL)."""
    src = tmp_path / "src"
    (src / "config").mkdir(parents=True)
    cfg = make_config(tmp_path, chain=["dev", "staging"],
                      environments={"staging": {"manual_approval": True}}).model_dump()
    cfg["gitops"]["repo_url"] = ".promptci/gitops.git"  # the default layout: relative to the repo root
    cfg["store"]["root"] = ".promptci/store"
    (src / "config" / "pipeline.yaml").write_text(yaml.safe_dump(cfg))
    commit_source(src, message="the protected branch's policy")  # main:config/pipeline.yaml is trusted
    return src


def _write_run(repo: Path, aid: str, version: str) -> list[str]:
    """Commit a version of ``aid`` and store its run's signed plan and records; return promote's args."""
    write_prompt(repo, aid, version, note="Say {{ not_argo }} literally.")
    run = run_for(repo, aid, LocalStore(repo / ".promptci/store"))
    return ["--run-id", run.run_id, "--repo-root", str(repo)]


def _invoke(cmd, args: list[str]):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cmd, args, catch_exceptions=False)


def test_promote_rollback_status_round_trip(repo: Path) -> None:
    common = _write_run(repo, "support-reply", "1.0.0")
    res = _invoke(promote_cmd, ["--env", "dev", *common])
    assert res.exit_code == 0, res.output
    assert "promoted      support-reply 1.0.0" in res.output
    assert (repo / ".promptci/gitops.git").is_dir()  # created on first use
    config = make_config(repo.parent)
    config.gitops.repo_url = str(repo / ".promptci/gitops.git")  # the same repo, as an absolute path
    assert "{{ not_argo }}" in live_content(config, "dev", "support-reply")  # text stays data
    assert (repo / ".promptci/store/baselines/dev/support-reply/golden.json").exists()

    common = _write_run(repo, "support-reply", "1.1.0")
    dry = _invoke(promote_cmd, ["--env", "dev", *common, "--dry-run"])
    assert dry.exit_code == 0 and "+  version: 1.1.0" in dry.output
    assert commit_count(config) == 2
    assert _invoke(promote_cmd, ["--env", "dev", *common]).exit_code == 0

    status = _invoke(status_cmd, ["--repo-root", str(repo), "--format", "json"])
    data = json.loads(status.output)
    assert data["environments"] == ["dev", "staging"]
    assert data["artifacts"]["support-reply"]["dev"]["version"] == "1.1.0"
    assert data["artifacts"]["support-reply"]["staging"] is None

    rb = _invoke(rollback_cmd, ["support-reply", "--env", "dev", "--repo-root", str(repo), "--format", "json"])
    assert rb.exit_code == 0, rb.output
    done = json.loads(rb.output)
    assert (done["artifact_id"], done["env"], done["from_version"], done["to_version"]) == \
        ("support-reply", "dev", "1.1.0", "1.0.0")
    assert done["commit"] and done["exit_code"] == 0
    again = _invoke(rollback_cmd, ["support-reply", "--env", "dev", "--repo-root", str(repo), "--to", "1.0.0"])
    assert again.exit_code == 0 and "already live; nothing to do" in again.output
    table = _invoke(status_cmd, ["--repo-root", str(repo)])
    assert table.exit_code == 0
    row = next(line for line in table.output.splitlines() if "support-reply" in line)
    cells = [c.strip() for c in row.strip("│ ").split("│")]
    assert cells[0] == "support-reply" and cells[1].startswith("1.0.0 sha256:") and cells[2] == "-"


def test_promote_needs_approve_flag_where_configured(repo: Path) -> None:
    common = _write_run(repo, "a", "1.0.0")
    assert _invoke(promote_cmd, ["--env", "dev", *common]).exit_code == 0
    refused = _invoke(promote_cmd, ["--env", "staging", *common, "--format", "json"])
    assert refused.exit_code == 1
    report = json.loads(refused.output)
    assert report["ok"] is False
    assert report["outcomes"][0]["refusals"][0]["gate"] == "approval"
    approved = _invoke(promote_cmd, ["--env", "staging", *common, "--approve"])
    assert approved.exit_code == 0, approved.output


def test_results_come_only_from_the_store(repo: Path) -> None:
    """Hole 2: there is no way to hand promote a results file; an unknown run is refused."""
    (repo / "results.json").write_text('[{"artifact_id": "a", "status": "passed", "pass_rate": 1.0}]')
    res = CliRunner().invoke(promote_cmd, ["--env", "dev", "--results", str(repo / "results.json"),
                                           "--run-id", "x", "--repo-root", str(repo)])
    assert res.exit_code == 2 and "No such option '--results'" in res.output
    dated = CliRunner().invoke(promote_cmd, ["--env", "dev", "--source-timestamp", "4102444800", "--run-id", "x",
                                             "--repo-root", str(repo)])
    assert dated.exit_code == 2 and "No such option '--source-timestamp'" in dated.output  # time comes from git
    _write_run(repo, "a", "1.0.0")  # creates the local signing key
    ghost = CliRunner().invoke(promote_cmd, ["--env", "dev", "--run-id", "never-ran", "--repo-root", str(repo)])
    assert ghost.exit_code == 1 and "run never-ran has no plan in the store" in ghost.output


def test_a_loosened_gate_in_the_checkout_is_refused_field_by_field(repo: Path) -> None:
    """Hole 1: the checkout's config/pipeline.yaml lowers min_pass_rate and drops prod approval."""
    common = _write_run(repo, "a", "1.0.0")
    cfg = yaml.safe_load((repo / "config/pipeline.yaml").read_text())
    cfg["defaults"]["eval"]["min_pass_rate"] = 0.3
    cfg["promotion"]["environments"]["staging"]["manual_approval"] = False
    (repo / "config/pipeline.yaml").write_text(yaml.safe_dump(cfg))

    res = CliRunner().invoke(promote_cmd, ["--env", "dev", *common])

    assert res.exit_code == 1, res.output
    lines = res.output.strip().splitlines()
    assert "config/pipeline.yaml: defaults: eval.min_pass_rate: trusted 0.8, proposed 0.3: a change under " \
           "test may only tighten a gate" in lines
    assert any("promotion.environments.staging.manual_approval: trusted true, proposed false" in line
               for line in lines)
    assert not (repo / ".promptci/gitops.git").exists()
    # Tightening is allowed, and applied: min_pass_rate 1.0 for a run that passed 100% still promotes.
    cfg["defaults"]["eval"]["min_pass_rate"] = 1.0
    cfg["promotion"]["environments"]["staging"]["manual_approval"] = True
    (repo / "config/pipeline.yaml").write_text(yaml.safe_dump(cfg))
    ok = CliRunner().invoke(promote_cmd, ["--env", "dev", *common])
    assert ok.exit_code == 0, ok.output


def test_rollback_unknown_artifact_fails_cleanly(repo: Path) -> None:
    res = CliRunner().invoke(rollback_cmd, ["ghost", "--env", "dev", "--repo-root", str(repo)])
    assert res.exit_code == 1
    assert "ghost is not live in dev" in res.output
    as_json = CliRunner().invoke(rollback_cmd, ["ghost", "--env", "dev", "--repo-root", str(repo),
                                                "--format", "json"])
    assert as_json.exit_code == 1
    assert json.loads(as_json.stdout)["exit_code"] == 1 and "ghost is not live in dev" in as_json.stderr


def test_status_before_any_promotion(repo: Path) -> None:
    res = _invoke(status_cmd, ["--repo-root", str(repo)])
    assert res.exit_code == 0 and "nothing promoted yet" in res.output
    assert not (repo / ".promptci/gitops.git").exists()
