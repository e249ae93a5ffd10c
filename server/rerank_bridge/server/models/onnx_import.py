"""Importing an encoder someone else exported to ONNX: a graph whose output is every
token's hidden state (`last_hidden_state`, [batch, sequence, hidden]), as Optimum,
transformers.js and LangChain4j publish them. The import adds what the graph lacks,
the pooling and normalisation the model was trained with and its prompts, to the
manifest of an exported folder (backends/onnx_bundle.py), so `rerank-bridge serve`
runs it without torch. The graph is copied byte for byte.

    rerank-bridge models import-onnx --graph model.onnx --tokenizer tokenizer.json \\
        --pooling cls --query-prompt "Represent this sentence ..." --out DIR
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rerank_bridge.server import __version__
from rerank_bridge.server.backends import onnx_bundle
from rerank_bridge.server.backends.runners import POOLINGS
from rerank_bridge.server.domain import Prompts

HIDDEN_STATES = "last_hidden_state"
# Pad tokens by the names tokenizers give them (BERT's WordPiece, SentencePiece).
PAD_TOKENS = ("[PAD]", "<pad>")
NO_PROMPTS = Prompts()


def _graph_signature(graph: Path) -> tuple[list[str], int]:
    """The graph's inputs and hidden size; refuses a graph that does not give every
    token's hidden state."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
    outputs = {output.name: output.shape for output in session.get_outputs()}
    shape = outputs.get(HIDDEN_STATES)
    if shape is None or len(shape) != 3 or not isinstance(shape[2], int):
        raise ValueError(
            f"{graph}: the graph must give {HIDDEN_STATES} [batch, sequence, hidden]; it gives {outputs}"
        )
    inputs = [i.name for i in session.get_inputs()]
    if "input_ids" not in inputs:
        raise ValueError(f"{graph}: the graph reads {inputs}, not input_ids")
    known = {"input_ids", "attention_mask", "token_type_ids"}
    if unknown := sorted(set(inputs) - known):
        raise ValueError(f"{graph}: inputs {unknown} are not ones a tokenizer gives ({sorted(known)})")
    return inputs, int(shape[2])


def _tokenizer_json(tokenizer: Path, lowercase: bool | None) -> tuple[str, int]:
    """The tokenizer, without padding or truncation settings (the server cuts texts
    itself) and with its casing pinned where asked; and its pad id."""
    from tokenizers import Tokenizer

    document = json.loads(tokenizer.read_text(encoding="utf-8"))
    normalizer = document.get("normalizer") or {}
    if lowercase is not None:
        if normalizer.get("type") != "BertNormalizer":
            raise ValueError(f"{tokenizer}: casing can only be pinned on a BertNormalizer")
        normalizer["lowercase"] = lowercase
    document["padding"] = None
    document["truncation"] = None
    text = json.dumps(document, ensure_ascii=False)
    loaded = Tokenizer.from_str(text)
    pad_id = next((loaded.token_to_id(t) for t in PAD_TOKENS if loaded.token_to_id(t) is not None), 0)
    return text, int(pad_id or 0)


def import_encoder(
    graph: Path,
    tokenizer: Path,
    out: Path,
    *,
    model_id: str,
    pooling: str,
    normalize: bool = True,
    prompts: Prompts = NO_PROMPTS,
    max_length: int = 512,
    lowercase: bool | None = None,
    precision: str = "float32",
) -> dict[str, Any]:
    """Writes the exported folder and returns its manifest. `precision` is what the
    graph computes in, as its publisher says (float32, or int8 for a quantised one)."""
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")
    inputs, hidden = _graph_signature(graph)
    tokenizer_text, pad_id = _tokenizer_json(tokenizer, lowercase)
    manifest = {
        "format": onnx_bundle.FORMAT,
        "kind": "bi-encoder",
        "model_id": model_id,
        "precision": precision,
        "max_length": max_length,
        "pad_id": pad_id,
        "model_input_names": inputs,
        "embed_dimensions": hidden,
        "prompts": prompts.as_dict(),
        "pooling": {"kind": pooling, "normalize": normalize},
        "exported_with": {"rerank-bridge": __version__, "imported_from": graph.name},
    }
    onnx_bundle.write_folder(out, graph, tokenizer_text, manifest)
    return manifest
