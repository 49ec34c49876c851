"""The feedback term: a flagged word's attention on a flagged grid cell, pushed down (bad) or up (good).

For each flagged pair the measured quantity is what the app shows: the word's attention over the
selected regions (the last interaction layer's word->region attention, heads averaged, wordpieces
averaged, as ``LRCLRModel.explain`` does), taken on the region that sits at the flagged cell. If the
selector no longer picks that cell, the mass is 0.

    flag_loss = mean over bad pairs of mass  -  good_weight * mean over good pairs of mass

Which layers it trains:

* ``local_only`` (default): only the region selector and the interaction layer. A verdict is about
  how a word and a region were paired; the towers and projections keep learning from the
  contrastive loss alone, so a handful of flags cannot bend the global embedding that the zero-shot
  scores are computed from.
* ``selector_grad`` (default on): the selection score enters attention as a prior (log-sigmoid), so
  the term can lower a bad cell's score. Pushed far enough, the cell leaves the selection and is
  hidden from *every* word of that image, which is a different effect from the word attending
  less; ``flag-effect`` reports how much of the drop is this. With it off (or the selector frozen)
  only the attention projections can change; the bundled model's are nearly untrained (its
  attention is almost uniform), and moving them took a learning rate of 1e-2 where 1e-4 and
  1e-3 barely changed the term (BENCHMARKS.md, "Learning from flags").

No extra selector term is added for a bad pair whose cell is already out of the selection: the
word gives it no attention, so the flag is satisfied, and pushing the cell further down would only
hide it from the other words too.

The flag pairs are run in eval mode (frozen batch-norm statistics, no dropout): that is how the
app computes the attention the annotator judged, and a dozen flag images would give noisy batch
statistics. Their images are never augmented, since a flip or shift would move the flagged cell.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Sequence

import torch

from train.datasets.flags import FlagPairs, load_flag_pairs, starting_model_id


@dataclass
class PairAttention:
    mass: torch.Tensor  # (P,) the word's attention on the flagged cell; 0 when it is not selected
    selected: torch.Tensor  # (P,) bool: the selector still picks the flagged cell
    sign: torch.Tensor  # (P,) +1 bad match, -1 good match


def flag_loss(attention: PairAttention, good_weight: float = 0.0) -> torch.Tensor:
    bad, good = attention.sign > 0, attention.sign < 0
    loss = attention.mass[bad].mean() if bad.any() else attention.mass.sum() * 0.0
    if good_weight and good.any():
        loss = loss - good_weight * attention.mass[good].mean()
    return loss


@contextmanager
def inference_modes(model):
    """Eval mode for the duration, then every module back to the mode it was in."""
    modes = {module: module.training for module in model.modules()}
    model.eval()
    try:
        yield
    finally:
        for module, training in modes.items():
            module.training = training


class FlagFeatures:
    """The towers' outputs for the flag cases; whatever is frozen is computed once.

    ``image``: "grid" (the whole image tower frozen: cache its grid), "prefix" (only the last
    ``tail_blocks`` train: cache the frozen prefix) or "none" (run the tower every time).
    """

    def __init__(self, model, pairs: FlagPairs, device: torch.device, image: str = "none",
                 tail_blocks: int = 0, text_frozen: bool = False) -> None:
        self.pairs, self.device, self.image, self.tail_blocks = pairs, device, image, tail_blocks
        self.image_cache = self.text_cache = None
        with torch.no_grad(), inference_modes(model):
            if image != "none":
                self.image_cache = self._image_input(model, range(len(pairs.selection.cases)))
            if text_frozen:
                tokens = pairs.case_tokens(range(len(pairs.selection.cases))).to(device)
                self.text_cache = model.text_tower(tokens.input_ids, tokens.attention_mask)

    def _image_input(self, model, cases) -> torch.Tensor:
        pixels = self.pairs.pixels[list(cases)].to(self.device)
        tower = model.image_tower
        if self.image == "prefix":
            return tower.prefix(tower.normalize(pixels), self.tail_blocks)
        return tower(pixels)

    def image_grid(self, model, cases: Sequence[int]) -> torch.Tensor:
        if self.image_cache is None:
            return self._image_input(model, cases)
        cached = self.image_cache[list(cases)]
        return model.image_tower.tail(cached, self.tail_blocks) if self.image == "prefix" else cached

    def text_states(self, model, cases: Sequence[int], tokens) -> torch.Tensor:
        if self.text_cache is None:
            return model.text_tower(tokens.input_ids, tokens.attention_mask)
        return self.text_cache[list(cases), : tokens.input_ids.shape[1]]


def _encode_cases(model, pairs: FlagPairs, cases: list[int], features: FlagFeatures, local_only: bool):
    """Selected regions and word embeddings of some cases. ``local_only``: the towers and projections
    run without gradient, so only the selector and the interaction layer can learn from the result."""
    device = features.device
    tokens = pairs.case_tokens(cases).to(device)
    with torch.set_grad_enabled(torch.is_grad_enabled() and not local_only):
        image = model.project_image_grid(features.image_grid(model, cases), [pairs.letterboxes[c] for c in cases])
        text = model.project_text_states(features.text_states(model, cases, tokens), tokens)
    regions = model.region_selector(image.patches, image.valid) if local_only else image.regions
    return regions, text


def pair_attention(model, pairs: FlagPairs, indices: Sequence[int], features: FlagFeatures,
                   selector_grad: bool = True, local_only: bool = False) -> PairAttention:
    """Each pair's attention mass on its cell; every case in ``indices`` is encoded once.

    ``selector_grad=False`` stops the gradient through the selection scores (the attention prior),
    so that a loss on this mass can change how words attend, not which cells are selected.
    """
    indices = list(indices)
    targets = [pairs.targets[i] for i in indices]
    cases = sorted({t.case for t in targets})
    row_of = {case: row for row, case in enumerate(cases)}
    device = features.device
    regions, text = _encode_cases(model, pairs, cases, features, local_only)
    logits = regions.logits if selector_grad else regions.logits.detach()
    alignment = model.interaction(text.tokens, text.word_mask, regions.embeddings, logits)
    rows = torch.tensor([row_of[t.case] for t in targets], device=device)
    pieces = torch.zeros(len(indices), text.tokens.shape[1], device=device)
    for p, i in enumerate(indices):  # a word's attention is the mean over its wordpieces
        pieces[p, list(pairs.token_indices[i])] = 1.0 / len(pairs.token_indices[i])
    word_attention = torch.einsum("pl,plk->pk", pieces, alignment.word_to_region[rows].float())
    cells = torch.tensor([pairs.cell_index(i) for i in indices], device=device)
    on_cell = regions.indices[rows] == cells[:, None]
    sign = torch.tensor([t.sign for t in targets], device=device)
    return PairAttention((word_attention * on_cell).sum(-1), on_cell.any(-1), sign)


class FlagFeedback:
    """The trainer's hook: a batch of flagged pairs per micro-step, drawn from (seed, draw, rank).

    Drawing from a seed rather than an iterator keeps exact resume exact without saving any state;
    under ``torchrun`` each rank draws its own batch and DDP averages the gradients, so the term is
    the mean over all ranks' flag batches.
    """

    def __init__(self, config, dataset, is_main: bool = True) -> None:
        self.config, self.dataset, self.is_main = config, dataset, is_main
        self.pairs: FlagPairs | None = None
        self.features: FlagFeatures | None = None

    def prepare(self, model, device: torch.device, image: str, tail_blocks: int, text_frozen: bool) -> None:
        c = self.config
        self.pairs = load_flag_pairs(c.flags, model, image_roots=c.flag_images, dataset=self.dataset,
                                     model_id=starting_model_id(c.init_from), any_model=c.flags_any_model)
        if self.is_main:
            print(self.pairs.selection.summary(), flush=True)
        if len(self.pairs) == 0:
            raise ValueError(f"no usable flags in {c.flags} (see the reasons above); nothing to learn from")
        self.features = FlagFeatures(model, self.pairs, device, image, tail_blocks, text_frozen)

    def draw(self, draw: int, rank: int) -> list[int]:
        generator = torch.Generator().manual_seed(self.config.seed * 1_000_003 + draw * 101 + rank)
        order = torch.randperm(len(self.pairs), generator=generator).tolist()
        return sorted(order[: self.config.flag_batch_size])

    def loss(self, model, draw: int, rank: int = 0) -> torch.Tensor:
        with inference_modes(model):
            attention = pair_attention(model, self.pairs, self.draw(draw, rank), self.features,
                                       self.config.flag_moves_selector, self.config.flag_local_only)
        return flag_loss(attention, self.config.flag_good_weight)
