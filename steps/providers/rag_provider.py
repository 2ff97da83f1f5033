"""promptfoo custom provider (Python) that answers a RAG golden query with the configured retriever.

The eval stage builds the retriever once (``steps.rag.retriever``: chunking,
index, top_k, embeddings through the configured provider) and pickles it into
the branch's work dir; this provider loads it once per promptfoo worker and,
per query, outputs the retrieved document ids and the query's metrics as JSON.
The case's assertions turn those into pass/fail (hit@k) and named scores.
"""

from __future__ import annotations

import json
import pickle
from functools import lru_cache
from typing import Any

from steps.providers.guardrail_provider import log_call
from steps.rag.embeddings import EmbeddingError
from steps.rag.retriever import Retriever, retrieval_metrics


@lru_cache(maxsize=4)
def _retriever(index_path: str) -> Retriever:
    with open(index_path, "rb") as f:  # written by this branch's own eval step, in its work dir
        retriever = pickle.load(f)  # noqa: S301
    assert isinstance(retriever, Retriever)
    return retriever


def call_api(prompt: str, options: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    """Return ``{"output": {"retrieved", "metrics"} as JSON}`` for one query, or ``{"error": ...}``."""
    cfg = options.get("config") or {}
    case = json.loads(json.loads(prompt)[0]["content"])
    test = ((context or {}).get("test") or {}).get("description", "")
    log_call({"artifact": cfg.get("artifact_id"), "test": test, "kind": "rag"})
    retriever = _retriever(cfg["index_path"])
    try:
        retrieved = retriever.retrieve(case["query"])
    except EmbeddingError as exc:
        return {"error": f"test '{test}': {exc}"}
    metrics = retrieval_metrics(retrieved, case["relevant"], retriever.config.top_k)
    return {"output": json.dumps({"retrieved": retrieved, "metrics": metrics})}
