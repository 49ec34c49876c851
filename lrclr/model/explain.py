"""Typed explanation results, and the conversions from model tensors to things a person reads.

A model works on a patch grid of its square, letterboxed input and on wordpieces; a radiologist
works on the original image and the report's words. This module turns grid cells into boxes in
original pixels, token-level attention into word-level attention, and grid maps into images.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from lrclr.model.letterbox import Letterbox
from lrclr.model.tokens import TokenWord

TOP_WORDS_PER_REGION = 5


@dataclass(frozen=True)
class FindingScore:
    finding: str
    probability: float  # calibrated by the model card where ``calibrated``, else the raw score
    raw_probability: float | None = None  # softmax over the positive and negative prompt similarities
    calibrated: bool = False


@dataclass(frozen=True)
class WordWeight:
    word_index: int
    text: str
    weight: float


@dataclass(frozen=True)
class RegionExplanation:
    rank: int  # 1 = most significant
    significance: float  # sigmoid of the region selector's logit, in [0, 1]
    cell: tuple[int, int]  # (row, col) in the patch grid
    box: tuple[float, float, float, float]  # (x0, y0, x1, y1) in ORIGINAL image pixels
    top_words: tuple[WordWeight, ...]  # report words this region attends to most


@dataclass(frozen=True)
class WordExplanation:
    index: int
    text: str  # exactly report[start:end]
    start: int
    end: int
    region_attention: tuple[float, ...] | None  # over the regions, by rank; sums to 1; None for the baseline
    patch_similarity: np.ndarray  # (rows, cols) cosine of the word with every patch


@dataclass(frozen=True)
class Explanation:
    model_id: str
    report: str
    report_truncated: bool  # words past the text tower's limit are not grounded
    # How the original image sits in the model's square input: every map and box is drawn with it,
    # so drawing code needs the explanation only, never the model's config.
    letterbox: Letterbox
    grid: tuple[int, int]  # (rows, cols) of the patch grid
    findings: tuple[FindingScore, ...]
    regions: tuple[RegionExplanation, ...]  # empty for the global-only baseline
    words: tuple[WordExplanation, ...]

    @property
    def image_size(self) -> tuple[int, int]:
        """(width, height) of the original image."""
        return self.letterbox.original_size

    def attention_map(self, word_index: int) -> np.ndarray:
        """(rows, cols): the word's attention placed on its regions' cells, zero elsewhere."""
        grid_map = np.zeros(self.grid, dtype=np.float32)
        attention = self.words[word_index].region_attention
        if attention is not None:
            for region, weight in zip(self.regions, attention):
                grid_map[region.cell] += weight
        return grid_map

    def to_dict(self) -> dict:
        """JSON-ready; holds no patient identifiers (the image itself is not included)."""
        data = asdict(self)
        data["image_size"] = list(self.image_size)
        for word in data["words"]:
            word["patch_similarity"] = np.round(word["patch_similarity"], 4).tolist()
        return data


def word_level(token_values: torch.Tensor, words: list[TokenWord], reduce: str = "mean") -> torch.Tensor:
    """(L_tokens, X) -> (n_words, X): mean (or sum) over each word's wordpieces."""
    if not words:
        return token_values.new_zeros((0, token_values.shape[-1]))
    rows = [token_values[list(word.token_indices)] for word in words]
    return torch.stack([row.sum(dim=0) if reduce == "sum" else row.mean(dim=0) for row in rows])


def region_explanations(
    indices: torch.Tensor,  # (k,) flat grid indices, best first
    logits: torch.Tensor,  # (k,)
    region_to_word: torch.Tensor | None,  # (k, n_words) attention already summed per word
    words: list[TokenWord],
    grid: tuple[int, int],
    letterbox: Letterbox,
) -> tuple[RegionExplanation, ...]:
    cols = grid[1]
    significances = torch.sigmoid(logits.float()).tolist()
    regions = []
    for rank, (index, significance) in enumerate(zip(indices.tolist(), significances), start=1):
        cell = (index // cols, index % cols)
        top: tuple[WordWeight, ...] = ()
        if region_to_word is not None and words:
            weights = region_to_word[rank - 1]
            order = torch.argsort(weights, descending=True)[:TOP_WORDS_PER_REGION].tolist()
            top = tuple(WordWeight(i, words[i].text, float(weights[i])) for i in order)
        regions.append(RegionExplanation(rank, float(significance), cell, letterbox.cell_box(*cell, grid), top))
    return tuple(regions)


def grid_to_image(grid_map: np.ndarray, letterbox: Letterbox) -> np.ndarray:
    """Upsample a (rows, cols) map over the square model input to the ORIGINAL image's pixels.

    The map is first resized to the model input, then the letterbox content is cropped out and
    resized to the original size, so a cell lands exactly on the pixels its box covers.
    """
    size = letterbox.model_size
    tensor = torch.from_numpy(np.ascontiguousarray(grid_map, dtype=np.float32))[None, None]
    square = F.interpolate(tensor, size=(size, size), mode="bilinear", align_corners=False)
    content_w, content_h = letterbox.content_size
    top, left = letterbox.pad_top, letterbox.pad_left
    content = square[:, :, top : top + content_h, left : left + content_w]
    width, height = letterbox.original_size
    return F.interpolate(content, size=(height, width), mode="bilinear", align_corners=False)[0, 0].numpy()
