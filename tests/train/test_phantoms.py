"""Phantom generator: determinism, masks inside the body and where side/zone say, visible findings,
any size, reports from templates (no data) and from real OpenI reports (shared data)."""

from __future__ import annotations

import numpy as np
import pytest

from train.synthetic.anatomy import render_anatomy, sample_geometry
from train.synthetic.raster import make_grid
from train.synthetic.reports import template_report
from train.synthetic.phantoms import FINDING_NAMES, FindingSpec, Phantom, generate_phantom

LATERAL = ("Effusion", "Consolidation", "Nodule", "Mass", "Pneumothorax", "Atelectasis")


def _centroid(mask: np.ndarray) -> tuple[float, float]:
    rows, cols = np.nonzero(mask)
    return rows.mean() / mask.shape[0], cols.mean() / mask.shape[1]


def _lung_rows(phantom: Phantom, side: str) -> tuple[float, float]:
    """Top and bottom of one lung field (normalised), from the phantom's own lung mask."""
    half = phantom.lung_mask.copy()
    middle = phantom.lung_mask.shape[1] // 2
    if side == "left":  # patient's left = image right
        half[:, :middle] = False
    else:
        half[:, middle:] = False
    rows = np.flatnonzero(half.any(axis=1))
    return rows[0] / half.shape[0], rows[-1] / half.shape[0]


def test_same_seed_gives_identical_phantom_and_different_seeds_differ():
    a, b = generate_phantom(7), generate_phantom(7)
    assert np.array_equal(a.image, b.image)
    assert a.masks.keys() == b.masks.keys()
    assert all(np.array_equal(a.masks[k], b.masks[k]) for k in a.masks)
    assert a.report == b.report and a.findings == b.findings
    c = generate_phantom(8)
    assert not np.array_equal(a.image, c.image)


def test_image_type_range_and_radiograph_look():
    phantom = generate_phantom(3, findings=[])
    image = phantom.image
    assert image.dtype == np.float32 and image.shape == (320, 320)
    assert 0.0 <= image.min() and image.max() <= 1.0
    assert phantom.masks == {} and phantom.findings == ()
    lungs = image[phantom.lung_mask].mean()
    outside = image[~phantom.body_mask].mean()
    mediastinum = image[100:170, 155:165].mean()  # the midline between the lungs
    assert outside < lungs < mediastinum  # air black, lungs dark, mediastinum bright


@pytest.mark.parametrize("size", [(256, 320), (320, 256), 96, (200, 333)])
def test_any_size_including_non_square(size):
    phantom = generate_phantom(1, size, findings=[FindingSpec("Effusion", "left"),
                                                  FindingSpec("Nodule", "right", "upper")])
    shape = (size, size) if isinstance(size, int) else size
    assert phantom.image.shape == shape and phantom.body_mask.shape == shape
    assert all(mask.shape == shape and mask.any() for mask in phantom.masks.values())


def test_size_too_small_is_refused():
    with pytest.raises(ValueError):
        generate_phantom(0, 8)


@pytest.mark.parametrize("seed", range(6))
def test_random_phantom_masks_lie_inside_the_body(seed):
    phantom = generate_phantom(seed)
    for name, mask in phantom.masks.items():
        assert mask.any(), name
        assert not (mask & ~phantom.body_mask).any(), name


@pytest.mark.parametrize("name", LATERAL)
@pytest.mark.parametrize("side", ["left", "right"])
def test_mask_is_on_the_patients_side(name, side):
    phantom = generate_phantom(11, findings=[FindingSpec(name, side)])
    _, column = _centroid(phantom.masks[name])
    # Radiological convention: the patient's left is on the image right.
    assert (column > 0.5) if side == "left" else (column < 0.5)
    assert phantom.findings[0].side == side


@pytest.mark.parametrize("name", ["Consolidation", "Nodule", "Mass", "Atelectasis", "Pneumothorax"])
@pytest.mark.parametrize("zone", ["upper", "middle", "lower"])
def test_mask_is_in_its_zone(name, zone):
    for seed, severity in ((2, "mild"), (5, "severe")):
        phantom = generate_phantom(seed, findings=[FindingSpec(name, "right", zone, severity)])
        row, _ = _centroid(phantom.masks[name])
        top, bottom = _lung_rows(phantom, "right")
        third = (bottom - top) / 3
        index = ("upper", "middle", "lower").index(zone)
        assert top + index * third <= row <= top + (index + 1) * third, (seed, severity)


