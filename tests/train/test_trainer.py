"""The training loop on tiny models: loss goes down, resume is exact, checkpoints are atomic."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lrclr.model.config import tiny_config
from lrclr.model.lrclr_model import LRCLRModel
from train.training.checkpoint import latest_checkpoint
from train.training.run_config import TrainConfig, apply_override
from train.datasets.sample import Sample
from train.training.batches import EpochBatches
from train.training.trainer import Trainer, warmup_cosine

WORDS = ["effusion", "nodule", "cardiomegaly", "pneumothorax", "edema", "mass", "atelectasis", "hernia"]


def _samples(n: int = 8) -> list[Sample]:
    rows, cols = np.mgrid[0:64, 0:64]
    samples = []
    for i in range(n):
        cy, cx = 12 + (i // 3) * 18, 12 + (i % 3) * 18
        pixels = (0.2 + 0.7 * (((rows - cy) ** 2 + (cols - cx) ** 2) < 64)).astype(np.float32)
        samples.append(Sample(f"img{i}", f"p{i}", pixels, f"there is {WORDS[i % 8]} in zone {i}"))
    return samples


def _config(tmp_path, **overrides) -> TrainConfig:
    model = {k: v for k, v in tiny_config().to_dict().items()}
    values = dict(model=model, batch_size=4, max_steps=6, lr=3e-3, tower_lr=3e-3, warmup_steps=2,
                  freeze=[], checkpoint_every=3, eval_every=0, output_dir=str(tmp_path / "run"), seed=1)
    values.update(overrides)
    return TrainConfig(**values)


def _parameters(model: LRCLRModel) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_resume_after_n_steps_equals_an_uninterrupted_2n_step_run(tmp_path):
    data = _samples(10)  # 10 items, batches of 4: epochs roll over mid-run, testing the data position
    straight = Trainer(_config(tmp_path / "a", max_steps=6), data, [], resume=False, show_progress=False)
    straight.fit()
    first = Trainer(_config(tmp_path / "b", max_steps=6), data, [], show_progress=False)
    first.fit(stop_at_step=3)
    assert latest_checkpoint(tmp_path / "b" / "run").name == "checkpoint-000003"
    resumed = Trainer(_config(tmp_path / "b", max_steps=6), data, [], show_progress=False)
    assert resumed.state.step == 3 and (resumed.state.epoch, resumed.state.batches_in_epoch) == (1, 1)
    resumed.fit()
    a, b = _parameters(straight.model), _parameters(resumed.model)
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.slow  # 38 s on 2 busy cores
def test_loss_decreases_and_metrics_are_logged(tmp_path):
    trainer = Trainer(_config(tmp_path, max_steps=40, checkpoint_every=40), _samples(8), _samples(4),
                      resume=False, show_progress=False)
    trainer.config.eval_every = 20
    trainer.fit()
    lines = [json.loads(l) for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [l["step"] for l in lines] == list(range(1, 41))
    first, last = np.mean([l["loss"] for l in lines[:5]]), np.mean([l["loss"] for l in lines[-5:]])
    assert last < 0.5 * first, (first, last)
    assert {"global_loss", "local_loss", "lr"} <= set(lines[0]) and "val_loss" in lines[19]
    assert (tmp_path / "run" / "best" / "model.safetensors").is_file()
    assert json.loads((tmp_path / "run" / "train_config.json").read_text())["max_steps"] == 40


def test_frozen_towers_do_not_move_and_unfreeze_on_schedule(tmp_path):
    config = _config(tmp_path, max_steps=4, freeze=["text_tower"], unfreeze_at_step=2, checkpoint_every=10)
    trainer = Trainer(config, _samples(8), [], resume=False, show_progress=False)
    before = {k: v.clone() for k, v in trainer.model.text_tower.state_dict().items()}
    trainer.fit(stop_at_step=2)
    after = trainer.model.text_tower.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    trainer.fit()
    assert any(not torch.equal(before[k], trainer.model.text_tower.state_dict()[k]) for k in before)


def test_epoch_batches_shard_one_permutation_across_ranks():
    ranks = [EpochBatches(10, 2, seed=3, rank=r, world_size=2) for r in range(2)]
    assert ranks[0].per_epoch == 2  # 10 items // global batch 4 (drop_last)
    seen = [i for r in ranks for batch in r.epoch(0) for i in batch]
    assert len(seen) == len(set(seen)) == 8
    assert ranks[0].epoch(0, start=1) == ranks[0].epoch(0)[1:]
    assert ranks[0].epoch(1) != ranks[0].epoch(0)
    with pytest.raises(ValueError, match="cannot fill one global batch"):
        EpochBatches(3, 2, seed=0, world_size=2)


def test_warmup_then_cosine():
    factor = warmup_cosine(warmup_steps=4, max_steps=14)
    assert [factor(s) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert factor(9) == pytest.approx(0.5) and factor(14) == pytest.approx(0.0)


def test_overrides_set_nested_json_values():
    data = {"model": {"num_regions": 16}}
    for item in ["max_steps=100", "model.num_regions=8", "freeze=[]", "output_dir=runs/x", "init_from=null"]:
        apply_override(data, item)
    config = TrainConfig.from_dict(data)
    assert (config.max_steps, config.model["num_regions"], config.freeze, config.output_dir, config.init_from) == (
        100, 8, [], "runs/x", None)
    with pytest.raises(ValueError, match="unknown training config keys: bogus"):
        TrainConfig.from_dict({"bogus": 1})


def test_cached_frozen_towers_train_like_running_the_towers(tmp_path):
    """Same data, same seed: caching the frozen towers' outputs gives the same weights."""
    data = _samples(8)
    common = dict(max_steps=4, freeze=["image_tower", "text_tower"], checkpoint_every=10)
    direct = Trainer(_config(tmp_path / "a", **common), data, [], resume=False, show_progress=False)
    direct.fit()
    cached = Trainer(_config(tmp_path / "b", cache_frozen_towers=1, **common), data, [], resume=False,
                     show_progress=False)
    cached.fit()
    # The cache stores grids in fp16, so agreement is to fp16 precision, not bit for bit.
    losses = [[json.loads(l)["loss"] for l in (tmp_path / run / "run" / "metrics.jsonl").read_text().splitlines()]
              for run in ("a", "b")]
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-3)
    a, b = _parameters(direct.model), _parameters(cached.model)
    for name in a:
        # Adam turns tiny gradient differences on near-zero entries into steps of up to ~lr each.
        torch.testing.assert_close(a[name], b[name], rtol=1e-2, atol=1e-2)
    with pytest.raises(ValueError, match="needs both towers frozen"):
        Trainer(_config(tmp_path / "c", max_steps=1, cache_frozen_towers=1, freeze=["text_tower"]), data, [],
                resume=False, show_progress=False).fit()


