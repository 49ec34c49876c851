"""The LRCLR model on tiny random configs: gradients, selection, attention, geometry, spans, training."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lrclr.model.config import tiny_config
from lrclr.model.lrclr_model import LRCLRModel
from lrclr.model.letterbox import letterbox_geometry, prepare_images
from lrclr.model.regions import RegionSelector
from train.training.objective import Objective

REPORT = 'Heart size normal. XXXX-XXXX, "left" pleural effusion (2.5 cm); no pneumothorax! XXXX.'


@pytest.fixture(scope="module")
def tiny_model() -> LRCLRModel:
    torch.manual_seed(0)
    return LRCLRModel(tiny_config()).eval()


def _phantom_batch(n: int, size: int = 64) -> list[np.ndarray]:
    """Distinct synthetic images: a bright disc at a different place in each."""
    rows, cols = np.mgrid[0:size, 0:size]
    images = []
    for i in range(n):
        cy, cx = 12 + (i // 3) * 18, 12 + (i % 3) * 18
        disc = ((rows - cy) ** 2 + (cols - cx) ** 2 < 64).astype(np.float32)
        images.append(0.2 + 0.7 * disc)
    return images


def test_region_scorer_receives_gradient_from_the_local_loss():
    torch.manual_seed(0)
    model = LRCLRModel(tiny_config())
    pixels, boxes = prepare_images(_phantom_batch(4), 64)
    reports = model.tokenize(["left effusion", "right nodule", "normal heart", "small pneumothorax"])
    output = model(pixels, reports, boxes)
    output.local_loss.backward()
    for parameter in model.region_selector.scorer.parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0


def test_top_k_keeps_the_highest_scoring_valid_cells():
    torch.manual_seed(0)
    selector = RegionSelector(embed_dim=8, hidden=4, num_regions=3)
    patches = torch.randn(2, 10, 8)
    valid = torch.ones(2, 10, dtype=torch.bool)
    valid[1, :4] = False
    selected = selector(patches, valid)
    scores = selector.scorer(patches).squeeze(-1)
    assert selected.indices[0].tolist() == scores[0].argsort(descending=True)[:3].tolist()
    allowed = scores[1].masked_fill(~valid[1], float("-inf"))
    assert selected.indices[1].tolist() == allowed.argsort(descending=True)[:3].tolist()
    assert all(index >= 4 for index in selected.indices[1].tolist())
    assert torch.all(selected.logits[:, :-1] >= selected.logits[:, 1:])


def test_attention_rows_sum_to_one(tiny_model):
    explanation = tiny_model.explain(_phantom_batch(1)[0], REPORT)
    assert explanation.words
    for word in explanation.words:
        assert sum(word.region_attention) == pytest.approx(1.0, abs=1e-5)
    features = tiny_model.encode_case(_phantom_batch(1)[0]).features
    batch = tiny_model.tokenize([REPORT])
    with torch.no_grad():
        text = tiny_model.encode_text(batch)
        alignment = tiny_model.interaction(text.tokens, text.word_mask, features.regions.embeddings, features.regions.logits)
    torch.testing.assert_close(alignment.word_to_region.sum(-1), torch.ones(1, batch.input_ids.shape[1]))
    torch.testing.assert_close(alignment.region_to_word.sum(-1), torch.ones(1, tiny_model.config.num_regions))


def test_boxes_are_in_original_pixels_for_a_2000x1600_image(tiny_model):
    width, height = 2000, 1600
    image = np.zeros((height, width), dtype=np.float32)
    image[400:1200, 300:1700] = 1.0
    explanation = tiny_model.explain(image, "left effusion")
    assert explanation.image_size == (width, height)
    # By hand: scale 64/2000 = 0.032, content 64 x 51 px, 6 px of padding on top; 4x4 grid of 16 px.
    geometry = letterbox_geometry((width, height), 64)
    assert (geometry.scale, geometry.content_size, geometry.pad_top, geometry.pad_left) == (0.032, (64, 51), 6, 0)
    assert geometry.cell_box(0, 0, (4, 4)) == (0.0, 0.0, 500.0, pytest.approx((16 - 6) / 0.032))
    assert geometry.cell_box(3, 3, (4, 4)) == (1500.0, pytest.approx((48 - 6) / 0.032), 2000.0, 1600.0)
    for region in explanation.regions:
        x0, y0, x1, y1 = region.box
        assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
        assert region.box == geometry.cell_box(*region.cell, explanation.grid)


def test_padding_cells_are_never_selected(tiny_model):
    # A very wide image leaves the top and bottom rows of the 4x4 grid on padding.
    wide = np.random.default_rng(0).random((100, 400)).astype(np.float32)
    case = tiny_model.encode_case(wide)
    valid = case.letterbox.valid_cells(case.features.grid).reshape(-1)
    assert not valid.all()
    assert all(valid[i] for i in case.features.regions.indices[0].tolist())


def test_word_spans_reproduce_exact_substrings(tiny_model):
    explanation = tiny_model.explain(_phantom_batch(1)[0], REPORT)
    texts = [word.text for word in explanation.words]
    for word in explanation.words:
        assert REPORT[word.start : word.end] == word.text
    assert "XXXX" not in texts and not any(t.strip("\"(),.;!-") == "" for t in texts)
    assert {"Heart", "left", "pleural", "effusion", "pneumothorax"} <= set(texts)
    assert texts.index("pleural") + 1 == texts.index("effusion")


def test_empty_and_overlong_reports(tiny_model):
    image = _phantom_batch(1)[0]
    empty = tiny_model.explain(image, "")
    assert empty.words == () and len(empty.findings) == 14 and len(empty.regions) == 4
    long_report = "Small left pleural effusion. " * 400
    long = tiny_model.explain(image, long_report)
    assert long.report_truncated and 0 < len(long.words) < 4 * 400


def test_zero_shot_accepts_any_finding_names_and_caches_prompts(tiny_model):
    findings = ["Cardiomegaly", "Effusion", "Pleural_Thickening", "subcutaneous emphysema"]
    scores = tiny_model.zero_shot(_phantom_batch(3), findings)
    assert scores.findings == tuple(findings) and scores.probabilities.shape == (3, 4)
    assert np.all((scores.probabilities > 0) & (scores.probabilities < 1))
    cached = len(tiny_model.prompt_cache._entries)
    again = tiny_model.zero_shot(_phantom_batch(3), findings)
    assert len(tiny_model.prompt_cache._entries) == cached
    np.testing.assert_allclose(again.probabilities, scores.probabilities, rtol=1e-6)


def test_baseline_mode_is_global_only():
    torch.manual_seed(0)
    baseline = LRCLRModel(tiny_config(use_regions=False)).eval()
    assert baseline.region_selector is None and baseline.interaction is None
    assert baseline.config.zero_shot_local_weight == 0.0
    pixels, boxes = prepare_images(_phantom_batch(2), 64)
    output = baseline.train()(pixels, baseline.tokenize(["a", "b"]), boxes)
    assert output.local_loss is None
    assert torch.equal(Objective.of(baseline.config).contrastive(output), output.global_loss)
    explanation = baseline.eval().explain(_phantom_batch(1)[0], "left pleural effusion")
    assert explanation.regions == ()
    assert all(w.region_attention is None and w.patch_similarity.shape == (4, 4) for w in explanation.words)


@pytest.mark.slow  # 27 s on 2 busy cores
def test_small_model_overfits_eight_pairs():
    torch.manual_seed(0)
    model = LRCLRModel(tiny_config())
    images = _phantom_batch(8)
    reports = [f"finding number {word} in zone {zone}" for word, zone in zip(
        ["one", "two", "three", "four", "five", "six", "seven", "eight"], "abcdefgh")]
    pixels, boxes = prepare_images(images, 64)
    tokens = model.tokenize(reports)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    accuracy, steps = 0.0, 0
    for steps in range(1, 301):
        model.train()
        loss = Objective.of(model.config).contrastive(model(pixels, tokens, boxes))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if steps % 10 == 0:
            model.eval()
            with torch.no_grad():
                image = model.encode_image(pixels, boxes).global_embedding
                text = model.encode_text(tokens).global_embedding
            accuracy = ((image @ text.T).argmax(1) == torch.arange(8)).float().mean().item()
            if accuracy == 1.0:
                break
    print(f"retrieval accuracy {accuracy:.2f} after {steps} steps")
    assert accuracy == 1.0, f"retrieval accuracy {accuracy:.2f} after {steps} steps"


def test_all_pairs_fast_path_equals_scoring_each_pair():
    from lrclr.model.interaction import CrossModalInteraction

    torch.manual_seed(0)
    interaction = CrossModalInteraction(dim=16, heads=2, layers=1, gamma=5.0)
    regions = torch.nn.functional.normalize(torch.randn(3, 4, 16), dim=-1)
    words = torch.nn.functional.normalize(torch.randn(5, 7, 16), dim=-1)
    word_mask = torch.rand(5, 7) > 0.3
    word_mask[2] = False  # an empty report scores 0
    logits = torch.randn(3, 4)
    fast = interaction.pairwise_scores(regions, logits, words, word_mask)
    slow = interaction._expanded_pairwise_scores(regions, logits, words, word_mask)
    torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-6)
    assert torch.all(fast[:, 2] == 0)
    deeper = CrossModalInteraction(dim=16, heads=2, layers=2, gamma=5.0)
    assert deeper.pairwise_scores(regions, logits, words, word_mask).shape == (3, 5)


def test_explain_under_bf16_autocast_returns_float_maps():
    """The CUDA path runs under bf16 autocast; CPU autocast takes the same dtypes, so CI checks it.

    A bf16 word-patch map once reached ``.numpy()`` and failed every explanation on a GPU.
    """
    from lrclr.model.device import DeviceInfo

    torch.manual_seed(0)
    model = LRCLRModel(tiny_config()).eval()
    image = _phantom_batch(1)[0]
    reference = model.explain(image, "small left pleural effusion")
    model.device_info = DeviceInfo(torch.device("cpu"), "CPU under bf16 autocast (test)", torch.bfloat16)
    explanation = model.explain(image, "small left pleural effusion")
    assert [w.text for w in explanation.words] == [w.text for w in reference.words]
    for word, expected in zip(explanation.words, reference.words):
        assert word.patch_similarity.dtype == np.float32
        np.testing.assert_allclose(word.patch_similarity, expected.patch_similarity, atol=0.05)
        np.testing.assert_allclose(word.region_attention, expected.region_attention, atol=0.05)
    np.testing.assert_allclose([f.probability for f in explanation.findings],
                               [f.probability for f in reference.findings], atol=0.05)
