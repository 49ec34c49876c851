"""Zero-shot finding scores from positive/negative prompt pairs (CheXpert-free, CheXzero-style).

For a finding f the image is compared with the positive prompts ("there is pleural effusion.") and
the negative ones ("no pleural effusion."). Similarity mixes the global cosine with the local
word-region score of the interaction layer (weight ``zero_shot_local_weight``; 0 for the baseline),
each averaged over templates; p(f) = softmax(scale * [sim_pos, sim_neg])[0], then calibrated
per finding where the model card holds a calibration (``lrclr.model.calibration``).

Prompt embeddings depend only on the weights, so they are computed once per finding and device and
cached; the cache is cleared whenever the model switches mode or device.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from lrclr.model.calibration import sigmoid
from lrclr.model.losses import pairwise_local_scores
from lrclr.model.prompts import prompts_for

if TYPE_CHECKING:
    from lrclr.model.lrclr_model import ImageFeatures, LRCLRModel, TextFeatures


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

    def get(self, model: "LRCLRModel", findings: Sequence[str]) -> list[PromptFeatures]:
        device = str(model.device_info.device)
        with self._lock:
            missing = [f for f in dict.fromkeys(findings) if (f, device) not in self._entries]
            if missing:
                for finding, features in zip(missing, _encode_prompts(model, missing)):
                    self._entries[(finding, device)] = features
            return [self._entries[(f, device)] for f in findings]


def _encode_prompts(model: "LRCLRModel", findings: list[str]) -> list[PromptFeatures]:
    texts = prompt_texts(findings)
    with torch.no_grad():
        batch = model.tokenize(texts).to(model.device_info.device)
        encoded = model.encode_text(batch)
    return prompt_features(findings, encoded)


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


def score_findings(model: "LRCLRModel", image: "ImageFeatures", findings: Sequence[str],
                   local_weight: float | None = None) -> ZeroShotScores:
    """The scores the app shows: raw logits, calibrated by the model card where it can.

    ``local_weight`` overrides the config's ``zero_shot_local_weight`` (cross-validation scores
    one trained model at several weights).
    """
    findings = tuple(findings)
    # The scores are cosines times a large logit scale, which magnifies rounding; these matmuls
    # cost microseconds, so they run in float32 even inside a bf16 autocast (where CPU autocast
    # would also hand numpy a bf16 tensor it cannot hold).
    with torch.autocast(image.global_embedding.device.type, enabled=False):
        logits = prompt_logits(model, image, model.prompt_cache.get(model, findings), local_weight)
    logits = logits.cpu().numpy().astype(np.float64)
    probabilities, calibrated = model.calibration.apply(findings, logits)
    return ZeroShotScores(findings, probabilities.astype(np.float32), logits.astype(np.float32), calibrated)


def prompt_logits(model: "LRCLRModel", image: "ImageFeatures", prompts: list[PromptFeatures],
                  local_weight: float | None = None) -> torch.Tensor:
    """(B, F) raw logits scale * (sim_pos - sim_neg), differentiable (the training term uses it).

    softmax([s_pos, s_neg] * scale)[0] = sigmoid(scale * (s_pos - s_neg)), so the logit is the
    whole score; similarity mixes global and local as the module docstring says.
    """
    images = image.global_embedding.float()
    sim_pos = images @ torch.stack([p.global_positive for p in prompts]).float().T  # (B, F)
    sim_neg = images @ torch.stack([p.global_negative for p in prompts]).float().T
    weight = model.config.zero_shot_local_weight if local_weight is None else local_weight
    if model.interaction is not None and weight > 0:
        local_pos, local_neg = _local_similarities(model, image, prompts)
        sim_pos = (1 - weight) * sim_pos + weight * local_pos
        sim_neg = (1 - weight) * sim_neg + weight * local_neg
    return model.logit_scale.exp().float() * (sim_pos - sim_neg)


def _local_similarities(model, image, prompts: list[PromptFeatures]):
    if model.config.zero_shot_local_mode == "regions":
        regions = image.regions.embeddings.float()  # (B, k, D)
        positive = torch.stack([p.global_positive for p in prompts]).float()  # (F, D)
        negative = torch.stack([p.global_negative for p in prompts]).float()
        return region_max(model, regions, positive), region_max(model, regions, negative)
    tokens = _stack_padded([p.tokens for p in prompts], 0.0)
    masks = _stack_padded([p.word_mask for p in prompts], False)
    regions = image.regions
    scores = pairwise_local_scores(model.interaction, regions.embeddings.float(), regions.scores.float(),
                                   tokens.float(), masks).float()
    per_template = scores.view(scores.shape[0], len(prompts), -1)  # (B, F, T)
    n_positive = prompts[0].n_positive  # every finding uses the same templates
    return per_template[..., :n_positive].mean(-1), per_template[..., n_positive:].mean(-1)


def region_max(model, regions: torch.Tensor, texts: torch.Tensor) -> torch.Tensor:
    """(B, T): smooth maximum over each image's selected regions of their cosine with each text
    embedding (log-mean-exp with the interaction layer's gamma, as words are aggregated)."""
    cosine = torch.einsum("bkd,td->btk", regions, texts)
    gamma = model.interaction.gamma
    return (torch.logsumexp(gamma * cosine, dim=-1) - math.log(cosine.shape[-1])) / gamma


def phrase_logits(model: "LRCLRModel", image: "ImageFeatures", phrases: Sequence[str]) -> np.ndarray:
    """(B, P) scale x similarity of each image with each phrase itself (no prompt templates),
    mixing global and local as the zero-shot scores do. The counterfactual probes compare these:
    a finding's score is a contrast of two such similarities, so negating the phrase would only
    mirror the score, while the similarity of "no effusion" itself can move any way."""
    with torch.inference_mode(), torch.autocast(image.global_embedding.device.type, enabled=False):
        batch = model.tokenize(list(phrases)).to(image.global_embedding.device)
        text = model.encode_text(batch)
        similarity = image.global_embedding.float() @ text.global_embedding.float().T
        weight = model.config.zero_shot_local_weight
        if model.interaction is not None and weight > 0:
            regions = image.regions
            if model.config.zero_shot_local_mode == "regions":
                local = region_max(model, regions.embeddings.float(), text.global_embedding.float())
            else:
                local = pairwise_local_scores(model.interaction, regions.embeddings.float(), regions.scores.float(),
                                              text.tokens.float(), text.word_mask)
            similarity = (1 - weight) * similarity + weight * local.float()
        return (model.logit_scale.exp().float() * similarity).cpu().numpy().astype(np.float64)
