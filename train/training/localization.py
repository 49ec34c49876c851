"""Localization supervision: where a training image's finding masks (or boxes) say a finding is,
teach the region selector to pick those cells and the finding's phrase to attend to them.

The contrastive losses alone never tell the model where a finding lies: a report names findings but
not places, so region selection and word->region attention learn whatever separates the batch's
reports (an LRCLR trained on them alone pointed at the phantoms' findings in 0.10 of cases). The
phantoms carry exact masks, so on those images (and on any dataset with masks or boxes) two terms
are added, ``localization_weight`` x (selection + attention):

- selection: cross-entropy between the selector's softmax over the image's content cells and the
  mask's coverage of each cell (normalised to a distribution): the finding's cells should rank first;
- attention: cross-entropy between the finding phrase's mean word->region attention over the
  selected regions and the coverage of those regions, when at least one selected region touches
  the mask (the selection term brings it there otherwise).

The phrase is ``finding_phrase(finding)``, what the Phrase tab and ``train evaluate`` ask with, so
the attention learned is the attention the app shows for that finding. Images without masks (the
NIH sample) contribute nothing here and train on the contrastive losses alone.

With ``local_only`` the term trains only the region selector and the interaction layer: the
image tower, the projections and so the global embeddings that zero-shot scores use learn from the
contrastive losses alone (as the flag term's ``flag_local_only`` does). Without it (the default)
the term also moves the projections and the image tower's trainable tail, and the pointing game
needs that: local only, the validation pointing game fell from 0.89 to 0.70, with no gain in NIH
AUC (BENCHMARKS.md, "Two more candidates").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from lrclr.model.letterbox import Letterbox
from lrclr.findings import finding_phrase
from train.evaluation.metrics import boxes_to_mask
from train.datasets.sample import Sample

# Cross-entropies take the log of probabilities that may underflow to 0.
LOG_FLOOR = 1e-8


def ground_truth(sample: Sample) -> dict[str, np.ndarray]:
    """Finding -> bool mask in the sample's pixels; a mask wins over boxes; empty ones are dropped."""
    shape = sample.pixels.shape[:2]
    truth = {}
    for finding, mask in sample.masks.items():
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != shape:
            raise ValueError(f"{sample.image_id}: {finding} mask is {mask.shape}, image is {shape}")
        if mask.any():
            truth[finding] = mask
    for finding, boxes in sample.boxes.items():
        if finding not in truth and boxes:
            mask = boxes_to_mask(boxes, shape)
            if mask.any():
                truth[finding] = mask
    return truth


def cell_coverage(mask: np.ndarray, letterbox: Letterbox, grid: tuple[int, int]) -> np.ndarray:
    """(rows * cols,) float32: the fraction of each model cell's image pixels inside ``mask``.

    A pixel belongs to a cell when its centre lies in the cell's box (in original pixels), the
    convention ``boxes_to_mask`` uses; cells on letterbox padding cover no pixels and get 0.
    """
    height, width = mask.shape
    # Integral image: the count inside any pixel rectangle in O(1).
    integral = np.zeros((height + 1, width + 1), dtype=np.int64)
    integral[1:, 1:] = np.cumsum(np.cumsum(mask, axis=0), axis=1)
    rows, cols = grid
    coverage = np.zeros((rows, cols), dtype=np.float32)
    for row in range(rows):
        for col in range(cols):
            x0, y0, x1, y1 = letterbox.cell_box(row, col, grid)
            # Pixels whose centre c + 0.5 lies in [x0, x1): c from ceil(x0 - 0.5) to ceil(x1 - 0.5) - 1.
            c0, c1 = (int(np.clip(np.ceil(v - 0.5), 0, width)) for v in (x0, x1))
            r0, r1 = (int(np.clip(np.ceil(v - 0.5), 0, height)) for v in (y0, y1))
            area = (c1 - c0) * (r1 - r0)
            if area > 0:
                inside = integral[r1, c1] - integral[r0, c1] - integral[r1, c0] + integral[r0, c0]
                coverage[row, col] = inside / area
    return coverage.reshape(-1)


