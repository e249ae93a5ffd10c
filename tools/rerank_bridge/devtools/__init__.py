"""Developer tools: the local engine launcher, the tiny random models and the offline
Qwen3 vocabulary builder. The tests, benchmarks and demo use them; no runtime module
imports them (tests/layers/test_layers.py holds that line)."""
