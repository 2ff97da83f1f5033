"""Benchmark the guardrail engine (cases/s) and the RAG retriever (index build, queries/s), with the load.

Run: python bench/bench_types.py. Goals on this machine: the guardrail engine >= 20,000 cases/s;
the sample rag eval (retriever build + all golden queries, without promptfoo's start) < 2 s.
"""

from __future__ import annotations

import os
import random
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.measure import quick  # noqa: E402
from config.artifacts import GuardrailPolicyArtifact, RagConfigArtifact, RagDocument  # noqa: E402
from steps.artifact_files import load_artifact  # noqa: E402
from steps.datasets import read_guardrail_cases, read_rag_dataset  # noqa: E402
from steps.guardrails.engine import PolicyEngine  # noqa: E402
from steps.rag.retriever import Retriever, retrieval_metrics  # noqa: E402


def main() -> None:
    print(f"load average: {os.getloadavg()}")
    policy = load_artifact(REPO / "guardrails/pii-and-injection.yaml", REPO).artifact
    assert isinstance(policy, GuardrailPolicyArtifact)
    engine = PolicyEngine(policy, classifier=lambda text, cats: set())  # pattern rules only: the engine's own cost
    cases = read_guardrail_cases(REPO / "evals/pii-and-injection/golden.yaml")
    size = 1_000 if quick() else 10_000  # BENCH_QUICK=1: smoke sizes
    many = [cases[i % len(cases)] for i in range(size)]
    t, cpu = time.perf_counter(), time.process_time()
    for c in many:
        engine.evaluate(c.input, c.output)
    dt, dcpu = time.perf_counter() - t, time.process_time() - cpu
    # CPU time counts only while this process ran: on a shared, loaded machine it is the closer
    # estimate of an idle core; wall time is what this run saw.
    print(f"guardrail engine: {len(many)} cases in {dt:.3f}s wall = {len(many) / dt:,.0f} cases/s; "
          f"{dcpu:.3f}s CPU = {len(many) / dcpu:,.0f} cases/s per CPU-second (goal >= 20,000)")

    rag = load_artifact(REPO / "rag-configs/kb-search.yaml", REPO).artifact
    assert isinstance(rag, RagConfigArtifact)
    data = read_rag_dataset(REPO / "evals/kb-search/golden.yaml")
    t, cpu = time.perf_counter(), time.process_time()
    r = Retriever(rag, data.documents, "cl100k_base")
    for q in data.queries:
        retrieval_metrics(r.retrieve(q.query), q.relevant, rag.top_k)
    print(f"rag sample (retriever build + {len(data.queries)} queries, first use: imports and encoding "
          f"load included): {time.perf_counter() - t:.3f}s wall, {time.process_time() - cpu:.3f}s CPU (goal < 2 s)")

    rnd = random.Random(7)
    words = [w for d in data.documents for w in d.text.split()]
    docs = [RagDocument(id=f"d{i}", text=" ".join(rnd.choices(words, k=120))) for i in range(size)]
    t = time.perf_counter()
    big = Retriever(rag, docs, "cl100k_base")
    build = time.perf_counter() - t
    print(f"load average now: {os.getloadavg()}")
    queries = [q.query for q in data.queries] * 10
    t = time.perf_counter()
    for text in queries:
        big.retrieve(text)
    qdt = time.perf_counter() - t
    print(f"rag {size:,} docs: {len(big.chunks)} chunks indexed in {build:.2f}s; "
          f"{len(queries) / qdt:,.0f} queries/s")


if __name__ == "__main__":
    main()