def sample_coverage(sample: Sample, letterbox: Letterbox, grid: tuple[int, int]) -> dict[str, np.ndarray]:
    """Finding -> cell coverage of its ground truth, for the findings whose truth covers a cell."""
    covered = {}
    for finding, mask in ground_truth(sample).items():
        coverage = cell_coverage(mask, letterbox, grid)
        if coverage.any():
            covered[finding] = coverage.astype(np.float16)
    return covered


@dataclass
class LocalizationTargets:
    """The (image, finding) pairs of one batch that have ground truth."""

    image_index: torch.Tensor  # (P,) row of the batch
    phrase_index: torch.Tensor  # (P,) index into the phrase bank's findings
    coverage: torch.Tensor  # (P, rows * cols) fraction of each cell inside the finding


def batch_targets(per_image: Sequence[dict[str, np.ndarray]], findings: Sequence[str],
                  device: torch.device) -> LocalizationTargets | None:
    """Targets for a batch from each image's coverage dict; None when no image has any."""
    position = {finding: i for i, finding in enumerate(findings)}
    images, phrases, coverages = [], [], []
    for row, covered in enumerate(per_image):
        for finding, coverage in covered.items():
            if finding in position:
                images.append(row)
                phrases.append(position[finding])
                coverages.append(torch.from_numpy(np.asarray(coverage, dtype=np.float32)))
    if not images:
        return None
    return LocalizationTargets(torch.tensor(images, device=device), torch.tensor(phrases, device=device),
                               torch.stack(coverages).to(device))


class PhraseBank:
    """The finding phrases, tokenized once; with a frozen text tower, their states computed once."""

    def __init__(self, model, findings: Sequence[str], device: torch.device, text_frozen: bool):
        self.findings = list(findings)
        self.tokens = model.tokenize([finding_phrase(f) for f in self.findings]).to(device)
        self.states = None
        if text_frozen:
            with torch.no_grad():
                self.states = model.text_tower(self.tokens.input_ids, self.tokens.attention_mask).float()

    def features(self, model):
        """The phrases' projected token features (projections train, so this runs every step)."""
        states = self.states
        if states is None:
            states = model.text_tower(self.tokens.input_ids, self.tokens.attention_mask)
        return model.project_text_states(states, self.tokens)


def localization_loss(model, image, targets: LocalizationTargets, phrases: PhraseBank,
                      local_only: bool = False) -> torch.Tensor:
    """Selection + attention cross-entropies (see the module docstring), averaged over the pairs.

    ``image`` is the batch's ``ImageFeatures`` from the contrastive forward, so both losses train
    the same selector outputs and region embeddings. ``local_only``: the selector runs again on the
    detached patches and the phrases are projected without gradient, so only the selector and the
    interaction layer learn from this term.
    """
    regions = model.region_selector(image.patches.detach(), image.valid) if local_only else image.regions
    rows = targets.image_index
    valid = image.valid[rows]
    coverage = targets.coverage * valid
    keep = coverage.sum(-1) > 0
    if not keep.any():
        return regions.all_logits.new_zeros(())
    rows, coverage, valid = rows[keep], coverage[keep], valid[keep]
    phrase_index = targets.phrase_index[keep]
    wanted = coverage / coverage.sum(-1, keepdim=True)
    log_selection = regions.all_logits[rows].float().masked_fill(~valid, float("-inf")).log_softmax(-1)
    selection = -(wanted * log_selection.masked_fill(~valid, 0.0)).sum(-1)

    with torch.set_grad_enabled(torch.is_grad_enabled() and not local_only):
        text = phrases.features(model)
    words, word_mask = text.tokens[phrase_index], text.word_mask[phrase_index]
    alignment = model.interaction(words, word_mask, regions.embeddings[rows], regions.logits[rows])
    weights = word_mask.unsqueeze(-1).to(alignment.word_to_region.dtype)
    attention = (alignment.word_to_region * weights).sum(1) / weights.sum(1).clamp(min=1.0)  # (P, k)
    selected_coverage = coverage.gather(1, regions.indices[rows])
    touched = selected_coverage.sum(-1) > 0
    attention_term = selection.new_zeros(())
    if touched.any():
        wanted_regions = selected_coverage[touched] / selected_coverage[touched].sum(-1, keepdim=True)
        log_attention = attention[touched].float().clamp(min=LOG_FLOOR).log()
        attention_term = -(wanted_regions * log_attention).sum(-1).sum() / len(rows)
    return selection.mean() + attention_term
