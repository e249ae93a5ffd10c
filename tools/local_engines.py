"""Command-line entry to rerank_bridge.devtools.local_engines (fetch or start an engine node)."""

from rerank_bridge.devtools.local_engines import main

if __name__ == "__main__":
    main()
