"""The Review page's viewer controls with Streamlit's AppTest: window/level in the file's units and
its presets, invert, flip/rotate, reset, per-case settings, next/previous case, and the measurements
in the JSON export. (Drags, keys and layout need a browser: tests/app/test_browser_viewer.py.)"""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from lrclr.demo import load_gallery
from lrclr.trust.case_findings import sha256_hex
from tests.support.app_pages import as_shown, captured_downloads
from tests.support.images import dicom_bytes

# A 12-bit film with the file's own window: values 0..4095 left to right, window 1500 +- 250.
STORED = np.tile(np.linspace(0, 4095, 240).round().astype(np.uint16), (200, 1))
WINDOWED_DICOM = dicom_bytes(STORED, BitsStored=12, HighBit=11, WindowCenter=1500, WindowWidth=500,
                             PixelSpacing=[0.2, 0.2])


def _upload(app: AppTest, name: str, data: bytes, boxes: bool = True) -> AppTest:
    app.radio(key="review-source").set_value("Upload").run()
    app.file_uploader(key="review-image").set_value((name, data, "application/octet-stream")).run()
    if not boxes:  # the film alone: region boxes would draw over the pixels compared
        app.checkbox(key="regions-show").uncheck().run()
    assert not app.exception
    return app


def _view_key(data: bytes) -> str:
    return sha256_hex(data)[:12]


def _slider(app: AppTest, start: str):
    return next(s for s in app.slider if as_shown(s.label).startswith(start))


def _viewer_pixels(app: AppTest) -> np.ndarray:
    chart = next(c for c in app.get("plotly_chart") if json.loads(c.proto.spec)["data"][0].get("type") == "image")
    source = json.loads(chart.proto.spec)["data"][0]["source"]
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(source.split(",", 1)[1]))).convert("L"), dtype=np.int16)


def _viewer_caption(app: AppTest) -> str:
    return next(as_shown(c.value) for c in app.caption if " px · " in c.value)


def test_a_dicom_opens_on_its_own_window_in_stored_values_and_offers_presets(app):
    _upload(app, "film.dcm", WINDOWED_DICOM, boxes=False)
    case = _view_key(WINDOWED_DICOM)
    level, width = _slider(app, "Level (stored value)"), _slider(app, "Width (stored value)")
    assert (level.value, width.value) == (1500, 500)
    presets = app.selectbox(key=f"view-{case}-preset")
    assert presets.value == "File window 1 (C 1500, W 500)"
    assert any(o.startswith("Lung (this image's histogram)") for o in presets.options)
    assert "File window 1 (C 1500, W 500): level 1500, width 500 (stored value)" in _viewer_caption(app)
    shown = _viewer_pixels(app)
    # Left of 1250 black, right of 1750 white: the file's window, not the full 12-bit range.
    assert shown[:, :60].max() < 10 and shown[:, 120:].min() > 245
    presets.set_value("Full range (0 to 4095)").run()
    assert (_slider(app, "Level").value, _slider(app, "Width").value) == (2048, 4096)
    full = _viewer_pixels(app)
    assert 100 < full[:, 110:130].mean() < 150  # mid-grey in the middle now
    _slider(app, "Level").set_value(3000).run()
    assert app.selectbox(key=f"view-{case}-preset").value == "Custom (sliders)"
    assert "custom window: level 3000" in _viewer_caption(app)


