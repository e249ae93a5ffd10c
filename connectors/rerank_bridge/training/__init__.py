"""`rerank-bridge train`: fitting a reranker to the user's judgments (command.py says how)."""
