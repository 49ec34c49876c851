"""Reports for images that have labels but no report (NIH ChestX-ray14), composed from real OpenI
sentences chosen by the project's labeler.

Each real sentence is labelled once. A sentence is a *finding sentence* for F when the labeler finds
F asserted and no other NIH finding, nothing hedged, nothing denied, and only the CheXpert parents F
implies (a nodule is also a "Lung Lesion"). It is a *normal sentence* when everything it mentions is
denied. A report for an image with findings L = its finding sentences, one per finding in L, then
normal sentences that deny only what is NOT in L (never "No pleural effusion." for an effusion), and
the result is re-labelled to prove it states exactly L. Choices come from a random stream keyed by
(seed, image id), so the output does not depend on the order images are processed in.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from lrclr.reports.labeler import NIH_FINDINGS, NO_FINDING, POSITIVE, UNCERTAIN, label_report, label_sentence

# CheXpert observations a stated NIH finding may also raise (the labeler reports parents too).
IMPLIED: dict[str, frozenset[str]] = {
    "Atelectasis": frozenset({"Lung Opacity"}), "Consolidation": frozenset({"Lung Opacity"}),
    "Infiltration": frozenset({"Lung Opacity"}), "Pneumonia": frozenset({"Lung Opacity"}),
    "Edema": frozenset({"Lung Opacity"}), "Fibrosis": frozenset({"Lung Opacity"}),
    "Nodule": frozenset({"Lung Lesion"}), "Mass": frozenset({"Lung Lesion"}),
    "Cardiomegaly": frozenset({"Enlarged Cardiomediastinum"}),
    "Pleural_Thickening": frozenset({"Pleural Other"}),
}
# What normal sentences should cover when not labelled: the statements most reports make.
NORMAL_TOPICS = ("Cardiomegaly", "Effusion", "Pneumothorax", "Consolidation", "Edema")
# "Lungs are clear" denies every parenchymal/pleural finding without naming one; "no acute disease"
# denies everything. The labeler rightly reads neither as a finding, so they are recognised here.
_LUNGS_CLEAR = re.compile(r"\blungs?\b.*\b(clear|normal|unremarkable)\b|\bclear lungs?\b")
_GLOBAL_NORMAL = re.compile(r"\b(no acute|normal chest|no active|negative (chest|exam)|"
                            r"no (radiographic|evidence of) (acute )?(cardiopulmonary|disease))")
# A composed report has no prior study: sentences comparing with one would be false.
_COMPARISON = re.compile(r"\b(prior|previous|previously|compared|comparison|again|interval|unchanged|"
                         r"stable|change|changed|new|since|redemonstrat\w*|persist\w*|resol\w*|improv\w*|"
                         r"worse\w*|increas\w*|decreas\w*|recommend\w*|follow-up|ct|similar|exam|residual)\b")
# Hedges the labeler may read as assertions; a composed report should state findings plainly.
_HEDGE = re.compile(r"\b(may|might|could|possibl\w*|probabl\w*|differential|versus|vs|question\w*|"
                    r"suggest\w*|suspicious|concern\w*|cannot|can't|likely|consider\w*|includes?)\b")
_LIST_MARKER = re.compile(r"^\s*\(?\d{1,2}[.)]\s+")
MIN_WORDS, MAX_WORDS = 2, 25
_NON_LUNG = frozenset({"Cardiomegaly", "Hernia"})  # findings "lungs are clear" does not deny


@dataclass(frozen=True)
class BankSentence:
    report_id: str
    sentence_index: int
    text: str
    positives: frozenset[str]  # every positive label (NIH and CheXpert)
    denied: frozenset[str]
    laterality: str  # of its finding, "" when unstated
    scope: str  # "specific", "lungs" (denies all lung findings) or "global" (denies everything)


@dataclass(frozen=True)
class ComposedSentence:
    report_id: str
    sentence_index: int
    text: str
    role: str  # the NIH finding it states, or "normal"


@dataclass(frozen=True)
class ComposedReport:
    image_id: str
    text: str
    sentences: tuple[ComposedSentence, ...]
    labels: tuple[str, ...]  # the image's NIH findings ("No Finding" -> empty)
    seed: int
    missing: tuple[str, ...] = ()  # labelled findings no clean sentence could state

    @property
    def complete(self) -> bool:
        return not self.missing

    @property
    def provenance(self) -> str:
        return ",".join(f"{s.report_id}#{s.sentence_index}" for s in self.sentences)


def _classify(report_id: str, index: int, text: str) -> BankSentence | None:
    text = _LIST_MARKER.sub("", text)  # "2. No acute disease." -> the sentence itself
    words = text.split()
    lowered = text.lower()
    if not (MIN_WORDS <= len(words) <= MAX_WORDS) or "xxxx" in lowered or re.search(r"\d\.$", text):
        return None
    if _COMPARISON.search(lowered) or _HEDGE.search(lowered):
        return None
    labelled = label_sentence(text)
    statuses = labelled.labels
    if any(status == UNCERTAIN for status in statuses.values()):
        return None
    positives = frozenset(name for name, status in statuses.items() if status == POSITIVE)
    denied = frozenset(name for name, status in statuses.items() if status not in (POSITIVE, UNCERTAIN))
    sides = {m.laterality for m in labelled.mentions if m.status == POSITIVE} - {""}
    scope = "global" if _GLOBAL_NORMAL.search(lowered) else "lungs" if _LUNGS_CLEAR.search(lowered) \
        else "specific"
    return BankSentence(report_id, index, text if text.rstrip()[-1:] in ".!?" else text.rstrip() + ".",
                        positives, denied, sides.pop() if len(sides) == 1 else "", scope)


def finding_of(sentence: BankSentence) -> str | None:
    """The single NIH finding a sentence states cleanly, else None."""
    nih = sentence.positives & set(NIH_FINDINGS)
    if len(nih) != 1 or sentence.denied or sentence.scope != "specific":
        return None
    finding = next(iter(nih))
    return finding if sentence.positives - nih <= IMPLIED.get(finding, frozenset()) else None


def allowed_normal(sentence: BankSentence, findings: frozenset[str]) -> bool:
    """A normal sentence that denies nothing the image has (nor anything those findings imply)."""
    if sentence.positives - {NO_FINDING}:
        return False
    if sentence.scope == "global":
        return not findings
    if sentence.scope == "lungs" and findings - _NON_LUNG:
        return False
    implied = set(findings).union(*(IMPLIED.get(f, frozenset()) for f in findings))
    return not (sentence.denied & implied)


class SentenceBank:
    """Clean finding sentences per NIH finding and normal sentences, from real reports."""

    def __init__(self, sentences: Iterable[BankSentence]) -> None:
        self.by_finding: dict[str, list[BankSentence]] = {name: [] for name in NIH_FINDINGS}
        self.normal: list[BankSentence] = []
        for sentence in sentences:
            finding = finding_of(sentence)
            if finding is not None:
                self.by_finding[finding].append(sentence)
            elif not (sentence.positives - {NO_FINDING}) and (sentence.denied or sentence.scope != "specific"):
                self.normal.append(sentence)

    @classmethod
    def from_reports(cls, reports: Sequence) -> "SentenceBank":
        """Each distinct sentence once, credited to its first report (reports in loader order)."""
        seen: set[str] = set()
        kept = []
        for report in reports:
            for index, sentence in enumerate(report.sentences()):
                if sentence.text in seen:
                    continue
                seen.add(sentence.text)
                classified = _classify(report.report_id, index, sentence.text)
                if classified is not None:
                    kept.append(classified)
        return cls(kept)

    def pool_sizes(self) -> dict[str, int]:
        return {**{name: len(pool) for name, pool in self.by_finding.items()}, "normal": len(self.normal)}

    def compose(self, image_id: str, labels: Sequence[str], seed: int,
                tries: int = 5) -> ComposedReport:
        """A report stating exactly ``labels`` (NIH names; "No Finding" or empty = normal)."""
        findings = tuple(sorted(set(labels) - {NO_FINDING}, key=NIH_FINDINGS.index))
        rng = np.random.default_rng([seed, _stable_hash(image_id)])
        missing = tuple(f for f in findings if not self.by_finding[f])
        for _ in range(tries):
            chosen = self._pick(findings, rng)
            text = " ".join(s.text for s, _ in chosen)
            if not missing and not restates(text, findings):
                continue  # the sentences interact in a way the labeler reads differently: redraw
            sentences = tuple(ComposedSentence(s.report_id, s.sentence_index, s.text, role)
                              for s, role in chosen)
            return ComposedReport(image_id, text, sentences, findings, seed, missing)
        return ComposedReport(image_id, text, sentences, findings, seed, findings)

    def _pick(self, findings: tuple[str, ...], rng: np.random.Generator,
              sides: dict[str, str] | None = None) -> list[tuple[BankSentence, str]]:
        chosen: list[tuple[BankSentence, str]] = []
        for finding in findings:
            pool = self.by_finding.get(finding, [])
            if sides and sides.get(finding):
                pool = [s for s in pool if s.laterality in ("", sides[finding])]
            if pool:
                chosen.append((pool[int(rng.integers(len(pool)))], finding))
        chosen += [(s, "normal") for s in self._normals(frozenset(findings), rng)]
        return chosen

    def _normals(self, findings: frozenset[str], rng: np.random.Generator) -> list[BankSentence]:
        """Normal sentences covering the usual topics the image does not have, without repeats."""
        allowed = [s for s in self.normal if allowed_normal(s, findings)]
        picked: list[BankSentence] = []
        covered: set[str] = set()
        if not findings:
            overall = [s for s in allowed if s.scope == "global"]
            if overall:
                picked.append(overall[int(rng.integers(len(overall)))])
        for topic in NORMAL_TOPICS:
            if topic in findings or topic in covered:
                continue
            pool = [s for s in allowed if topic in s.denied and s not in picked]
            # Prefer sentences that deny no usual topic twice (parents such as "Lung Opacity" aside).
            fresh = [s for s in pool if not (s.denied & covered & set(NORMAL_TOPICS))]
            pool = fresh or pool
            if pool:
                sentence = pool[int(rng.integers(len(pool)))]
                picked.append(sentence)
                covered |= sentence.denied
        return picked

    def compose_for_phantom(self, specs, rng: np.random.Generator) -> tuple[str, str] | None:
        """(text, provenance) stating the phantom's findings with matching sides, or None."""
        findings = tuple(sorted({s.name for s in specs}, key=NIH_FINDINGS.index))
        sides = {s.name: s.side for s in specs if s.side in ("left", "right", "bilateral")}
        chosen = self._pick(findings, rng, sides)
        if len([1 for _, role in chosen if role != "normal"]) != len(findings):
            return None
        text = " ".join(s.text for s, _ in chosen)
        if not restates(text, findings):
            return None
        return text, "openi-sentences:" + ",".join(f"{s.report_id}#{s.sentence_index}" for s, _ in chosen)


def restates(text: str, findings: Sequence[str]) -> bool:
    """Re-labelling ``text`` gives exactly ``findings`` as NIH positives, nothing hedged, and no
    other positive beyond what those findings imply ("No Finding" when there are none)."""
    labels = label_report(text).labels
    if any(status == UNCERTAIN for status in labels.values()):
        return False
    positives = {name for name, status in labels.items() if status == POSITIVE}
    expected = set(findings)
    allowed = expected.union(*(IMPLIED.get(f, frozenset()) for f in expected))
    if not expected:
        allowed = {NO_FINDING}
    return positives & set(NIH_FINDINGS) == expected and positives <= allowed


def _stable_hash(text: str) -> int:
    """A process-independent integer for ``text`` (Python's hash() is salted per process)."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little")


def read_nih_labels(labels_csv) -> list[tuple[str, tuple[str, ...]]]:
    """(image, findings) rows of an NIH labels.csv ("A|B" or "No Finding")."""
    import csv
    with open(labels_csv, newline="", encoding="utf-8") as handle:
        rows = [(row["image"], tuple(f for f in row["findings"].split("|") if f and f != NO_FINDING))
                for row in csv.DictReader(handle)]
    return rows
