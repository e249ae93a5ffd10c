"""Which ONNX exporter gives ONNX Runtime the faster graph: the TorchScript one the
server uses (onnx_export.export, `dynamo=False`) or torch.export's, which it used
before, at float32 and at int8 (the server's dynamic quantisation), on one run's
batches.

    .venv/bin/python bench/onnx_exporters.py [--documents 51] [--repeats 5] [--profile]

The packaged MiniLM's encoder reads SciFact passages as the server groups them
(shortest first, 1,024 padded tokens a call: encodings.run_by_length). Prints JSON:
the median milliseconds of the whole window per graph, and the ratio of each
TorchScript graph to the torch.export one. ONNX Runtime fuses the TorchScript
graph's GELU and layer norms when a session loads it, and not the other's.
`--profile` adds, for the server's int8 graph, ONNX Runtime's own time per operator
type over one pass of the window: how much of it is matrix multiplies.
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModel, AutoTokenizer

from rerank_bridge.devtools import checkout
from rerank_bridge.server.backends import onnx_export
from rerank_bridge.server.backends.encodings import run_by_length
from rerank_bridge.server.backends.registry import builtin_minilm_folder
from rerank_bridge.server.backends.runners import OnnxRunner
from workload import progress


class Encoder(torch.nn.Module):
    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
    ) -> torch.Tensor:
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
        return hidden.last_hidden_state[:, 0]


def torch_export(module: torch.nn.Module, example: dict[str, torch.Tensor], target: Path) -> None:
    """The exporter the server used before: torch.export, dynamic batch and sequence."""
    batch = torch.export.Dim("batch", min=1, max=65536)
    sequence = torch.export.Dim("sequence", min=1, max=65536)
    torch.onnx.export(
        module,
        (),
        str(target),
        kwargs=example,
        input_names=list(example),
        output_names=["output"],
        dynamic_shapes={name: {0: batch, 1: sequence} for name in example},
        dynamo=True,
        opset_version=18,
        verbose=False,
    )


def operator_times(path: Path, encodings: list[dict[str, list[int]]], scratch: str) -> dict[str, float]:
    """Milliseconds per operator type over one pass of the window, from ONNX Runtime's
    profiler (kernel time only), largest first."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.enable_profiling = True
    options.profile_file_prefix = str(Path(scratch) / "profile")
    options.intra_op_num_threads, options.inter_op_num_threads = torch.get_num_threads(), 1
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]

    def run(batch: dict[str, np.ndarray]) -> np.ndarray:
        return np.asarray(session.run(None, {name: batch[name] for name in names})[0])

    run_by_length(run, encodings, 0, OnnxRunner.cpu_group_tokens)
    totals: dict[str, float] = {}
    for event in json.loads(Path(session.end_profiling()).read_text()):
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            operator = event["args"]["op_name"]
            totals[operator] = totals.get(operator, 0.0) + event["dur"] / 1e3
    return {name: round(ms, 1) for name, ms in sorted(totals.items(), key=lambda item: -item[1])}


def passages(count: int) -> list[str]:
    with gzip.open(checkout.shared_data("scifact", "corpus.jsonl.gz"), "rt") as lines:
        texts = [json.loads(line)["text"] for line in lines]
    return [text for text in texts if len(text.split()) >= 150][:count]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--documents", type=int, default=51)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--profile", action="store_true", help="ONNX Runtime's time per operator, int8")
    args = parser.parse_args()
    folder = builtin_minilm_folder()
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    module = Encoder(AutoModel.from_pretrained(str(folder), attn_implementation="eager")).eval()
    tokenized = tokenizer(passages(args.documents), truncation=True, max_length=256).encodings
    encodings = [
        {"input_ids": e.ids, "attention_mask": e.attention_mask, "token_type_ids": e.type_ids}
        for e in tokenized
    ]
    example = {
        name: torch.tensor([[1, 2, 3, 4], [1, 2, 0, 0]])
        if name != "token_type_ids"
        else torch.zeros(2, 4, dtype=torch.long)
        for name in ("input_ids", "attention_mask", "token_type_ids")
    }
    with tempfile.TemporaryDirectory() as scratch:
        graphs = {
            "torch_export": Path(scratch) / "dynamo.onnx",
            "torchscript": Path(scratch) / "torchscript.onnx",
        }
        progress("exporting both ways")
        torch_export(module, example, graphs["torch_export"])
        onnx_export.export(module, example, "output", graphs["torchscript"])
        for name in list(graphs):
            graphs[f"{name}_int8"] = graphs[name].with_suffix(".int8.onnx")
            onnx_export.quantize_int8(graphs[name], graphs[f"{name}_int8"])
        runners = {name: OnnxRunner(path, torch.get_num_threads()) for name, path in graphs.items()}
        outputs = {name: run_by_length(r, encodings, 0, r.cpu_group_tokens) for name, r in runners.items()}
        # Round robin: a shared machine's slow spells fall on every graph alike.
        samples: dict[str, list[float]] = {name: [] for name in runners}
        for repeat in range(args.repeats):
            progress(f"round {repeat + 1} of {args.repeats}")
            for name, runner in runners.items():
                started = time.perf_counter()
                run_by_length(runner, encodings, 0, runner.cpu_group_tokens)
                samples[name].append((time.perf_counter() - started) * 1e3)
        results = {name: {"p50_ms": round(statistics.median(times), 1)} for name, times in samples.items()}
        if args.profile:
            results["torchscript_int8"]["operator_ms"] = operator_times(
                graphs["torchscript_int8"], encodings, scratch
            )
    for precision in ("", "_int8"):
        base, ours = results[f"torch_export{precision}"], results[f"torchscript{precision}"]
        ours["over_torch_export"] = round(ours["p50_ms"] / base["p50_ms"], 3)
        # The same model either way: the two graphs' outputs agree.
        ours["max_abs_difference"] = float(
            np.abs(outputs[f"torchscript{precision}"] - outputs[f"torch_export{precision}"]).max()
        )
    tokens = sum(len(e["input_ids"]) for e in encodings)
    print(
        json.dumps(
            {"benchmark": "onnx_exporters", "documents": len(encodings), "tokens": tokens, **results},
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
