"""What each rank reads per step: a seeded per-epoch permutation split into global batches (the data
position an exact resume restores), and the collation of samples into a pixel batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from lrclr.model.letterbox import prepare_images
from train.datasets.labels import label_matrix
from train.training.localization import sample_coverage


class EpochBatches:
    """Rank ``rank``'s share of each global batch of a seeded per-epoch permutation (drop_last).

    Every rank draws the same permutation, so together they cover one global batch per step, and
    all ranks hold equally sized batches, which the cross-rank feature gather requires.
    """

    def __init__(self, n_items: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1):
        self.n_items, self.batch_size, self.seed = n_items, batch_size, seed
        self.rank, self.world_size = rank, world_size
        self.per_epoch = n_items // (batch_size * world_size)
        if self.per_epoch == 0:
            raise ValueError(f"{n_items} training items cannot fill one global batch of {batch_size * world_size}")

    def epoch(self, epoch: int, start: int = 0) -> list[list[int]]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        order = torch.randperm(self.n_items, generator=generator).tolist()
        global_batch = self.batch_size * self.world_size
        batches = []
        for index in range(start, self.per_epoch):
            chunk = order[index * global_batch : (index + 1) * global_batch]
            batches.append(chunk[self.rank * self.batch_size : (self.rank + 1) * self.batch_size])
        return batches


@dataclass
class PixelBatch:
    """A batch read from images (the towers run every step); ``CachedBatch`` is the cached twin."""

    pixels: torch.Tensor  # (B, 1, S, S)
    letterboxes: list
    reports: list[str]
    coverage: list[dict] | None  # per image: finding -> cell coverage; None without a target grid
    labels: torch.Tensor  # (B, len(LABEL_FINDINGS)): 1, 0, or -1 unknown
    image_ids: list[str] = field(default_factory=list)  # which samples these are (checks and debugging)


def collate_samples(samples, image_size: int, target_grid: tuple[int, int] | None = None) -> PixelBatch:
    pixels, letterboxes = prepare_images(samples, image_size)
    coverage = None
    if target_grid is not None:
        coverage = [sample_coverage(s, box, target_grid) for s, box in zip(samples, letterboxes)]
    return PixelBatch(pixels, letterboxes, [s.report for s in samples], coverage,
                      label_matrix([s.labels for s in samples]), [s.image_id for s in samples])
