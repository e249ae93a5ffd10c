"""`rerank-bridge eval`: measure first stages with and without reranking on a BEIR-layout collection."""
