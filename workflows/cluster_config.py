"""The ConfigMap that carries the pipeline config (cluster profile applied) to every step pod.

Step pods read the config at ``$PROMPTCI_CONFIG`` from the ConfigMap ``promptci-pipeline-config``
(key ``pipeline.yaml``), mounted at ``/etc/promptci``. ``submit.py dump`` writes it into
deploy/generated so ``kubectl apply -k deploy/`` installs it with the templates; the container
executor mounts the same object from its local ConfigMaps directory.
"""

from __future__ import annotations

from typing import Any

from config.pipeline import PromptPipelineConfig
from config.profiles import render_config

CONFIG_MAP_NAME = "promptci-pipeline-config"
CONFIG_MAP_KEY = "pipeline.yaml"
MOUNT_DIR = "/etc/promptci"
CONFIG_PATH = f"{MOUNT_DIR}/{CONFIG_MAP_KEY}"


def pipeline_config_map(config: PromptPipelineConfig, *, namespace: str | None = None,
                        source: str | None = None) -> dict[str, Any]:
    """Return the ConfigMap manifest holding ``config`` rendered as ``pipeline.yaml``.

    The one builder of this object: ``dump`` writes it for kustomize, ``register`` writes it
    through the Kubernetes API with ``namespace`` and ``source`` (the trusted ref and commit,
    recorded as an annotation), so the two agree byte for byte on the config they carry.
    """
    metadata: dict[str, Any] = {"name": CONFIG_MAP_NAME, "labels": {"app.kubernetes.io/part-of": "promptci"}}
    if namespace:
        metadata["namespace"] = namespace
    if source:
        metadata["annotations"] = {"promptci.dev/policy-source": source}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata,
            "data": {CONFIG_MAP_KEY: render_config(config)}}
