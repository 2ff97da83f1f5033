"""Rendering of the GitOps layout: one ConfigMap per artifact plus a kustomization.

Everything here is pure (text in, text out) so the promote and rollback code
can diff, commit and re-apply it on any head. Output is deterministic: the same
inputs always give byte-identical YAML, so an unchanged promotion produces no
diff and no commit.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import yaml

MANAGED_BY = "promptci"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_TYPE = "promptci.dev/artifact-type"
LABEL_ID = "promptci.dev/artifact-id"
KUSTOMIZATION = "kustomization.yaml"
MAX_NAME = 253
MAX_LABEL_VALUE = 63
_DATA_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
# Keys promptci adds next to the artifact file in every ConfigMap's data.
META_KEYS = ("version", "content-hash", "source-revision", "source-timestamp", "eval-summary",
             "pinned-revision", "pinned-timestamp")


class LayoutError(ValueError):
    """A ConfigMap or kustomization in the GitOps repo cannot be read as promptci wrote it."""


def _dns_part(text: str) -> str:
    """Return ``text`` lower-cased with every run of characters outside [a-z0-9.-] made one '-'."""
    return re.sub(r"[^a-z0-9.-]+", "-", text.lower())


def configmap_name(artifact_type: str, artifact_id: str) -> str:
    """Return the RFC 1123 subdomain name of an artifact's ConfigMap.

    ``promptci-{type}-{id}``; when that exceeds 253 characters it is cut and a
    hash of the full name is appended, so distinct ids never share a name.
    """
    raw = f"promptci-{artifact_type}-{artifact_id}"
    name = re.sub(r"[.-]{2,}", "-", _dns_part(raw)).strip(".-")
    if name == raw and len(name) <= MAX_NAME:
        return name
    # Changed or cut: a hash of the original keeps two ids that map to the same text apart.
    digest = hashlib.sha256(raw.encode()).hexdigest()[:10]
    return name[: MAX_NAME - len(digest) - 1].rstrip(".-") + "-" + digest


def label_value(text: str) -> str:
    """Return ``text`` as a valid label value (≤63 chars, alnum at both ends, hash suffix if cut)."""
    value = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("._-")
    if len(value) > MAX_LABEL_VALUE or value != text:
        digest = hashlib.sha256(text.encode()).hexdigest()[:8]
        value = value[: MAX_LABEL_VALUE - len(digest) - 1].rstrip("._-") + "-" + digest
    return value


def data_key(file_name: str) -> str:
    """Return the ConfigMap data key for an artifact file: its base name, which must be a valid key."""
    name = file_name.rsplit("/", 1)[-1]
    if not _DATA_KEY.match(name) or name in META_KEYS:
        raise LayoutError(f"artifact file name {name!r} cannot be a ConfigMap data key "
                          f"(allowed: letters, digits, '-', '_', '.'; reserved: {', '.join(META_KEYS)})")
    return name


@dataclass(frozen=True)
class ArtifactConfigMap:
    """What one artifact's ConfigMap holds; ``render()`` gives its YAML."""

    artifact_id: str
    artifact_type: str
    file_name: str
    content: str
    version: str
    content_hash: str
    source_revision: str
    source_timestamp: int | None
    eval_summary: dict[str, Any]
    namespace: str = "default"
    # Set by a rollback: the newest source revision (and its commit time) rolled back. Only a
    # source revision newer than this may replace the restored content (see steps/promotion/order.py).
    pinned_revision: str = ""
    pinned_timestamp: int | None = None

    @property
    def source_key(self) -> tuple[int, str]:
        """Return the order of this content's source revision: commit time, then revision (ties)."""
        return (self.source_timestamp if self.source_timestamp is not None else -1, self.source_revision)

    @property
    def floor(self) -> tuple[int, str]:
        """Return the source order a replacement must exceed: the pin when rolled back, else the source."""
        if self.pinned_revision:
            return max(self.source_key, (self.pinned_timestamp if self.pinned_timestamp is not None else -1,
                                         self.pinned_revision))
        return self.source_key

    @property
    def name(self) -> str:
        """Return the ConfigMap's metadata.name."""
        return configmap_name(self.artifact_type, self.artifact_id)

    @property
    def file(self) -> str:
        """Return the file name of this ConfigMap inside ``{path}/{env}/``."""
        return f"{self.name}.yaml"

    def manifest(self) -> dict[str, Any]:
        """Return the ConfigMap as a Kubernetes object (a plain dict)."""
        data = {
            data_key(self.file_name): self.content,
            "version": self.version,
            "content-hash": self.content_hash,
            "source-revision": self.source_revision,
            "source-timestamp": "" if self.source_timestamp is None else str(self.source_timestamp),
            "eval-summary": json.dumps(self.eval_summary, sort_keys=True, separators=(",", ":")),
        }
        if self.pinned_revision:
            data["pinned-revision"] = self.pinned_revision
            data["pinned-timestamp"] = "" if self.pinned_timestamp is None else str(self.pinned_timestamp)
        return {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "labels": {
                    LABEL_MANAGED_BY: MANAGED_BY,
                    LABEL_TYPE: label_value(self.artifact_type),
                    LABEL_ID: label_value(self.artifact_id),
                },
                "annotations": {
                    "promptci.dev/artifact-id": self.artifact_id,
                    "promptci.dev/artifact-type": self.artifact_type,
                    "promptci.dev/file": data_key(self.file_name),
                },
            },
            "data": data,
        }

    def render(self) -> str:
        """Return the deterministic YAML text of the ConfigMap."""
        return dump_yaml(self.manifest())


class _Dumper(yaml.SafeDumper):
    """SafeDumper that writes multi-line strings as literal blocks, so prompts stay readable."""


