"""``PromptPipelineConfig``: thresholds, datasets, token limits and promotion gates.

Loaded from ``config/pipeline.yaml``. Strict everywhere: an unknown key (say a
made-up ``passRateThreshold``) is an error naming the key, file and line, so a
gate can never be lost to a typo. Per-artifact ``overrides`` match by id or
glob and are applied in order, later ones winning field by field.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from config.problems import Problem
from config.validation import problems_from_error, validate_loaded
from config.yamlio import Loaded, LoadError, load_file, parse_text

DEFAULT_CONFIG = Path(__file__).with_name("pipeline.yaml")
M = TypeVar("M", bound=BaseModel)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EvalThresholds(_Strict):
    """What an eval branch must reach to pass."""

    min_pass_rate: float = Field(default=1.0, ge=0, le=1, description="fraction of tests that must pass")
    min_scores: dict[str, float] = Field(default_factory=dict,
                                         description="minimum average score per named metric (0..1)")
    max_regression: float = Field(default=0.05, ge=0, le=1,
                                  description="largest allowed drop in pass rate (and in each metric) "
                                              "against the last promoted baseline")
    repeats: int = Field(default=1, ge=1, le=20, description="runs per test (flaky-test detection)")
    k_of_n: int | None = Field(default=None, ge=1,
                               description="a test passes when at least k of `repeats` runs pass; "
                                           "default: all of them")
    timeout_seconds: int = Field(default=600, gt=0, description="kill promptfoo after this long")
    # Gates of the other artifact types (None: not gated). See steps.gates.type_gate_reasons.
    min_recall: float | None = Field(default=None, ge=0, le=1,
                                     description="guardrail-policy: minimum recall on cases that must be "
                                                 "blocked or redacted, overall and per category")
    max_false_positive_rate: float | None = Field(default=None, ge=0, le=1,
                                                  description="guardrail-policy: maximum share of benign cases "
                                                              "intercepted, overall and per category")
    min_recall_at_k: float | None = Field(default=None, ge=0, le=1,
                                          description="rag-config: minimum mean recall@k over the queries")
    min_mrr: float | None = Field(default=None, ge=0, le=1,
                                  description="rag-config: minimum mean reciprocal rank over the queries")

    @model_validator(mode="after")
    def _k_le_n(self) -> EvalThresholds:
        if self.k_of_n is not None and self.k_of_n > self.repeats:
            raise ValueError(f"k_of_n ({self.k_of_n}) cannot exceed repeats ({self.repeats})")
        return self

    @property
    def required_passes(self) -> int:
        """Return k: how many of the N repeats of a test must pass."""
        return self.k_of_n if self.k_of_n is not None else self.repeats


class TokenLimits(_Strict):
    max_prompt_tokens: int | None = Field(default=None, gt=0,
                                          description="cap on rendered prompt tokens, on top of the "
                                                      "prompt's own limit")
    reserve_output_tokens: bool = Field(default=True,
                                        description="count max_tokens of output against the context")


class EnvironmentGate(_Strict):
    """Extra requirements for promoting into one environment."""

    min_pass_rate: float | None = Field(default=None, ge=0, le=1)
    min_scores: dict[str, float] = Field(default_factory=dict)
    max_regression: float | None = Field(default=None, ge=0, le=1)
    manual_approval: bool = False
    min_recall: float | None = Field(default=None, ge=0, le=1)
    max_false_positive_rate: float | None = Field(default=None, ge=0, le=1)
    min_recall_at_k: float | None = Field(default=None, ge=0, le=1)
    min_mrr: float | None = Field(default=None, ge=0, le=1)


class PromotionConfig(_Strict):
    chain: list[str] = Field(default_factory=lambda: ["dev", "staging", "prod"], min_length=1,
                             description="ordered environments; an artifact reaches one only when the "
                                         "same content hash is live in the one before")
    environments: dict[str, EnvironmentGate] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known_envs(self) -> PromotionConfig:
        unknown = set(self.environments) - set(self.chain)
        if unknown:
            raise ValueError(f"environments not in chain: {', '.join(sorted(unknown))}")
        if len(set(self.chain)) != len(self.chain):
            raise ValueError("chain lists an environment twice")
        return self

    def gate(self, env: str) -> EnvironmentGate:
        """Return the gate for ``env`` (an empty gate when none is configured)."""
        return self.environments.get(env, EnvironmentGate())

    def previous(self, env: str) -> str | None:
        """Return the environment that must already hold the content, or None for the first."""
        i = self.chain.index(env)
        return self.chain[i - 1] if i else None


class GitOpsConfig(_Strict):
    repo_url: str = Field(default=".promptci/gitops.git",
                          description="GitOps repo URL or path; credentials come from the environment")
    branch: str = "main"
    path: str = Field(default="environments", description="directory holding environments/{env}/")
    namespace: str = "default"
    author_name: str = "promptci"
    author_email: str = "promptci@localhost"
    max_push_attempts: int = Field(default=20, ge=1, le=100,
                                   description="push retries; with N promoters racing, the last may need N")


class StoreConfig(_Strict):
    kind: Literal["local", "s3"] = "local"
    root: str = Field(default=".promptci/store", description="local store directory")
    bucket: str | None = None
    prefix: str = ""
    endpoint_url: str | None = Field(default=None, description="MinIO / S3-compatible endpoint")
    region: str | None = None


class TriggersConfig(_Strict):
    """Where pushes come from (Argo Events EventSources/Sensor and the local receiver)."""

    branch: str = Field(default="main", description="the watched branch; other refs never trigger")
    webhook_url: str = Field(default="https://promptci-events.example.com",
                             description="public base URL the Git hosts post to")
    github_owner: str = "example-org"
    github_repositories: list[str] = Field(default_factory=lambda: ["prompts"])
    gitlab_base_url: str = "https://gitlab.com"
    gitlab_projects: list[str] = Field(default_factory=lambda: ["example-group/prompts"])
    secret_name: str = Field(default="promptci-webhook-secrets",
                             description="Kubernetes Secret holding the webhook secrets (keys github, gitlab, gitea)")


class Overrides(_Strict):
    """Per-artifact settings. Every field is optional and replaces the default's value."""

    eval: dict[str, Any] | None = None
    datasets: list[str] | None = None
    token_limits: dict[str, Any] | None = None
    promotion: dict[str, dict[str, Any]] | None = None


