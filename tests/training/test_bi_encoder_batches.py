"""The bi-encoder's batches (training/fitting.py): its loss takes every other row of a
batch as a negative of each query, so a batch is drawn from one collection (a question
among passages of other languages would learn nothing from them) and never holds a text
twice (a query's triplets share its relevant passage, which would then count against
it). An epoch trains on no triplet twice, and on all of them but the few left over at
the end of each collection's pass, where no batch of distinct texts can be made."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from rerank_bridge.server.backends.registry import builtin_minilm_folder
from rerank_bridge.training.fitting import FitSettings, bi_encoder_trainer, triplet_datasets
from rerank_bridge.training.mining import Example

pytest.importorskip("sentence_transformers")


def examples(collection: str, queries: int, negatives: int) -> list[Example]:
    return [
        Example(
            collection,
            f"q{i}",  # the same ids in every collection, as real collections have
            f"{collection} question {i}",
            ((f"p{i}", f"{collection} passage {i}"),),
            tuple((f"n{i}-{k}", f"{collection} near miss {i}.{k}") for k in range(negatives)),
            (),
        )
        for i in range(queries)
    ]


def test_triplets_are_kept_by_collection() -> None:
    rows = triplet_datasets([*examples("ja", 2, 3), *examples("ar", 1, 2)])
    assert list(rows) == ["ja", "ar"]
    assert len(rows["ja"]["anchor"]) == 2 * 3 and set(rows["ar"]["anchor"]) == {"ar question 0"}


def test_a_batch_is_one_collections_distinct_texts_and_an_epoch_repeats_no_triplet(tmp_path: Path) -> None:
    mixed = [*examples("ja", 12, 4), *examples("zh", 5, 4), *examples("ar", 3, 2)]
    settings = FitSettings(kind="bi-encoder", base=builtin_minilm_folder(), out=tmp_path, batch_size=4)
    loader = bi_encoder_trainer(settings, mixed).get_train_dataloader()
    batches = [[loader.dataset[index] for index in batch] for batch in loader.batch_sampler]
    for batch in batches:
        assert len({row["anchor"].split()[0] for row in batch}) == 1, batch
        texts = [text for row in batch for text in (row["anchor"], row["positive"], row["negative"])]
        assert len(texts) == len(set(texts)), batch
    served = Counter((row["anchor"], row["negative"]) for batch in batches for row in batch)
    assert set(served.values()) == {1}
    assert len(served) > 12 * 4 + 5 * 4 + 3 * 2 - settings.batch_size, len(served)
