"""The rerank.v1 service over real gRPC on loopback: bad input gets the right
status and a message naming the field, and the server keeps serving."""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from rerank_bridge.proto.v1 import rerank_pb2 as pb
from rerank_bridge.proto.v1 import rerank_pb2_grpc
from rerank_bridge.server.app import BackgroundServer
from rerank_bridge.server.config import ServerConfig
from support.in_process import start_server

Stub = rerank_pb2_grpc.RerankerStub


def docs(*texts: str) -> list[pb.Document]:
    return [pb.Document(id=f"id{i}", text=t) for i, t in enumerate(texts)]


def good_request() -> pb.RerankRequest:
    return pb.RerankRequest(
        query="river city", documents=docs("the river", "a city by the river", "mountains")
    )


def assert_still_serving(stub: Stub) -> None:
    response = stub.Rerank(good_request(), timeout=10)
    assert [r.id for r in response.results] == ["id1", "id0", "id2"]


def test_rerank_returns_every_document_once_sorted_with_usage(fake_stub: Stub) -> None:
    response = fake_stub.Rerank(good_request(), timeout=10)
    assert sorted(r.index for r in response.results) == [0, 1, 2]
    assert [r.score for r in response.results] == sorted((r.score for r in response.results), reverse=True)
    assert response.model == "fake"
    assert response.usage.sequences == 3 and response.usage.query_tokens == 2
    assert response.timings.total_ms >= response.timings.compute_ms > 0


def test_top_n_keeps_the_best(fake_stub: Stub) -> None:
    request = good_request()
    request.top_n = 1
    assert [r.id for r in fake_stub.Rerank(request, timeout=10).results] == ["id1"]


def test_equal_scores_keep_input_order(fake_stub: Stub) -> None:
    request = pb.RerankRequest(query="zzz", documents=docs("a", "b", "c", "d"))
    assert [r.index for r in fake_stub.Rerank(request, timeout=10).results] == [0, 1, 2, 3]


BAD_REQUESTS = {
    "empty query": (pb.RerankRequest(query="  ", documents=docs("a")), "INVALID_ARGUMENT", "query"),
    "no documents": (pb.RerankRequest(query="q"), "INVALID_ARGUMENT", "documents"),
    "too many documents": (
        pb.RerankRequest(query="q", documents=docs(*"abcdef")),
        "INVALID_ARGUMENT",
        "documents: holds 6 documents; the limit is 5",
    ),
    "empty document text": (
        pb.RerankRequest(query="q", documents=docs("a", "")),
        "INVALID_ARGUMENT",
        "documents[1].text",
    ),
    "missing id": (
        pb.RerankRequest(query="q", documents=[pb.Document(text="a")]),
        "INVALID_ARGUMENT",
        "documents[0].id",
    ),
    "duplicate id": (
        pb.RerankRequest(query="q", documents=[pb.Document(id="x", text="a"), pb.Document(id="x", text="b")]),
        "INVALID_ARGUMENT",
        "documents[1].id: 'x' repeats documents[0].id",
    ),
    "top_n zero": (pb.RerankRequest(query="q", documents=docs("a"), top_n=0), "INVALID_ARGUMENT", "top_n"),
    "top_n negative": (
        pb.RerankRequest(query="q", documents=docs("a"), top_n=-2),
        "INVALID_ARGUMENT",
        "top_n",
    ),
    "top_n too big": (
        pb.RerankRequest(query="q", documents=docs("a", "b"), top_n=3),
        "INVALID_ARGUMENT",
        "top_n",
    ),
    "query cap over limit": (
        pb.RerankRequest(query="q", documents=docs("a"), max_query_tokens=100_000),
        "INVALID_ARGUMENT",
        "max_query_tokens",
    ),
    "document cap zero": (
        pb.RerankRequest(query="q", documents=docs("a"), max_document_tokens=0),
        "INVALID_ARGUMENT",
        "max_document_tokens",
    ),
    "unknown model": (pb.RerankRequest(query="q", documents=docs("a"), model="nope"), "NOT_FOUND", "model"),
    "message over the size limit": (
        pb.RerankRequest(query="q", documents=docs("x" * 70_000)),
        "RESOURCE_EXHAUSTED",
        "",
    ),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS), ids=list(BAD_REQUESTS))
