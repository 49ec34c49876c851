"""The viewer's display controls, beside the image: window/level in the image's own units with its
presets (and by right- or ctrl-drag on the image), invert, flip/rotate, CLAHE, full resolution and
reset, with keyboard shortcuts.

Layout only: the units, bounds and presets come from ``lrclr.display.windowing``, the flip/rotate
transform from ``lrclr.display.orientation``. Each case keeps its own settings (keys carry the
image's hash), so a window in one file's units never reaches another file's sliders, and every
value is checked against its slider's range before the slider is drawn (issue #19, defect 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import streamlit as st

from lrclr.display import figures as viz
from lrclr.display import operations as display
from lrclr.display.orientation import Orientation
from lrclr.display.windowing import WindowPreset, WindowScale, window_scale, windowed
from lrclr.imaging.reading import LoadedImage
from pages.parts.drag_window import drag_windowing
from pages.parts.shared import cached
from pages.parts.widget_state import held, hold, in_range, put

CUSTOM = "Custom (sliders)"
SHORTCUTS = {"invert": "I", "flip": "H", "rotate": "T", "reset": "0"}  # C and R are Streamlit's own
GLOBAL_DEFAULTS = {"view-clahe": False, "view-full_resolution": False}


@dataclass(frozen=True)
class ViewSettings:
    """What the display shows of one case: a window in the image's units (or a file preset), and
    display-only options. None of it reaches the model."""

    scale: WindowScale
    preset: WindowPreset | None  # None: a window set on the sliders
    center: float
    width: float
    invert: bool
    orientation: Orientation
    clahe: bool
    full_resolution: bool

    def window_text(self) -> str:
        name = self.preset.name if self.preset is not None else "custom window"
        return f"{name}: level {self.center:g}, width {self.width:g} ({self.scale.unit})"

    def key(self) -> tuple:
        return (self.preset.name if self.preset else None, self.center, self.width, self.invert,
                self.orientation, self.clahe, self.full_resolution)


def view_key(image_sha: str) -> str:
    return image_sha[:12]


def _k(case: str, name: str) -> str:
    return f"view-{case}-{name}"


def scale_for(image: LoadedImage, image_sha: str) -> WindowScale:
    """Once per case: the presets read the image's histogram."""
    return cached("window-scale", (image_sha,), lambda: window_scale(image), keep=4)


def _apply_preset(case: str, scale: WindowScale) -> None:
    """Preset list callback: the sliders jump to the preset's window."""
    preset = scale.preset(st.session_state[_k(case, "preset")])
    if preset is not None:
        center, width = scale.clamp(preset.center, preset.width)
        put(_k(case, "level"), center)
        put(_k(case, "width"), width)


def _custom(case: str) -> None:
    """Slider callback: a window moved by hand is no preset's any more."""
    put(_k(case, "preset"), CUSTOM)


def reset_view(case: str, scale: WindowScale) -> None:
    default = scale.default
    center, width = scale.clamp(default.center, default.width)
    for name, value in (("preset", default.name), ("level", center), ("width", width), ("invert", False),
                        ("rotation", 0), ("flipped", False)):
        put(_k(case, name), value)
    for key, value in GLOBAL_DEFAULTS.items():
        put(key, value)
    st.session_state[_k(case, "revision")] = st.session_state.get(_k(case, "revision"), 0) + 1


def _toggle(case: str, name: str) -> None:
    put(_k(case, name), not held(_k(case, name), False))


def _turn(case: str, how: str) -> None:
    current = Orientation(held(_k(case, "rotation"), 0), held(_k(case, "flipped"), False))
    turned = current.rotated_right() if how == "rotate" else current.flipped_horizontally()
    put(_k(case, "rotation"), turned.rotation)
    put(_k(case, "flipped"), turned.flipped)


def zoom_revision(image_sha: str) -> str:
    """The viewer keeps the user's zoom while this stays the same (reset changes it)."""
    return f"{image_sha}-{st.session_state.get(_k(view_key(image_sha), 'revision'), 0)}"


