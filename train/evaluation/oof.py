"""Out-of-fold predictions: one score per image and finding, from a model that never saw its patient.

Cross-validation (``python -m train cross-validate``), the supervised probe
(``benchmarks.feature_probe``) and calibration (``python -m train calibrate``) all read and write
this one format, so any two runs can be compared pairwise on the same images:

- ``oof.csv``: ``image_id, patient_id, fold``, then ``label:<finding>`` (1, 0, or -1 unknown) and
  ``logit:<finding>`` (the raw score; AUC only needs its order, calibration maps it);
- ``oof.json``: the same rows plus what made them (command, config, folds, code version).

``summarize`` turns them into per-finding and macro AUCs with bootstrap CIs, ``paired`` into
paired CIs of AUC differences against another run on the same resamples (train.evaluation.metrics).
"""

from __future__ import annotations

import csv
import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from train.evaluation.report import json_safe
from train.evaluation.metrics import AUCDifference, FindingAUC, MacroAUC, finding_auc, macro_auc, paired_auc_differences

CSV_NAME, JSON_NAME = "oof.csv", "oof.json"


@dataclass
class OutOfFold:
    findings: tuple[str, ...]
    image_ids: list[str]
    patient_ids: list[str]
    folds: np.ndarray  # (N,) int
    labels: np.ndarray  # (N, F) int: 1, 0, -1 unknown
    logits: np.ndarray  # (N, F) float
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n, f = len(self.image_ids), len(self.findings)
        if self.labels.shape != (n, f) or self.logits.shape != (n, f) or len(self.folds) != n:
            raise ValueError(f"out-of-fold arrays do not match {n} images x {f} findings")

    def aligned_to(self, other: "OutOfFold") -> "OutOfFold":
        """These predictions reordered to ``other``'s images and findings (both must hold them all)."""
        where = {image: i for i, image in enumerate(self.image_ids)}
        missing = [image for image in other.image_ids if image not in where]
        lacking = [f for f in other.findings if f not in self.findings]
        if missing or lacking:
            raise ValueError(f"cannot pair: {len(missing)} image(s) (e.g. {missing[:2]}) and findings "
                             f"{lacking} are missing from the other run")
        rows = [where[image] for image in other.image_ids]
        cols = [self.findings.index(f) for f in other.findings]
        return OutOfFold(other.findings, list(other.image_ids), [self.patient_ids[r] for r in rows],
                         self.folds[rows], self.labels[np.ix_(rows, cols)], self.logits[np.ix_(rows, cols)],
                         self.meta)

    # ---- files ----------------------------------------------------------------------------------

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / CSV_NAME, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["image_id", "patient_id", "fold", *(f"label:{f}" for f in self.findings),
                             *(f"logit:{f}" for f in self.findings)])
            for i, image in enumerate(self.image_ids):
                writer.writerow([image, self.patient_ids[i], int(self.folds[i]), *map(int, self.labels[i]),
                                 *(f"{v:.6g}" for v in self.logits[i])])
        rows = [{"image_id": image, "patient_id": self.patient_ids[i], "fold": int(self.folds[i]),
                 "labels": dict(zip(self.findings, map(int, self.labels[i]))),
                 "logits": dict(zip(self.findings, map(float, self.logits[i])))}
                for i, image in enumerate(self.image_ids)]
        record = {"findings": list(self.findings), "meta": self.meta, "predictions": rows}
        (folder / JSON_NAME).write_text(json.dumps(json_safe(record), indent=1) + "\n", encoding="utf-8")
        return folder / CSV_NAME

    @classmethod
    def load(cls, path: str | Path) -> "OutOfFold":
        """From a run folder (its oof.json) or an oof.json / oof.csv file."""
        path = Path(path)
        if path.is_dir():
            path = path / JSON_NAME
        if path.suffix == ".csv":
            return cls._from_csv(path)
        data = json.loads(path.read_text(encoding="utf-8"))
        findings = tuple(data["findings"])
        rows = data["predictions"]
        return cls(findings, [r["image_id"] for r in rows], [r["patient_id"] for r in rows],
                   np.array([r["fold"] for r in rows], dtype=int),
                   np.array([[r["labels"][f] for f in findings] for r in rows], dtype=int).reshape(len(rows), -1),
                   np.array([[r["logits"][f] for f in findings] for r in rows], dtype=np.float64).reshape(len(rows), -1),
                   data.get("meta", {}))

    @classmethod
    def _from_csv(cls, path: Path) -> "OutOfFold":
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        findings = tuple(c[len("label:"):] for c in (rows[0] if rows else {}) if c.startswith("label:"))
        return cls(findings, [r["image_id"] for r in rows], [r["patient_id"] for r in rows],
                   np.array([int(r["fold"]) for r in rows], dtype=int),
                   np.array([[int(r[f"label:{f}"]) for f in findings] for r in rows], dtype=int).reshape(len(rows), -1),
                   np.array([[float(r[f"logit:{f}"]) for f in findings] for r in rows]).reshape(len(rows), -1))


@dataclass(frozen=True)
class OutOfFoldSummary:
    findings: list[FindingAUC]
    macro: MacroAUC
    fold_macros: dict[int, float]  # macro AUC inside each test fold (how much folds disagree)
    n_images: int

    def to_dict(self) -> dict[str, Any]:
        return json_safe({"n_images": self.n_images, "macro": dataclasses.asdict(self.macro),
                          "findings": [dataclasses.asdict(f) for f in self.findings],
                          "fold_macros": {str(k): v for k, v in self.fold_macros.items()}})


def summarize(oof: OutOfFold, findings: Sequence[str] | None = None, n_bootstrap: int = 1000,
              seed: int = 0) -> OutOfFoldSummary:
    """Per-finding AUC with bootstrap CIs and the macro over ``findings`` (default: all of them)."""
    chosen = list(findings or oof.findings)
    cols = [oof.findings.index(f) for f in chosen]
    labels, logits = oof.labels[:, cols], oof.logits[:, cols]
    per_finding = [finding_auc(f, labels[:, j], logits[:, j], n_bootstrap, seed) for j, f in enumerate(chosen)]
    macro = macro_auc(chosen, labels, logits, n_bootstrap, seed)
    fold_macros = {}
    for fold in np.unique(oof.folds):
        inside = oof.folds == fold
        fold_macros[int(fold)] = macro_auc(chosen, labels[inside], logits[inside], 0, seed).auc
    return OutOfFoldSummary(per_finding, macro, fold_macros, len(oof.image_ids))


def paired(a: OutOfFold, b: OutOfFold, findings: Sequence[str] | None = None, n_bootstrap: int = 1000,
           seed: int = 0) -> list[AUCDifference]:
    """AUC(a) - AUC(b) per finding and macro, paired on the same image resamples."""
    chosen = list(findings or a.findings)
    b = b.aligned_to(a)
    cols_a = [a.findings.index(f) for f in chosen]
    cols_b = [b.findings.index(f) for f in chosen]
    if not np.array_equal(a.labels[:, cols_a], b.labels[:, cols_b]):
        raise ValueError("the two runs disagree on the labels of the same images: not the same data")
    return paired_auc_differences(chosen, a.labels[:, cols_a], a.logits[:, cols_a], b.logits[:, cols_b],
                                  n_bootstrap, seed)
