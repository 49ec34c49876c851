"""User text shown literally, wherever it goes: Markdown widgets, plotly labels, matplotlib figures,
CSV cells.

Reports, file names, annotator names, comments, typed phrases and findings are user text. Each
destination has one helper here, and nothing else in the project escapes text for it, so the screen
and an export cannot disagree about what a name was.
"""

from __future__ import annotations

import html
import re

# Every ASCII punctuation character may be backslash-escaped in CommonMark; escaping all of them
# also defuses Streamlit's own ":colour[...]" and ":material/...:" directives and KaTeX's "$".
_MARKDOWN_SPECIAL = re.compile(r"([!-/:-@\[-`{-~])")
# GitHub-flavoured Markdown turns bare "www.x.org", "https://x.org" and "a@b.org" into links even
# when their punctuation is escaped (checked in chromium); an invisible word joiner after "www", before
# "//" and before "@" breaks each pattern without changing what the reader sees.
_BARE_LINK_PLACES = re.compile(r"(?i)(?<=\bwww)(?=\\\.)|(?<=\\:)(?=\\/\\/)|(?<=\w)(?=\\@)")
_WORD_JOINER = "\u2060"
# Spreadsheets run a cell that starts with one of these as a formula ("=HYPERLINK(...)"); a
# leading apostrophe makes it text. An apostrophe is itself escaped, so reading back is exact.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "'")


def markdown_literal(text: str) -> str:
    """Text for a widget Streamlit renders as Markdown, shown exactly as typed: no links, images,
    emphasis, colours, maths or HTML."""
    return _BARE_LINK_PLACES.sub(_WORD_JOINER, _MARKDOWN_SPECIAL.sub(r"\\\1", text))


def plotly_label(text: str) -> str:
    """Text for a plotly title, axis label, legend entry or hover text: plotly reads a subset of
    HTML there (``<a href>``, ``<b>``, ``<br>``), so ``<``, ``>`` and ``&`` are escaped."""
    return html.escape(text, quote=False)


def matplotlib_literal(artist):
    """A matplotlib figure (every text in it) or one text, set to draw its strings exactly.

    matplotlib reads a string with two "$" as mathtext ("$x^2$" draws x squared) and, where the
    ``text.usetex`` setting is on, hands every string to LaTeX. Turning both off per text, rather
    than escaping "$", keeps the string itself unchanged, so a test can find it as typed.
    """
    from matplotlib.text import Text

    texts = [artist] if isinstance(artist, Text) else artist.findobj(Text)
    for text in texts:
        text.set_parse_math(False)
        text.set_usetex(False)
    return artist


def csv_text_cell(text: str) -> str:
    """A text cell that a spreadsheet shows as text, never runs as a formula."""
    return "'" + text if text.startswith(_FORMULA_START) else text


def csv_text_value(cell: str) -> str:
    """The text a ``csv_text_cell`` was made from."""
    return cell[1:] if cell.startswith("'") else cell
