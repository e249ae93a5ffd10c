"""The listwise reranker (jina-reranker-v3 design): one causal pass reads the
query and a block of documents; each document is scored by the cosine between
projected hidden states at its marker and at the query marker.

Spec: shared/specs/listwise-model.md. Prompt text and packing live in
listwise_prompt.py; this module does tokenisation, batching and the maths.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from transformers import AutoModel, AutoTokenizer

from rerank_bridge.server.backends.base import Backend, BackendLimits, Plan, Sequence
from rerank_bridge.server.backends.block_budget import (
    activation_bytes_per_token,
    available_memory,
    cpu_block_tokens,
)
from rerank_bridge.server.backends.listwise_prompt import (
    DOC_MARKER,
    MAX_DOCUMENTS_PER_PASS,
    QUERY_MARKER,
    pack_blocks,
    prompt_frame,
    splices_cleanly,
    strip_markers,
)
from rerank_bridge.server.backends.model_files import read_tensors
from rerank_bridge.server.backends.truncation import Truncator
from rerank_bridge.server.devices import Placement
from rerank_bridge.server.domain import RerankOutcome, RerankRequest, ScoredDocument, Usage

log = logging.getLogger(__name__)

PROJECTOR_KEYS = ["projector.0.weight", "projector.2.weight"]
# Room for a block's fixed text (system prompt, passage tags) in the smallest block.
PROMPT_FRAME_TOKENS = 256


@dataclass(frozen=True)
class BlockInput:
    """One block's prompt ids and where its markers sit."""

    ids: np.ndarray  # int64
    doc_positions: list[int]
    query_position: int


@dataclass(frozen=True)
class BlockOutput:
    """Projected vectors in fp32: one row per document, and the query's."""

    documents: torch.Tensor
    query: torch.Tensor


@dataclass(frozen=True)
class PromptDocument:
    """A document as the prompt holds it: its (possibly cut) text, and its own
    token ids where they can be spliced into the prompt unchanged (None: the
    prompt tokenises the text together with what precedes it)."""

    text: str
    tokens: int
    truncated: bool
    ids: list[int] | None


def project_blocks(
    model: torch.nn.Module, projector: torch.nn.Module, blocks: list[BlockInput], pad_id: int
) -> list[BlockOutput]:
    """Each block's projected document and query vectors, in the model's dtype, from one
    forward pass over the blocks padded to one width. Differentiable: serving wraps it in
    inference mode, training (rerank_bridge.training.listwise) runs it with gradients."""
    device = next(model.parameters()).device
    width = max(len(b.ids) for b in blocks)
    input_ids = torch.full((len(blocks), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(blocks), width), dtype=torch.long)
    # Left padding: every sequence ends at the last column, and position ids
    # restart at 0 at each sequence's first real token, so a padded row sees
    # exactly what it would see alone.
    offsets = [width - len(b.ids) for b in blocks]
    for row, (block, offset) in enumerate(zip(blocks, offsets, strict=True)):
        input_ids[row, offset:] = torch.from_numpy(block.ids)
        mask[row, offset:] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    # use_cache=False: the decoder would otherwise keep every layer's keys and
    # values for generation (112 KiB a token at the real shape in bf16), which
    # a single scoring pass never reads.
    hidden = model(
        input_ids=input_ids.to(device),
        attention_mask=mask.to(device) if min(offsets) != max(offsets) else None,
        position_ids=positions.to(device),
        use_cache=False,
    ).last_hidden_state
    rows = torch.tensor(
        [r for r, b in enumerate(blocks) for _ in range(len(b.doc_positions) + 1)], device=device
    )
    cols = torch.tensor(
        [o + p for b, o in zip(blocks, offsets, strict=True) for p in [*b.doc_positions, b.query_position]],
        device=device,
    )
    projected = projector(hidden[rows, cols])
    outputs = []
    start = 0
    for block in blocks:
        end = start + len(block.doc_positions)
        outputs.append(BlockOutput(documents=projected[start:end], query=projected[end]))
        start = end + 1
    return outputs


