"""The sync client and connector, generated from _async/ (see rerank_bridge.devtools.unasync)."""
