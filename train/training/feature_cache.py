"""Precomputed outputs of frozen towers, so training pays for the towers once, not every epoch.

With both towers frozen (LiT-style locked towers: the budget of a 2-core CPU), their outputs depend
only on the input. The image tower's grid is computed for ``variants`` augmented versions of every
image (epoch e uses variant e mod variants, so augmentation still varies across epochs) and the text
tower's token states once per report. The projections, region selector and interaction layer then
train on cached tensors at a fraction of the cost. The cache is rebuilt identically from the seed,
so an exactly resumed run sees exactly the same features.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lrclr.model.letterbox import Letterbox, prepare_images
from lrclr.model.tokens import TokenizedReports
from train.datasets.labels import label_matrix
from train.training.localization import sample_coverage

CACHE_BATCH = 16


@dataclass
class CachedBatch:
    image_grid: torch.Tensor  # (B, C, rows, cols) float32
    letterboxes: list[Letterbox]
    tokens: TokenizedReports
    text_states: torch.Tensor  # (B, L, H) float32, aligned with ``tokens``
    coverage: list[dict] | None = None  # per image: finding -> cell coverage (localization targets)
    labels: torch.Tensor | None = None  # (B, len(LABEL_FINDINGS)): 1, 0, or -1 unknown
    reports: list[str] | None = None  # the reports ``tokens`` were made from (the sentence term reads them)


class FrozenTowerCache:
    def __init__(self, model, dataset, variants: int, device: torch.device, progress: bool = False,
                 tail_blocks: int = 0, target_grid: tuple[int, int] | None = None):
        self.model, self.device, self.variants = model, device, variants
        # With a target grid, each variant's finding masks are kept as cell coverage (they move with
        # the augmentation, so they are computed per variant like the image features).
        self.target_grid = target_grid
        self.coverage: list[list[dict]] = []  # [variant][index] finding -> (rows * cols,) float16
        # With tail_blocks > 0 the cache holds the image tower's frozen prefix output, not its grid.
        self.tail_blocks = tail_blocks
        self.grids: list[list[torch.Tensor]] = []  # [variant][index] (C, rows, cols) float16
        self.letterboxes: list[list[Letterbox]] = []
        self.reports: list[list[str]] = []  # [variant][index]: a flip also mirrors the report's laterality
        self.labels: torch.Tensor | None = None  # (N, len(LABEL_FINDINGS)); augmentation leaves labels alone
        self.text_states: dict[str, torch.Tensor] = {}  # report -> (L, H) float16
        with torch.no_grad():
            for variant in range(variants):
                self._cache_images(dataset, variant, progress)
            self._cache_texts()

    def _cache_images(self, dataset, variant: int, progress: bool) -> None:
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(variant)
        grids, boxes, reports, coverage, labels = [], [], [], [], []
        indices = range(len(dataset))
        if progress:
            from tqdm.auto import tqdm

            indices = tqdm(indices, desc=f"caching image tower ({variant + 1}/{self.variants})", unit="img")
        chunk = []
        for index in indices:
            chunk.append(dataset[index])
            if len(chunk) == CACHE_BATCH or index == len(dataset) - 1:
                pixels, letterboxes = prepare_images(chunk, self.model.config.image_size)
                grid = self._image_features(pixels.to(self.device)).float().cpu().half()
                grids += list(grid)
                boxes += letterboxes
                reports += [sample.report for sample in chunk]
                labels += [sample.labels for sample in chunk]
                if self.target_grid is not None:
                    coverage += [sample_coverage(s, box, self.target_grid) for s, box in zip(chunk, letterboxes)]
                chunk = []
        self.grids.append(grids)
        self.coverage.append(coverage)
        self.letterboxes.append(boxes)
        self.reports.append(reports)
        if self.labels is None:
            self.labels = label_matrix(labels)

    def _image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        tower = self.model.image_tower
        if self.tail_blocks:
            return tower.prefix(tower.normalize(pixels), self.tail_blocks)
        return tower(pixels)

    def _cache_texts(self) -> None:
        unique = sorted({report for variant in self.reports for report in variant})
        for start in range(0, len(unique), CACHE_BATCH):
            texts = unique[start : start + CACHE_BATCH]
            tokens = self.model.tokenize(texts).to(self.device)
            states = self.model.text_tower(tokens.input_ids, tokens.attention_mask).float().cpu()
            lengths = tokens.attention_mask.sum(1).tolist()
            for i, text in enumerate(texts):
                self.text_states[text] = states[i, : lengths[i]].half()

    def batch(self, indices: list[int], epoch: int) -> CachedBatch:
        variant = epoch % self.variants
        reports = [self.reports[variant][i] for i in indices]
        tokens = self.model.tokenize(reports)
        hidden = self.text_states[reports[0]].shape[-1]
        # Padding positions stay zero; the attention mask keeps them out of every computation.
        states = torch.zeros(len(indices), tokens.input_ids.shape[1], hidden)
        for row, report in enumerate(reports):
            cached = self.text_states[report]
            states[row, : cached.shape[0]] = cached.float()
        grid = torch.stack([self.grids[variant][i] for i in indices]).float()
        coverage = [self.coverage[variant][i] for i in indices] if self.target_grid is not None else None
        return CachedBatch(grid, [self.letterboxes[variant][i] for i in indices], tokens, states, coverage,
                           self.labels[indices], reports)


class CacheView:
    """Some items of a ``FrozenTowerCache`` under their own indices 0..n-1: every cross-validation
    fold trains on a view of one cache over all images instead of recomputing the towers."""

    def __init__(self, cache: FrozenTowerCache, indices: list[int]):
        self.cache, self.indices = cache, list(indices)
        self.tail_blocks = cache.tail_blocks

    def __len__(self) -> int:
        return len(self.indices)

    def batch(self, indices: list[int], epoch: int) -> CachedBatch:
        return self.cache.batch([self.indices[i] for i in indices], epoch)


class SharedCache:
    """One frozen-tower cache over a dataset, built on first use and shared by training runs whose
    frozen parts are the same (cross-validation folds starting from the same towers).

    The frozen parts' weights are fingerprinted with the settings; a run whose frozen parts differ
    (folds started from fold models whose towers were fine-tuned) gets the cache rebuilt for its own
    weights, never features of the wrong ones. Only the latest cache is kept in memory.
    """

    def __init__(self, dataset):
        self.dataset = dataset
        self.cache: FrozenTowerCache | None = None
        self.key: tuple | None = None
        self.builds = 0  # how many times the towers ran over the dataset (the tests check reuse)

    def view(self, indices: list[int], model, device: torch.device, variants: int, tail_blocks: int,
             frozen_modules: list, target_grid: tuple[int, int] | None, progress: bool) -> CacheView:
        key = (variants, tail_blocks, target_grid, model.config.image_size, frozen_fingerprint(frozen_modules))
        if self.cache is None or key != self.key:
            self.cache = None  # free the previous one before building its replacement
            self.cache = FrozenTowerCache(model, self.dataset, variants, device, progress, tail_blocks, target_grid)
            self.key = key
            self.builds += 1
        return CacheView(self.cache, indices)


def frozen_fingerprint(modules: list) -> str:
    """A digest of the parameters and buffers of ``modules`` (the parts a cache stands in for)."""
    import hashlib

    digest = hashlib.sha256()
    for module in modules:
        for name, tensor in list(module.named_parameters()) + list(module.named_buffers()):
            digest.update(name.encode())
            digest.update(tensor.detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]
