"""deploy/rbac.yaml grants each service account exactly the API calls of the code that runs under it.

The calls are derived from the manifests (which account runs which Sensor trigger or pod) and from
the Argo sources that make them, cited beside each call. A missing verb fails; so does an unused one.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
Call = tuple[str, str, str]  # (apiGroup, resource, verb)

AW = "argo-events pkg/sensors/triggers/argo-workflow/argo-workflow.go Execute"
CREATE_WF = "argo-workflows server/workflow/workflow_server.go CreateWorkflow (what `argo submit` runs in-process)"
# The calls an argoWorkflow trigger makes for each operation (argo-workflow.go Execute: it runs
# `argo -n NS <op>`, then Gets the named workflow, or for submit Lists workflows by its labels).
OPERATION_CALLS: dict[str, list[tuple[Call, str]]] = {
    "submit": [(("argoproj.io", "workflows", "create"), f"{CREATE_WF}: Workflows(ns).Create"),
               (("argoproj.io", "workflows", "list"), f"{AW}: List(LabelSelector: sensor, trigger, timestamp)")],
}
TEMPLATE_REF_CALL = (("argoproj.io", "workflowtemplates", "get"),
                     f"{CREATE_WF} -> validate.Workflow -> wftmplGetter.Get(workflowTemplateRef.name)")
POLICY_CALL = (("argoproj.io", "workflows", "get"), "argo-events pkg/sensors/policy/resource_labels.go ApplyPolicy")
EXECUTOR_CALLS = [(("argoproj.io", "workflowtaskresults", "create"),
                   "argo-workflows workflow/executor/taskresult.go upsertTaskResult -> createTaskResult: Create"),
                  (("argoproj.io", "workflowtaskresults", "patch"), "argo-workflows workflow/executor/taskresult.go "
                                                                    "patchTaskResult: Patch")]
POD_TYPES = ("container", "containerSet", "script", "resource", "data")  # Template.IsPodType


def _docs() -> list[dict[str, Any]]:
    out = []
    for path in sorted(DEPLOY.rglob("*.yaml")):
        out += [d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict)]
    return out


def required_calls() -> dict[str, dict[Call, list[str]]]:
    """Return ``{service account: {call: [why, ...]}}`` for every code path deploy/ runs in the cluster."""
    need: dict[str, dict[Call, list[str]]] = defaultdict(lambda: defaultdict(list))
    for doc in _docs():
        if doc["kind"] == "Sensor":
            sa = doc["spec"]["template"]["serviceAccountName"]
            for trig in doc["spec"]["triggers"]:
                aw = trig["template"].get("argoWorkflow")
                if aw is None:
                    continue
                op = aw.get("operation", "submit")
                assert op in OPERATION_CALLS, f"add the calls of argoWorkflow operation {op!r} ({AW})"
                where = f"Sensor {doc['metadata']['name']} trigger {trig['template']['name']}"
                calls = list(OPERATION_CALLS[op])
                if (aw["source"]["resource"].get("spec") or {}).get("workflowTemplateRef"):
                    assert not aw["source"]["resource"]["spec"]["workflowTemplateRef"].get("clusterScope")
                    calls.append(TEMPLATE_REF_CALL)
                if (trig.get("policy") or {}).get("k8s"):
                    calls.append(POLICY_CALL)
                for call, source in calls:
                    need[sa][call].append(f"{where}: {source}")
        elif doc["kind"] == "WorkflowTemplate":
            default_sa = doc["spec"].get("serviceAccountName", "default")
            for tpl in doc["spec"]["templates"]:
                if any(k in tpl for k in POD_TYPES):
                    sa = tpl.get("serviceAccountName") or default_sa
                    for call, source in EXECUTOR_CALLS:
                        need[sa][call].append(f"{doc['metadata']['name']}/{tpl['name']} executor: {source}")
    return need


def granted_calls() -> dict[str, set[Call]]:
    """Return ``{service account: {call}}`` from deploy/'s Roles and RoleBindings."""
    docs = _docs()
    roles = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Role"}
    out: dict[str, set[Call]] = defaultdict(set)
    for b in (d for d in docs if d["kind"] == "RoleBinding"):
        for rule in roles[b["roleRef"]["name"]]["rules"]:
            assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"], rule
            for subject in b["subjects"]:
                out[subject["name"]] |= {(g, r, v) for g in rule["apiGroups"] for r in rule["resources"]
                                         for v in rule["verbs"]}
    assert not [d for d in docs if d["kind"] in ("ClusterRole", "ClusterRoleBinding")], "namespaced only"
    return out


def test_every_account_has_exactly_the_calls_its_code_makes() -> None:
    need, have = required_calls(), granted_calls()
    table = "\n".join(f"{sa}: {'/'.join(c[1:])} <- {why[0]}" for sa, calls in sorted(need.items())
                      for c, why in sorted(calls.items()))
    missing = {sa: sorted(set(calls) - have.get(sa, set())) for sa, calls in need.items()}
    unused = {sa: sorted(calls - set(need.get(sa, {}))) for sa, calls in have.items()}
    assert not any(missing.values()), f"missing: {missing}\nneeded:\n{table}"
    assert not any(unused.values()), f"granted but never called: {unused}\nneeded:\n{table}"
    assert set(need) == {"promptci-sensor", "promptci", "promptci-promoter"}


def test_the_sensor_account_is_what_argo_submit_needs() -> None:
    """Pinned to the derivation above: submit a templateRef Workflow, then find it by label."""
    assert set(required_calls()["promptci-sensor"]) == {
        ("argoproj.io", "workflows", "create"), ("argoproj.io", "workflows", "list"),
        ("argoproj.io", "workflowtemplates", "get")}


def test_stage_code_makes_no_kubernetes_api_calls() -> None:
    """The stages get Secrets through envFrom (the kubelet reads them) and artifact credentials through
    volumes the controller mounts (workflow/executor/executor.go GetSecret reads files), so the code in
    the pods never talks to the API server: no client library, no service-account token."""
    code = [*sorted((REPO / "steps").rglob("*.py")), REPO / "workflows" / "stages.py",
            *sorted((REPO / "workflows" / "stage_bodies").rglob("*.py"))]
    pattern = re.compile(r"^\s*(from|import)\s+(kubernetes|hera\.workflows\.service)|serviceaccount/token|"
                         r"WorkflowsService", re.M)
    offenders = [str(p.relative_to(REPO)) for p in code if pattern.search(p.read_text())]
    assert offenders == []
