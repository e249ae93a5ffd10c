"""32 clients at once over real gRPC on loopback, against the tiny listwise
model: each gets exactly what it gets alone, while the scheduler batches."""

from __future__ import annotations

import random
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest

from rerank_bridge.proto.v1 import rerank_pb2 as pb
from rerank_bridge.proto.v1 import rerank_pb2_grpc
from rerank_bridge.server.app import BackgroundServer
from support.in_process import start_server

WORDS = "protein cell river city search engine query passage energy mountain gene water history".split()


def random_request(seed: int) -> pb.RerankRequest:
    rng = random.Random(seed)
    count = rng.randint(1, 12)
    documents = [
        pb.Document(id=f"{seed}-{i}", text=" ".join(rng.choices(WORDS, k=rng.randint(3, 40))))
        for i in range(count)
    ]
    # Some requests repeat a passage: duplicates must keep distinct results.
    if count > 2:
        documents[-1].text = documents[0].text
    return pb.RerankRequest(query=" ".join(rng.choices(WORDS, k=rng.randint(1, 6))), documents=documents)


@pytest.fixture(scope="module")
def listwise_server(listwise_dir: Path) -> Iterator[BackgroundServer]:
    # Three documents per pass: most requests span several blocks.
    server = start_server(model=str(listwise_dir), embed_model="none", max_documents_per_pass=3)
    yield server
    server.stop()


def test_32_parallel_clients_get_the_scores_they_get_alone(listwise_server: BackgroundServer) -> None:
    requests = [random_request(seed) for seed in range(32)]
    with grpc.insecure_channel(listwise_server.address) as channel:
        stub = rerank_pb2_grpc.RerankerStub(channel)
        alone = [stub.Rerank(r, timeout=60) for r in requests]
    scheduler = listwise_server.server.runtime.loaded.rerank_scheduler  # type: ignore[union-attr]
    scheduler.recent_batches.clear()

    def call(request: pb.RerankRequest) -> pb.RerankResponse:
        # One channel per client, as 32 separate applications would have.
        with grpc.insecure_channel(listwise_server.address) as own:
            return rerank_pb2_grpc.RerankerStub(own).Rerank(request, timeout=60)

    with ThreadPoolExecutor(max_workers=32) as pool:
        together = list(pool.map(call, requests))

    for request, single, parallel in zip(requests, alone, together, strict=True):
        assert sorted(r.index for r in parallel.results) == list(range(len(request.documents)))
        by_index = {r.index: r for r in single.results}
        for result in parallel.results:
            assert result.id == request.documents[result.index].id
            assert result.score == pytest.approx(by_index[result.index].score, abs=1e-5)
    assert max(scheduler.recent_batches) > 1, "concurrent requests were never batched"


def test_truncation_over_grpc_reports_usage(listwise_server: BackgroundServer) -> None:
    request = pb.RerankRequest(
        query="protein",
        documents=[pb.Document(id="long", text="protein cell " * 500), pb.Document(id="s", text="gene")],
    )
    request.max_document_tokens = 16
    with grpc.insecure_channel(listwise_server.address) as channel:
        response = rerank_pb2_grpc.RerankerStub(channel).Rerank(request, timeout=60)
    assert {r.id: r.truncated for r in response.results} == {"long": True, "s": False}
    assert response.usage.truncated_documents == 1
