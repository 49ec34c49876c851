"""Issue #19, defect 1: replacing an uploaded image blanked the radiograph (level 0, width 5 %) and
dropped the fallback threshold to 0.05.

Reproduced in chromium (``tests/app/test_browser_viewer.py``): replacing a file makes the browser
send a run without a case, and when the next file arrives before that run ends Streamlit skips its
widget clean-up ("stopped for rerun"). The sliders' values then live only under their keys on the
server, while the browser has unmounted the sliders. The next run drew them again without telling
the browser their values, so the browser showed each slider's declared default, which is its
minimum when a slider gets its value from Session State, and sent that back.

What the browser shows for a slider it mounts afresh is in the slider's message alone: its
``value`` when ``set_value`` is on, else its ``default``. These tests check that message on every
run, which is what any remount (after an interrupted run, a closed tab, a case without the viewer)
relies on.
"""

from __future__ import annotations

import io
import json

import numpy as np
from PIL import Image
from streamlit.testing.v1 import AppTest

from tests.support.app_pages import captured_downloads
from tests.support.paths import TEST_DATA

DICOM = TEST_DATA / "siim_pneumothorax_example.dcm"


def shown_on_remount(slider) -> list[float]:
    """The value a browser that mounts this slider afresh shows (and sends back on the next run)."""
    proto = slider.proto
    return list(proto.value) if proto.set_value else list(proto.default)


def as_list(value) -> list[float]:
    return [float(v) for v in value] if isinstance(value, (tuple, list)) else [float(value)]


def assert_sliders_tell_the_browser_their_values(app: AppTest, when: str) -> None:
    wrong = {s.label: (shown_on_remount(s), s.value) for s in app.slider
             if shown_on_remount(s) != as_list(s.value)}
    assert not wrong, f"{when}: a remounted slider would show (remount, page value): {wrong}"


def png_bytes(seed: int) -> bytes:
    pixels = (np.random.default_rng(seed).random((300, 240)) * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def test_every_slider_tells_the_browser_its_value_on_every_run(app):
    """The window, the width and the fallback threshold among them: not only on the run that first
    set them, since the browser may mount them again on any later run."""
    assert_sliders_tell_the_browser_their_values(app, "first run")
    app.run()  # a rerun with nothing changed, as after any click
    assert_sliders_tell_the_browser_their_values(app, "second run")
    labels = [s.label for s in app.slider]
    assert any("threshold" in label.lower() for label in labels), labels
    assert any("level" in label.lower() for label in labels), labels


def test_replacing_uploads_dicom_then_png_and_back_keeps_every_slider_told(app):
    """The upload sequences tried in chromium, here run to completion (AppTest has no interrupted
    runs): DICOM, PNG, another PNG, DICOM; the browser's empty-uploader run in between each."""
    app.radio(key="review-source").set_value("Upload").run()
    uploader = lambda: app.file_uploader(key="review-image")
    for name, data in (("a.dcm", DICOM.read_bytes()), ("b.png", png_bytes(0)), ("c.png", png_bytes(1)),
                       ("d.dcm", DICOM.read_bytes())):
        uploader().set_value(None).run()  # the browser removes the old file first
        uploader().set_value((name, data, "application/octet-stream")).run()
        assert not app.exception, name
        assert_sliders_tell_the_browser_their_values(app, f"after {name}")
        app.run()
        assert_sliders_tell_the_browser_their_values(app, f"rerun after {name}")


def test_the_fallback_threshold_survives_other_tabs(app, monkeypatch):
    """The threshold's slider is drawn only in the Findings tab; the export, in its own tab, used
    0.5 once another tab had been open (Streamlit forgets the key of a widget a run does not draw),
    and the slider came back at 0.5."""
    downloads = captured_downloads(monkeypatch)
    threshold = next(s for s in app.slider if "threshold" in s.label.lower())
    threshold.set_value(0.3).run()
    for tab in ("Report words", "Export"):
        app.session_state["review-tab"] = tab
        app.run()
    record = json.loads(downloads[next(n for n in downloads if n.endswith("-analysis.json"))]())
    assert record["discordance_threshold"] == 0.3
    app.session_state["review-tab"] = "Findings"
    app.run()
    threshold = next(s for s in app.slider if "threshold" in s.label.lower())
    assert threshold.value == 0.3 and shown_on_remount(threshold) == [0.3]
