"""Radiology report text: OpenI XML, MIMIC-style sections, sentences and words with character spans.

Every span is a pair of character offsets into the exact string the caller passed in, so
``text[span.start:span.end]`` reproduces the piece; the app relies on this to highlight words and
the labeler to point at its triggers.

OpenI de-identification replaces words with ``XXXX`` (dates, names, and sometimes ordinary words
such as "opacities" or "pacemaker"). A mark is kept as a word so spans stay honest, but it never
ends a sentence by itself and the labeler never reads a finding from it (see ``is_deidentified``).
"""

from __future__ import annotations

import re
import tarfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from lrclr.errors import LRCLRError

DEID_MARK = "XXXX"
# Section key for text that no header governs (a plain findings paragraph, a MIMIC preamble).
UNHEADED = "text"
# A single XML report is a few kilobytes; refuse anything far larger rather than parse it.
MAX_XML_BYTES = 2_000_000


# One limit for every way a report arrives: Review, Annotate, Batch and the CLI. The longest of
# OpenI's 3,955 reports is 1,412 characters (median 245); MIMIC-CXR's run to a few thousand. The
# labeler's cost is linear in the length, but one pasted document must not hold a core for seconds.
MAX_REPORT_CHARS = 20_000
# A report file is refused unread above this: UTF-8 takes at most 4 bytes per character.
MAX_REPORT_FILE_BYTES = 4 * MAX_REPORT_CHARS


class ReportReadError(LRCLRError):
    """A report file or archive could not be read (missing, not XML, unsafe XML)."""


class ReportTooLongError(ReportReadError):
    """A report longer than ``MAX_REPORT_CHARS``; its text is left where it was, unread."""


def report_length_problem(text: str) -> str:
    """Why a report will not be read ("" if it will): the one wording of the length limit."""
    if len(text) <= MAX_REPORT_CHARS:
        return ""
    return (f"the report has {len(text):,} characters, more than the {MAX_REPORT_CHARS:,} read "
            f"(a chest radiograph report is rarely over 5,000); it is not used until it is shortened")


def report_file_size_problem(size: int) -> str:
    """The same limit for a report file, checked before it is read."""
    if size <= MAX_REPORT_FILE_BYTES:
        return ""
    return (f"the report file is {size:,} bytes, more than a {MAX_REPORT_CHARS:,}-character report "
            f"can take; it is not read")


def checked_report(text: str) -> str:
    """``text`` if it is within the limit, else ``ReportTooLongError`` saying so."""
    problem = report_length_problem(text)
    if problem:
        raise ReportTooLongError(problem)
    return text


# slots: a long report has tens of thousands of spans and mentions; without a __dict__ each they
# cost half the memory and half the garbage collector's work.
@dataclass(frozen=True, slots=True)
class Span:
    start: int
    end: int


@dataclass(frozen=True)
class Word:
    text: str
    start: int
    end: int


@dataclass(frozen=True)
class Sentence:
    text: str
    start: int
    end: int
    section: str


@dataclass(frozen=True)
class OpenIReport:
    report_id: str
    comparison: str
    indication: str
    findings: str
    impression: str
    mesh_major: tuple[str, ...]
    mesh_automatic: tuple[str, ...]
    image_ids: tuple[str, ...]

    def text(self) -> str:
        """FINDINGS then IMPRESSION as one string (no headers): what the text tower is given."""
        return " ".join(part for part in (self.findings, self.impression) if part)

    def sentences(self) -> list[Sentence]:
        """Sentences of ``text()`` with offsets into it and their section ("findings"/"impression")."""
        # text() is findings + " " + impression, so the impression starts after that offset.
        impression_start = len(self.findings) + 1 if self.findings else 0
        return [
            _with_section(s, "impression" if self.impression and s.start >= impression_start else "findings")
            for s in split_sentences(self.text())
        ]


def _with_section(sentence: Sentence, section: str) -> Sentence:
    return Sentence(sentence.text, sentence.start, sentence.end, section)


def is_deidentified(word: str) -> bool:
    """True for an OpenI de-identification mark (``XXXX``, also glued to punctuation)."""
    return word.strip(".,;:()'\"").upper() == DEID_MARK


