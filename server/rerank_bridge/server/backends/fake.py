"""A deterministic, weightless backend: the whole server and the connectors can
be exercised without torch or a model, and the scores still mean something.

Score = share of the query's words found in the document (0..1); embeddings
are hashed bags of words. Options in the model spec, e.g.
`fake?warmup_s=2&forward_s=0.1`, slow warm-up (health tests) and each forward
pass (queue and deadline tests). `faults=on` makes a forward pass misbehave
when a query in it holds one of FAULT_WORDS (fault tests on a real server
process): raise, return one output short, hang for `hang_s`, or kill the
scheduler's worker thread; or fail planning the request (PLAN_FAULT), outside the
scheduler.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import re
import time
from typing import Any
from urllib.parse import parse_qsl

from rerank_bridge.server.backends.base import Backend, BackendLimits, Plan, Sequence
from rerank_bridge.server.domain import (
    EmbedOutcome,
    EmbedRequest,
    RerankOutcome,
    RerankRequest,
    ScoredDocument,
    Usage,
)

DIMENSIONS = 64
_WORD = re.compile(r"\w+")
FAULT_WORDS = ("raiseerror", "shortoutput", "hangforever", "killworker")
# A query holding this fails before the scheduler, where the request is planned.
PLAN_FAULT = "planerror"


def _words(text: str, cap: int) -> tuple[list[str], bool]:
    """The first `cap` words, and whether there were more; reads no further than that."""
    found = [match.group().lower() for match in itertools.islice(_WORD.finditer(text), cap + 1)]
    return found[:cap], len(found) > cap


def _vector(words: list[str]) -> tuple[float, ...]:
    counts = [0.0] * DIMENSIONS
    for word in words:
        counts[int(hashlib.blake2b(word.encode(), digest_size=4).hexdigest(), 16) % DIMENSIONS] += 1.0
    norm = math.sqrt(sum(c * c for c in counts)) or 1.0
    return tuple(c / norm for c in counts)


class FakeBackend(Backend):
    kind = "fake"
    returns_embeddings = True
    embed_dimensions = DIMENSIONS

    def __init__(
        self, options: str, max_query_tokens: int, max_document_tokens: int, name: str = "fake"
    ) -> None:
        settings = dict(parse_qsl(options))
        self.warmup_s = float(settings.pop("warmup_s", 0))
        self.forward_s = float(settings.pop("forward_s", 0))
        self.faults = settings.pop("faults", "off") == "on"
        self.hang_s = float(settings.pop("hang_s", 30))
        if settings:
            raise ValueError(f"unknown fake backend options: {', '.join(settings)}")
        self.model_id = name
        self.limits = BackendLimits(1, 1_000_000, max_query_tokens, max_document_tokens)

    def warm_up(self) -> None:
        time.sleep(self.warmup_s)
        super().warm_up()

    def token_spans(self, texts: list[str], cap: int) -> list[tuple[list[tuple[int, int]], bool]]:
        found = []
        for text in texts:
            spans = [match.span() for match in itertools.islice(_WORD.finditer(text), cap + 1)]
            found.append((spans[:cap], len(spans) > cap))
        return found

    def plan_rerank(self, request: RerankRequest) -> Plan[RerankOutcome]:
        query, _ = _words(request.query, request.max_query_tokens)
        if self.faults and PLAN_FAULT in query:
            raise RuntimeError("fake backend: asked to fail planning this request")
        cut = [_words(d.text, request.max_document_tokens) for d in request.documents]
        docs, truncated = [words for words, _ in cut], [more for _, more in cut]
        usage = Usage(
            query_tokens=len(query),
            document_tokens=sum(map(len, docs)),
            total_tokens=len(query) * len(docs) + sum(map(len, docs)),
            truncated_documents=sum(truncated),
            sequences=len(docs),
        )

        def finish(outputs: list[Any]) -> RerankOutcome:
            keep = request.return_embeddings
            scored = [
                ScoredDocument(i, d.id, outputs[i], truncated[i], _vector(docs[i]) if keep else None)
                for i, d in enumerate(request.documents)
            ]
            return RerankOutcome(scored, usage, _vector(query) if keep else None)

        return Plan([Sequence(len(query) + len(d), (query, d)) for d in docs], finish)

    def plan_embed(self, request: EmbedRequest) -> Plan[EmbedOutcome]:
        texts = [_words(t, request.max_tokens)[0] for t in request.texts]
        usage = Usage(
            document_tokens=sum(map(len, texts)), total_tokens=sum(map(len, texts)), sequences=len(texts)
        )

        def finish(outputs: list[Any]) -> EmbedOutcome:
            return EmbedOutcome(list(outputs), usage)

        return Plan([Sequence(max(1, len(t)), ("embed", t)) for t in texts], finish)

    def _misbehave(self, payloads: list[Any]) -> str | None:
        words = {word for first, _ in payloads if first != "embed" for word in first}
        return next((fault for fault in FAULT_WORDS if fault in words), None)

    def forward(self, payloads: list[Any]) -> list[Any]:
        time.sleep(self.forward_s)
        fault = self._misbehave(payloads) if self.faults else None
        if fault == "raiseerror":
            raise RuntimeError("fake backend: asked to fail this forward pass")
        if fault == "hangforever":
            time.sleep(self.hang_s)
        if fault == "killworker":
            raise SystemExit("fake backend: asked to kill the worker")
        outputs: list[Any] = []
        for first, words in payloads:
            if first == "embed":
                outputs.append(_vector(words))
            else:
                query = set(first)
                outputs.append(len(query & set(words)) / len(query) if query else 0.0)
        return outputs[:-1] if fault == "shortoutput" else outputs
