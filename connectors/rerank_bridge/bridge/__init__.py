"""The HTTP bridge: looks like the engine to an application, reranks its searches."""