def test_bad_input_is_refused_by_field_and_the_server_survives(fake_stub: Stub, case: str) -> None:
    request, status, message = BAD_REQUESTS[case]
    with pytest.raises(grpc.RpcError) as raised:
        fake_stub.Rerank(request, timeout=10)
    assert raised.value.code() == grpc.StatusCode[status]
    assert message in raised.value.details()
    assert_still_serving(fake_stub)


def test_long_documents_are_truncated_not_refused(fake_stub: Stub) -> None:
    request = pb.RerankRequest(query="word", documents=docs("word " * 3000, "word"), max_document_tokens=100)
    response = fake_stub.Rerank(request, timeout=10)
    truncated = {r.index: r.truncated for r in response.results}
    assert truncated == {0: True, 1: False}
    assert response.usage.truncated_documents == 1
    assert response.usage.document_tokens == 101


def test_embed_returns_one_vector_per_text(fake_stub: Stub) -> None:
    response = fake_stub.Embed(pb.EmbedRequest(texts=["a b", "c"]), timeout=10)
    assert len(response.embeddings) == 2 and response.dimensions == 64
    with pytest.raises(grpc.RpcError) as raised:
        fake_stub.Embed(pb.EmbedRequest(texts=["a", " "]), timeout=10)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "texts[1]" in raised.value.details()


def test_model_info_reports_kind_and_limits(fake_stub: Stub) -> None:
    info = fake_stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=10)
    assert (info.model_id, info.kind, info.device) == ("fake", "fake", "cpu")
    assert info.limits.max_documents_per_request == 5
    assert info.limits.max_message_bytes == 64 * 1024
    assert info.embed_dimensions == 64


def test_reflection_lists_the_services(fake_server: BackgroundServer) -> None:
    with grpc.insecure_channel(fake_server.address) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        (answer,) = list(stub.ServerReflectionInfo(iter([request]), timeout=10))
    names = {s.name for s in answer.list_services_response.service}
    assert {"rerank.v1.Reranker", "grpc.health.v1.Health"} <= names


def test_health_is_not_serving_until_warm_up_ends() -> None:
    server = BackgroundServer(ServerConfig(model="fake?warmup_s=1.5", port=0))
    server.start(wait_ready=False)
    try:
        with grpc.insecure_channel(server.address) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            check = health_pb2.HealthCheckRequest(service="rerank.v1.Reranker")
            assert health.Check(check, timeout=5).status == health_pb2.HealthCheckResponse.NOT_SERVING
            with pytest.raises(grpc.RpcError) as raised:
                Stub(channel).Rerank(good_request(), timeout=5)
            assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
            server.wait_ready(timeout=30)
            assert health.Check(check, timeout=5).status == health_pb2.HealthCheckResponse.SERVING
            assert health.Check(health_pb2.HealthCheckRequest(), timeout=5).status == (
                health_pb2.HealthCheckResponse.SERVING
            )
            assert_still_serving(Stub(channel))
    finally:
        server.stop()


def test_a_deadline_that_passes_in_the_queue_gives_deadline_exceeded() -> None:
    server = start_server(model="fake?forward_s=0.5", max_batch_sequences=3)
    try:
        with grpc.insecure_channel(server.address) as channel:
            stub = Stub(channel)
            busy = stub.Rerank.future(good_request(), timeout=10)
            with pytest.raises(grpc.RpcError) as raised:
                stub.Rerank(good_request(), timeout=0.2)
            assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            assert len(busy.result().results) == 3
    finally:
        server.stop()


@pytest.mark.parametrize("given", ["a b", "x code=OK", "y" * 129, 'quote"d'])
def test_a_request_id_that_is_not_a_clean_token_is_replaced_in_the_log(
    fake_stub: Stub, given: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("INFO", logger="rerank_bridge.server.interceptor"):
        fake_stub.Rerank(good_request(), timeout=10, metadata=[("x-request-id", given)])
        fake_stub.Rerank(good_request(), timeout=10, metadata=[("x-request-id", "trace-7")])
    lines = [record.getMessage() for record in caplog.records if "method=Rerank" in record.getMessage()]
    assert len(lines) == 2 and lines[1].startswith("request_id=trace-7 ")
    fresh = lines[0].split()[0].removeprefix("request_id=")
    assert len(fresh) == 32 and fresh.isalnum() and given not in lines[0]
