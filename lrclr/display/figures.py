"""Pure functions that turn results into pictures and plotly figures: no Streamlit, so tests can call them."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
from PIL import Image, ImageDraw, ImageFont
from plotly.subplots import make_subplots

from lrclr.display import operations as display
from lrclr.display.encoding import data_uri
from lrclr.display.marks import Mark, add_marks, display_point
from lrclr.display.orientation import Orientation
from lrclr.escaping import plotly_label
from lrclr.trust.card_tables import finite_number
from lrclr.model.explain import Explanation, grid_to_image
from lrclr.model.letterbox import Letterbox

# Longest side of what the browser is sent; the full-resolution pixels stay on the server.
DISPLAY_MAX_SIDE = 1024
REGION_COLOUR = (255, 196, 0)
SELECTED_COLOUR = (0, 220, 255)
MASK_COLOUR = (0, 200, 80)
CURVE_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd")  # one per compared model


def display_scale(size: tuple[int, int], max_side: int = DISPLAY_MAX_SIDE) -> float:
    return min(1.0, max_side / max(size))


def to_display_rgb(pixels: np.ndarray, max_side: int = DISPLAY_MAX_SIDE, invert: bool = False,
                   clahe: bool = False) -> Image.Image:
    """[0, 1] grayscale -> an RGB image no larger than ``max_side`` on its longest side.

    Shrunk by area resampling on the float pixels (``lrclr.display.operations``), then quantised; ``clahe``
    equalises local contrast on what is shown (display only: the model never sees it).
    """
    grey = np.round(np.clip(display.downsample(pixels, max_side), 0, 1) * 255).astype(np.uint8)
    if clahe:
        grey = display.clahe(grey)
    return Image.fromarray(255 - grey if invert else grey, mode="L").convert("RGB")


def heat_colours(values: np.ndarray) -> np.ndarray:
    """[0, 1] -> RGB uint8 on a black-red-yellow ramp (readable on grayscale radiographs)."""
    v = np.clip(values, 0, 1)[..., None]
    rgb = np.concatenate([np.clip(v * 2, 0, 1), np.clip(v * 2 - 1, 0, 1), np.zeros_like(v)], axis=-1)
    return np.round(rgb * 255).astype(np.uint8)


# The natural bounds of each map's values: attention is a share of the word's attention in [0, 1],
# similarity a cosine in [-1, 1]. On the fixed scale the same colour means the same value on every case.
FIXED_SCALES = {"attention": (0.0, 1.0), "similarity": (-1.0, 1.0)}


@dataclass(frozen=True)
class MapScale:
    """How a map's values become colours: the values at the two ends of the colour bar, and the
    value below which nothing is painted (the uniform attention level, or None)."""

    low: float
    high: float
    floor: float | None = None
    fixed: bool = False  # FIXED_SCALES (comparable across cases) rather than this map's own range
    kind: str = "similarity"


def map_scale(grid_map: np.ndarray, kind: str, fixed: bool, uniform: float | None = None) -> MapScale:
    """The scale of one map: its own range, or the kind's fixed range (``FIXED_SCALES``)."""
    if fixed:
        low, high = FIXED_SCALES[kind]
    else:
        low, high = float(np.min(grid_map)), float(np.max(grid_map))
    return MapScale(low, high, uniform, fixed, kind)


