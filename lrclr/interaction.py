"""Cross-modal interaction between a report's words and an image's selected regions.

Each layer lets words attend over regions and regions attend over words (cross-attention both ways,
residual + LayerNorm + feed-forward). The word->region attention of the last layer is what the app
shows and what the local loss trains: each word's context vector is the attention-weighted mean of
the selected region embeddings, and how well it matches the word (cosine) is the word's local score.
Using the same weights for the explanation and for the loss is what makes the explanation honest.

All functions work on *paired* inputs (P pairs of one word sequence and one region set); the loss
forms every image-report pair of a batch by expanding the batch before calling them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


class CrossAttention(nn.Module):
    """Multi-head attention that also returns the head-averaged attention weights."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        if dim % heads:
            raise ValueError(f"embed_dim {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.query = nn.Linear(dim, dim)
        self.key = nn.Linear(dim, dim)
        self.value = nn.Linear(dim, dim)
        self.out = nn.Linear(dim, dim)

    def forward(
        self,
        queries: torch.Tensor,  # (P, Lq, D)
        keys: torch.Tensor,  # (P, Lk, D)
        key_bias: torch.Tensor | None = None,  # (P, Lk) added to the logits; -inf masks a key
    ) -> tuple[torch.Tensor, torch.Tensor]:
        pairs, n_queries, dim = queries.shape
        head_dim = dim // self.heads

        def split(x: torch.Tensor) -> torch.Tensor:
            return x.view(pairs, -1, self.heads, head_dim).transpose(1, 2)

        q, k, v = split(self.query(queries)), split(self.key(keys)), split(self.value(keys))
        logits = q @ k.transpose(-1, -2) / head_dim**0.5  # (P, H, Lq, Lk)
        if key_bias is not None:
            logits = logits + key_bias[:, None, None, :]
        weights = logits.softmax(dim=-1)
        mixed = (weights @ v).transpose(1, 2).reshape(pairs, n_queries, dim)
        return self.out(mixed), weights.mean(dim=1)


class InteractionLayer(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.word_to_region = CrossAttention(dim, heads)
        self.region_to_word = CrossAttention(dim, heads)
        self.word_norm = nn.LayerNorm(dim)
        self.region_norm = nn.LayerNorm(dim)
        self.word_ffn = _feed_forward(dim)
        self.region_ffn = _feed_forward(dim)

    def forward(self, words, regions, word_bias, region_bias):
        # Both directions read the layer's inputs, so neither modality sees the other's update first.
        word_update, word_attention = self.word_to_region(words, regions, region_bias)
        region_update, region_attention = self.region_to_word(regions, words, word_bias)
        words = self.word_norm(words + word_update)
        regions = self.region_norm(regions + region_update)
        return words + self.word_ffn(words), regions + self.region_ffn(regions), word_attention, region_attention


def _feed_forward(dim: int) -> nn.Module:
    return nn.Sequential(nn.Linear(dim, dim * 2), nn.GELU(), nn.Linear(dim * 2, dim), nn.LayerNorm(dim))


@dataclass
class Alignment:
    word_to_region: torch.Tensor  # (P, L, k) last layer's attention of each word over the regions
    region_to_word: torch.Tensor  # (P, k, L) last layer's attention of each region over the words
    word_scores: torch.Tensor  # (P, L) cosine of each word with its region context
    pair_scores: torch.Tensor  # (P,) aggregated local similarity of each pair


class CrossModalInteraction(nn.Module):
    def __init__(self, dim: int, heads: int, layers: int, gamma: float):
        super().__init__()
        self.layers = nn.ModuleList(InteractionLayer(dim, heads) for _ in range(layers))
        self.gamma = gamma

    def forward(
        self,
        words: torch.Tensor,  # (P, L, D) L2-normalised word embeddings
        word_mask: torch.Tensor,  # (P, L) bool: True for words that count (not padding/punctuation)
        regions: torch.Tensor,  # (P, k, D) L2-normalised region embeddings
        region_logits: torch.Tensor,  # (P, k) selection scores of the regions
    ) -> Alignment:
        # The selection score acts as a prior on attention: this is the scorer's gradient path.
        region_bias = F.logsigmoid(region_logits)
        # Regions may attend to any real token; padding is masked out.
        word_bias = torch.zeros_like(word_mask, dtype=words.dtype).masked_fill(~word_mask, float("-inf"))
        word_bias = torch.where(word_mask.any(dim=1, keepdim=True), word_bias, torch.zeros_like(word_bias))
        hidden_words, hidden_regions = words, regions
        word_attention = region_attention = None
        for layer in self.layers:
            hidden_words, hidden_regions, word_attention, region_attention = layer(
                hidden_words, hidden_regions, word_bias, region_bias
            )
        context = F.normalize(word_attention @ regions, dim=-1)
        word_scores = (context * words).sum(-1)
        return Alignment(word_attention, region_attention, word_scores, self.aggregate(word_scores, word_mask))

    def aggregate(self, word_scores: torch.Tensor, word_mask: torch.Tensor) -> torch.Tensor:
        """A smooth maximum over real words: log(mean(exp(gamma * s))) / gamma.

        GLoRIA sums instead of averaging; the mean keeps the score in [-1, 1] so long reports do not
        outscore short ones merely by having more words. An empty report scores 0 rather than -inf.
        """
        masked = word_scores.masked_fill(~word_mask, float("-inf")) * self.gamma
        count = word_mask.sum(dim=-1).clamp(min=1).to(word_scores.dtype)
        pooled = (torch.logsumexp(masked, dim=-1) - count.log()) / self.gamma
        return torch.where(word_mask.any(dim=-1), pooled, torch.zeros_like(pooled))
