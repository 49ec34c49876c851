"""Findings drawn into a phantom chest, each returning the pixel mask of what it drew.

A finding is placed by side (the PATIENT's side: "left" is the image right), zone (upper, middle,
lower thirds of that lung field's height) and severity. Each renderer adds density to the anatomy
in place, so findings compose, and returns a boolean mask of the pixels it made abnormal:

- Effusion: fluid filling the lung base up to a meniscus that climbs the lateral chest wall; the
  costophrenic angle and hemidiaphragm disappear. Always "lower" (fluid layers at the base).
- Cardiomegaly: the heart silhouette is drawn enlarged; the mask is the WHOLE enlarged silhouette
  (what a reader would outline), not the rim beyond a normal heart.
- Consolidation: patchy dense opacity confined to the lung.
- Nodule / Mass: round (mass: larger, lobulated) opacity; the mask is the lesion.
- Pneumothorax: the lung retracts (towards the base for an apical one, medially for a lateral one);
  the mask is the air gap, drawn without lung markings and bounded by a thin visceral pleural line.
- Atelectasis: plate-like band (mild/moderate) or a wedge pointing at the hilum (severe), with volume
  loss (the hemidiaphragm on that side rises; see ``adjust_geometry``).
- Edema: bilateral perihilar ("bat-wing") haze; the mask is where the haze is dense.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import numpy as np

from train.synthetic.anatomy import Anatomy, ChestGeometry, edge_distance, lung_shape_value
from train.synthetic.raster import Array, noise_patch, ramp

FINDING_NAMES = ("Effusion", "Cardiomegaly", "Consolidation", "Nodule", "Mass", "Pneumothorax",
                 "Atelectasis", "Edema")
SIDES = ("left", "right", "bilateral")
ZONES = ("upper", "middle", "lower")
SEVERITIES = ("mild", "moderate", "severe")
# Findings whose side and zone are fixed by their nature, not chosen.
_FIXED = {"Cardiomegaly": (None, None), "Edema": ("bilateral", None)}
_DEFAULT_ZONE = {"Effusion": "lower", "Pneumothorax": "upper"}


@dataclass(frozen=True)
class FindingSpec:
    """What to draw. ``side``/``zone`` None = let the generator choose (recorded when resolved)."""

    name: str
    side: str | None = None
    zone: str | None = None
    severity: str = "moderate"

    def __post_init__(self) -> None:
        if self.name not in FINDING_NAMES:
            raise ValueError(f"unknown phantom finding {self.name!r}; expected one of {FINDING_NAMES}")
        if self.side is not None and self.side not in SIDES:
            raise ValueError(f"side must be one of {SIDES} or None, not {self.side!r}")
        if self.zone is not None and self.zone not in ZONES:
            raise ValueError(f"zone must be one of {ZONES} or None, not {self.zone!r}")
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {SEVERITIES}, not {self.severity!r}")
        if self.name == "Effusion" and self.zone not in (None, "lower"):
            raise ValueError("an effusion layers at the lung base: zone must be 'lower' or None")

    @property
    def level(self) -> int:
        return SEVERITIES.index(self.severity)

    def sides(self) -> tuple[str, ...]:
        return ("right", "left") if self.side == "bilateral" else (self.side,) if self.side else ()


def resolve(spec: FindingSpec, rng: np.random.Generator) -> FindingSpec:
    """Fill in the side and zone the generator chooses, so the phantom records what it drew."""
    if spec.name in _FIXED:
        side, zone = _FIXED[spec.name]
        return replace(spec, side=side, zone=zone)
    side = spec.side or ("right", "left")[int(rng.integers(2))]
    zone = spec.zone or _DEFAULT_ZONE.get(spec.name) or ZONES[int(rng.integers(3))]
    return replace(spec, side=side, zone=zone)


def random_findings(rng: np.random.Generator) -> list[FindingSpec]:
    """A plausible random set: 0-3 different findings, about one phantom in five normal."""
    count = int(rng.choice(4, p=[0.2, 0.45, 0.25, 0.1]))
    names = rng.choice(len(FINDING_NAMES), size=count, replace=False)
    specs = []
    for index in sorted(int(i) for i in names):
        side = ("left", "right", "left", "right", "bilateral")[int(rng.integers(5))]
        specs.append(FindingSpec(FINDING_NAMES[index], side=side,
                                 severity=SEVERITIES[int(rng.integers(3))]))
    return specs


def adjust_geometry(geometry: ChestGeometry, specs: tuple[FindingSpec, ...]) -> ChestGeometry:
    """Findings that change the anatomy itself: an enlarged heart, volume loss from collapse."""
    g = geometry
    for spec in specs:
        if spec.name == "Cardiomegaly":
            g = replace(g, heart_half_width=g.heart_half_width * (1.2, 1.32, 1.45)[spec.level],
                        heart_half_height=g.heart_half_height * (1.05, 1.1, 1.16)[spec.level],
                        heart_offset=g.heart_offset + 0.012 * (spec.level + 1))
        elif spec.name == "Atelectasis" and spec.level > 0:
            rise = (0.0, 0.018, 0.035)[spec.level]
            if "right" in spec.sides():
                g = replace(g, dome_v_right=g.dome_v_right - rise)
            if "left" in spec.sides():
                g = replace(g, dome_v_left=g.dome_v_left - rise)
    return g


def render_finding(spec: FindingSpec, anatomy: Anatomy, rng: np.random.Generator) -> Array:
    """Draw a resolved ``spec`` into ``anatomy.density``; return its mask (inside the body)."""
    mask = np.zeros((anatomy.grid.height, anatomy.grid.width), dtype=bool)
    if spec.name == "Cardiomegaly":
        mask |= anatomy.heart  # the anatomy was already drawn with the enlarged heart
    elif spec.name == "Edema":
        for side in ("right", "left"):
            _edema(spec, anatomy, rng, side, mask)
    else:
        for side in spec.sides():
            _RENDERERS[spec.name](spec, anatomy, rng, side, mask)
    mask &= anatomy.body
    return mask


def _side_box(a: Anatomy, side: str, v0: float, v1: float) -> tuple[slice, slice]:
    cx = a.geometry.cx
    return a.grid.box(cx, 1.0, v0, v1) if side == "left" else a.grid.box(0.0, cx, v0, v1)


def _pick_point(a: Anatomy, side: str, zone: str, rng: np.random.Generator,
                max_shape: float) -> tuple[float, float]:
    """A random (u, v) well inside the lung field, in the middle of the zone's band."""
    v0, v1 = a.zone_rows(side, zone)
    margin = 0.2 * (v1 - v0)
    rows, cols = _side_box(a, side, v0 + margin, v1 - margin)
    lung = a.lung[rows, cols]
    inside = lung & (a.lung_shape[rows, cols] < max_shape)
    candidates = np.flatnonzero(inside if inside.any() else lung)
    if candidates.size == 0:  # degenerate tiny image: fall back to the zone centre
        return a.geometry.cx + 0.2 * (1 if side == "left" else -1), 0.5 * (v0 + v1)
    r, c = divmod(int(candidates[rng.integers(candidates.size)]), lung.shape[1])
    return (cols.start + c + 0.5) / a.grid.width, (rows.start + r + 0.5) / a.grid.height


