"""Widget values the page owns: written under the widget's key before the widget is drawn, every run,
and kept under a second key of the page's own while the widget is not drawn.

A keyed widget that takes its value from Session State declares its minimum as its default. When
Streamlit draws it without a value that is new in this run, the browser keeps what it holds; a
browser that has unmounted the widget in between (a run without the viewer that Streamlit
interrupted before its clean-up, as replacing an upload does) holds nothing and shows that
minimum: level 0, width 5 %, threshold 0.05 (issue #19, defect 1). Writing the value every run
makes Streamlit send it with the widget each time, so the browser always shows the page's value.

Streamlit also forgets a widget's key after a run that does not draw it (the threshold, while
another tab is open); the copy under ``<key>--held`` is not a widget's and stays.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import streamlit as st

T = TypeVar("T")


def _kept_key(key: str) -> str:
    return f"{key}--held"


def hold(key: str, default: T, valid: Callable[[Any], bool] | None = None) -> T:
    """The widget's value (its last one, or ``default`` when none or when ``valid`` refuses it),
    written back under ``key``; call before drawing the widget with ``key`` and no ``value``."""
    value = held(key, default)
    if valid is not None and not _accepts(valid, value):
        value = default
    st.session_state[key] = value
    st.session_state[_kept_key(key)] = value
    return value


def held(key: str, default: T) -> T:
    """The value the widget with ``key`` has, or had when it was last drawn (for readers that run
    while it is not drawn, such as the export while the Findings tab is closed)."""
    if key in st.session_state:
        return st.session_state[key]
    return st.session_state.get(_kept_key(key), default)


def put(key: str, value: Any) -> None:
    """Set a held widget's value from a callback (a reset, a preset): both copies."""
    st.session_state[key] = value
    st.session_state[_kept_key(key)] = value


def in_range(low: float, high: float) -> Callable[[Any], bool]:
    """A check for ``hold``: a number within [low, high] (a slider refuses anything else)."""
    return lambda value: isinstance(value, (int, float)) and not isinstance(value, bool) and low <= value <= high


def _accepts(valid: Callable[[Any], bool], value: Any) -> bool:
    try:
        return bool(valid(value))
    except (TypeError, ValueError):
        return False
