"""Per-finding calibration of zero-shot scores, and the operating point chosen for each finding.

A zero-shot score is softmax([sim_pos, sim_neg] * scale)[0]: a number in [0, 1] that ranks images
(its AUC) but is not a probability; on the NIH sample most raw scores sat above 0.5 whatever the
image showed. Platt scaling maps the raw logit z = scale * (sim_pos - sim_neg) to
sigmoid(slope * z + intercept), fitted per finding on out-of-fold predictions of cross-validation
(``python -m train calibrate``), and is stored in the model card, so the library, the app and every
export apply the same map. Findings the card does not calibrate (any name a user types) keep the
raw score, and ``ZeroShotScores.calibrated`` says which is which.

The operating point is a threshold on the calibrated probability chosen on the same out-of-fold
predictions, stored with the sensitivity and specificity it had there.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

CARD_KEY = "calibration"


@dataclass(frozen=True)
class OperatingPoint:
    threshold: float  # on the calibrated probability; scores >= threshold are called positive
    sensitivity: float  # measured on the out-of-fold predictions it was chosen on
    specificity: float
    rule: str = "youden"  # how it was chosen (maximum of sensitivity + specificity - 1)


@dataclass(frozen=True)
class FindingCalibration:
    slope: float
    intercept: float
    operating_point: OperatingPoint | None = None

    def probability(self, logits: np.ndarray) -> np.ndarray:
        return sigmoid(self.slope * np.asarray(logits, dtype=np.float64) + self.intercept)


@dataclass(frozen=True)
class Calibration:
    """What a model card says about calibration: per finding, and where it was fitted."""

    findings: Mapping[str, FindingCalibration] = field(default_factory=dict)
    method: str = "platt"
    fitted_on: str = ""  # e.g. "out-of-fold predictions of 5-fold CV over 421 NIH images"

    def __contains__(self, finding: str) -> bool:
        return finding in self.findings

    def apply(self, findings: Sequence[str], logits: np.ndarray) -> tuple[np.ndarray, tuple[bool, ...]]:
        """(probabilities, calibrated) for (n_images, n_findings) raw logits."""
        logits = np.asarray(logits, dtype=np.float64)
        probabilities = sigmoid(logits)
        calibrated = []
        for j, name in enumerate(findings):
            fit = self.findings.get(name)
            if fit is not None:
                probabilities[:, j] = fit.probability(logits[:, j])
            calibrated.append(fit is not None)
        return probabilities, tuple(calibrated)

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "fitted_on": self.fitted_on,
                "findings": {name: asdict(fit) for name, fit in self.findings.items()}}

    @classmethod
    def from_card(cls, card: Mapping[str, Any] | None) -> "Calibration":
        """The card's calibration, or none. A malformed entry is an error: silently showing raw
        scores as if they were calibrated would be worse than refusing to load."""
        data = (card or {}).get(CARD_KEY)
        if not data:
            return cls()
        findings = {}
        for name, entry in dict(data.get("findings", {})).items():
            point = entry.get("operating_point")
            findings[str(name)] = FindingCalibration(
                float(entry["slope"]), float(entry["intercept"]),
                OperatingPoint(**point) if point else None,
            )
        return cls(findings, str(data.get("method", "platt")), str(data.get("fitted_on", "")))


def sigmoid(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return np.exp(-np.logaddexp(0.0, -x))


def probability_logit(probability: np.ndarray) -> np.ndarray:
    """The inverse of ``sigmoid``, clipped so that saturated scores stay finite."""
    p = np.clip(np.asarray(probability, dtype=np.float64), 1e-12, 1 - 1e-12)
    return np.log(p) - np.log1p(-p)
