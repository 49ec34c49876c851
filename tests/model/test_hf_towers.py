"""Hugging Face checkpoints as towers, from local folders (tiny random ones, written by the test).

A user's CheXzero/CLIP, ViT, ConvNeXt or ResNet vision tower and BERT-family text tower go through
the same loading code as these miniatures; only the weights differ.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import transformers
from transformers import AutoTokenizer

from lrclr.model.config import TowerConfig, tiny_config
from lrclr.model.towers import _minilm_folder
from lrclr.errors import ModelLoadError
from lrclr.model.lrclr_model import LRCLRModel
from train.training.objective import Objective

VISION_CONFIGS = {
    "vit": lambda: transformers.ViTConfig(
        image_size=64, patch_size=16, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64
    ),
    "clip": lambda: transformers.CLIPConfig(
        vision_config=dict(image_size=64, patch_size=16, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64),
        text_config=dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, vocab_size=1000),
        projection_dim=16,
    ),
    "convnext": lambda: transformers.ConvNextConfig(hidden_sizes=[8, 16, 24, 32], depths=[1, 1, 1, 1]),
    "resnet": lambda: transformers.ResNetConfig(embedding_size=8, hidden_sizes=[8, 16, 24, 32], depths=[1, 1, 1, 1]),
}
EXPECTED_GRID = {"vit": (4, 4), "clip": (4, 4), "convnext": (2, 2), "resnet": (2, 2)}


def _save_vision(kind: str, folder) -> str:
    torch.manual_seed(0)
    config = VISION_CONFIGS[kind]()
    model = transformers.CLIPModel(config) if kind == "clip" else transformers.AutoModel.from_config(config)
    model.save_pretrained(folder)
    return str(folder)


def _save_bert(folder) -> str:
    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(_minilm_folder())
    config = transformers.BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64
    )
    transformers.BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.mark.parametrize("kind", sorted(VISION_CONFIGS))
def test_hf_vision_and_bert_towers_train_explain_and_round_trip(tmp_path, kind):
    config = tiny_config()
    config.image_tower = TowerConfig("hf-vision", source=_save_vision(kind, tmp_path / kind))
    config.text_tower = TowerConfig("hf-text", source=_save_bert(tmp_path / "bert"))
    model = LRCLRModel(config)
    image = np.random.default_rng(0).random((90, 70)).astype(np.float32)
    from lrclr.model.letterbox import prepare_images

    pixels, boxes = prepare_images([image, image[::-1].copy()], 64)
    output = model(pixels, model.tokenize(["left effusion", "no effusion"]), boxes)
    Objective.of(config).contrastive(output).backward()
    explanation = model.eval().explain(image, "Left pleural effusion.")
    assert explanation.grid == EXPECTED_GRID[kind]
    assert len(explanation.regions) == 4 and [w.text for w in explanation.words] == ["Left", "pleural", "effusion"]
    model.save_pretrained(tmp_path / "saved")
    loaded = LRCLRModel.from_pretrained(tmp_path / "saved")
    again = loaded.explain(image, "Left pleural effusion.")
    np.testing.assert_allclose(
        [f.probability for f in again.findings], [f.probability for f in explanation.findings], rtol=1e-5
    )


def test_a_missing_checkpoint_folder_is_a_clear_error(tmp_path):
    config = tiny_config()
    config.text_tower = TowerConfig("hf-text", source=str(tmp_path / "no-such-bert"))
    with pytest.raises(ModelLoadError, match="could not load the hf-text tower"):
        LRCLRModel(config)
    config.text_tower = TowerConfig("no-such-kind")
    with pytest.raises(ModelLoadError, match="unknown text tower 'no-such-kind'"):
        LRCLRModel(config)


def test_a_checkpoint_with_only_pickled_weights_is_refused_without_unpickling(tmp_path):
    folder = _save_vision("vit", tmp_path / "vit")
    weights = tmp_path / "vit" / "model.safetensors"
    (tmp_path / "vit" / "pytorch_model.bin").write_bytes(b"a pickle would run code here")
    weights.unlink()
    config = tiny_config()
    config.image_tower = TowerConfig("hf-vision", source=folder)
    with pytest.raises(ModelLoadError, match="never unpickles"):
        LRCLRModel(config)


def test_a_checkpoint_that_needs_its_own_code_is_refused_without_a_prompt(tmp_path, monkeypatch):
    import json

    folder = _save_bert(tmp_path / "bert")
    config_file = tmp_path / "bert" / "config.json"
    config_file.write_text(json.dumps({**json.loads(config_file.read_text()),
                                       "auto_map": {"AutoModel": "modeling_evil.EvilModel"}}))
    monkeypatch.setattr("builtins.input", lambda *args: pytest.fail("asked on stdin"))
    config = tiny_config()
    config.text_tower = TowerConfig("hf-text", source=folder)
    with pytest.raises(ModelLoadError, match="never runs a checkpoint's code"):
        LRCLRModel(config)
