"""The WorkflowTemplates: one per artifact type, all from :func:`build_template`.

Shape (the ``pipeline`` DAG; ``summary`` is the exit handler, ``onExit``)::

    lint ───────────┐
                    ├─> eval (withParam: one task per shard, at most eval.max_shards) ─┐
    validate (+plan)┤                                                                  ├─> promote
                    └─> approval (suspend, only when the env's gate asks) ─────────────┘

Design notes (the why):
* The repository reaches every pod as the ``source`` git input artifact
  (``{{workflow.parameters.repo-url}}`` at ``{{workflow.parameters.git-revision}}``), full
  history so validate can plan against ``base-revision``; ``workingDir`` is that checkout.
* Only ids, paths, hashes and verdicts travel in parameters (JSON via ``to_wire``): never
  prompt text, so Argo never sees ``{{…}}`` from a user's artifact.
* validate checks the artifacts and, when they are valid, plans the run (steps/run_plan.py):
  changed items, the cache checked there (a hit never starts a task), the rest packed into
  shards (steps/shards.py), the plan signed into the store. Its outputs are ``shards`` (the
  fan-out list of ShardRefs), ``count`` (items promote acts on; 0 skips promote) and
  ``needs-approval``. One level fewer than a separate plan task: one pod start less per run.
* Each eval task gets one ShardRef; it reads its items from the signed plan by run id and
  index, never from a parameter. An empty ``shards`` list makes Argo mark ``eval`` Skipped
  ("Skipped, empty params", dag.go executeDAGTask), which promote's bare ``depends`` accepts:
  cached items still reach promote when their content is not live yet.
* ``retryStrategy`` retries pod-level errors and exit code 75 (transient) only; a failed
  quality gate exits 1 and is final.
* S3/MinIO is configured once, in the artifact repository ConfigMap named by
  ``artifactRepositoryRef``; templates only name their output artifacts.
"""

from __future__ import annotations

from typing import Any

from hera.workflows import (
    DAG,
    Counter,
    Env,
    GitArtifact,
    Histogram,
    Label,
    Parameter,
    Resources,
    RetryStrategy,
    Script,
    SecretEnvFrom,
    Suspend,
    WorkflowTemplate,
)
from hera.workflows.models import (
    ArtifactRepositoryRef,
    Backoff,
    ConfigMapVolumeSource,
    IntOrString,
    PodGC,
    SecretKeySelector,
    SecurityContext,
    TTLStrategy,
    Volume,
    VolumeMount,
)

from config.artifacts import ArtifactType
from steps import metric_names
from workflows import stages
from workflows.cluster_config import CONFIG_MAP_NAME, CONFIG_PATH, MOUNT_DIR
from workflows.stage_script import StageScriptConstructor
from workflows.template_settings import PipelineSettings, StageSettings  # noqa: F401 - re-exported

TYPE_LABEL = "promptci.dev/artifact-type"
SOURCE_ARTIFACT = "source"
SOURCE_PATH = "/work/src"
OUTPUTS_DIR = "/tmp/hera-outputs"
ENTRYPOINT = "pipeline"
# Retry pod-level errors (eviction, node loss) and the stages' "transient" exit code, nothing else.
TRANSIENT_RETRY_EXPRESSION = f'lastRetry.status == "Error" || lastRetry.exitCode == "{stages.EXIT_TRANSIENT}"'
IMAGE_ENV = "PROMPTCI_IMAGE"
# `python -P`: the working directory (the checkout under test) is never put on sys.path, so a repo
# holding its own steps/, workflows/, config/ or hera/ cannot replace the image's code in a pod that
# holds the provider keys and the GitOps token.
STEP_COMMAND = ["python", "-P"]
# argoexec's init container clones the source as another uid than the step's (10001); git refuses such
# a checkout ("dubious ownership") unless safe.directory names it. Scoped to that one path, never "*",
# and set as command-scope config (GIT_CONFIG_*), which git honours for safe.directory.
# The image's non-root user, stated so the cluster enforces it (and the container executor applies it).
STEP_SECURITY_CONTEXT = SecurityContext(run_as_user=10001, run_as_group=10001, run_as_non_root=True,
                                        allow_privilege_escalation=False)
