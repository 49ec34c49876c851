"""Learning from flags: flags found by hash, the feedback term, finetune --flags and flag-effect end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from lrclr.annotations.records import PairKey, sha256_hex

from lrclr.annotations.store import AnnotationStore
from lrclr.model.config import tiny_config
from lrclr.imaging.reading import load_image
from lrclr.model.lrclr_model import LRCLRModel
from train.synthetic.phantoms import generate_phantom
from tests.support.paths import REPO_ROOT
from train.cli import main as train_main
from train.commands.flag_effect import measure
from train.training.flag_loss import FlagFeatures, flag_loss, pair_attention
from train.datasets.flags import FileHashIndex, load_flag_pairs

MODEL_ID = "tiny-flags"


@pytest.fixture(autouse=True)
def _private_hash_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LRCLR_CACHE_DIR", str(tmp_path / "cache"))


def _model(seed: int = 0) -> LRCLRModel:
    torch.manual_seed(seed)
    model = LRCLRModel(tiny_config(), {"model_id": MODEL_ID})
    return model.eval()


def _write_cases(folder, seeds=(1, 2), size: int = 96):
    """Phantom PNGs with their reports beside them as .txt, as the demo gallery stores cases."""
    folder.mkdir(parents=True, exist_ok=True)
    cases = []
    for seed in seeds:
        phantom = generate_phantom(seed, size)
        image = folder / f"case-{seed}.png"
        Image.fromarray((phantom.image * 255).astype(np.uint8)).save(image)
        (folder / f"case-{seed}.txt").write_text(phantom.report + "\n", encoding="utf-8")
        cases.append((image, phantom.report.strip()))
    return cases


def _flag(store, model, image, report, verdict="bad match", *, words=2, regions=(1,), annotator="reader-1",
          model_id=MODEL_ID, image_sha=None, report_sha=None):
    explanation = model.explain(load_image(image), report, findings=())
    items = []
    for word in explanation.words[:words]:
        for region in explanation.regions:
            if region.rank in regions:
                key = PairKey.from_explanation(model_id, "case", image_sha or sha256_hex(image.read_bytes()),
                                               report_sha or sha256_hex(report), word, region)
                items.append((annotator, key, verdict))
    store.record_many(items)
    return len(items)


def test_flags_are_matched_to_images_and_reports_by_hash(tmp_path):
    model = _model()
    (image, report), (other_image, other_report) = _write_cases(tmp_path / "images")
    with AnnotationStore(tmp_path / "flags.sqlite3") as store:
        used = _flag(store, model, image, report)
        _flag(store, model, image, report, words=1, image_sha="0" * 64)  # an image nobody has
        _flag(store, model, image, report, words=1, report_sha=sha256_hex("an edited report"))
        _flag(store, model, other_image, other_report, "unsure", words=1)
        _flag(store, model, other_image, other_report, words=1, model_id="another-model")
        # Two readers disagree on the same pair: neither verdict teaches.
        _flag(store, model, other_image, other_report, "bad match", words=1, regions=(2,), annotator="a")
        _flag(store, model, other_image, other_report, "good match", words=1, regions=(2,), annotator="b")
    pairs = load_flag_pairs(tmp_path / "flags.sqlite3", model, image_roots=[tmp_path / "images"], model_id=MODEL_ID)
    skipped = pairs.selection.skipped
    assert len(pairs) == used and all(t.sign == 1 for t in pairs.targets)
    assert skipped["image not found by SHA-256 under the image roots (--flag-images)"] == 1
    assert skipped["report text not found by SHA-256 (edited in the app, or not under the roots/dataset)"] == 1
    assert skipped["bad and good verdicts tie on the same pair"] == 2
    assert any("unsure" in reason for reason in skipped) and any("another-model" in reason for reason in skipped)
    assert "skipped" in pairs.selection.summary()
    item = pairs[0]
    assert item.pixels.shape == (1, 64, 64) and item.sign == 1 and item.token_indices
    assert pairs.selection.cases[0].image_path == image and pairs.selection.cases[0].report == report
    # Every model's flags when asked: the other model's verdict now counts too.
    everything = load_flag_pairs(tmp_path / "flags.sqlite3", model, image_roots=[tmp_path / "images"], any_model=True)
    assert len(everything) == used + 1


def test_image_hashes_are_cached_by_size_and_mtime(tmp_path):
    (image, _), _ = _write_cases(tmp_path / "images")
    cache = tmp_path / "hashes.json"
    FileHashIndex([tmp_path / "images"], cache)
    entries = json.loads(cache.read_text())
    assert entries[str(image.resolve())]["sha256"] == sha256_hex(image.read_bytes())
    # A stale digest in the cache is believed while the file's size and mtime are unchanged ...
    entries[str(image.resolve())]["sha256"] = "f" * 64
    cache.write_text(json.dumps(entries))
    assert "f" * 64 in FileHashIndex([tmp_path / "images"], cache).images
    # ... and recomputed once the file changes.
    Image.fromarray(np.zeros((40, 40), np.uint8)).save(image)
    index = FileHashIndex([tmp_path / "images"], cache)
    assert sha256_hex(image.read_bytes()) in index.images and "f" * 64 not in index.images


def test_flagged_attention_is_what_explain_shows(tmp_path):
    model = _model()
    cases = _write_cases(tmp_path / "images")
    with AnnotationStore(tmp_path / "flags.sqlite3") as store:
        for image, report in cases:
            _flag(store, model, image, report, words=3, regions=(1, 3))
    pairs = load_flag_pairs(tmp_path / "flags.sqlite3", model, image_roots=[tmp_path / "images"], model_id=MODEL_ID)
    measured = measure(model, pairs)
    for i, target in enumerate(pairs.targets):
        case = pairs.selection.cases[target.case]
        explanation = model.explain(load_image(case.image_path), case.report, findings=())
        word = next(w for w in explanation.words if (w.start, w.end) == (target.char_start, target.char_end))
        assert float(measured.mass[i]) == pytest.approx(explanation.attention_map(word.index)[target.cell], abs=1e-5)
    assert bool(measured.selected.all())


def test_lowering_the_flag_loss_lowers_attention_on_the_flagged_cells(tmp_path):
    model = _model()
    cases = _write_cases(tmp_path / "images", seeds=(1, 2, 3))
    with AnnotationStore(tmp_path / "flags.sqlite3") as store:
        for image, report in cases:
            _flag(store, model, image, report, words=4, regions=(1, 2))
    pairs = load_flag_pairs(tmp_path / "flags.sqlite3", model, image_roots=[tmp_path / "images"], model_id=MODEL_ID)
    before = measure(model, pairs).mass.mean()
    features = FlagFeatures(model, pairs, torch.device("cpu"))
    loss = flag_loss(pair_attention(model, pairs, range(len(pairs)), features))
    loss.backward()
    assert model.interaction.word_to_region.query.weight.grad.abs().sum() > 0
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    for _ in range(8):
        optimizer.zero_grad()
        flag_loss(pair_attention(model, pairs, range(len(pairs)), features)).backward()
        optimizer.step()
    after = measure(model, pairs).mass.mean()
    assert after < 0.8 * before


def test_finetune_with_flags_then_flag_effect(tmp_path):
    model = _model()
    model.save_pretrained(tmp_path / MODEL_ID)
    before = LRCLRModel.from_pretrained(tmp_path / MODEL_ID)
    cases = _write_cases(tmp_path / "images")
    with AnnotationStore(tmp_path / "flags.sqlite3") as store:
        for image, report in cases:
            _flag(store, before, image, report, words=3)
            _flag(store, before, image, report, "good match", words=1, regions=(2,))
    phantoms = json.dumps({"kind": "phantoms", "n": 40, "size": 64})
    run_dir = tmp_path / "run"
    arguments = ["finetune", "--init-from", str(tmp_path / MODEL_ID), "--flags", str(tmp_path / "flags.sqlite3"),
                 "--flag-images", str(tmp_path / "images"), "--flag-weight", "5", "--flag-batch-size", "4",
                 "--set", f"dataset={phantoms}", "--set", "max_steps=4", "--set", "batch_size=8",
                 "--set", "warmup_steps=1", "--set", "eval_every=0", "--set", "checkpoint_every=4",
                 "--set", f"output_dir={run_dir}", "--device", "cpu"]
    assert train_main(arguments) == 0
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 4 and all("flag_loss" in r for r in records)
    saved = json.loads((run_dir / "train_config.json").read_text())
    assert saved["flags"] == str(tmp_path / "flags.sqlite3") and saved["flag_weight"] == 5
    assert train_main(["export", str(run_dir), "--which", "latest", "--out", str(tmp_path / "after")]) == 0
    out = tmp_path / "logs" / "effect.json"  # a folder that does not exist yet is created
    assert train_main(["flag-effect", "--before", str(tmp_path / MODEL_ID), "--after", str(tmp_path / "after"),
                       "--flags", str(tmp_path / "flags.sqlite3"), "--flag-images", str(tmp_path / "images"),
                       "--dataset", json.dumps({"kind": "phantoms", "n": 30, "size": 64}), "--bootstrap", "20",
                       "--out-json", str(out), "--out-md", str(tmp_path / "effect.md")]) == 0
    effect = json.loads(out.read_text())
    assert effect["bad"]["n"] == 6 and effect["good"]["n"] == 2
    assert effect["bad"]["selected_before"] == 1.0 and len(effect["pairs"]) == 8
    assert {"bad_attention_drop", "macro_auc_change"} <= set(effect["targets"])
    assert "Learning from flags" in (tmp_path / "effect.md").read_text()


def test_finetune_refuses_a_flag_store_with_nothing_usable(tmp_path):
    model = _model()
    model.save_pretrained(tmp_path / MODEL_ID)
    (image, report), _ = _write_cases(tmp_path / "images")
    with AnnotationStore(tmp_path / "flags.sqlite3") as store:
        _flag(store, model, image, report, model_id="someone-else")
    with pytest.raises(ValueError, match="no usable flags"):
        train_main(["finetune", "--init-from", str(tmp_path / MODEL_ID), "--flags", str(tmp_path / "flags.sqlite3"),
                    "--flag-images", str(tmp_path / "images"),
                    "--set", f"dataset={json.dumps({'kind': 'phantoms', 'n': 40, 'size': 64})}",
                    "--set", "max_steps=1", "--set", "batch_size=8", "--set", "eval_every=0",
                    "--set", f"output_dir={tmp_path / 'run'}", "--device", "cpu"])


def test_torchrun_two_gloo_processes_with_flags_match_one_process(tmp_path):
    """Flag batches covering every pair on each rank: DDP's averaged gradient equals one process's."""
    config = tiny_config()
    config.text_tower.options["dropout"] = 0.0  # dropout masks differ between one process and two
    torch.manual_seed(0)
    LRCLRModel(config, {"model_id": MODEL_ID}).save_pretrained(tmp_path / MODEL_ID)
    model = LRCLRModel.from_pretrained(tmp_path / MODEL_ID)
    with AnnotationStore(tmp_path / "flags.sqlite3") as store:
        for image, report in _write_cases(tmp_path / "images"):
            _flag(store, model, image, report, words=3)
    base = ["finetune", "--init-from", str(tmp_path / MODEL_ID), "--flags", str(tmp_path / "flags.sqlite3"),
            "--flag-images", str(tmp_path / "images"), "--flag-weight", "5", "--flag-batch-size", "64",
            "--set", f"dataset={json.dumps({'kind': 'phantoms', 'n': 40, 'size': 64})}", "--set", "max_steps=2",
            "--set", "eval_every=0", "--set", "checkpoint_every=2", "--set", "freeze=[]", "--device", "cpu"]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "train",
               *base, "--set", "batch_size=4", "--set", f"output_dir={tmp_path / 'two'}"]
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert train_main([*base, "--set", "batch_size=8", "--set", f"output_dir={tmp_path / 'one'}"]) == 0
    two, one = ([json.loads(line) for line in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]
                for run in ("two", "one"))
    assert len(two) == len(one) == 2
    for distributed, single in zip(two, one):
        assert distributed["flag_loss"] == pytest.approx(single["flag_loss"], rel=1e-4)
        assert distributed["loss"] == pytest.approx(single["loss"], rel=1e-4)
