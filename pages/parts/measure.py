"""Measuring on the viewer: a distance in millimetres, and the cardiothoracic ratio from two widths.

Streamlit 1.67 reports no plotly shape drawing (no relayout events), but it does report a box
selection, and its ``x``/``y`` pairs come in the order of the drag: where the mouse went down,
then where it came up (checked in chromium). With a tool chosen, a drag on the image is a box
selection and its two corners are the line's ends. Points are stored per case in ORIGINAL image
pixels (through the display's zoom, flip and rotation), so a measurement stays on the anatomy.

Layout only: the lengths, the ratio and the JSON record come from ``lrclr.display.measurements``.
"""

from __future__ import annotations

import streamlit as st

from lrclr.display.marks import Mark, original_point
from lrclr.display.measurements import (
    CardiothoracicRatio,
    Distance,
    Spacing,
    cardiothoracic_ratio,
    distance,
    image_spacing,
    measurement_records,
    width,
)
from lrclr.display.orientation import Orientation
from lrclr.escaping import markdown_literal
from lrclr.imaging.reading import LoadedImage
from pages.parts.widget_state import hold

TOOLS = {"Pan and zoom": None, "Distance": "distance", "Cardiac width": "cardiac", "Thoracic width": "thoracic"}
TOOL_KEY, GEOMETRY_KEY, CHART_KEY = "measure-tool", "viewer-geometry", "viewer"
COLOURS = {"distance": "#00e5ff", "cardiac": "#ff4fa3", "thoracic": "#7cff6b"}


def _store(case: str) -> dict:
    return st.session_state.setdefault(f"measure-{case}", {"distances": [], "cardiac": None, "thoracic": None})


def spacing(image: LoadedImage, demo) -> Spacing | None:
    fallback = None
    if demo is not None and demo.pixel_spacing_mm is not None:
        fallback = Spacing(*demo.pixel_spacing_mm, source=demo.pixel_spacing_source or "demo manifest")
    return image_spacing(image, fallback)


def tool() -> str | None:
    """The chosen tool (None: drag pans); drawn beside the image."""
    name = hold(TOOL_KEY, "Pan and zoom", lambda v: v in TOOLS)
    st.selectbox("Drag on the image to", list(TOOLS), key=TOOL_KEY,
             help="Distance: drag from one end to the other. Cardiothoracic ratio: drag across the heart's "
                  "widest part (cardiac width), then across the thorax's, inner rib to inner rib (thoracic "
                  "width); only the horizontal extent of each drag counts.")
    return TOOLS[name]


def remember_geometry(case: str, display: tuple[int, int], original: tuple[int, int],
                      orientation: Orientation) -> None:
    """What the drag callback needs to map the viewer's coordinates back to original pixels."""
    st.session_state[GEOMETRY_KEY] = (case, display, original, orientation)


def on_drag() -> None:
    """The viewer's selection callback: a drag becomes the chosen tool's measurement."""
    chosen = TOOLS.get(st.session_state.get(TOOL_KEY, ""))
    geometry = st.session_state.get(GEOMETRY_KEY)
    event = st.session_state.get(CHART_KEY) or {}
    boxes = (event.get("selection") or {}).get("box") or []
    if chosen is None or geometry is None or not boxes:
        return
    case, display, original, orientation = geometry
    xs, ys = boxes[0].get("x") or [], boxes[0].get("y") or []
    if len(xs) != 2 or len(ys) != 2:
        return
    start, end = (original_point((float(x), float(y)), display, original, orientation) for x, y in zip(xs, ys))
    store = _store(case)
    if chosen == "distance":
        store["distances"] = [*store["distances"], (start, end)][-8:]  # a few at a time stay readable
    else:
        store[chosen] = (start, end)
    st.session_state["measure-selection-revision"] = st.session_state.get("measure-selection-revision", 0) + 1


def clear(case: str) -> None:
    st.session_state[f"measure-{case}"] = {"distances": [], "cardiac": None, "thoracic": None}


def measured(case: str, spacing_mm: Spacing | None) -> tuple[list[Distance], CardiothoracicRatio | None, dict]:
    """This case's distances, its ratio once both widths are drawn, and the widths drawn so far."""
    store = _store(case)
    distances = [distance(a, b, spacing_mm) for a, b in store["distances"]]
    widths = {name: width(*store[name], spacing_mm) for name in ("cardiac", "thoracic") if store[name]}
    ratio = cardiothoracic_ratio(widths["cardiac"], widths["thoracic"]) if len(widths) == 2 else None
    return distances, ratio, widths


def marks(case: str, spacing_mm: Spacing | None, original: tuple[int, int]) -> list[Mark]:
    distances, _, widths = measured(case, spacing_mm)
    drawn = [Mark(d.start, d.end, d.label(), original, COLOURS["distance"]) for d in distances]
    for name, measured_width in widths.items():
        # A width is drawn horizontal, at the height of the drag's middle: only that extent counts.
        y = (measured_width.start[1] + measured_width.end[1]) / 2
        drawn.append(Mark((measured_width.start[0], y), (measured_width.end[0], y),
                          f"{name} {measured_width.label()}", original, COLOURS[name],
                          label_at="above" if name == "cardiac" else "below"))
    return drawn


def summary(case: str, spacing_mm: Spacing | None) -> None:
    """The measurements in words, under the tools, with the spacing they use."""
    distances, ratio, widths = measured(case, spacing_mm)
    lines = [f"Distance {i}: {d.label()}" for i, d in enumerate(distances, 1)]
    lines += [f"{name.capitalize()} width: {w.label()}" for name, w in widths.items()]
    if ratio is not None:
        lines.append(f"**{ratio.label()}** (cardiac / thoracic)")
    if lines:
        st.markdown("  \n".join(lines))
        st.button("Clear measurements", key="measure-clear", on_click=clear, args=(case,))
    where = (f"Lengths in mm from {spacing_mm.source}." if spacing_mm is not None
             else "No pixel spacing is known for this image: lengths are in pixels.")
    st.caption(markdown_literal(where))


def records(case: str, spacing_mm: Spacing | None) -> dict:
    distances, ratio, _ = measured(case, spacing_mm)
    return measurement_records(distances, ratio, spacing_mm)


def dragmode(chosen: str | None) -> str:
    return "select" if chosen is not None else "pan"
