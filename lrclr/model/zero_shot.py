"""Zero-shot finding scores from positive/negative prompt pairs (CheXpert-free, CheXzero-style).

For a finding f the image is compared with the positive prompts ("there is pleural effusion.") and
the negative ones ("no pleural effusion."). Similarity mixes the global cosine with the local
word-region score of the interaction layer (weight ``zero_shot_local_weight``; 0 for the baseline),
each averaged over templates; p(f) = softmax(scale * [sim_pos, sim_neg])[0], then calibrated
per finding where the model card holds a calibration (``lrclr.model.calibration``).

Prompt embeddings depend only on the weights, so they are computed once per finding and device and
cached; the cache is cleared whenever the model switches mode or device.

Nothing here calls the model: it hands over what scoring reads (a ``ScoringRule`` and the encoded
prompts), so the arithmetic of a score is all in this file.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from lrclr.model.calibration import Calibration, sigmoid
from lrclr.model.interaction import CrossModalInteraction, pairwise_local_scores
from lrclr.model.prompts import prompts_for

if TYPE_CHECKING:
    from lrclr.model.lrclr_model import ImageFeatures, TextFeatures


@dataclass(frozen=True)
class ZeroShotScores:
    findings: tuple[str, ...]
    probabilities: np.ndarray  # (n_images, n_findings): calibrated where ``calibrated`` says so, else raw
    logits: np.ndarray  # (n_images, n_findings) raw: scale * (sim_pos - sim_neg)
    calibrated: tuple[bool, ...] = ()  # per finding: does the model card calibrate it?
    image_embeddings: np.ndarray | None = None  # (n_images, D) global embeddings (the input gate reads them)

    @property
    def raw_probabilities(self) -> np.ndarray:
        """softmax([sim_pos, sim_neg] * scale)[0], the uncalibrated zero-shot score."""
        return sigmoid(self.logits).astype(np.float32)

    def row(self, index: int) -> dict[str, float]:
        return {name: float(p) for name, p in zip(self.findings, self.probabilities[index])}


@dataclass(frozen=True)
class ScoringRule:
    """What zero-shot scoring reads from a model (``LRCLRModel.scoring_rule``)."""

    logit_scale: torch.Tensor  # exp of the model's learned log scale (differentiable in training)
    interaction: CrossModalInteraction | None  # None for the global-only baseline
    local_weight: float  # share of the local similarity; 0 scores on the global embeddings alone
    local_mode: str  # "words" (the interaction layer's pair score) or "regions" (see config)

    @property
    def uses_local(self) -> bool:
        return self.interaction is not None and self.local_weight > 0


@dataclass
class PromptFeatures:
    """One finding's prompts, encoded."""

    global_positive: torch.Tensor  # (D,) mean of the positive templates, re-normalised
    global_negative: torch.Tensor  # (D,)
    tokens: torch.Tensor  # (T, L, D) every template, positives first
    word_mask: torch.Tensor  # (T, L)
    n_positive: int


class PromptCache:
    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], PromptFeatures] = {}
        # Sessions of the app share one model; encoding the same prompt twice is harmless but wasteful.
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def get(self, findings: Sequence[str], device: str,
            encode: Callable[[list[str]], list[PromptFeatures]]) -> list[PromptFeatures]:
        """Each finding's prompt features on ``device``; ``encode`` is called for the missing ones."""
        with self._lock:
            missing = [f for f in dict.fromkeys(findings) if (f, device) not in self._entries]
            if missing:
                for finding, features in zip(missing, encode(missing)):
                    self._entries[(finding, device)] = features
            return [self._entries[(f, device)] for f in findings]


def prompt_texts(findings: Sequence[str]) -> list[str]:
    """Every finding's templates in the order ``prompt_features`` reads them: positives, negatives."""
    return [text for f in findings for p in (prompts_for(f),) for text in (*p.positive, *p.negative)]


def prompt_features(findings: Sequence[str], encoded: "TextFeatures") -> list[PromptFeatures]:
    """Split the encoded ``prompt_texts(findings)`` into each finding's prompt features.

    Training encodes the same texts with gradients (train/training/prompt_loss.py), so the scores it
    trains are computed by the same code as the scores the app shows.
    """
    prompt_sets = [prompts_for(f) for f in findings]
    results, start = [], 0
    for prompts in prompt_sets:
        n_pos, n_all = len(prompts.positive), len(prompts.positive) + len(prompts.negative)
        embeddings = encoded.global_embedding[start : start + n_all]
        results.append(
            PromptFeatures(
                global_positive=F.normalize(embeddings[:n_pos].mean(0), dim=-1),
                global_negative=F.normalize(embeddings[n_pos:].mean(0), dim=-1),
                tokens=encoded.tokens[start : start + n_all],
                word_mask=encoded.word_mask[start : start + n_all],
                n_positive=n_pos,
            )
        )
        start += n_all
    return results


def _stack_padded(tensors: list[torch.Tensor], value) -> torch.Tensor:
    """Concatenate (T, L_i, ...) tensors along T, padding L to the longest (cache entries differ)."""
    length = max(t.shape[1] for t in tensors)
    padded = []
    for t in tensors:
        pad = [0, 0] * (t.ndim - 2) + [0, length - t.shape[1]]
        padded.append(F.pad(t, pad, value=value))
    return torch.cat(padded)


