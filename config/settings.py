"""Every ``PROMPTCI_*`` environment variable, declared once, read through one pydantic-settings object.

Why one object: the variables were read at three dozen places with ``os.environ.get``, each with
its own idea of a default, of what counts as "true", and of whether an empty value is set. Here
each has a type, a default and a description (``promptci config --show-env`` lists them), and a
bad value is one line naming the variable, never a traceback from deep inside a step.

``get_settings()`` reads the environment afresh on every call (tests and the local runner change
it between calls; a stage pod's environment is fixed anyway). ``get_settings(env)`` reads a given
mapping instead: the environment a child process will get, which the caller builds.

Secrets (``SecretStr``) are never shown: ``show_env`` masks them, and their ``repr`` is ``**********``.
Nothing is read from ``.env`` files or secret directories: the environment (on a cluster, filled from
Kubernetes Secrets and the pod spec) is the only source.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from contextvars import ContextVar
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

PREFIX = "PROMPTCI_"
_ENVIRON: ContextVar[Mapping[str, str] | None] = ContextVar("promptci_settings_environ", default=None)


class SettingsError(ValueError):
    """One or more ``PROMPTCI_*`` variables have a value of the wrong type; ``lines`` has one line each."""

    def __init__(self, lines: list[str]):
        super().__init__("; ".join(lines))
        self.lines = lines


class _MappingEnvSource(EnvSettingsSource):
    """pydantic-settings' environment source, reading the mapping ``get_settings`` was given."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]):
        self._environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        """Return the mapping's ``PROMPTCI_*`` entries, keyed as pydantic-settings' own source keys them."""
        return {(k if self.case_sensitive else k.lower()): v for k, v in self._environ.items()
                if k.upper().startswith(PREFIX) and not (self.env_ignore_empty and v == "")}