SAFE_DIRECTORY_ENV = [Env(name="GIT_CONFIG_COUNT", value="1"),
                      Env(name="GIT_CONFIG_KEY_0", value="safe.directory"),
                      Env(name="GIT_CONFIG_VALUE_0", value=SOURCE_PATH)]
# The trusted policy: the ConfigMap `register` writes from the protected branch, mounted in every
# step pod; PROMPTCI_CONFIG points the stages at it (config/policy.py), never at the checkout.
POLICY_CONFIGMAP, POLICY_DIR, POLICY_PATH = CONFIG_MAP_NAME, MOUNT_DIR, CONFIG_PATH
POLICY_VOLUME = "pipeline-config"


def _wf(name: str) -> str:
    return "{{workflow.parameters." + name + "}}"


def _plan_out(name: str) -> str:
    """Return a reference to one of the plan's outputs (validate plans the run)."""
    return "{{tasks.validate.outputs.parameters." + name + "}}"


def _source_artifact(settings: PipelineSettings) -> GitArtifact:
    creds: dict[str, Any] = {}
    if settings.git_credentials_secret:
        creds = {"username_secret": SecretKeySelector(name=settings.git_credentials_secret, key="username"),
                 "password_secret": SecretKeySelector(name=settings.git_credentials_secret, key="password")}
    return GitArtifact(name=SOURCE_ARTIFACT, path=SOURCE_PATH, repo=_wf("repo-url"),
                       revision=_wf("git-revision"), single_branch=False, **creds)


def _stage_script(stage: str, function: Any, artifact_type: ArtifactType,
                  settings: PipelineSettings, extra_env: list[Env] | None = None) -> Script:
    """Return the Script template of one stage: image, resources, retries, deadline, metric."""
    s = settings.stage(stage)
    env = [Env(name=stages.RUN_ID_ENV, value="{{workflow.name}}"), Env(name=stages.CONFIG_ENV, value=POLICY_PATH),
           *SAFE_DIRECTORY_ENV, *(extra_env or [])]
    if settings.ui_base_url:
        link = settings.ui_base_url.rstrip("/") + "/workflows/{{workflow.namespace}}/{{workflow.name}}"
        env.append(Env(name=stages.RUN_LINK_ENV, value=link))
    return Script(
        name=stage,
        source=function.wrapped_function,
        constructor=StageScriptConstructor(outputs_directory=OUTPUTS_DIR),  # the thin entry: workflows/stage_entry.py
        image=s.image or settings.image,
        image_pull_policy=settings.image_pull_policy,
        command=list(STEP_COMMAND),
        working_dir=SOURCE_PATH,
        inputs=[_source_artifact(settings)],
        env=env,
        volume_mounts=[VolumeMount(name=POLICY_VOLUME, mount_path=POLICY_DIR, read_only=True)],
        env_from=[SecretEnvFrom(name=name, optional=True) for name in s.secrets] or None,
        resources=Resources(cpu_request=s.cpu_request, memory_request=s.memory_request,
                            cpu_limit=s.cpu_limit, memory_limit=s.memory_limit),
        retry_strategy=RetryStrategy(limit=str(s.retries), retry_policy="Always",
                                     expression=TRANSIENT_RETRY_EXPRESSION,
                                     backoff=Backoff(duration=settings.backoff, factor=IntOrString("2"))),
        active_deadline_seconds=str(s.deadline_seconds),
        security_context=STEP_SECURITY_CONTEXT,
        service_account_name=s.service_account,
        metrics=[Counter(name=metric_names.RESULT, help=metric_names.RESULT_HELP, value="1",
                         labels=[Label(key="artifact_type", value=artifact_type.value),
                                 Label(key="stage", value=stage),
                                 Label(key="result", value="{{status}}")])],
    )


