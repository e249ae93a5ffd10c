"""Fine-tuning the listwise model (training/listwise.py) with the tiny random Qwen3:
the block trained on is the prompt serving builds, the loss is the contrastive one,
training on a toy task lowers the loss on queries it never saw and puts their
relevant passage first far more often, and the saved folder serves through the real
server with the scores the trained module gives and the spec's reference computes.
A run stopped at a checkpoint resumes from it.

The toy task: a query is one topic word; its relevant passage holds that word three
times among filler words, the seven negatives hold filler words only.
"""

from __future__ import annotations

import math
import random
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from rerank_bridge.devtools.tiny_models import WORDS
from rerank_bridge.search import RerankClient
from rerank_bridge.server.app import BackgroundServer
from rerank_bridge.server.config import ServerConfig
from rerank_bridge.server.domain import Document, RerankRequest
from rerank_bridge.training.fitting import FitSettings
from rerank_bridge.training.listwise import (
    ListwiseObjective,
    TrainingBlock,
    contrastive_loss,
    fit_listwise,
    load_for_training,
    training_blocks,
)
from rerank_bridge.training.mining import Example
from support.reference_listwise import ReferenceListwise

TOPICS = WORDS[:8]
FILLERS = [word for word in WORDS if word not in TOPICS]
NEGATIVES = 7
MAX_LENGTH = 64


def toy_examples(count: int, seed: int) -> list[Example]:
    rng = random.Random(seed)

    def passage(topic: str | None) -> str:
        words = [rng.choice(FILLERS) for _ in range(rng.randint(6, 14))]
        for _ in range(3 if topic else 0):
            words.insert(rng.randrange(len(words) + 1), topic)
        return " ".join(words)

    examples = []
    for i in range(count):
        topic = rng.choice(TOPICS)
        negatives = tuple((f"q{i}-n{j}", passage(None)) for j in range(NEGATIVES))
        examples.append(Example("toy", f"q{i}", topic, ((f"q{i}-p", passage(topic)),), negatives, ()))
    return examples


def held_out(objective: ListwiseObjective, blocks: list[TrainingBlock]) -> tuple[float, float]:
    """Mean loss, and the share of blocks whose relevant passage scores highest."""
    with torch.no_grad():
        every = objective.scores([item.block for item in blocks])
    losses = [
        float(contrastive_loss(scores, torch.tensor(item.relevant)))
        for scores, item in zip(every, blocks, strict=True)
    ]
    firsts = sum(item.relevant[int(scores.argmax())] for scores, item in zip(every, blocks, strict=True))
    return sum(losses) / len(losses), firsts / len(blocks)


def test_the_loss_is_minus_the_log_of_the_mass_on_the_relevant() -> None:
    equal = torch.zeros(8)
    assert float(contrastive_loss(equal, torch.tensor([True] + [False] * 7))) == pytest.approx(math.log(8))
    assert float(contrastive_loss(equal, torch.tensor([True, True] + [False] * 6))) == pytest.approx(
        math.log(4)
    )
    apart = torch.tensor([0.9, 0.1, 0.1])
    assert float(contrastive_loss(apart, torch.tensor([True, False, False]))) < 1e-6
    assert float(contrastive_loss(apart, torch.tensor([False, True, False]))) > 15


def test_a_training_block_is_the_prompt_serving_builds(listwise_dir: Path) -> None:
    backend = load_for_training(listwise_dir, MAX_LENGTH)
    (example,) = toy_examples(1, seed=3)
    (item,) = training_blocks(backend, [example], MAX_LENGTH, seed=0)
    # The relevant passage is somewhere in a seeded shuffled order, flagged where it is.
    assert sorted(item.documents) == sorted(text for _, text in (*example.positives, *example.negatives))
    assert item.relevant == tuple(text == example.positives[0][1] for text in item.documents)
    (again,) = training_blocks(backend, [example], MAX_LENGTH, seed=0)
    assert (again.documents, again.relevant) == (item.documents, item.relevant)
    request = RerankRequest(
        query=example.query,
        documents=tuple(Document(id=str(i), text=text) for i, text in enumerate(item.documents)),
        top_n=None,
        instruction="",
        max_query_tokens=MAX_LENGTH,
        max_document_tokens=MAX_LENGTH,
    )
    (sequence,) = backend.plan_rerank(request).sequences
    assert sequence.payload.ids.tolist() == item.block.ids.tolist()
    assert sequence.payload.doc_positions == item.block.doc_positions


@pytest.mark.slow
def test_training_lowers_the_held_out_loss_and_the_checkpoint_serves_with_parity(
    listwise_dir: Path, tmp_path: Path
) -> None:
    before = ListwiseObjective(load_for_training(listwise_dir, MAX_LENGTH)).eval()
    test_blocks = training_blocks(
        load_for_training(listwise_dir, MAX_LENGTH), toy_examples(100, seed=99), MAX_LENGTH, seed=1
    )
    loss_before, first_before = held_out(before, test_blocks)

    settings = FitSettings(
        kind="listwise",
        base=listwise_dir,
        out=tmp_path / "run",
        epochs=2,
        batch_size=8,
        learning_rate=5e-4,
        max_length=MAX_LENGTH,
    )
    fitted = fit_listwise(settings, toy_examples(400, seed=0))
    assert fitted.steps == 100 and fitted.resumed_from_step == 0

    backend = load_for_training(fitted.model, MAX_LENGTH)
    after = ListwiseObjective(backend).eval()
    loss_after, first_after = held_out(after, test_blocks)
    # Chance is one in eight; the untrained model is near it.
    assert first_before < 0.35 and loss_before > 1.8
    assert first_after > 0.55 and loss_after < 0.75 * loss_before

    # The saved folder, served over gRPC, gives the trained module's scores and the
    # reference's (the toy texts are far below the server's default caps).
    item = test_blocks[0]
    (trained_scores,) = after.scores([item.block])
    query = toy_examples(100, seed=99)[0].query
    server = BackgroundServer(ServerConfig(model=str(fitted.model), port=0, dtype="float32")).start()
    try:
        with RerankClient(server.address) as client:
            served = client.rerank(query, [(str(i), text) for i, text in enumerate(item.documents)])
    finally:
        server.stop()
    by_index = [doc.score for doc in sorted(served.documents, key=lambda doc: int(doc.id))]
    assert by_index == pytest.approx(trained_scores.tolist(), abs=1e-4)
    assert by_index == pytest.approx(
        ReferenceListwise(fitted.model).scores(query, list(item.documents)), abs=1e-4
    )


@pytest.mark.slow
def test_a_stopped_run_resumes_from_its_checkpoint(listwise_dir: Path, tmp_path: Path) -> None:
    examples = toy_examples(40, seed=5)
    settings = FitSettings(
        kind="listwise",
        base=listwise_dir,
        out=tmp_path,
        epochs=1,
        batch_size=8,
        max_length=MAX_LENGTH,
        save_steps=5,
    )
    first = fit_listwise(settings, examples)
    assert (first.resumed_from_step, first.steps) == (0, 5)
    assert (tmp_path / "checkpoints" / "checkpoint-5").is_dir()
    resumed = fit_listwise(replace(settings, epochs=2, resume=True), examples)
    assert (resumed.resumed_from_step, resumed.steps) == (5, 10)
    assert ReferenceListwise(resumed.model).scores("cell", ["the cell", "a river"]) != pytest.approx(
        ReferenceListwise(listwise_dir).scores("cell", ["the cell", "a river"])
    )
