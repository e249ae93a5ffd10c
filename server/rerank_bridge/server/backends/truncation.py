"""The one way every model backend cuts a text to a token cap and says what
the model saw.

A text is first cut to a character bound derived from the cap: cap + 1 tokens,
each at most as long as the tokenizer's longest vocabulary entry plus one
separating character. So a 5 MB document costs the tokenizer a few thousand
characters, not five million, and the tokens within the cap are the ones the
whole text would give. (Only text with long runs of characters no token
covers, such as whitespace a BERT tokenizer drops, can lose tokens to the
bound; those are then reported as what they are: fewer tokens, truncated.)
The head is tokenised once, without special tokens, and cut to the cap;
`tokens` and `truncated` describe what the model reads, whoever did the cutting.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tokenizers import Encoding, Tokenizer

from rerank_bridge.server.backends.fast_bpe import TiktokenEncoder


@dataclass(frozen=True)
class Cut:
    ids: list[int]  # the kept tokens, no special tokens
    tokens: int
    truncated: bool
    # The same tokens as `tokenizers` made them, for model_input's post-processing;
    # None where the tiktoken encoder (fast_bpe.py) cut the text.
    encoding: Encoding | None = None


class Truncator:
    def __init__(self, backend: Tokenizer, model_input_names: list[str], ids_only: bool = False) -> None:
        """`backend`: the Rust tokenizer (copied, without the padding and truncation a
        saved tokenizer may carry); `model_input_names`: the inputs the model reads.
        `ids_only`: the caller never asks for model_input, so cut() may use the
        tiktoken encoder where one fits the tokenizer (fast_bpe.py)."""
        self.model_input_names = list(model_input_names)
        self.backend = Tokenizer.from_str(backend.to_str())
        self.backend.no_padding()
        self.backend.no_truncation()
        longest = max((len(token) for token in self.backend.get_vocab()), default=1)
        self.chars_per_token = longest + 1
        self.fast = TiktokenEncoder.for_tokenizer(self.backend) if ids_only else None

    @classmethod
    def of(cls, tokenizer: Any, ids_only: bool = False) -> Truncator:
        """For a transformers fast tokenizer."""
        return cls(tokenizer.backend_tokenizer, tokenizer.model_input_names, ids_only)

    def char_bound(self, cap: int) -> int:
        return (cap + 1) * self.chars_per_token

    def cut(self, texts: list[str], cap: int) -> list[Cut]:
        """Each text cut to at most `cap` tokens (one tokenizer call for all of them)."""
        bound = self.char_bound(cap)
        heads = [text[:bound] for text in texts]
        cuts = []
        for text, head, (ids, encoding) in zip(texts, heads, self._encode(heads), strict=True):
            read = len(ids)
            if encoding is not None and read > cap:
                encoding.truncate(cap)
            cuts.append(Cut(ids[:cap], min(read, cap), read > cap or len(head) < len(text), encoding))
        return cuts

    def encode_many(self, texts: list[str]) -> list[list[int]]:
        """Each text's ids, without special tokens, uncut."""
        return [ids for ids, _ in self._encode(texts)]

    def _encode(self, texts: list[str]) -> list[tuple[list[int], Encoding | None]]:
        """Ids and, from `tokenizers`, the Encoding too (tiktoken makes none).
        encode_batch_fast skips character offsets (a quarter of the tokenizer's time
        here); only spans() needs them."""
        if self.fast is not None:
            return [(self.fast.encode(text), None) for text in texts]
        return [(e.ids, e) for e in self.backend.encode_batch_fast(texts, add_special_tokens=False)]

    def spans(self, texts: list[str], cap: int) -> list[tuple[list[tuple[int, int]], bool]]:
        """The character spans of each text's first `cap` tokens (offsets into the text,
        so no span splits a token), and whether the text goes on past them."""
        bound = self.char_bound(cap)
        heads = [text[:bound] for text in texts]
        found = []
        for text, head, encoding in zip(
            texts, heads, self.backend.encode_batch(heads, add_special_tokens=False), strict=True
        ):
            offsets = [(start, end) for start, end in encoding.offsets if end > start]
            more = len(offsets) > cap or (len(head) < len(text) and bool(text[len(head) :].strip()))
            found.append((offsets[:cap], more))
        return found

    def model_input(self, first: Cut, second: Cut | None = None) -> dict[str, list[int]]:
        """The model's input for one text (or a pair), with its special tokens."""
        if first.encoding is None or (second is not None and second.encoding is None):
            raise RuntimeError(
                "model_input needs cuts made by tokenizers (pointwise models never use tiktoken)"
            )
        encoding = self.backend.post_process(
            first.encoding, second.encoding if second is not None else None, add_special_tokens=True
        )
        fields = {
            "input_ids": encoding.ids,
            "token_type_ids": encoding.type_ids,
            "attention_mask": encoding.attention_mask,
        }
        return {name: list(fields[name]) for name in self.model_input_names if name in fields}

    def special_tokens(self, pair: bool) -> int:
        """How many tokens (CLS, SEP, ...) the model input adds around one text or a pair."""
        processor = self.backend.post_processor
        return int(processor.num_special_tokens_to_add(pair)) if processor is not None else 0
