"""A training run's settings: one JSON file, overridable from the command line.

Every run writes its *resolved* config (file + overrides) next to its checkpoints, so a model card
can always say exactly how it was made.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class TrainConfig:
    # Model: LRCLRConfig fields to set (a fresh model), and/or a model folder to start from
    # (``finetune`` starts LRCLR from a baseline folder; regions and interaction start fresh).
    model: dict[str, Any] = field(default_factory=dict)
    init_from: str | None = None
    # Data: a spec for train.datasets.build_dataset (its "augment" key turns augmentation on for the
    # training split only), split patient-disjointly into train/val/test.
    dataset: dict[str, Any] = field(default_factory=dict)
    split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    split_seed: int = 0
    # More dataset specs that join the training split whole and never reach validation or test
    # (e.g. phantoms mixed into NIH training; see train/datasets/mixed.py).
    extra_train: list[dict[str, Any]] = field(default_factory=list)
    # Optimisation
    batch_size: int = 16
    grad_accum_steps: int = 1
    max_steps: int = 200
    lr: float = 1e-4
    tower_lr: float = 1e-5  # pretrained towers move slower than the new heads
    weight_decay: float = 0.05
    warmup_steps: int = 20
    grad_clip: float = 1.0
    freeze: list[str] = field(default_factory=lambda: ["text_tower"])  # module names kept frozen
    unfreeze_at_step: int | None = None  # unfreeze everything in ``freeze`` at this step
    amp: bool = True  # autocast on CUDA (bf16 where supported); ignored on CPU
    # With both towers frozen for the whole run: precompute their outputs for this many augmented
    # variants of each training image (train.training.feature_cache); 0 runs the towers every step.
    cache_frozen_towers: int = 0
    # Fine-tune only the image tower's last N blocks and head (EfficientNet towers); the frozen
    # early blocks' output is what gets cached. 0: the image tower follows ``freeze``.
    image_tower_tail_blocks: int = 0
    # Learning from annotators' flags (train.training.flag_loss): the flag store to read; each step adds
    # flag_weight x the feedback term on flag_batch_size flagged pairs; flag_images: folders to find
    # flagged images and .txt reports in ([]: the demo gallery + the dataset's images); good matches
    # pull with flag_good_weight; flags_any_model keeps flags made on other models than init_from.
    # flag_local_only: the term trains only the region selector and interaction layer (towers and
    # projections learn from the contrastive loss alone); flag_moves_selector: the term may lower a
    # cell's selection score (see train/training/flag_loss.py).
    flags: str | None = None
    flag_weight: float = 1.0
    flag_batch_size: int = 16
    flag_images: list[str] = field(default_factory=list)
    flag_good_weight: float = 0.5
    flags_any_model: bool = False
    flag_local_only: bool = True
    flag_moves_selector: bool = True
    # Localization supervision (train.training.localization): on training images with finding masks or boxes
    # (phantoms), add localization_weight x (selection + attention cross-entropy). 0: off.
    # localization_local_only: the term trains only the region selector and interaction layer.
    localization_weight: float = 0.0
    localization_local_only: bool = False
    # Objectives for little labelled data (issue #15; each measured by cross-validation):
    # prompt_loss_weight x BCE of the app's own zero-shot logits against the labels
    # (train.training.prompt_loss); label_target_mix softens both contrastive targets by label similarity
    # (lrclr.model.losses.label_targets; 0 = plain one-hot InfoNCE); sentence_loss_weight x the
    # multi-positive contrastive loss of images against their reports' sentences (train.training.sentence_loss).
    prompt_loss_weight: float = 0.0
    label_target_mix: float = 0.0
    sentence_loss_weight: float = 0.0
    # Findings removed from every report, label, mask and prompt of training (train.datasets.held_out), so
    # that their AUC afterwards is genuinely zero-shot.
    held_out_findings: list[str] = field(default_factory=list)
    # Bookkeeping
    seed: int = 0
    output_dir: str = "runs/lrclr"
    checkpoint_every: int = 50
    eval_every: int = 50
    early_stopping_patience: int | None = None  # evaluations without a better val loss
    num_workers: int = 0
    log_every: int = 1

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown training config keys: {', '.join(unknown)}")
        values = dict(data)
        if "split_fractions" in values:
            values["split_fractions"] = tuple(values["split_fractions"])
        return cls(**values)

    @classmethod
    def load(cls, path: str | Path | None, overrides: list[str] = ()) -> "TrainConfig":
        data = json.loads(Path(path).read_text(encoding="utf-8")) if path else {}
        for item in overrides:
            apply_override(data, item)
        return cls.from_dict(data)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n", encoding="utf-8")


def apply_override(data: dict[str, Any], item: str) -> None:
    """``key.sub=value`` with a JSON value (``max_steps=100``, ``model.num_regions=8``,
    ``freeze=[]``); a value that is not JSON is taken as a string (``output_dir=runs/x``)."""
    if "=" not in item:
        raise ValueError(f"override {item!r} is not key=value")
    key, raw = item.split("=", 1)
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    target = data
    parts = key.strip().split(".")
    for part in parts[:-1]:
        target = target.setdefault(part, {})
        if not isinstance(target, dict):
            raise ValueError(f"override {item!r}: {part} is not a section")
    target[parts[-1]] = value
