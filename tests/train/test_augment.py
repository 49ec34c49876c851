"""Radiograph augmentation: geometry shared by pixels, masks and boxes; laterality-aware flips."""

from __future__ import annotations

import numpy as np
import pytest

from lrclr.reports.laterality import swap_laterality
from train.training.augment import RadiographAugment, hflip
from train.datasets.sample import Sample

IDENTITY = dict(max_rotation_deg=0.0, max_translate=0.0, scale=(1.0, 1.0), gamma=(1.0, 1.0),
                contrast=(1.0, 1.0), brightness=(0.0, 0.0), noise_std=(0.0, 0.0))


def _square_sample(report: str = "Left upper lobe nodule.") -> Sample:
    """A dark 96x128 image with a bright square on the image left, its mask and its box."""
    pixels = np.full((96, 128), 0.1, dtype=np.float32)
    pixels[30:50, 20:40] = 0.9
    mask = np.zeros(pixels.shape, dtype=bool)
    mask[30:50, 20:40] = True
    return Sample("img", "pat", pixels, report, {"Nodule": 1}, masks={"Nodule": mask},
                  boxes={"Nodule": [(20.0, 30.0, 40.0, 50.0)]})


def test_degenerate_ranges_give_the_identity():
    sample = _square_sample()
    out = RadiographAugment(**IDENTITY)(sample, np.random.default_rng(0))
    np.testing.assert_array_equal(out.pixels, sample.pixels)
    np.testing.assert_array_equal(out.masks["Nodule"], sample.masks["Nodule"])
    assert out.boxes == sample.boxes and out.report == sample.report


@pytest.mark.parametrize("seed", range(6))
def test_masks_and_boxes_move_with_the_pixels(seed):
    augment = RadiographAugment(max_rotation_deg=10, max_translate=0.1, scale=(0.9, 1.1), gamma=(1, 1),
                                contrast=(1, 1), brightness=(0, 0), noise_std=(0, 0))
    out = augment(_square_sample(), np.random.default_rng(seed))
    mask = out.masks["Nodule"]
    bright = out.pixels > 0.5
    assert mask.sum() > 300
    # The mask covers the bright square (interpolated edges aside) and nothing far from it.
    assert (out.pixels[mask] > 0.45).mean() > 0.95
    assert bright[~mask].sum() <= 0.1 * bright.sum()
    (x0, y0, x1, y1), = out.boxes["Nodule"]
    rows, cols = np.nonzero(mask)
    assert x0 <= cols.min() + 1 and cols.max() + 1 <= x1 + 1 and y0 <= rows.min() + 1 and rows.max() + 1 <= y1 + 1
    assert (x1 - x0) * (y1 - y0) < 2.0 * mask.sum()  # re-fitted, not blown up


def test_same_generator_seed_same_output_and_ranges_respected():
    augment = RadiographAugment(noise_std=(0.0, 0.02))
    a = augment(_square_sample(), np.random.default_rng(42))
    b = augment(_square_sample(), np.random.default_rng(42))
    c = augment(_square_sample(), np.random.default_rng(43))
    np.testing.assert_array_equal(a.pixels, b.pixels)
    assert not np.array_equal(a.pixels, c.pixels)
    assert a.pixels.dtype == np.float32 and 0.0 <= a.pixels.min() and a.pixels.max() <= 1.0


def test_no_flip_by_default():
    augment = RadiographAugment(**IDENTITY)
    for seed in range(20):
        assert augment(_square_sample(), np.random.default_rng(seed)).report == "Left upper lobe nodule."


def test_flip_mirrors_mask_box_and_report():
    out = RadiographAugment(**IDENTITY, hflip_probability=1.0)(_square_sample(), np.random.default_rng(0))
    assert out.report == "Right upper lobe nodule."
    cols = np.nonzero(out.masks["Nodule"])[1]
    assert cols.min() >= 64  # the square was on the left half; now it is on the right half
    assert out.pixels[30:50, 88:108].min() == pytest.approx(0.9)
    assert out.boxes["Nodule"] == [(88.0, 30.0, 108.0, 50.0)]
    np.testing.assert_array_equal(hflip(out).pixels, _square_sample().pixels)


@pytest.mark.parametrize("text, expected", [
    ("Left lower lobe opacity.", "Right lower lobe opacity."),
    ("RIGHT pleural effusion; left-sided chest tube.", "LEFT pleural effusion; right-sided chest tube."),
    ("Mediastinal shift leftward. Rightmost rib.", "Mediastinal shift rightward. Leftmost rib."),
    ("Mild levoscoliosis.", "Mild dextroscoliosis."),
    ("Dextroconvex curvature.", "Levoconvex curvature."),
    ("L lung base opacity, R hemidiaphragm elevated.", "R lung base opacity, L hemidiaphragm elevated."),
    ("Effusions, R>L.", "Effusions, L>R."),
    ("Compression deformity of L1. Bright spot. Copyright.", "Compression deformity of L1. Bright spot. Copyright."),
    ("No focal consolidation.", "No focal consolidation."),
])
def test_swap_laterality(text, expected):
    assert swap_laterality(text) == expected
    assert swap_laterality(swap_laterality(text)) == text


def test_invalid_ranges_are_refused():
    with pytest.raises(ValueError, match="low > high"):
        RadiographAugment(gamma=(1.2, 0.8))
    with pytest.raises(ValueError, match="hflip_probability"):
        RadiographAugment(hflip_probability=1.5)


def test_fixed_test_time_views_start_with_the_image_and_move_it_as_named():
    from train.evaluation.augmented_views import VIEWS, fixed_views

    image = np.zeros((100, 100), np.float32)
    image[40:60, 40:60] = 1.0
    assert fixed_views(1) == (VIEWS[0],) and np.array_equal(VIEWS[0].apply(image), image)
    right = next(v for v in VIEWS if v.name == "shift right 4%").apply(image)
    assert np.array_equal(right[40:60, 44:64], image[40:60, 40:60])  # 4 px at 100 px
    zoomed = next(v for v in VIEWS if v.name == "zoom in 5%").apply(image)
    assert zoomed.sum() == pytest.approx(image.sum() * 1.05 ** 2, rel=0.05)
    with pytest.raises(ValueError):
        fixed_views(len(VIEWS) + 1)
