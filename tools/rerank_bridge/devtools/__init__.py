"""Developer tools: the engine launchers (local_engines: JVM nodes from Maven Central;
engine_containers: nodes, clusters and this project's images through testcontainers),
the tiny random models and the offline Qwen3 vocabulary builder. The tests, benchmarks
and demo use them; no runtime module imports them (tests/layers/test_layers.py holds
that line)."""
