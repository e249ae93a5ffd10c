"""Points an engine's own reranking at rerank-bridge's `/v2/rerank`: on OpenSearch
an ml-commons connector, a deployed remote model and a search pipeline with the
`rerank` processor (and a hybrid normalization or RRF processor when asked); on
Elasticsearch a `custom` rerank inference endpoint. Idempotent: a second run
with the same definition changes nothing (`rerank-bridge wire`)."""
