"""Helpers for testing the app's pages in Streamlit's AppTest: downloads, what Markdown shows, settings."""

from __future__ import annotations

from pathlib import Path


def captured_downloads(monkeypatch) -> dict:
    """The download buttons' data callables by file name (AppTest never clicks them)."""
    from streamlit.runtime.media_file_manager import MediaFileManager

    captured = {}
    original = MediaFileManager.add_deferred

    def add_deferred(self, data_callable, mimetype, coordinates, file_name=None, **kwargs):
        captured[file_name] = data_callable
        return original(self, data_callable, mimetype, coordinates, file_name, **kwargs)

    monkeypatch.setattr(MediaFileManager, "add_deferred", add_deferred)
    return captured


def as_shown(markdown: str) -> str:
    """What the reader sees of Markdown built by ``markdown_literal``: escapes and joiners removed."""
    import re

    return re.sub(r"\\(.)", r"\1", markdown).replace("\u2060", "")


def deployment_settings(monkeypatch, folder: Path, text: str) -> Path:
    """A deployment settings file with ``text`` (TOML), made the server's via ``$LRCLR_SETTINGS``."""
    path = folder / "deployment.toml"
    path.write_text(text, encoding="utf-8")
    monkeypatch.setenv("LRCLR_SETTINGS", str(path))
    return path
