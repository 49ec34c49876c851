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
  above the threshold chosen there (a high percentile of the training images' own distances);
- its orientation: a film turned a quarter or half turn keeps a radiograph's statistics and sits
  near the training embeddings, so a linear classifier on a small thumbnail, fitted on the training
  films against their own rotations (``OrientationCheck``, in the same card entry), tells upright
  films from turned ones.

A failed gate does not hide anything: the page greys the scores and says why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import cv2
import numpy as np

CARD_KEY = "input_reference"
# Radiograph DICOM modalities: computed and digital radiography (and their for-presentation kinds).
RADIOGRAPH_MODALITIES = frozenset({"CR", "DX", "DR", "RG", "PX"})
MIN_STD = 0.02  # a standard deviation below this (on [0, 1]) is a blank or constant frame
MIN_MID_TONES = 0.35  # share of pixels strictly between 0.08 and 0.92; chest films: about 0.9
MAX_COLOURFULNESS = 0.08  # mean channel spread of a colour source image; gray scans: ~0
ASPECT_RANGE = (0.5, 2.0)  # width / height of chest films lies well inside this


ORIENTATION_SIDE = 24  # thumbnail side: the film's layout, not its detail, says which way is up


def orientation_features(pixels: np.ndarray) -> np.ndarray:
    """The film as a ``ORIENTATION_SIDE``-pixel square thumbnail (area resampling), standardised so
    that exposure and contrast do not count, flattened."""
    small = cv2.resize(np.asarray(pixels, dtype=np.float32), (ORIENTATION_SIDE, ORIENTATION_SIDE),
                       interpolation=cv2.INTER_AREA).astype(np.float64)
    return ((small - small.mean()) / (small.std() + 1e-6)).ravel()


@dataclass(frozen=True)
class OrientationCheck:
    """Upright or turned: a logistic score on ``orientation_features`` (fitted by
    train/commands/input_reference.py on upright training films against their 90, 180 and 270
    degree rotations); scores below ``threshold`` (the highest a turned training film scored) fail."""

    weights: np.ndarray  # (ORIENTATION_SIDE ** 2,)
    bias: float
    threshold: float

    def score(self, pixels: np.ndarray) -> float:
        return self.score_features(orientation_features(pixels))

    def score_features(self, features: np.ndarray) -> float:
        return float(features @ self.weights + self.bias)

    def to_dict(self) -> dict[str, Any]:
        return {"side": ORIENTATION_SIDE, "weights": self.weights.round(6).tolist(), "bias": self.bias,
                "threshold": self.threshold}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "OrientationCheck | None":
        if not data or int(data.get("side", 0)) != ORIENTATION_SIDE:
            return None  # absent (an older card), or fitted for another thumbnail size
        weights = np.asarray(data["weights"], dtype=np.float64)
        if weights.shape != (ORIENTATION_SIDE ** 2,):
            raise ValueError(f"orientation weights have shape {weights.shape}, not ({ORIENTATION_SIDE ** 2},)")
        return cls(weights, float(data["bias"]), float(data["threshold"]))


@dataclass(frozen=True)
class InputReference:
    """Where the training images' global embeddings lie (fitted by train/commands/input_reference.py)."""

    mean: np.ndarray  # (D,)
    components: np.ndarray  # (k, D) principal directions
    variances: np.ndarray  # (k,) variance along each
    residual_variance: float  # mean variance per dimension left outside the components
    threshold: float  # distances above this fail the gate
    fitted_on: str = ""
    orientation: OrientationCheck | None = None  # None in cards written before it existed

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
                "threshold": self.threshold, "fitted_on": self.fitted_on,
                **({"orientation": self.orientation.to_dict()} if self.orientation else {})}

    @classmethod
    def from_card(cls, card: Mapping[str, Any] | None) -> "InputReference | None":
        data = (card or {}).get(CARD_KEY)
        if not data:
            return None
        return cls(np.asarray(data["mean"], dtype=np.float64), np.asarray(data["components"], dtype=np.float64),
                   np.asarray(data["variances"], dtype=np.float64), float(data["residual_variance"]),
                   float(data["threshold"]), str(data.get("fitted_on", "")),
                   OrientationCheck.from_dict(data.get("orientation")))


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
    reasons = (image_reasons(pixels, header, colourfulness) + embedding_reasons(reference, global_embedding)
               + orientation_reasons(reference, orientation_features(pixels)))
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


def orientation_reasons(reference: InputReference | None, features: np.ndarray | None) -> list[str]:
    """The orientation check's reason, alone, from ``orientation_features`` of the image (batch
    scoring computes them where it decodes the file, and judges them with the embedding)."""
    if reference is None or reference.orientation is None or features is None:
        return []
    check = reference.orientation
    score = check.score_features(features)
    if score >= check.threshold:
        return []
    return [f"it looks turned a quarter or half turn, or upside down (orientation score {score:.2f}; "
            f"upright chest films score above {check.threshold:.2f})"]
