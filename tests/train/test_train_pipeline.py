"""The whole ``python -m train`` pipeline on tiny phantom runs: pretrain -> export -> finetune ->
export -> load, and the same command under ``torchrun`` with two gloo processes."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from lrclr.model.config import tiny_config
from lrclr.model.lrclr_model import LRCLRModel
from tests.support.paths import REPO_ROOT
from train.cli import main as train_main

TINY_MODEL = json.dumps(tiny_config().to_dict())
PHANTOMS = json.dumps({"kind": "phantoms", "n": 40, "size": 64})


def _common(run_dir, steps: int) -> list[str]:
    return [
        "--set", f"model={TINY_MODEL}", "--set", f"dataset={PHANTOMS}", "--set", f"max_steps={steps}",
        "--set", "batch_size=8", "--set", "lr=0.003", "--set", "tower_lr=0.003", "--set", "warmup_steps=2",
        "--set", "eval_every=5", "--set", "checkpoint_every=5", "--set", f"output_dir={run_dir}",
    ]


def _losses(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow  # 35 s on 2 busy cores
def test_pretrain_export_finetune_export_load(tmp_path):
    baseline_run, lrclr_run = tmp_path / "baseline-run", tmp_path / "lrclr-run"
    assert train_main(["pretrain", *_common(baseline_run, 15)]) == 0
    losses = [r["loss"] for r in _losses(baseline_run)]
    assert np.mean(losses[-3:]) < np.mean(losses[:3])
    assert train_main(["export", str(baseline_run), "--out", str(tmp_path / "baseline")]) == 0
    baseline = LRCLRModel.from_pretrained(tmp_path / "baseline")
    assert baseline.region_selector is None

    # The default config freezes the text tower for the whole run. A frozen tower with a pretrained
    # source is rebuilt from it on load (test_bundled_model checks the packaged one); this tiny one is
    # random, so nothing could rebuild it and its weights must be stored.
    assert train_main(["finetune", *_common(lrclr_run, 15), "--init-from", str(tmp_path / "baseline")]) == 0
    records = _losses(lrclr_run)
    assert "local_loss" in records[0] and np.mean([r["loss"] for r in records[-3:]]) < np.mean(
        [r["loss"] for r in records[:3]])
    assert train_main(["export", str(lrclr_run), "--out", str(tmp_path / "lrclr")]) == 0
    config = json.loads((tmp_path / "lrclr" / "config.json").read_text())
    assert config["use_regions"] and config["text_tower"]["store_weights"] is True
    card = json.loads((tmp_path / "lrclr" / "model_card.json").read_text())
    assert card["steps"] == 15 and card["training_seconds"] > 0 and card["hardware"]
    assert card["training_data"]["split_sizes"]["train"] > 0 and "finetune" in card["training_command"]
    loaded = LRCLRModel.from_pretrained(tmp_path / "lrclr")
    explanation = loaded.explain(np.random.default_rng(0).random((80, 64)).astype(np.float32), "left effusion")
    assert len(explanation.regions) == 4


def test_finetune_refuses_a_model_of_another_architecture(tmp_path):
    other = tiny_config(embed_dim=16, interaction_heads=2)
    LRCLRModel(other).save_pretrained(tmp_path / "other")
    with pytest.raises(ValueError, match="does not fit this architecture"):
        train_main(["finetune", *_common(tmp_path / "run", 2), "--init-from", str(tmp_path / "other"),
                    "--set", f"model={TINY_MODEL}"])


@pytest.mark.slow  # 21 s on 2 busy cores
def test_torchrun_two_gloo_processes_match_one_process(tmp_path):
    """Same global batch (2 x 4 vs 1 x 8): the first step's loss must agree."""
    two, one = tmp_path / "two", tmp_path / "one"
    # Without dropout, whose random masks differ between one process and two, the runs are comparable.
    config = tiny_config()
    config.text_tower.options["dropout"] = 0.0
    base = ["--set", f"model={json.dumps(config.to_dict())}", "--set", f"dataset={PHANTOMS}", "--set", "max_steps=2",
            "--set", "eval_every=0", "--set", "checkpoint_every=2", "--set", "freeze=[]"]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "train", "pretrain", *base, "--set", "batch_size=4", "--set", f"output_dir={two}", "--device", "cpu"]
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
                            env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert train_main(["pretrain", *base, "--set", "batch_size=8", "--set", f"output_dir={one}", "--device", "cpu"]) == 0
    distributed, single = _losses(two), _losses(one)
    assert len(distributed) == len(single) == 2
    assert distributed[0]["loss"] == pytest.approx(single[0]["loss"], rel=1e-4)
    # The optimizer step after it uses gradients averaged across ranks: the second loss agrees too.
    assert distributed[1]["loss"] == pytest.approx(single[1]["loss"], rel=1e-3)


def test_export_keeps_a_frozen_tower_that_the_starting_model_had_fine_tuned(tmp_path):
    import json

    from train.commands.export import frozen_towers

    def run_with(freeze, init_from=None):
        run = tmp_path / f"run-{len(list(tmp_path.iterdir()))}"
        run.mkdir()
        (run / "train_config.json").write_text(json.dumps({"freeze": freeze, "init_from": init_from}))
        return run

    start = tmp_path / "start"
    start.mkdir()
    (start / "config.json").write_text(json.dumps({"image_tower": {"store_weights": True},
                                                   "text_tower": {"store_weights": False}}))
    both = ["image_tower", "text_tower"]
    assert frozen_towers(run_with(both)) == set(both)  # from the packages: both are their package's weights
    # Started from a model whose image tower was fine-tuned: only the text tower is the package's.
    assert frozen_towers(run_with(both, str(start))) == {"text_tower"}
    assert frozen_towers(run_with(both, str(tmp_path / "missing"))) == set()  # unknown start: keep all
