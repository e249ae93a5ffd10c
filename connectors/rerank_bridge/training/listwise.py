"""Fine-tuning the listwise model (the jina-reranker-v3 design) on mined windows.

Each training query becomes one block, exactly the prompt `serve` builds for a Rerank
of those documents: its relevant passages and its mined negatives in one causal
context, in a seeded shuffled order (the first stage puts relevant passages near the
top; an order left as mined would teach the model where to look instead of what to
read). The loss is contrastive over all documents of the block, as the design's paper
trains it: the softmax of the block's cosines, over a temperature, should put its mass
on the relevant passages.

The module trained is the server's own backbone and projector (ListwiseBackend loads
them, `project_blocks` is the serving forward pass), so what is trained is what is
served; the Trainer brings checkpoints, resume, the time budget and bf16.
"""

from __future__ import annotations

import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from rerank_bridge.server.backends.listwise import (
    PROJECTOR_KEYS,
    BlockInput,
    ListwiseBackend,
    project_blocks,
)
from rerank_bridge.server.backends.model_files import read_tensors
from rerank_bridge.server.devices import resolve_placement
from rerank_bridge.training.fitting import FitSettings, Fitted, callbacks, train, training_arguments
from rerank_bridge.training.mining import Example

# Cosines lie in [-1, 1]: without a temperature the softmax over a block would stay
# nearly uniform whatever the model learns. 0.05 is the usual contrastive choice.
TEMPERATURE = 0.05


@dataclass(frozen=True)
class TrainingBlock:
    block: BlockInput
    documents: tuple[str, ...]  # in the block's order
    relevant: tuple[bool, ...]  # per document


def training_blocks(
    backend: ListwiseBackend, examples: list[Example], max_length: int, seed: int
) -> list[TrainingBlock]:
    """One block per example, its documents in a seeded shuffled order."""
    rng = random.Random(seed)
    blocks = []
    for example in examples:
        documents = [(text, True) for _, text in example.positives]
        documents += [(text, False) for _, text in example.negatives]
        rng.shuffle(documents)
        block = backend.prompt_block(example.query, [text for text, _ in documents], max_length, max_length)
        texts, flags = zip(*documents, strict=True)
        blocks.append(TrainingBlock(block, texts, flags))
    return blocks


def contrastive_loss(scores: torch.Tensor, relevant: torch.Tensor) -> torch.Tensor:
    """-log of the softmax mass the block's scores put on its relevant documents."""
    logits = scores / TEMPERATURE
    return torch.logsumexp(logits, 0) - torch.logsumexp(logits[relevant], 0)


class ListwiseObjective(torch.nn.Module):
    """The served backbone and projector, scoring blocks as serving does, with the loss."""

    def __init__(self, backend: ListwiseBackend) -> None:
        super().__init__()
        self.backbone = backend.model
        self.projector = backend.projector
        self.pad_id = backend.pad_id

    def scores(self, blocks: list[BlockInput]) -> list[torch.Tensor]:
        """Each block's cosines (fp32), one forward pass for the batch."""
        outputs = project_blocks(self.backbone, self.projector, blocks, self.pad_id)
        return [
            F.cosine_similarity(out.query.float()[None], out.documents.float(), dim=-1) for out in outputs
        ]

    def forward(self, blocks: list[BlockInput], relevant: list[tuple[bool, ...]]) -> dict[str, torch.Tensor]:
        losses = [
            contrastive_loss(scores, torch.tensor(flags, device=scores.device))
            for scores, flags in zip(self.scores(blocks), relevant, strict=True)
        ]
        return {"loss": torch.stack(losses).mean()}


def collate(items: list[TrainingBlock]) -> dict[str, Any]:
    return {"blocks": [item.block for item in items], "relevant": [item.relevant for item in items]}


def load_for_training(base: Path, max_length: int) -> ListwiseBackend:
    """The base model as the server loads it, in fp32 (the Trainer's bf16 is autocast
    over fp32 weights), in training mode."""
    placement = resolve_placement(dtype="float32")
    backend = ListwiseBackend(base, base.name, placement, max_length, max_length)
    backend.model.train()
    backend.projector.train()
    for parameter in [*backend.model.parameters(), *backend.projector.parameters()]:
        parameter.requires_grad_(True)
    return backend


def save_listwise(objective: ListwiseObjective, base: Path, target: Path) -> Path:
    """A folder `serve` reads: the base's config and tokenizer files, and one
    model.safetensors in the base's layout (`model.*` backbone keys, the projector's
    two weights) and dtype."""
    target.mkdir(parents=True, exist_ok=True)
    for path in base.iterdir():
        if path.is_file() and not path.name.startswith("model.safetensors"):
            shutil.copy2(path, target / path.name)
    dtype = read_tensors(base, PROJECTOR_KEYS[:1])[PROJECTOR_KEYS[0]].dtype
    tensors = {f"model.{name}": value for name, value in objective.backbone.state_dict().items()}
    projector = objective.projector.state_dict()
    tensors |= {PROJECTOR_KEYS[0]: projector["0.weight"], PROJECTOR_KEYS[1]: projector["2.weight"]}
    tensors = {name: value.detach().to(dtype).contiguous().cpu() for name, value in tensors.items()}
    save_file(tensors, str(target / "model.safetensors"), metadata={"format": "pt"})
    return target


def fit_listwise(settings: FitSettings, examples: list[Example]) -> Fitted:
    from transformers import Trainer, TrainingArguments

    backend = load_for_training(settings.base, settings.max_length)
    objective = ListwiseObjective(backend)
    trainer = Trainer(
        model=objective,
        # The blocks are prompt ids already: no columns to drop, no tokenizer to call.
        args=training_arguments(settings, TrainingArguments, remove_unused_columns=False),
        train_dataset=training_blocks(backend, examples, settings.max_length, settings.seed),
        data_collator=collate,
        callbacks=callbacks(settings),
    )
    return train(trainer, lambda target: save_listwise(objective, settings.base, target), settings)
