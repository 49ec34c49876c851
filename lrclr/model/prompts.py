"""Finding vocabulary and the prompt pairs used for zero-shot scoring.

Zero-shot follows CheXzero: each finding gets a positive and a negative prompt ("pleural effusion"
/ "no pleural effusion"), and the probability is a softmax over the two similarities. Several
templates per side are averaged, because a single phrasing is a noisy probe of a text encoder.
Any finding name works: known names map to the phrase radiologists write, others are used as given.
"""

from __future__ import annotations

from dataclasses import dataclass

# The 14 NIH ChestX-ray14 labels, spelled as NIH spells them (the default findings of the app).
NIH_FINDINGS = (
    "Atelectasis",
    "Cardiomegaly",
    "Effusion",
    "Infiltration",
    "Mass",
    "Nodule",
    "Pneumonia",
    "Pneumothorax",
    "Consolidation",
    "Edema",
    "Emphysema",
    "Fibrosis",
    "Pleural_Thickening",
    "Hernia",
)

# How reports phrase each finding; names not listed here are used lower-cased, underscores as spaces.
FINDING_PHRASES = {
    "Effusion": "pleural effusion",
    "Pleural Effusion": "pleural effusion",
    "Pleural_Thickening": "pleural thickening",
    "Infiltration": "pulmonary infiltrate",
    "Mass": "lung mass",
    "Nodule": "pulmonary nodule",
    "Hernia": "hiatal hernia",
    "Edema": "pulmonary edema",
    "Fibrosis": "pulmonary fibrosis",
    "Enlarged Cardiomediastinum": "enlarged cardiomediastinal silhouette",
    "Lung Opacity": "airspace opacity",
    "Lung Lesion": "lung lesion",
    "Support Devices": "support devices",
}

POSITIVE_TEMPLATES = ("{}.", "there is {}.", "findings consistent with {}.")
NEGATIVE_TEMPLATES = ("no {}.", "there is no {}.", "no evidence of {}.")


@dataclass(frozen=True)
class FindingPrompts:
    finding: str
    positive: tuple[str, ...]
    negative: tuple[str, ...]


def finding_phrase(finding: str) -> str:
    name = finding.strip()
    if not name:
        raise ValueError("a finding name must not be empty")
    return FINDING_PHRASES.get(name, name.replace("_", " ").lower())


def prompts_for(finding: str) -> FindingPrompts:
    phrase = finding_phrase(finding)
    return FindingPrompts(
        finding=finding,
        positive=tuple(t.format(phrase) for t in POSITIVE_TEMPLATES),
        negative=tuple(t.format(phrase) for t in NEGATIVE_TEMPLATES),
    )


def parse_finding_list(text: str) -> list[str]:
    """"Cardiomegaly, Effusion" -> ["Cardiomegaly", "Effusion"]; duplicates removed, order kept."""
    seen: dict[str, None] = {}
    for part in text.split(","):
        name = part.strip()
        if name:
            seen.setdefault(name, None)
    if not seen:
        raise ValueError("no finding names given")
    return list(seen)