class Override(Overrides):
    match: str = Field(description="artifact id or glob, e.g. 'support-*'")


class Defaults(_Strict):
    eval: EvalThresholds = Field(default_factory=EvalThresholds)
    datasets: list[str] = Field(default_factory=list,
                                description="dataset names to run; empty means all of the artifact's")
    token_limits: TokenLimits = Field(default_factory=TokenLimits)


class ResolvedConfig(_Strict):
    """The settings that apply to one artifact after overrides."""

    artifact_id: str
    eval: EvalThresholds
    datasets: list[str]
    token_limits: TokenLimits
    promotion: PromotionConfig

    def thresholds_for(self, env: str | None) -> EvalThresholds:
        """Return the eval thresholds, tightened by ``env``'s gate when one is given."""
        if env is None:
            return self.eval
        gate = self.promotion.gate(env)
        data = self.eval.model_dump()
        if gate.min_pass_rate is not None:
            data["min_pass_rate"] = max(data["min_pass_rate"], gate.min_pass_rate)
        if gate.max_regression is not None:
            data["max_regression"] = min(data["max_regression"], gate.max_regression)
        for k, v in gate.min_scores.items():
            data["min_scores"][k] = max(data["min_scores"].get(k, 0.0), v)
        for name in ("min_recall", "min_recall_at_k", "min_mrr"):  # a minimum only rises
            if getattr(gate, name) is not None:
                data[name] = max(data[name] or 0.0, getattr(gate, name))
        if gate.max_false_positive_rate is not None:  # a maximum only falls
            current = data["max_false_positive_rate"]
            data["max_false_positive_rate"] = min(1.0 if current is None else current, gate.max_false_positive_rate)
        return EvalThresholds.model_validate(data)


# One promptfoo start (Node loading promptfoo, ~2.7 CPU-s, plus the eval stage's own start) costs as much
# as this many recorded test runs in a shard: below it, one more shard costs more than the work it takes
# off the others. Measured: docs/pipelines.md, "How many shards".
MIN_TESTS_PER_SHARD = 150


class EvalSettings(_Strict):
    """How the eval stage runs (not what it must reach: that is ``defaults.eval``)."""

    max_shards: int = Field(default=8, ge=1, le=64,
                            description="most eval tasks (pods) one run starts: the changed items are packed "
                                        "into min(items, max_shards) shards balanced by test runs. The trusted "
                                        "policy decides it; a revision's own config may only lower it")
    min_tests_per_shard: int = Field(default=MIN_TESTS_PER_SHARD, ge=1, le=100_000,
                                     description="test runs (tests x repeats) each shard must carry on average: "
                                                 "a run gets at most test runs // this shards (at least one), so a "
                                                 "small run starts one promptfoo, not max_shards. The trusted policy "
                                                 "decides it; a revision's own config may only raise it")


