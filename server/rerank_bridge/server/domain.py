"""Transport-free request and result types shared by validation, backends and the scheduler."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    # numpy for the annotations only: every `rerank-bridge` command imports this module
    # (through server/config.py and the models command), the numpy-free bridge image's
    # proxy and healthcheck too. Modules that name Vector import it the same way.
    import numpy as np
    import numpy.typing as npt

    Vector = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Document:
    id: str
    text: str
    # A bi-encoder's stored vector of the text (the engine's vector field), scored in
    # place of encoding the text when stored_vectors.usable accepts it. An array, not a
    # tuple: a window's vectors are read and checked in C, not float by float. Left out
    # of comparisons, where an array has no single truth value.
    embedding: Vector | None = field(default=None, compare=False)


# How a document's score comes from its chunks' (rerank_bridge/server/chunking.py says why these two).
AGGREGATIONS = ("max", "mean")


@dataclass(frozen=True)
class Chunking:
    """Token windows of `size` tokens, neighbours sharing `overlap`, at most
    `max_chunks` per document; a document scores as `aggregation` of its chunks."""

    size: int
    overlap: int
    aggregation: str  # "max" or "mean"
    max_chunks: int


@dataclass(frozen=True)
class RerankRequest:
    query: str
    documents: tuple[Document, ...]
    top_n: int | None
    instruction: str
    max_query_tokens: int
    max_document_tokens: int
    return_embeddings: bool = False
    chunking: Chunking | None = None
    return_passages: bool = False
    # The model that made the documents' embeddings.
    embeddings_model: str = ""


@dataclass(frozen=True)
class EmbedRequest:
    texts: tuple[str, ...]
    max_tokens: int
    # Which of the model's prompts the texts get: "document" for what is indexed,
    # "query" for what is searched with (a kNN query's vector).
    input_type: str = "document"


@dataclass
class Usage:
    query_tokens: int = 0
    document_tokens: int = 0
    total_tokens: int = 0
    truncated_documents: int = 0
    sequences: int = 0
    chunks: int = 0


@dataclass(frozen=True)
class Passage:
    """[start, end) in code points of the document's text, and that span's score."""

    start: int
    end: int
    score: float


@dataclass(frozen=True)
class ScoredDocument:
    index: int
    id: str
    score: float
    truncated: bool = False
    embedding: tuple[float, ...] | None = None
    passage: Passage | None = None
    # A bi-encoder's: "encoded", "stored" or "cached" (rerank.v1 EmbeddingSource, mapped in
    # response_messages); empty where the model read the text itself.
    source: str = ""


@dataclass
class RerankOutcome:
    """Scores for every document, in input order (ranking is a separate step)."""

    scored: list[ScoredDocument]
    usage: Usage
    query_embedding: tuple[float, ...] | None = None

    def ranked(self, top_n: int | None) -> list[ScoredDocument]:
        """Best first; equal scores keep input order (sorted() is stable)."""
        ordered = sorted(self.scored, key=lambda doc: -doc.score)
        return ordered if top_n is None else ordered[:top_n]


@dataclass
class EmbedOutcome:
    vectors: list[tuple[float, ...]]
    usage: Usage = field(default_factory=Usage)


@dataclass(frozen=True)
class Timings:
    queue_ms: float
    compute_ms: float


# sentence-transformers' names for the prompt of the texts searched over.
DOCUMENT_PROMPT_NAMES = ("document", "passage", "corpus")


@dataclass(frozen=True)
class Prompts:
    """What a bi-encoder prepends to a text before it embeds it. Models are trained
    with them (E5: `query: ` and `passage: `; BGE: an instruction before the query
    only), and without them scores drift and margins shrink."""

    query: str = ""
    document: str = ""

    @classmethod
    def of(cls, declared: Mapping[str, str]) -> Prompts:
        """From sentence-transformers' `prompts` (config_sentence_transformers.json)."""
        document = next((declared[name] for name in DOCUMENT_PROMPT_NAMES if name in declared), "")
        return cls(query=declared.get("query", ""), document=document)

    def as_dict(self) -> dict[str, str]:
        return {"query": self.query, "document": self.document}