class Settings(BaseSettings):
    """The ``PROMPTCI_*`` environment, typed. A field is its variable without the prefix, lower case.

    An empty value counts as unset (``PROMPTCI_S3_BUCKET=`` is no bucket), as most readers treated it.
    """

    model_config = SettingsConfigDict(env_prefix=PREFIX, case_sensitive=False, env_ignore_empty=True,
                                      extra="ignore", frozen=True)

    # The policy and the run (set by the templates on a cluster, by `promptci run` locally)
    config: Path | None = Field(default=None, description=(
        "The trusted pipeline config a step reads: on a cluster the mounted ConfigMap promptci-pipeline-"
        "config; locally the policy `run` mounts"))
    trusted_ref: str | None = Field(default=None, description=(
        "Git ref the trusted policy is read from when no --config is given (default: origin/main, else main)"))
    run_id: str | None = Field(default=None, description=(
        "The run id a stage writes under in the store (the templates set it to {{workflow.name}}; default: "
        "local)"))
    run_link: str | None = Field(default=None, description=(
        "URL of the pipeline run, recorded in promotion commits"))
    workflow_status: str | None = Field(default=None, description=(
        "The workflow's status, given to the summary stage by the exit handler (default: Unknown)"))
    image: str | None = Field(default=None, description=(
        "Step image the compiled templates use (default: the pinned promptci-step image)"))
    argo_schema: Path | None = Field(default=None, description=(
        "Argo Workflows schema.json that lint validates against (default: the packaged v4.1.2 schema)"))

    # The artifact store (override the config's store section)
    store_kind: Literal["local", "s3"] | None = Field(default=None, description=(
        "Artifact store kind, overriding store.kind of the pipeline config"))
    store_root: Path | None = Field(default=None, description=(
        "Local store directory, overriding store.root (relative: to the repo root)"))
    s3_bucket: str | None = Field(default=None, description=(
        "S3 store bucket, overriding store.bucket"))
    s3_prefix: str | None = Field(default=None, description=(
        "S3 store key prefix, overriding store.prefix"))
    s3_endpoint_url: str | None = Field(default=None, description=(
        "S3 endpoint (MinIO, moto), overriding AWS_ENDPOINT_URL and store.endpoint_url"))
    s3_attempts: int = Field(default=5, ge=1, description=(
        "Attempts of each S3 request before a transient error is given up"))
    s3_writers: int = Field(default=16, ge=1, le=64, description=(
        "Eval items whose store writes go to S3 at once (each item's own writes stay in order); 1 writes "
        "one item after another"))

    # Signing of plans and eval records
    signing_key: SecretStr | None = Field(default=None, description=(
        "HMAC key that signs plans and eval records (on a cluster: the Secret promptci-signing); at least 32 "
        "bytes"))
    signing_key_file: Path | None = Field(default=None, description=(
        "File holding the signing key when PROMPTCI_SIGNING_KEY is unset (default: .promptci/signing.key)"))

    # The GitOps remote
    git_token: SecretStr | None = Field(default=None, description=(
        "HTTPS token for the GitOps remote (given to git by an askpass helper, never put in a URL)"))
    git_username: str | None = Field(default=None, description=(
        "HTTPS user name for PROMPTCI_GIT_TOKEN (default: x-access-token)"))
    git_ssh_key: Path | None = Field(default=None, description=(
        "SSH private key file for the GitOps remote (e.g. a mounted Secret)"))

    # Models and providers
    provider: str | None = Field(default=None, description=(
        "How prompts are answered: recorded (default: replay recordings), live (call the model's API), local "
        "(the bundled small model)"))
    record: bool = Field(default=False, description=(
        "With a live or local provider, also write what the model answered as recordings"))
    google_vertex: bool = Field(default=False, description=(
        "Call Google models through Vertex AI instead of the Gemini API"))
    grader_model: str | None = Field(default=None, description=(
        "Model that grades llm-rubric assertions in live runs (default: the prompt's own model)"))
    recordings_dir: Path | None = Field(default=None, description=(
        "Where recordings live (default: <repo>/recordings)"))
    call_log: Path | None = Field(default=None, description=(
        "Append one line per provider call to this file (read by the recorded and guardrail providers; tests "
        "count calls with it)"))
    recorded_delay_ms: int = Field(default=0, ge=0, description=(
        "Milliseconds the recorded provider waits before each answer (read by recorded.js; benches simulate "
        "latency with it)"))
    local_base_url: str | None = Field(default=None, description=(
        "Base URL of the local model server (set by the run that starts it; set it yourself to use a server "
        "you run)"))
    local_model_dir: Path | None = Field(default=None, description=(
        "Cache of the bundled small model (default: ~/.cache/promptci/models)"))
    local_threads: int = Field(default=1, ge=1, description=(
        "CPU threads of the local model server"))
    local_ready_timeout: float = Field(default=120.0, gt=0, description=(
        "Seconds to wait for the local model server to load the model"))
    local_request_log: Path | None = Field(default=None, description=(
        "File the local model server logs each request to (read by server.mjs)"))

    # promptfoo
    promptfoo_home: Path | None = Field(default=None, description=(
        "Directory holding the pinned promptfoo install (node_modules) (default: the repo root; the image "
        "sets it)"))
    promptfoo_cmd: str | None = Field(default=None, description=(
        "Command that runs promptfoo, split like a shell would (default: the pinned install)"))
    eval_jobs: int = Field(default=8, description=(
        "promptfoo's -j: concurrent provider calls of one eval (at least 1)"))
    # The local runner sets it to its parallelism: more shards than step slots only add process starts.
    eval_shards_cap: int | None = Field(default=None, ge=1, description=(
        "Caps eval shards below eval.max_shards (local runs: the parallelism)"))
    # `promptci run` sets it to its warm-promptfoo broker (steps/promptfoo_warm.py); "off" keeps every eval cold.
    promptfoo_broker: str | None = Field(default=None, description=(
        "Socket of the run's warm-promptfoo broker (set by `promptci run`; `off`: never start or use one)"))

    # The local runner and the webhook receiver
    runner_token: str | None = Field(default=None, description=(
        "Set by the local runner on every step process, so a stopped run finds and ends its descendants; not "
        "for users to set"))
    webhook_secret_github: SecretStr | None = Field(default=None, description=(
        "Secret of GitHub push webhooks (`promptci serve`); a host without one is refused"))
    webhook_secret_gitlab: SecretStr | None = Field(default=None, description=(
        "Secret token of GitLab push webhooks (`promptci serve`)"))
    webhook_secret_gitea: SecretStr | None = Field(default=None, description=(
        "Secret of Gitea push webhooks (`promptci serve`)"))
    webhook_secret_bitbucket: SecretStr | None = Field(default=None, description=(
        "Secret of Bitbucket Cloud push webhooks (`promptci serve`)"))
    webhook_secret: SecretStr | None = Field(default=None, description=(
        "No longer read (one secret for every host); `serve` refuses to start with it and names the per-host "
        "ones"))

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource,
                                   dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource,
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Return the sources: keyword arguments, then the environment ``get_settings`` was given; no files."""
        environ = _ENVIRON.get()
        return init_settings, _MappingEnvSource(settings_cls, os.environ if environ is None else environ)


def env_name(field: str) -> str:
    """Return the environment variable of settings field ``field`` (``store_kind`` -> ``PROMPTCI_STORE_KIND``)."""
    return PREFIX + field.upper()


def get_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Return the settings read now from ``env`` (default: ``os.environ``).

    The ``PROMPTCI_*`` entries are read on every call; only building the (frozen) object is skipped
    when they are the same as at an earlier call (building one costs milliseconds).
    Raises SettingsError, one line per variable with a bad value (``PROMPTCI_EVAL_JOBS='x': ...``).
    """
    source = os.environ if env is None else env
    # Keys first, values only of the matches: os.environ decodes each value it yields (3x faster).
    return _settings(tuple(sorted((k, source[k]) for k in source if k[:len(PREFIX)].upper() == PREFIX)))


