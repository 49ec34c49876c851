"""Localization supervision (train/training/localization.py) and the pointing game's ceiling on a grid."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lrclr.model.config import tiny_config
from lrclr.model.lrclr_model import LRCLRModel
from lrclr.model.letterbox import letterbox_geometry
from train.evaluation.localization import pointing_game_reachable
from train.training.localization import PhraseBank, batch_targets, cell_coverage, localization_loss, sample_coverage
from train.datasets.sample import Sample


def test_cell_coverage_counts_the_share_of_each_cell_inside_the_mask():
    letterbox = letterbox_geometry((64, 64), 64)  # 4 x 4 cells of 16 px
    mask = np.zeros((64, 64), dtype=bool)
    mask[0:16, 16:32] = True  # all of cell (0, 1)
    mask[16:24, 0:16] = True  # the top half of cell (1, 0)
    coverage = cell_coverage(mask, letterbox, (4, 4)).reshape(4, 4)
    assert coverage[0, 1] == 1.0 and coverage[1, 0] == 0.5
    assert coverage.sum() == pytest.approx(1.5)


def test_cell_coverage_follows_the_letterbox_and_leaves_padding_at_zero():
    letterbox = letterbox_geometry((32, 64), 64)  # 32 wide, 64 high: padded 16 px left and right
    mask = np.ones((64, 32), dtype=bool)
    coverage = cell_coverage(mask, letterbox, (4, 4)).reshape(4, 4)
    assert np.all(coverage[:, 1:3] == 1.0) and np.all(coverage[:, [0, 3]] == 0.0)


def test_boxes_count_when_a_sample_has_no_mask_and_empty_truth_is_dropped():
    sample = Sample("s", "p", np.zeros((64, 64), np.float32), "", masks={"Edema": np.zeros((64, 64), bool)},
                    boxes={"Mass": [(48, 48, 64, 64)]})
    covered = sample_coverage(sample, letterbox_geometry((64, 64), 64), (4, 4))
    assert list(covered) == ["Mass"] and covered["Mass"].reshape(4, 4)[3, 3] == 1.0


def test_batch_targets_pairs_images_with_known_findings_only():
    cover = np.zeros(16, np.float16)
    cover[5] = 1
    targets = batch_targets([{}, {"Mass": cover, "Unheard_Of": cover}], ["Effusion", "Mass"], torch.device("cpu"))
    assert targets.image_index.tolist() == [1] and targets.phrase_index.tolist() == [1]
    assert targets.coverage.shape == (1, 16) and batch_targets([{}], ["Mass"], torch.device("cpu")) is None


def test_the_loss_teaches_selection_and_attention_to_find_the_masked_cell():
    """Gradient reaches the selector and the interaction: after training on one target, the
    target cell is selected first and the finding's phrase attends to it most."""
    torch.manual_seed(0)
    model = LRCLRModel(tiny_config())
    phrases = PhraseBank(model, ["Effusion"], torch.device("cpu"), text_frozen=True)
    grid = torch.randn(2, 32, 4, 4)  # two images' tower grids, fixed
    target_cell = 13
    coverage = np.zeros(16, np.float16)
    coverage[target_cell] = 1
    targets = batch_targets([{"Effusion": coverage}, {"Effusion": coverage}], ["Effusion"], torch.device("cpu"))
    heads = [p for name, p in model.named_parameters() if not name.startswith(("image_tower", "text_tower"))]
    optimizer = torch.optim.Adam(heads, lr=0.01)
    losses = []
    for _ in range(60):
        loss = localization_loss(model, model.project_image_grid(grid), targets, phrases)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    with torch.no_grad():
        image = model.project_image_grid(grid)
        text = phrases.features(model)
        regions = image.regions
        assert regions.indices[:, 0].tolist() == [target_cell, target_cell]  # ranked first
        alignment = model.interaction(text.tokens.expand(2, -1, -1), text.word_mask.expand(2, -1),
                                      regions.embeddings, regions.logits)
        words = text.word_mask[0]
        attention = alignment.word_to_region[:, words].mean(1)
        assert regions.indices.gather(1, attention.argmax(1, keepdim=True)).flatten().tolist() == [target_cell] * 2


def test_local_only_trains_the_selector_and_interaction_but_not_the_projections():
    torch.manual_seed(0)
    model = LRCLRModel(tiny_config())
    phrases = PhraseBank(model, ["Effusion"], torch.device("cpu"), text_frozen=True)
    coverage = np.zeros(16, np.float16)
    coverage[:8] = 1  # half the cells, so the selected regions touch it and attention gets a target
    targets = batch_targets([{"Effusion": coverage}], ["Effusion"], torch.device("cpu"))
    grid = torch.randn(1, 32, 4, 4)
    for local_only in (False, True):
        model.zero_grad()
        localization_loss(model, model.project_image_grid(grid), targets, phrases, local_only).backward()
        reached = {name.split(".")[0] for name, p in model.named_parameters()
                   if p.grad is not None and p.grad.abs().sum() > 0}
        assert {"region_selector", "interaction"} <= reached
        assert ({"image_projection", "text_projection"} & reached) == (set() if local_only else
                                                                       {"image_projection", "text_projection"})


def test_the_pointing_game_ceiling_sees_masks_that_miss_every_cell_centre():
    letterbox = letterbox_geometry((64, 64), 64)  # cell centres at 8, 24, 40, 56
    thin = np.zeros((64, 64), dtype=bool)
    thin[10:14, :] = True  # a band between the centre rows 8 and 24
    assert not pointing_game_reachable(thin, letterbox, (4, 4), top=4)
    assert pointing_game_reachable(thin, letterbox, (4, 4), top=4, tolerance_px=3)
    thin[24, 30:34] = True  # on the centre row of cell (1, 1), but not on its centre pixel (24, 24)
    assert not pointing_game_reachable(thin, letterbox, (4, 4), top=4)
    thin[24, 24] = True
    assert pointing_game_reachable(thin, letterbox, (4, 4), top=4)


def test_the_pointing_game_chance_is_the_share_of_cell_centres_in_the_mask():
    from train.evaluation.localization import content_cell_hits

    letterbox = letterbox_geometry((64, 64), 64)  # 16 cells, centres at 8, 24, 40, 56
    mask = np.zeros((64, 64), dtype=bool)
    mask[:32, :32] = True  # the centres of the four top-left cells
    hits = content_cell_hits(mask, letterbox, (4, 4), top=4)
    assert hits.sum() == 4 and hits.mean() == 0.25


def test_a_finetune_with_localization_logs_the_term_and_only_phantoms_feed_it(tmp_path):
    from train.cli import main as train_main

    common = ["--set", f"model={json.dumps(tiny_config().to_dict())}", "--set", "batch_size=8",
              "--set", 'dataset={"kind": "phantoms", "n": 40, "size": 64}', "--set", "eval_every=0",
              "--set", "checkpoint_every=4", "--set", "warmup_steps=1"]
    assert train_main(["pretrain", *common, "--set", "max_steps=2", "--set", f"output_dir={tmp_path / 'b'}"]) == 0
    assert train_main(["export", str(tmp_path / "b"), "--out", str(tmp_path / "base")]) == 0
    assert train_main(["finetune", *common, "--set", "max_steps=4", "--set", f"output_dir={tmp_path / 'l'}",
                       "--init-from", str(tmp_path / "base"), "--set", "localization_weight=0.5"]) == 0
    records = [json.loads(line) for line in (tmp_path / "l" / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 4 and all(r["localization_loss"] > 0 for r in records)
    assert json.loads((tmp_path / "l" / "train_config.json").read_text())["localization_weight"] == 0.5
