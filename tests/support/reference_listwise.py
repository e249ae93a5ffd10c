"""A plain, one-block-per-forward reference of the listwise spec
(shared/specs/listwise-model.md), written independently of the server's code:
its own prompt text, packing loop and head maths, eager attention, fp32, no
padding. The server's batched path must agree with it.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file
from transformers import AutoModel, AutoTokenizer

SYSTEM = (
    "You are a search relevance expert who can determine a ranking of the passages based on how relevant "
    "they are to the query. If the query is a question, how relevant a passage is depends on how well it "
    "answers the question. If not, try to analyze the intent of the query and assess how well each passage "
    "satisfies the intent. If an instruction is provided, you should follow the instruction when determining "
    "the ranking."
)


def prompt(query: str, docs: list[str], instruction: str) -> str:
    text = "<|im_start|>system\n" + SYSTEM + "<|im_end|>\n<|im_start|>user\n"
    text += f"I will provide you with {len(docs)} passages, each indicated by a numerical identifier. "
    text += f"Rank the passages based on their relevance to query: {query}\n"
    if instruction:
        text += "<instruct>\n" + instruction + "\n</instruct>\n"
    parts = []
    for i, doc in enumerate(docs):
        parts.append('<passage id="' + str(i) + '">\n' + doc + "<|embed_token|>\n</passage>")
    text += "\n".join(parts)
    text += "\n<query>\n" + query + "<|rerank_token|>\n</query><|im_end|>\n<|im_start|>assistant\n"
    text += "<think>\n\n</think>\n\n"
    return text


class ReferenceListwise:
    def __init__(self, folder: Path) -> None:
        self.tok = AutoTokenizer.from_pretrained(str(folder))
        self.model = AutoModel.from_pretrained(
            str(folder), dtype=torch.float32, attn_implementation="eager"
        ).eval()
        weights = load_file(str(folder / "model.safetensors"))
        self.w1, self.w2 = weights["projector.0.weight"].float(), weights["projector.2.weight"].float()
        self.context = self.model.config.max_position_embeddings

    def _clean(self, text: str) -> str:
        while "<|embed_token|>" in text or "<|rerank_token|>" in text:
            text = text.replace("<|embed_token|>", "").replace("<|rerank_token|>", "")
        return text

    def _cut(self, text: str, cap: int) -> tuple[str, int]:
        ids = self.tok(text, add_special_tokens=False)["input_ids"]
        return (self.tok.decode(ids[:cap]), cap) if len(ids) > cap else (text, len(ids))

    def _project(self, h: torch.Tensor) -> torch.Tensor:
        return torch.relu(h @ self.w1.T) @ self.w2.T

    @torch.no_grad()
    def _block(self, query: str, docs: list[str], instruction: str) -> tuple[torch.Tensor, torch.Tensor]:
        ids = self.tok(prompt(query, docs, instruction), add_special_tokens=False, return_tensors="pt")[
            "input_ids"
        ]
        hidden = self.model(input_ids=ids).last_hidden_state[0]
        doc_id = self.tok.convert_tokens_to_ids("<|embed_token|>")
        query_id = self.tok.convert_tokens_to_ids("<|rerank_token|>")
        doc_rows = (ids[0] == doc_id).nonzero().flatten()
        query_rows = (ids[0] == query_id).nonzero().flatten()
        assert len(doc_rows) == len(docs) and len(query_rows) == 1
        return self._project(hidden[doc_rows]), self._project(hidden[query_rows[0]])

    def scores(
        self,
        query: str,
        docs: list[str],
        instruction: str = "",
        max_query_tokens: int = 512,
        max_document_tokens: int = 2048,
        per_pass: int = 125,
        context: int | None = None,
    ) -> list[float]:
        query, query_len = self._cut(self._clean(query), max_query_tokens)
        cut = [self._cut(self._clean(d), max_document_tokens) for d in docs]
        budget = (context or self.context) - 2 * query_len
        blocks: list[list[int]] = [[]]
        left = budget
        for i, (_, n) in enumerate(cut):
            if blocks[-1] and (len(blocks[-1]) >= per_pass or left <= max_document_tokens):
                blocks.append([])
                left = budget
            blocks[-1].append(i)
            left -= n
        outs = [self._block(query, [cut[i][0] for i in b], self._clean(instruction)) for b in blocks]
        cos = torch.nn.functional.cosine_similarity
        if len(outs) == 1:
            d, q = outs[0]
            return cos(q[None], d).tolist()
        weights = [float(((1 + cos(q[None], d)) / 2).max()) for d, q in outs]
        merged = sum(w * q for w, (_, q) in zip(weights, outs, strict=True)) / sum(weights)
        every = torch.cat([d for d, _ in outs])
        return cos(merged[None], every).tolist()