@lru_cache(maxsize=16)
def _settings(items: tuple[tuple[str, str], ...]) -> Settings:
    """Return the settings of exactly these ``PROMPTCI_*`` entries (cached: the key is all they depend on)."""
    environ = dict(items)
    token = _ENVIRON.set(environ)
    try:
        return Settings()
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            name = env_name(str(err["loc"][0])) if err["loc"] else PREFIX + "*"
            lines.append(f"{name}={_shown(name, environ.get(name, ''))}: {err['msg']}")
        raise SettingsError(lines) from None
    finally:
        _ENVIRON.reset(token)


def lookup(name: str, env: Mapping[str, str] | None = None) -> str | None:
    """Return the value of the environment variable ``name`` (None when unset or empty).

    For a variable a config names (a model's ``api_base_env``): a ``PROMPTCI_*`` one is read
    through the settings like every other; any other name straight from ``env``.
    """
    source = os.environ if env is None else env
    field = name[len(PREFIX):].lower() if name.upper().startswith(PREFIX) else None
    if field is not None and field in Settings.model_fields:
        value = getattr(get_settings(env), field)
        return None if value is None else str(value.get_secret_value() if isinstance(value, SecretStr) else value)
    return source.get(name) or None


def _shown(name: str, value: str) -> str:
    """Return ``value`` quoted for an error line, or ``***`` when ``name`` is a secret."""
    field = Settings.model_fields.get(name[len(PREFIX):].lower())
    return "***" if field is not None and _secret(field) else repr(value)


def _secret(field: FieldInfo) -> bool:
    return SecretStr in getattr(field.annotation, "__args__", (field.annotation,))


def show_env(settings: Settings) -> list[dict[str, Any]]:
    """Return one row per variable: ``name``, ``value`` (secrets ``***``), ``set`` and ``description``.

    ``value`` is what promptci uses (the default when unset, None when there is none); a secret's
    value is ``***`` when set and None when not, so no key is ever printed.
    """
    rows = []
    for field, info in Settings.model_fields.items():
        value = getattr(settings, field)
        if isinstance(value, SecretStr):
            value = "***"
        elif isinstance(value, Path):
            value = str(value)
        rows.append({"name": env_name(field), "value": value, "set": field in settings.model_fields_set,
                     "secret": _secret(info), "description": info.description or ""})
    return rows


__all__ = ["PREFIX", "Settings", "SettingsError", "env_name", "get_settings", "lookup", "show_env"]
