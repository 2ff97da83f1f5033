"""The retriever a rag-config describes: token chunking, BM25 and vector indexes, top_k, and the metrics."""

from __future__ import annotations

import math

import pytest

from config.artifacts import RagConfigArtifact, RagDocument
from steps.rag.embeddings import EmbeddingError, EmbeddingProvider
from steps.rag.retriever import Retriever, chunk_documents, retrieval_metrics
from steps.tokens import encoding

DOCS = [
    RagDocument(id="reset", text="To reset your password open the sign-in page and choose Forgot password."),
    RagDocument(id="refund", text="Refunds go back to the original card within ten business days."),
    RagDocument(id="export", text="Export every project as a ZIP archive from the data export settings."),
]


def _config(index_type: str = "lexical", chunk_size: int = 64, overlap: int = 8, top_k: int = 2) -> RagConfigArtifact:
    return RagConfigArtifact.model_validate({
        "kind": "rag-config", "id": "kb", "version": "1.0.0", "owner": "qa",
        "embedding_model": "text-embedding-3-small", "chunk_size": chunk_size, "chunk_overlap": overlap,
        "top_k": top_k, "index": {"name": "i", "backend": "faiss", "type": index_type}})


def test_chunks_are_token_windows_with_the_configured_overlap():
    enc = encoding("cl100k_base")
    doc = RagDocument(id="d", text=" ".join(f"word{i}" for i in range(50)))
    tokens = enc.encode_ordinary(doc.text)
    chunks = chunk_documents([doc], chunk_size=20, overlap=5, encoding_name="cl100k_base")
    assert [enc.encode_ordinary(c.text) for c in chunks][0] == tokens[:20]
    assert enc.encode_ordinary(chunks[1].text) == tokens[15:35]  # stride = size - overlap
    assert len(chunks) == math.ceil((len(tokens) - 20) / 15) + 1
    assert chunk_documents([DOCS[0]], 256, 32, "cl100k_base")[0].text == DOCS[0].text  # short doc: one chunk


def test_bm25_ranks_the_matching_document_first_and_top_k_limits_chunks():
    r = Retriever(_config(top_k=2), DOCS, "cl100k_base")
    assert r.retrieve("forgot password reset")[0] == "reset"
    assert r.retrieve("refund to my card") == ["refund"]  # only documents that share a term score
    small = Retriever(_config(chunk_size=4, overlap=0, top_k=1), DOCS, "cl100k_base")
    assert len(small.retrieve("reset password export archive refund")) == 1


def test_metrics_hit_recall_mrr_ndcg():
    m = retrieval_metrics(["x", "a", "b"], ["a", "b"], k=3)
    assert m["hit_at_k"] == 1.0 and m["recall_at_k"] == 1.0 and m["mrr"] == 0.5
    ideal = 1 + 1 / math.log2(3)
    assert m["ndcg_at_k"] == pytest.approx((1 / math.log2(3) + 1 / math.log2(4)) / ideal)
    assert retrieval_metrics(["x", "a", "b"], ["a", "b"], k=1) == {
        "hit_at_k": 0.0, "recall_at_k": 0.0, "mrr": 0.0, "ndcg_at_k": 0.0}


def test_vector_index_uses_recorded_embeddings_keyed_like_chat_recordings(tmp_path):
    provider = EmbeddingProvider("recorded", "text-embedding-3-small", tmp_path, "kb")
    axis = {"reset": [1.0, 0.0, 0.0], "refund": [0.0, 1.0, 0.0], "export": [0.0, 0.0, 1.0]}
    for d in DOCS:
        provider.write(d.text, axis[d.id])
    provider.write("I forgot my password", [0.9, 0.1, 0.0])
    r = Retriever(_config("vector", top_k=2), DOCS, "cl100k_base", provider)
    assert r.retrieve("I forgot my password") == ["reset", "refund"]
    assert provider.path("I forgot my password").parent == tmp_path / "kb"


def test_a_missing_embedding_recording_is_an_error_naming_the_file(tmp_path):
    provider = EmbeddingProvider("recorded", "text-embedding-3-small", tmp_path, "kb")
    with pytest.raises(EmbeddingError, match=r"no embedding recording .* \(expected .*/kb/[0-9a-f]{24}\.json\)"):
        Retriever(_config("vector"), DOCS, "cl100k_base", provider)
