"""Normal chest anatomy for synthetic frontal (PA) radiographs.

Structures are drawn as *density* (bright = dense) in normalised coordinates (see
``phantom_raster``); ``d = |u - cx|`` is the distance from the patient's midline, so paired
structures (lungs, ribs, clavicles) are drawn once for both sides. ``tone_map`` turns density into the
displayed image with per-phantom exposure and noise.

Radiological convention: the patient's right is on the image LEFT (``u < cx``), so the heart bulges
to the image right, the gastric bubble sits under the image-right hemidiaphragm and the right
hemidiaphragm (image left) sits a little higher.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from train.synthetic.raster import Array, Grid, ellipse, grain, make_grid, noise_patch, ramp, smooth_noise

SIDES = ("right", "left")
HEART_TILT = 0.45  # radians: the heart's long axis runs down and to the patient's left


@dataclass(frozen=True)
class ChestGeometry:
    """Per-phantom anatomy. ``d`` and ``u`` are fractions of the image width, ``v`` of its height."""

    cx: float  # patient midline
    body_half_width: float
    lung_center_d: float  # centre of each lung's outline, distance from the midline
    lung_half_width: float
    lung_center_v: float
    lung_half_height: float
    dome_v_right: float  # top of the hemidiaphragm dome; patient right = image left
    dome_v_left: float
    dome_curvature: float
    mediastinum_half_width: float
    heart_offset: float  # heart centre sits this far towards the patient's left
    heart_v: float
    heart_half_width: float
    heart_half_height: float
    rib_spacing: float
    rib_phase: float
    exposure: float  # gain of the density -> brightness curve
    contrast: float  # window width and level of the displayed image
    brightness: float
    noise_sigma: float

    def dome_v(self, side: str) -> float:
        return self.dome_v_right if side == "right" else self.dome_v_left

    def hilum(self, side: str) -> tuple[float, float]:
        """(u, v) of the hilum: where vessels, edema and collapse converge."""
        sign = 1 if side == "left" else -1
        return self.cx + sign * (self.mediastinum_half_width + 0.045), self.lung_center_v - 0.07


def side_sign(side: str) -> int:
    """+1 for the patient's left (image right), -1 for the patient's right (image left)."""
    return 1 if side == "left" else -1


def sample_geometry(rng: np.random.Generator) -> ChestGeometry:
    def jitter(centre: float, spread: float) -> float:
        return float(centre + spread * rng.uniform(-1.0, 1.0))

    dome = jitter(0.635, 0.02)
    return ChestGeometry(
        cx=jitter(0.5, 0.012),
        body_half_width=jitter(0.45, 0.015),
        lung_center_d=jitter(0.195, 0.008),
        lung_half_width=jitter(0.165, 0.008),
        lung_center_v=jitter(0.50, 0.012),
        lung_half_height=jitter(0.39, 0.012),
        dome_v_right=dome - 0.02,
        dome_v_left=dome + jitter(0.0, 0.008),
        dome_curvature=jitter(3.0, 0.4),
        mediastinum_half_width=jitter(0.05, 0.005),
        heart_offset=jitter(0.05, 0.008),
        heart_v=dome - jitter(0.035, 0.01),
        heart_half_width=jitter(0.165, 0.008),
        heart_half_height=jitter(0.15, 0.008),
        rib_spacing=jitter(0.062, 0.004),
        rib_phase=float(rng.uniform(0.0, 1.0)),
        exposure=jitter(1.65, 0.15),
        contrast=jitter(1.05, 0.08),
        brightness=jitter(0.0, 0.04),
        noise_sigma=jitter(0.013, 0.005),
    )


@dataclass
class Anatomy:
    """The rendered normal chest plus the fields findings need to place themselves."""

    grid: Grid
    geometry: ChestGeometry
    density: Array  # (H, W) float32; findings add into it before tone mapping
    body: Array  # bool
    lung_shape: Array  # float32 implicit value per pixel: < 1 inside the lung outline
    lung_all: Array  # soft lung field including the part behind the heart
    lung: Array  # bool visible lung field (heart and mediastinum excluded)
    markings: Array  # lung vessel density already in ``density`` (pneumothorax removes it)
    heart: Array  # bool
    diaphragm_v: Array  # (1, W) height of the diaphragm under each column
    thickness: Array  # (1, W) soft-tissue density across the chest (findings scale by it)

    def side_columns(self, side: str) -> Array:
        """(1, W) bool: the image half that holds the patient's ``side``."""
        right_of_midline = self.grid.u >= self.geometry.cx
        return right_of_midline if side == "left" else ~right_of_midline

    def lung_rows(self, side: str) -> tuple[float, float]:
        """(top, bottom) of one lung field in normalised v, from the mask itself."""
        rows = np.flatnonzero((self.lung & self.side_columns(side)).any(axis=1))
        h = self.grid.height
        return (rows[0] + 0.5) / h, (rows[-1] + 0.5) / h

    def zone_rows(self, side: str, zone: str) -> tuple[float, float]:
        """Upper, middle and lower zones are thirds of the lung field's height."""
        top, bottom = self.lung_rows(side)
        third = (bottom - top) / 3.0
        index = {"upper": 0, "middle": 1, "lower": 2}[zone]
        return top + index * third, top + (index + 1) * third


