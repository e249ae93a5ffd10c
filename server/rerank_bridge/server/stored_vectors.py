"""Which of the vectors a Rerank request carries may be scored in place of the text.

The engine stores a vector per document when its index has a vector field, and
for a bi-encoder that vector is exactly what encoding the text would give, if
the same model made it. Whether it did is for the server to decide, since it
alone knows what it serves: vectors from another model, of another dimension,
for a model that reads text (a cross-encoder, a listwise model), or for chunked
scoring (a stored vector is the whole document's, not a chunk's) are dropped,
their texts encoded, and the reason reported in the response and the metrics.
A request is never refused for it: the texts are always there to fall back on.
"""

from __future__ import annotations

import dataclasses

from rerank_bridge.server.backends.base import Backend
from rerank_bridge.server.domain import RerankRequest
from rerank_bridge.server.metrics import STORED_VECTOR_FALLBACKS


def _refusal(request: RerankRequest, backend: Backend) -> tuple[str, str] | None:
    """(metric label, reason) when none of the request's vectors can be used."""
    if not backend.scores_text_vectors or not backend.embed_dimensions:
        return "kind", f"model {backend.model_id!r} is a {backend.kind}: it scores the text, not vectors"
    if request.embeddings_model != backend.model_id:
        return "model", (
            f"the stored vectors are {request.embeddings_model!r}'s; this server's model is "
            f"{backend.model_id!r}"
        )
    if request.chunking is not None:
        return "chunking", "chunking scores each chunk's text; a stored vector is the whole document's"
    return None


def usable(request: RerankRequest, backend: Backend) -> tuple[RerankRequest, str]:
    """The request keeping only the vectors that can be scored, and why any were dropped."""
    carried = [i for i, d in enumerate(request.documents) if d.embedding is not None]
    if not carried:
        return request, ""
    refusal = _refusal(request, backend)
    if refusal is None:
        dimensions = backend.embed_dimensions
        sizes = {i: len(vector) for i in carried if (vector := request.documents[i].embedding) is not None}
        wrong = [i for i in carried if sizes[i] != dimensions]
        if not wrong:
            return request, ""
        seen = "/".join(map(str, sorted({sizes[i] for i in wrong})))
        refusal = (
            "dimensions",
            f"{len(wrong)} of {len(carried)} stored vectors have {seen} dimensions; "
            f"the model's have {dimensions}",
        )
        dropped = set(wrong)
    else:
        dropped = set(carried)
    label, reason = refusal
    STORED_VECTOR_FALLBACKS.labels(label).inc()
    documents = tuple(
        dataclasses.replace(d, embedding=None) if i in dropped else d for i, d in enumerate(request.documents)
    )
    return dataclasses.replace(request, documents=documents), reason