def build_template(artifact_type: ArtifactType, settings: PipelineSettings) -> WorkflowTemplate:
    """Return the WorkflowTemplate ``promptci-<type>`` for one artifact type.

    This is the one builder: every template is this function applied to a type, so the
    four pipelines cannot drift apart.
    """
    default_dir = settings.pipeline.artifact_dirs.get(artifact_type.value, artifact_type.default_dir)
    with WorkflowTemplate(
        name=f"promptci-{artifact_type.value}",
        labels={TYPE_LABEL: artifact_type.value, "app.kubernetes.io/part-of": "promptci"},
        entrypoint=ENTRYPOINT,
        arguments=[
            Parameter(name="artifact-path", value=default_dir,
                      description="directory or file of the artifacts, relative to the repo root"),
            Parameter(name="git-revision", value="", description="commit to check out and evaluate"),
            Parameter(name="base-revision", value="",
                      description="diff base; empty or all zeros: every artifact counts as changed"),
            Parameter(name="target-environment", value=settings.pipeline.promotion.chain[0],
                      enum=list(settings.pipeline.promotion.chain),
                      description="environment to promote into"),
            Parameter(name="dry-run", value="false", enum=["true", "false"],
                      description="evaluate and report, but promote nothing"),
            Parameter(name="no-cache", value="false", enum=["true", "false"],
                      description="re-run every eval branch even when a passing result for the same inputs exists"),
            Parameter(name="repo-url", description="git URL of the source repository"),
        ],
        service_account_name=settings.service_account,
        pod_gc=PodGC(strategy="OnPodSuccess"),
        ttl_strategy=TTLStrategy(seconds_after_success=settings.ttl_after_success_seconds,
                                 seconds_after_failure=settings.ttl_after_failure_seconds),
        active_deadline_seconds=settings.workflow_deadline_seconds,
        artifact_repository_ref=ArtifactRepositoryRef(config_map=settings.artifact_repository_configmap,
                                                      key=settings.artifact_repository_key),
        parallelism=settings.parallelism,
        volumes=[Volume(name=POLICY_VOLUME, config_map=ConfigMapVolumeSource(name=POLICY_CONFIGMAP))],
        on_exit="summary",
        metrics=[Histogram(name=metric_names.DURATION, help=metric_names.DURATION_HELP,
                           value="{{workflow.duration}}", buckets=list(metric_names.DURATION_BUCKETS),
                           labels=[Label(key="artifact_type", value=artifact_type.value),
                                   Label(key="result", value="{{workflow.status}}")])],
    ) as wt:
        lint_t = _stage_script("lint", stages.lint, artifact_type, settings)
        validate_t = _stage_script("validate", stages.validate, artifact_type, settings)
        eval_t = _stage_script("eval", stages.eval_shard, artifact_type, settings)
        promote_t = _stage_script("promote", stages.promote, artifact_type, settings)
        _stage_script("summary", stages.summary, artifact_type, settings,
                      [Env(name=stages.WORKFLOW_STATUS_ENV, value="{{workflow.status}}")])
        approval_t = Suspend(name="approval")
        with DAG(name=ENTRYPOINT):
            path = {"artifact-path": _wf("artifact-path")}
            lint_t(name="lint", arguments=path)
            validate_t(name="validate", arguments={
                **path, "artifact-type": artifact_type.value, "git-revision": _wf("git-revision"),
                "base-revision": _wf("base-revision"), "target-environment": _wf("target-environment"),
                "dry-run": _wf("dry-run"), "no-cache": _wf("no-cache")})
            eval_t(name="eval", depends="lint && validate", with_param=_plan_out("shards"),
                   arguments={"shard": "{{item}}", "target-environment": _wf("target-environment"),
                              "no-cache": _wf("no-cache")})
            approval_t(name="approval", depends="lint && validate", when=_plan_out("needs-approval") + " == true")
            promote_t(name="promote", depends="eval && approval", when=_plan_out("count") + " > 0",
                      arguments={"target-environment": _wf("target-environment"),
                                 "dry-run": _wf("dry-run"), "approved": _plan_out("needs-approval"),
                                 "git-revision": _wf("git-revision")})
    return wt


def all_templates(settings: PipelineSettings | None = None) -> list[WorkflowTemplate]:
    """Return one template per artifact type, in the enum's (stable) order."""
    s = settings or PipelineSettings()
    return [build_template(t, s) for t in ArtifactType]


def compile_templates(settings: PipelineSettings | None = None) -> list[dict[str, Any]]:
    """Return the manifests exactly as ``submit.py dump`` writes them (and the local runner runs)."""
    return [wt.to_dict() for wt in all_templates(settings)]
