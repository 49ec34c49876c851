"""Drawing blocks for the case report's page (``lrclr.display.case_report``): wrapped lines, an image fitted
into a box, a colour bar with the map's real values, the findings table.

Positions are fractions of the page (matplotlib's figure coordinates, 0 at the bottom), so the page
is laid out the same way at any resolution.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.cm import ScalarMappable
from matplotlib.colors import ListedColormap, Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import FormatStrFormatter
from PIL import Image

from lrclr.display import operations as display
from lrclr.trust.findings_table import findings_table, probability_text
from lrclr.trust.case_findings import FindingRow
from lrclr.display.figures import MapScale, heat_colours

PAGE_INCHES = (8.27, 11.69)
LEFT, RIGHT = 0.06, 0.94
# DejaVu Sans averages a little over half an em per character: what wrapping counts with.
_CHARACTER_EM = 0.56
# The screen's colours (pages/parts/review_trust.py, viz.findings_bar_figure).
GREY, DISCORDANT_FILL, BAR, BAR_DISCORDANT = "#9e9e9e", "#f5c9c9", "#1f77b4", "#d62728"
HEAT_MAP = ListedColormap(heat_colours(np.linspace(0, 1, 256)) / 255.0, name="lrclr-heat")
MAX_ROWS = 20
_MAX_NAME = 28


@dataclass(frozen=True)
class Box:
    """A rectangle in page fractions: left, bottom, width, height."""

    left: float
    bottom: float
    width: float
    height: float

    @property
    def right(self) -> float:
        return self.left + self.width

    @property
    def top(self) -> float:
        return self.bottom + self.height

    def rect(self) -> tuple[float, float, float, float]:
        return self.left, self.bottom, self.width, self.height


def wrapped(text: str, characters: int) -> list[str]:
    return textwrap.wrap(text, max(10, characters), break_long_words=True, break_on_hyphens=False) or [""]


def draw_lines(figure: Figure, top: float, lines: Sequence[str], size: float = 7, colour: str = "black",
               x: float = LEFT, right: float = RIGHT, spacing: float = 1.4, weight: str = "normal",
               max_lines: int | None = None) -> float:
    """Each line wrapped to the width between ``x`` and ``right`` (at most ``max_lines`` parts, the
    last ending in "…" when cut), drawn downwards from ``top``; returns the y below the last one."""
    characters = int((right - x) * PAGE_INCHES[0] / (_CHARACTER_EM * size / 72))
    step = size * spacing / 72 / PAGE_INCHES[1]
    y = top
    for line in lines:
        parts = wrapped(line, characters)
        if max_lines is not None and len(parts) > max_lines:
            parts = parts[:max_lines - 1] + [parts[max_lines - 1][:max(1, characters - 1)] + "…"]
        for part in parts:
            figure.text(x, y, part, size=size, color=colour, va="top", weight=weight)
            y -= step
    return y


def draw_image(figure: Figure, picture: Image.Image, area: Box, ppi: int, grow: bool) -> Box:
    """``picture`` as large as fits in ``area`` keeping its aspect, top-left aligned; resampled to
    ``ppi`` pixels per inch (area resampling when shrinking; enlarged only with ``grow``, which a
    raster page needs for a 1:1 blit and a PDF does not). Returns where it went."""
    width_in, height_in = area.width * PAGE_INCHES[0], area.height * PAGE_INCHES[1]
    fit = min(width_in / picture.width, height_in / picture.height)
    placed = Box(area.left, area.top - picture.height * fit / PAGE_INCHES[1],
                 picture.width * fit / PAGE_INCHES[0], picture.height * fit / PAGE_INCHES[1])
    target = (max(1, round(picture.width * fit * ppi)), max(1, round(picture.height * fit * ppi)))
    pixels = np.asarray(picture.convert("RGB"))
    if grow or (target[0] <= picture.width and target[1] <= picture.height):
        pixels = display.area_resize(pixels, target)
    axes = figure.add_axes(placed.rect())
    # "none": the PDF embeds these pixels as they are and Agg copies them 1:1; no second resampling.
    axes.imshow(pixels, interpolation="none", aspect="auto")
    axes.set_axis_off()
    return placed


def draw_colour_bar(figure: Figure, box: Box, scale: MapScale, title: str) -> None:
    """The heat map's ramp from ``scale.low`` to ``scale.high`` with its real values; the uniform
    attention level, below which nothing is painted, marked with a dashed line."""
    low, high = scale.low, scale.high if scale.high > scale.low else scale.low + 1e-6
    axes = figure.add_axes(box.rect())
    bar = figure.colorbar(ScalarMappable(Normalize(low, high), HEAT_MAP), cax=axes)
    bar.set_ticks(np.linspace(low, high, 5).tolist())  # a list: what the stubs accept
    bar.ax.yaxis.set_major_formatter(FormatStrFormatter("%.3f"))  # plain numbers, as on screen
    bar.ax.tick_params(labelsize=6.5)
    label = title
    if scale.floor is not None and low < scale.floor < high:
        bar.ax.axhline(scale.floor, color="white", linestyle="--", linewidth=1)
        label += f"\ndashed: uniform {scale.floor:.3f}, not painted below"
    bar.set_label(label, size=7)


def draw_findings(figure: Figure, top: float, rows: Sequence[FindingRow], greyed: bool) -> float:
    """The findings table as the screen shows it (same cells, order and marks), with each
    probability's bar and its operating point as a tick; returns the y below it."""
    table = findings_table(rows)
    facts = {r.finding: r for r in rows}
    columns = {"finding": LEFT + 0.005, "probability": 0.265, "called": 0.445, "AUC (95% CI)": 0.565,
               "report": 0.77}
    step = 0.0165
    figure.text(LEFT, top, "Findings", size=10, weight="bold", va="top")
    y = top - 0.02
    for name, x in columns.items():
        figure.text(x, y, name, size=8, weight="bold", va="center")
    figure.add_artist(_rule(y - step / 2))
    shown = table.head(MAX_ROWS)
    for index, (_, cells) in enumerate(shown.iterrows()):
        y -= step
        row = facts[cells["finding"]]
        _table_row(figure, y, step, columns, cells, row, greyed, shaded=index % 2 == 1)
    figure.add_artist(_rule(y - step / 2))
    y -= step / 2 + 0.004
    if len(table) > MAX_ROWS:
        figure.text(LEFT, y, f"… and {len(table) - MAX_ROWS} more finding(s), in the JSON export.", size=7,
                    va="top", color="#444444")
        y -= step
    return y