def merge_blocks(blocks: list[BlockOutput]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Final scores over all blocks, with the merged query and all document vectors.

    Each block's query vector is weighted by its block's best normalised score,
    w_b = max_i (1 + s_b,i) / 2, and every document is scored against the
    weighted mean of the raw (not unit-normalised) query vectors. One block
    reduces to its own in-block cosine.
    """
    documents = torch.cat([b.documents for b in blocks])
    if len(blocks) == 1:
        query = blocks[0].query
    else:
        queries = torch.stack([b.query for b in blocks])
        weights = torch.stack(
            [((1 + F.cosine_similarity(b.query[None], b.documents, dim=-1)) / 2).max() for b in blocks]
        )
        query = (weights[:, None] * queries).sum(0) / weights.sum()
    return F.cosine_similarity(query[None], documents, dim=-1), query, documents


class ListwiseBackend(Backend):
    truncator: Truncator
    kind = "listwise"
    returns_embeddings = True

    def __init__(
        self,
        folder: Path,
        model_id: str,
        placement: Placement,
        max_query_tokens: int,
        max_document_tokens: int,
        max_documents_per_pass: int = MAX_DOCUMENTS_PER_PASS,
        context_length: int = 0,
        pad_batches: bool | None = None,
    ) -> None:
        self.model_id = model_id
        # A padded batch needs an explicit attention mask, which costs SDPA its
        # causal fast path: on CPU, where one long block already fills every
        # core, that made a 13-block batch 2x slower than the blocks one by
        # one (bench/server_throughput.py). On a GPU batching pays.
        self.pad_batches = placement.device.type != "cpu" if pad_batches is None else pad_batches
        self.placement = placement
        self.device = placement.device.type
        self.dtype = placement.dtype_name
        self.dtype_reason = placement.dtype_reason
        self.tokenizer = AutoTokenizer.from_pretrained(str(folder))
        self.truncator = Truncator.of(self.tokenizer, ids_only=True)
        # AutoModel maps model_type qwen3 to the bare decoder and strips the
        # checkpoint's `model.` prefix; the projector is read separately.
        model, loading = AutoModel.from_pretrained(
            str(folder),
            dtype=placement.dtype,
            attn_implementation=placement.attention,
            output_loading_info=True,
        )
        # A missing backbone weight would be silently random-initialised.
        if loading["missing_keys"]:
            raise ValueError(f"{folder}: checkpoint lacks {sorted(loading['missing_keys'])[:5]}")
        self.model = model.to(placement.device)
        self.model.eval()
        self.projector = self._load_projector(folder)
        self.doc_marker_id = self._token_id(DOC_MARKER)
        self.query_marker_id = self._token_id(QUERY_MARKER)
        self._prefix_cache: dict[int, list[int]] = {}
        pad = self.tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else (self.tokenizer.eos_token_id or 0)
        self.limits = BackendLimits(
            max_documents_per_pass=max_documents_per_pass,
            context_length=self._block_tokens(context_length, max_query_tokens, max_document_tokens),
            max_query_tokens=max_query_tokens,
            max_document_tokens=max_document_tokens,
        )

    def _block_tokens(self, context_length: int, max_query_tokens: int, max_document_tokens: int) -> int:
        """Tokens one block may hold: `context_length` if given, else the model's
        context, on a CPU capped by the memory free now (block_budget.py)."""
        model_context = int(self.model.config.max_position_embeddings)
        if context_length:
            return min(context_length, model_context)
        if self.placement.device.type != "cpu":
            return model_context
        per_token = activation_bytes_per_token(self.model.config, self.placement.dtype.itemsize)
        # The smallest useful block: the query twice and one whole document, with room for the frame.
        floor = min(model_context, 2 * max_query_tokens + max_document_tokens + PROMPT_FRAME_TOKENS)
        tokens = cpu_block_tokens(model_context, per_token, available_memory(), floor)
        if tokens < model_context:
            log.info("listwise blocks capped at %d tokens on this CPU by free memory", tokens)
        return tokens

    def _token_id(self, token: str) -> int:
        token_id = self.tokenizer.convert_tokens_to_ids(token)
        if token_id is None or token_id == self.tokenizer.unk_token_id:
            raise ValueError(f"tokenizer of {self.model_id} has no {token} token: not a listwise model")
        # The prompt is assembled around the markers as single added tokens.
        if self.truncator.backend.encode(f"a{token}b", add_special_tokens=False).ids.count(token_id) != 1:
            raise ValueError(f"tokenizer of {self.model_id} does not read {token} as one token")
        return int(token_id)

    def _load_projector(self, folder: Path) -> torch.nn.Sequential:
        weights = read_tensors(folder, PROJECTOR_KEYS)
        first, second = weights["projector.0.weight"], weights["projector.2.weight"]
        projector = torch.nn.Sequential(
            torch.nn.Linear(first.shape[1], first.shape[0], bias=False),
            torch.nn.ReLU(),
            torch.nn.Linear(second.shape[1], second.shape[0], bias=False),
        )
        projector.load_state_dict({"0.weight": first, "2.weight": second})
        return projector.to(device=self.placement.device, dtype=self.placement.dtype).eval()

    def _prompt_documents(self, texts: list[str], cap: int) -> list[PromptDocument]:
        """Each text cut to `cap` tokens, tokenised once. Like the reference, a cut
        text is the decoded kept ids; those ids are not what the decoded text
        tokenises to in every case, so a cut text is tokenised again in the prompt."""
        documents = []
        for text, cut in zip(texts, self.truncator.cut(texts, cap), strict=True):
            if cut.truncated:
                documents.append(PromptDocument(self.tokenizer.decode(cut.ids), cut.tokens, True, None))
            else:
                ids = cut.ids if splices_cleanly(text) else None
                documents.append(PromptDocument(text, cut.tokens, False, ids))
        return documents

    def _prefix_ids(self, index: int) -> list[int]:
        """Ids of the fixed text before document `index` >= 1 (the same in every block)."""
        if index not in self._prefix_cache:
            text = prompt_frame("", index + 1)[0][index]
            (self._prefix_cache[index],) = self.truncator.encode_many([text])
        return self._prefix_cache[index]

    def _block_input(self, query: str, documents: list[PromptDocument], instruction: str) -> BlockInput:
        """The block's prompt ids, assembled from pieces (listwise_prompt.splices_cleanly
        says when that equals tokenising the whole prompt, and the rest is tokenised
        with its prefix): one tokenizer call per block, no per-token Python work."""
        prefixes, tail = prompt_frame(query, len(documents), instruction)
        joint = [i for i, doc in enumerate(documents) if doc.ids is None]
        # The header is needed on its own only when the first document is spliced.
        head = [] if 0 in joint else [prefixes[0]]
        encoded = self.truncator.encode_many([tail, *head, *(prefixes[i] + documents[i].text for i in joint)])
        tail_ids, head_ids = encoded[0], encoded[1] if head else []
        joint_ids = dict(zip(joint, encoded[1 + len(head) :], strict=True))
        ids: list[int] = []
        doc_positions = []
        for i, doc in enumerate(documents):
            if doc.ids is None:
                ids.extend(joint_ids[i])
            else:
                ids.extend(head_ids if i == 0 else self._prefix_ids(i))
                ids.extend(doc.ids)
            doc_positions.append(len(ids))
            ids.append(self.doc_marker_id)
        # Sanitising keeps markers out of user text; a tokenizer that split the
        # query marker would break this, and must not be scored silently.
        if tail_ids.count(self.query_marker_id) != 1:
            raise RuntimeError("the prompt's tail does not hold exactly one query marker")
        query_position = len(ids) + tail_ids.index(self.query_marker_id)
        ids.extend(tail_ids)
        return BlockInput(np.array(ids, dtype=np.int64), doc_positions, query_position)

    def prompt_block(
        self, query: str, texts: list[str], max_query_tokens: int, max_document_tokens: int
    ) -> BlockInput:
        """One block of these documents, built as a Rerank that fits one pass builds it
        (markers stripped, each text cut to its cap): what training reads."""
        (cut_query,) = self._prompt_documents([strip_markers(query)], max_query_tokens)
        docs = self._prompt_documents([strip_markers(text) for text in texts], max_document_tokens)
        return self._block_input(cut_query.text, docs, "")

    def plan_rerank(self, request: RerankRequest) -> Plan[RerankOutcome]:
        (query,) = self._prompt_documents([strip_markers(request.query)], request.max_query_tokens)
        instruction = strip_markers(request.instruction)
        docs = self._prompt_documents(
            [strip_markers(d.text) for d in request.documents], request.max_document_tokens
        )
        blocks = pack_blocks(
            [d.tokens for d in docs],
            query.tokens,
            self.limits.context_length,
            request.max_document_tokens,
            self.limits.max_documents_per_pass,
        )
        inputs = [self._block_input(query.text, [docs[i] for i in block], instruction) for block in blocks]
        usage = Usage(
            query_tokens=query.tokens,
            document_tokens=sum(d.tokens for d in docs),
            total_tokens=sum(len(b.ids) for b in inputs),
            truncated_documents=sum(d.truncated for d in docs),
            sequences=len(inputs),
        )

        def finish(outputs: list[Any]) -> RerankOutcome:
            scores, merged_query, vectors = merge_blocks(outputs)
            scored = [
                ScoredDocument(
                    index=i,
                    id=doc.id,
                    score=float(scores[i]),
                    truncated=docs[i].truncated,
                    embedding=tuple(vectors[i].tolist()) if request.return_embeddings else None,
                )
                for i, doc in enumerate(request.documents)
            ]
            query_vector = tuple(merged_query.tolist()) if request.return_embeddings else None
            return RerankOutcome(scored, usage, query_vector)

        return Plan([Sequence(len(b.ids), b) for b in inputs], finish)

    def forward(self, payloads: list[Any]) -> list[Any]:
        if self.pad_batches:
            return self._forward_padded(payloads)
        return [output for block in payloads for output in self._forward_padded([block])]

    @torch.inference_mode()
    def _forward_padded(self, blocks: list[BlockInput]) -> list[BlockOutput]:
        # Projection in the model dtype, everything after it in fp32 (spec).
        return [
            BlockOutput(documents=out.documents.float().cpu(), query=out.query.float().cpu())
            for out in project_blocks(self.model, self.projector, blocks, self.pad_id)
        ]