class PromptPipelineConfig(_Strict):
    """The whole pipeline configuration (``config/pipeline.yaml``)."""

    defaults: Defaults = Field(default_factory=Defaults)
    eval: EvalSettings = Field(default_factory=EvalSettings)
    overrides: list[Override] = Field(default_factory=list)
    promotion: PromotionConfig = Field(default_factory=PromotionConfig)
    gitops: GitOpsConfig = Field(default_factory=GitOpsConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)
    triggers: TriggersConfig = Field(default_factory=TriggersConfig)
    artifact_dirs: dict[str, str] = Field(
        default_factory=lambda: {"prompt": "prompts", "model-config": "model-configs",
                                 "rag-config": "rag-configs", "guardrail-policy": "guardrails"},
        description="directory of each artifact type in the source repo")

    def for_artifact(self, artifact_id: str) -> ResolvedConfig:
        """Return the settings for ``artifact_id``: defaults, then every matching override in order."""
        ev = self.defaults.eval.model_dump()
        tl = self.defaults.token_limits.model_dump()
        datasets = list(self.defaults.datasets)
        promo = self.promotion.model_dump()
        for o in self.overrides:
            if not fnmatch.fnmatchcase(artifact_id, o.match):
                continue
            ev.update(o.eval or {})
            tl.update(o.token_limits or {})
            if o.datasets is not None:
                datasets = list(o.datasets)
            for env, gate in (o.promotion or {}).items():
                promo["environments"].setdefault(env, {}).update(gate)
        return ResolvedConfig(artifact_id=artifact_id, eval=EvalThresholds.model_validate(ev),
                              datasets=datasets, token_limits=TokenLimits.model_validate(tl),
                              promotion=PromotionConfig.model_validate(promo))


class ConfigError(Exception):
    """The pipeline config is invalid; ``problems`` has one line per field."""

    def __init__(self, problems: list[Problem]):
        super().__init__("\n".join(p.format() for p in problems))
        self.problems = problems


def _check_overrides(cfg: PromptPipelineConfig, loaded: Loaded) -> list[Problem]:
    """Validate override fragments against the models they override (they are partial dicts)."""
    problems: list[Problem] = []
    for i, o in enumerate(cfg.overrides):
        checks: list[tuple[tuple[str | int, ...], type[BaseModel], dict[str, Any]]] = []
        for name, section in (("eval", EvalThresholds), ("token_limits", TokenLimits)):
            frag = getattr(o, name)
            if frag is not None:
                checks.append(((name,), section, {**getattr(cfg.defaults, name).model_dump(), **frag}))
        for env, gate in (o.promotion or {}).items():
            if env not in cfg.promotion.chain:
                problems.append(loaded.problem(("overrides", i, "promotion", env),
                                               f"environment '{env}' is not in promotion.chain"))
            else:
                checks.append((("promotion", env), EnvironmentGate, gate))
        for loc, model, data in checks:
            try:
                model.model_validate(data)
            except ValidationError as exc:
                problems += problems_from_error(loaded, exc, ("overrides", i, *loc))
    return problems


def load_validated(model: type[M], path: Path) -> tuple[M, Loaded]:
    """Return (instance, parsed file) of the YAML/JSON file at ``path`` validated against ``model``.

    Raises ConfigError with one problem per bad field (file, line, field). Shared by the pipeline
    config and the profiles (config/profiles/).
    """
    try:
        loaded = load_file(path)
    except LoadError as exc:
        raise ConfigError(exc.problems) from exc
    obj, problems = validate_loaded(model, loaded)
    if obj is None:
        raise ConfigError(problems)
    return obj, loaded


def load_pipeline_config(path: Path | str | None = None) -> PromptPipelineConfig:
    """Return the validated config at ``path`` (default ``config/pipeline.yaml``).

    Raises ConfigError with one problem per bad field (file, line, field).
    """
    p = Path(path) if path else DEFAULT_CONFIG
    try:
        loaded = load_file(p)
    except LoadError as exc:
        raise ConfigError(exc.problems) from exc
    return _validated(loaded)


def load_pipeline_text(text: str, display: str) -> PromptPipelineConfig:
    """Return the validated config parsed from ``text`` (e.g. ``git show ref:config/pipeline.yaml``).

    ``display`` names the source in problems. Raises ConfigError like ``load_pipeline_config``.
    """
    try:
        loaded = parse_text(text, display)
    except LoadError as exc:
        raise ConfigError(exc.problems) from exc
    return _validated(loaded)


def _validated(loaded: Loaded) -> PromptPipelineConfig:
    cfg, problems = validate_loaded(PromptPipelineConfig, loaded)
    if cfg is None:
        raise ConfigError(problems)
    problems = _check_overrides(cfg, loaded)
    if problems:
        raise ConfigError(problems)
    return cfg
