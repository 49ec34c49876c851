"""Flip/rotate of the display (lrclr.display.orientation): the picture, arrays drawn on it, points
and boxes all move by the same transform, and picked points come back to the original pixels."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from PIL import Image

from lrclr.display.orientation import ROTATIONS, Orientation

ALL = [Orientation(r, f) for r, f in itertools.product(ROTATIONS, (False, True))]
SIZE = (7, 4)  # width, height: not square, so a wrong axis swap shows


def _picture() -> np.ndarray:
    return np.arange(SIZE[0] * SIZE[1], dtype=np.uint8).reshape(SIZE[1], SIZE[0]) * 9


@pytest.mark.parametrize("orientation", ALL, ids=str)
def test_the_picture_and_an_array_drawn_on_it_turn_together(orientation):
    pixels = _picture()
    picture = np.asarray(orientation.image(Image.fromarray(pixels)))
    np.testing.assert_array_equal(picture, orientation.array(pixels))
    assert picture.shape[::-1] == orientation.size(SIZE)


@pytest.mark.parametrize("orientation", ALL, ids=str)
def test_each_pixel_lands_where_point_says_and_comes_back(orientation):
    pixels = _picture()
    turned = orientation.array(pixels)
    for row, column in itertools.product(range(SIZE[1]), range(SIZE[0])):
        x, y = orientation.point(column + 0.5, row + 0.5, SIZE)  # the pixel's centre
        assert turned[int(y), int(x)] == pixels[row, column]
        assert orientation.to_original(x, y, SIZE) == pytest.approx((column + 0.5, row + 0.5))


@pytest.mark.parametrize("orientation", ALL, ids=str)
def test_a_box_covers_the_same_pixels_once_oriented(orientation):
    mask = np.zeros((SIZE[1], SIZE[0]), dtype=bool)
    mask[1:3, 2:6] = True  # the box (2, 1, 6, 3) in continuous coordinates
    x0, y0, x1, y1 = orientation.box((2, 1, 6, 3), SIZE)
    turned = orientation.array(mask)
    expected = np.zeros_like(turned)
    expected[int(y0):int(y1), int(x0):int(x1)] = True
    np.testing.assert_array_equal(turned, expected)


def test_rotate_right_then_flip_is_what_the_screen_shows():
    # A flip after a quarter turn mirrors the screen's left-right, which is the image's up-down.
    orientation = Orientation().rotated_right().flipped_horizontally()
    pixels = _picture()
    on_screen = np.rot90(pixels, k=-1)[:, ::-1]
    np.testing.assert_array_equal(orientation.array(pixels), on_screen)
    assert Orientation(90).rotated_right().rotated_right().rotated_right() == Orientation()
    assert Orientation(0, True).flipped_horizontally() == Orientation()


def test_describe_and_validation():
    assert Orientation().describe() == "" and Orientation().is_identity
    assert Orientation(90, True).describe() == "flipped left-right and rotated 90° clockwise"
    with pytest.raises(ValueError):
        Orientation(45)


# ---- what the viewer draws on an oriented display --------------------------------------------

def _wide_explanation():
    """A 300 x 200 image with one region box (the made explanations are square)."""
    from lrclr.model.explain import Explanation, RegionExplanation
    from lrclr.model.letterbox import letterbox_geometry

    region = RegionExplanation(1, 0.9, (0, 0), (30.0, 20.0, 120.0, 80.0), ())
    return Explanation("test", "", False, letterbox_geometry((300, 200), 64), (4, 4), (), (region,), ())


@pytest.mark.parametrize("orientation", ALL, ids=str)
def test_region_boxes_and_heat_maps_turn_with_the_image(orientation):
    from lrclr.display import figures as viz

    explanation = _wide_explanation()
    base = Image.new("RGB", (600, 400), (0, 0, 0))  # the display at 2x
    turned = orientation.image(base)
    box = viz.display_box(explanation.regions[0].box, turned.size, explanation.image_size, orientation)
    expected = orientation.box((60, 40, 240, 160), (600, 400))
    assert box == pytest.approx(expected)
    boxes = np.asarray(viz.highlight_region(turned, explanation, 1, orientation))
    x0, y0, x1, y1 = (round(v) for v in box)
    assert tuple(boxes[y0 + 1, (x0 + x1) // 2]) == viz.SELECTED_COLOUR  # the box's top edge
    # A map with one hot cell (top-left of the 4 x 4 grid) is painted where that corner went.
    grid = np.zeros((4, 4), dtype=np.float32)
    grid[0, 0] = 1.0
    painted = np.asarray(viz.overlay_heatmap(turned, grid, explanation.letterbox, 1.0,
                                             orientation=orientation)).sum(axis=-1)
    plain = np.asarray(viz.overlay_heatmap(base, grid, explanation.letterbox, 1.0)).sum(axis=-1)
    np.testing.assert_allclose(painted, orientation.array(plain), atol=3 * 3)


@pytest.mark.parametrize("orientation", ALL, ids=str)
def test_the_viewer_places_hover_markers_and_measurements_by_the_same_transform(orientation):
    from lrclr.display import figures as viz
    from lrclr.display.marks import Mark

    explanation = _wide_explanation()
    turned = orientation.image(Image.new("RGB", (600, 400)))
    mark = Mark((30.0, 20.0), (120.0, 80.0), "12.0 mm", explanation.image_size)
    figure = viz.viewer_figure(turned, explanation, regions_shown=1, orientation=orientation, marks=[mark])
    markers = figure.data[1]
    assert (markers.x[0], markers.y[0]) == pytest.approx(orientation.point(150, 100, (600, 400)))
    line = figure.layout.shapes[0]
    assert (line.x0, line.y0) == pytest.approx(orientation.point(60, 40, (600, 400)))
    assert (line.x1, line.y1) == pytest.approx(orientation.point(240, 160, (600, 400)))
    assert figure.layout.annotations[0].text == "12.0 mm"


@pytest.mark.parametrize("orientation", ALL, ids=str)
def test_a_point_picked_on_the_viewer_comes_back_to_original_pixels(orientation):
    from lrclr.display.marks import display_point, original_point

    display = orientation.size((600, 400))  # a 300 x 200 image shown at 2x, then oriented
    for point in ((30.0, 20.0), (299.0, 1.0), (150.0, 100.0)):
        shown = display_point(point, display, (300, 200), orientation)
        assert original_point(shown, display, (300, 200), orientation) == pytest.approx(point)
    assert original_point((-50, 10_000), display, (300, 200), orientation)[0] in (0.0, 300.0)
