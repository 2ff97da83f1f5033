"""Typed schemas of the four artifact types promptci carries through the pipeline.

* ``prompt`` — the native prompt format (YAML or JSON);
* GitHub Models ``*.prompt.yml`` — accepted as a first-class prompt and mapped
  field by field onto the native model (:func:`from_github_models`);
* ``model-config``, ``rag-config``, ``guardrail-policy``.

All models are strict (``extra="forbid"``): a misspelt key is an error, never a
silently ignored setting.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

ID_PATTERN = r"^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$"
VAR_PATTERN = re.compile(r"{{\s*([A-Za-z_][A-Za-z0-9_]*)\s*}}")


class ArtifactType(StrEnum):
    """The artifact kinds; each gets its own WorkflowTemplate and default directory."""

    PROMPT = "prompt"
    MODEL_CONFIG = "model-config"
    RAG_CONFIG = "rag-config"
    GUARDRAIL_POLICY = "guardrail-policy"

    @property
    def default_dir(self) -> str:
        """Return the repo directory this type lives in by default (``prompts/`` for prompts)."""
        return {
            ArtifactType.PROMPT: "prompts",
            ArtifactType.MODEL_CONFIG: "model-configs",
            ArtifactType.RAG_CONFIG: "rag-configs",
            ArtifactType.GUARDRAIL_POLICY: "guardrails",
        }[self]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


SEMVER = r"^\d+\.\d+\.\d+([-+][0-9A-Za-z.-]+)?$"


class ArtifactHeader(Strict):
    """The fields every native artifact carries, whatever its kind."""

    id: str = Field(pattern=ID_PATTERN)
    version: str = Field(pattern=SEMVER)
    description: str | None = None
    owner: str = Field(min_length=1)


# --------------------------------------------------------------------------- prompts


class Message(Strict):
    role: Literal["system", "user", "assistant", "developer"]
    content: str = Field(min_length=1)


class VariableSpec(Strict):
    type: Literal["string", "number", "integer", "boolean", "list", "object"] = "string"
    required: bool = True
    default: Any = None
    description: str | None = None


class ModelParameters(Strict):
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, gt=0)
    top_p: float | None = Field(default=None, gt=0, le=1)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    stop: list[str] | None = None
    seed: int | None = None
    response_format: Literal["text", "json_object", "json_schema"] | None = None


class PromptLimits(Strict):
    max_prompt_tokens: int | None = Field(default=None, gt=0)
    max_output_tokens: int | None = Field(default=None, gt=0)


class DatasetRef(Strict):
    """A golden dataset file (YAML/JSON/JSONL/CSV) under ``evals/``."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    path: str

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, v: str) -> str:
        if v in ("none", "inline"):
            raise ValueError(f"'{v}' is a reserved dataset name (no golden data / inline tests)")
        return v


class Assertion(Strict):
    """A promptfoo assertion (``type`` may be negated with ``not-``)."""

    type: str
    value: Any = None
    threshold: float | None = None
    weight: float | None = None
    # Metric names travel through Argo parameters (eval results), so they may not hold braces.
    metric: str | None = Field(default=None, pattern=r"^[^{}]+$")
    provider: Any = None

    @field_validator("type")
    @classmethod
    def _known_type(cls, v: str) -> str:
        base = v[4:] if v.startswith("not-") else v
        if base not in ASSERTION_TYPES:
            raise ValueError(f"unknown assertion type '{v}'; known: {', '.join(sorted(ASSERTION_TYPES))}")
        return v


ASSERTION_TYPES = frozenset({
    "equals", "contains", "icontains", "contains-all", "contains-any", "icontains-all",
    "icontains-any", "starts-with", "regex", "is-json", "contains-json", "is-valid-openai-tools-call",
    "javascript", "python", "similar", "llm-rubric", "model-graded-closedqa", "factuality",
    "answer-relevance", "context-faithfulness", "context-recall", "context-relevance",
    "levenshtein", "rouge-n", "bleu", "latency", "cost", "perplexity", "word-count", "is-sql",
})