def lung_shape_value(geometry: ChestGeometry, d: Array, v: Array,
                     scale: tuple[float, float] = (1.0, 1.0),
                     anchor: tuple[float, float] | None = None,
                     shift: tuple[float, float] = (0.0, 0.0)) -> Array:
    """Implicit lung outline (< 1 inside), mirrored about the midline; ``d`` (1, W), ``v`` (H, 1).

    Elliptic above the lung centre (rounded apices), quartic below (straight lateral walls that meet
    the diaphragm in a sharp costophrenic angle). ``scale``/``anchor`` (d, v) shrink the outline
    towards a point (separately across and down); ``shift`` (d, v) moves it: how a pneumothorax
    collapses the lung.
    """
    g = geometry
    ad, av = anchor if anchor is not None else (g.lung_center_d, g.lung_center_v)
    v = av + (v - av) * np.float32(1.0 / scale[1]) - np.float32(shift[1])
    x = (ad + (d - ad) / scale[0] - shift[0] - g.lung_center_d) / g.lung_half_width
    y = (v - g.lung_center_v) / g.lung_half_height
    x2, y2 = x * x, y * y
    # Rows above the centre use the ellipse, rows below the quartic: split by row, no np.where.
    split = int(np.searchsorted(v[:, 0], g.lung_center_v))
    out = np.empty((v.shape[0], d.shape[1]), dtype=np.float32)
    np.add(x2, y2[:split], out=out[:split])
    np.add(x2 * x2, y2[split:] * y2[split:], out=out[split:])
    return out


def edge_distance(geometry: ChestGeometry, shape: Array, scale: float = 1.0) -> Array:
    """Approximate signed distance (width units) to a lung outline from its implicit value."""
    # The quartic outline changes by ~3/lung_half_width per unit distance at its edge.
    return (shape - 1.0) * np.float32(geometry.lung_half_width * scale / 3.0)


def diaphragm_height(geometry: ChestGeometry, grid: Grid) -> Array:
    """(1, W) dome of each hemidiaphragm; peaks a little medial to the lung centre."""
    g = geometry
    d = np.abs(grid.u - g.cx)
    dome = np.full_like(grid.u, g.dome_v_left)
    dome[grid.u < g.cx] = g.dome_v_right
    offset = d - (g.lung_center_d - 0.01)
    # Steeper laterally (deep costophrenic angle) than medially (shallow cardiophrenic angle).
    curvature = np.where(offset > 0, g.dome_curvature, 0.35 * g.dome_curvature).astype(np.float32)
    return dome + curvature * offset * offset




def render_anatomy(geometry: ChestGeometry, grid: Grid, rng: np.random.Generator) -> Anatomy:
    g = geometry
    d = np.abs(grid.u - g.cx)  # (1, W)
    body_soft, thickness = _body(g, grid, d)
    diaphragm_v = diaphragm_height(g, grid)
    shape = lung_shape_value(g, d, grid.v)
    lung_all = ramp(edge_distance(g, shape), 0.006)
    lung_all *= ramp(grid.v - diaphragm_v, 0.006)
    lung_all *= np.clip((d - g.mediastinum_half_width) * 150.0 + 0.5, 0.0, 1.0)
    density = thickness * body_soft
    density -= (0.72 * thickness) * lung_all  # aerated lung: about a quarter of the tissue density
    heart_box, heart_soft = _heart(g, grid, diaphragm_v)
    hb_thick = thickness[:, heart_box[1]]
    # Lung behind the heart is still partly seen through it (retrocardiac lucency is subtle).
    density[heart_box] += heart_soft * (0.5 * hb_thick * lung_all[heart_box] + 0.2)
    _add_mediastinum(density, g, grid, d)
    box, bubble = ellipse(grid, g.cx + g.lung_center_d - 0.03, g.dome_v_left + 0.07, 0.055, 0.028, 0.4)
    density[box] -= 0.2 * bubble
    markings = _markings(g, grid, d, rng)
    markings *= lung_all
    density += markings
    density += _ribs(g, grid, d, shape, diaphragm_v)
    _add_clavicles_and_spine(density, g, grid, d)
    visible = lung_all > 0.5
    heart = np.zeros_like(visible)
    heart[heart_box] = heart_soft > 0.5
    visible &= ~heart
    return Anatomy(grid, g, density, body_soft > 0.5, shape, lung_all, visible, markings, heart,
                   diaphragm_v, thickness)