# ---------------------------------------------------------------------------------------------
# OpenI XML


def _refuse_unsafe_xml(xml_bytes: bytes) -> None:
    # xml.etree expands internal entities (billion-laughs); OpenI files never declare any, so any
    # DTD or entity declaration is refused instead of being parsed.
    if len(xml_bytes) > MAX_XML_BYTES:
        raise ReportReadError(f"report XML is {len(xml_bytes)} bytes; refusing more than {MAX_XML_BYTES}")
    head = xml_bytes.upper()
    if b"<!DOCTYPE" in head or b"<!ENTITY" in head:
        raise ReportReadError("report XML declares a DTD or entities, which is refused for safety")


def parse_openi_xml(xml_bytes: bytes | str, report_id: str | None = None) -> OpenIReport:
    """One OpenI report. ``report_id`` defaults to the document's uId (e.g. ``CXR3029``)."""
    if isinstance(xml_bytes, str):
        xml_bytes = xml_bytes.encode("utf-8")
    _refuse_unsafe_xml(xml_bytes)
    try:
        root = ET.fromstring(xml_bytes)
    except ET.ParseError as error:
        raise ReportReadError(f"report {report_id or ''} is not well-formed XML: {error}") from None
    sections = {
        (node.get("Label") or "").strip().upper(): " ".join((node.text or "").split())
        for node in root.iter("AbstractText")
    }
    if report_id is None:
        uid = root.find("uId")
        report_id = uid.get("id", "") if uid is not None else ""
    mesh = root.find("MeSH")
    return OpenIReport(
        report_id=report_id,
        comparison=sections.get("COMPARISON", ""),
        indication=sections.get("INDICATION", ""),
        findings=sections.get("FINDINGS", ""),
        impression=sections.get("IMPRESSION", ""),
        mesh_major=_texts(mesh, "major"),
        mesh_automatic=_texts(mesh, "automatic"),
        image_ids=tuple(node.get("id", "") for node in root.iter("parentImage")),
    )


def _texts(parent: ET.Element | None, tag: str) -> tuple[str, ...]:
    if parent is None:
        return ()
    return tuple(" ".join(node.text.split()) for node in parent.iter(tag) if node.text and node.text.strip())


def _natural_key(report_id: str) -> tuple:
    # "CXR2" before "CXR10": numbers compare as numbers.
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", report_id))


def load_openi_reports(path: str | Path) -> list[OpenIReport]:
    """All reports in the OpenI ``.tgz`` (or any tar) or a folder of XML files, sorted by report_id."""
    path = Path(path)
    if path.is_dir():
        reports = [parse_openi_xml(f.read_bytes()) for f in sorted(path.rglob("*.xml")) if f.is_file()]
    elif path.is_file():
        reports = list(_reports_in_tar(path))
    else:
        raise ReportReadError(f"no report archive or folder at {path}")
    return sorted(reports, key=lambda r: _natural_key(r.report_id))


def _reports_in_tar(path: Path):
    try:
        archive = tarfile.open(path, "r:*")
    except (tarfile.TarError, OSError) as error:
        raise ReportReadError(f"{path} is not a readable tar archive: {error}") from None
    with archive:
        for member in archive:
            if not (member.isfile() and member.name.lower().endswith(".xml")):
                continue
            handle = archive.extractfile(member)
            if handle is not None:
                yield parse_openi_xml(handle.read(MAX_XML_BYTES + 1))


# ---------------------------------------------------------------------------------------------
# Sections

# Headers radiologists write (MIMIC-CXR, OpenI, most US practices); matched case-insensitively at
# a line start or after a sentence end, always followed by a colon.
_KNOWN_HEADERS = (
    "findings", "impression", "impressions", "comparison", "comparisons", "indication", "indications",
    "history", "clinical history", "clinical information", "reason for exam", "reason for examination",
    "technique", "examination", "exam", "procedure", "conclusion", "conclusions", "recommendation",
    "recommendations", "notification", "wet read", "final report", "addendum", "summary",
)
_HEADER_RE = re.compile(
    r"(?:^|(?<=[.!?]\s)|(?<=[.!?]\s\s))[ \t]*"
    r"(?P<name>" + "|".join(sorted((re.escape(h) for h in _KNOWN_HEADERS), key=len, reverse=True))
    + r"|[A-Z][A-Z ]{2,30}[A-Z])[ \t]*:",
    re.IGNORECASE | re.MULTILINE,
)


