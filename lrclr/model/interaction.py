"""Cross-modal interaction between a report's words and an image's selected regions.

Each layer lets words attend over regions and regions attend over words (cross-attention both ways,
residual + LayerNorm + feed-forward). The word->region attention of the last layer is what the app
shows and what the local loss trains: each word's context vector is the attention-weighted mean of
the selected region embeddings, and how well it matches the word (cosine) is the word's local score.
Using the same weights for the explanation and for the loss is what makes the explanation honest.

``forward`` works on *paired* inputs (P pairs of one word sequence and one region set);
``pairwise_scores`` scores every image of a batch against every report, as the losses need.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

# Pairs per chunk when every image-report pair must be run separately; bounds peak memory.
PAIR_CHUNK = 1024


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

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """(N, L, D) -> (N, H, L, D / H), scaled so that q . k needs no further scaling."""
        n, length, dim = x.shape
        return x.view(n, length, self.heads, dim // self.heads).transpose(1, 2)

    def forward(
        self,
        queries: torch.Tensor,  # (P, Lq, D)
        keys: torch.Tensor,  # (P, Lk, D)
        key_bias: torch.Tensor | None = None,  # (P, Lk) added to the logits; -inf masks a key
    ) -> tuple[torch.Tensor, torch.Tensor]:
        pairs, n_queries, dim = queries.shape
        weights = self.head_weights(queries, keys, key_bias)
        mixed = (weights @ self.split_heads(self.value(keys))).transpose(1, 2).reshape(pairs, n_queries, dim)
        return self.out(mixed), weights.mean(dim=1)

    def head_weights(self, queries, keys, key_bias=None, pair_bias=None) -> torch.Tensor:
        """(P, H, Lq, Lk) attention weights of every head; ``pair_bias`` (P, Lq, Lk) is added to
        every head's logits."""
        q, k = self.split_heads(self.query(queries)), self.split_heads(self.key(keys))
        logits = q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5
        if key_bias is not None:
            logits = logits + key_bias[:, None, None, :]
        if pair_bias is not None:
            logits = logits + pair_bias[:, None]
        return logits.softmax(dim=-1)


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
    """``layers - 1`` full interaction layers, then the attention of the last one.

    Only the last layer's attention weights reach the outputs (the explanation and the local score
    use them with the input region embeddings), so the last layer is built without the value,
    output and feed-forward parts that nothing would read. With a single layer, attention depends
    on each word and each region alone, which lets ``pairwise_scores`` score every image against
    every report without forming the pairs (see there).

    ``cosine_scale`` adds scale x cos(word, region) to the last layer's attention logits (GLoRIA's
    attention is this term alone). Learned query/key projections start near zero and, trained on
    reports that rarely say where a finding is, stayed there: every word's attention was the
    selector's prior, the same map for "left pleural effusion" and "the" (BENCHMARKS.md, "Maps
    that depend on the text"). The cosine term ties attention to the word-patch similarity the
    contrastive losses shape, so what a word attends to depends on the word from the first step.
    """

    def __init__(self, dim: int, heads: int, layers: int, gamma: float, cosine_scale: float = 0.0):
        super().__init__()
        if layers < 1:
            raise ValueError("interaction_layers must be at least 1")
        self.layers = nn.ModuleList(InteractionLayer(dim, heads) for _ in range(layers - 1))
        self.word_to_region = CrossAttention(dim, heads)
        self.region_to_word = CrossAttention(dim, heads)
        self.gamma = gamma
        self.cosine_scale = float(cosine_scale)

    def forward(
        self,
        words: torch.Tensor,  # (P, L, D) L2-normalised word embeddings
        word_mask: torch.Tensor,  # (P, L) bool: True for words that count (not padding/punctuation)
        regions: torch.Tensor,  # (P, k, D) L2-normalised region embeddings
        region_logits: torch.Tensor,  # (P, k) selection scores of the regions
    ) -> Alignment:
        # The selection score acts as a prior on attention: this is the scorer's gradient path.
        region_bias = F.logsigmoid(region_logits)
        word_bias = _word_bias(word_mask, words.dtype)
        hidden_words, hidden_regions = words, regions
        for layer in self.layers:
            hidden_words, hidden_regions, _, _ = layer(hidden_words, hidden_regions, word_bias, region_bias)
        cosine = self._cosine_bias(words, regions)  # (P, L, k) or None
        word_attention = self.word_to_region.head_weights(hidden_words, hidden_regions, region_bias, cosine).mean(1)
        region_attention = self.region_to_word.head_weights(
            hidden_regions, hidden_words, word_bias, None if cosine is None else cosine.transpose(1, 2)).mean(1)
        context = F.normalize(word_attention @ regions, dim=-1)
        word_scores = (context * words).sum(-1)
        return Alignment(word_attention, region_attention, word_scores, self.aggregate(word_scores, word_mask))

    def pairwise_scores(
        self,
        regions: torch.Tensor,  # (Bi, k, D)
        region_logits: torch.Tensor,  # (Bi, k)
        words: torch.Tensor,  # (Bt, L, D)
        word_mask: torch.Tensor,  # (Bt, L)
    ) -> torch.Tensor:
        """(Bi, Bt) local similarity of every image with every report."""
        if self.layers:  # deeper stacks mix words and regions: each pair must be run on its own
            return self._expanded_pairwise_scores(regions, region_logits, words, word_mask)
        attention = self.word_to_region
        queries = attention.split_heads(attention.query(words))  # (Bt, H, L, d)
        keys = attention.split_heads(attention.key(regions))  # (Bi, H, k, d)
        logits = torch.einsum("thld,ihkd->ithlk", queries, keys) / queries.shape[-1] ** 0.5
        logits = logits + F.logsigmoid(region_logits)[:, None, None, None, :]
        if self.cosine_scale:
            logits = logits + self.cosine_scale * torch.einsum("tld,ikd->itlk", words, regions)[:, :, None]
        weights = logits.softmax(dim=-1).mean(dim=2)  # (Bi, Bt, L, k), heads averaged
        context = F.normalize(torch.einsum("itlk,ikd->itld", weights, regions), dim=-1)
        word_scores = torch.einsum("itld,tld->itl", context, words)
        return self.aggregate(word_scores, word_mask.unsqueeze(0).expand_as(word_scores))

    def _expanded_pairwise_scores(self, regions, region_logits, words, word_mask) -> torch.Tensor:
        n_images, n_texts = regions.shape[0], words.shape[0]
        image_index = torch.arange(n_images, device=regions.device).repeat_interleave(n_texts)
        text_index = torch.arange(n_texts, device=regions.device).repeat(n_images)
        scores = []
        for start in range(0, image_index.numel(), PAIR_CHUNK):
            i, t = image_index[start : start + PAIR_CHUNK], text_index[start : start + PAIR_CHUNK]
            scores.append(self(words[t], word_mask[t], regions[i], region_logits[i]).pair_scores)
        return torch.cat(scores).view(n_images, n_texts)

    def _cosine_bias(self, words: torch.Tensor, regions: torch.Tensor) -> torch.Tensor | None:
        """(P, L, k) scale x cosine of each (normalised) word with each region; None when off."""
        if not self.cosine_scale:
            return None
        return self.cosine_scale * (words @ regions.transpose(1, 2))

    def aggregate(self, word_scores: torch.Tensor, word_mask: torch.Tensor) -> torch.Tensor:
        """A smooth maximum over real words: log(mean(exp(gamma * s))) / gamma.

        GLoRIA sums instead of averaging; the mean keeps the score in [-1, 1] so long reports do not
        outscore short ones merely by having more words. An empty report scores 0 rather than -inf.
        """
        masked = word_scores.masked_fill(~word_mask, float("-inf")) * self.gamma
        count = word_mask.sum(dim=-1).clamp(min=1).to(word_scores.dtype)
        pooled = (torch.logsumexp(masked, dim=-1) - count.log()) / self.gamma
        return torch.where(word_mask.any(dim=-1), pooled, torch.zeros_like(pooled))


def _word_bias(word_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Regions may attend to any real word; other tokens are masked (all of them if none is real)."""
    bias = torch.zeros_like(word_mask, dtype=dtype).masked_fill(~word_mask, float("-inf"))
    return torch.where(word_mask.any(dim=1, keepdim=True), bias, torch.zeros_like(bias))


def pairwise_local_scores(
    interaction: CrossModalInteraction,
    regions: torch.Tensor,  # (Bi, k, D)
    region_logits: torch.Tensor,  # (Bi, k)
    words: torch.Tensor,  # (Bt, L, D)
    word_mask: torch.Tensor,  # (Bt, L)
) -> torch.Tensor:
    """(Bi, Bt) local similarity of every image with every report: what the local loss contrasts and
    what zero-shot scoring mixes in (so inference never goes through the loss module)."""
    return interaction.pairwise_scores(regions, region_logits, words, word_mask)
