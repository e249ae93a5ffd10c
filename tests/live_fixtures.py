"""Fixtures for tests against real Elasticsearch and OpenSearch nodes.

An engine is found, in this order: a URL in ES_URL / OS_URL; testcontainers
when a Docker engine answers; a local JVM node from Maven Central
(tools/local_engines.py). Outside CI a missing engine skips with the reason;
in CI (CI=true) it fails the run.

The corpus is real: XQuAD-R English and German answer sentences from
shared/data, with all-MiniLM-L6-v2 vectors from the scoring server's Embed
(cached on disk, keyed by the texts and the model).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from rerank_connectors import RerankClient, local_engines
from rerank_connectors.dialects import bulk_helper, engine_client
from rerank_connectors.evaluation.indexing import index_mapping
from rerank_server.app import BackgroundServer
from rerank_server.config import ServerConfig

ROOT = Path(__file__).resolve().parent.parent

DATA = ROOT.parent / "shared" / "data" / "xquad-r"
LANGUAGES = ("en", "de")
URL_VARIABLES = {"elasticsearch": "ES_URL", "opensearch": "OS_URL"}
IMAGES = {
    "elasticsearch": "docker.elastic.co/elasticsearch/elasticsearch",
    "opensearch": "opensearchproject/opensearch",  # the official image bundles ml-commons and neural-search
}


def unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"live engine required in CI: {reason}", pytrace=False)
    pytest.skip(reason)


@dataclass
class Corpus:
    docs: list[dict[str, Any]]
    vectors: list[list[float]]
    queries: list[dict[str, Any]]


@dataclass
class Engine:
    kind: str
    url: str
    client: Any
    index: str

    def async_client(self) -> Any:
        if self.kind == "elasticsearch":
            from elasticsearch import AsyncElasticsearch

            return AsyncElasticsearch(self.url)
        from opensearchpy import AsyncOpenSearch

        return AsyncOpenSearch(self.url)


@pytest.fixture(scope="session")
def rerank_server() -> Iterator[BackgroundServer]:
    """The offline default model: reranks and embeds."""
    server = BackgroundServer(ServerConfig(port=0)).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def reranker(rerank_server: BackgroundServer) -> Iterator[RerankClient]:
    with RerankClient(rerank_server.address, timeout=120) as client:
        yield client


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.open(encoding="utf-8")]


@pytest.fixture(scope="session")
def corpus(reranker: RerankClient) -> Corpus:
    if not DATA.exists():
        unavailable(f"evaluation data not found at {DATA}")
    docs = [doc for lang in LANGUAGES for doc in _read_jsonl(DATA / lang / "corpus.jsonl")]
    queries = _read_jsonl(DATA / "en" / "queries.jsonl")
    texts = [doc["text"] for doc in docs]
    model = reranker.model_info().embed_model_id
    key = hashlib.sha256(("\n".join(texts) + model).encode()).hexdigest()[:16]
    cache = local_engines.engine_home().parent / "vectors" / f"xquad-{key}.json"
    if cache.exists():
        vectors = json.loads(cache.read_text())
    else:
        vectors = [
            v for start in range(0, len(texts), 128) for v in reranker.embed(texts[start : start + 128])
        ]
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(vectors))
    return Corpus(docs, vectors, queries)


def _docker_answers() -> bool:
    try:
        import docker

        docker.from_env().ping()
    except Exception:
        return False
    return True


@pytest.fixture(scope="session")
def engine_url(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    kind: str = request.param
    if url := os.environ.get(URL_VARIABLES[kind]):
        yield kind, url
        return
    with running_engine(kind) as url:
        yield kind, url


@contextlib.contextmanager
def running_engine(name: str) -> Iterator[str]:
    """A release (or a kind's default release, the one matching the installed client) in
    a container where a Docker engine answers, else as a local JVM node; yields its URL."""
    release = local_engines.release_for(name)
    if _docker_answers():
        from testcontainers.elasticsearch import ElasticSearchContainer
        from testcontainers.opensearch import OpenSearchContainer

        image = f"{IMAGES[release.kind]}:{release.version}"
        container = (
            ElasticSearchContainer(image) if release.kind == "elasticsearch" else OpenSearchContainer(image)
        )
        with container:
            yield container.get_url()
        return
    try:
        node = local_engines.start(release.name)
    except Exception as error:
        unavailable(f"cannot start a local {release.name} node: {error}")
    try:
        yield node.url
    finally:
        node.stop()


@pytest.fixture(scope="session")
def engine(engine_url: tuple[str, str], corpus: Corpus) -> Iterator[Engine]:
    with indexed_corpus(*engine_url, corpus) as indexed:
        yield indexed


@contextlib.contextmanager
def indexed_corpus(kind: str, url: str, corpus: Corpus) -> Iterator[Engine]:
    """A fresh index of the corpus (text, language, article, vector), deleted afterwards."""
    client = engine_client(kind, url)
    index = f"rerank-bridge-test-{uuid.uuid4().hex[:8]}"
    properties = {"text": {"type": "text"}, "lang": {"type": "keyword"}, "article": {"type": "keyword"}}
    client.indices.create(index=index, body=index_mapping(client, len(corpus.vectors[0]), properties))
    actions = [
        {
            "_index": index,
            "_id": doc["_id"],
            "_source": {
                "text": doc["text"],
                "lang": doc["metadata"]["lang"],
                "article": doc["metadata"]["article"],
                "vector": vector,
            },
        }
        for doc, vector in zip(corpus.docs, corpus.vectors, strict=True)
    ]
    bulk_helper(kind)(client, actions, chunk_size=500, refresh=True)
    yield Engine(kind, url, client, index)
    client.indices.delete(index=index)
    client.close()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # Every test that uses an engine runs against both engines, unless marked
    # @pytest.mark.engines("elasticsearch") (or another subset).
    if "engine_url" in metafunc.fixturenames:
        marker = metafunc.definition.get_closest_marker("engines")
        kinds = list(marker.args) if marker else list(local_engines.KINDS)
        metafunc.parametrize("engine_url", kinds, indirect=True, scope="session")