def _body(g: ChestGeometry, grid: Grid, d: Array) -> tuple[Array, Array]:
    """Soft body outline (neck, shoulders, chest, upper abdomen) and its (1, W) tissue thickness."""
    v = grid.v
    shoulders = np.clip((v - 0.01) / 0.12, 0.0, 1.0)
    half_width = 0.1 + (g.body_half_width - 0.1) * np.sqrt(shoulders)  # (H, 1)
    half_width -= 0.04 * np.clip(v - 0.6, 0.0, None)
    body_soft = ramp(d - half_width, 0.012)
    across = np.clip(1.0 - (d / (g.body_half_width + 0.02)) ** 2, 0.0, None)
    thickness = 0.22 + 0.58 * np.sqrt(across)  # a round chest holds more tissue in the middle
    return body_soft, thickness


def heart_shape(g: ChestGeometry, grid: Grid) -> tuple[tuple[slice, slice], Array]:
    """Soft heart silhouette: an ellipse centred to the patient's left, its long axis tilted down
    towards the cardiac apex (image lower right), sitting on the diaphragm."""
    cu, cv = g.cx + g.heart_offset, g.heart_v
    reach = max(g.heart_half_width, g.heart_half_height) * 1.1
    box = grid.box(cu - reach, cu + reach, cv - reach, cv + reach)
    x = grid.u[:, box[1]] - cu
    y = grid.v[box[0]] - cv
    cos, sin = np.float32(np.cos(HEART_TILT)), np.float32(np.sin(HEART_TILT))
    along = (x * cos + y * sin) * np.float32(1.0 / g.heart_half_width)
    across = (y * cos - x * sin) * np.float32(1.0 / g.heart_half_height)
    return box, ramp(along * along + across * across - 1.0, 0.12)


def _heart(g: ChestGeometry, grid: Grid, diaphragm_v: Array) -> tuple[tuple[slice, slice], Array]:
    box, heart = heart_shape(g, grid)
    # Below the diaphragm the heart merges into the abdomen: no lower border shows.
    heart *= ramp(grid.v[box[0]] - diaphragm_v[:, box[1]], 0.01)
    return box, heart


def _add_mediastinum(density: Array, g: ChestGeometry, grid: Grid, d: Array) -> None:
    """Upper mediastinum (great vessels), aortic knob and the dark air column of the trachea."""
    top = grid.v < g.heart_v
    band = ramp(d - g.mediastinum_half_width - 0.01, 0.012)
    density[top[:, 0]] += 0.06 * band
    box, knob = ellipse(grid, g.cx + g.mediastinum_half_width + 0.012,
                        g.heart_v - g.heart_half_height - 0.045, 0.03, 0.03, 0.3)
    density[box] += 0.12 * knob
    rows = grid.v[:, 0] < g.lung_center_v - 0.12
    density[rows] -= 0.12 * ramp(d - 0.013, 0.008)


def _ribs(g: ChestGeometry, grid: Grid, d: Array, shape: Array, diaphragm_v: Array) -> Array:
    """Posterior and anterior ribs inside the thoracic cage."""
    v = grid.v
    cage = ramp(shape - 1.3, 0.15)
    cage *= ramp(v - (diaphragm_v + 0.05), 0.04)
    # Posterior ribs leave the spine nearly level, then sweep down along the lateral wall; the
    # spacing grows towards the base like real rib interspaces.
    level = np.sqrt(np.clip(v - 0.02, 0.0, None)) * np.float32(0.55 / g.rib_spacing)
    posterior = level - (1.3 * (d - 0.05) ** 2 - 0.08 * d) * np.float32(1.0 / g.rib_spacing)
    posterior += np.float32(g.rib_phase)
    ribs = np.clip(np.cos(posterior * np.float32(2 * np.pi)) * 1.7 - 0.5, 0.0, 1.0)
    # Anterior ribs run down and in from the lateral wall; faint, and invisible medially.
    anterior = (v + 0.6 * d) * np.float32(1.0 / (g.rib_spacing * 1.2)) + np.float32(g.rib_phase)
    front = np.clip(np.cos(anterior * np.float32(2 * np.pi)) * 1.5 - 0.8, 0.0, 1.0)
    front *= np.clip((d - 0.13) * 8.0, 0.0, 1.0)
    ribs *= 0.085
    ribs += 0.035 * front
    ribs *= cage
    return ribs


