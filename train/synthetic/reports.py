"""Reports for phantoms: real OpenI reports whose MeSH terms a phantom renders, else real OpenI
sentences, else short built-in templates (a fresh clone has no OpenI data).

A report is usable for a phantom only if EVERY MeSH major term it carries is one the generator draws
(``normal`` = nothing drawn), and, when the project's labeler is available, re-labelling its text
gives exactly those findings as positives with no hedged finding. So the words always describe what
the pixels show. Sides the MeSH terms leave out are taken from the text's own laterality.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from train.synthetic.findings import FINDING_NAMES, FindingSpec

# MeSH major heading -> phantom finding. "Opacity" is kept only where the text itself names one of
# the drawn findings (the labeler check below), since the heading alone is unspecific.
MESH_FINDINGS = {
    "Pleural Effusion": "Effusion", "Cardiomegaly": "Cardiomegaly", "Consolidation": "Consolidation",
    "Airspace Disease": "Consolidation", "Opacity": "Consolidation", "Nodule": "Nodule",
    "Mass": "Mass", "Pneumothorax": "Pneumothorax", "Pulmonary Atelectasis": "Atelectasis",
    "Pulmonary Edema": "Edema",
}
_MESH_SIDES = {"left": "left", "right": "right", "bilateral": "bilateral"}
_MESH_ZONES = {"upper lobe": "upper", "apex": "upper", "middle lobe": "middle", "lingula": "middle",
               "hilum": "middle", "base": "lower", "lower lobe": "lower", "retrocardiac": "lower"}
_MESH_SEVERITY = {"small": "mild", "mild": "mild", "minimal": "mild", "borderline": "mild",
                  "moderate": "moderate", "large": "severe", "severe": "severe", "massive": "severe"}
_LATERAL = frozenset(FINDING_NAMES) - {"Cardiomegaly", "Edema"}
# CheXpert-style positives that a drawn finding implies (the labeler reports both).
_IMPLIED_OK = frozenset({"Lung Opacity", "Lung Lesion", "Enlarged Cardiomediastinum", "No Finding"})
NORMAL_SHARE = 0.2  # of randomly drawn phantoms that are normal


@dataclass(frozen=True)
class PhantomReport:
    text: str
    provenance: str
    findings: tuple[FindingSpec, ...] = ()


def parse_mesh(terms: Sequence[str]) -> list[FindingSpec] | None:
    """Findings a phantom must draw for these MeSH major terms; None if one is not drawable."""
    by_name: dict[str, FindingSpec] = {}
    for term in terms:
        head, *qualifiers = [part.strip() for part in term.split("/")]
        if head.lower() == "normal":
            continue
        name = MESH_FINDINGS.get(head)
        if name is None:
            return None
        side = next((_MESH_SIDES[q] for q in qualifiers if q in _MESH_SIDES), None)
        zone = next((_MESH_ZONES[q] for q in qualifiers if q in _MESH_ZONES), None)
        severity = next((_MESH_SEVERITY[q] for q in qualifiers if q in _MESH_SEVERITY), "moderate")
        if name == "Effusion":
            zone = None
        previous = by_name.get(name)
        if previous is not None and previous.side and side and previous.side != side:
            side = "bilateral"  # e.g. atelectasis listed once per side
        by_name[name] = FindingSpec(name, side or (previous.side if previous else None),
                                    zone or (previous.zone if previous else None), severity)
    return [by_name[name] for name in FINDING_NAMES if name in by_name]


def _checked_against_text(specs: list[FindingSpec], text: str) -> list[FindingSpec] | None:
    """Specs with sides filled from the text; None if the text's positives differ from the specs."""
    try:
        from lrclr.reports.labeler import NIH_FINDINGS, POSITIVE, UNCERTAIN, label_report
    except ImportError:  # labeler not available: trust the MeSH terms alone
        return specs
    labels = label_report(text)
    positives = {name for name, status in labels.labels.items() if status == POSITIVE}
    hedged = {name for name, status in labels.labels.items() if status == UNCERTAIN}
    names = {spec.name for spec in specs}
    if positives & set(NIH_FINDINGS) != names or hedged & set(NIH_FINDINGS):
        return None
    if positives - set(NIH_FINDINGS) - _IMPLIED_OK:
        return None  # e.g. a device or fracture the phantom does not draw
    out = []
    for spec in specs:
        said = {m.laterality for m in labels.mentions_of(spec.name) if m.status == POSITIVE} - {""}
        if spec.name in _LATERAL and said:
            if len(said) > 1 or (spec.side and spec.side not in said):
                return None  # the text and the MeSH terms disagree on the side
            spec = FindingSpec(spec.name, said.pop(), spec.zone, spec.severity)
        out.append(spec)
    return out


