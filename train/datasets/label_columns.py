"""Label columns in CSVs (CheXpert, MIMIC-CXR-JPG, user CSVs) -> the project's finding names.

Names follow ``lrclr.reports.labeler.ALL_FINDINGS`` (NIH spelling where one exists), so a model trained on
MIMIC and evaluated on NIH compares the same keys. Values follow CheXpert: 1 positive, 0 negative,
-1 uncertain, blank = not mentioned (the key is left out, never guessed as 0).
"""

from __future__ import annotations

from typing import Mapping

from lrclr.reports.labeler import ALL_FINDINGS

# Column spellings that differ from ours.
ALIASES: dict[str, str] = {
    "Pleural Effusion": "Effusion",
    "Pleural_Effusion": "Effusion",
    "Pleural Thickening": "Pleural_Thickening",
    "Infiltrate": "Infiltration",  # NIH BBox_List_2017 spelling
    "Enlarged_Cardiomediastinum": "Enlarged Cardiomediastinum",
    "Lung_Opacity": "Lung Opacity",
    "Lung_Lesion": "Lung Lesion",
    "Airspace Opacity": "Lung Opacity",
    "Pleural_Other": "Pleural Other",
    "Support_Devices": "Support Devices",
    "No_Finding": "No Finding",
}
UNCERTAIN_POLICIES = ("keep", "zeros", "ones", "ignore")


def finding_name(column: str) -> str | None:
    """Our name for a column, or None when the column is not a finding."""
    column = column.strip()
    name = ALIASES.get(column, column)
    return name if name in ALL_FINDINGS else None


def finding_columns(columns) -> dict[str, str]:
    """column -> our finding name, for the columns that are findings; two columns meaning the same
    finding ("Effusion" and "Pleural Effusion") are an error rather than one silently winning."""
    out: dict[str, str] = {}
    for column in columns:
        name = finding_name(column)
        if name is None:
            continue
        clash = next((other for other, taken in out.items() if taken == name), None)
        if clash is not None:
            raise ValueError(f"columns {clash!r} and {column!r} both give finding {name!r}; keep one")
        out[column] = name
    return out


def parse_value(text: str, column: str = "") -> int | None:
    """"1"/"1.0" -> 1, "0" -> 0, "-1" -> -1, "" -> None; anything else is an error."""
    text = str(text).strip()
    if text == "" or text.lower() == "nan":
        return None
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"label column {column!r} holds {text!r}; expected 1, 0, -1 or blank") from None
    if value not in (1.0, 0.0, -1.0):
        raise ValueError(f"label column {column!r} holds {text!r}; expected 1, 0, -1 or blank")
    return int(value)


def row_labels(row: Mapping[str, str], columns: Mapping[str, str], uncertain: str = "keep") -> dict[str, int]:
    """Labels of one CSV row. ``uncertain``: "keep" (-1), "zeros" (U-Zeros), "ones" (U-Ones) or
    "ignore" (drop the key), the policies of the CheXpert paper."""
    labels: dict[str, int] = {}
    for column, name in columns.items():
        value = parse_value(row[column], column)
        if value == -1:
            if uncertain == "ignore":
                continue
            value = {"keep": -1, "zeros": 0, "ones": 1}[uncertain]
        if value is not None:
            labels[name] = value
    return labels


def check_uncertain_policy(uncertain: str) -> str:
    if uncertain not in UNCERTAIN_POLICIES:
        raise ValueError(f"uncertain must be one of {UNCERTAIN_POLICIES}, not {uncertain!r}")
    return uncertain
