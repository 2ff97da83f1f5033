"""Talk to an Argo Server through Hera's ``WorkflowsService``: register, submit, wait.

Connection settings come from flags or the environment (``ARGO_SERVER``, ``ARGO_NAMESPACE``,
``ARGO_TOKEN``, ``ARGO_INSECURE_SKIP_VERIFY``). The token lives only in the service's
Authorization header: it is never printed, logged or part of a repr.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hera.exceptions import AlreadyExists
from hera.workflows import WorkflowsService
from hera.workflows.models import (
    Arguments,
    ObjectMeta,
    Parameter,
    Workflow,
    WorkflowCreateRequest,
    WorkflowSpec,
    WorkflowTemplate,
    WorkflowTemplateCreateRequest,
    WorkflowTemplateRef,
    WorkflowTemplateUpdateRequest,
)
from tenacity import RetryError, Retrying, retry_if_exception_type, retry_if_result, stop_after_delay, wait_fixed

from steps.exit_codes import remote_exit_code

TERMINAL_PHASES = {"Succeeded", "Failed", "Error"}
# The exit code of a failed Argo API call: steps/exit_codes.py (one policy for every command).
exit_code_for = remote_exit_code

INSTANCE_ID_ENV = "ARGO_INSTANCEID"  # the argo CLI's --instanceid default (cmd/argo/commands/client/conn.go)
INSTANCE_ID_LABEL = "workflows.argoproj.io/controller-instanceid"


class ArgoConfigError(Exception):
    """The Argo server is not configured (no host), or configured in a way promptci cannot serve."""


def refuse_instance_id(instance_id: str | None = None) -> None:
    """Raise ArgoConfigError when the controller has an instance id (``--instanceid`` or ``$ARGO_INSTANCEID``).

    Why refuse rather than label: a controller with an instanceID only runs Workflows labelled
    ``workflows.argoproj.io/controller-instanceid`` (util/instanceid/service.go), and the Sensor's
    argoWorkflow trigger runs ``argo submit`` in-process with no ``--instanceid``
    (argo-events pkg/sensors/triggers/argo-workflow/argo-workflow.go Execute), whose
    ``instanceIDService.Label`` then *removes* that label. Every pushed change would create a
    Workflow that never runs. Checked before any request is sent.
    """
    value = instance_id if instance_id is not None else os.environ.get(INSTANCE_ID_ENV, "")
    if value:
        raise ArgoConfigError(
            f"the controller has instanceID '{value}' ({INSTANCE_ID_ENV} or --instanceid): the promptci Sensor "
            f"submits Workflows without the {INSTANCE_ID_LABEL} label, so that controller would never run them; "
            "use an Argo Workflows controller without instanceID for promptci")


def missing_parameters(manifest: Mapping[str, Any], values: Mapping[str, str]) -> list[str]:
    """Return the template's workflow parameters that have no value and are not given in ``values``.

    Argo rejects such a submission (validate.go validateArgumentsValues with Submit: "value or
    valueFrom is required"); checking first gives the user the flag to pass, before any request.
    """
    params = ((manifest.get("spec") or {}).get("arguments") or {}).get("parameters") or []
    return [p["name"] for p in params if "value" not in p and "valueFrom" not in p and p["name"] not in values]


@dataclass(frozen=True)
class ArgoTarget:
    """Where and as whom to talk to Argo. ``token`` is excluded from repr on purpose."""

    host: str
    namespace: str = "argo"
    token: str | None = field(default=None, repr=False)
    verify_ssl: bool = True

    @classmethod
    def resolve(cls, host: str | None = None, namespace: str | None = None, token: str | None = None,
                insecure: bool | None = None) -> ArgoTarget:
        """Return the target from flags, falling back to the environment; raise ArgoConfigError without a host."""
        h = host or os.environ.get("ARGO_SERVER")
        if not h:
            raise ArgoConfigError("no Argo server: pass --argo-server or set ARGO_SERVER")
        if "://" not in h:
            h = "https://" + h
        skip = insecure if insecure is not None else \
            os.environ.get("ARGO_INSECURE_SKIP_VERIFY", "").lower() in {"1", "true", "yes"}
        return cls(host=h.rstrip("/") + "/", namespace=namespace or os.environ.get("ARGO_NAMESPACE") or "argo",
                   token=token or os.environ.get("ARGO_TOKEN") or None, verify_ssl=not skip)

    def service(self) -> WorkflowsService:
        """Return a Hera WorkflowsService bound to this target."""
        return WorkflowsService(host=self.host, namespace=self.namespace, token=self.token,
                                verify_ssl=self.verify_ssl)

    def ui_link(self, name: str) -> str:
        """Return the Argo UI link of workflow ``name``."""
        return f"{self.host}workflows/{self.namespace}/{name}"


def register_templates(target: ArgoTarget, manifests: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """Create or update every WorkflowTemplate; return ``[(name, "created"|"updated")]`` in order.

    An existing template is updated with its current ``resourceVersion`` (optimistic
    concurrency, as ``kubectl apply`` does).
    """
    out = []
    with target.service() as svc:
        for manifest in manifests:
            model = WorkflowTemplate.model_validate(dict(manifest))
            name = model.metadata.name or ""
            try:
                svc.create_workflow_template(WorkflowTemplateCreateRequest(template=model),
                                             namespace=target.namespace)
                out.append((name, "created"))
            except AlreadyExists:
                current = svc.get_workflow_template(name, namespace=target.namespace)
                model.metadata.resource_version = current.metadata.resource_version
                svc.update_workflow_template(name, WorkflowTemplateUpdateRequest(name=name, template=model),
                                             namespace=target.namespace)
                out.append((name, "updated"))
    return out


def submit_workflow(target: ArgoTarget, template: str, params: Mapping[str, str],
                    labels: Mapping[str, str] | None = None) -> str:
    """Create a Workflow from WorkflowTemplate ``template`` with ``params``; return its name."""
    wf = Workflow(
        metadata=ObjectMeta(generate_name=f"{template}-", labels=dict(labels or {}) or None),
        spec=WorkflowSpec(workflow_template_ref=WorkflowTemplateRef(name=template),
                          arguments=Arguments(parameters=[Parameter(name=k, value=v)
                                                          for k, v in params.items()]) if params else None),
    )
    with target.service() as svc:
        created = svc.create_workflow(WorkflowCreateRequest(workflow=wf), namespace=target.namespace)
    return created.metadata.name or ""


def wait_for(target: ArgoTarget, name: str, *, timeout: float = 3600, interval: float = 5,
             on_phase: Callable[[str], None] | None = None) -> str:
    """Poll workflow ``name`` until it finishes; return its final phase ("Succeeded", "Failed"...).

    Uses tenacity for the poll loop: connection errors are retried until ``timeout``; a
    workflow still running at ``timeout`` returns "Timeout" (callers treat it as failure).
    """
    import requests

    def phase() -> str:
        with target.service() as svc:
            wf = svc.get_workflow(name, namespace=target.namespace)
        value = (wf.status.phase if wf.status else None) or "Pending"
        if on_phase:
            on_phase(value)
        return value

    poll = Retrying(stop=stop_after_delay(timeout), wait=wait_fixed(interval),
                    retry=retry_if_result(lambda p: p not in TERMINAL_PHASES)
                    | retry_if_exception_type(requests.ConnectionError))
    try:
        return str(poll(phase))
    except RetryError:
        return "Timeout"


# ------------------------------------------------------------------ the trusted policy ConfigMap

SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


class KubeConfigError(Exception):
    """No Kubernetes API to write the policy ConfigMap to (no KUBE_API_SERVER, not in a cluster)."""


def kube_target(env: Mapping[str, str] | None = None) -> tuple[str, str | None, str | bool]:
    """Return (API base URL, bearer token, TLS verify) for the Kubernetes API.

    ``KUBE_API_SERVER`` + ``KUBE_TOKEN`` (+ ``KUBE_CA_FILE``) outside a cluster; inside one,
    the pod's service account (``KUBERNETES_SERVICE_HOST`` and the mounted token and CA).
    Raises KubeConfigError when neither is there.
    """
    env = os.environ if env is None else env
    if env.get("KUBE_API_SERVER"):
        return env["KUBE_API_SERVER"].rstrip("/"), env.get("KUBE_TOKEN") or None, env.get("KUBE_CA_FILE") or True
    host = env.get("KUBERNETES_SERVICE_HOST")
    if host:
        token_file = os.path.join(SA_DIR, "token")
        with open(token_file) as f:
            token = f.read().strip()
        return f"https://{host}:{env.get('KUBERNETES_SERVICE_PORT', '443')}", token, os.path.join(SA_DIR, "ca.crt")
    raise KubeConfigError("no Kubernetes API for the policy ConfigMap: set KUBE_API_SERVER (and KUBE_TOKEN), "
                          "or run register in the cluster")


def apply_configmap(manifest: Mapping[str, Any], env: Mapping[str, str] | None = None) -> str:
    """Create or replace ``manifest`` (a ConfigMap) through the Kubernetes REST API; return the action.

    One resource, two calls (GET, then POST or PUT with its resourceVersion): plain
    ``requests`` (already here through Hera) instead of a full client library.
    Raises ``requests`` errors (OSError: retry) or KubeConfigError; an HTTP error raises
    ``requests.HTTPError``.
    """
    import requests

    base, token, verify = kube_target(env)
    ns, name = manifest["metadata"]["namespace"], manifest["metadata"]["name"]
    url = f"{base}/api/v1/namespaces/{ns}/configmaps"
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with requests.Session() as http:
        current = http.get(f"{url}/{name}", headers=headers, verify=verify, timeout=30)
        if current.status_code == 404:
            http.post(url, json=manifest, headers=headers, verify=verify, timeout=30).raise_for_status()
            return "created"
        current.raise_for_status()
        body = {**manifest, "metadata": {**manifest["metadata"],
                                         "resourceVersion": current.json()["metadata"]["resourceVersion"]}}
        http.put(f"{url}/{name}", json=body, headers=headers, verify=verify, timeout=30).raise_for_status()
        return "updated"
