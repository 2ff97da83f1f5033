import json

import pytest

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


def test_shard_ref_is_small_and_strict():
    from pydantic import ValidationError

    from steps.contracts import Shard, ShardRef

    item = EvalItem(artifact_id="a", artifact_type="prompt", path="prompts/a.yaml", dataset="golden",
                    content_hash="sha256:x")
    shard = Shard(index=1, items=[item, item.model_copy(update={"dataset": "edge"})], tests=7)
    ref = ShardRef(index=shard.index, items=len(shard.items), tests=shard.tests)
    assert ShardRef.model_validate_json(to_wire([ref])[1:-1]) == ref
    assert to_wire(ref) == '{"index":1,"items":2,"tests":7}'  # no paths, no text: safe as {{item}}
    for bad in ({"index": 0, "items": 0, "tests": 0}, {"index": -1, "items": 1, "tests": 1},
                {"index": 0, "items": 1, "tests": 1, "path": "x"}):
        with pytest.raises(ValidationError):
            ShardRef.model_validate(bad)
    with pytest.raises(ValidationError):
        Shard(index=0, items=[], tests=0)  # plan never packs an empty shard
