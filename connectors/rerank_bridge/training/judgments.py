"""The judgments a reranker is fitted to, and the queries it is judged on afterwards.

Two sources, as users have them:
- a BEIR folder: its training queries (`queries_train.jsonl` with `qrels_train.tsv`,
  as SciFact ships them) are trained on and its test queries (`queries.jsonl` with
  `qrels.tsv`) held out; a folder without a training split has a seeded share of its
  judged queries held out instead;
- a judgment list as Elasticsearch's Learning to Rank builds one: a RankLib file
  (`GRADE qid:QUERY_ID # DOCUMENT_ID ...`) or a tab-separated one (`QUERY_ID DOCUMENT_ID
  GRADE`, a header allowed), its query texts from the folder's query files.

Every ordinary mistake (no judgments, query ids no queries file knows, too few queries
to hold any out) is one line naming the file, raised as JudgmentError.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path

from rerank_bridge.evaluation.beir import Collection, find, judged_relevant, open_text, read_jsonl

# At least this many judged queries on each side of a split: fewer trains nothing
# worth serving, or judges on noise.
MIN_QUERIES = 2
# Where a judgment list's query texts are looked up: every query file the folder has.
QUERY_FILES = ("queries.jsonl", "queries_train.jsonl")
RANKLIB = re.compile(r"^\s*(-?\d+)\s+qid:(\S+)\s*(?:\S+:\S+\s*)*#\s*(\S+)")


class JudgmentError(ValueError):
    """An ordinary mistake in the judgments: the message is the whole story."""


@dataclass(frozen=True)
class Judgments:
    """Judged queries: their texts, and each one's graded documents (a gain above 0
    is relevant; 0 is judged not relevant)."""

    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]

    def relevant(self, query_id: str) -> set[str]:
        return {doc for doc, gain in self.qrels.get(query_id, {}).items() if gain > 0}


@dataclass(frozen=True)
class Split:
    """Queries to train on and queries held out; no query id is in both."""

    train: Judgments
    held_out: Judgments
    how: str  # what made the split, for the report

    def __post_init__(self) -> None:
        shared = set(self.train.queries) & set(self.held_out.queries)
        if shared:  # a reranker judged on queries it learnt from would report nothing true
            raise AssertionError(f"{len(shared)} queries both trained on and held out, e.g. {min(shared)}")


def read_queries(path: Path) -> dict[str, str]:
    return {str(row["_id"]): row["text"] for row in read_jsonl(path)}


def read_judgment_list(path: Path) -> dict[str, dict[str, int]]:
    """RankLib lines or tab-separated triples, whichever the file holds."""
    if not path.is_file():
        raise JudgmentError(f"{path}: no such judgment file")
    qrels: dict[str, dict[str, int]] = {}
    with open_text(path) as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            if (ranklib := RANKLIB.match(line)) is not None:
                grade, query_id, doc_id = ranklib.groups()
            else:
                parts = line.rstrip("\n").split("\t")
                if len(parts) < 3 or not parts[-1].strip().lstrip("-").isdigit():
                    if number == 1:
                        continue  # a header
                    raise JudgmentError(
                        f"{path}:{number}: expected 'GRADE qid:QUERY # DOCUMENT' or "
                        f"'QUERY<TAB>DOCUMENT<TAB>GRADE', got {line.strip()[:80]!r}"
                    )
                query_id, doc_id, grade = parts[0], parts[1], parts[-1]
            qrels.setdefault(query_id, {})[doc_id] = int(grade)
    return qrels


def _judged(queries: dict[str, str], qrels: dict[str, dict[str, int]], source: str) -> Judgments:
    """The queries with at least one relevant document; query ids without a text refused."""
    unknown = sorted(set(qrels) - set(queries))
    if unknown:
        raise JudgmentError(
            f"{source}: {len(unknown)} judged query ids have no query text, e.g. {', '.join(unknown[:3])}"
        )
    # A blank query cannot be searched, as load_collection says.
    judged = {q: text for q, text in queries.items() if text.strip() and judged_relevant(qrels.get(q, {}))}
    if not judged:
        raise JudgmentError(f"{source}: no query has a relevant document (a grade above 0)")
    return Judgments(judged, {q: qrels[q] for q in judged})


def _hold_out(judgments: Judgments, fraction: float, seed: int, source: str) -> Split:
    ids = sorted(judgments.queries)
    if fraction == 0:  # judged on other collections (train --evaluate)
        return Split(
            train=judgments, held_out=Judgments({}, {}), how=f"all {len(ids)} judged queries trained on"
        )
    held = round(len(ids) * fraction)
    if held < MIN_QUERIES or len(ids) - held < MIN_QUERIES:
        raise JudgmentError(
            f"{source}: {len(ids)} judged queries are too few to hold {fraction:.0%} out "
            f"(each side needs at least {MIN_QUERIES})"
        )
    chosen = set(random.Random(seed).sample(ids, held))

    def side(keep: bool) -> Judgments:
        kept = [q for q in ids if (q in chosen) == keep]
        return Judgments({q: judgments.queries[q] for q in kept}, {q: judgments.qrels[q] for q in kept})

    how = f"{held} of {len(ids)} judged queries held out at random (seed {seed})"
    return Split(train=side(False), held_out=side(True), how=how)


def split(
    folder: Path, collection: Collection, judgment_list: Path | None, held_out_fraction: float, seed: int
) -> Split:
    """The training and held-out queries of a BEIR folder (`collection`: the folder as
    load_collection read it, its test queries judged), or of a judgment list over the
    folder's queries (module docstring)."""
    if judgment_list is not None:
        files = [path for name in QUERY_FILES if (path := find(folder, name)) is not None]
        if not files:
            raise JudgmentError(f"{folder}: no queries.jsonl to give the judgment list's queries their text")
        texts = {query: text for path in files for query, text in read_queries(path).items()}
        judged = _judged(texts, read_judgment_list(judgment_list), str(judgment_list))
        return _hold_out(judged, held_out_fraction, seed, str(judgment_list))
    train_queries, train_qrels = find(folder, "queries_train.jsonl"), find(folder, "qrels_train.tsv")
    test = collection
    if not test.queries:
        raise JudgmentError(f"{folder}: no query in qrels.tsv has a relevant document")
    if train_queries is None or train_qrels is None:
        return _hold_out(Judgments(test.queries, test.qrels), held_out_fraction, seed, str(folder))
    train = _judged(read_queries(train_queries), read_judgment_list(train_qrels), str(train_qrels))
    if len(train.queries) < MIN_QUERIES:
        raise JudgmentError(f"{train_qrels}: {len(train.queries)} judged queries are too few to train on")
    how = f"the folder's own split: {len(train.queries)} training queries, {len(test.queries)} test queries"
    return Split(train=train, held_out=Judgments(test.queries, test.qrels), how=how)