def view_controls(image: LoadedImage, image_sha: str) -> ViewSettings:
    """Lay out the display controls; the settings they give for this case."""
    case, scale = view_key(image_sha), scale_for(image, image_sha)
    names = [p.name for p in scale.presets] + [CUSTOM]
    preset_name = hold(_k(case, "preset"), scale.default.name, lambda v: v in names)
    default_center, default_width = scale.clamp(scale.default.center, scale.default.width)
    center = hold(_k(case, "level"), default_center, in_range(scale.low, scale.high))
    width = hold(_k(case, "width"), default_width, in_range(scale.step, scale.max_width))
    unit = scale.unit  # fixed words, or the file's RescaleType reduced to letters and digits (dicom.py)
    st.selectbox("Window preset", names, key=_k(case, "preset"), on_change=_apply_preset, args=(case, scale),
                 help="The file's own window or VOI LUT first, where it has one (the default); lung, "
                      "mediastinum and bone are the usual CT windows in HU, or on a radiograph windows "
                      "chosen from this image's histogram (its values are not HU)")
    number = "%.0f" if scale.step >= 1 else "%.3g"
    st.slider(f"Level ({unit})", float(scale.low), float(scale.high), step=float(scale.step), format=number,
              key=_k(case, "level"), on_change=_custom, args=(case,))
    st.slider(f"Width ({unit})", float(scale.step), float(scale.max_width), step=float(scale.step),
              format=number, key=_k(case, "width"), on_change=_custom, args=(case,))
    drag_windowing(case, scale, _k(case, "level"), _k(case, "width"), _k(case, "preset"), CUSTOM)
    invert, orientation = _orientation_buttons(case, scale)
    preset = scale.preset(preset_name) if preset_name != CUSTOM else None
    clahe, full = held("view-clahe", False), held("view-full_resolution", False)
    return ViewSettings(scale, preset, float(center), float(width), invert, orientation, clahe, full)


def display_options() -> None:
    """CLAHE and full resolution: the reader's preferences for every case (drawn below the tools;
    ``view_controls`` reads them, since they are held)."""
    hold("view-clahe", False)
    hold("view-full_resolution", False)
    st.checkbox("CLAHE (local contrast)", key="view-clahe",
                help=f"Contrast-limited adaptive histogram equalisation of the displayed image, after the "
                     f"window: clip limit {display.CLAHE_CLIP_LIMIT:g} on {display.CLAHE_TILES[0]} x "
                     f"{display.CLAHE_TILES[1]} tiles. Display only: the model sees the original pixels")
    st.checkbox("Full resolution, lossless", key="view-full_resolution",
                help="Send the image at its stored size as PNG, instead of at most 1024 px as JPEG "
                     "(quality 95), which redraws faster")


def _orientation_buttons(case: str, scale: WindowScale) -> tuple[bool, Orientation]:
    invert = bool(hold(_k(case, "invert"), False))
    orientation = Orientation(hold(_k(case, "rotation"), 0, lambda v: v in (0, 90, 180, 270)),
                              bool(hold(_k(case, "flipped"), False)))
    left, right = st.columns(2)
    left.button("Invert", key="view-invert-button", shortcut=SHORTCUTS["invert"],
                on_click=_toggle, args=(case, "invert"), type="primary" if invert else "secondary", width="stretch",
                help="Negative display (bone dark); display only")
    right.button("Reset", key="view-reset", shortcut=SHORTCUTS["reset"], on_click=reset_view,
                 args=(case, scale), width="stretch", help="The default window, no invert, flip or rotation, "
                                                          "CLAHE off, and the zoom fitted")
    left, right = st.columns(2)
    left.button("Flip", key="view-flip", shortcut=SHORTCUTS["flip"], on_click=_turn,
                args=(case, "flip"), type="primary" if orientation.flipped else "secondary", width="stretch",
                help="Mirror left-right; the boxes and maps move with the image")
    right.button("Rotate", key="view-rotate", shortcut=SHORTCUTS["rotate"],
                 on_click=_turn, args=(case, "rotate"), type="primary" if orientation.rotation else "secondary",
                 width="stretch", help="A quarter turn clockwise; the boxes and maps turn with the image")
    if not orientation.is_identity:
        st.caption(f"Display {orientation.describe()}: display only, the model reads the image as stored.")
    return invert, orientation


def base_image(image: LoadedImage, image_sha: str, view: ViewSettings):
    """The windowed, oriented picture the overlays are drawn on (cached: a word click redraws only
    the overlay)."""
    def draw():
        pixels = windowed(image, view.scale, view.center, view.width, view.preset)
        max_side = max(image.original_size) if view.full_resolution else viz.DISPLAY_MAX_SIDE
        picture = viz.to_display_rgb(pixels, max_side=max_side, invert=view.invert, clahe=view.clahe)
        return view.orientation.image(picture)
    return cached("base-image", (image_sha, view.key()), draw, keep=2, size=lambda p: int(np.prod(p.size)) * 3)
