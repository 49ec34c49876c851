"""``LRCLRModel``: a CLIP-style image-report dual encoder with region selection and interaction.

    image -> image tower -> patch grid -> projection (D) -> patches P, global g_I (masked mean)
    report -> text tower -> token states -> projection (D) -> words W, global g_T (masked mean)
    regions: scorer over P -> top-k R;  interaction: words <-> regions cross-attention
    losses: InfoNCE(g_I, g_T) and InfoNCE(local word-region pair scores), weighted and summed
            by train/training/objective.py

Both projections are linear without bias, so the pooled embedding is the mean of the patch (word)
embeddings before normalisation: the global-only baseline's word-patch similarity maps live in the
same space it was trained in, which keeps the localization comparison fair.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lrclr.model import explain as ex
from lrclr.model import weights as weights_io
from lrclr.model.calibration import Calibration
from lrclr.model.config import LRCLRConfig
from lrclr.model.device import DeviceInfo, autocast, move_to, pick_device
from lrclr.model.towers import build_image_tower, build_text_tower
from lrclr.errors import ModelLoadError
from lrclr.model.interaction import CrossModalInteraction
from lrclr.model.losses import global_contrastive_loss, label_targets, local_contrastive_loss
from lrclr.model.letterbox import Letterbox, prepare_images
from lrclr.findings import NIH_FINDINGS
from lrclr.model.regions import RegionSelector, SelectedRegions
from lrclr.model.tokens import TokenizedReports, tokenize_reports
from lrclr.model import zero_shot
from lrclr.model.zero_shot import PromptCache, PromptFeatures, ScoringRule, ZeroShotScores

# Longest report explain() grounds; the towers' position embeddings allow 512 tokens.
EXPLAIN_MAX_TOKENS = 512


@dataclass
class ImageFeatures:
    patches: torch.Tensor  # (B, N, D) L2-normalised patch embeddings
    global_embedding: torch.Tensor  # (B, D) L2-normalised
    valid: torch.Tensor  # (B, N) bool: cell shows image content (not letterbox padding)
    grid: tuple[int, int]  # (rows, cols)
    regions: SelectedRegions | None  # None for the baseline


@dataclass
class TextFeatures:
    tokens: torch.Tensor  # (B, L, D) L2-normalised token embeddings
    global_embedding: torch.Tensor  # (B, D)
    word_mask: torch.Tensor  # (B, L) bool


@dataclass
class LRCLROutput:
    """One forward pass's contrastive terms, unweighted: train/training/objective.py weighs and sums
    them with the other terms of a run."""

    global_loss: torch.Tensor
    local_loss: torch.Tensor | None  # None for the global-only baseline
    # The batch's image features, for training terms computed beside the contrastive ones
    # (localization supervision in train/training/localization.py).
    image: ImageFeatures | None = None


@dataclass(frozen=True)
class CaseImage:
    """One image encoded once, reused for every word, phrase and finding the user asks about."""

    features: ImageFeatures  # batch of one, on the model's device
    letterbox: Letterbox


def cpu_if_gpu_runs_out(method):
    """Decorate an inference method: if the GPU runs out of memory, move to the CPU for good and retry.

    A radiologist's session should slow down, not fail, when another job fills the GPU. The switch
    is kept (and said in ``fallback_notice``) because retrying the GPU on every call would stall
    each request on the same error. Tensors among the arguments follow the model to the CPU.
    """
    @functools.wraps(method)
    def run(self: "LRCLRModel", *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except torch.OutOfMemoryError:
            if self.device_info.device.type == "cpu":
                raise
            self._move_to_cpu_after_out_of_memory()
            device = self.device_info.device
            return method(self, *move_to(args, device), **move_to(kwargs, device))
    return run


class LRCLRModel(nn.Module):
    def __init__(self, config: LRCLRConfig, model_card: dict[str, Any] | None = None, pretrained_towers: bool = True):
        super().__init__()
        self.config = config
        self.model_card = dict(model_card or {})
        # A tower whose weights are not stored in model.safetensors always loads its pretrained source.
        self.image_tower = build_image_tower(
            config.image_tower, config.image_size, pretrained_towers or not config.image_tower.store_weights
        )
        self.text_tower = build_text_tower(config.text_tower, pretrained_towers or not config.text_tower.store_weights)
        self.image_projection = nn.Linear(self.image_tower.feature_dim, config.embed_dim, bias=False)
        self.text_projection = nn.Linear(self.text_tower.hidden_dim, config.embed_dim, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(config.init_logit_scale)))
        self.region_selector: RegionSelector | None = None
        self.interaction: CrossModalInteraction | None = None
        if config.use_regions:
            self.region_selector = RegionSelector(config.embed_dim, config.scorer_hidden, config.num_regions)
            self.interaction = CrossModalInteraction(
                config.embed_dim, config.interaction_heads, config.interaction_layers, config.local_aggregation_gamma,
                config.attention_cosine_scale,
            )
            self.local_logit_scale = nn.Parameter(torch.tensor(math.log(config.init_local_logit_scale)))
        self.device_info: DeviceInfo = pick_device("cpu")
        self.prompt_cache = PromptCache()
        self._lock = threading.Lock()
        self.fallback_notice = ""  # set when a GPU out-of-memory error moved the model to the CPU

    # ---- encoders -------------------------------------------------------------------------------

    @property
    def tokenizer(self):
        return self.text_tower.tokenizer

    @property
    def model_id(self) -> str:
        return str(self.model_card.get("model_id", "unnamed-lrclr-model"))

    @property
    def calibration(self) -> Calibration:
        """The card's per-finding calibration and operating points (empty when it has none)."""
        return Calibration.from_card(self.model_card)

    def encode_image(self, pixels: torch.Tensor, letterboxes: Sequence[Letterbox] | None = None) -> ImageFeatures:
        return self.project_image_grid(self.image_tower(pixels), letterboxes)

    def project_image_grid(self, grid_features: torch.Tensor, letterboxes: Sequence[Letterbox] | None = None) -> ImageFeatures:
        """Everything after the image tower; training with a frozen tower feeds cached grids here."""
        rows, cols = grid_features.shape[-2:]
        patches = self.image_projection(grid_features.flatten(2).transpose(1, 2))
        valid = self._valid_cells(letterboxes, (rows, cols), grid_features.shape[0], patches.device)
        weights = valid.unsqueeze(-1).to(patches.dtype)
        pooled = (patches * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        patches = F.normalize(patches, dim=-1)
        regions = self.region_selector(patches, valid) if self.region_selector is not None else None
        return ImageFeatures(patches, F.normalize(pooled, dim=-1), valid, (rows, cols), regions)

    def _valid_cells(self, letterboxes, grid, batch: int, device) -> torch.Tensor:
        if letterboxes is None:
            return torch.ones(batch, grid[0] * grid[1], dtype=torch.bool, device=device)
        masks = []
        for letterbox in letterboxes:
            masks.append(torch.from_numpy(letterbox.content_cells(grid, self.config.num_regions).reshape(-1)))
        return torch.stack(masks).to(device)

    def tokenize(self, texts: list[str], max_length: int | None = None) -> TokenizedReports:
        return tokenize_reports(self.tokenizer, texts, max_length or self.config.max_text_tokens)

    def encode_text(self, batch: TokenizedReports) -> TextFeatures:
        return self.project_text_states(self.text_tower(batch.input_ids, batch.attention_mask), batch)

    def project_text_states(self, states: torch.Tensor, batch: TokenizedReports) -> TextFeatures:
        """Everything after the text tower (see ``project_image_grid``)."""
        tokens = self.text_projection(states)
        weights = batch.attention_mask.unsqueeze(-1).to(tokens.dtype)
        pooled = (tokens * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        return TextFeatures(F.normalize(tokens, dim=-1), F.normalize(pooled, dim=-1), batch.word_mask)

    # ---- training -------------------------------------------------------------------------------

    def forward(self, pixels: torch.Tensor | None, reports: TokenizedReports, letterboxes=None,
                image_grid: torch.Tensor | None = None, text_states: torch.Tensor | None = None,
                image_tail_blocks: int = 0, labels: torch.Tensor | None = None,
                label_target_mix: float = 0.0) -> LRCLROutput:
        """The contrastive training terms. Frozen towers' outputs may be passed precomputed as ``image_grid`` /
        ``text_states`` (then ``pixels`` may be None). With ``image_tail_blocks`` > 0, ``image_grid``
        is instead the output of the image tower's frozen prefix, and its last blocks run here.
        ``labels`` (B, F) with ``label_target_mix`` > 0 soften both contrastive targets so that
        pairs stating the same findings are not pushed apart (``losses.label_targets``)."""
        if image_grid is None:
            image_grid = self.image_tower(pixels)
        elif image_tail_blocks:
            # Any: only a tower that can be split has tail() (EfficientNetLiteTower; the trainer checks)
            splittable: Any = self.image_tower
            image_grid = splittable.tail(image_grid, image_tail_blocks)
        image = self.project_image_grid(image_grid, letterboxes)
        if text_states is None:
            text_states = self.text_tower(reports.input_ids, reports.attention_mask)
        text = self.project_text_states(text_states, reports)
        targets, _ = label_targets(labels, label_target_mix)
        global_loss = global_contrastive_loss(image.global_embedding, text.global_embedding, self.logit_scale.exp(),
                                              targets)
        if self.interaction is None:
            return LRCLROutput(global_loss, None, image)
        assert image.regions is not None  # a model with an interaction layer selects regions
        local_loss = local_contrastive_loss(
            self.interaction, image.regions.embeddings, image.regions.logits,
            text.tokens, text.word_mask, self.local_logit_scale.exp(), targets,
        )
        return LRCLROutput(global_loss, local_loss, image)

    def train(self, mode: bool = True):
        # Cached prompt embeddings go stale as soon as weights can change.
        self.prompt_cache.clear()
        return super().train(mode)

    # ---- inference ------------------------------------------------------------------------------

    def to_device(self, preference: str = "auto", precision: str = "float32") -> "LRCLRModel":
        """Move to ``preference`` (see ``pick_device``) and run there at ``precision``."""
        self.device_info = pick_device(preference, precision)
        self.prompt_cache.clear()
        return self.to(self.device_info.device)

    def _move_to_cpu_after_out_of_memory(self) -> None:
        with self._lock:  # sessions share the model: one of them moves it
            if self.device_info.device.type != "cpu":
                previous = self.device_info.name
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                self.to_device("cpu")
                self.fallback_notice = (f"{previous} ran out of memory, so the model now runs on the CPU "
                                        "(slower). Restart the app to use the GPU again.")

    # ---- zero-shot scoring: the model hands lrclr.model.zero_shot what it reads -------------------

    def scoring_rule(self, local_weight: float | None = None) -> ScoringRule:
        """What zero-shot scoring reads from this model; ``local_weight`` overrides the config's
        ``zero_shot_local_weight`` (cross-validation scores one trained model at several weights)."""
        weight = self.config.zero_shot_local_weight if local_weight is None else local_weight
        return ScoringRule(self.logit_scale.exp(), self.interaction, weight, self.config.zero_shot_local_mode)

    def prompt_features(self, findings: Sequence[str]) -> list[PromptFeatures]:
        """Each finding's encoded prompts on the model's device, from the cache when it has them."""
        return self.prompt_cache.get(findings, str(self.device_info.device), self._encode_prompts)

    def _encode_prompts(self, findings: list[str]) -> list[PromptFeatures]:
        with torch.no_grad():
            batch = self.tokenize(zero_shot.prompt_texts(findings)).to(self.device_info.device)
            return zero_shot.prompt_features(findings, self.encode_text(batch))

    def score_features(self, image: ImageFeatures, findings: Sequence[str],
                       local_weight: float | None = None) -> ZeroShotScores:
        """Zero-shot scores of already encoded images (what ``zero_shot`` and ``explain`` show)."""
        return zero_shot.score_findings(self.scoring_rule(local_weight), image, findings,
                                        self.prompt_features(findings), self.calibration)

    @cpu_if_gpu_runs_out
    @torch.inference_mode()
    def phrase_logits(self, image: ImageFeatures, phrases: Sequence[str]) -> np.ndarray:
        """(B, P) scale x similarity of each image with each phrase itself (``zero_shot.phrase_logits``)."""
        batch = self.tokenize(list(phrases)).to(self.device_info.device)
        return zero_shot.phrase_logits(self.scoring_rule(), image, self.encode_text(batch))

    # ---- what the app calls ---------------------------------------------------------------------

    @cpu_if_gpu_runs_out
    @torch.inference_mode()
    def encode_case(self, image) -> CaseImage:
        """Encode one image (a LoadedImage or a 2-D array in [0, 1]) for repeated explanation."""
        pixels, letterboxes = prepare_images([image], self.config.image_size, self.device_info.device)
        with autocast(self.device_info):
            features = self.encode_image(pixels, letterboxes)
        return CaseImage(features, letterboxes[0])

    @cpu_if_gpu_runs_out
    @torch.inference_mode()
    def zero_shot(self, images, findings: Sequence[str] = NIH_FINDINGS) -> ZeroShotScores:
        """Probabilities (len(images), len(findings)) for arbitrary finding names."""
        pixels, letterboxes = prepare_images(images, self.config.image_size, self.device_info.device)
        return self.zero_shot_letterboxed(pixels, letterboxes, findings)

    @cpu_if_gpu_runs_out
    @torch.inference_mode()
    def zero_shot_letterboxed(self, pixels: torch.Tensor, letterboxes: Sequence[Letterbox],
                              findings: Sequence[str] = NIH_FINDINGS) -> ZeroShotScores:
        """``zero_shot`` of images already letterboxed (``prepare_images``' (B, 1, S, S) and
        geometries), on any device. Batch scoring letterboxes on the CPU where it decodes (in
        DataLoader workers), so only these small inputs are copied; from pinned memory the copy
        does not block."""
        pixels = pixels.to(self.device_info.device, non_blocking=True)
        with autocast(self.device_info):
            features = self.encode_image(pixels, letterboxes)
            scores = self.score_features(features, findings)
        embeddings = features.global_embedding.float().cpu().numpy()
        return dataclasses.replace(scores, image_embeddings=embeddings)

    @cpu_if_gpu_runs_out
    @torch.inference_mode()
    def explain(self, image, report: str | None = None, findings: Sequence[str] = NIH_FINDINGS) -> ex.Explanation:
        """Everything the app shows for one case. ``image`` may be a ``CaseImage`` already encoded."""
        case = image if isinstance(image, CaseImage) else self.encode_case(image)
        report = report or ""
        with autocast(self.device_info):
            scores = self.score_features(case.features, findings) if findings else None
            batch = self.tokenize([report], self._explain_max_tokens()).to(self.device_info.device)
            text = self.encode_text(batch)
            words = batch.words[0]
            patch_similarity = ex.word_level(text.tokens[0].float() @ case.features.patches[0].float().T, words)
            word_attention = region_words = None
            if self.interaction is not None:
                regions = case.features.regions
                assert regions is not None  # a model with an interaction layer selects regions
                alignment = self.interaction(text.tokens, text.word_mask, regions.embeddings, regions.logits)
                word_attention = ex.word_level(alignment.word_to_region[0].float(), words)
                # A region's attention over a word is the sum over the word's wordpieces.
                region_words = ex.word_level(alignment.region_to_word[0].float().T, words, reduce="sum").T
        return self._build_explanation(case, report, batch, findings, scores, patch_similarity, word_attention, region_words)

    def _explain_max_tokens(self) -> int:
        limit = getattr(self.tokenizer, "model_max_length", EXPLAIN_MAX_TOKENS)
        return min(EXPLAIN_MAX_TOKENS, limit if isinstance(limit, int) else EXPLAIN_MAX_TOKENS)

    def _build_explanation(self, case, report, batch, findings, scores, patch_similarity, word_attention, region_words):
        features, words, grid = case.features, batch.words[0], case.features.grid
        regions: tuple[ex.RegionExplanation, ...] = ()
        if features.regions is not None:
            regions = ex.region_explanations(
                features.regions.indices[0].cpu(), features.regions.logits[0].cpu(),
                None if region_words is None else region_words.cpu(), words, grid, case.letterbox,
            )
        # Under GPU autocast the map comes out in bf16/fp16, which numpy cannot hold.
        similarity = patch_similarity.float().cpu().numpy().reshape(len(words), *grid)
        attention = None if word_attention is None else word_attention.cpu().tolist()
        word_results = tuple(
            ex.WordExplanation(
                i, w.text, w.start, w.end,
                None if attention is None else tuple(attention[i]), similarity[i],
            )
            for i, w in enumerate(words)
        )
        finding_scores = () if scores is None else tuple(
            ex.FindingScore(name, float(p), float(raw), calibrated)
            for name, p, raw, calibrated in zip(scores.findings, scores.probabilities[0],
                                                scores.raw_probabilities[0], scores.calibrated)
        )
        return ex.Explanation(
            self.model_id, report, batch.truncated[0], case.letterbox, grid,
            finding_scores, regions, word_results,
        )

    # ---- persistence ----------------------------------------------------------------------------

    def save_pretrained(self, folder: str | Path, model_card: dict[str, Any] | None = None,
                        weights_dtype: torch.dtype | None = None) -> Path:
        """Write config.json, model.safetensors and model_card.json.

        Towers configured with ``store_weights=False`` (frozen, rebuilt from their package or
        checkpoint on load) are left out of the weights file.
        """
        state = {k: v for k, v in self.state_dict().items() if not k.startswith(self._unstored_prefixes())}
        card = {**self.model_card, **(model_card or {})}
        card.setdefault("model_id", Path(folder).name)
        self.model_card = card
        return weights_io.save_folder(folder, self.config, state, card, weights_dtype)

    @classmethod
    def from_pretrained(cls, folder: str | Path, device: str = "cpu", precision: str = "float32") -> "LRCLRModel":
        config, state, card = weights_io.read_folder(folder)
        card.setdefault("model_id", Path(folder).name)
        model = cls(config, card, pretrained_towers=False)
        try:
            model.calibration  # a malformed calibration fails here, not at the first score
        except (KeyError, TypeError, ValueError) as error:
            raise ModelLoadError(f"{folder}: model_card.json has a malformed calibration: {error}") from error
        model._load_weights(state, folder)
        model.eval()
        return model.to_device(device, precision)

    def _unstored_prefixes(self) -> tuple[str, ...]:
        towers = (("image_tower.", self.config.image_tower), ("text_tower.", self.config.text_tower))
        return tuple(prefix for prefix, tower in towers if not tower.store_weights)

    def _load_weights(self, state: dict[str, torch.Tensor], folder) -> None:
        expected = self.state_dict()
        missing = [k for k in expected if k not in state and not k.startswith(self._unstored_prefixes())]
        unexpected = [k for k in state if k not in expected]
        if missing or unexpected:
            raise ModelLoadError(
                f"{folder}: weights do not match config.json (missing {len(missing)}: {missing[:3]}, "
                f"unexpected {len(unexpected)}: {unexpected[:3]}); the folder may mix two models"
            )
        self.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()}, strict=False)
