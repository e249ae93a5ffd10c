"""Fitting a reranker to mined examples with sentence-transformers' own trainers.

- **cross-encoder**: a sequence classifier with one output, from an encoder (a fresh
  head) or from a cross-encoder, trained with a ranking loss on the judgments (`bce`,
  or the listwise `listnet` and `lambdaloss` over each query's positives and
  negatives), and with the base model's own scores distilled in through MarginMSE:
  a fresh head on little data otherwise throws away what the encoder knows (the
  probe in issue 33: 0.43-0.53 nDCG@10 against the untrained bi-encoder's 0.78-0.84).
- **bi-encoder**: the base sentence-transformers model fine-tuned with
  MultipleNegativesRankingLoss on (query, positive, mined negative) triplets behind
  the model's own prompts, so the embedding space it starts from is kept, and its
  vectors stay the ones the stored-vector path serves.
- **listwise**: the jina-reranker-v3 design fine-tuned with a contrastive loss over
  every document of one context (listwise.py).

Checkpoints go under `<out>/checkpoints` (the Trainer's own), `resume` continues
from the newest, and a time budget stops training at a step boundary and keeps what
was learnt. The model is written to `<out>/model` in the layout `serve` reads.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rerank_bridge.server.domain import Prompts
from rerank_bridge.training.mining import Example

log = logging.getLogger(__name__)

# The base model's scores for a query's (id, passage) pairs, by id, as it serves them.
Teacher = Callable[[str, Sequence[tuple[str, str]]], dict[str, float]]


@dataclass(frozen=True)
class FitSettings:
    kind: str
    base: Path
    out: Path
    loss: str = "listnet"
    distill: bool = True
    epochs: float = 1.0
    batch_size: int = 16
    learning_rate: float = 2e-5
    temperature: float = 0.01  # the bi-encoder's contrastive softmax (e5 was trained at 0.01)
    max_length: int = 256
    seed: int = 0
    max_minutes: float | None = None
    bf16: bool = False
    resume: bool = False
    save_steps: int = 200


def _time_budget(minutes: float) -> Any:
    """A Trainer callback that stops training at the first step boundary past the budget;
    the Trainer then saves a checkpoint and returns, so the budget keeps what was learnt."""
    from transformers import TrainerCallback

    started, budget = time.monotonic(), minutes * 60

    class TimeBudget(TrainerCallback):  # type: ignore[misc]
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            if time.monotonic() - started > budget:
                log.warning("%.1f-minute budget spent at step %d: stopping", minutes, state.global_step)
                control.should_training_stop = True
                control.should_save = True
            return control

    return TimeBudget()


def _standardised(scores: dict[str, float]) -> dict[str, float]:
    """Scores standardised within one query: a bi-encoder's cosines differ by hundredths,
    a cross-encoder's logits by units, and MarginMSE should learn the window's order and
    spread, not the teacher's scale."""
    values = list(scores.values())
    spread = statistics.pstdev(values) if len(values) > 1 else 0.0
    middle = statistics.fmean(values)
    return {doc: (score - middle) / spread if spread > 0 else 0.0 for doc, score in scores.items()}


def ranking_rows(examples: list[Example], loss: str) -> dict[str, list[Any]]:
    """The ranking loss's columns: (query, passage, label) pairs for BCE, or each
    query's passages and labels as lists for the listwise losses."""
    if loss == "bce":
        rows: dict[str, list[Any]] = {"query": [], "passage": [], "label": []}
        for example in examples:
            for passages, label in ((example.positives, 1.0), (example.negatives, 0.0)):
                for _, passage in passages:
                    rows["query"].append(example.query)
                    rows["passage"].append(passage)
                    rows["label"].append(label)
        return rows
    listwise: dict[str, list[Any]] = {"query": [], "docs": [], "labels": []}
    for example in examples:
        listwise["query"].append(example.query)
        listwise["docs"].append([p for _, p in example.positives] + [p for _, p in example.negatives])
        listwise["labels"].append([1.0] * len(example.positives) + [0.0] * len(example.negatives))
    return listwise


def distillation_rows(examples: list[Example], teacher: Teacher) -> dict[str, list[Any]]:
    """(query, positive, negative, margin) with the teacher's standardised margin."""
    rows: dict[str, list[Any]] = {"query": [], "positive": [], "negative": [], "label": []}
    for example in examples:
        scores = _standardised(teacher(example.query, [*example.positives, *example.negatives]))
        for positive_id, positive in example.positives:
            for negative_id, negative in example.negatives:
                rows["query"].append(example.query)
                rows["positive"].append(positive)
                rows["negative"].append(negative)
                rows["label"].append(scores[positive_id] - scores[negative_id])
    return rows


def triplet_rows(examples: list[Example]) -> dict[str, list[str]]:
    rows: dict[str, list[str]] = {"anchor": [], "positive": [], "negative": []}
    for example in examples:
        for _, positive in example.positives:
            for _, negative in example.negatives:
                rows["anchor"].append(example.query)
                rows["positive"].append(positive)
                rows["negative"].append(negative)
    return rows


def triplet_datasets(examples: list[Example]) -> dict[str, dict[str, list[str]]]:
    """The triplets of each collection on their own. The bi-encoder's loss takes the
    other rows of a batch as further negatives: batches drawn across collections would
    pit a Japanese question against Arabic and English passages, negatives it tells
    apart by their script alone."""
    by_collection: dict[str, list[Example]] = {}
    for example in examples:
        by_collection.setdefault(example.collection, []).append(example)
    return {name: triplet_rows(group) for name, group in by_collection.items()}