def score_findings(rule: ScoringRule, image: "ImageFeatures", findings: Sequence[str],
                   prompts: list[PromptFeatures], calibration: Calibration) -> ZeroShotScores:
    """The scores the app shows: raw logits, calibrated by the model card where it can.

    ``prompts`` are ``findings``' encoded prompts, in the same order.
    """
    findings = tuple(findings)
    # The scores are cosines times a large logit scale, which magnifies rounding; these matmuls
    # cost microseconds, so they run in float32 even inside a bf16 autocast (where CPU autocast
    # would also hand numpy a bf16 tensor it cannot hold).
    with torch.autocast(image.global_embedding.device.type, enabled=False):
        raw = prompt_logits(rule, image, prompts)
    logits = raw.cpu().numpy().astype(np.float64)
    probabilities, calibrated = calibration.apply(findings, logits)
    return ZeroShotScores(findings, probabilities.astype(np.float32), logits.astype(np.float32), calibrated)


def prompt_logits(rule: ScoringRule, image: "ImageFeatures", prompts: list[PromptFeatures]) -> torch.Tensor:
    """(B, F) raw logits scale * (sim_pos - sim_neg), differentiable (the training term uses it).

    softmax([s_pos, s_neg] * scale)[0] = sigmoid(scale * (s_pos - s_neg)), so the logit is the
    whole score; similarity mixes global and local as the module docstring says.
    """
    images = image.global_embedding.float()
    sim_pos = images @ torch.stack([p.global_positive for p in prompts]).float().T  # (B, F)
    sim_neg = images @ torch.stack([p.global_negative for p in prompts]).float().T
    if rule.uses_local:
        local_pos, local_neg = _local_similarities(rule, image, prompts)
        sim_pos = (1 - rule.local_weight) * sim_pos + rule.local_weight * local_pos
        sim_neg = (1 - rule.local_weight) * sim_neg + rule.local_weight * local_neg
    return rule.logit_scale.float() * (sim_pos - sim_neg)


def _local_similarities(rule: ScoringRule, image: "ImageFeatures", prompts: list[PromptFeatures]):
    regions, interaction = image.regions, rule.interaction
    # Local scores (rule.uses_local) come from a model with an interaction layer, and such a model
    # always selects regions: neither is None here.
    assert regions is not None and interaction is not None
    if rule.local_mode == "regions":
        positive = torch.stack([p.global_positive for p in prompts]).float()  # (F, D)
        negative = torch.stack([p.global_negative for p in prompts]).float()
        embeddings = regions.embeddings.float()  # (B, k, D)
        return region_max(rule, embeddings, positive), region_max(rule, embeddings, negative)
    tokens = _stack_padded([p.tokens for p in prompts], 0.0)
    masks = _stack_padded([p.word_mask for p in prompts], False)
    scores = pairwise_local_scores(interaction, regions.embeddings.float(), regions.logits.float(),
                                   tokens.float(), masks).float()
    per_template = scores.view(scores.shape[0], len(prompts), -1)  # (B, F, T)
    n_positive = prompts[0].n_positive  # every finding uses the same templates
    return per_template[..., :n_positive].mean(-1), per_template[..., n_positive:].mean(-1)


def region_max(rule: ScoringRule, regions: torch.Tensor, texts: torch.Tensor) -> torch.Tensor:
    """(B, T): smooth maximum over each image's selected regions of their cosine with each text
    embedding (log-mean-exp with the interaction layer's gamma, as words are aggregated)."""
    cosine = torch.einsum("bkd,td->btk", regions, texts)
    assert rule.interaction is not None  # region scores are local scores: see _local_similarities
    gamma = rule.interaction.gamma
    return (torch.logsumexp(gamma * cosine, dim=-1) - math.log(cosine.shape[-1])) / gamma


def phrase_logits(rule: ScoringRule, image: "ImageFeatures", phrases: "TextFeatures") -> np.ndarray:
    """(B, P) scale x similarity of each image with each encoded phrase itself (no prompt
    templates), mixing global and local as the zero-shot scores do. The counterfactual probes
    compare these: a finding's score is a contrast of two such similarities, so negating the phrase
    would only mirror the score, while the similarity of "no effusion" itself can move any way."""
    with torch.autocast(image.global_embedding.device.type, enabled=False):
        similarity = image.global_embedding.float() @ phrases.global_embedding.float().T
        if rule.uses_local:
            regions, interaction = image.regions, rule.interaction
            assert regions is not None and interaction is not None  # see _local_similarities
            if rule.local_mode == "regions":
                local = region_max(rule, regions.embeddings.float(), phrases.global_embedding.float())
            else:
                local = pairwise_local_scores(interaction, regions.embeddings.float(), regions.logits.float(),
                                              phrases.tokens.float(), phrases.word_mask)
            similarity = (1 - rule.local_weight) * similarity + rule.local_weight * local.float()
        return (rule.logit_scale.float() * similarity).cpu().numpy().astype(np.float64)