def overlay_heatmap(base: Image.Image, grid_map: np.ndarray, letterbox: Letterbox,
                    opacity: float = 0.45, scale: MapScale | None = None,
                    orientation: Orientation | None = None) -> Image.Image:
    """Blend a (rows, cols) map over the displayed radiograph on ``scale`` (default: the map's own
    range); ``letterbox`` (an explanation's or a case's) places the grid on the original pixels.
    Values at or below ``scale.floor`` are not painted, so attention no stronger than a uniform
    spread leaves the film visible. ``orientation``: ``base`` is the flipped/rotated display, and
    the map turns with it."""
    scale = scale or map_scale(grid_map, "similarity", fixed=False)
    heat = grid_to_image(grid_map, letterbox)
    if orientation is not None:
        heat = np.ascontiguousarray(orientation.array(heat))
    span = scale.high - scale.low
    colour = np.clip((heat - scale.low) / span, 0, 1) if span > 0 else np.zeros_like(heat)
    strength = colour
    if scale.floor is not None:
        room = scale.high - scale.floor
        strength = np.clip((heat - scale.floor) / room, 0, 1) if room > 0 else np.zeros_like(heat)
    heat_image = Image.fromarray(heat_colours(colour)).resize(base.size, Image.Resampling.BILINEAR)
    alpha = Image.fromarray(np.round(strength * 255 * opacity).astype(np.uint8)).resize(base.size, Image.Resampling.BILINEAR)
    return Image.composite(heat_image, base, alpha)


def colour_bar_trace(scale: MapScale, title: str) -> go.Scatter:
    """An invisible trace whose colour bar shows the heat map's real values (black-red-yellow)."""
    return go.Scatter(
        x=[None], y=[None], mode="markers", hoverinfo="skip", showlegend=False,
        marker={"color": [scale.low, scale.high], "cmin": scale.low, "cmax": scale.high, "showscale": True,
                "colorscale": [[0.0, "rgb(0,0,0)"], [0.5, "rgb(255,0,0)"], [1.0, "rgb(255,255,0)"]],
                "colorbar": {"title": {"text": plotly_label(title), "side": "right"}, "thickness": 14, "len": 0.9}},
    )


