"""The trusted policy: read from an explicit file or a trusted git ref, never from the checkout,
which may only tighten the gates it changes."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from config.pipeline import PromptPipelineConfig
from config.policy import PolicyError, PolicyLoosened, effective_policy, loosenings

TRUSTED: dict[str, Any] = {
    "defaults": {"eval": {"min_pass_rate": 0.8, "max_regression": 0.1, "min_scores": {"tone": 0.7},
                          "repeats": 3, "k_of_n": 2},
                 "datasets": ["golden", "edge"], "token_limits": {"max_prompt_tokens": 8000}},
    "overrides": [{"match": "sql-*", "eval": {"min_pass_rate": 1.0}}],
    "promotion": {"chain": ["dev", "staging", "prod"],
                  "environments": {"prod": {"min_pass_rate": 0.95, "manual_approval": True}}},
    "gitops": {"repo_url": "https://git.example/gitops.git"},
}


def _cfg(**changes: Any) -> PromptPipelineConfig:
    data = yaml.safe_load(yaml.safe_dump(TRUSTED))
    for dotted, value in changes.items():
        *path, last = dotted.split("__")
        node = data
        for p in path:
            node = node[int(p)] if isinstance(node, list) else node.setdefault(p, {})
        node[last] = value
    return PromptPipelineConfig.model_validate(data)


@pytest.mark.parametrize(("change", "line"), [
    ({"defaults__eval__min_pass_rate": 0.3}, "defaults: eval.min_pass_rate: trusted 0.8, proposed 0.3"),
    ({"defaults__eval__max_regression": 0.5}, "defaults: eval.max_regression: trusted 0.1, proposed 0.5"),
    ({"defaults__eval__min_scores": {}}, "defaults: eval.min_scores.tone: trusted 0.7, proposed unset"),
    ({"defaults__eval__k_of_n": 1}, "defaults: eval.k_of_n: trusted 2 of 3, proposed 1 of 3"),
    ({"defaults__eval__repeats": 5}, "defaults: eval.repeats: trusted 2 of 3, proposed 2 of 5"),
    ({"defaults__datasets": ["golden"]}, "defaults: datasets: trusted ['golden', 'edge'], proposed ['golden']"),
    ({"defaults__token_limits__max_prompt_tokens": 100000},
     "defaults: token_limits.max_prompt_tokens: trusted 8000, proposed 100000"),
    ({"overrides__0__eval": {"min_pass_rate": 0.5}},
     "artifacts matching 'sql-*': eval.min_pass_rate: trusted 1, proposed 0.5"),
    ({"promotion__environments__prod__manual_approval": False},
     "defaults: promotion.environments.prod.manual_approval: trusted true, proposed false"),
    ({"promotion__environments__prod__min_pass_rate": 0.5},
     "defaults: promotion.environments.prod.min_pass_rate: trusted 0.95, proposed 0.8"),
    ({"promotion__chain": ["dev", "prod"], "promotion__environments": {}},
     "defaults: promotion.chain: trusted ['dev', 'staging', 'prod'], proposed ['dev', 'prod']"),
    ({"eval__max_shards": 64}, "config/pipeline.yaml: eval.max_shards: trusted 8, proposed 64"),
    ({"eval__min_tests_per_shard": 1}, "config/pipeline.yaml: eval.min_tests_per_shard: trusted 150, proposed 1"),
])
def test_each_loosened_field_is_one_line_with_both_values(change: dict[str, Any], line: str) -> None:
    lines = loosenings(_cfg(), _cfg(**change))
    assert any(line in x for x in lines), lines
    assert all(x.endswith("a change under test may only tighten a gate") for x in lines)


def test_tightening_and_equal_are_not_loosenings() -> None:
    assert loosenings(_cfg(), _cfg()) == []
    tighter = _cfg(defaults__eval__min_pass_rate=0.9, defaults__eval__max_regression=0.0,
                   defaults__datasets=[], promotion__chain=["dev", "staging", "canary", "prod"],
                   defaults__eval__k_of_n=3, eval__max_shards=2, eval__min_tests_per_shard=500)
    assert loosenings(_cfg(), tighter) == []


def _git_repo(root: Path, config: dict[str, Any]) -> Path:
    (root / "config").mkdir(parents=True)
    (root / "config/pipeline.yaml").write_text(yaml.safe_dump(config))
    for args in (["init", "-q", "-b", "main"], ["add", "-A"],
                 ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "policy"]):
        subprocess.run(["git", *args], cwd=root, check=True)
    return root


def test_the_checkout_config_never_replaces_the_trusted_ref(tmp_path: Path) -> None:
    repo = _git_repo(tmp_path / "repo", TRUSTED)
    loosened = yaml.safe_load(yaml.safe_dump(TRUSTED))
    loosened["defaults"]["eval"]["min_pass_rate"] = 0.3
    loosened["promotion"]["environments"]["prod"]["manual_approval"] = False
    (repo / "config/pipeline.yaml").write_text(yaml.safe_dump(loosened))  # the revision under test

    with pytest.raises(PolicyLoosened) as exc:
        effective_policy(repo)

    assert len(exc.value.lines) == 2
    assert "main:config/pipeline.yaml" not in str(exc.value)  # the file under test is named as such
    assert exc.value.lines[0].startswith("config/pipeline.yaml: defaults: eval.min_pass_rate: trusted 0.8")


def test_a_tighter_checkout_config_applies_but_not_its_gitops_or_store(tmp_path: Path) -> None:
    repo = _git_repo(tmp_path / "repo", TRUSTED)
    proposed = yaml.safe_load(yaml.safe_dump(TRUSTED))
    proposed["defaults"]["eval"]["min_pass_rate"] = 0.9
    proposed["gitops"]["repo_url"] = "https://attacker.example/gitops.git"
    (repo / "config/pipeline.yaml").write_text(yaml.safe_dump(proposed))

    policy = effective_policy(repo)

    assert policy.config.defaults.eval.min_pass_rate == 0.9
    assert policy.config.gitops.repo_url == "https://git.example/gitops.git"
    assert policy.source.startswith("main:config/pipeline.yaml (")
    assert policy.tightened and any("gitops differs" in line for line in policy.ignored)


def test_explicit_config_wins_and_a_missing_trusted_ref_is_an_error(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    repo = tmp_path / "plain"  # not a git checkout: promptci's own policy is the trusted one
    (repo / "config").mkdir(parents=True)
    (repo / "config/pipeline.yaml").write_text(yaml.safe_dump(TRUSTED))
    with pytest.raises(PolicyLoosened, match="'support-\\*': eval.min_pass_rate: trusted 0.9, proposed 0.8"):
        effective_policy(repo)  # the shipped policy wants 0.9 for support-*; the directory's file says 0.8
    monkeypatch.setenv("PROMPTCI_TRUSTED_REF", "release")
    with pytest.raises(PolicyError, match="ref release not found"):
        effective_policy(repo)
    monkeypatch.delenv("PROMPTCI_TRUSTED_REF")
    explicit = tmp_path / "trusted.yaml"
    explicit.write_text(yaml.safe_dump(TRUSTED))
    monkeypatch.setenv("PROMPTCI_CONFIG", str(explicit))  # what the ConfigMap mount sets on a cluster
    assert effective_policy(repo).source == str(explicit)
    bad = tmp_path / "bad.yaml"
    bad.write_text("defaults:\n  eval:\n    passRateThreshold: 0.1\n")
    with pytest.raises(PolicyError, match=r"bad.yaml:3:5"):
        effective_policy(repo, explicit=bad)


def test_guardrail_and_rag_gates_are_tighten_only_too() -> None:
    """Gate kinds added later follow the same rule by their names: a min_ lowered, a max_ raised, or
    either one removed, is a loosening."""
    trusted = _cfg(promotion__environments__prod__min_recall=0.98,
                   promotion__environments__prod__max_false_positive_rate=0.01, defaults__eval__min_mrr=0.5)
    looser = _cfg(promotion__environments__prod__min_recall=0.9,
                  promotion__environments__prod__max_false_positive_rate=0.05)
    lines = loosenings(trusted, looser)
    assert any("promotion.environments.prod.min_recall: trusted 0.98, proposed 0.9" in x for x in lines), lines
    assert any("prod.max_false_positive_rate: trusted 0.01, proposed 0.05" in x for x in lines), lines
    assert any("defaults: eval.min_mrr: trusted 0.5, proposed unset" in x for x in lines), lines
    assert loosenings(trusted, _cfg(promotion__environments__prod__min_recall=0.99,
                                    promotion__environments__prod__max_false_positive_rate=0.0,
                                    defaults__eval__min_mrr=0.6)) == []


@pytest.mark.parametrize(("name", "trusted_value", "looser", "tighter"), [
    ("max_shards", 4, 32, 2),                # a wider fan-out is more pods
    ("min_tests_per_shard", 100, 10, 400),   # a lower minimum is more shards, so more pods and promptfoo starts
])
def test_the_trusted_policy_decides_the_fan_out_width_a_revision_may_only_narrow_it(
        tmp_path: Path, name: str, trusted_value: int, looser: int, tighter: int) -> None:
    trusted = yaml.safe_load(yaml.safe_dump(TRUSTED))
    trusted["eval"] = {name: trusted_value}
    repo = _git_repo(tmp_path / "repo", trusted)
    for proposed, outcome in ((looser, None), (tighter, tighter)):
        revision = yaml.safe_load(yaml.safe_dump(trusted))
        revision["eval"][name] = proposed
        (repo / "config/pipeline.yaml").write_text(yaml.safe_dump(revision))
        if outcome is None:
            with pytest.raises(PolicyLoosened) as exc:
                effective_policy(repo)
            assert exc.value.lines == [f"config/pipeline.yaml: eval.{name}: trusted {trusted_value}, proposed "
                                       f"{looser}: a change under test may only tighten a gate"]
        else:
            assert getattr(effective_policy(repo).config.eval, name) == outcome
    (repo / "config/pipeline.yaml").unlink()
    assert getattr(effective_policy(repo).config.eval, name) == trusted_value


def test_the_policy_text_mounted_is_the_one_validated_even_if_main_moves(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A push to the trusted branch between validating the policy and handing its text on (``run`` mounts it,
    ``register`` puts it in the ConfigMap) must not swap in a text nobody validated: git is read once."""
    from config import policy

    repo = _git_repo(tmp_path / "repo", TRUSTED)
    real_git = policy._git
    pushed: list[bool] = []

    def git_then_push(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
        proc = real_git(root, *args)
        if args[0] == "show" and not pushed:  # someone pushes a broken policy right after it was read
            pushed.append(True)
            (repo / "config/pipeline.yaml").write_text("defaults: [not, a, mapping\n")
            for cmd in (["add", "-A"], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x"]):
                subprocess.run(["git", *cmd], cwd=repo, check=True)
        return proc

    monkeypatch.delenv("PROMPTCI_CONFIG", raising=False)
    monkeypatch.setattr(policy, "_git", git_then_push)
    text, source = policy.trusted_policy_text(repo)
    assert yaml.safe_load(text) == TRUSTED and source.startswith("main:config/pipeline.yaml")
