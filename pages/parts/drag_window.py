"""Right-drag or ctrl-drag on the image to window, as on a PACS viewer.

Plotly has no drag mode for this and Streamlit reports no mouse moves, so a small
``st.components.v2`` script (it runs in the page, not in an iframe) listens for a right-button or
ctrl+left drag that starts on the viewer, keeps it from plotly (no pan, no measurement, no context
menu), previews it with the browser's own contrast and brightness while the mouse moves, and on
release sends the drag, in fractions of the viewer's size, to the page. The page turns it into a
window (``lrclr.display.windowing.dragged_window``) and draws the real one. The script receives
no data and writes no HTML.
"""

from __future__ import annotations

import streamlit as st

from lrclr.display.windowing import WindowScale, dragged_window
from pages.parts.widget_state import held, put

COMPONENT_KEY, CONTEXT_KEY = "viewer-drag-window", "viewer-drag-window-context"

_JS = r"""
export default function(component) {
  const { setTriggerValue } = component;
  const chart = () => document.querySelector(".st-key-viewer [data-testid='stPlotlyChart']");
  const pictures = (c) => c ? [...c.querySelectorAll("image")] : [];
  const inChart = (e) => { const c = chart(); return c && c.contains(e.target) ? c : null; };
  let start = null;
  const fraction = (e) => ({ dx: (e.clientX - start.x) / start.w, dy: (e.clientY - start.y) / start.h });
  const down = (e) => {
    const c = inChart(e);
    if (!c || !(e.button === 2 || (e.button === 0 && e.ctrlKey))) return;
    const box = (c.querySelector(".nsewdrag") || c).getBoundingClientRect();
    start = { x: e.clientX, y: e.clientY, w: box.width, h: box.height, chart: c };
    e.preventDefault(); e.stopPropagation();
  };
  const move = (e) => {
    if (!start) return;
    e.preventDefault(); e.stopPropagation();
    const { dx, dy } = fraction(e);
    // A preview only: wider is less contrast, down is darker; the page draws the real window.
    const filter = `contrast(${Math.exp(-2 * dx)}) brightness(${Math.exp(-2 * dy)})`;
    pictures(start.chart).forEach((p) => { p.style.filter = filter; });
  };
  const clearPreview = (c) => pictures(c).forEach((p) => { p.style.filter = ""; });
  const up = (e) => {
    if (!start) return;
    e.preventDefault(); e.stopPropagation();
    const drag = fraction(e), c = start.chart;
    start = null;
    if (Math.abs(drag.dx) + Math.abs(drag.dy) < 0.005) { clearPreview(c); return; }
    // Keep the preview until the page's new picture arrives, then drop it.
    const observer = new MutationObserver(() => { clearPreview(chart()); observer.disconnect(); });
    observer.observe(c, { subtree: true, childList: true, attributes: true, attributeFilter: ["href"] });
    setTimeout(() => { observer.disconnect(); clearPreview(chart()); }, 8000);
    setTriggerValue("drag", drag);
  };
  const menu = (e) => { if (inChart(e)) e.preventDefault(); };
  const options = { capture: true };
  const listeners = [["mousedown", down], ["mousemove", move], ["mouseup", up], ["contextmenu", menu]];
  listeners.forEach(([name, listener]) => document.addEventListener(name, listener, options));
  return () => listeners.forEach(([name, listener]) => document.removeEventListener(name, listener, options));
}
"""

_component = st.components.v2.component("lrclr_drag_window", js=_JS)


def drag_windowing(case: str, scale: WindowScale, level_key: str, width_key: str, preset_key: str,
                   custom: str) -> None:
    """Mount the listener (beside the viewer); a drag moves this case's level and width."""
    st.session_state[CONTEXT_KEY] = (scale, level_key, width_key, preset_key, custom)
    _component(key=COMPONENT_KEY, on_drag_change=_on_drag)


def _on_drag() -> None:
    context = st.session_state.get(CONTEXT_KEY)
    drag = (st.session_state.get(COMPONENT_KEY) or {}).get("drag")
    if context is None or not isinstance(drag, dict):
        return
    scale, level_key, width_key, preset_key, custom = context
    try:
        dx, dy = float(drag.get("dx", 0)), float(drag.get("dy", 0))
    except (TypeError, ValueError):
        return
    if not (abs(dx) < 10 and abs(dy) < 10):  # the browser's numbers: a drag is within the page
        return
    center, width = dragged_window(scale, held(level_key, scale.default.center), held(width_key, scale.default.width),
                                   dx, dy)
    put(level_key, center)
    put(width_key, width)
    put(preset_key, custom)
