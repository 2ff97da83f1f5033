from pathlib import Path

import pytest

from config.pipeline import ConfigError, PromptPipelineConfig, load_pipeline_config


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "pipeline.yaml"
    p.write_text(text)
    return p


def test_shipped_config_loads_and_overrides_apply():
    cfg = load_pipeline_config()
    support = cfg.for_artifact("support-reply")
    assert support.eval.repeats == 3 and support.eval.required_passes == 2
    assert cfg.for_artifact("summarizer").eval.repeats == 1
    prod = support.thresholds_for("prod")
    assert prod.min_pass_rate == 0.95 and prod.max_regression == 0.0
    assert cfg.promotion.previous("prod") == "staging"
    assert cfg.promotion.gate("prod").manual_approval


def test_made_up_key_is_an_error_naming_file_line_and_key(tmp_path: Path):
    p = write(tmp_path, "defaults:\n  eval:\n    passRateThreshold: 0.9\n")
    with pytest.raises(ConfigError) as exc:
        load_pipeline_config(p)
    [problem] = exc.value.problems
    assert problem.format() == (f"{p}:3:5: defaults.eval.passRateThreshold: "
                                "unknown field 'passRateThreshold'")


def test_override_fragments_are_validated_too(tmp_path: Path):
    p = write(tmp_path, "overrides:\n  - match: 'x-*'\n    eval:\n      min_pass_rate: 3\n"
                        "    promotion:\n      qa: {min_pass_rate: 0.5}\n")
    with pytest.raises(ConfigError) as exc:
        load_pipeline_config(p)
    lines = [pr.format() for pr in exc.value.problems]
    assert any("overrides[0].eval.min_pass_rate" in line and ":4:" in line for line in lines)
    assert any("environment 'qa' is not in promotion.chain" in line for line in lines)


def test_k_of_n_cannot_exceed_repeats(tmp_path: Path):
    p = write(tmp_path, "defaults:\n  eval:\n    repeats: 2\n    k_of_n: 3\n")
    with pytest.raises(ConfigError) as exc:
        load_pipeline_config(p)
    assert "k_of_n (3) cannot exceed repeats (2)" in exc.value.problems[0].message


@pytest.mark.parametrize("text, field", [
    ("eval:\n  max_shards: 0\n", "eval.max_shards"),
    ("eval:\n  max_shards: 65\n", "eval.max_shards"),
    ("eval:\n  maxShards: 4\n", "eval.maxShards"),
    ("eval:\n  min_tests_per_shard: 0\n", "eval.min_tests_per_shard"),
])
def test_max_shards_is_strict(tmp_path: Path, text: str, field: str):
    with pytest.raises(ConfigError) as exc:
        load_pipeline_config(write(tmp_path, text))
    [problem] = exc.value.problems
    assert f":2:3: {field}:" in problem.format()


def test_max_shards_defaults_to_eight():
    assert load_pipeline_config().eval.max_shards == 8
    assert load_pipeline_config(None).eval.model_dump() == {"max_shards": 8, "min_tests_per_shard": 150}
    assert PromptPipelineConfig().eval.min_tests_per_shard == 150  # the shipped policy says the model's default
