"""Synthetic frontal chest radiographs with pixel-exact finding masks and a matching report.

``generate_phantom(seed, size, findings, report_bank)`` is the public entry point. The image is float32
in [0, 1] with bright = dense, displayed in the radiological convention (the patient's LEFT on the
image RIGHT). Everything is a pure function of the seed: anatomy, each finding, exposure and report
draw from separate random streams, so adding a finding to a phantom leaves the rest of it unchanged
(tests compare a phantom with and without a finding pixel for pixel).

Reports: with a ``ReportBank`` built from real OpenI reports, a phantom gets a real report whose MeSH
terms it renders (or, where none exists, one assembled from real OpenI sentences); without one (a
fresh clone with no OpenI data) it gets short built-in template sentences, provenance "template".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from train.synthetic.anatomy import render_anatomy, sample_geometry, tone_map
from train.synthetic.findings import (
    FINDING_NAMES, SEVERITIES, SIDES, ZONES, FindingSpec, adjust_geometry, random_findings,
    render_finding, resolve,
)
from train.synthetic.raster import make_grid
from train.synthetic.reports import ReportBank, TEMPLATE_BANK

__all__ = [
    "FINDING_NAMES", "SEVERITIES", "SIDES", "ZONES", "FindingSpec", "Phantom", "ReportBank",
    "generate_phantom",
]

# Stream ids: one independent random stream per concern (see the module docstring).
_ANATOMY, _TEXTURE, _EXPOSURE, _CHOICE, _RESOLVE, _FINDING, _REPORT = range(7)
MIN_SIZE = 32


@dataclass(frozen=True)
class Phantom:
    image: np.ndarray  # (H, W) float32 in [0, 1], bright = dense
    masks: dict[str, np.ndarray] = field(repr=False)  # finding name -> (H, W) bool
    body_mask: np.ndarray = field(repr=False)
    lung_mask: np.ndarray = field(repr=False)  # visible lung fields (heart excluded)
    findings: tuple[FindingSpec, ...]  # as drawn: side and zone resolved
    report: str
    report_provenance: str  # "openi:<report id>", "openi-sentences:<id>#<i>,...", or "template"
    seed: int


def _stream(seed: int, purpose: int, index: int = 0) -> np.random.Generator:
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, purpose, index])


def _size(size: int | tuple[int, int]) -> tuple[int, int]:
    height, width = (size, size) if isinstance(size, (int, np.integer)) else size
    height, width = int(height), int(width)
    if min(height, width) < MIN_SIZE:
        raise ValueError(f"phantom size must be at least {MIN_SIZE} px per side, got {height}x{width}")
    return height, width


def generate_phantom(seed: int, size: int | tuple[int, int] = 320,
                     findings: Sequence[FindingSpec] | None = None,
                     report_bank: ReportBank | None = None) -> Phantom:
    """A phantom for ``seed``; ``size`` is an int (square) or (height, width).

    ``findings=None`` draws a random set (from a real report's MeSH terms when ``report_bank`` has
    any); an empty sequence gives a normal chest.
    """
    height, width = _size(size)
    bank = report_bank if report_bank is not None else TEMPLATE_BANK
    chosen_report = None
    if findings is None:
        choice = _stream(seed, _CHOICE)
        chosen_report = bank.sample(choice)
        findings = chosen_report.findings if chosen_report else random_findings(choice)
    specs = tuple(resolve(spec, _stream(seed, _RESOLVE, i)) for i, spec in enumerate(findings))
    geometry = adjust_geometry(sample_geometry(_stream(seed, _ANATOMY)), specs)
    anatomy = render_anatomy(geometry, make_grid(height, width), _stream(seed, _TEXTURE))
    masks: dict[str, np.ndarray] = {}
    for index, spec in enumerate(specs):
        mask = render_finding(spec, anatomy, _stream(seed, _FINDING, index))
        masks[spec.name] = masks[spec.name] | mask if spec.name in masks else mask
    image = tone_map(anatomy.density, geometry, _stream(seed, _EXPOSURE))
    report = chosen_report or bank.report_for(specs, _stream(seed, _REPORT))
    return Phantom(image=image, masks=masks, body_mask=anatomy.body, lung_mask=anatomy.lung,
                   findings=specs, report=report.text, report_provenance=report.provenance,
                   seed=int(seed))