def test_invert_flip_rotate_and_reset_change_the_display_only(app):
    _upload(app, "film.dcm", WINDOWED_DICOM, boxes=False)
    plain = _viewer_pixels(app)
    app.button(key="view-invert-button").click().run()
    assert np.abs(_viewer_pixels(app) - (255 - plain)).mean() < 3
    app.button(key="view-invert-button").click().run()
    app.button(key="view-flip").click().run()
    assert np.abs(_viewer_pixels(app) - plain[:, ::-1]).mean() < 3
    app.button(key="view-rotate").click().run()
    turned = _viewer_pixels(app)
    assert turned.shape == plain.shape[::-1]  # 240 x 200 shown as 200 x 240
    assert np.abs(turned - np.rot90(plain[:, ::-1], k=-1)).mean() < 3
    caption = _viewer_caption(app)
    assert "display flipped left-right and rotated 90° clockwise" in caption
    assert any("display only, the model reads the image as stored" in as_shown(c.value) for c in app.caption)
    # The model reads the pixels as decoded whatever the display does.
    kept = app.session_state["image-cache"][(sha256_hex(WINDOWED_DICOM), False)]
    assert kept.pixels.shape == (200, 240)
    app.button(key="view-reset").click().run()
    assert np.abs(_viewer_pixels(app) - plain).mean() < 1
    assert (_slider(app, "Level").value, _slider(app, "Width").value) == (1500, 500)


def test_each_case_keeps_its_own_window(app):
    first = load_gallery()[0]
    _slider(app, "Level (grey level (8-bit))").set_value(60).run()
    app.button(key="review-next").click().run()
    assert app.session_state["review-demo"] == load_gallery()[1].id
    assert _slider(app, "Level").value == 128  # the next case opens on its own default
    app.button(key="review-previous").click().run()
    assert app.session_state["review-demo"] == first.id and _slider(app, "Level").value == 60
    app.button(key="review-previous").click().run()  # before the first: the last
    assert app.session_state["review-demo"] == load_gallery()[-1].id


def test_a_window_out_of_a_sliders_range_is_refused_not_raised(app):
    """A stored value the slider cannot show (a broken state, another file's units) falls back to the
    case's default instead of Streamlit's out-of-range error."""
    case = _view_key(load_gallery()[0].image_bytes())
    app.session_state[f"view-{case}-level--held"] = 1e9
    app.session_state[f"view-{case}-width--held"] = -3
    app.run()
    assert not app.exception
    assert (_slider(app, "Level").value, _slider(app, "Width").value) == (128, 256)


def test_the_json_export_holds_the_measurements_in_mm_and_the_display(app, monkeypatch):
    downloads = captured_downloads(monkeypatch)
    _upload(app, "film.dcm", WINDOWED_DICOM)
    case = _view_key(WINDOWED_DICOM)
    # What a drag records (measure.on_drag, driven by a real drag in the browser test).
    app.session_state[f"measure-{case}"] = {"distances": [((10.0, 20.0), (110.0, 20.0))],
                                            "cardiac": ((80.0, 100.0), (150.0, 100.0)),
                                            "thoracic": ((20.0, 100.0), (220.0, 110.0))}
    app.session_state["review-tab"] = "Export"
    app.run()
    assert not app.exception
    assert any("Distance 1: 20.0 mm" in m.value for m in app.markdown)
    assert any("CTR 0.35" in m.value for m in app.markdown)
    record = json.loads(downloads[next(n for n in downloads if n.endswith("-analysis.json"))]())
    measurements = record["measurements"]
    assert measurements["unit"] == "mm" and measurements["pixel_spacing_source"] == "DICOM PixelSpacing"
    assert measurements["distances"][0]["millimetres"] == pytest.approx(20.0)
    assert measurements["cardiothoracic_ratio"]["ratio"] == pytest.approx(0.35)
    assert record["display"]["window"] == {"preset": "File window 1 (C 1500, W 500)", "center": 1500.0,
                                           "width": 500.0, "unit": "stored value"}
    assert "film.dcm" not in json.dumps(record)  # no file names in exports


def test_without_a_spacing_measurements_are_in_pixels(app):
    pixels = (np.random.default_rng(0).random((120, 100)) * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    data = buffer.getvalue()
    _upload(app, "scan.png", data)
    app.session_state[f"measure-{_view_key(data)}"] = {"distances": [((0.0, 0.0), (30.0, 40.0))], "cardiac": None,
                                                       "thoracic": None}
    app.run()
    assert any("Distance 1: 50.0 pixels" in m.value for m in app.markdown)
    assert any("No pixel spacing is known for this image: lengths are in pixels" in as_shown(c.value)
               for c in app.caption)
