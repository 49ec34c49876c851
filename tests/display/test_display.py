"""Display-only image operations (lrclr.display.operations): area resampling, CLAHE, outlines."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from lrclr.display import operations as display
from lrclr.display import figures as viz
from lrclr.model.letterbox import prepare_images


def test_area_resampling_averages_the_pixels_each_output_pixel_covers():
    # Two output pixels over three input pixels: the middle one is split half and half.
    row = np.array([[0.0, 1.0, 2.0]], dtype=np.float32)
    np.testing.assert_allclose(display.area_resize(row, (2, 1)), [[(0 + 0.5) / 1.5, (0.5 + 2) / 1.5]], rtol=1e-6)
    # A whole-number factor gives exactly the block means.
    image = np.random.default_rng(0).random((64, 48)).astype(np.float32)
    blocks = image.reshape(16, 4, 12, 4).mean(axis=(1, 3))
    np.testing.assert_allclose(display.area_resize(image, (12, 16)), blocks, atol=1e-6)


def test_area_resampling_does_not_alias_fine_stripes():
    """One-pixel stripes (rib edges at the limit of the display) halved: grey, not stripes or black."""
    stripes = np.tile(np.array([0.0, 1.0], dtype=np.float32), (100, 50))  # 100 x 100
    shrunk = display.downsample(stripes, 50)
    assert shrunk.shape == (50, 50)
    np.testing.assert_allclose(shrunk, 0.5, atol=1e-6)


def test_the_display_keeps_its_size_rule_and_shrinks_by_area():
    pixels = np.random.default_rng(1).random((2000, 1500)).astype(np.float32)
    shown = viz.to_display_rgb(pixels)
    assert shown.size == (768, 1024)  # the longest side at DISPLAY_MAX_SIDE, the aspect kept
    expected = np.round(display.area_resize(pixels, (768, 1024)) * 255)
    assert np.abs(np.asarray(shown)[..., 0].astype(float) - expected).max() <= 1
    assert viz.to_display_rgb(pixels[:10, :20]).size == (20, 10)  # small images are never enlarged


def _low_contrast_film() -> np.ndarray:
    """A dim left half and a bright right half, each with faint structure that CLAHE should lift."""
    rng = np.random.default_rng(2)
    film = np.where(np.arange(256) < 128, 0.25, 0.7)[None, :].repeat(256, axis=0)
    return (film + 0.02 * np.sin(np.arange(256) / 3.0)[:, None] + 0.005 * rng.standard_normal((256, 256))).astype(np.float32)


def test_clahe_raises_local_contrast_on_the_display_and_leaves_the_model_input_alone():
    pixels = _low_contrast_film()
    original = pixels.copy()
    model_input, _ = prepare_images([pixels], 64)
    plain = np.asarray(viz.to_display_rgb(pixels))[..., 0].astype(float)
    enhanced = np.asarray(viz.to_display_rgb(pixels, clahe=True))[..., 0].astype(float)
    assert enhanced.shape == plain.shape
    # The faint rows' structure within the dim half spreads over more grey levels.
    assert enhanced[:, 20:100].std(axis=0).mean() > 2 * plain[:, 20:100].std(axis=0).mean()
    np.testing.assert_array_equal(pixels, original)
    assert torch.equal(prepare_images([pixels], 64)[0], model_input)
    inverted = np.asarray(viz.to_display_rgb(pixels, invert=True, clahe=True))[..., 0].astype(float)
    np.testing.assert_array_equal(inverted, 255 - enhanced)


def test_clahe_takes_only_8_bit_display_images():
    with pytest.raises(ValueError, match="8-bit"):
        display.clahe(np.zeros((8, 8), dtype=np.uint16))


def test_a_mask_outline_follows_the_mask_edge_at_the_display_scale():
    mask = np.zeros((400, 400), dtype=bool)
    mask[100:300, 100:300] = True  # a square in original pixels
    base = Image.new("RGB", (200, 200), (0, 0, 0))  # shown at half size
    drawn = np.asarray(display.mask_outline(base, mask, (0, 200, 80), thickness=2)).sum(axis=-1)
    assert drawn[100, 50] > 0 and drawn[50, 100] > 0 and drawn[149, 100] > 0  # on the square's edges
    assert drawn[100, 100] == 0 and drawn[10, 10] == 0 and drawn[100, 170] == 0  # inside and outside untouched


def test_the_ground_truth_mask_overlay_is_tinted_and_outlined():
    mask = np.zeros((100, 100), dtype=bool)
    mask[20:80, 20:80] = True
    base = Image.new("RGB", (100, 100), (0, 0, 0))
    shown = np.asarray(viz.mask_overlay(base, mask, opacity=0.3)).astype(int)
    assert shown[50, 50, 1] == round(200 * 0.3)  # tinted inside
    assert shown[50, 20, 1] > shown[50, 50, 1]  # the edge drawn at full strength
    assert shown[5, 5].sum() == 0

