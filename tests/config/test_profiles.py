"""Config profiles: the cluster profile persists across pods and keeps the pipeline config's gates."""

from pathlib import Path

import pytest

from config.pipeline import ConfigError, load_pipeline_config
from config.profiles import load_profile, profile_names, render_config
from steps.persistence import pod_refusal, unpersisted


def test_cluster_profile_moves_state_off_the_disk_and_keeps_every_gate() -> None:
    local, cluster = load_profile("local"), load_profile("cluster")
    assert profile_names() == ["cluster", "local"]
    assert unpersisted(local, {}) and len(unpersisted(local, {})) == 2
    assert unpersisted(cluster, {}) == []
    assert cluster.store.kind == "s3" and cluster.store.bucket
    assert cluster.gitops.repo_url.startswith("https://")
    # Only persistence differs: the gates are the pipeline config's.
    same = {"defaults", "overrides", "promotion", "triggers", "artifact_dirs"}
    assert cluster.model_dump(include=same) == local.model_dump(include=same)


def test_rendered_profile_is_a_valid_pipeline_config_that_reads_back_equal(tmp_path: Path) -> None:
    cluster = load_profile("cluster")
    path = tmp_path / "pipeline.yaml"
    path.write_text(render_config(cluster))
    assert load_pipeline_config(path) == cluster


def test_a_profile_may_only_set_store_and_gitops(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("store: {kind: s3, bucket: b}\ngitops: {repo_url: https://x/y.git}\n"
                   "promotion: {chain: [prod]}\n")
    with pytest.raises(ConfigError) as exc:
        load_profile(str(bad))
    assert [p.format() for p in exc.value.problems] == [f"{bad}:3:1: promotion: unknown field 'promotion'"]


def test_in_a_pod_the_local_profile_is_refused_with_one_line_per_setting() -> None:
    local, cluster = load_profile("local"), load_profile("cluster")
    assert pod_refusal(local, {}) == []  # on this machine the local profile is the point
    lines = pod_refusal(local, {"KUBERNETES_SERVICE_HOST": "10.0.0.1"})
    assert lines[0].startswith("store.kind: 'local'") and lines[1].startswith("gitops.repo_url:")
    assert "refusing" in lines[2] and len(lines) == 3
    assert pod_refusal(cluster, {"ARGO_CONTAINER_NAME": "main"}) == []
    # An environment override back to a local store is refused too.
    assert pod_refusal(cluster, {"ARGO_CONTAINER_NAME": "main", "PROMPTCI_STORE_KIND": "local"})
