"""Is this a frontal chest radiograph? A gate before any score is shown.

The model scores whatever it is given: a photograph, a blank frame or a screenshot of text gets
14 finding probabilities like a chest film. Two kinds of evidence, either of which fails the gate:

- the image itself: a (nearly) constant image; an image whose pixels are almost all at the two
  extremes (text, drawings, screenshots), where a radiograph is mostly mid-tones; a colour image
  (radiographs are grayscale); an extreme aspect ratio (a strip cut out of a film); a DICOM whose
  Modality is not a radiograph (CT, MR, US, ...) or whose Body Part Examined is not the chest;
- the model's view of it: the distance of its global image embedding from the embeddings of the
  images the model was trained on, a Mahalanobis distance in their principal components plus the
  residual (``InputReference``, stored in the model card by ``python -m train input-reference``),
  above the threshold chosen there (a high percentile of the training images' own distances).

A failed gate does not hide anything: the page greys the scores and says why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

CARD_KEY = "input_reference"
# Radiograph DICOM modalities: computed and digital radiography (and their for-presentation kinds).
RADIOGRAPH_MODALITIES = frozenset({"CR", "DX", "DR", "RG", "PX"})
MIN_STD = 0.02  # a standard deviation below this (on [0, 1]) is a blank or constant frame
MIN_MID_TONES = 0.35  # share of pixels strictly between 0.08 and 0.92; chest films: about 0.9
MAX_COLOURFULNESS = 0.08  # mean channel spread of a colour source image; gray scans: ~0
ASPECT_RANGE = (0.5, 2.0)  # width / height of chest films lies well inside this


@dataclass(frozen=True)
class InputReference:
    """Where the training images' global embeddings lie (fitted by train/commands/input_reference.py)."""

    mean: np.ndarray  # (D,)
    components: np.ndarray  # (k, D) principal directions
    variances: np.ndarray  # (k,) variance along each
    residual_variance: float  # mean variance per dimension left outside the components
    threshold: float  # distances above this fail the gate
    fitted_on: str = ""

    def distance(self, embedding: np.ndarray) -> float:
        """Root of the per-dimension-normalised squared distance (about 1 for a typical image)."""
        z = np.asarray(embedding, dtype=np.float64) - self.mean
        projected = self.components @ z
        residual = z - self.components.T @ projected
        inside = np.sum(projected**2 / np.maximum(self.variances, 1e-12))
        outside = np.sum(residual**2) / max(self.residual_variance, 1e-12)
        return float(np.sqrt((inside + outside) / z.size))

    def to_dict(self) -> dict[str, Any]:
        return {"mean": self.mean.round(6).tolist(), "components": self.components.round(6).tolist(),
                "variances": self.variances.tolist(), "residual_variance": self.residual_variance,
                "threshold": self.threshold, "fitted_on": self.fitted_on}

    @classmethod
    def from_card(cls, card: Mapping[str, Any] | None) -> "InputReference | None":
        data = (card or {}).get(CARD_KEY)
        if not data:
            return None
        return cls(np.asarray(data["mean"], dtype=np.float64), np.asarray(data["components"], dtype=np.float64),
                   np.asarray(data["variances"], dtype=np.float64), float(data["residual_variance"]),
                   float(data["threshold"]), str(data.get("fitted_on", "")))


@dataclass(frozen=True)
class InputCheck:
    passed: bool
    reasons: tuple[str, ...]  # plain sentences; empty when the image passes
    embedding_distance: float | None  # None when the model card has no reference
    distance_threshold: float | None
    statistics: dict[str, float] = field(default_factory=dict)


def image_statistics(pixels: np.ndarray) -> dict[str, float]:
    values = np.asarray(pixels, dtype=np.float64)
    height, width = values.shape
    return {"std": float(values.std()), "mid_tones": float(np.mean((values > 0.08) & (values < 0.92))),
            "aspect": float(width / height) if height else 0.0}


def image_reasons(pixels: np.ndarray, header: Mapping[str, str] | None = None, colourfulness: float = 0.0) -> list[str]:
    """The image-level reasons (see the module docstring), without the model."""
    stats = image_statistics(pixels)
    reasons = []
    if stats["std"] < MIN_STD:
        reasons.append("the image is blank or nearly constant")
    elif stats["mid_tones"] < MIN_MID_TONES:
        reasons.append("almost every pixel is near black or white, as in text, drawings or screenshots; "
                       "radiographs are mostly mid-tones")
    header = header or {}
    photometric = str(header.get("Photometric Interpretation", "")).strip().upper()
    if colourfulness > MAX_COLOURFULNESS:
        reasons.append("the image is in colour; radiographs are grayscale")
    elif photometric and not photometric.startswith("MONOCHROME"):
        reasons.append(f"the DICOM stores colour pixels ({photometric}); radiographs are grayscale")
    if not ASPECT_RANGE[0] <= stats["aspect"] <= ASPECT_RANGE[1]:
        reasons.append(f"its shape ({stats['aspect']:.2f}:1) is far from a chest film's; it may be heavily cropped")
    modality = str(header.get("Modality", "")).strip().upper()
    if modality and modality not in RADIOGRAPH_MODALITIES:
        reasons.append(f"the DICOM modality is {modality}, not a radiograph (CR/DX)")
    body_part = str(header.get("Body Part Examined", "")).strip().upper()
    if body_part and "CHEST" not in body_part and "THORAX" not in body_part:
        reasons.append(f"the DICOM body part is {body_part}, not the chest")
    return reasons


def check_input(reference: InputReference | None, pixels: np.ndarray, global_embedding: np.ndarray,
                header: Mapping[str, str] | None = None, colourfulness: float = 0.0) -> InputCheck:
    """The gate for one image: its own statistics, and its embedding against the card's reference."""
    reasons = image_reasons(pixels, header, colourfulness) + embedding_reasons(reference, global_embedding)
    distance = threshold = None
    if reference is not None:
        distance, threshold = reference.distance(global_embedding), reference.threshold
    return InputCheck(not reasons, tuple(reasons), distance, threshold, image_statistics(pixels))


def embedding_reasons(reference: InputReference | None, global_embedding: np.ndarray) -> list[str]:
    """The model-level reason, alone: batch scoring computes ``image_reasons`` where it decodes the
    file (a DataLoader worker) and this where the embedding is, in the scoring process."""
    if reference is None:
        return []
    distance, threshold = reference.distance(global_embedding), reference.threshold
    if distance <= threshold:
        return []
    return [f"the model sees it far from every image it was trained on (distance {distance:.2f}, "
            f"chest films up to {threshold:.2f})"]
