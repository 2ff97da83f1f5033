"""The retriever a rag-config describes, built for the eval, and the retrieval metrics.

* **Chunking** counts *tokens* of the embedding model's tiktoken encoding
  (``steps.tokens``, offline): windows of ``chunk_size`` tokens that overlap by
  ``chunk_overlap``, decoded back to text. A document shorter than one window
  is one chunk.
* **Index** ``lexical``: BM25 over the chunks with ``bm25s`` (sparse-matrix
  BM25, English stopwords). ``vector``: cosine similarity between the query's
  and the chunks' embeddings (numpy), the embeddings coming from the
  configured provider (``steps.rag.embeddings``).
* **Retrieval** takes the ``top_k`` best *chunks*; the retrieved documents are
  their documents in rank order, each once. So a small ``top_k`` with small
  chunks retrieves few documents, which is what such a config does in production.
* **Metrics** per query, binary relevance: hit@k, recall@k, reciprocal rank
  (averaged: MRR) and nDCG@k (ideal DCG over min(|relevant|, k) ranks).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from config.artifacts import RagConfigArtifact, RagDocument
from steps.tokens import encoding

Embed = Callable[[list[str]], list[list[float]]]


@dataclass(frozen=True)
class Chunk:
    doc_id: str
    text: str


def chunk_documents(docs: Sequence[RagDocument], chunk_size: int, overlap: int, encoding_name: str) -> list[Chunk]:
    """Return the token-window chunks of ``docs`` (window ``chunk_size``, stride ``chunk_size - overlap``)."""
    enc = encoding(encoding_name)
    stride = chunk_size - overlap
    chunks: list[Chunk] = []
    batches = enc.encode_ordinary_batch([d.text for d in docs])
    for doc, tokens in zip(docs, batches, strict=True):
        start = 0
        while True:
            window = tokens[start:start + chunk_size]
            chunks.append(Chunk(doc.id, enc.decode(window)))
            if start + chunk_size >= len(tokens):
                break
            start += stride
    return chunks


class Retriever:
    """Chunks, index and top_k of one rag-config. ``retrieve(query)`` returns document ids, best first."""

    def __init__(self, config: RagConfigArtifact, docs: Sequence[RagDocument], encoding_name: str,
                 embed: Embed | None = None):
        self.config = config
        self.chunks = chunk_documents(docs, config.chunk_size, config.chunk_overlap, encoding_name)
        self.embed = embed
        if config.index.type == "lexical":
            import bm25s  # maintained sparse-matrix BM25 (https://github.com/xhluca/bm25s)

            self._bm25 = bm25s.BM25()
            self._bm25.index(bm25s.tokenize([c.text for c in self.chunks], stopwords="en", show_progress=False),
                             show_progress=False)
        else:
            if embed is None:
                raise ValueError(f"rag-config {config.id} uses a vector index: it needs an embedding provider")
            self._vectors = _normalised(np.asarray(embed([c.text for c in self.chunks]), dtype=np.float32))

    def _top_chunks(self, query: str) -> list[int]:
        k = min(self.config.top_k, len(self.chunks))
        if self.config.index.type == "lexical":
            import bm25s

            tokens = bm25s.tokenize([query], stopwords="en", show_progress=False)
            if not tokens.vocab:  # only stopwords: nothing can match
                return []
            ids, scores = self._bm25.retrieve(tokens, k=k, show_progress=False)
            return [int(i) for i, s in zip(ids[0], scores[0], strict=True) if s > 0]
        assert self.embed is not None
        q = _normalised(np.asarray(self.embed([query]), dtype=np.float32))[0]
        sims = self._vectors @ q
        return [int(i) for i in np.argsort(-sims, kind="stable")[:k]]

    def retrieve(self, query: str) -> list[str]:
        """Return the ids of the documents of the top_k chunks for ``query``, best first, each once."""
        return list(dict.fromkeys(self.chunks[i].doc_id for i in self._top_chunks(query)))


def _normalised(m: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    return m / np.where(norms == 0, 1, norms)


def retrieval_metrics(retrieved: Sequence[str], relevant: Sequence[str], k: int) -> dict[str, float]:
    """Return hit@k, recall@k, reciprocal rank and nDCG@k of one query (binary relevance)."""
    ranked = list(retrieved)[:k]
    rel = set(relevant)
    hits = [i for i, d in enumerate(ranked) if d in rel]
    dcg = sum(1 / math.log2(i + 2) for i in hits)
    ideal = sum(1 / math.log2(i + 2) for i in range(min(len(rel), k)))
    return {"hit_at_k": 1.0 if hits else 0.0, "recall_at_k": len(hits) / len(rel) if rel else 0.0,
            "mrr": 1 / (hits[0] + 1) if hits else 0.0, "ndcg_at_k": dcg / ideal if ideal else 0.0}
