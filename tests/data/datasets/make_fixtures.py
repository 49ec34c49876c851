"""Regenerate the tiny dataset layouts in this folder: ``python tests/data/datasets/make_fixtures.py``.

Every image is the NIH fixture ``tests/data/nih_00000075_128_gray8.png`` resized (and, for MIMIC,
saved as JPEG); every report, id and label is made up for these tests. Sizes differ on purpose so
tests can check box scaling and ``max_side`` downscaling.
"""

from __future__ import annotations

import gzip
from pathlib import Path

from PIL import Image

HERE = Path(__file__).resolve().parent
SOURCE = HERE.parent / "nih_00000075_128_gray8.png"


def _image(path: Path, size: tuple[int, int], fmt: str = "PNG") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.open(SOURCE).convert("L").resize(size, Image.Resampling.LANCZOS)
    image.save(path, fmt, **({"quality": 85} if fmt == "JPEG" else {}))


def _csv(path: Path, rows: list[list[str]], gz: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(",".join(row) + "\n" for row in rows)  # fixture values hold no commas or quotes
    if gz:
        with gzip.GzipFile(path, "wb", mtime=0) as raw:  # mtime 0: reruns give identical bytes
            raw.write(text.encode("utf-8"))
    else:
        path.write_text(text, encoding="utf-8")


def nih() -> None:
    root = HERE / "nih"
    names = ["00000001_000.png", "00000001_001.png", "00000002_000.png"]
    for name in names:
        _image(root / "images" / name, (64, 64))
    _csv(root / "Data_Entry_2017.csv", [
        ["Image Index", "Finding Labels", "Follow-up #", "Patient ID", "Patient Age", "Patient Gender",
         "View Position", "OriginalImage[Width", "Height]", "OriginalImagePixelSpacing[x", "y]"],
        [names[0], "Cardiomegaly|Effusion", "0", "1", "58", "M", "PA", "2682", "2749", "0.143", "0.143"],
        [names[1], "No Finding", "1", "1", "58", "M", "PA", "2894", "2729", "0.143", "0.143"],
        [names[2], "Nodule", "0", "2", "81", "F", "AP", "2500", "2048", "0.168", "0.168"],
    ])
    # The official file's header splits "Bbox [x,y,w,h]" over four columns and ends with empty ones.
    (root / "BBox_List_2017.csv").write_text(
        "Image Index,Finding Label,Bbox [x,y,w,h],,,\n"
        "00000001_000.png,Cardiomegaly,256.0,512.0,512.0,256.0,,,\n"
        "00000001_000.png,Effusion,100.0,600.0,200.0,300.0,,,\n"
        "00000002_000.png,Nodule,512.0,512.0,64.0,128.0,,,\n", encoding="utf-8")


def mimic() -> None:
    root = HERE / "mimic"
    studies = [  # subject, study, dicom, view, split, size
        ("10000001", "50000001", "aaaa0001-0000-0000-0000-000000000001", "PA", "train", (96, 80)),
        ("10000001", "50000001", "aaaa0001-0000-0000-0000-000000000002", "LATERAL", "train", (80, 96)),
        ("10000001", "50000002", "aaaa0002-0000-0000-0000-000000000001", "AP", "train", (64, 64)),
        ("11000002", "50000003", "aaaa0003-0000-0000-0000-000000000001", "PA", "test", (64, 64)),
    ]
    for subject, study, dicom, _, _, size in studies:
        _image(root / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study}" / f"{dicom}.jpg", size, "JPEG")
    reports = {
        "50000001": "                                 FINAL REPORT\n EXAMINATION:  CHEST (PA AND LAT)\n \n"
                    " INDICATION:  Cough.\n \n FINDINGS: \n \n Small left pleural effusion. No pneumothorax.\n"
                    " Heart size is normal.\n \n IMPRESSION: \n \n Small left pleural effusion.\n",
        "50000002": "                                 FINAL REPORT\n INDICATION:  Fever.\n \n IMPRESSION: \n \n"
                    " No acute cardiopulmonary process.\n",
        "50000003": "                                 FINAL REPORT\n CHEST RADIOGRAPH\n \n Right lower lobe "
                    "consolidation, possibly pneumonia.\n",
    }
    for subject, study, *_ in studies:
        path = root / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study}.txt"
        path.write_text(reports[study], encoding="utf-8")
    _csv(root / "mimic-cxr-2.0.0-split.csv.gz",
         [["dicom_id", "study_id", "subject_id", "split"]] + [[d, st, su, sp] for su, st, d, _, sp, _ in studies],
         gz=True)
    _csv(root / "mimic-cxr-2.0.0-metadata.csv",
         [["dicom_id", "subject_id", "study_id", "ViewPosition"]] + [[d, su, st, v] for su, st, d, v, _, _ in studies])
    observations = ["Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Enlarged Cardiomediastinum",
                    "Fracture", "Lung Lesion", "Lung Opacity", "No Finding", "Pleural Effusion", "Pleural Other",
                    "Pneumonia", "Pneumothorax", "Support Devices"]
    def row(subject, study, **values):
        return [subject, study] + [values.get(o.replace(" ", "_"), "") for o in observations]
    _csv(root / "mimic-cxr-2.0.0-chexpert.csv", [["subject_id", "study_id"] + observations,
         row("10000001", "50000001", Pleural_Effusion="1.0", Pneumothorax="0.0", Cardiomegaly="0.0"),
         row("10000001", "50000002", No_Finding="1.0"),
         row("11000002", "50000003", Consolidation="1.0", Pneumonia="-1.0")])


