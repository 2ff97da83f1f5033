"""config/settings.py: every PROMPTCI_* variable typed, described, read fresh, secrets never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.settings import Settings, SettingsError, env_name, get_settings, show_env


def test_reads_the_environment_fresh_on_each_call(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROMPTCI_EVAL_JOBS", raising=False)
    assert get_settings().eval_jobs == 8
    monkeypatch.setenv("PROMPTCI_EVAL_JOBS", "3")
    assert get_settings().eval_jobs == 3
    monkeypatch.setenv("PROMPTCI_STORE_ROOT", "/tmp/store")
    assert get_settings().store_root == Path("/tmp/store")


def test_a_given_mapping_is_read_instead_of_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROMPTCI_PROVIDER", "live")
    monkeypatch.setenv("PROMPTCI_RECORD", "1")
    child = {"PROMPTCI_PROVIDER": "local"}
    settings = get_settings(child)
    assert settings.provider == "local"
    assert settings.record is False  # not in the mapping: the process's own environment is not consulted
    assert get_settings().provider == "live" and get_settings().record is True


@pytest.mark.parametrize(("value", "expected"), [("1", True), ("true", True), ("YES", True), ("0", False),
                                                 ("false", False), ("", False)])
def test_booleans_read_the_usual_spellings(value: str, expected: bool) -> None:
    assert get_settings({"PROMPTCI_RECORD": value}).record is expected


def test_an_empty_value_counts_as_unset() -> None:
    settings = get_settings({"PROMPTCI_S3_BUCKET": "", "PROMPTCI_STORE_KIND": "", "PROMPTCI_LOCAL_THREADS": ""})
    assert settings.s3_bucket is None and settings.store_kind is None and settings.local_threads == 1


def test_a_bad_value_is_one_line_naming_the_variable() -> None:
    with pytest.raises(SettingsError) as err:
        get_settings({"PROMPTCI_EVAL_JOBS": "many", "PROMPTCI_STORE_KIND": "ftp", "PROMPTCI_S3_ATTEMPTS": "0"})
    lines = err.value.lines
    assert len(lines) == 3
    assert any(line.startswith("PROMPTCI_EVAL_JOBS='many': ") and "integer" in line for line in lines)
    assert any(line.startswith("PROMPTCI_STORE_KIND='ftp': ") and "'local'" in line for line in lines)
    assert any(line.startswith("PROMPTCI_S3_ATTEMPTS='0': ") for line in lines)


def test_secrets_are_not_in_the_settings_repr() -> None:
    settings = get_settings({"PROMPTCI_SIGNING_KEY": "k" * 40, "PROMPTCI_GIT_TOKEN": "ghp_secret_value"})
    assert "ghp_secret_value" not in repr(settings)
    assert "k" * 40 not in str(settings)
    assert settings.signing_key is not None and settings.signing_key.get_secret_value() == "k" * 40


def test_unknown_promptci_variables_are_ignored() -> None:
    assert get_settings({"PROMPTCI_NOT_A_SETTING": "x"}).provider is None


def test_show_env_lists_every_variable_with_a_description_and_masks_secrets() -> None:
    rows = show_env(get_settings({"PROMPTCI_SIGNING_KEY": "s" * 40, "PROMPTCI_WEBHOOK_SECRET_GITHUB": "hook-secret",
                                  "PROMPTCI_STORE_KIND": "s3", "PROMPTCI_IMAGE": "img:1"}))
    by_name = {r["name"]: r for r in rows}
    assert set(by_name) == {env_name(f) for f in Settings.model_fields}
    assert all(r["description"] for r in rows), [r["name"] for r in rows if not r["description"]]
    assert by_name["PROMPTCI_SIGNING_KEY"] == {**by_name["PROMPTCI_SIGNING_KEY"], "value": "***", "set": True}
    assert by_name["PROMPTCI_WEBHOOK_SECRET_GITHUB"]["value"] == "***"
    assert by_name["PROMPTCI_GIT_TOKEN"]["value"] is None and by_name["PROMPTCI_GIT_TOKEN"]["secret"]
    assert by_name["PROMPTCI_STORE_KIND"]["value"] == "s3" and by_name["PROMPTCI_STORE_KIND"]["set"]
    assert by_name["PROMPTCI_EVAL_JOBS"] == {**by_name["PROMPTCI_EVAL_JOBS"], "value": 8, "set": False}
    assert "s" * 40 not in repr(rows) and "hook-secret" not in repr(rows)


def test_every_variable_the_code_names_is_declared() -> None:
    """A PROMPTCI_* name written anywhere in the code (Python, JS) is a declared setting (or a prefix of some)."""
    import re

    root = Path(__file__).resolve().parents[2]
    declared = {env_name(f) for f in Settings.model_fields}
    named: set[str] = set()
    for folder in ("steps", "workflows", "config"):
        for path in (root / folder).rglob("*"):
            if path.suffix in {".py", ".js", ".mjs", ".yaml"} and "node_modules" not in path.parts:
                named |= set(re.findall(r"PROMPTCI_[A-Z0-9_]*[A-Z0-9]", path.read_text(errors="replace")))
    missing = {n for n in named - declared if not any(d.startswith(n + "_") for d in declared)}
    assert not missing, f"PROMPTCI_* variables used but not declared in config/settings.py: {sorted(missing)}"
