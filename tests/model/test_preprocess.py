"""Letterboxing into the model input, and mapping grid maps back onto the original image."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

from lrclr.model.explain import grid_to_image
from lrclr.imaging.reading import load_image
from lrclr.model.letterbox import letterbox_geometry, letterbox_pixels
from tests.support.paths import TEST_DATA


def _model_input(path) -> np.ndarray:
    tensor, _ = letterbox_pixels(load_image(path).pixels, 320)
    return tensor.numpy().ravel()


def test_dicom_photometric_interpretations_give_consistent_model_inputs(tmp_path):
    mono2 = _model_input(TEST_DATA / "siim_pneumothorax_example.dcm")
    # The shared MONOCHROME1 example stores the SAME pixel values with only the photometric tag
    # changed, so read correctly it is the exact negative of the MONOCHROME2 image.
    mono1_same_values = _model_input(TEST_DATA / "monochrome1_example.dcm")
    np.testing.assert_allclose(mono1_same_values, 1.0 - mono2, atol=1e-5)
    # A true MONOCHROME1 encoding of the same radiograph (values inverted, tag set) must give the
    # same model input as the MONOCHROME2 original.
    dataset = pydicom.dcmread(TEST_DATA / "siim_pneumothorax_example.dcm")
    stored = dataset.pixel_array
    dataset.PixelData = (stored.max() - stored).astype(stored.dtype).tobytes()
    dataset.PhotometricInterpretation = "MONOCHROME1"
    dataset.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    dataset.pop("LossyImageCompression", None)
    dataset.save_as(tmp_path / "true_mono1.dcm", enforce_file_format=True)
    mono1_true = _model_input(tmp_path / "true_mono1.dcm")
    assert np.corrcoef(mono1_true, mono2)[0, 1] > 0.99


def test_letterbox_keeps_aspect_ratio_and_pads_with_black():
    pixels = np.ones((100, 200), dtype=np.float32)
    tensor, geometry = letterbox_pixels(pixels, 64)
    assert geometry.content_size == (64, 32) and (geometry.pad_left, geometry.pad_top) == (0, 16)
    assert tensor.shape == (1, 64, 64)
    assert float(tensor[0, :16].max()) == 0.0 and float(tensor[0, 48:].max()) == 0.0
    assert float(tensor[0, 16:48].min()) == pytest.approx(1.0)


def test_grid_map_lands_on_the_pixels_its_cell_covers():
    geometry = letterbox_geometry((2000, 1600), 64)
    grid = np.zeros((4, 4), dtype=np.float32)
    grid[2, 1] = 1.0
    image_map = grid_to_image(grid, geometry)
    assert image_map.shape == (1600, 2000)
    x0, y0, x1, y1 = geometry.cell_box(2, 1, (4, 4))
    peak_y, peak_x = np.unravel_index(image_map.argmax(), image_map.shape)
    assert x0 <= peak_x <= x1 and y0 <= peak_y <= y1


def test_valid_cells_follow_the_content():
    geometry = letterbox_geometry((400, 100), 64)  # content 64 x 16, rows 24..40 of the input
    valid = geometry.valid_cells((4, 4))
    assert valid.tolist() == [[False] * 4, [True] * 4, [True] * 4, [False] * 4]


def test_content_cells_fall_back_to_partly_covered_then_all_cells_for_extreme_strips():
    """The one rule region selection and the pointing game share (issue #16: it was written twice)."""
    square = letterbox_geometry((512, 512), 448)
    assert square.content_cells((14, 14), at_least=16).all()
    strip = letterbox_geometry((4000, 100), 448)  # a strip: about one row of cells shows content
    full = strip.valid_cells((14, 14))
    partly = strip.content_cells((14, 14), at_least=16)
    assert full.sum() < 16 <= partly.sum() and (partly >= full).all()
    assert strip.content_cells((14, 14), at_least=1000).all()  # more than any grid holds: every cell
