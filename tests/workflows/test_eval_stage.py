"""The eval stage body: one ShardRef in, its items read from the signed plan, one exit code out."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from steps.contracts import EvalItem, ShardRef
from steps.run_plan import plan_run
from steps.signing import signing_key
from steps.stores.store import LocalStore
from tests.steps.evalkit import NAMES, config, make_repo, record
from workflows.stage_bodies.evaluate import eval_shard


@pytest.fixture
def planned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, EvalItem, ShardRef]:
    """Return (repo, item, the ShardRef validate output) after planning run ``r1`` with a trusted policy."""
    root = tmp_path / "repo"
    item = make_repo(root)
    for n in NAMES:
        record(root, n, f"Hello {n}!")
    cfg = config().model_dump(mode="json")
    cfg["store"] = {"kind": "local", "root": str(tmp_path / "store")}
    policy = tmp_path / "trusted.yaml"
    policy.write_text(yaml.safe_dump(cfg))
    from config.pipeline import load_pipeline_config

    plan = plan_run([item], repo_root=root, run_id="r1", target_env="dev", dry_run=False,
                    config=load_pipeline_config(policy), store=LocalStore(tmp_path / "store"),
                    key=signing_key(root, create=True))
    monkeypatch.chdir(root)
    monkeypatch.setenv("PROMPTCI_CONFIG", str(policy))
    monkeypatch.setenv("PROMPTCI_RUN_ID", "r1")
    return root, item, plan.refs[0]


def _exit(ref: str, reports: Path) -> int:
    with pytest.raises(SystemExit) as exc:
        eval_shard(shard=ref, target_environment="dev", no_cache="false", reports=reports)
    return int(exc.value.code or 0)


def test_a_shard_is_read_from_the_signed_plan_and_passes(planned: tuple[Path, EvalItem, ShardRef], tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    _, item, ref = planned
    eval_shard(shard=ref.model_dump_json(), target_environment="dev", no_cache="false", reports=tmp_path / "r")
    out = capsys.readouterr().out
    assert f"eval: {item.artifact_id} × {item.dataset}: passed" in out and "eval: shard 0: 1 item(s), 1 passed" in out


def test_a_ref_the_plan_does_not_back_is_refused(planned: tuple[Path, EvalItem, ShardRef], tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    _, _, ref = planned
    assert _exit(ref.model_copy(update={"tests": ref.tests + 1}).model_dump_json(), tmp_path / "r") == 1
    assert "the parameter says 1 and 4" in capsys.readouterr().err
    assert _exit(ShardRef(index=5, items=1, tests=3).model_dump_json(), tmp_path / "r") == 1
    assert "has no shard 5" in capsys.readouterr().err
    assert _exit('{"index": 0, "items": 1, "tests": 3, "path": "prompts/x.yaml"}', tmp_path / "r") == 2
    assert "eval: shard: not a ShardRef: path" in capsys.readouterr().err


def test_without_a_signed_plan_nothing_runs(planned: tuple[Path, EvalItem, ShardRef], tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    _, _, ref = planned
    monkeypatch.setenv("PROMPTCI_RUN_ID", "r2")
    assert _exit(ref.model_dump_json(), tmp_path / "r") == 1
    assert "run r2 has no plan in the store" in capsys.readouterr().err