def _section_key(name: str) -> str:
    key = "_".join(name.lower().split())
    return {"impressions": "impression", "comparisons": "comparison", "indications": "indication",
            "conclusions": "conclusion", "recommendations": "recommendation"}.get(key, key)


def _headers(text: str) -> list[tuple[str, int, int]]:
    """(section key, header start, body start) for each header; unknown names only if ALL CAPS."""
    found: list[tuple[str, int, int]] = []
    if ":" not in text:
        return found  # every header ends with a colon; most reports' sentences hold none
    for match in _header_matches(text):
        name = match.group("name")
        if name.lower() not in _KNOWN_HEADERS and (name != name.upper() or DEID_MARK in name):
            continue
        found.append((_section_key(name), match.start("name"), match.end()))
    return found


_SENTENCE_MARK_RE = re.compile(r"[.!?]")


def _header_matches(text: str):
    """``_HEADER_RE.finditer(text)``, tried only where a header may start: at a line start or one
    or two blanks after a sentence end (its opening alternatives). The plain search tries every
    position, a tenth of a second on a 2 MB report without periods."""
    end = -1
    for start in _header_starts(text):
        if start < end:
            continue
        match = _HEADER_RE.match(text, start)
        if match is not None:
            yield match
            end = max(match.end(), start + 1)


def _header_starts(text: str) -> list[int]:
    starts = {0}
    at = text.find("\n")
    while at >= 0:
        starts.add(at + 1)
        at = text.find("\n", at + 1)
    for mark in _SENTENCE_MARK_RE.finditer(text):
        after = mark.end()
        if after < len(text) and text[after].isspace():
            starts.add(after + 1)
            if after + 1 < len(text) and text[after + 1].isspace():
                starts.add(after + 2)
    return sorted(start for start in starts if start <= len(text))


def split_sections(text: str) -> dict[str, str]:
    """Section key -> stripped body. Text outside any header is under ``UNHEADED`` ("text").

    A repeated header's bodies are joined with a space so nothing is lost.
    """
    out: dict[str, str] = {}
    headers = _headers(text)
    bounds = [(UNHEADED, 0, 0)] + headers
    for index, (key, _, body_start) in enumerate(bounds):
        body_end = bounds[index + 1][1] if index + 1 < len(bounds) else len(text)
        body = text[body_start:body_end].strip()
        if body:
            out[key] = f"{out[key]} {body}" if key in out else body
    return out


# ---------------------------------------------------------------------------------------------
# Sentences and words

# Abbreviations whose period never ends a sentence. "a.m."/"p.m." are handled by the rule below
# (they end a sentence only when a capitalised word follows).
_ABBREVIATIONS = frozenset(
    "dr mr mrs ms prof st vs approx appt e.g i.e etc fig no nos incl resp cf al".split()
)
_END_RE = re.compile(r"[.!?]+[\"')\]]*(?=\s|$)|\n[ \t]*\n|\n")
_LIST_MARKER_RE = re.compile(r"\s*\(?\d{1,2}[.)]$")
_WORD_RE = re.compile(r"[A-Za-z0-9]+(?:(?:['\u2019]|-|(?<=\d)\.(?=\d))[A-Za-z0-9]+)*")
# A line that opens like this starts a new statement even without a period before it:
# "- small left effusion", "* no pneumothorax", "2) stable nodule", "Heart size normal".
_NEW_LINE_ITEM_RE = re.compile(r"[ \t]*(?:[-*\u2022\u2013]\s|\(?\d{1,2}[.)]\s|[A-Z])")
# Words after which a line break is a wrapped line, not the end of a statement ("no\nPneumothorax").
_CONTINUING_WORDS = frozenset(
    "a an the and or nor of no not without with in on at to for from by is are was were be been "
    "there this that these those which than as but both either neither".split()
)
# How far back and ahead the rules look around a candidate sentence end; a fixed span, so that a
# report with many periods in one sentence ("e.g." x 10,000) costs time linear in its length.
_CONTEXT_CHARS = 64


