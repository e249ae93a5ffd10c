"""The contract between the scheduler and a model.

A backend turns a request into a *plan*: the sequences it must run through
the model (one listwise block, one query/document pair, one text to embed)
and a function that turns their outputs into the result. The scheduler owns
the forward passes, so it can pack sequences of many concurrent requests into
one batch under a token budget; the backend never sees other requests.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from rerank_bridge.server.domain import EmbedOutcome, EmbedRequest, RerankOutcome, RerankRequest
from rerank_bridge.server.errors import Unimplemented

if TYPE_CHECKING:  # tokenizers comes with the server extra; the fake backend needs none
    from rerank_bridge.server.backends.truncation import Truncator
    from rerank_bridge.server.embedding_cache import EmbeddingCache

ResultT = TypeVar("ResultT")


@dataclass(frozen=True)
class Sequence:
    """One unit of model work; `num_tokens` is what it costs in a batch."""

    num_tokens: int
    payload: Any


@dataclass(frozen=True)
class Plan(Generic[ResultT]):
    sequences: list[Sequence]
    # Receives one output per sequence, in order.
    finish: Callable[[list[Any]], ResultT]


@dataclass(frozen=True)
class BackendLimits:
    max_documents_per_pass: int
    context_length: int
    max_query_tokens: int
    max_document_tokens: int


class Backend(abc.ABC):
    """A loaded model. Subclasses load in __init__ and must be thread-compatible:
    `plan_*` may run on any thread, `forward` only on the scheduler's worker."""

    kind: str
    model_id: str
    # Of the files the model was loaded from (model_digest.py); empty for the fake model.
    digest: str = ""
    device: str = "cpu"
    dtype: str = "float32"
    # Why that dtype (devices.resolve_placement): reported in ModelInfo and the metrics.
    dtype_reason: str = ""
    # What runs forward(): "torch", or "onnxruntime" for the exported pointwise models.
    runtime: str = "torch"
    limits: BackendLimits
    # Vector size of plan_embed's output; None when the backend cannot embed.
    embed_dimensions: int | None = None
    # Whether plan_rerank can return the vectors its scores come from.
    returns_embeddings: bool = False
    # The tokenizer-backed cutting every model backend shares (truncation.py).
    truncator: Truncator | None = None
    # Whether a score is the cosine of the query's and the document's own vectors (a
    # bi-encoder's): then a stored vector can stand in for a text, and runtime.load gives
    # the backend an embedding cache.
    scores_text_vectors: bool = False
    embedding_cache: EmbeddingCache | None = None

    @abc.abstractmethod
    def plan_rerank(self, request: RerankRequest) -> Plan[RerankOutcome]: ...

    def token_spans(self, texts: list[str], cap: int) -> list[tuple[list[tuple[int, int]], bool]]:
        """Where each text's first `cap` tokens lie in it ([start, end) character spans, in
        order), and whether it goes on past them: what chunking cuts along."""
        if self.truncator is None:
            raise Unimplemented(f"model {self.model_id!r} ({self.kind}) cannot cut texts into chunks")
        return self.truncator.spans(texts, cap)

    def plan_embed(self, request: EmbedRequest) -> Plan[EmbedOutcome]:
        raise Unimplemented(f"model {self.model_id!r} ({self.kind}) does not embed texts")

    @abc.abstractmethod
    def forward(self, payloads: list[Any]) -> list[Any]:
        """Runs one batch: one output per payload, in order."""

    def warm_up(self) -> None:
        """Runs a small request end to end so the first real one pays no lazy set-up."""
        from rerank_bridge.server.domain import Document

        request = RerankRequest(
            query="warm-up query",
            documents=(Document("a", "a first warm-up passage"), Document("b", "a second one")),
            top_n=None,
            instruction="",
            max_query_tokens=self.limits.max_query_tokens,
            max_document_tokens=self.limits.max_document_tokens,
        )
        run_plan(self, self.plan_rerank(request))


def run_plan(backend: Backend, plan: Plan[ResultT]) -> ResultT:
    """Runs a plan alone, one forward for all its sequences (used by tests and warm-up)."""
    return plan.finish(backend.forward([s.payload for s in plan.sequences]))