def chexpert() -> None:
    root = HERE / "chexpert"
    base = "CheXpert-v1.0-small/valid"
    files = [("patient00001/study1/view1_frontal.jpg", (72, 64)), ("patient00001/study1/view2_lateral.jpg", (64, 72)),
             ("patient00002/study1/view1_frontal.jpg", (64, 64))]
    for relative, size in files:
        _image(root / base / relative, size, "JPEG")
    observations = ["No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity", "Lung Lesion",
                    "Edema", "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion",
                    "Pleural Other", "Fracture", "Support Devices"]
    header = ["Path", "Sex", "Age", "Frontal/Lateral", "AP/PA"] + observations
    def row(relative, view, ap, **values):
        return [f"{base}/{relative}", "Female", "68", view, ap] + [values.get(o.replace(" ", "_"), "")
                                                                   for o in observations]
    _csv(root / "CheXpert-v1.0-small" / "valid.csv", [
        header,
        row(files[0][0], "Frontal", "AP", Cardiomegaly="1.0", Pleural_Effusion="-1.0", Edema="0.0"),
        row(files[1][0], "Lateral", "", Cardiomegaly="1.0"),
        row(files[2][0], "Frontal", "PA", No_Finding="1.0"),
    ])


def generic_csv() -> None:
    root = HERE / "csv"
    _image(root / "images" / "case1.png", (48, 64))
    _image(root / "images" / "case2.png", (64, 48))
    (root / "reports").mkdir(parents=True, exist_ok=True)
    (root / "reports" / "case2.txt").write_text("Moderate right pleural effusion.\n", encoding="utf-8")
    _csv(root / "pairs.csv", [
        ["image", "report", "report_path", "patient_id", "Pleural Effusion", "Cardiomegaly", "note"],
        ["images/case1.png", "Heart is enlarged. No effusion.", "", "A", "0", "1", "first"],
        ["images/case2.png", "", "reports/case2.txt", "B", "1", "", "second"],
    ])


OPENI_XML = """<?xml version="1.0" encoding="utf-8"?>
<eCitation>
  <uId id="{rid}"/>
  <MedlineCitation><Article><Abstract>
    <AbstractText Label="COMPARISON">None.</AbstractText>
    <AbstractText Label="INDICATION">Shortness of breath.</AbstractText>
    <AbstractText Label="FINDINGS">{findings}</AbstractText>
    <AbstractText Label="IMPRESSION">{impression}</AbstractText>
  </Abstract></Article></MedlineCitation>
  <MeSH><major>{mesh}</major></MeSH>
{images}
</eCitation>
"""


def openi() -> None:
    root = HERE / "openi"
    reports = [
        ("CXR1", "The heart is normal in size. The lungs are clear.", "No acute disease.", "normal",
         ["CXR1_1_IM-0001-3001", "CXR1_1_IM-0001-4001"]),
        ("CXR2", "Large right pleural effusion. No pneumothorax.", "Right effusion.", "Pleural Effusion/right/large",
         ["CXR2_IM-0652-1001"]),
        ("CXR3", "Heart size is enlarged.", "Cardiomegaly.", "Cardiomegaly", ["CXR3_IM-1384-1001"]),
    ]
    for rid, findings, impression, mesh, images in reports:
        tags = "\n".join(f'  <parentImage id="{i}"><url>/{i}.jpg</url></parentImage>' for i in images)
        path = root / "reports" / f"{rid[3:]}.xml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(OPENI_XML.format(rid=rid, findings=findings, impression=impression, mesh=mesh,
                                         images=tags), encoding="utf-8")
    # CXR3's image is deliberately absent: the dataset must skip and count it.
    for image_id in ("CXR1_1_IM-0001-3001", "CXR1_1_IM-0001-4001", "CXR2_IM-0652-1001"):
        _image(root / "images" / f"{image_id}.png", (64, 64))


if __name__ == "__main__":
    nih(), mimic(), chexpert(), generic_csv(), openi()