def _add_clavicles_and_spine(density: Array, g: ChestGeometry, grid: Grid, d: Array) -> None:
    """Clavicles sweep up and out from the sternal notch; the spine shows through the mediastinum."""
    v_start = g.lung_center_v - g.lung_half_height + 0.05
    rows, _ = grid.box(0.0, 1.0, v_start - 0.11, v_start + 0.03)
    v = grid.v[rows]
    start_d, end_d, rise = 0.035, 0.34, 0.06
    ex, ey = end_d - start_d, -rise
    t = np.clip(((d - start_d) * ex + (v - v_start) * ey) * np.float32(1.0 / (ex * ex + ey * ey)),
                0.0, 1.0)
    bow = 0.012 * np.sin(t * np.float32(np.pi))
    dist2 = (d - start_d - t * ex) ** 2 + (v - v_start - t * ey + bow) ** 2
    density[rows] += 0.12 * ramp(np.sqrt(dist2) - 0.012, 0.006)
    spine_cols = grid.box(g.cx - 0.045, g.cx + 0.045, 0.0, 1.0)[1]
    vertebrae = 0.07 + 0.025 * np.cos(grid.v * np.float32(2 * np.pi / 0.045))
    density[:, spine_cols] += vertebrae * ramp(d[:, spine_cols] - 0.03, 0.01)


def _markings(g: ChestGeometry, grid: Grid, d: Array, rng: np.random.Generator) -> Array:
    """Vessel-like lines radiating from the hila, fading towards the periphery (lung box only)."""
    hilum_d = g.mediastinum_half_width + 0.04
    hilum_v = g.lung_center_v - 0.06
    top = g.lung_center_v - g.lung_half_height
    reach = g.lung_center_d + g.lung_half_width
    rows, cols = grid.box(g.cx - reach, g.cx + reach, top, max(g.dome_v_left, g.dome_v_right) + 0.15)
    dd = d[:, cols] - hilum_d
    dv = grid.v[rows] - hilum_v
    # Angle proxy about the hilum (no arctan): constant along rays, so a cosine of it draws spokes.
    angle = dv / (np.abs(dd) + np.abs(dv) + 0.03)
    wobble = noise_patch(rng, angle.shape[0], angle.shape[1], 10, 10)
    wobble *= np.float32(0.08)
    wobble += angle
    spokes = np.cos(wobble * np.float32(2 * np.pi * 5.0), out=wobble)
    spokes *= 2.5
    spokes += noise_patch(rng, angle.shape[0], angle.shape[1], 18, 18) * np.float32(0.7) - 2.0
    vessels = np.clip(spokes, 0.0, 1.0, out=spokes)
    # Spokes fade out at the hilum itself (where they would converge into a starburst).
    near_d = np.exp(-0.5 * (dd / 0.13) ** 2) * np.clip(np.abs(dd) * 25.0, 0.3, 1.0)
    near_v = np.exp(-0.5 * (dv / 0.2) ** 2)
    vessels *= 0.045
    vessels += 0.03
    vessels *= near_v * near_d
    hila = np.exp(-0.5 * (dv / 0.05) ** 2) * np.exp(-0.5 * (dd / 0.025) ** 2)
    # Soft tissue over the lower lungs (breasts, pectorals) makes the bases a little denser.
    base = np.clip(grid.v[rows] - 0.35, 0.0, None) * np.float32(0.12)
    out = np.zeros((grid.height, grid.width), dtype=np.float32)
    out[rows, cols] = vessels + (0.09 * hila + base)
    return out


def tone_map(density: Array, geometry: ChestGeometry, rng: np.random.Generator) -> Array:
    """Film-like response, per-phantom exposure and window, low-frequency mottle and grain."""
    g = geometry
    grid = make_grid(*density.shape)
    mottle = smooth_noise(rng, grid, 12)
    mottle *= np.float32(0.012)
    mottle += density
    mottle *= np.float32(-g.exposure)
    image = np.exp(mottle, out=mottle)
    # 1 - exp(-k D), then the window: contrast about mid-grey plus a brightness shift.
    image *= np.float32(-g.contrast)
    image += np.float32(0.5 + g.contrast * 0.5 + g.brightness)
    image += grain(rng, *density.shape) * np.float32(g.noise_sigma)
    return np.clip(image, 0.0, 1.0, out=image)