def _str_repr(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    # PyYAML falls back to a quoted style by itself when a block scalar cannot
    # hold the text exactly (trailing spaces, tabs, ...), so content round-trips.
    # Except NEL (U+0085): PyYAML writes it raw in a literal or single-quoted scalar, where
    # a YAML parser reads it as a line break or a space; double quotes escape it as "\N".
    style = '"' if "\x85" in value else "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str_repr)

try:  # libyaml's emitter (same representer and resolver, C emitter): ~10x faster, see dump_yaml
    _CDumper: type[yaml.SafeDumper] | None = type("_CDumper", (yaml.CSafeDumper,), {})
    _CDumper.add_representer(str, _str_repr)  # type: ignore[union-attr]
    _CLoader: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _CDumper, _CLoader = None, yaml.SafeLoader

# Text both emitters print the same way (tests/steps/test_configmaps.py compares them). Outside it they
# differ: libyaml escapes characters above U+FFFF (emoji) and NEL as "\U…"/"\N" in a quoted scalar
# where PyYAML keeps a literal block, and after a keep-chomped block ("|+": text ending in two line
# breaks) anywhere in the document libyaml ends it with "...", PyYAML only when it is the last value.
_BOTH_EMITTERS_AGREE = re.compile(r"[\t\n\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd]*\Z")


def _same_in_both_emitters(text: str) -> bool:
    """Return True when libyaml's emitter writes ``text`` exactly as PyYAML's does (see above)."""
    return bool(_BOTH_EMITTERS_AGREE.match(text)) and not (text == "\n" or text.endswith("\n\n"))


def _strings(obj: Any) -> Iterator[str]:
    """Yield every string (keys and values) of a plain JSON-like document."""
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _strings(k)
            yield from _strings(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _strings(v)


def dump_yaml(obj: Any) -> str:
    """Return ``obj`` as YAML with sorted keys, unicode kept and no line wrapping.

    The text is PyYAML's pure-Python emitter's; when every string is in the range where
    libyaml's emitter prints exactly the same bytes, libyaml writes it (promote renders a
    ConfigMap per artifact: 200 cost ~0.3 s in Python).
    """
    fast = _CDumper is not None and all(map(_same_in_both_emitters, _strings(obj)))
    return yaml.dump(obj, Dumper=_CDumper if fast else _Dumper, sort_keys=True, allow_unicode=True,
                     width=1_000_000, default_flow_style=False)


def render_kustomization(files: list[str], env: str, namespace: str | None = None) -> str:
    """Return the ``kustomization.yaml`` of ``env`` listing exactly ``files`` (sorted, de-duplicated).

    Byte for byte ``dump_yaml`` of the whole document, built from cached parts: ``resources``
    sorts last, so the text is the head (every other key) then one line per file. Why:
    promote writes it once per commit, and dumping N names N times cost seconds for 200.
    A name that could print on more than one line takes the whole-document dump.
    """
    names = sorted(set(files))
    if names and all(_ONE_LINE_NAME.match(n) for n in names):
        return _kustomization_head(env, namespace) + "resources:\n" + "".join(map(_resource_line, names))
    return dump_yaml({**_kustomization_doc(env, namespace), "resources": names})


_ONE_LINE_NAME = re.compile(r"^[!-~]+$")  # printable ASCII, no space: a single YAML line in any style


def _kustomization_doc(env: str, namespace: str | None) -> dict[str, Any]:
    """Return the kustomization's keys other than ``resources`` (all sort before it)."""
    doc: dict[str, Any] = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "metadata": {"name": _dns_part(f"promptci-{env}").strip(".-")[:MAX_NAME]},
    }
    if namespace:
        doc["namespace"] = namespace
    return doc


@functools.lru_cache(maxsize=64)
def _kustomization_head(env: str, namespace: str | None) -> str:
    return dump_yaml(_kustomization_doc(env, namespace))


@functools.lru_cache(maxsize=8192)
def _resource_line(name: str) -> str:
    return dump_yaml([name])


def parse_configmap(text: str, where: str = "<configmap>") -> ArtifactConfigMap:
    """Return what a promptci ConfigMap holds; raise LayoutError if it is not one.

    Exists so status, rollback and the environment-order gate read the GitOps
    repo through one definition of the layout.
    """
    try:
        doc = yaml.load(text, Loader=_CLoader)  # libyaml (as config/yamlio.py): 200 files cost ~2 s in Python
    except yaml.YAMLError:
        try:  # PyYAML's own parser decides, and words the error
            doc = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise LayoutError(f"{where}: not valid YAML: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("kind") != "ConfigMap":
        raise LayoutError(f"{where}: not a ConfigMap")
    meta = doc.get("metadata") or {}
    ann = meta.get("annotations") or {}
    data = doc.get("data") or {}
    try:
        key = ann["promptci.dev/file"]
        ts = data.get("source-timestamp") or ""
        pin_ts = data.get("pinned-timestamp") or ""
        return ArtifactConfigMap(
            artifact_id=ann["promptci.dev/artifact-id"],
            artifact_type=ann["promptci.dev/artifact-type"],
            file_name=key,
            content=data[key],
            version=str(data.get("version", "")),
            content_hash=data["content-hash"],
            source_revision=str(data.get("source-revision", "")),
            source_timestamp=int(ts) if ts else None,
            eval_summary=json.loads(data.get("eval-summary") or "{}"),
            namespace=meta.get("namespace") or "default",
            pinned_revision=str(data.get("pinned-revision", "")),
            pinned_timestamp=int(pin_ts) if pin_ts else None,
        )
    except (KeyError, ValueError, TypeError) as exc:
        raise LayoutError(f"{where}: not a promptci ConfigMap (missing or bad {exc})") from exc
