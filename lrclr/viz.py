"""Pure functions that turn results into pictures: no Streamlit, so tests can call them directly."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from lrclr.explain import Explanation, grid_to_image
from lrclr.preprocess import letterbox_geometry

# Longest side of what the browser is sent; the full-resolution pixels stay on the server.
DISPLAY_MAX_SIDE = 1024
REGION_COLOUR = (255, 196, 0)


def display_scale(size: tuple[int, int], max_side: int = DISPLAY_MAX_SIDE) -> float:
    return min(1.0, max_side / max(size))


def to_display_rgb(pixels: np.ndarray, max_side: int = DISPLAY_MAX_SIDE, invert: bool = False) -> Image.Image:
    """[0, 1] grayscale -> an RGB image no larger than ``max_side`` on its longest side."""
    values = 1.0 - pixels if invert else pixels
    image = Image.fromarray(np.round(np.clip(values, 0, 1) * 255).astype(np.uint8), mode="L")
    scale = display_scale(image.size, max_side)
    if scale < 1.0:
        image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.LANCZOS)
    return image.convert("RGB")


def heat_colours(values: np.ndarray) -> np.ndarray:
    """[0, 1] -> RGB uint8 on a black-red-yellow ramp (readable on grayscale radiographs)."""
    v = np.clip(values, 0, 1)[..., None]
    rgb = np.concatenate([np.clip(v * 2, 0, 1), np.clip(v * 2 - 1, 0, 1), np.zeros_like(v)], axis=-1)
    return np.round(rgb * 255).astype(np.uint8)


def overlay_heatmap(base: Image.Image, grid_map: np.ndarray, original_size: tuple[int, int],
                    model_size: int, opacity: float = 0.45) -> Image.Image:
    """Blend a (rows, cols) map, normalised to its own range, over the displayed radiograph."""
    geometry = letterbox_geometry(original_size, model_size)
    heat = grid_to_image(grid_map, geometry)
    span = float(heat.max() - heat.min())
    heat = (heat - heat.min()) / span if span > 0 else np.zeros_like(heat)
    heat_image = Image.fromarray(heat_colours(heat)).resize(base.size, Image.BILINEAR)
    alpha = Image.fromarray(np.round(np.clip(heat, 0, 1) * 255 * opacity).astype(np.uint8)).resize(base.size, Image.BILINEAR)
    return Image.composite(heat_image, base, alpha)


def draw_regions(base: Image.Image, explanation: Explanation, ranks: set[int] | None = None) -> Image.Image:
    """Numbered boxes for the selected regions (original-pixel boxes scaled to the display)."""
    image = base.copy()
    draw = ImageDraw.Draw(image)
    scale = image.width / explanation.image_size[0]
    for region in explanation.regions:
        if ranks is not None and region.rank not in ranks:
            continue
        x0, y0, x1, y1 = (c * scale for c in region.box)
        draw.rectangle((x0, y0, x1, y1), outline=REGION_COLOUR, width=2)
        draw.text((x0 + 3, y0 + 2), str(region.rank), fill=REGION_COLOUR)
    return image
