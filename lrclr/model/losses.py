"""Contrastive losses, and the one place that knows about distributed training.

Both losses are symmetric InfoNCE over a batch of image-report pairs: the global one on pooled
embeddings (CLIP, CheXzero), the local one on word-to-region pair scores (GLoRIA-style, scored by
the interaction layer). Under ``torch.distributed`` every rank gathers the other ranks' features
with a differentiable all-gather and scores its own rows and columns against the whole global batch,
so the mean of the ranks' losses, and the gradient DDP averages, equal a one-process run on the
global batch (open_clip's ``local_loss`` with ``gather_with_grad``).
"""

from __future__ import annotations

import warnings

import torch
import torch.distributed as dist
import torch.nn.functional as F

from lrclr.model.interaction import CrossModalInteraction, pairwise_local_scores


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def gather_across_ranks(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Concatenate ``x`` from all ranks along dim 0 (keeping gradients); return it and this rank's offset.

    Ranks must hold the same batch size; the last batch of an epoch is dropped by the sampler for that.
    """
    if not _distributed():
        return x, 0
    from torch.distributed.nn.functional import all_gather

    # Deprecated in favour of functional collectives, whose backward needs reduce_scatter, which
    # gloo (CPU) lacks; this one works on both gloo and nccl.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        parts = all_gather(x.contiguous())
    return torch.cat(parts, dim=0), dist.get_rank() * x.shape[0]


def _pad_length(x: torch.Tensor, length: int, value) -> torch.Tensor:
    if x.shape[1] == length:
        return x
    pad = [0, 0] * (x.ndim - 2) + [0, length - x.shape[1]]
    return F.pad(x, pad, value=value)


def _common_length(length: int) -> int:
    """Ranks tokenize their own reports, so sequences differ in length; pad all to the longest."""
    if not _distributed():
        return length
    value = torch.tensor([length], device="cuda" if dist.get_backend() == "nccl" else "cpu")
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return int(value.item())


def info_nce(image_rows: torch.Tensor, text_rows: torch.Tensor, offset: int,
             targets: torch.Tensor | None = None) -> torch.Tensor:
    """Symmetric cross-entropy; row i's positive is column ``offset + i`` (its own pair), or, with
    ``targets`` (rows x global columns, each row summing to 1), the soft targets of both sides."""
    if targets is None:
        targets = torch.arange(image_rows.shape[0], device=image_rows.device) + offset
    return (F.cross_entropy(image_rows, targets) + F.cross_entropy(text_rows, targets)) / 2


def label_targets(labels: torch.Tensor | None, mix: float) -> tuple[torch.Tensor | None, int]:
    """Soft contrastive targets from finding labels (MedCLIP's semantic matching), or None.

    Two images whose reports state the same findings are not negatives of each other: the target
    of row i is ``(1 - mix) * [its own pair] + mix * (label similarity normalised over the
    columns)``, the similarity being the cosine of the positive-finding vectors with a "no
    finding" entry added (so two normal studies match fully). Labels are (B, F): 1 positive, 0
    negative, anything else unknown; a row with no known label keeps the one-hot target.
    Gathered across ranks like the features, so every rank's targets index the global batch.
    Returns (targets for this rank's rows, this rank's offset).
    """
    if labels is None or mix <= 0:
        return None, 0
    all_labels, offset = gather_across_ranks(labels.float())
    rows, cols = _label_vectors(labels.float()), _label_vectors(all_labels)
    similarity = rows @ cols.T  # (B, B_global), 1 on identical finding sets
    own = torch.zeros_like(similarity)
    own[torch.arange(labels.shape[0]), torch.arange(labels.shape[0]) + offset] = 1.0
    known_row = ((labels == 0) | (labels == 1)).any(-1, keepdim=True)
    known_col = ((all_labels == 0) | (all_labels == 1)).any(-1)[None, :]
    similarity = torch.where(known_row & known_col, similarity, own).clamp(min=0)
    soft = similarity / similarity.sum(-1, keepdim=True).clamp(min=1e-8)
    return (1 - mix) * own + mix * soft, offset


def _label_vectors(labels: torch.Tensor) -> torch.Tensor:
    positive = (labels == 1).float()
    normal = (positive.sum(-1, keepdim=True) == 0).float()
    return F.normalize(torch.cat([positive, normal], dim=-1), dim=-1)


def global_contrastive_loss(
    image_embeddings: torch.Tensor, text_embeddings: torch.Tensor, logit_scale: torch.Tensor,
    targets: torch.Tensor | None = None,
) -> torch.Tensor:
    all_images, offset = gather_across_ranks(image_embeddings)
    all_texts, _ = gather_across_ranks(text_embeddings)
    return info_nce(
        logit_scale * image_embeddings @ all_texts.T,
        logit_scale * text_embeddings @ all_images.T,
        offset, targets,
    )


def local_contrastive_loss(
    interaction: CrossModalInteraction,
    regions: torch.Tensor,
    region_logits: torch.Tensor,
    words: torch.Tensor,
    word_mask: torch.Tensor,
    logit_scale: torch.Tensor,
    targets: torch.Tensor | None = None,
) -> torch.Tensor:
    length = _common_length(words.shape[1])
    words, word_mask = _pad_length(words, length, 0.0), _pad_length(word_mask, length, False)
    all_regions, offset = gather_across_ranks(regions)
    all_region_logits, _ = gather_across_ranks(region_logits)
    all_words, _ = gather_across_ranks(words)
    # Not every backend reduces bool tensors; uint8 travels everywhere.
    all_word_mask = gather_across_ranks(word_mask.to(torch.uint8))[0].bool()
    if not _distributed():
        scores = pairwise_local_scores(interaction, regions, region_logits, words, word_mask)
        return info_nce(logit_scale * scores, logit_scale * scores.T, 0, targets)
    image_rows = pairwise_local_scores(interaction, regions, region_logits, all_words, all_word_mask)
    text_rows = pairwise_local_scores(interaction, all_regions, all_region_logits, words, word_mask).T
    return info_nce(logit_scale * image_rows, logit_scale * text_rows, offset, targets)
