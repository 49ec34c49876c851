"""Distance and cardiothoracic ratio (lrclr.display.measurements): millimetres from the spacing on
each axis, "pixels" without one, and the JSON record."""

from __future__ import annotations

import json

import pytest

from lrclr.display.measurements import (
    Spacing,
    cardiothoracic_ratio,
    distance,
    measurement_records,
    scaled_spacing,
    width,
)


def test_a_distance_in_millimetres_uses_the_column_spacing_across_and_the_row_spacing_down():
    spacing = Spacing(row_mm=0.2, column_mm=0.1, source="DICOM PixelSpacing")
    across = distance((10, 10), (110, 10), spacing)
    down = distance((10, 10), (10, 110), spacing)
    assert across.millimetres == pytest.approx(10.0) and down.millimetres == pytest.approx(20.0)
    diagonal = distance((0, 0), (30, 40), spacing)
    assert diagonal.pixels == pytest.approx(50) and diagonal.millimetres == pytest.approx((3**2 + 8**2) ** 0.5)
    assert diagonal.label() == "8.5 mm" and diagonal.spacing_source == "DICOM PixelSpacing"


def test_without_a_spacing_a_distance_is_in_pixels_and_says_so():
    measured = distance((0, 0), (3, 4), None)
    assert measured.millimetres is None and measured.unit == "pixels" and measured.label() == "5.0 pixels"


def test_the_nih_spacing_is_scaled_per_axis_from_the_original_film():
    # 00005610_000: 0.171 mm on a 2500 x 2048 film, stored at 512 x 512.
    spacing = scaled_spacing(0.171, (2500, 2048), (512, 512), "NIH labels")
    assert spacing.column_mm == pytest.approx(0.171 * 2500 / 512)
    assert spacing.row_mm == pytest.approx(0.171 * 2048 / 512)


def test_the_cardiothoracic_ratio_takes_horizontal_widths_and_needs_no_spacing():
    cardiac = width((200, 300), (330, 310), None)  # the slight tilt does not count
    thoracic = width((100, 280), (360, 280), None)
    ratio = cardiothoracic_ratio(cardiac, thoracic)
    assert cardiac.pixels == 130 and thoracic.pixels == 260
    assert ratio.ratio == pytest.approx(0.5) and ratio.label() == "CTR 0.50"
    spaced = cardiothoracic_ratio(width((330, 0), (200, 0), Spacing(0.5, 0.25, "x")),
                                  width((100, 0), (360, 0), Spacing(0.5, 0.25, "x")))
    assert spaced.ratio == pytest.approx(0.5) and spaced.cardiac.millimetres == pytest.approx(32.5)
    assert cardiothoracic_ratio(cardiac, width((5, 5), (5, 9), None)).ratio is None


def test_the_json_record_holds_points_lengths_units_and_the_spacings_source():
    spacing = Spacing(0.2, 0.2, "DICOM PixelSpacing")
    record = measurement_records([distance((0, 0), (10, 0), spacing)],
                                 cardiothoracic_ratio(width((1, 0), (4, 0), spacing), width((0, 0), (8, 0), spacing)),
                                 spacing)
    json.dumps(record)  # plain JSON
    assert record["unit"] == "mm" and record["pixel_spacing_source"] == "DICOM PixelSpacing"
    assert record["coordinates"] == "original image pixels"
    assert record["distances"][0]["millimetres"] == 2.0 and record["distances"][0]["start"] == [0.0, 0.0]
    assert record["cardiothoracic_ratio"]["ratio"] == 0.375
    plain = measurement_records([distance((0, 0), (1, 0), None)], None, None)
    assert plain["unit"] == "pixels" and plain["pixel_spacing_mm"] is None and plain["cardiothoracic_ratio"] is None


@pytest.mark.parametrize("bad", [(0, 1), (1, -1), (float("nan"), 1), (float("inf"), 1)])
def test_a_spacing_must_be_positive_and_finite(bad):
    with pytest.raises(ValueError):
        Spacing(*bad, source="x")


def test_the_spacing_of_a_dicom_comes_from_its_header_and_says_which_field():
    from lrclr.display.measurements import image_spacing
    from lrclr.imaging.reading import load_image
    from tests.support.images import dicom_bytes, ramp

    pixel = image_spacing(load_image(dicom_bytes(ramp(), PixelSpacing=[0.2, 0.1])))
    assert (pixel.row_mm, pixel.column_mm, pixel.source) == (0.2, 0.1, "DICOM PixelSpacing")
    imager = image_spacing(load_image(dicom_bytes(ramp(), ImagerPixelSpacing=[0.15, 0.15])))
    assert imager.source.startswith("DICOM ImagerPixelSpacing (at the detector")
    fallback = Spacing(0.5, 0.5, "labels")
    assert image_spacing(load_image(dicom_bytes(ramp())), fallback) is fallback
    assert image_spacing(load_image(dicom_bytes(ramp()))) is None
