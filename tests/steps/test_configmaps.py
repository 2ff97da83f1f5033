"""ConfigMap / kustomization rendering: DNS-safe names, exact content round trip, determinism."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from steps.gitops.configmaps import (
    ArtifactConfigMap,
    LayoutError,
    _Dumper,
    configmap_name,
    data_key,
    dump_yaml,
    label_value,
    parse_configmap,
    render_kustomization,
)

RFC1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def cm(content: str, aid: str = "support-reply") -> ArtifactConfigMap:
    return ArtifactConfigMap(artifact_id=aid, artifact_type="prompt", file_name=f"prompts/{aid}.yaml",
                             content=content, version="1.2.0", content_hash="sha256:" + "ab" * 32,
                             source_revision="c0ffee", source_timestamp=1_700_000_000,
                             eval_summary={"run": "r1", "datasets": {"golden": {"pass_rate": 0.95}}},
                             namespace="genai")


def test_name_is_derived_from_type_and_id() -> None:
    assert configmap_name("prompt", "support-reply") == "promptci-prompt-support-reply"
    assert configmap_name("guardrail-policy", "pii.v2") == "promptci-guardrail-policy-pii.v2"


@pytest.mark.parametrize("aid", ["Support_Reply", "a_b", "x" * 300, "a..b", "-lead"])
def test_names_are_rfc1123_and_distinct(aid: str) -> None:
    name = configmap_name("prompt", aid)
    assert RFC1123.match(name) and len(name) <= 253
    assert name != configmap_name("prompt", aid + "z")


def test_sanitised_ids_that_collide_textually_get_different_names() -> None:
    assert configmap_name("prompt", "a_b") != configmap_name("prompt", "a-b")
    assert configmap_name("prompt", "x" * 300) != configmap_name("prompt", "x" * 301)


@pytest.mark.parametrize("content", [
    "kind: prompt\nid: x\n",
    "line with trailing spaces   \n\ttabbed\n",
    "no trailing newline",
    "  leading indent\nthen {{ var }} and {{{{ weird }}}}\nünïcödé ✓\n",
    "windows\r\nline endings\r\n",
    "'quotes' \"double\" # not a comment\n---\n...\n",
    "emoji \U0001f600 and NEL \x85 take the pure-Python emitter\n",
    "a NEL \x85 in a line\nand one at the end \x85\n",
    "\x85",
])
def test_content_round_trips_exactly(content: str) -> None:
    text = cm(content).render()
    doc = yaml.safe_load(text)
    assert doc["data"]["support-reply.yaml"] == content
    # Read back, the file name is the data key (the base name).
    assert parse_configmap(text) == replace(cm(content), file_name="support-reply.yaml")


_TRICKY = ["---", "...", ": ", " #", "- ", "\n\n", "  ", "\n ", " \n", "\t", "{{ x }}", "null", "yes", "|", ">",
           "'", '"', "&a", "*a", "!t", "%", "@", "`", "?", "[", "{", ",", "\r\n", "\xa0", "\u2028", "\ufeff"]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(_TRICKY),
                          st.text(st.characters(codec="utf-8", max_codepoint=0xFFFF), max_size=6)),
                max_size=14).map("".join))
def test_the_faster_emitter_writes_the_same_bytes_as_pyyaml(content: str) -> None:
    """dump_yaml hands text libyaml prints identically to libyaml (speed); the ConfigMap a reviewer
    reads must be byte for byte what PyYAML's own emitter writes, whichever emitter ran, and read
    back the same by either parser."""
    manifest = cm(content).manifest()
    python_only = yaml.dump(manifest, Dumper=_Dumper, sort_keys=True, allow_unicode=True, width=1_000_000,
                            default_flow_style=False)
    assert dump_yaml(manifest) == python_only
    # and parse_configmap's libyaml parser reads it as PyYAML's does
    assert yaml.load(python_only, Loader=yaml.CSafeLoader) == yaml.safe_load(python_only)


def test_manifest_shape_labels_and_metadata_keys() -> None:
    doc = yaml.safe_load(cm("a: 1\n").render())
    assert (doc["apiVersion"], doc["kind"]) == ("v1", "ConfigMap")
    assert doc["metadata"]["name"] == "promptci-prompt-support-reply"
    assert doc["metadata"]["namespace"] == "genai"
    assert doc["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "promptci",
                                         "promptci.dev/artifact-type": "prompt",
                                         "promptci.dev/artifact-id": "support-reply"}
    data = doc["data"]
    assert data["version"] == "1.2.0" and data["content-hash"].startswith("sha256:")
    assert data["source-revision"] == "c0ffee"
    assert data["eval-summary"] == '{"datasets":{"golden":{"pass_rate":0.95}},"run":"r1"}'
    assert all(isinstance(v, str) for v in data.values())  # ConfigMap data must be strings


def test_rendering_is_deterministic() -> None:
    assert cm("x: 1\n").render() == cm("x: 1\n").render()
    assert render_kustomization(["b.yaml", "a.yaml", "b.yaml"], "dev") == render_kustomization(
        ["a.yaml", "b.yaml"], "dev")


def test_kustomization_lists_sorted_unique_resources() -> None:
    doc = yaml.safe_load(render_kustomization(["z.yaml", "a.yaml", "a.yaml"], "prod", "genai"))
    assert doc == {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
                   "metadata": {"name": "promptci-prod"}, "namespace": "genai",
                   "resources": ["a.yaml", "z.yaml"]}


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.text(min_size=1, max_size=12).map(lambda t: t + ".yaml"),
                          st.sampled_from(["null.yaml", "yes", "-a.yaml", "'q.yaml", "#a.yaml", ":a.yaml",
                                           "a:b.yaml", "1.0", "~", "*a", "&b", "!c", "%d", "@e", '"g', "[h",
                                           "{i", "a,b", "?x", "-x", "a b.yaml", "\u00e9.yaml", "x\ny.yaml"])),
                max_size=12),
       st.sampled_from(["prod", "dev"]), st.sampled_from([None, "genai"]))
def test_kustomization_is_the_whole_document_dump_byte_for_byte(files: list[str], env: str,
                                                                 namespace: str | None) -> None:
    """The kustomization is built from cached parts (promote writes one per commit); its text must be
    exactly what dumping the whole document gives, for any file name, or every commit would churn it."""
    doc = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
           "metadata": {"name": f"promptci-{env}"}, **({"namespace": namespace} if namespace else {}),
           "resources": sorted(set(files))}
    assert render_kustomization(files, env, namespace) == dump_yaml(doc)


def test_label_values_are_valid() -> None:
    assert label_value("support-reply") == "support-reply"
    long = label_value("x" * 100)
    assert len(long) <= 63 and re.match(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$", long)


def test_bad_data_keys_and_foreign_files_are_rejected() -> None:
    assert data_key("prompts/a.prompt.yml") == "a.prompt.yml"
    with pytest.raises(LayoutError, match="cannot be a ConfigMap data key"):
        data_key("prompts/sp ace.yaml")
    with pytest.raises(LayoutError, match="reserved"):
        data_key("prompts/version")
    with pytest.raises(LayoutError, match="not a ConfigMap"):
        parse_configmap("kind: Secret\n", "x.yaml")
    with pytest.raises(LayoutError, match="not a promptci ConfigMap"):
        parse_configmap("kind: ConfigMap\nmetadata: {name: x}\ndata: {}\n", "x.yaml")


def test_a_rollback_pin_round_trips_and_orders_replacements() -> None:
    """The pin a rollback sets is data of the ConfigMap, and only a newer source may pass it."""
    from dataclasses import replace

    plain = cm("hello\n")
    assert "pinned-revision" not in plain.render()  # content promoted before pins existed keeps its bytes
    pinned = replace(plain, pinned_revision="f00d", pinned_timestamp=1_800_000_000)
    back = parse_configmap(pinned.render())
    assert (back.pinned_revision, back.pinned_timestamp) == ("f00d", 1_800_000_000)
    assert back.floor == (1_800_000_000, "f00d") > back.source_key == (1_700_000_000, "c0ffee")
    assert plain.floor == plain.source_key
