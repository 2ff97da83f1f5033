"""Argo Events manifests: the push EventSources and the Sensor that submits a pipeline.

Built as plain dicts (ready for ``yaml.safe_dump``), not with ``hera.events``
models: hera 7.1 types a trigger's ``source.resource`` as a base64 ``value``
(the protobuf form), while the YAML form is the Workflow object itself. The
tests validate every document against the official Argo Events schema instead.

Design: one EventSource per Git host (GitHub, GitLab, and a generic webhook for
Gitea and similar), and one Sensor with a dependency + trigger per host ×
artifact type. Per host because each host puts the clone URL (and its commit
total) elsewhere in the payload; per type because each type has its own
WorkflowTemplate and directory. Every dependency carries
:func:`workflows.webhooks.trigger_filter.push_filter` for its host, the same rule
the local receiver applies (proven by tests/workflows/test_trigger_corpus.py).

The manifests target Argo Events :data:`ARGO_EVENTS_VERSION` (every EventSource and the
Sensor carry it as an annotation); tests/workflows/test_events.py checks them against
that version's ``validate()`` rules. Bitbucket Cloud has no EventSource here: see
:mod:`workflows.webhooks.bitbucket` for why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from config.artifacts import ArtifactType
from config.pipeline import PromptPipelineConfig
from steps.atomic import atomic_write
from workflows.webhooks.trigger_filter import push_filter

API_VERSION = "argoproj.io/v1alpha1"
# The Argo Events release these manifests are written (and tested) for; the filter oracle runs it too.
ARGO_EVENTS_VERSION = "v1.9.11"
VERSION_ANNOTATION = "promptci.dev/argo-events-version"
WEBHOOK_SECRET = "promptci-webhook-secrets"
SENSOR_SERVICE_ACCOUNT = "promptci-sensor"
SENSOR_NAME = "promptci-push"
# Workflow parameters in the order the triggered Workflow lists them; trigger
# parameter ``dest`` paths index into this list.
WORKFLOW_PARAMETERS = ("artifact-path", "git-revision", "base-revision", "target-environment",
                       "dry-run", "repo-url")


@dataclass(frozen=True)
class GitHost:
    """One webhook-sending Git host: its EventSource name and where its payload keeps the clone URL."""

    key: str
    event_source: str
    event_name: str
    clone_url_key: str


HOSTS = (
    GitHost("github", "promptci-github", "push", "body.repository.clone_url"),
    GitHost("gitlab", "promptci-gitlab", "push", "body.project.git_http_url"),
    GitHost("gitea", "promptci-gitea", "push", "body.repository.clone_url"),
)


@dataclass(frozen=True)
class TriggerSettings:
    """Cluster-specific values of the trigger manifests; the defaults are placeholders to patch.

    ``webhook_url`` is the public base URL the Git hosts post to (the EventSource
    Services sit behind an Ingress there). Webhook secrets live in the Secret
    ``secret_name`` under the keys ``github``, ``gitlab`` (the hook's secret token),
    ``gitlab-access-token`` (a GitLab API token allowed to manage the project's hooks)
    and ``gitea``.
    """

    branch: str = "main"
    webhook_url: str = "https://promptci-events.example.com"
    port: int = 12000
    github_owner: str = "example-org"
    github_repositories: tuple[str, ...] = ("prompts",)
    gitlab_base_url: str = "https://gitlab.com"
    gitlab_projects: tuple[str, ...] = ("example-group/prompts",)
    secret_name: str = WEBHOOK_SECRET
    max_payload_bytes: int = 1024 * 1024
    labels: dict[str, str] = field(default_factory=lambda: {"app.kubernetes.io/part-of": "promptci"})


def trigger_settings(config: PromptPipelineConfig) -> TriggerSettings:
    """Return the TriggerSettings that ``config.triggers`` describes."""
    t = config.triggers
    return TriggerSettings(branch=t.branch, webhook_url=t.webhook_url, github_owner=t.github_owner,
                           github_repositories=tuple(t.github_repositories), gitlab_base_url=t.gitlab_base_url,
                           gitlab_projects=tuple(t.gitlab_projects), secret_name=t.secret_name)


def _meta(name: str, namespace: str, settings: TriggerSettings) -> dict[str, Any]:
    return {"name": name, "namespace": namespace, "labels": dict(settings.labels),
            "annotations": {VERSION_ANNOTATION: ARGO_EVENTS_VERSION}}


def _webhook(host: GitHost, settings: TriggerSettings) -> dict[str, Any]:
    return {"endpoint": f"/{host.key}", "method": "POST", "port": str(settings.port),
            "url": settings.webhook_url.rstrip("/"), "maxPayloadSize": settings.max_payload_bytes}


def _secret(key: str, settings: TriggerSettings) -> dict[str, str]:
    return {"name": settings.secret_name, "key": key}


def build_event_sources(namespace: str = "argo",
                        settings: TriggerSettings | None = None) -> list[dict[str, Any]]:
    """Return the three EventSources (GitHub, GitLab, generic webhook for Gitea), secrets by reference.

    GitHub: no API token, so the operator registers the hook; ``X-Hub-Signature-256`` is
    verified with ``webhookSecret`` (github/start.go ``parseValidateRequest``).

    GitLab: v1.9.11's ``validate()`` refuses a GitLab EventSource without ``accessToken``
    (gitlab/validate.go), and ``X-Gitlab-Token`` is only checked when the source manages
    its hook, i.e. ``accessToken`` and ``webhook.url`` are set (gitlab/start.go sets
    ``router.secretToken`` inside ``if NeedToCreateHooks()``). So the source gets both
    tokens and creates the project hook itself, with ``secretToken`` as the hook's token.

    Gitea: the generic webhook checks ``Authorization: Bearer <token>``
    (common/webhook/webhook.go), which Gitea sends when the hook's "Authorization Header"
    is set.
    """
    s = settings or TriggerSettings()
    github, gitlab, gitea = HOSTS
    service = {"ports": [{"port": s.port, "targetPort": s.port}]}
    return [
        {"apiVersion": API_VERSION, "kind": "EventSource",
         "metadata": _meta(github.event_source, namespace, s),
         "spec": {"service": service, "github": {github.event_name: {
             "repositories": [{"owner": s.github_owner, "names": list(s.github_repositories)}],
             "webhook": _webhook(github, s), "events": ["push"], "contentType": "json",
             "active": True, "insecure": False, "webhookSecret": _secret("github", s)}}}},
        {"apiVersion": API_VERSION, "kind": "EventSource",
         "metadata": _meta(gitlab.event_source, namespace, s),
         "spec": {"service": service, "gitlab": {gitlab.event_name: {
             "projects": list(s.gitlab_projects), "gitlabBaseURL": s.gitlab_base_url,
             "webhook": _webhook(gitlab, s), "events": ["PushEvents"],
             "enableSSLVerification": True, "deleteHookOnFinish": False,
             "accessToken": _secret("gitlab-access-token", s), "secretToken": _secret("gitlab", s)}}}},
        {"apiVersion": API_VERSION, "kind": "EventSource",
         "metadata": _meta(gitea.event_source, namespace, s),
         "spec": {"service": service, "webhook": {gitea.event_name: {
             **_webhook(gitea, s), "authSecret": _secret("gitea", s)}}}},
    ]


def _escaped(data_key: str) -> str:
    """Return a dataTemplate that reads ``data_key`` and percent-encodes ``{`` and ``}``.

    The value lands in a Workflow's arguments; Argo must never see ``{{...}}``
    from a payload, and the encoding keeps URLs and SHAs valid.
    """
    return "{{ .Input." + data_key + ' | replace "{" "%7B" | replace "}" "%7D" }}'


def _workflow(artifact_type: ArtifactType, directory: str, host: GitHost, target_env: str) -> dict[str, Any]:
    defaults = {"artifact-path": directory, "git-revision": "", "base-revision": "",
                "target-environment": target_env, "dry-run": "false", "repo-url": ""}
    return {
        "apiVersion": API_VERSION, "kind": "Workflow",
        "metadata": {"generateName": f"promptci-{artifact_type.value}-",
                     "labels": {"promptci.dev/artifact-type": artifact_type.value,
                                "promptci.dev/trigger": host.key}},
        "spec": {"workflowTemplateRef": {"name": f"promptci-{artifact_type.value}"},
                 "arguments": {"parameters": [{"name": n, "value": defaults[n]}
                                              for n in WORKFLOW_PARAMETERS]}},
    }


def _dest(parameter: str) -> str:
    return f"spec.arguments.parameters.{WORKFLOW_PARAMETERS.index(parameter)}.value"


def build_sensor(config: PromptPipelineConfig, namespace: str = "argo",
                 settings: TriggerSettings | None = None) -> dict[str, Any]:
    """Return the Sensor: for each host × artifact type, a filtered dependency and a submit trigger.

    Each trigger's ``conditions`` names only its own dependency, so a push to
    ``prompts/`` submits ``promptci-prompt`` and nothing else. Raises
    FilterError when a directory or the branch cannot be matched literally.
    """
    s = settings or trigger_settings(config)
    target_env = config.promotion.chain[0]
    dependencies: list[dict[str, Any]] = []
    triggers: list[dict[str, Any]] = []
    for artifact_type in ArtifactType:
        directory = config.artifact_dirs.get(artifact_type.value, artifact_type.default_dir).strip("/")
        for host in HOSTS:
            dep = f"{host.key}-{artifact_type.value}"
            dependencies.append({"name": dep, "eventSourceName": host.event_source,
                                 "eventName": host.event_name, "filters": push_filter(directory, s.branch, host.key),
                                 "filtersLogicalOperator": "and"})
            params = {"git-revision": "body.after", "base-revision": "body.before",
                      "repo-url": host.clone_url_key}
            triggers.append({
                "template": {
                    "name": f"submit-{dep}", "conditions": dep,
                    "argoWorkflow": {
                        "operation": "submit",
                        "source": {"resource": _workflow(artifact_type, directory, host, target_env)},
                        "parameters": [{"src": {"dependencyName": dep, "dataTemplate": _escaped(key)},
                                        "dest": _dest(name)} for name, key in params.items()],
                    },
                },
                "retryStrategy": {"steps": 3, "duration": "2s", "factor": 2.0},
            })
    return {"apiVersion": API_VERSION, "kind": "Sensor", "metadata": _meta(SENSOR_NAME, namespace, s),
            "spec": {"template": {"serviceAccountName": SENSOR_SERVICE_ACCOUNT},
                     "dependencies": dependencies, "triggers": triggers}}


def build_event_manifests(config: PromptPipelineConfig, namespace: str = "argo",
                          settings: TriggerSettings | None = None) -> list[dict[str, Any]]:
    """Return the EventSources (GitHub, GitLab, Gitea webhook) followed by the one Sensor.

    Cluster-specific values come from ``settings`` or else from ``config.triggers``.
    """
    settings = settings or trigger_settings(config)
    return [*build_event_sources(namespace, settings), build_sensor(config, namespace, settings)]


def manifest_filename(doc: dict[str, Any]) -> str:
    """Return the stable file name a manifest is written under, e.g. ``sensor-promptci-push.yaml``."""
    return f"{doc['kind'].lower()}-{doc['metadata']['name']}.yaml"


def write_event_manifests(out_dir: Path, config: PromptPipelineConfig | None = None,
                          namespace: str = "argo", settings: TriggerSettings | None = None) -> list[Path]:
    """Write each EventSource and the Sensor to its own YAML file in ``out_dir``; return the paths.

    Each file is written to a temp file and renamed, so a crash never leaves half a manifest.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for doc in build_event_manifests(config or PromptPipelineConfig(), namespace, settings):
        path = out_dir / manifest_filename(doc)
        atomic_write(path, yaml.safe_dump(doc, sort_keys=False, width=1000))
        written.append(path)
    return written