def _local(a: Anatomy, u0: float, v0: float, radius: float) -> tuple[tuple[slice, slice], Array, Array]:
    """Box around (u0, v0) and its coordinates in width units (so circles stay round)."""
    aspect = a.grid.height / a.grid.width
    box = a.grid.box(u0 - radius, u0 + radius, v0 - radius / aspect, v0 + radius / aspect)
    x = a.grid.u[:, box[1]] - u0
    y = (a.grid.v[box[0]] - v0) * np.float32(aspect)
    return box, x, y


def _effusion(spec: FindingSpec, a: Anatomy, rng: np.random.Generator, side: str, mask: Array) -> None:
    g = a.geometry
    top, bottom = a.lung_rows(side)
    height = (0.13, 0.25, 0.4)[spec.level] * (bottom - top)
    lateral_level = bottom - height
    box = _side_box(a, side, lateral_level - 0.02, 1.0)
    d = np.abs(a.grid.u[:, box[1]] - g.cx)
    outer = g.lung_center_d + g.lung_half_width
    # The meniscus climbs the lateral wall: the fluid surface is lower towards the mediastinum.
    meniscus = lateral_level + 0.5 * height * np.sqrt(np.clip((outer - d) / (outer - 0.05), 0.0, 1.0))
    fluid = ramp(meniscus - a.grid.v[box[0]], 0.025) * a.lung_all[box]
    a.density[box] += fluid * (0.68 * a.thickness[:, box[1]])
    mask[box] |= fluid > 0.5


