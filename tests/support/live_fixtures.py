"""Fixtures for tests against real Elasticsearch and OpenSearch nodes.

An engine is found, in this order: a URL in ES_URL / OS_URL; else as
$RERANK_ENGINES says:
- `auto` (the default): a container through testcontainers where a Docker engine
  answers and the release's image is here or can be pulled, else a local JVM node
  from Maven Central (tools/local_engines.py). When Docker answers but the image
  cannot be had, the run says so once and uses the local node; in CI (CI=true) it
  stops instead, with one failure naming the image.
- `containers`: a container, or one failure saying why not.
- `local`: a local JVM node.
Outside CI a missing engine skips with the reason; in CI it fails the run.

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

from rerank_bridge.devtools import checkout, local_engines
from rerank_bridge.evaluation.indexing import index_mapping
from rerank_bridge.search import RerankClient
from rerank_bridge.search.dialects import DIALECTS
from rerank_bridge.server.app import BackgroundServer
from rerank_bridge.server.config import BUILTIN_MINILM, ServerConfig

DATA = checkout.shared_data("xquad-r")
LANGUAGES = ("en", "de")
URL_VARIABLES = {"elasticsearch": "ES_URL", "opensearch": "OS_URL"}
ENGINE_SOURCES = ("auto", "containers", "local")
# What the run has to say about where its engines run (a fallback, once each), printed
# in the terminal summary: pytest captures both streams while fixtures run.
_SAID: list[str] = []


def in_ci() -> bool:
    return os.environ.get("CI") == "true"


def unavailable(reason: str) -> None:
    if in_ci():
        pytest.fail(f"live engine required in CI: {reason}", pytrace=False)
    pytest.skip(reason)


def engine_source() -> str:
    source = os.environ.get("RERANK_ENGINES", "auto")
    if source not in ENGINE_SOURCES:
        pytest.exit(f"RERANK_ENGINES={source!r}: use one of {', '.join(ENGINE_SOURCES)}", returncode=4)
    return source


def say_once(message: str) -> None:
    """A line for the terminal summary, once per run."""
    if message not in _SAID:
        _SAID.append(message)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _SAID:
        terminalreporter.section("live engines")
        for message in _SAID:
            terminalreporter.write_line(message)


@dataclass
class Corpus:
    docs: list[dict[str, Any]]
    vectors: list[list[float]]
    queries: list[dict[str, Any]]
    # The model that made `vectors` (the index's mapping records it).
    model: str = ""


@dataclass
class Engine:
    kind: str
    url: str
    client: Any
    index: str
    origin: str = ""  # the image it runs, or the local node's release

    def async_client(self) -> Any:
        if self.kind == "elasticsearch":
            from elasticsearch import AsyncElasticsearch

            return AsyncElasticsearch(self.url)
        from opensearchpy import AsyncOpenSearch

        return AsyncOpenSearch(self.url)


@pytest.fixture(scope="session")
def scoring_server() -> Iterator[BackgroundServer]:
    """The packaged MiniLM: reranks and embeds, twice as fast as the default model on a CPU.
    These tests are about behaviour; the default's quality is measured by `eval`
    (docs/evaluation.md) and its serving tested in tests/server/test_builtin_models.py."""
    server = BackgroundServer(ServerConfig(model=BUILTIN_MINILM, port=0)).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def reranker(scoring_server: BackgroundServer) -> Iterator[RerankClient]:
    with RerankClient(scoring_server.address, timeout=120) as client:
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
    return Corpus(docs, vectors, queries, model)


@dataclass(frozen=True)
class EngineAt:
    kind: str
    url: str
    origin: str


@pytest.fixture(scope="session")
def engine_url(request: pytest.FixtureRequest) -> Iterator[EngineAt]:
    kind: str = request.param
    if url := os.environ.get(URL_VARIABLES[kind]):
        yield EngineAt(kind, url, f"{URL_VARIABLES[kind]}={url}")
        return
    with running_engine(kind) as running:
        yield running


def _container_or_why_not(release: local_engines.Release) -> str | None:
    """None when a container of the release can run here; else why not (said or failed
    as $RERANK_ENGINES and CI ask)."""
    from rerank_bridge.devtools.engine_containers import image_for, why_no_containers

    image = image_for(release)
    why = why_no_containers([image])
    if why is None:
        return None
    if engine_source() == "containers":
        pytest.exit(f"RERANK_ENGINES=containers, but {why}", returncode=3)
    if why != "no Docker engine answers":  # Docker is here, the image is not
        if in_ci():
            pytest.exit(f"live engines in CI: a Docker engine answers, but {why}", returncode=3)
        say_once(f"{why}: using a local {release.name} node instead")
    return why


@contextlib.contextmanager
def running_engine(name: str) -> Iterator[EngineAt]:
    """A release (or a kind's default release, the one matching the installed client) in
    a container or as a local JVM node, as $RERANK_ENGINES says; yields where it answers."""
    release = local_engines.release_for(name)
    if engine_source() != "local" and _container_or_why_not(release) is None:
        from rerank_bridge.devtools.engine_containers import image_for, single_node

        with single_node(release) as url:
            yield EngineAt(release.kind, url, image_for(release))
        return
    try:
        node = local_engines.start(release.name)
    except Exception as error:
        unavailable(f"cannot start a local {release.name} node: {error}")
    try:
        yield EngineAt(release.kind, node.url, f"local node {release.name}")
    finally:
        node.stop()


@pytest.fixture(scope="session")
def engine(engine_url: EngineAt, corpus: Corpus) -> Iterator[Engine]:
    with indexed_corpus(engine_url, corpus) as indexed:
        yield indexed


@contextlib.contextmanager
def indexed_corpus(at: EngineAt, corpus: Corpus, shards: int = 1, replicas: int = 0) -> Iterator[Engine]:
    """A fresh index of the corpus (text, language, article, vector), deleted afterwards."""
    kind, url = at.kind, at.url
    client = DIALECTS[kind].client(url)
    index = f"rerank-bridge-test-{uuid.uuid4().hex[:8]}"
    properties = {"text": {"type": "text"}, "lang": {"type": "keyword"}, "article": {"type": "keyword"}}
    body = index_mapping(client, len(corpus.vectors[0]), properties, vector_model=corpus.model)
    body["settings"] |= {"number_of_shards": shards, "number_of_replicas": replicas}
    client.indices.create(index=index, body=body)
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
    DIALECTS[kind].bulk_helper()(client, actions, chunk_size=500, refresh=True)
    # One segment a shard, merged before any test searches: approximate kNN over several
    # segments searched at once shares its bar between them (Lucene's multi-leaf collector),
    # so two identical kNN searches could return different windows on a busy machine, and a
    # background merge between them could too.
    client.indices.forcemerge(index=index, max_num_segments=1)
    client.indices.refresh(index=index)
    yield Engine(kind, url, client, index, at.origin)
    client.indices.delete(index=index)
    client.close()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # Every test that uses an engine runs against both engines, unless marked
    # @pytest.mark.engines("elasticsearch") (or another subset).
    if "engine_url" in metafunc.fixturenames:
        marker = metafunc.definition.get_closest_marker("engines")
        kinds = list(marker.args) if marker else list(local_engines.KINDS)
        metafunc.parametrize("engine_url", kinds, indirect=True, scope="session")
