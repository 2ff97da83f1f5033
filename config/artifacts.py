"""Typed schemas of the four artifact types promptci carries through the pipeline.

* ``prompt`` — the native prompt format (YAML or JSON);
* GitHub Models, Prompty and Dotprompt files — read by ``config.formats`` and
  mapped onto the native prompt model, with the format's own renderer attached;
* ``model-config``, ``rag-config``, ``guardrail-policy``.

All models are strict (``extra="forbid"``): a misspelt key is an error, never a
silently ignored setting.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Literal

import semver
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from config.artifact_types import ArtifactType as ArtifactType  # re-exported: the schemas name their type here

ID_PATTERN = r"^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$"
VAR_PATTERN = re.compile(r"{{\s*([A-Za-z_][A-Za-z0-9_]*)\s*}}")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)


ID_HINT = ("max 63 characters: lowercase a-z, 0-9, '.', '_' and '-', starting and ending with a letter "
           "or digit (it names Kubernetes ConfigMaps)")


def check_id(v: str) -> str:
    """Return ``v`` when it is a valid artifact id; raise ValueError saying what to write otherwise."""
    if not re.match(ID_PATTERN, v):
        raise ValueError(f"id {v!r} is not valid: {ID_HINT}")
    return v


def check_semver(v: str) -> str:
    """Return ``v`` when it is a Semantic Version 2.0.0 (``semver`` library); raise ValueError otherwise."""
    if not semver.Version.is_valid(v):
        raise ValueError(f"version {v!r} is not semver: write MAJOR.MINOR.PATCH without leading zeros, "
                         "optionally with -prerelease and +build, e.g. 1.4.0 or 2.0.0-rc.1+build.5")
    return v


class ArtifactHeader(Strict):
    """The fields every native artifact carries, whatever its kind."""

    id: str
    version: str
    description: str | None = None
    owner: str = Field(min_length=1)

    _id = field_validator("id")(classmethod(lambda cls, v: check_id(v)))
    _version = field_validator("version")(classmethod(lambda cls, v: check_semver(v)))


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
    # Set for prompts read from another format (GitHub Models, Prompty, Dotprompt): how that format's
    # own runtime renders and which variables its template uses. Private: a file can never set it.
    _source: TemplateSource | None = PrivateAttr(default=None)

    def used_variables(self) -> set[str]:
        """Return every variable the template uses (``{{name}}`` placeholders for native prompts)."""
        if self._source is not None:
            return set(self._source.used)
        return {m for msg in self.messages for m in VAR_PATTERN.findall(msg.content)}

    @property
    def source(self) -> TemplateSource | None:
        """Return the foreign-format template this prompt was read from (None for a native prompt)."""
        return self._source

    def with_source(self, source: TemplateSource) -> PromptArtifact:
        """Return this prompt bound to ``source`` (used by the format readers in ``config.formats``)."""
        self._source = source
        return self


Rendered = list[dict[str, str]]


@dataclass
class TemplateSource:
    """A prompt template in another format, rendered by that format's own runtime.

    ``render(values)`` returns chat messages or raises ``KeyError(name)`` for a variable
    with no value (``ValueError`` for any other template failure); ``used`` maps each
    variable the template reads to where it is first used (for problem positions).
    """

    format: str
    render: Callable[[Mapping[str, Any]], Rendered]
    used: dict[str, tuple[str | int, ...]] = field(default_factory=dict)


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


def artifact_id_from_path(path: str) -> str:
    """Return the id a file name implies: ``prompts/support-reply.yaml`` -> ``support-reply``."""
    name = path.rsplit("/", 1)[-1]
    for suffix in (".prompt.yml", ".prompt.yaml", ".yaml", ".yml", ".json", ".prompty", ".prompt"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


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