def _table_row(figure: Figure, y: float, step: float, columns: dict, cells, row: FindingRow, greyed: bool,
               shaded: bool) -> None:
    colour = GREY if greyed or not row.reliable else "black"
    fill = DISCORDANT_FILL if row.discordance and not greyed else "#f4f4f4" if shaded else None
    if fill:
        figure.add_artist(Rectangle((LEFT, y - step / 2), RIGHT - LEFT, step, facecolor=fill, edgecolor="none",
                                    transform=figure.transFigure, zorder=0))
    name = cells["finding"] if len(cells["finding"]) <= _MAX_NAME else cells["finding"][:_MAX_NAME - 1] + "…"
    texts = {"finding": name, "probability": probability_text(cells["probability"]), "called": cells["called"],
             "AUC (95% CI)": cells["AUC (95% CI)"], "report": cells["report"]}
    for column, x in columns.items():
        figure.text(x, y, texts[column], size=8, color=colour, va="center")
    _probability_bar(figure, Box(columns["probability"] + 0.05, y - step * 0.3, 0.11, step * 0.6), row, greyed)


def _probability_bar(figure: Figure, box: Box, row: FindingRow, greyed: bool) -> None:
    """A 0-1 bar as the screen's chart draws it: red when discordant, hatched when not reliable,
    grey when the input check failed; the black tick is the finding's threshold."""
    colour = GREY if greyed else BAR_DISCORDANT if row.discordance else BAR
    transform = figure.transFigure
    figure.add_artist(Rectangle((box.left, box.bottom), box.width, box.height, facecolor="white",
                                edgecolor="#bbbbbb", linewidth=0.4, transform=transform))
    # A hatch is drawn in the edge colour, so an unreliable bar is a pale fill with dark stripes.
    figure.add_artist(Rectangle((box.left, box.bottom), box.width * float(np.clip(row.probability, 0, 1)),
                                box.height, facecolor=colour if row.reliable else (colour, 0.3), edgecolor=colour,
                                linewidth=0.3, hatch=None if row.reliable else "/////", transform=transform))
    tick = box.left + box.width * float(np.clip(row.threshold, 0, 1))
    figure.add_artist(_line([tick, tick], [box.bottom - 0.002, box.top + 0.002], "black", 1.0))


def _rule(y: float):
    return _line([LEFT, RIGHT], [y, y], "#777777", 0.6)


def _line(xs, ys, colour: str, width: float):
    from matplotlib.lines import Line2D

    return Line2D(xs, ys, color=colour, linewidth=width)
