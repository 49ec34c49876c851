"""Region selection: score every cell of the patch grid and keep the k most significant.

Top-k itself has no gradient, so the scorer learns through the selected regions' logits: their
log-sigmoid is added to the word->region attention logits in :mod:`lrclr.model.interaction`, so a region
the scorer rates low receives less attention, and the local loss pushes the scorer towards the
regions that explain the report.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class SelectedRegions:
    indices: torch.Tensor  # (B, k) flat patch-grid indices, best first
    logits: torch.Tensor  # (B, k) the scorer's logits of the kept cells (differentiable)
    embeddings: torch.Tensor  # (B, k, D) the kept patch embeddings
    all_logits: torch.Tensor  # (B, N) the scorer's logits for every cell (invalid cells = -inf)


class RegionSelector(nn.Module):
    def __init__(self, embed_dim: int, hidden: int, num_regions: int):
        super().__init__()
        self.num_regions = num_regions
        self.scorer = nn.Sequential(
            nn.LayerNorm(embed_dim),
            nn.Linear(embed_dim, hidden),
            nn.GELU(),
            nn.Linear(hidden, 1),
        )

    def forward(self, patches: torch.Tensor, valid: torch.Tensor | None = None) -> SelectedRegions:
        """patches: (B, N, D); valid: (B, N) bool, False for cells on letterbox padding."""
        logits = self.scorer(patches).squeeze(-1)
        if valid is not None:
            logits = logits.masked_fill(~valid, float("-inf"))
        k = min(self.num_regions, patches.shape[1])
        top_logits, indices = logits.topk(k, dim=1)
        kept = torch.gather(patches, 1, indices.unsqueeze(-1).expand(-1, -1, patches.shape[-1]))
        return SelectedRegions(indices=indices, logits=top_logits, embeddings=kept, all_logits=logits)