class TestCase(Strict):
    """One golden test: the variables to render with and what the output must satisfy."""

    description: str | None = None
    vars: dict[str, Any] = Field(default_factory=dict)
    assert_: list[Assertion] = Field(default_factory=list, alias="assert")
    metadata: dict[str, Any] | None = None



class PromptArtifact(ArtifactHeader):
    """The native prompt format."""

    kind: Literal["prompt"] = "prompt"
    description: str = Field(min_length=1)
    tags: list[str] = Field(default_factory=list)
    model: str
    parameters: ModelParameters = Field(default_factory=ModelParameters)
    messages: list[Message] = Field(min_length=1)
    variables: dict[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")], VariableSpec] = Field(
        default_factory=dict)
    limits: PromptLimits = Field(default_factory=PromptLimits)
    evals: list[DatasetRef] = Field(default_factory=list)
    # Inline tests (used by the GitHub Models mapping; native prompts normally use ``evals``).
    tests: list[TestCase] = Field(default_factory=list)
    json_schema: dict[str, Any] | None = None

    def used_variables(self) -> set[str]:
        """Return every ``{{name}}`` placeholder referenced by the messages."""
        return {m for msg in self.messages for m in VAR_PATTERN.findall(msg.content)}


# ------------------------------------------------------------------ GitHub Models


class GHModelParameters(Strict):
    """Exactly the keys GitHub Models reads; anything else (``max_tokens``…) is an error."""

    maxTokens: int | None = Field(default=None, gt=0)
    temperature: float | None = Field(default=None, ge=0, le=2)
    topP: float | None = Field(default=None, gt=0, le=1)


class GHStringEvaluator(Strict):
    startsWith: str | None = None
    endsWith: str | None = None
    contains: str | None = None
    equals: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> GHStringEvaluator:
        given = [k for k, v in self.__dict__.items() if v is not None]
        if len(given) != 1:
            raise ValueError("a string evaluator needs exactly one of startsWith, endsWith, contains, equals")
        return self


class GHChoice(Strict):
    choice: str
    score: float


class GHLLMEvaluator(Strict):
    modelId: str
    prompt: str
    choices: list[GHChoice]
    systemPrompt: str | None = None