class ReportBank:
    """Real reports indexed by the set of findings they describe; build once, share freely."""

    def __init__(self, reports: Sequence = (), sentence_bank=None) -> None:
        self._normal: list[PhantomReport] = []
        self._abnormal: list[PhantomReport] = []
        self._by_names: dict[frozenset[str], list[PhantomReport]] = {}
        self.sentence_bank = sentence_bank
        for report in reports:
            text = report.text().strip()
            specs = parse_mesh(report.mesh_major)
            if not text or specs is None or not report.mesh_major:
                continue
            specs = _checked_against_text(specs, text)
            if specs is None:
                continue
            entry = PhantomReport(text, f"openi:{report.report_id}", tuple(specs))
            (self._abnormal if specs else self._normal).append(entry)
            self._by_names.setdefault(frozenset(s.name for s in specs), []).append(entry)

    @classmethod
    def from_openi(cls, path, with_sentences: bool = True) -> "ReportBank":
        from lrclr.reports.text import load_openi_reports
        reports = load_openi_reports(path)
        sentences = None
        if with_sentences:
            from train.synthetic.composed_reports import SentenceBank
            sentences = SentenceBank.from_reports(reports)
        return cls(reports, sentences)

    def __len__(self) -> int:
        return len(self._normal) + len(self._abnormal)

    def counts(self) -> dict[str, int]:
        return {"normal": len(self._normal), "abnormal": len(self._abnormal)}

    def sample(self, rng: np.random.Generator) -> PhantomReport | None:
        """A random real report to draw (None when the bank holds none)."""
        if not self._abnormal and not self._normal:
            return None
        if (rng.random() < NORMAL_SHARE and self._normal) or not self._abnormal:
            return self._normal[int(rng.integers(len(self._normal)))]
        # Uniform over finding sets first: otherwise most phantoms would be cardiomegaly alone.
        keys = sorted((k for k in self._by_names if k), key=lambda k: sorted(k))
        pool = self._by_names[keys[int(rng.integers(len(keys)))]]
        return pool[int(rng.integers(len(pool)))]

    def report_for(self, specs: Sequence[FindingSpec], rng: np.random.Generator) -> PhantomReport:
        """A real report describing exactly ``specs`` if one exists; else sentences; else templates."""
        candidates = [r for r in self._by_names.get(frozenset(s.name for s in specs), [])
                      if _describes(r.findings, specs)]
        if candidates:
            chosen = candidates[int(rng.integers(len(candidates)))]
            return PhantomReport(chosen.text, chosen.provenance, tuple(specs))
        if self.sentence_bank is not None:
            composed = self.sentence_bank.compose_for_phantom(specs, rng)
            if composed is not None:
                return PhantomReport(composed[0], composed[1], tuple(specs))
        return template_report(specs)


def _describes(reported: Sequence[FindingSpec], drawn: Sequence[FindingSpec]) -> bool:
    """Whatever the report states (side, zone, severity) matches the drawing; unstated is fine."""
    by_name = {spec.name: spec for spec in drawn}
    for spec in reported:
        other = by_name[spec.name]
        if (spec.side and spec.side != other.side) or (spec.zone and spec.zone != other.zone):
            return False
        if spec.severity != "moderate" and spec.severity != other.severity:
            return False
        if spec.name in _LATERAL and not spec.side:
            return False  # the text may name a side we cannot check
    return True


_SIZE_WORD = {"mild": "Small", "moderate": "Moderate", "severe": "Large"}
_DEGREE_WORD = {"mild": "Mild", "moderate": "Moderate", "severe": "Marked"}
_ZONE_WORD = {"upper": "upper", "middle": "mid", "lower": "lower"}
_NORMAL_SENTENCE = {
    "Cardiomegaly": "Heart size is normal.", "Effusion": "No pleural effusion.",
    "Pneumothorax": "No pneumothorax.", "Consolidation": "No focal consolidation.",
    "Edema": "No pulmonary edema.", "Nodule": "No pulmonary nodule.", "Mass": "No mass.",
    "Atelectasis": "No atelectasis.",
}


def _template_sentence(spec: FindingSpec) -> str:
    side = {"left": "left", "right": "right", "bilateral": "bilateral"}.get(spec.side or "", "")
    zone = f"{_ZONE_WORD[spec.zone]} lung " if spec.zone else ""
    where = f"in the {side} {zone}zone".replace("  ", " ") if side else ""
    name = spec.name
    if name == "Cardiomegaly":
        return f"{_DEGREE_WORD[spec.severity]} cardiomegaly."
    if name == "Edema":
        return f"{_DEGREE_WORD[spec.severity]} pulmonary edema."
    if name == "Effusion":
        return f"{_SIZE_WORD[spec.severity]} {side} pleural effusion.".replace("  ", " ")
    if name == "Pneumothorax":
        return f"{_SIZE_WORD[spec.severity]} {side} pneumothorax.".replace("  ", " ")
    noun = {"Consolidation": "consolidation", "Nodule": "pulmonary nodule", "Mass": "mass",
            "Atelectasis": "atelectasis"}[name]
    words = _SIZE_WORD if name in ("Nodule", "Mass") else _DEGREE_WORD
    return f"{words[spec.severity]} {noun} {where}.".replace(" .", ".")


def template_report(specs: Sequence[FindingSpec]) -> PhantomReport:
    """Short built-in sentences: one per drawn finding, then denials of the others."""
    drawn = {spec.name for spec in specs}
    sentences = [_template_sentence(spec) for spec in specs]
    sentences += [_NORMAL_SENTENCE[name] for name in FINDING_NAMES if name not in drawn]
    return PhantomReport(" ".join(sentences), "template", tuple(specs))


TEMPLATE_BANK = ReportBank()
