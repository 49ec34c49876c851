"""The finding vocabulary: the one list of names the model, the labeler, the pages and training share,
and how a report phrases each finding.

Any finding name works elsewhere too: known names map to the phrase radiologists write, others are
used as given (lower-cased, underscores as spaces).
"""

from __future__ import annotations

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


def finding_phrase(finding: str) -> str:
    name = finding.strip()
    if not name:
        raise ValueError("a finding name must not be empty")
    return FINDING_PHRASES.get(name, name.replace("_", " ").lower())


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
