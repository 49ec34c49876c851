"""Where a case comes from: the bundled demo gallery or an upload. Shared by Review and Annotate."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from lrclr.demo import DemoCase, load_gallery
from lrclr.errors import LRCLRError
from lrclr.escaping import markdown_literal
from lrclr.reports.text import decode_report, report_file_size_problem, report_length_problem
from lrclr.trust.case_findings import sha256_hex, upload_case_id
from pages.parts.gallery import gallery as gallery_grid
from pages.parts.gallery import navigation

GALLERY, UPLOAD = "Demo gallery", "Upload"


@dataclass(frozen=True)
class CaseInput:
    case_id: str  # demo id, or lrclr.trust.case_findings.upload_case_id of the file
    file_name: str  # shown to the user only; never exported or stored
    data: bytes
    report: str
    demo: DemoCase | None


@st.cache_resource(max_entries=1)
def gallery() -> tuple[DemoCase, ...]:
    return load_gallery()


def choose_case(key: str, report_area) -> CaseInput | None:
    """Lay out the case picker (the report box goes into ``report_area``); None until an image is chosen.

    A report over the length limit stays in its box, untouched, and the case goes on without it.
    """
    source = st.radio("Case", [GALLERY, UPLOAD], horizontal=True, key=f"{key}-source")
    case = _gallery_case(key, report_area) if source == GALLERY else _uploaded_case(key, report_area)
    problem = report_length_problem(case.report) if case is not None else ""
    if problem:
        report_area.error(f"Report not used: {problem}.")
        case = CaseInput(case.case_id, case.file_name, case.data, "", case.demo)
    return case


def case_navigation(key: str) -> None:
    """Previous / next demo case (keys P and N); greyed while an upload is open."""
    try:
        cases = gallery()
    except LRCLRError:
        return
    navigation(key, cases, enabled=st.session_state.get(f"{key}-source", GALLERY) == GALLERY)


def provenance_line(case: DemoCase) -> str:
    provenance = case.report_provenance or ""
    if provenance.startswith("openi:"):
        return f"Report: the real OpenI report {provenance.removeprefix('openi:')}, whose findings the phantom draws."
    if provenance.startswith("openi-sentences:") or provenance.startswith("CXR"):
        sentences = provenance.removeprefix("openi-sentences:")
        return f"Report composed from real OpenI sentences (report#sentence): {sentences}."
    return f"Report: {provenance}." if provenance else "No report with this case."


def _gallery_case(key: str, report_area) -> CaseInput | None:
    try:
        cases = gallery()
    except LRCLRError as error:
        st.error(markdown_literal(f"The demo gallery cannot be read: {error}"))
        return None
    case = gallery_grid(key, cases)
    st.markdown(f"**{markdown_literal(case.title)}**")
    st.caption(markdown_literal(f"Source: {case.source}. License: {case.license}."))
    st.caption(markdown_literal(provenance_line(case)))
    if case.notes:
        st.caption(markdown_literal(f"Look at: {case.notes}"))
    report = report_area.text_area("Report", value=case.report_text(), height=120, key=f"{key}-report-{case.id}",
                          help="Edit freely; the model re-reads the report when you change it.")
    return CaseInput(case.id, case.image, case.image_bytes(), report, case)


def _uploaded_case(key: str, report_area) -> CaseInput | None:
    upload = st.file_uploader("Radiograph: PNG, JPEG or DICOM", key=f"{key}-image")
    # A CaseInput another page left here (Batch's "Open in Review"); an upload replaces it.
    handed = st.session_state.get(f"{key}-handoff") if upload is None else None
    report_file = report_area.file_uploader("Report (.txt), or paste it below", type=["txt"],
                                            key=f"{key}-report-file")
    too_big = report_file_size_problem(report_file.size) if report_file else ""
    if too_big:
        report_area.error(f"Report file not read: {too_big}.")
    uploaded_report = (decode_report(report_file.getvalue()) if report_file and not too_big
                       else handed.report if handed else "")
    # Keyed by the report file so that uploading a new one replaces what the box shows.
    report = report_area.text_area("Report", value=uploaded_report, height=120,
                          key=f"{key}-report-{sha256_hex(uploaded_report)[:12]}")
    if handed is not None:
        st.text(f"Opened from the Batch page: {handed.file_name}")
        return CaseInput(handed.case_id, handed.file_name, handed.data, report, None)
    if upload is None:
        st.info("Upload a radiograph to begin, or choose the demo gallery.")
        return None
    data = upload.getvalue()
    return CaseInput(upload_case_id(data), upload.name, data, report, None)
