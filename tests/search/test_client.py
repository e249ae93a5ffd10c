"""The light gRPC clients against a real server, and the promise that
importing the connectors does not drag torch in."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import grpc
import pytest

from rerank_bridge.search import AsyncRerankClient, RerankClient
from rerank_bridge.server.app import BackgroundServer

DOCS = [("a", "the river"), ("b", "a city by the river"), ("c", "mountains")]


def test_sync_client_reranks_embeds_and_reports(fake_server: BackgroundServer) -> None:
    with RerankClient(fake_server.address) as client:
        ranking = client.rerank("river city", DOCS, top_n=2)
        assert [d.id for d in ranking.documents] == ["b", "a"]
        assert ranking.model == "fake" and ranking.usage.sequences == 3
        assert len(client.embed(["one", "two"])) == 2
        assert client.model_info().kind == "fake"
        with pytest.raises(grpc.RpcError) as raised:
            client.rerank("", DOCS)
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_async_client_matches_the_sync_one(fake_server: BackgroundServer) -> None:
    async def scenario() -> list[str]:
        async with AsyncRerankClient(fake_server.address) as client:
            ranking = await client.rerank("river city", DOCS)
            return [d.id for d in ranking.documents]

    assert asyncio.run(scenario()) == ["b", "a", "c"]


def test_importing_the_connectors_does_not_import_torch() -> None:
    code = "import sys, rerank_bridge.search; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
