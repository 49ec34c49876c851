"""Tokenized reports: wordpieces grouped back into the report's words, with exact character spans.

The text tower sees wordpieces ("pneumo", "##thorax"); people read words. A fast tokenizer's
offsets give each wordpiece's span in the original string, so grouping pieces by word and taking
the outer span reproduces the exact substring the radiologist wrote, punctuation and ``XXXX``
de-identification marks included. Tokens that are not words (special tokens, padding, punctuation,
``XXXX``) are left out of the word mask, so the local loss and the explanations ignore them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

# OpenI replaces de-identified words with XXXX; they carry no image content.
_DEID_MARK = re.compile(r"^X{2,}$")
_HAS_ALNUM = re.compile(r"[^\W_]")


@dataclass(frozen=True)
class TokenWord:
    text: str  # exactly report[start:end]
    start: int
    end: int
    token_indices: tuple[int, ...]  # positions in the tokenized sequence


@dataclass
class TokenizedReports:
    input_ids: torch.Tensor  # (B, L)
    attention_mask: torch.Tensor  # (B, L)
    word_mask: torch.Tensor  # (B, L) bool: token belongs to a groundable word
    words: list[list[TokenWord]]  # per report, groundable words in order
    truncated: list[bool]  # per report: did the text run past the token limit

    def to(self, device: torch.device) -> "TokenizedReports":
        self.input_ids = self.input_ids.to(device)
        self.attention_mask = self.attention_mask.to(device)
        self.word_mask = self.word_mask.to(device)
        return self


def is_groundable(word: str) -> bool:
    """Words with letters or digits, except de-identification marks."""
    return bool(_HAS_ALNUM.search(word)) and not _DEID_MARK.match(word)


def tokenize_reports(tokenizer, texts: list[str], max_length: int) -> TokenizedReports:
    encoding = tokenizer(
        texts,
        padding=True,
        truncation=True,
        max_length=max_length,
        return_offsets_mapping=True,
        return_overflowing_tokens=False,
        return_tensors="pt",
    )
    offsets = encoding["offset_mapping"].tolist()
    word_mask = torch.zeros_like(encoding["input_ids"], dtype=torch.bool)
    all_words, truncated = [], []
    for row, text in enumerate(texts):
        words = _group_wordpieces(text, encoding.word_ids(row), offsets[row])
        for word in words:
            word_mask[row, list(word.token_indices)] = True
        all_words.append(words)
        last_end = max((end for _, end in offsets[row]), default=0)
        truncated.append(bool(text[last_end:].strip()))
    return TokenizedReports(encoding["input_ids"], encoding["attention_mask"], word_mask, all_words, truncated)


def _group_wordpieces(text: str, word_ids: list[int | None], offsets: list[list[int]]) -> list[TokenWord]:
    grouped: dict[int, list[int]] = {}
    for position, word_id in enumerate(word_ids):
        if word_id is not None:
            grouped.setdefault(word_id, []).append(position)
    words = []
    for positions in grouped.values():
        start = min(offsets[p][0] for p in positions)
        end = max(offsets[p][1] for p in positions)
        piece = text[start:end]
        if is_groundable(piece):
            words.append(TokenWord(piece, start, end, tuple(positions)))
    return words