def training_arguments(settings: FitSettings, arguments_class: Any, **extra: Any) -> Any:
    return arguments_class(
        output_dir=str(settings.out / "checkpoints"),
        num_train_epochs=settings.epochs,
        per_device_train_batch_size=settings.batch_size,
        learning_rate=settings.learning_rate,
        warmup_steps=0.1,  # a float: the share of all steps (transformers 5)
        seed=settings.seed,
        data_seed=settings.seed,
        bf16=settings.bf16,
        use_cpu=not _cuda(),
        save_strategy="steps",
        save_steps=settings.save_steps,
        save_total_limit=2,
        logging_steps=10,
        report_to="none",
        dataloader_num_workers=0,
        disable_tqdm=False,
        **extra,
    )


@dataclass(frozen=True)
class Fitted:
    model: Path  # the folder serve reads
    resumed_from_step: int  # 0 for a fresh run
    steps: int  # the optimiser steps the model has had, the resumed ones included


def _step(checkpoint: Path) -> int:
    """The step a Trainer checkpoint was saved at (`checkpoint-<step>`)."""
    return int(checkpoint.name.split("-")[-1])


def _newest_checkpoint(settings: FitSettings) -> Path | None:
    found = sorted((settings.out / "checkpoints").glob("checkpoint-*"), key=_step)
    return found[-1] if settings.resume and found else None


def train(trainer: Any, save: Callable[[Path], Any], settings: FitSettings) -> Fitted:
    """Runs the Trainer (from the newest checkpoint when resuming) and saves the model
    with `save` to `<out>/model`."""
    checkpoint = _newest_checkpoint(settings)
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    target = settings.out / "model"
    save(target)
    resumed = _step(checkpoint) if checkpoint else 0
    return Fitted(target, resumed, int(trainer.state.global_step))


def _cuda() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def callbacks(settings: FitSettings) -> list[Any]:
    return [_time_budget(settings.max_minutes)] if settings.max_minutes else []


def fit_cross_encoder(settings: FitSettings, examples: list[Example], teacher: Teacher | None) -> Fitted:
    from datasets import Dataset
    from sentence_transformers.cross_encoder import (
        CrossEncoder,
        CrossEncoderTrainer,
        CrossEncoderTrainingArguments,
        losses,
    )

    model = CrossEncoder(str(settings.base), num_labels=1, max_length=settings.max_length)
    ranking = {
        "bce": lambda: losses.BinaryCrossEntropyLoss(model),
        "listnet": lambda: losses.ListNetLoss(model),
        "lambdaloss": lambda: losses.LambdaLoss(model),
    }[settings.loss]()
    datasets: dict[str, Any] = {"ranking": Dataset.from_dict(ranking_rows(examples, settings.loss))}
    objectives: dict[str, Any] = {"ranking": ranking}
    if settings.distill and teacher is not None:
        datasets["distillation"] = Dataset.from_dict(distillation_rows(examples, teacher))
        objectives["distillation"] = losses.MarginMSELoss(model)
    trainer = CrossEncoderTrainer(
        model=model,
        args=training_arguments(settings, CrossEncoderTrainingArguments),
        train_dataset=datasets,
        loss=objectives,
        callbacks=callbacks(settings),
    )
    return train(trainer, lambda target: model.save_pretrained(str(target)), settings)


def bi_encoder_trainer(settings: FitSettings, examples: list[Example]) -> Any:
    """The base model in sentence-transformers' trainer, on the examples' triplets."""
    from datasets import Dataset
    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from sentence_transformers.sentence_transformer.training_args import (
        BatchSamplers,
        MultiDatasetBatchSamplers,
    )

    model = SentenceTransformer(str(settings.base))
    model.max_seq_length = settings.max_length
    # Behind the prompts the server puts before this model's queries and documents.
    served = Prompts.of(model.prompts)
    prompts = {"anchor": served.query, "positive": served.document, "negative": served.document}
    # A batch comes from one collection, in proportion to its size, and never holds one
    # text twice: a query's triplets (one per negative) share its relevant passage, which
    # in one batch would be a negative of its own query.
    datasets = {name: Dataset.from_dict(rows) for name, rows in triplet_datasets(examples).items()}
    return SentenceTransformerTrainer(
        model=model,
        args=training_arguments(
            settings,
            SentenceTransformerTrainingArguments,
            prompts={column: prompt for column, prompt in prompts.items() if prompt} or None,
            batch_sampler=BatchSamplers.NO_DUPLICATES,
            multi_dataset_batch_sampler=MultiDatasetBatchSamplers.PROPORTIONAL,
        ),
        train_dataset=datasets,
        loss=MultipleNegativesRankingLoss(model, scale=1 / settings.temperature),
        callbacks=callbacks(settings),
    )


def fit_bi_encoder(settings: FitSettings, examples: list[Example]) -> Fitted:
    trainer = bi_encoder_trainer(settings, examples)
    return train(trainer, lambda target: trainer.model.save_pretrained(str(target)), settings)


def fit(settings: FitSettings, examples: list[Example], teacher: Teacher | None) -> Fitted:
    if not examples:
        raise ValueError("no training examples: no training query's window held a negative and a positive")
    if settings.kind == "cross-encoder":
        return fit_cross_encoder(settings, examples, teacher)
    if settings.kind == "listwise":
        from rerank_bridge.training.listwise import fit_listwise

        return fit_listwise(settings, examples)
    return fit_bi_encoder(settings, examples)
