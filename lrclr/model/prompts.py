"""The prompt pairs used for zero-shot scoring (the finding names and phrases: ``lrclr.findings``).

Zero-shot follows CheXzero: each finding gets a positive and a negative prompt ("pleural effusion"
/ "no pleural effusion"), and the probability is a softmax over the two similarities. Several
templates per side are averaged, because a single phrasing is a noisy probe of a text encoder.
Any finding name works: known names map to the phrase radiologists write, others are used as given.
"""

from __future__ import annotations

from dataclasses import dataclass

from lrclr.findings import finding_phrase

POSITIVE_TEMPLATES = ("{}.", "there is {}.", "findings consistent with {}.")
NEGATIVE_TEMPLATES = ("no {}.", "there is no {}.", "no evidence of {}.")


@dataclass(frozen=True)
class FindingPrompts:
    finding: str
    positive: tuple[str, ...]
    negative: tuple[str, ...]


def prompts_for(finding: str) -> FindingPrompts:
    phrase = finding_phrase(finding)
    return FindingPrompts(
        finding=finding,
        positive=tuple(t.format(phrase) for t in POSITIVE_TEMPLATES),
        negative=tuple(t.format(phrase) for t in NEGATIVE_TEMPLATES),
    )
