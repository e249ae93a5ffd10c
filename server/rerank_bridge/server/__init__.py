"""rerank-bridge scoring server: hosts a reranker behind the rerank.v1 gRPC contract."""

__version__ = "0.1.0"