def _consolidation(spec: FindingSpec, a: Anatomy, rng: np.random.Generator, side: str,
                   mask: Array) -> None:
    radius = (0.04, 0.06, 0.085)[spec.level]
    u0, v0 = _pick_point(a, side, spec.zone, rng, 0.8)
    box, x, y = _local(a, u0, v0, 2.2 * radius)
    field = np.zeros((y.shape[0], x.shape[1]), dtype=np.float32)
    sigma2 = np.float32(2.0 * (0.5 * radius) ** 2)
    for _ in range(5):  # a few overlapping acinar blobs make the patchy outline
        cu, cv = rng.normal(0.0, 0.5 * radius, size=2)
        field += np.exp(-(y - cv) ** 2 / sigma2) * np.exp(-(x - cu) ** 2 / sigma2)
    texture = noise_patch(rng, field.shape[0], field.shape[1], 6, 6)
    patch = np.clip((field * (1.0 + 0.35 * texture) - 0.5) * 2.5, 0.0, 1.0) * a.lung_all[box]
    a.density[box] += patch * (0.42 * a.thickness[:, box[1]])
    mask[box] |= (patch > 0.3) & a.lung[box]


def _round_lesion(a: Anatomy, rng: np.random.Generator, side: str, zone: str, radius: float,
                  amount: float, lobulation: float, mask: Array) -> None:
    u0, v0 = _pick_point(a, side, zone, rng, 0.85 - 4.0 * radius)
    box, x, y = _local(a, u0, v0, 1.3 * radius)
    r2 = (x * x + y * y) * np.float32(1.0 / radius ** 2)
    if lobulation:  # a lobulated outline: the radius wobbles around the lesion
        r2 *= 1.0 + lobulation * noise_patch(rng, r2.shape[0], r2.shape[1], 3, 3)
    # A sphere's projected thickness: densest in the centre, fading to the edge.
    a.density[box] += np.sqrt(np.clip(1.0 - r2, 0.0, 1.0)) * (amount * a.thickness[:, box[1]])
    mask[box] |= r2 < 0.8


def _nodule(spec: FindingSpec, a: Anatomy, rng: np.random.Generator, side: str, mask: Array) -> None:
    _round_lesion(a, rng, side, spec.zone, (0.013, 0.018, 0.024)[spec.level], 0.5, 0.0, mask)


def _mass(spec: FindingSpec, a: Anatomy, rng: np.random.Generator, side: str, mask: Array) -> None:
    _round_lesion(a, rng, side, spec.zone, (0.04, 0.052, 0.066)[spec.level], 0.55, 0.25, mask)


def _pneumothorax(spec: FindingSpec, a: Anatomy, rng: np.random.Generator, side: str,
                  mask: Array) -> None:
    g = a.geometry
    shrink = (0.1, 0.18, 0.28)[spec.level]
    top, bottom = a.lung_rows(side)
    # The lung outline is moved away from the chest wall: down for an apical pneumothorax, towards
    # the mediastinum for a lateral one, up off the diaphragm for a basal (deep sulcus) one.
    move = shrink * (bottom - top)
    shift = {"upper": (0.0, move), "middle": (-0.5 * move, 0.0), "lower": (0.0, -move)}[spec.zone]
    box = _side_box(a, side, top - 0.01, bottom + 0.01)
    d = np.abs(a.grid.u[:, box[1]] - g.cx)
    v = a.grid.v[box[0]]
    collapsed_edge = edge_distance(g, lung_shape_value(g, d, v, shift=shift))
    floor = a.diaphragm_v[:, box[1]] + min(shift[1], 0.0)
    collapsed = ramp(collapsed_edge, 0.004) * ramp(v - floor, 0.004)
    lung = a.lung_all[box]
    gap = lung * (1.0 - collapsed)
    thickness = a.thickness[:, box[1]]
    # Air without lung: no vessel markings and a little darker; the collapsed lung is denser.
    a.density[box] -= gap * (a.markings[box] + 0.08 * thickness)
    a.density[box] += (lung * collapsed) * ((0.06 + 0.25 * shrink) * thickness)
    pleura = ramp(np.abs(collapsed_edge) - 0.002, 0.003) * ramp(v - floor, 0.004)
    a.density[box] += (pleura * lung) * (0.2 * thickness)
    mask[box] |= (gap > 0.5) & a.lung[box]


