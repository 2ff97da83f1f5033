import json

from steps.contracts import BranchResult, EvalItem, to_wire, wire_result


def result(**kw) -> BranchResult:  # type: ignore[no-untyped-def]
    base = dict(artifact_id="support-reply", artifact_type="prompt", path="prompts/support-reply.yaml",
                dataset="golden", content_hash="sha256:ab", status="failed", pass_rate=0.5,
                metric_scores={"tone": 0.5}, reasons=["output did not contain '{{customer_name}}'"])
    base.update(kw)
    return BranchResult(**base)


def test_to_wire_escapes_braces_and_round_trips():
    text = to_wire([result()])
    assert "{{" not in text
    assert [BranchResult.model_validate(x) for x in json.loads(text)] == [result()]


def test_wire_result_survives_argo_aggregation_without_braces():
    # Argo decodes each branch's JSON output and re-encodes the list (Go's encoder leaves '{' as is),
    # which undoes to_wire's escaping: what is left must have no '{{' at all.
    branches = [to_wire(wire_result(result(dataset=f"d{i}"))) for i in range(3)]
    aggregated = json.dumps([json.loads(b) for b in branches])
    assert "{{" not in aggregated
    decoded = [BranchResult.model_validate(x) for x in json.loads(aggregated)]
    assert [d.dataset for d in decoded] == ["d0", "d1", "d2"]
    assert all(d.reasons == [] and d.status == "failed" and d.metric_scores == {"tone": 0.5} for d in decoded)


def test_eval_item_wire_form():
    item = EvalItem(artifact_id="a", artifact_type="prompt", path="prompts/a.yaml", dataset="inline",
                    content_hash="sha256:00")
    assert EvalItem.model_validate_json(to_wire(item)) == item