def _is_boundary(text: str, match: re.Match, sentence_start: int) -> bool:
    ending = match.group(0)
    if ending.strip() == "" and ending.count("\n") > 1:  # blank line
        return True
    before = text[max(sentence_start, match.start() - _CONTEXT_CHARS):match.start()].split()
    token = before[-1] if before else ""
    if ending == "\n":
        return _line_break_ends_sentence(text, match.end(), token)
    following = text[match.end():match.end() + _CONTEXT_CHARS].lstrip("\"')] \t\r\n")
    next_char = following[:1]
    if _LIST_MARKER_RE.fullmatch(text, sentence_start, match.end()):
        return False  # "1." opening a numbered item
    bare = token.lower().rstrip(".").lstrip("(")
    if ending == "." and bare in _ABBREVIATIONS and bare != "no":
        return False
    if ending == "." and bare == "no" and next_char.isdigit():
        return False  # "No. 2"
    if ending == "." and len(bare) == 1 and bare.isalpha() and next_char[:1].isupper():
        return False  # an initial: "J. Smith"
    if bare in ("a.m", "p.m") and not next_char.isupper():
        return False
    # Anything else ends the sentence, lower-case next word included: OpenI radiologists often
    # start sentences in lower case. "XXXX." is no exception (the mark stands for a real word), so
    # it ends a sentence exactly when a real word there would; it is never taken for an initial.
    return True


def _line_break_ends_sentence(text: str, next_line: int, last_word: str) -> bool:
    """A single line break ends a statement in a line-per-finding report ("Heart size normal\n
    Small left effusion"), but not in a report wrapped at a fixed width, where a sentence runs on
    ("There is no focal\nconsolidation"): the next line must open like a new item and the line
    must not end in a comma, a hyphen or a word that needs a continuation."""
    if not last_word or last_word[-1] in ",-;:" or last_word.lower() in _CONTINUING_WORDS:
        return False
    return _NEW_LINE_ITEM_RE.match(text, next_line) is not None


def split_sentences(text: str) -> list[Sentence]:
    """Sentences with exact spans (leading/trailing whitespace trimmed). Section headers are not
    part of any sentence; each sentence carries the key of the header above it (or ``UNHEADED``)."""
    sentences: list[Sentence] = []
    headers = _headers(text)
    bounds = [(UNHEADED, 0, 0)] + headers
    for index, (key, _, body_start) in enumerate(bounds):
        body_end = bounds[index + 1][1] if index + 1 < len(bounds) else len(text)
        sentences.extend(_sentences_in(text, body_start, body_end, key))
    return sentences


def _sentences_in(text: str, start: int, end: int, section: str) -> list[Sentence]:
    out: list[Sentence] = []
    sentence_start = start
    for match in _END_RE.finditer(text, start, end):
        if _is_boundary(text, match, sentence_start):
            _append_trimmed(out, text, sentence_start, match.end(), section)
            sentence_start = match.end()
    _append_trimmed(out, text, sentence_start, end, section)
    return out


def _append_trimmed(out: list[Sentence], text: str, start: int, end: int, section: str) -> None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if end > start and any(ch.isalnum() for ch in text[start:end]):
        out.append(Sentence(text[start:end], start, end, section))


def words(text: str) -> list[Word]:
    """Word tokens with exact spans. Hyphenated words ("well-expanded"), decimals ("2.5") and
    contractions are one word each; slashes split ("effusion/pneumothorax" is two words);
    punctuation is not a word."""
    return [Word(m.group(0), m.start(), m.end()) for m in _WORD_RE.finditer(text)]


def decode_report(data: bytes) -> str:
    """Reports arrive in whatever encoding their system used; never fail on bytes alone."""
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")


def read_report_file(path) -> str:
    """A plain-text report from disk, whatever its encoding."""
    with open(path, "rb") as handle:
        return decode_report(handle.read())
