"""Left and right in report text: the words of the mirrored image.

Training uses it to keep a flipped image and its report consistent (train/training/augment.py); the Review
page's counterfactual probe uses it to ask whether a map moves when a phrase's side is swapped.
"""

from __future__ import annotations

import re

_SIDE_WORD = re.compile(r"\b(left|right)(ward|wards|most|-sided|sided)?\b", re.IGNORECASE)
_SIDE_PREFIX = re.compile(r"\b(levo|dextro)(?=[a-z])", re.IGNORECASE)  # levoscoliosis <-> dextroscoliosis
# Single-letter sides only where the next word makes the meaning unambiguous ("L lung", "R base",
# "L>R"); a bare "L" elsewhere might be a vertebra (L1) or a unit and is left alone.
_ANATOMY_AFTER_LETTER = (r"lung|lower|upper|mid|middle|base|bases|apex|apical|basilar|hemithorax|"
                         r"hemidiaphragm|diaphragm|chest|side|sided|pleural|effusion|costophrenic|"
                         r"perihilar|hilum|hilar|heart|breast|clavicle|rib|ribs|shoulder|ij|subclavian|"
                         r"internal|mainstem|ventricle|atrium|hemithoracic|retrocardiac")
_SIDE_LETTER = re.compile(r"(?<![\w.])((?-i:[LR]))(?=\.?\s+(?:" + _ANATOMY_AFTER_LETTER + r")\b)", re.IGNORECASE)
_SIDE_LETTER_COMPARE = re.compile(r"(?<![\w.])([LR])(\s*[<>=]\s*)([LR])(?![\w])")
_SWAP = {"left": "right", "right": "left", "levo": "dextro", "dextro": "levo", "l": "r", "r": "l"}


def _same_case(template: str, word: str) -> str:
    if template.isupper() and len(template) > 1:
        return word.upper()
    if template[:1].isupper():
        return word[:1].upper() + word[1:]
    return word


def _swapped(match: re.Match, group: int = 1) -> str:
    original = match.group(group)
    return _same_case(original, _SWAP[original.lower()])


def swap_laterality(text: str) -> str:
    """The report of the mirrored image: left <-> right (keeping case: Left, LEFT), leftward,
    left-sided, levo-/dextro- prefixes, and "L"/"R" where an anatomical word follows or in "L>R"."""
    text = _SIDE_WORD.sub(lambda m: _swapped(m) + (m.group(2) or ""), text)
    text = _SIDE_PREFIX.sub(_swapped, text)
    text = _SIDE_LETTER_COMPARE.sub(
        lambda m: _same_case(m.group(1), _SWAP[m.group(1).lower()]) + m.group(2)
        + _same_case(m.group(3), _SWAP[m.group(3).lower()]), text)
    return _SIDE_LETTER.sub(lambda m: _SWAP[m.group(1).lower()].upper(), text)