def test_effusion_sits_at_the_base_and_pneumothorax_defaults_to_the_apex():
    effusion = generate_phantom(4, findings=[FindingSpec("Effusion", "left", severity="severe")])
    top, bottom = _lung_rows(effusion, "left")
    assert _centroid(effusion.masks["Effusion"])[0] > top + 2 * (bottom - top) / 3
    pneumo = generate_phantom(4, findings=[FindingSpec("Pneumothorax", "right")])
    assert pneumo.findings[0].zone == "upper"


@pytest.mark.parametrize("name", FINDING_NAMES)
def test_each_finding_changes_the_image_where_its_mask_is(name):
    normal = generate_phantom(21, findings=[])
    spec = FindingSpec(name, None if name in ("Cardiomegaly", "Edema") else "left",
                       "lower" if name == "Effusion" else None, "moderate")
    abnormal = generate_phantom(21, findings=[spec])
    mask = abnormal.masks[name]
    assert mask.sum() > 20
    inside = np.abs(abnormal.image[mask].mean() - normal.image[mask].mean())
    assert inside > 0.03, f"{name}: mean change {inside:.3f} inside its mask"
    if name != "Cardiomegaly":  # the enlarged heart changes the anatomy everywhere around it
        assert np.abs(abnormal.image[~mask] - normal.image[~mask]).mean() < inside / 4


def test_severity_grows_the_mask():
    for name in ("Effusion", "Cardiomegaly", "Nodule", "Mass", "Pneumothorax", "Edema"):
        sizes = [generate_phantom(9, findings=[FindingSpec(name, "right" if name in LATERAL else None,
                                                           None, sev)]).masks[name].sum()
                 for sev in ("mild", "moderate", "severe")]
        assert sizes[0] < sizes[1] < sizes[2], (name, sizes)


def test_bilateral_draws_both_sides_into_one_mask():
    phantom = generate_phantom(5, findings=[FindingSpec("Effusion", "bilateral")])
    mask = phantom.masks["Effusion"]
    middle = mask.shape[1] // 2
    assert mask[:, :middle].any() and mask[:, middle:].any()


def test_invalid_specs_are_refused():
    with pytest.raises(ValueError):
        FindingSpec("Hernia")
    with pytest.raises(ValueError):
        FindingSpec("Nodule", side="up")
    with pytest.raises(ValueError):
        FindingSpec("Effusion", "left", "upper")
    with pytest.raises(ValueError):
        FindingSpec("Mass", severity="huge")


def test_template_reports_state_drawn_findings_and_deny_only_the_others():
    phantom = generate_phantom(2, findings=[FindingSpec("Effusion", "left", severity="mild")])
    assert phantom.report_provenance == "template"
    assert "left pleural effusion" in phantom.report.lower()
    assert "No pleural effusion" not in phantom.report
    assert "No pneumothorax" in phantom.report
    report = template_report(())
    assert "Heart size is normal." in report.text


def test_anatomy_heart_is_on_the_image_right():
    grid = make_grid(320, 320)
    rng = np.random.default_rng(0)
    anatomy = render_anatomy(sample_geometry(rng), grid, rng)
    _, column = _centroid(anatomy.heart)
    assert column > 0.5


@pytest.fixture(scope="module")
def openi_bank():
    from tests.support.paths import require_shared
    path = require_shared("openi-reports/NLMCXR_reports.tgz")
    from train.synthetic.phantoms import ReportBank
    return ReportBank.from_openi(path, with_sentences=False)


@pytest.mark.shared_data
def test_real_reports_describe_what_the_phantom_draws(openi_bank):
    assert openi_bank.counts()["abnormal"] > 50 and openi_bank.counts()["normal"] > 100
    phantom = generate_phantom(0, findings=[FindingSpec("Cardiomegaly", severity="mild")],
                               report_bank=openi_bank)
    assert phantom.report_provenance.startswith("openi:")
    drawn_by_report = 0
    for seed in range(40):
        phantom = generate_phantom(seed, 64, report_bank=openi_bank)
        assert phantom.report_provenance.startswith("openi:")
        drawn_by_report += bool(phantom.findings)
    assert drawn_by_report > 20
