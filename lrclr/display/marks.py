"""What the viewer draws over the picture in ORIGINAL image pixels, and the mapping between those
pixels and the displayed (zoomed to fit, flipped, rotated) picture: measurement lines, and points
picked on the viewer brought back."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import plotly.graph_objects as go

from lrclr.display.orientation import Orientation
from lrclr.escaping import plotly_label


@dataclass(frozen=True)
class Mark:
    """A measurement drawn on the viewer: a line between two points in ORIGINAL image pixels
    (over a picture of ``original_size``), with its label (numbers and units the page writes)."""

    start: tuple[float, float]
    end: tuple[float, float]
    label: str
    original_size: tuple[int, int]
    colour: str = "#00e5ff"
    # Where the label goes: "end" (beside the line's end), or "above" / "below" its middle, so two
    # widths drawn close together (cardiac and thoracic) keep their labels apart.
    label_at: str = "end"


def display_point(point: tuple[float, float], display: tuple[int, int], original: tuple[int, int],
                  orientation: Orientation | None = None) -> tuple[float, float]:
    """A point in original pixels on a display of size ``display`` (oriented by ``orientation``)."""
    orientation = orientation or Orientation()
    unoriented = orientation.size(display)
    scale = unoriented[0] / original[0]
    return orientation.point(point[0] * scale, point[1] * scale, unoriented)


def original_point(point: tuple[float, float], display: tuple[int, int], original: tuple[int, int],
                   orientation: Orientation | None = None) -> tuple[float, float]:
    """The inverse of ``display_point``: a point picked on the viewer, in original pixels, kept
    within the image."""
    orientation = orientation or Orientation()
    unoriented = orientation.size(display)
    scale = unoriented[0] / original[0]
    x, y = orientation.to_original(point[0], point[1], unoriented)
    return min(max(x / scale, 0.0), float(original[0])), min(max(y / scale, 0.0), float(original[1]))


def add_marks(figure: go.Figure, marks: Sequence[Mark], display: tuple[int, int],
              orientation: Orientation | None) -> None:
    for mark in marks:
        (x0, y0), (x1, y1) = (display_point(p, display, mark.original_size, orientation)
                              for p in (mark.start, mark.end))
        figure.add_shape(type="line", x0=x0, y0=y0, x1=x1, y1=y1, line={"color": mark.colour, "width": 2})
        if mark.label_at == "end":
            place = {"x": x1, "y": y1, "xanchor": "left", "yanchor": "bottom"}
        else:  # the y axis points down: "above" the line is the label's bottom at the line
            place = {"x": (x0 + x1) / 2, "y": (y0 + y1) / 2, "xanchor": "center",
                     "yanchor": "bottom" if mark.label_at == "above" else "top"}
        figure.add_annotation(**place, text=plotly_label(mark.label), showarrow=False,
                              font={"color": mark.colour, "size": 13}, bgcolor="rgba(0,0,0,0.6)")