def draw_regions(base: Image.Image, explanation: Explanation, ranks: set[int] | None = None,
                 opacity: float = 1.0, orientation: Orientation | None = None) -> Image.Image:
    """Numbered boxes for the selected regions (original-pixel boxes scaled to the display).

    Drawn on a transparent layer and blended, so ``opacity`` fades boxes and numbers together. On a
    flipped/rotated display (``orientation``) the boxes move with the image and the numbers stay upright.
    """
    layer = Image.new("RGBA", base.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    font = ImageFont.load_default(size=max(12, base.width // 48))
    alpha = round(255 * min(max(opacity, 0.0), 1.0))
    for region in explanation.regions:
        if ranks is not None and region.rank not in ranks:
            continue
        x0, y0, x1, y1 = display_box(region.box, base.size, explanation.image_size, orientation)
        draw.rectangle((x0, y0, x1, y1), outline=(*REGION_COLOUR, alpha), width=2)
        # A black outline keeps the number readable on the yellow end of the heat map (issue #19).
        draw.text((x0 + 3, y0 + 1), str(region.rank), fill=(*REGION_COLOUR, alpha), font=font,
                  stroke_width=2, stroke_fill=(0, 0, 0, alpha))
    return Image.alpha_composite(base.convert("RGBA"), layer).convert("RGB")


# ---- viewer ------------------------------------------------------------------------------------

def window_level(pixels: np.ndarray, level: float = 0.5, width: float = 1.0) -> np.ndarray:
    """Display window over [0, 1] intensities: ``level`` is the centre, ``width`` the span shown.

    Values below the window go black and above it white, as on a PACS viewer; the model always
    sees the unwindowed pixels.
    """
    width = max(float(width), 1e-3)
    low = float(level) - width / 2
    return np.clip((pixels - low) / width, 0.0, 1.0).astype(np.float32)


def highlight_region(base: Image.Image, explanation: Explanation, rank: int,
                     orientation: Orientation | None = None) -> Image.Image:
    """One region drawn thick in a second colour, for 'choose a region'."""
    image = base.copy()
    draw = ImageDraw.Draw(image)
    for region in explanation.regions:
        if region.rank == rank:
            draw.rectangle(display_box(region.box, image.size, explanation.image_size, orientation),
                           outline=SELECTED_COLOUR, width=4)
    return image


def display_box(box: Sequence[float], display: tuple[int, int], original: tuple[int, int],
                orientation: Orientation | None = None) -> tuple[float, float, float, float]:
    """A box in original pixels on a display of size ``display`` (oriented by ``orientation``)."""
    orientation = orientation or Orientation()
    unoriented = orientation.size(display)  # a quarter turn swaps the sides back
    scale = unoriented[0] / original[0]
    x0, y0, x1, y1 = (c * scale for c in box)
    return orientation.box((x0, y0, x1, y1), unoriented)


def mask_overlay(base: Image.Image, mask: np.ndarray, opacity: float = 0.45) -> Image.Image:
    """A ground-truth mask tinted over the displayed image and outlined (the mask is in original
    pixels; the outline is drawn from its contour, sharp at any display size)."""
    alpha = Image.fromarray((np.asarray(mask, dtype=bool) * round(255 * opacity)).astype(np.uint8))
    alpha = alpha.resize(base.size, Image.Resampling.NEAREST)
    tint = Image.new("RGB", base.size, MASK_COLOUR)
    return display.mask_outline(Image.composite(tint, base, alpha), mask, MASK_COLOUR)


def export_picture(overlay: Image.Image, lines: Sequence[str], colour_bar: tuple[MapScale, str] | None) -> Image.Image:
    """The overlay as the export PNG carries it: with a footer that says what it shows (the lines:
    the map's word or phrase, the model, the date, "not a medical device") and, when a map is
    painted, its colour bar with the real values at both ends. The picture alone loses that context."""
    font = ImageFont.load_default(size=14)
    line_height, margin, bar_height = 20, 10, 14
    lines = [part for line in lines for part in textwrap.wrap(line, max(20, overlay.width // 7)) or [""]]
    footer = margin * 2 + line_height * len(lines) + ((bar_height + line_height) if colour_bar else 0)
    picture = Image.new("RGB", (overlay.width, overlay.height + footer), "white")
    picture.paste(overlay.convert("RGB"), (0, 0))
    draw = ImageDraw.Draw(picture)
    y = overlay.height + margin
    if colour_bar is not None:
        scale, title = colour_bar
        width = max(10, overlay.width - 2 * margin)
        ramp = heat_colours(np.linspace(0, 1, width))[None, :, :].repeat(bar_height, axis=0)
        picture.paste(Image.fromarray(ramp), (margin, y))
        y += bar_height + 2
        low, high = f"{scale.low:.3f}", f"{scale.high:.3f}"
        draw.text((margin, y), low, fill="black", font=font)
        draw.text((overlay.width - margin - draw.textlength(high, font=font), y), high, fill="black", font=font)
        draw.text(((overlay.width - draw.textlength(title, font=font)) / 2, y), title, fill="black", font=font)
        y += line_height
    for line in lines:
        draw.text((margin, y), line, fill="black", font=font)
        y += line_height
    return picture


def viewer_figure(image: Image.Image, explanation: Explanation | None, regions_shown: int = 0,
                  height: int = 720, view_revision: str = "", lossless: bool = False,
                  colour_bar: tuple[MapScale, str] | None = None, orientation: Orientation | None = None,
                  marks: Sequence[Mark] = (), dragmode: str = "pan", selection_revision: int = 0) -> go.Figure:
    """The radiograph (with whatever overlay is already drawn in) as a zoomable, pannable figure.

    Region significances appear on hover through invisible markers at the box centres. Only numbers go
    into hover text: plotly renders hover text as HTML-like markup, and report words are user text.
    ``image`` is the displayed picture, already flipped/rotated by ``orientation``; markers and
    measurement ``marks`` (in original pixels) are placed by the same transform. ``dragmode``
    "select" turns a drag into a measurement (the page reads its start and end); a new
    ``selection_revision`` clears the last dragged box without losing the zoom.
    """
    figure = go.Figure(go.Image(source=_data_uri(image, lossless), hoverinfo="skip"))
    if explanation is not None and regions_shown:
        shown = explanation.regions[:regions_shown]
        centres = [display_point(((r.box[0] + r.box[2]) / 2, (r.box[1] + r.box[3]) / 2), image.size,
                                  explanation.image_size, orientation) for r in shown]
        figure.add_trace(go.Scatter(
            x=[c[0] for c in centres], y=[c[1] for c in centres],
            mode="markers", marker={"size": 18, "opacity": 0},
            customdata=[[r.rank, r.significance] for r in shown],
            hovertemplate="region %{customdata[0]}<br>significance %{customdata[1]:.3f}<extra></extra>",
        ))
    if colour_bar is not None:
        figure.add_trace(colour_bar_trace(*colour_bar))
    add_marks(figure, marks, image.size, orientation)
    figure.update_xaxes(visible=False, range=[0, image.width])
    # The image's axis shrinks to the picture's aspect and sits at the top of the figure, so the
    # radiograph starts where the viewer does.
    figure.update_yaxes(visible=False, range=[image.height, 0], scaleanchor="x", constrain="domain",
                        constraintoward="top")
    # The browser keeps the user's zoom across redraws while ``view_revision`` stays the same.
    figure.update_layout(height=height, margin={"l": 0, "r": 0, "t": 0, "b": 0}, dragmode=dragmode,
                         showlegend=False, plot_bgcolor="black", uirevision=view_revision,
                         selectionrevision=selection_revision,
                         # Always a box: plotly's default turns a near-horizontal drag into a full-height
                         # band, and then the drag's y ends are lost.
                         selectdirection="d",
                         newselection={"line": {"color": "cyan", "width": 1, "dash": "dot"}},
                         activeselection={"fillcolor": "rgba(0,0,0,0)", "opacity": 0.6})
    return figure


def findings_bar_figure(findings: list[tuple[str, float, bool, float, bool]], greyed: bool = False) -> go.Figure:
    """Horizontal bars, highest first, each with its own operating point (a tick); discordant
    findings in a warning colour, unreliable ones hatched. Rows: (finding, probability, discordant,
    threshold, reliable). ``greyed``: the input gate failed, every bar is grey."""
    ordered = sorted(findings, key=lambda row: row[1])
    names = [plotly_label(name) for name, *_ in ordered]  # typed finding names are user text
    colours = ["#9e9e9e" if greyed else "#d62728" if discordant else "#1f77b4" for _, _, discordant, _, _ in ordered]
    figure = go.Figure(go.Bar(
        x=[p for _, p, *_ in ordered], y=names, orientation="h", marker_color=colours,
        marker_pattern_shape=["" if reliable else "/" for *_, reliable in ordered],
        hovertemplate="%{y}: %{x:.3f}<extra></extra>", name="probability",
    ))
    figure.add_trace(go.Scatter(
        x=[t for *_, t, _ in ordered], y=names, mode="markers", name="operating point",
        marker={"symbol": "line-ns-open", "size": 18, "color": "black", "line": {"width": 2}},
        hovertemplate="operating point %{x:.3f}<extra></extra>",
    ))
    figure.update_layout(height=28 * len(findings) + 60, margin={"l": 0, "r": 10, "t": 10, "b": 30},
                         xaxis={"range": [0, 1], "title": "probability (calibrated where validated); tick: operating point"},
                         showlegend=False, bargap=0.25)
    return figure


def region_attention_figure(attention: tuple[float, ...]) -> go.Figure:
    """A word's attention over the selected regions, by rank, against the uniform level 1/k: bars
    near the line say the word attends nowhere in particular."""
    figure = go.Figure(go.Bar(x=[str(rank) for rank in range(1, len(attention) + 1)], y=list(attention),
                              hovertemplate="region %{x}: %{y:.3f}<extra></extra>"))
    if attention:
        figure.add_hline(y=1 / len(attention), line_dash="dot", line_color="grey",
                         annotation_text=f"uniform 1/{len(attention)}", annotation_position="top right")
    figure.update_layout(height=220, margin={"l": 0, "r": 0, "t": 10, "b": 30},
                         xaxis={"title": "region (rank)", "type": "category"}, yaxis={"title": "attention"})
    return figure


def _data_uri(image: Image.Image, lossless: bool) -> str:
    """The picture as the browser receives it on every redraw.

    JPEG at quality 95 by default: a 512 px overlay is ~40 KB instead of ~200 KB as PNG and encodes
    ~20x faster, which is most of a redraw's server time; windowing is applied before encoding, on
    the full-precision pixels. ``lossless`` sends PNG for a pixel-exact look.
    """
    return data_uri(image.convert("RGB"), lossless)


def roc_figure(entries: list[tuple[str, dict]], finding: str) -> go.Figure | None:
    """ROC curves of one finding from model cards' stored points (never recomputed or invented);
    ``entries`` are (label, result) pairs as ``card_tables.evaluations`` gives them."""
    figure = go.Figure()
    for colour, (label, result) in zip(CURVE_COLOURS, entries):
        points = (result.get("roc") or {}).get(finding)
        if not isinstance(points, dict) or not points.get("fpr"):
            continue
        auc = next((finite_number(f.get("auc")) for f in result.get("findings") or [] if f.get("finding") == finding), None)
        name = plotly_label(f"{label} · AUC {auc:.3f}" if auc is not None else label)
        figure.add_trace(go.Scatter(x=points["fpr"], y=points["tpr"], mode="lines", name=name,
                                    line={"color": colour, "width": 2.5},
                                    hovertemplate="FPR %{x:.3f}<br>TPR %{y:.3f}<extra></extra>"))
    if not figure.data:
        return None
    figure.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="chance", hoverinfo="skip",
                                line={"color": "grey", "dash": "dot", "width": 1}))
    figure.update_layout(height=460, margin={"l": 0, "r": 0, "t": 30, "b": 0}, legend={"orientation": "h", "y": -0.2},
                         title=plotly_label(f"ROC: {finding}"),
                         xaxis={"title": "false positive rate (1 − specificity)", "range": [0, 1], "constrain": "domain"},
                         yaxis={"title": "true positive rate (sensitivity)", "range": [0, 1.01], "scaleanchor": "x"})
    return figure


def localization_figure(image, grid_map: np.ndarray, letterbox: Letterbox, mask: np.ndarray, peak: tuple[int, int],
                        phrase: str) -> go.Figure:
    """The model's map for ``phrase`` beside a ground-truth mask, the map's peak (in original pixels)
    marked on both; ``image`` is a loaded image (``lrclr.imaging.reading``), ``letterbox`` its case's."""
    base = to_display_rgb(image.pixels)
    scale = base.width / image.original_size[0]
    panels = (overlay_heatmap(base, grid_map, letterbox, 0.5),
              mask_overlay(base, mask))
    figure = make_subplots(rows=1, cols=2, horizontal_spacing=0.02,
                           subplot_titles=(plotly_label(f"model map: '{phrase}'"), "ground-truth mask"))
    for column, panel in enumerate(panels, start=1):
        figure.add_trace(go.Image(source=_data_uri(panel, lossless=True), hoverinfo="skip"), row=1, col=column)
        figure.add_trace(go.Scatter(x=[peak[0] * scale], y=[peak[1] * scale], mode="markers", showlegend=False,
                                    marker={"symbol": "x", "size": 14, "color": "cyan", "line": {"width": 2}},
                                    hovertemplate="peak of the map<extra></extra>"), row=1, col=column)
    figure.update_xaxes(visible=False)
    for column in (1, 2):  # each panel keeps the image's aspect ratio
        figure.update_yaxes(visible=False, scaleanchor="x" if column == 1 else "x2", row=1, col=column)
    # The top margin leaves the modebar a row of its own above the panel titles.
    figure.update_layout(height=500, margin={"l": 0, "r": 0, "t": 50, "b": 0}, dragmode="pan")
    return figure