def _atelectasis(spec: FindingSpec, a: Anatomy, rng: np.random.Generator, side: str,
                 mask: Array) -> None:
    if spec.level == 2:
        _wedge_atelectasis(a, rng, side, spec.zone, mask)
        return
    length = (0.09, 0.13)[spec.level]
    u0, v0 = _pick_point(a, side, spec.zone, rng, 0.6)
    box, x, y = _local(a, u0, v0, 0.6 * length + 0.02)
    angle = rng.uniform(-0.35, 0.35)  # plate-like bands lie roughly horizontal
    ex, ey = np.float32(np.cos(angle)), np.float32(np.sin(angle))
    along = np.clip(x * ex + y * ey, -0.5 * length, 0.5 * length)
    dist = np.sqrt((x - along * ex) ** 2 + (y - along * ey) ** 2)
    band = ramp(dist - (0.006, 0.01)[spec.level], 0.006) * a.lung_all[box]
    a.density[box] += band * (0.45 * a.thickness[:, box[1]])
    mask[box] |= (band > 0.5) & a.lung[box]


def _wedge_atelectasis(a: Anatomy, rng: np.random.Generator, side: str, zone: str,
                       mask: Array) -> None:
    """Lobar collapse: a dense triangle whose apex points at the hilum."""
    hu, hv = a.geometry.hilum(side)
    u1, v1 = _pick_point(a, side, zone, rng, 0.5)
    aspect = a.grid.height / a.grid.width
    dx, dy = u1 - hu, (v1 - hv) * aspect
    length = float(np.hypot(dx, dy)) + 0.05
    ex, ey = np.float32(dx / (length - 0.05)), np.float32(dy / (length - 0.05))
    box, x, y = _local(a, 0.5 * (hu + u1), 0.5 * (hv + v1), 0.5 * length + 0.06)
    x = x + np.float32(0.5 * (u1 - hu))  # coordinates relative to the hilum
    y = y + np.float32(0.5 * (v1 - hv) * aspect)
    along = x * ex + y * ey
    across = np.abs(x * ey - y * ex)
    wedge = ramp(across - 0.3 * along, 0.006) * ramp(along - length, 0.01) * ramp(0.02 - along, 0.02)
    wedge *= a.lung_all[box]
    a.density[box] += wedge * (0.4 * a.thickness[:, box[1]])
    mask[box] |= (wedge > 0.5) & a.lung[box]


def _edema(spec: FindingSpec, a: Anatomy, rng: np.random.Generator, side: str, mask: Array) -> None:
    su, sv = (0.08, 0.1, 0.12)[spec.level], (0.12, 0.15, 0.18)[spec.level]
    hu, hv = a.geometry.hilum(side)
    box = _side_box(a, side, hv - 2.5 * sv, hv + 2.5 * sv)
    haze = np.exp(-0.5 * ((a.grid.u[:, box[1]] - hu) / su) ** 2) * \
        np.exp(-0.5 * ((a.grid.v[box[0]] - hv) / sv) ** 2)
    haze = haze * a.lung_all[box]
    texture = noise_patch(rng, haze.shape[0], haze.shape[1], 10, 6)
    amount = (0.16, 0.24, 0.32)[spec.level]
    a.density[box] += (haze * (1.0 + 0.3 * texture)) * (amount * a.thickness[:, box[1]])
    mask[box] |= (haze > 0.45) & a.lung[box]


_RENDERERS: dict[str, Callable[..., None]] = {
    "Effusion": _effusion, "Consolidation": _consolidation, "Nodule": _nodule, "Mass": _mass,
    "Pneumothorax": _pneumothorax, "Atelectasis": _atelectasis,
}