def test_image_tower_tail_fine_tuning_with_a_cached_prefix(tmp_path):
    """Only the last blocks of an EfficientNet tower move; caching its prefix trains the same way."""
    from lrclr.model.config import LRCLRConfig, TowerConfig

    # Pretrained weights: a random EfficientNet emits ~1e-8 activations that fp16 caching cannot carry.
    model = LRCLRConfig(image_tower=TowerConfig("efficientnet-lite0"),
                        text_tower=TowerConfig("tiny-bert", source=None, options={"dropout": 0.0}),
                        image_size=64, embed_dim=32, num_regions=2, scorer_hidden=8, interaction_heads=2).to_dict()
    # A pretrained-scale learning rate for the tower, so one step does not scramble its weights.
    common = dict(model=model, max_steps=2, freeze=["text_tower"], image_tower_tail_blocks=2, checkpoint_every=10,
                  tower_lr=1e-4)
    direct = Trainer(_config(tmp_path / "a", **common), _samples(8), [], resume=False, show_progress=False)
    before = _parameters(direct.model)
    direct.fit()
    after = _parameters(direct.model)
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    assert "image_tower.net._blocks.15._project_conv.weight" in moved
    assert "image_tower.net._conv_head.weight" in moved
    assert not any(k.startswith(("image_tower.net._blocks.13.", "image_tower.net._conv_stem")) for k in moved)
    cached = Trainer(_config(tmp_path / "b", cache_frozen_towers=1, **common), _samples(8), [], resume=False,
                     show_progress=False)
    cached.fit()
    losses = [[json.loads(l)["loss"] for l in (tmp_path / run / "run" / "metrics.jsonl").read_text().splitlines()]
              for run in ("a", "b")]
    # Same first batch, same weights: the fp16 prefix cache gives the same loss, and the same step.
    assert losses[0][0] == pytest.approx(losses[1][0], rel=1e-3)
    assert losses[0][1] == pytest.approx(losses[1][1], rel=1e-2)
