"""Window/level in the image's own units (lrclr.display.windowing): the file's windows and VOI LUT
as the default and as presets, HU presets for CT-like rescales, histogram presets for radiographs."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from pydicom.dataset import Dataset

from lrclr.demo import load_gallery
from lrclr.display.windowing import FILE_LUT, HU_PRESETS, dragged_window, voi_window, window_scale, windowed
from lrclr.imaging.reading import load_image
from tests.support.images import dicom_bytes, encode, ramp


def _default(image):
    scale = window_scale(image)
    preset = scale.default
    return scale, windowed(image, scale, preset.center, preset.width, preset)


def test_a_png_is_windowed_in_its_grey_levels_and_its_default_is_the_picture_as_decoded():
    pixels = np.tile(np.arange(256, dtype=np.uint8), (8, 1))
    image = load_image(encode(Image.fromarray(pixels), "PNG"))
    scale, shown = _default(image)
    assert scale.unit == "grey level (8-bit)" and (scale.low, scale.high) == (0.0, 255.0) and scale.step == 1
    np.testing.assert_allclose(shown, image.pixels, atol=1e-6)
    assert (scale.default.center, scale.default.width) == (128, 256)  # whole numbers: on the sliders' grid
    # Level 100, width 50 grey levels (PS3.3's linear window): 75 and below black, 125 and above white.
    narrow = windowed(image, scale, 100, 50)
    assert narrow[0, 75] == 0 and narrow[0, 125] == 1 and narrow[0, 100] == pytest.approx(0.5, abs=0.02)


def test_a_16_bit_png_has_16_bit_grey_levels():
    pixels = np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (4, 1))
    image = load_image(encode(Image.fromarray(pixels), "PNG"))
    scale = window_scale(image)
    assert scale.unit == "grey level (16-bit)" and scale.high == 65535


def test_the_files_window_is_the_default_in_stored_values_and_reproduces_the_decoded_pixels():
    data = dicom_bytes(ramp(16, 256), BitsStored=12, HighBit=11, WindowCenter=[2048, 1000],
                       WindowWidth=[1000, 400], WindowCenterWidthExplanation=["SOFT", "DETAIL"])
    image = load_image(data)
    scale, shown = _default(image)
    assert scale.unit == "stored value"
    assert scale.default.name == "File window 1: SOFT (C 2048, W 1000)" and scale.default.source == "file"
    assert scale.presets[1].name == "File window 2: DETAIL (C 1000, W 400)"
    np.testing.assert_allclose(shown, image.pixels, atol=1e-6)  # what the decoder showed (float32 rounding apart)
    assert scale.low <= 0 and scale.high >= 4095
    second = scale.presets[1]
    values = image.modality.values
    detail = windowed(image, scale, second.center, second.width, second)
    assert detail[values <= 800].max() == 0 and detail[values >= 1200].min() == 1


def test_a_ct_like_rescale_windows_in_hounsfield_units_with_the_usual_presets():
    stored = ramp(8, 256, high=3000)
    image = load_image(dicom_bytes(stored, BitsStored=12, HighBit=11, RescaleSlope=1, RescaleIntercept=-1024,
                                   RescaleType="HU"))
    scale = window_scale(image)
    assert scale.unit == "HU" and scale.low <= -1024 and scale.high >= 1976
    lung = next(p for p in scale.presets if p.name.startswith("Lung"))
    assert (lung.center, lung.width) == HU_PRESETS["Lung"] and lung.source == "HU"
    shown = windowed(image, scale, lung.center, lung.width, lung)
    hu = image.modality.values
    # -600 HU is mid-grey in the lung window, air (-1024) dark grey, +150 HU and above white.
    assert shown[np.abs(hu + 600) < 6].mean() == pytest.approx(0.5, abs=0.01)
    assert shown[hu == -1024].max() == pytest.approx((-1024 + 600.5) / 1499 + 0.5, abs=1e-6)
    assert shown[hu >= 151].min() == 1


def test_the_files_voi_lut_is_the_default_preset_and_shows_the_decoded_pixels():
    lut = Dataset()
    lut.LUTDescriptor = [4096, 0, 12]
    lut.add_new(0x00283006, "US", [0] * 2048 + [4095] * 2048)
    image = load_image(dicom_bytes(ramp(16, 64), BitsStored=12, HighBit=11, VOILUTSequence=[lut],
                                   WindowCenter=1000, WindowWidth=500))
    scale, shown = _default(image)
    assert scale.default.name == FILE_LUT and scale.default.uses_lut
    assert (scale.default.center, scale.default.width) == (2048, 4096)  # the LUT's input range
    assert scale.presets[1].name.startswith("File window 1")
    np.testing.assert_array_equal(shown, image.pixels)


def test_monochrome1_is_shown_bone_white_and_its_lung_preset_covers_the_high_stored_values():
    stored = ramp(16, 256)
    plain = load_image(dicom_bytes(stored, BitsStored=12, HighBit=11))
    negative = load_image(dicom_bytes(stored, BitsStored=12, HighBit=11, PhotometricInterpretation="MONOCHROME1"))
    for image in (plain, negative):
        _, shown = _default(image)
        np.testing.assert_allclose(shown, image.pixels, atol=1e-6)
    lung = lambda image: next(p for p in window_scale(image).presets if p.name.startswith("Lung"))
    mediastinum = lambda image: next(p for p in window_scale(image).presets if p.name.startswith("Mediastinum"))
    # Lungs are dark on the display: low stored values on MONOCHROME2, high ones on MONOCHROME1.
    assert lung(plain).center < mediastinum(plain).center
    assert lung(negative).center > mediastinum(negative).center
    assert "histogram" in lung(plain).name


@pytest.mark.parametrize("case_id", ["dicom-01-jpeg", "dicom-02-monochrome1"])
def test_the_demo_dicoms_have_no_window_so_their_default_is_the_full_range(case_id):
    case = next(c for c in load_gallery() if c.id == case_id)
    image = case.load_image()
    scale, shown = _default(image)
    assert scale.default.name == "Full range (0 to 255)" and scale.unit == "stored value"
    np.testing.assert_allclose(shown, image.pixels, atol=1e-6)


def test_windowing_never_touches_the_pixels_the_model_reads():
    image = load_image(dicom_bytes(ramp(), BitsStored=12, HighBit=11, WindowCenter=100, WindowWidth=50))
    before = image.pixels.copy()
    scale = window_scale(image)
    windowed(image, scale, 3000, 10)
    np.testing.assert_array_equal(image.pixels, before)


def test_a_file_window_off_the_whole_numbers_gets_half_steps():
    image = load_image(dicom_bytes(ramp(), BitsStored=12, HighBit=11, WindowCenter=2047.5, WindowWidth=4096))
    assert window_scale(image).step == 0.5
    assert window_scale(load_image(dicom_bytes(ramp(), BitsStored=12, HighBit=11))).step == 1


def test_clamp_keeps_a_window_within_the_sliders():
    image = load_image(dicom_bytes(ramp(), BitsStored=12, HighBit=11))
    scale = window_scale(image)
    assert scale.clamp(1e9, -5) == (scale.high, scale.step)
    assert scale.clamp(100, 1e9) == (100, scale.max_width)


@pytest.mark.parametrize("function", ["LINEAR", "LINEAR_EXACT", "SIGMOID"])
def test_voi_functions_put_the_center_at_mid_grey(function):
    assert float(voi_window(np.array([40.0]), 40.5 if function == "LINEAR" else 40.0, 100, function)[0]) == \
        pytest.approx(0.5, abs=1e-6)


def test_a_windowing_drag_widens_to_the_right_and_darkens_downwards():
    scale = window_scale(load_image(dicom_bytes(ramp(), BitsStored=12, HighBit=11)))
    assert dragged_window(scale, 2000, 1000, 0.0, 0.0) == (2000, 1000)
    center, width = dragged_window(scale, 2000, 1000, 0.5, 0.0)
    assert center == 2000 and width == round(1000 * np.e)  # right: wider, on the whole-number grid
    assert dragged_window(scale, 2000, 1000, -0.5, 0.0)[1] == round(1000 / np.e)
    assert dragged_window(scale, 2000, 1000, 0.0, 0.1) == (2100, 1000)  # down: a higher level, darker
    negative = window_scale(load_image(dicom_bytes(ramp(), BitsStored=12, HighBit=11,
                                                   PhotometricInterpretation="MONOCHROME1")))
    assert dragged_window(negative, 2000, 1000, 0.0, 0.1) == (1900, 1000)  # darker on MONOCHROME1 too
    assert dragged_window(scale, 2000, 1000, 0.0, 100.0)[0] == scale.high  # kept within the sliders
    assert dragged_window(scale, 2000, 1000, -100.0, 0.0)[1] == scale.step
