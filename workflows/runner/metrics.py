"""Record a finished local run's metrics (the Prometheus series the pipeline emits)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from workflows.runner.records import RunResult


def record_metrics(manifest: Mapping[str, Any], result: RunResult) -> str | None:
    """Record the run's metrics through ``steps.metrics``; return a note when that is unavailable."""
    try:
        from steps.metrics import record_pipeline_run  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return "metrics not recorded: steps.metrics is not available"
    labels = manifest.get("metadata", {}).get("labels", {})
    record_pipeline_run(artifact_type=labels.get("promptci.dev/artifact-type", "unknown"),
                        result="succeeded" if result.ok else "failed",
                        duration_seconds=result.duration_seconds, stage_results=result.stage_results(),
                        run_dir=result.run_dir, pushgateway_url=os.environ.get("PUSHGATEWAY_URL"))
    return None