class GHEvaluator(Strict):
    name: str = Field(pattern=r"^[^{}]+$")  # becomes a metric name (see Assertion.metric)
    string: GHStringEvaluator | None = None
    llm: GHLLMEvaluator | None = None
    uses: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> GHEvaluator:
        given = [k for k in ("string", "llm", "uses") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("an evaluator needs exactly one of string, llm, uses")
        return self


class GitHubModelsPrompt(Strict):
    """The GitHub Models ``.prompt.yml`` format, field for field."""

    name: str = Field(min_length=1)
    description: str | None = None
    model: str
    modelParameters: GHModelParameters = Field(default_factory=GHModelParameters)
    responseFormat: Literal["text", "json_object", "json_schema"] | None = None
    jsonSchema: str | None = None
    messages: list[Message] = Field(min_length=1)
    testData: list[dict[str, Any]] = Field(default_factory=list)
    evaluators: list[GHEvaluator] = Field(default_factory=list)

    @model_validator(mode="after")
    def _schema_when_needed(self) -> GitHubModelsPrompt:
        if self.responseFormat == "json_schema" and not self.jsonSchema:
            raise ValueError("jsonSchema is required when responseFormat is 'json_schema'")
        return self


GH_STRING_TO_PROMPTFOO = {"startsWith": "starts-with", "endsWith": "regex", "contains": "contains",
                          "equals": "equals"}


def gh_evaluator_assertion(ev: GHEvaluator) -> Assertion:
    """Return the exact promptfoo assertion for a GitHub Models evaluator.

    Only string evaluators have an exact promptfoo equivalent; anything else
    raises ValueError so it is reported, never silently dropped.
    """
    if ev.string is None:
        kind = "llm" if ev.llm is not None else f"uses: {ev.uses}"
        raise ValueError(f"evaluator '{ev.name}' ({kind}) has no exact promptfoo equivalent")
    (key, value), = ((k, v) for k, v in ev.string.__dict__.items() if v is not None)
    if key == "endsWith":  # promptfoo has no ends-with; an anchored, escaped regex is exact
        return Assertion(type="regex", value=re.escape(value) + r"\Z", metric=ev.name)
    return Assertion(type=GH_STRING_TO_PROMPTFOO[key], value=value, metric=ev.name)


# ------------------------------------------------------------- other artifact types


MODEL_CONFIG_REF = "config:"


def model_config_ref(model: str) -> str | None:
    """Return the model-config id a prompt's ``model: config:<id>`` names, or None for a direct model id."""
    return model[len(MODEL_CONFIG_REF):] if model.startswith(MODEL_CONFIG_REF) else None


class ModelConfigArtifact(ArtifactHeader):
    """A model and its parameters, shared by the prompts that say ``model: config:<id>``."""

    kind: Literal["model-config"]
    model: str
    parameters: ModelParameters = Field(default_factory=ModelParameters)
    fallbacks: list[str] = Field(default_factory=list)


class RagIndex(Strict):
    name: str = Field(min_length=1)
    backend: Literal["pgvector", "qdrant", "weaviate", "pinecone", "opensearch", "faiss", "chroma"]
    namespace: str | None = None
    type: Literal["vector", "lexical"] = Field(default="vector", description="vector: embeddings; lexical: BM25")


class RagConfigArtifact(ArtifactHeader):
    """Retrieval settings. ``chunk_size``/``chunk_overlap`` count tokens of the embedding model's encoding.

    ``index.type`` picks the retriever the eval builds: ``lexical`` (BM25) or
    ``vector`` (embeddings from ``embedding_model``).
    """

    kind: Literal["rag-config"]
    embedding_model: str
    chunk_size: int = Field(gt=0, le=32768)
    chunk_overlap: int = Field(ge=0)
    top_k: int = Field(gt=0, le=1000)
    index: RagIndex
    generator_prompt: str | None = None
    evals: list[DatasetRef] = Field(default_factory=list)

    @model_validator(mode="after")
    def _overlap_smaller(self) -> RagConfigArtifact:
        if self.chunk_overlap >= self.chunk_size:
            raise ValueError("chunk_overlap must be smaller than chunk_size")
        return self


class GuardrailRule(Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    description: str | None = None
    applies_to: Literal["input", "output", "both"] = "both"
    patterns: list[str] = Field(default_factory=list)
    categories: list[Literal["pii", "toxicity", "self-harm", "violence", "sexual", "hate",
                             "jailbreak", "prompt-injection", "secrets", "off-topic"]] = Field(
        default_factory=list)
    action: Literal["block", "redact", "warn", "log"]
    validators: list[Literal["luhn"]] = Field(default_factory=list,
                                              description="a pattern match counts only when these checks pass")
    replacement: str | None = Field(default=None, description="redaction text; default [REDACTED:<rule id>]")

    @field_validator("patterns")
    @classmethod
    def _compiles(cls, v: list[str]) -> list[str]:
        for p in v:
            try:
                re.compile(p)
            except re.error as exc:
                raise ValueError(f"pattern {p!r} is not a valid regex: {exc}") from exc
        return v

    @model_validator(mode="after")
    def _has_matcher(self) -> GuardrailRule:
        if not self.patterns and not self.categories:
            raise ValueError("a rule needs at least one pattern or category")
        return self


class GuardrailClassifier(Strict):
    """The model that judges category-only rules (no patterns), through the configured provider."""

    model: str
    parameters: ModelParameters = Field(default_factory=ModelParameters)


class GuardrailPolicyArtifact(ArtifactHeader):
    kind: Literal["guardrail-policy"]
    default_action: Literal["allow", "block"] = "allow"
    rules: list[GuardrailRule] = Field(min_length=1)
    classifier: GuardrailClassifier | None = None
    evals: list[DatasetRef] = Field(default_factory=list)

    @model_validator(mode="after")
    def _classifier_when_needed(self) -> GuardrailPolicyArtifact:
        needs = [r.id for r in self.rules if not r.patterns]
        if needs and self.classifier is None:
            raise ValueError(f"rules {', '.join(needs)} have categories but no patterns, so a classifier "
                             "judges them: set `classifier: {model: ...}`")
        return self


Artifact = PromptArtifact | ModelConfigArtifact | RagConfigArtifact | GuardrailPolicyArtifact

KIND_MODELS: dict[str, type[Strict]] = {
    "prompt": PromptArtifact,
    "model-config": ModelConfigArtifact,
    "rag-config": RagConfigArtifact,
    "guardrail-policy": GuardrailPolicyArtifact,
}


def is_github_prompt(path: str) -> bool:
    """Return True for GitHub Models prompt files (``*.prompt.yml``/``*.prompt.yaml``)."""
    return path.endswith((".prompt.yml", ".prompt.yaml"))


def artifact_id_from_path(path: str) -> str:
    """Return the id a file name implies: ``prompts/support-reply.yaml`` -> ``support-reply``."""
    name = path.rsplit("/", 1)[-1]
    for suffix in (".prompt.yml", ".prompt.yaml", ".yaml", ".yml", ".json"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def from_github_models(gh: GitHubModelsPrompt, artifact_id: str) -> PromptArtifact:
    """Return the native prompt equivalent of a GitHub Models prompt.

    Variables are those the messages use (GitHub Models has no declarations; its
    ``testData`` rows supply them). Evaluators become assertions on every test;
    one with no exact promptfoo equivalent raises ValueError.
    """
    assertions = [gh_evaluator_assertion(ev) for ev in gh.evaluators]
    used = sorted({v for m in gh.messages for v in VAR_PATTERN.findall(m.content)})
    tests = []
    for i, row in enumerate(gh.testData):
        tests.append(TestCase.model_validate({"description": f"testData[{i}]", "vars": dict(row),
                                             "assert": [a.model_dump() for a in assertions]}))
    json_schema = None
    if gh.jsonSchema:
        import json

        json_schema = json.loads(gh.jsonSchema)
    return PromptArtifact(
        id=artifact_id,
        version="0.0.0",
        description=gh.description or gh.name,
        owner="github-models",
        model=gh.model,
        parameters=ModelParameters(temperature=gh.modelParameters.temperature,
                                   max_tokens=gh.modelParameters.maxTokens,
                                   top_p=gh.modelParameters.topP,
                                   response_format=gh.responseFormat),
        messages=gh.messages,
        variables={v: VariableSpec() for v in used},
        tests=tests,
        json_schema=json_schema,
    )


# ------------------------------------------------- golden data of the other types


class GuardrailCase(Strict):
    """A golden guardrail case: a text (input, and optionally a model output) and the expected decision."""

    __test__: ClassVar[bool] = False  # not a pytest class

    description: str = Field(min_length=1)
    input: str | None = None
    output: str | None = None
    expected: Literal["allow", "block", "redact"]
    redacted: str | None = Field(default=None, description="the expected redacted text (redact cases)")
    category: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$",
                          description="the category the case exercises; benign look-alikes carry the "
                                      "category they imitate")

    @model_validator(mode="after")
    def _consistent(self) -> GuardrailCase:
        if self.input is None and self.output is None:
            raise ValueError("a case needs an input, an output, or both")
        if self.expected == "redact" and self.redacted is None:
            raise ValueError("a redact case needs the expected `redacted` text")
        if self.expected != "redact" and self.redacted is not None:
            raise ValueError("`redacted` is only for cases expected to be redacted")
        return self


class RagDocument(Strict):
    id: str = Field(min_length=1)
    text: str = Field(min_length=1)
    title: str | None = None


class RagQuery(Strict):
    description: str | None = None
    query: str = Field(min_length=1)
    relevant: list[str] = Field(min_length=1, description="ids of the documents that answer the query")
    answer: str | None = None


class RagDataset(Strict):
    """A RAG golden set: a corpus of documents and queries with their relevant document ids."""

    documents: list[RagDocument] = Field(min_length=1)
    queries: list[RagQuery] = Field(min_length=1)

    @model_validator(mode="after")
    def _ids(self) -> RagDataset:
        ids = [d.id for d in self.documents]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"duplicate document ids: {', '.join(dupes)}")
        known = set(ids)
        for i, q in enumerate(self.queries):
            unknown = [r for r in q.relevant if r not in known]
            if unknown:
                raise ValueError(f"queries[{i}] names unknown documents: {', '.join(unknown)}")
        return self
