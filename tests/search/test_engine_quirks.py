"""Engine behaviour this project works around, kept as tests so that an engine
upgrade which fixes or changes it shows up here rather than in users' searches."""

from __future__ import annotations

from typing import Any

import pytest

from rerank_bridge.evaluation.indexing import index_mapping
from support.live_fixtures import Engine

pytestmark = pytest.mark.live


@pytest.mark.engines("opensearch")
def test_a_scroll_over_derived_vector_source_breaks_later_searches_on_opensearch_3(engine: Engine) -> None:
    """Why index_mapping turns k-NN's derived source off on OpenSearch 3.x: with it
    on, one scroll over the index leaves every later search that fetches _source
    failing with 503 (all shards failed, no shard named)."""
    client = engine.client
    assert int(client.info()["version"]["number"].split(".")[0]) >= 3, "the newest row runs OpenSearch 3"
    mapping = index_mapping(client, 4, {"text": {"type": "text"}})
    assert mapping["settings"]["index.knn.derived_source.enabled"] is False
    results: dict[bool, Any] = {}
    for derived in (False, True):
        name = f"{engine.index}-derived-{str(derived).lower()}"
        body = {**mapping, "settings": {**mapping["settings"], "index.knn.derived_source.enabled": derived}}
        client.indices.create(index=name, body=body)
        docs = [{"text": f"doc {i}", "vector": [1.0, 0.0, 0.0, float(i)]} for i in range(50)]
        for i, doc in enumerate(docs):
            client.index(index=name, id=str(i), body=doc)
        client.indices.refresh(index=name)
        page = client.search(
            index=name, body={"query": {"match_all": {}}}, params={"scroll": "1m", "size": 20}
        )
        client.clear_scroll(body={"scroll_id": [page["_scroll_id"]]})
        try:
            results[derived] = len(client.search(index=name, body={"size": 10})["hits"]["hits"])
        except Exception as error:
            results[derived] = getattr(error, "status_code", error)
        client.indices.delete(index=name)
    assert results == {False: 10, True: 503}
