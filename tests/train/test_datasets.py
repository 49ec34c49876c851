"""Dataset readers: tiny layouts in tests/data/datasets, and the real NIH sample when present."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest

from train.synthetic.composed_reports import restates
from lrclr.reports.labeler import NIH_FINDINGS
from tests.support.paths import TEST_DATA, require_shared
from train.training.augment import RadiographAugment
from train.datasets import (
    CheXpertDataset, CSVDataset, DatasetError, MIMICCXRDataset, NIHDataset, OpenIDataset, PhantomDataset,
    SampleReadError, build_dataset,
)
from train.datasets import base as dataset_base
from train.datasets import composed
from train.datasets.sample import Sample

LAYOUTS = TEST_DATA / "datasets"
NIH = LAYOUTS / "nih"
MIMIC = LAYOUTS / "mimic"
CHEXPERT_CSV = LAYOUTS / "chexpert" / "CheXpert-v1.0-small" / "valid.csv"
PAIRS = LAYOUTS / "csv" / "pairs.csv"


def _no_decoding(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("an image was decoded while building the dataset")
    monkeypatch.setattr(dataset_base, "load_image", refuse)


# --- NIH (official layout fixture) ----------------------------------------------------------------


def test_nih_official_layout_labels_patients_and_no_decoding_in_init(monkeypatch):
    _no_decoding(monkeypatch)
    dataset = NIHDataset(NIH, reports=None)
    assert len(dataset) == 3
    assert dataset.patient_ids() == ["1", "1", "2"]
    first = dataset.labels_of(0)
    assert set(first) == set(NIH_FINDINGS)
    assert {k for k, v in first.items() if v} == {"Cardiomegaly", "Effusion"}
    assert not any(dataset.labels_of(1).values())  # "No Finding" -> every finding 0
    assert {k for k, v in dataset.labels_of(2).items() if v} == {"Nodule"}


def test_nih_sample_fields_and_boxes_scaled_to_stored_size():
    dataset = NIHDataset(NIH, reports=None, bbox_csv=NIH / "BBox_List_2017.csv")
    sample = dataset[0]
    assert isinstance(sample, Sample)
    assert sample.pixels.dtype == np.float32 and sample.pixels.shape == (64, 64)
    assert 0.0 <= sample.pixels.min() and sample.pixels.max() <= 1.0
    assert (sample.image_id, sample.patient_id, sample.report) == ("00000001_000.png", "1", "")
    # 1024-pixel coordinates on a 64-pixel image: x 256 w 512 -> 16..48; y 512 h 256 -> 32..48.
    assert sample.boxes["Cardiomegaly"] == [(16.0, 32.0, 48.0, 48.0)]
    assert sample.boxes["Effusion"] == [(6.25, 37.5, 18.75, 56.25)]
    assert dataset[1].boxes == {}
    # Downscaling on load keeps boxes on the same anatomy.
    small = NIHDataset(NIH, reports=None, bbox_csv=NIH / "BBox_List_2017.csv", max_side=32)[0]
    assert small.pixels.shape == (32, 32)
    assert small.boxes["Cardiomegaly"] == [(8.0, 16.0, 24.0, 24.0)]


def test_nih_errors_name_what_is_wrong(tmp_path):
    with pytest.raises(DatasetError, match="no NIH labels CSV"):
        NIHDataset(tmp_path, reports=None)
    (tmp_path / "labels.csv").write_text("picture,what\nx.png,Mass\n")
    with pytest.raises(DatasetError, match="not an NIH labels CSV"):
        NIHDataset(tmp_path, reports=None)
    (tmp_path / "labels.csv").write_text("image,findings,patient_id\nx.png,Mass|Tumour,7\n")
    with pytest.raises(DatasetError, match="unknown finding"):
        NIHDataset(tmp_path, reports=None)
    bad_boxes = tmp_path / "boxes.csv"
    bad_boxes.write_text("image,label,x,y,w,h\n")
    with pytest.raises(DatasetError, match="BBox_List_2017"):
        NIHDataset(NIH, reports=None, bbox_csv=bad_boxes)


def test_missing_image_raises_with_path_or_is_skipped(tmp_path):
    root = tmp_path / "nih"
    shutil.copytree(NIH, root)
    (root / "images" / "00000001_001.png").write_bytes(b"not an image")
    with pytest.raises(SampleReadError, match="00000001_001.png"):
        NIHDataset(root, reports=None)[1]
    skipping = NIHDataset(root, reports=None, skip_unreadable=True)
    assert skipping[1].image_id == "00000002_000.png"  # the next readable record
    assert skipping[0].image_id == "00000001_000.png"


def test_nih_reports_from_a_compose_reports_jsonl(tmp_path):
    path = tmp_path / "composed.jsonl"
    lines = [{"image": image, "text": f"report for {image}", "sentences": [{"report_id": "CXR1", "sentence_index": 0}]}
             for image in ("00000001_000.png", "00000001_001.png", "00000002_000.png")]
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    dataset = NIHDataset(NIH, reports=path)
    assert dataset[2].report == "report for 00000002_000.png"
    path.write_text(json.dumps(lines[0]) + "\n")
    with pytest.raises(DatasetError, match="no report for 2 image"):
        NIHDataset(NIH, reports=path)


def test_composed_reports_are_cached_on_disk(tmp_path, monkeypatch):
    openi = LAYOUTS / "openi" / "reports"  # a tiny OpenI folder is enough to exercise the cache
    first = NIHDataset(NIH, openi=openi, cache_dir=tmp_path, seed=3)
    assert len(list((tmp_path / "composed").glob("*.jsonl"))) == 1
    assert first.report_source == "nih+composed:seed3"
    assert "enlarged" in first[0].report.lower()  # Cardiomegaly is stated from the CXR3 sentence
    composed._MEMORY.clear()

    def no_bank(*args):
        raise AssertionError("the sentence bank was rebuilt although the disk cache holds every report")
    monkeypatch.setattr(composed, "_sentence_bank", no_bank)
    again = NIHDataset(NIH, openi=openi, cache_dir=tmp_path, seed=3)
    assert [again[i].report for i in range(3)] == [first[i].report for i in range(3)]


def test_composed_reports_need_an_archive(tmp_path, monkeypatch):
    monkeypatch.setattr(composed, "default_openi_path", lambda: None)
    monkeypatch.setattr("train.datasets.nih.default_openi_path", lambda: None)
    with pytest.raises(DatasetError, match="OpenI"):
        NIHDataset(NIH, cache_dir=None)
    with pytest.raises(DatasetError, match="not found"):
        NIHDataset(NIH, openi=tmp_path / "missing.tgz", cache_dir=None)


# --- NIH: the real 421-image sample -----------------------------------------------------------------


@pytest.fixture(scope="module")
def nih_sample():
    root = require_shared("nih-cxr14-sample")
    openi = require_shared("openi-reports/NLMCXR_reports.tgz")
    # The default cache folder (LRCLR_CACHE_DIR or ~/.cache/lrclr): after the first run this is fast.
    return root, openi, NIHDataset(root, openi=openi, seed=0)


@pytest.mark.shared_data
def test_real_nih_sample_labels_patients_and_composed_reports(nih_sample):
    root, openi, dataset = nih_sample
    with open(root / "labels.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(dataset) == len(rows) == 421
    assert dataset.patient_ids() == [row["patient_id"] for row in rows]
    for index, row in enumerate(rows):
        expected = set(row["findings"].split("|")) - {"No Finding"}
        assert {k for k, v in dataset.labels_of(index).items() if v} == expected, row["image"]
    for index in (0, 3, 50, 200, 420):  # spot checks: the report states exactly the labels
        sample = dataset[index]
        assert sample.image_id == rows[index]["image"] and sample.pixels.shape == (512, 512)
        assert sample.report and restates(sample.report, sorted(k for k, v in sample.labels.items() if v))


@pytest.mark.shared_data
def test_real_nih_composed_reports_are_deterministic_by_seed(nih_sample):
    root, openi, dataset = nih_sample
    rows = [(r.image, r.findings) for r in dataset.records[:40]]
    # The tiny OpenI folder as the sentence source keeps this fast (the full bank takes ~5 s to build);
    # determinism does not depend on the bank's size. No cache, and the rows in another order.
    tiny = LAYOUTS / "openi" / "reports"
    composed._MEMORY.clear()
    first = composed.composed_reports(rows, tiny, 0, cache_dir=None)
    composed._MEMORY.clear()
    again = composed.composed_reports(rows[::-1], tiny, 0, cache_dir=None)
    assert all(first[image].text == again[image].text for image, _ in rows)
    other = composed.composed_reports(rows, tiny, 1, cache_dir=None)
    assert any(other[image].text != first[image].text for image, _ in rows)
    # The dataset's own (cached) reports survive a rebuild from the cache with the same seed.
    rebuilt = NIHDataset(root, openi=openi, seed=0)
    assert [rebuilt.reports[r.image].text for r in rebuilt.records] == \
        [dataset.reports[r.image].text for r in dataset.records]


# --- MIMIC-CXR ----------------------------------------------------------------------------------


def test_mimic_split_views_labels_and_report_sections(monkeypatch):
    _no_decoding(monkeypatch)
    train = MIMICCXRDataset(MIMIC)  # metadata present: PA/AP only, the lateral is dropped
    assert len(train) == 2
    assert train.patient_ids() == ["10000001", "10000001"]
    assert train.labels_of(0) == {"Effusion": 1, "Pneumothorax": 0, "Cardiomegaly": 0}  # blanks left out
    assert train.labels_of(1) == {"No Finding": 1}
    assert len(MIMICCXRDataset(MIMIC, views=None)) == 3
    test = MIMICCXRDataset(MIMIC, split="test")
    assert test.labels_of(0) == {"Consolidation": 1, "Pneumonia": -1}
    assert MIMICCXRDataset(MIMIC, split="test", uncertain="ones").labels_of(0)["Pneumonia"] == 1
    assert "Pneumonia" not in MIMICCXRDataset(MIMIC, split="test", uncertain="ignore").labels_of(0)


def test_mimic_samples():
    dataset = MIMICCXRDataset(MIMIC, split=None, views=None, max_side=48)
    assert len(dataset) == 4
    first = dataset[0]
    assert first.image_id == "aaaa0001-0000-0000-0000-000000000001"
    assert first.pixels.shape == (40, 48)  # 80x96 stored, longer side to 48
    # FINDINGS then IMPRESSION; the indication and examination lines are left out.
    assert first.report == ("Small left pleural effusion. No pneumothorax. Heart size is normal. "
                            "Small left pleural effusion.")
    assert dataset[2].report == "No acute cardiopulmonary process."
    assert dataset[3].report.endswith("Right lower lobe consolidation, possibly pneumonia.")  # no headers


def test_mimic_errors(tmp_path):
    with pytest.raises(DatasetError, match="split must be one of"):
        MIMICCXRDataset(MIMIC, split="valid")
    tmp_path.joinpath("files").mkdir()
    with pytest.raises(DatasetError, match="split CSV"):
        MIMICCXRDataset(tmp_path)
    (tmp_path / "mimic-cxr-2.0.0-split.csv").write_text("dicom_id,study_id,split\n")
    with pytest.raises(DatasetError, match="subject_id"):
        MIMICCXRDataset(tmp_path)


# --- CheXpert, generic CSV, OpenI ---------------------------------------------------------------


def test_chexpert_frontal_labels_patients_and_roots(monkeypatch):
    dataset = CheXpertDataset(CHEXPERT_CSV)
    assert len(dataset) == 2
    assert dataset.patient_ids() == ["patient00001", "patient00002"]
    assert dataset.labels_of(0) == {"Cardiomegaly": 1, "Edema": 0, "Effusion": -1}
    sample = dataset[0]
    assert sample.pixels.shape == (64, 72) and sample.report == ""
    everything = CheXpertDataset(CHEXPERT_CSV, root=LAYOUTS / "chexpert", frontal_only=False)
    assert len(everything) == 3 and everything[1].pixels.shape == (72, 64)
    with pytest.raises(DatasetError, match="section_findings"):
        CheXpertDataset(CHEXPERT_CSV, report_column="section_findings")


def test_generic_csv_reports_labels_and_errors(tmp_path):
    dataset = CSVDataset(PAIRS)
    assert dataset.patient_ids() == ["A", "B"]
    assert dataset.labels_of(0) == {"Effusion": 0, "Cardiomegaly": 1}  # "Pleural Effusion" -> Effusion
    assert dataset[0].report == "Heart is enlarged. No effusion."
    assert dataset[1].report == "Moderate right pleural effusion."  # from report_path
    assert dataset[1].pixels.shape == (48, 64)
    with pytest.raises(DatasetError, match="not found"):
        CSVDataset(tmp_path / "absent.csv")
    (tmp_path / "a.csv").write_text("image,text\nx.png,hello\n")
    with pytest.raises(DatasetError, match="'report' or 'report_path'"):
        CSVDataset(tmp_path / "a.csv")
    (tmp_path / "b.csv").write_text("image,report,Effusion,Pleural Effusion\nx.png,hi,1,0\n")
    with pytest.raises(DatasetError, match="both give finding"):
        CSVDataset(tmp_path / "b.csv")
    (tmp_path / "c.csv").write_text("image,report,Mass\nx.png,hi,yes\n")
    with pytest.raises(DatasetError, match="expected 1, 0, -1 or blank"):
        CSVDataset(tmp_path / "c.csv")
    (tmp_path / "d.csv").write_text("image,report\nmissing.png,hi\n")
    lonely = CSVDataset(tmp_path / "d.csv")
    assert lonely.patient_ids() == ["missing.png"]
    with pytest.raises(SampleReadError, match="missing.png"):
        lonely[0]


def test_openi_pairs_reports_with_images_and_counts_missing():
    dataset = OpenIDataset(LAYOUTS / "openi" / "reports", LAYOUTS / "openi" / "images")
    assert len(dataset) == 3
    assert dataset.missing_images == ["CXR3_IM-1384-1001"]
    assert dataset.patient_ids() == ["CXR1", "CXR1", "CXR2"]
    assert dataset.labels_of(2)["Effusion"] == 1 and dataset.labels_of(0)["No Finding"] == 1
    sample = dataset[2]
    assert sample.image_id == "CXR2_IM-0652-1001"
    assert sample.report == "Large right pleural effusion. No pneumothorax. Right effusion."
    with pytest.raises(DatasetError, match="images folder"):
        OpenIDataset(LAYOUTS / "openi" / "reports", LAYOUTS / "nowhere")


# --- phantoms, transforms, specs ------------------------------------------------------------------


def test_phantoms_yield_masks_and_cheap_labels_that_match():
    dataset = PhantomDataset(6, start=10, size=64)
    assert dataset.patient_ids()[0] == "phantom-000010"
    cheap = [dataset.labels_of(i) for i in range(len(dataset))]
    samples = [dataset[i] for i in range(len(dataset))]
    assert cheap == [s.labels for s in samples]
    assert any(s.masks for s in samples)
    for sample in samples:
        assert sample.patient_id == sample.image_id and sample.report
        assert set(sample.masks) == {k for k, v in sample.labels.items() if v}
        assert all(m.shape == (64, 64) and m.dtype == bool for m in sample.masks.values())
    np.testing.assert_array_equal(PhantomDataset(6, start=10, size=64)[2].pixels, samples[2].pixels)


def test_transform_is_seeded_by_seed_epoch_and_index():
    seen = []

    def record(sample, rng):
        seen.append(rng.integers(1 << 30))
        return sample
    dataset = PhantomDataset(2, size=48, transform=record, seed=5)
    dataset[0], dataset[0], dataset[1]
    dataset.set_epoch(1)
    dataset[0]
    assert seen[0] == seen[1] and len({seen[0], seen[2], seen[3]}) == 3


def test_build_dataset_from_json_specs():
    dataset = build_dataset({"kind": "csv", "csv_path": str(PAIRS), "augment": {"max_rotation_deg": 2}})
    assert isinstance(dataset, CSVDataset) and isinstance(dataset.transform, RadiographAugment)
    assert dataset.transform.max_rotation_deg == 2
    assert len(build_dataset({"kind": "phantom", "n": 3, "size": 40})) == 3
    with pytest.raises(DatasetError, match="one of"):
        build_dataset({"kind": "imagenet"})
    with pytest.raises(DatasetError, match="unknown key"):
        build_dataset({"kind": "nih", "root": str(NIH), "report": None})
