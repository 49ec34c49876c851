"""Batch: score a folder on the server or an uploaded ZIP of radiographs with the loaded model.

Layout only: reading, scoring, progress and the CSV come from ``lrclr.batch.scoring`` and ``lrclr.batch.prediction_csv``,
the code behind ``python -m lrclr predict``, so the download is byte for byte the CLI's CSV. The
run lives in session state and is stepped one chunk per fragment rerun: the page never freezes,
and Cancel takes effect as soon as the chunk being scored is done.
"""

from __future__ import annotations

import io
import os

import pandas as pd
import streamlit as st

from lrclr.batch.preparing import THUMBNAIL_PX
from lrclr.batch.scoring import BatchRun, format_duration

from lrclr.batch.sources import FolderSource, ZipSource
from lrclr.errors import LRCLRError
from lrclr.escaping import markdown_literal
from lrclr.reports.labeler import NEGATIVE, POSITIVE, UNCERTAIN
from lrclr.findings import NIH_FINDINGS
from lrclr.trust.case_findings import upload_case_id
from pages.parts.case_source import UPLOAD, CaseInput
from pages.parts.review_trust import EXTRA_FINDINGS
from pages.parts.shared import current_model, current_settings
from pages.parts import frame

RUN, RESULTS, ROOT, NOTICE = "batch-run", "batch-results", "batch-root", "batch-notice"
FOLDER, ARCHIVE = "Folder on the server", "ZIP upload"
REPORT_WORDS = {POSITIVE: "present", NEGATIVE: "absent", UNCERTAIN: "uncertain"}


def start(model) -> None:
    """Start button: open the chosen input and begin a new run (the old one's source is closed)."""
    state = st.session_state
    findings = list(state.get("batch-findings") or [])
    if not findings:
        state[NOTICE] = "Choose at least one finding to score."
        return
    try:
        source, root = _open_input(state.get("batch-kind"), state.get("batch-folder", ""),
                                   state.get("batch-zip"), bool(state.get("batch-reports")))
    except (LRCLRError, OSError) as error:
        state[NOTICE] = str(error)
        return
    if not source.inputs and not getattr(source, "listing", False):
        state[NOTICE] = "No PNG, JPEG or DICOM files were found there."
        source.close()
        return
    if state.get(RUN) is not None:
        state[RUN].source.close()
    state[RUN], state[RESULTS], state[ROOT] = BatchRun(model, source, findings, thumbnail_px=THUMBNAIL_PX), [], root
    state.pop(NOTICE, None)


def _open_input(kind, folder: str, upload, with_reports: bool):
    settings = current_settings()
    if kind == ARCHIVE or not settings.batch_roots:
        if upload is None:
            raise LRCLRError("Upload a ZIP archive first.")
        return ZipSource(io.BytesIO(upload.getvalue())), ""
    path = settings.batch_folder(folder)
    # Listed step by step inside the run, so a large tree shows progress and Cancel works at once.
    return FolderSource.walking(path, reports_dir=path if with_reports else None, allow=settings.allows_file), str(path)


def cancel() -> None:
    run = st.session_state.get(RUN)
    if run is not None:
        run.cancel()


def open_in_review(index: int) -> None:
    """Hands the chosen file (and its report) to the Review page's Upload source."""
    run, result = st.session_state[RUN], st.session_state[RESULTS][index]
    try:
        data = run.source.read_bytes(result.input)
        report = run.source.report(result.input) or ""
    except (LRCLRError, OSError) as error:
        st.session_state[NOTICE] = f"{result.row.image} cannot be opened: {error}"
        return
    st.session_state["review-source"] = UPLOAD
    typed = [finding for finding in run.findings if finding not in NIH_FINDINGS]
    if typed:  # what the batch scored, Review scores too
        st.session_state[EXTRA_FINDINGS] = ", ".join(typed)
    st.session_state["review-handoff"] = CaseInput(upload_case_id(data), result.row.image, data,
                                                   report, None)
    st.session_state["batch-open-review"] = True


def input_form(running: bool) -> None:
    roots = current_settings().batch_roots
    # Server folders only where the deployment lists some: by default a browser user reads no server file.
    kind = st.radio("Images from", [FOLDER, ARCHIVE] if roots else [ARCHIVE], horizontal=True, key="batch-kind",
                    disabled=running)
    if kind == FOLDER:
        st.text_input("Folder on the server", key="batch-folder", disabled=running,
                      placeholder=str(roots[0] / "2024-05"),
                      help="Read recursively (hidden folders skipped): PNG, JPEG and DICOM files. Allowed: "
                           + ", ".join(markdown_literal(str(root)) for root in roots))
        st.checkbox("Read same-named .txt reports from this folder", key="batch-reports", disabled=running,
                    help="Adds what each report states per finding (the CLI's --reports option)")
    else:
        st.file_uploader("ZIP of PNG, JPEG or DICOM files (same-named .txt reports are read too)", type=["zip"],
                         key="batch-zip", disabled=running)
    st.session_state.setdefault("batch-findings", list(NIH_FINDINGS))
    st.multiselect("Findings to score", list(NIH_FINDINGS), key="batch-findings", accept_new_options=True,
                   disabled=running, help="Any finding name can be typed; the model scores it zero-shot")


@st.fragment(run_every=0.5)
def progress_panel() -> None:
    """Draws the progress, then scores one chunk; the fragment's timer runs it again for the next.

    Nothing is drawn after the chunk, so a click (Cancel) that arrives while it is scored is handled
    by the rerun that follows, with the chunk's results already kept.
    """
    run = st.session_state[RUN]
    if not run.active:
        st.rerun(scope="app")
    st.progress(run.position / max(run.total, 1),
                text=f"{run.progress_text()} · {run.scored} scored, {run.failed} could not be read")
    st.caption(f"{run.batch_size} images per model batch on {run.model.device_info.name}. "
               "Cancel stops after the batch being scored.")
    st.session_state[RESULTS].extend(run.step())


def summary(run: BatchRun) -> None:
    state = "Cancelled" if run.cancelled and not run.finished else "Finished"
    st.progress(run.position / max(run.total, 1), text=f"{state}: {run.position} / {run.total}")
    per_file = f" ({run.seconds / run.position:.2f} s per file)" if run.position else ""
    st.caption(f"{run.scored} scored, {run.failed} could not be read, in {format_duration(run.seconds)}{per_file}.")
    if run.total == 0 and not run.cancelled:
        st.info("No PNG, JPEG or DICOM files were found there.")


def display_path(path: str) -> str:
    root = st.session_state.get(ROOT)
    return os.path.relpath(path, root) if root else path


def results_table(run: BatchRun, results: list) -> None:
    scored = [(i, r) for i, r in enumerate(results) if not r.row.error]
    st.subheader(f"Results ({len(scored)} scored)")
    if not scored:
        st.info("No image has been scored yet.")
        return
    left, right = st.columns(2)
    finding = left.selectbox("Filter by finding", run.findings, key="batch-filter-finding")
    threshold = right.slider("Minimum probability for that finding", 0.0, 1.0, 0.0, 0.01,
                             key="batch-threshold")
    shown = sorted((item for item in scored if item[1].row.probabilities[finding] >= threshold),
                   key=lambda item: -item[1].row.probabilities[finding])
    frame = pd.DataFrame({"image": [r.thumbnail for _, r in shown], "file": [display_path(r.input.path) for _, r in shown],
                          **{f: [r.row.probabilities[f] for _, r in shown] for f in run.findings}})
    if run.source.with_reports:
        for f in run.findings:
            frame[f"report: {f}"] = [REPORT_WORDS.get(r.row.report_labels.get(f), "") for _, r in shown]
    # The input gate (lrclr.imaging.input_check): a study that does not look like a chest film says why.
    frame["chest film?"] = ["yes" if not r.row.input_check else f"no: {r.row.input_check}" for _, r in shown]
    config = {"image": st.column_config.ImageColumn("image", width="small"),
              **{f: st.column_config.NumberColumn(f, format="%.3f") for f in run.findings}}
    st.dataframe(frame, hide_index=True, column_config=config, width="stretch", row_height=64)
    # The table sorts in the browser, which the page never hears of: the caption says how it was
    # listed, and that a header click changes that (it said "highest X first" after any sort).
    st.caption(markdown_literal(f"{len(shown)} of {len(scored)} scored studies shown, listed highest {finding} first "
                                f"(a click on a column header sorts by that column instead). Zero-shot probabilities "
                                f"from a research model: not a diagnosis."))
    if shown:
        labels = {i: display_path(r.input.path) for i, r in shown}
        choice = st.selectbox("Open a study in the Review page", list(labels), key="batch-open-choice",
                              format_func=labels.__getitem__)
        st.button("Open in Review", on_click=open_in_review, args=(choice,))


def errors_table(results: list) -> None:
    failed = [r for r in results if r.row.error]
    st.subheader(f"Files that could not be scored ({len(failed)})")
    if not failed:
        st.caption("None.")
        return
    st.dataframe(pd.DataFrame({
        "file": [display_path(r.input.path) for r in failed],
        "reason": [r.row.error.removeprefix(f"{r.row.image}: ") for r in failed],
    }), hide_index=True, width="stretch")


def download(run: BatchRun, results: list) -> None:
    from lrclr.batch.prediction_csv import write_csv

    def csv_bytes() -> bytes:
        buffer = io.StringIO(newline="")
        write_csv([r.row for r in results], buffer, run.findings, run.source.with_reports)
        return buffer.getvalue().encode("utf-8")

    st.download_button("Download CSV", data=csv_bytes, file_name="predictions.csv", mime="text/csv",
                       on_click="ignore", type="primary")
    partial = " Cancelled: only the files handled before Cancel are in it." if not run.finished else ""
    st.caption("The same file `python -m lrclr predict` writes for these files: one row per file, "
               f"probabilities to 6 decimals, the reason in `error` for files that could not be read.{partial}")


def batch_page() -> None:
    model = current_model()
    if model is None:
        st.warning("No model is loaded (see the sidebar).")
        return
    run = st.session_state.get(RUN)
    running = run is not None and run.active
    input_form(running)
    with st.container(horizontal=True):
        st.button("Start", type="primary", on_click=start, args=(model,), disabled=running)
        st.button("Cancel", on_click=cancel, disabled=not running)
    if notice := st.session_state.get(NOTICE):
        st.error(markdown_literal(notice))
    if run is None:
        return
    if running:
        progress_panel()
        return
    results = st.session_state[RESULTS]
    summary(run)
    download(run, results)
    results_table(run, results)
    errors_table(results)


page_frame = frame.begin()  # settings, sign-in, sidebar: before anything of this page
if st.session_state.pop("batch-open-review", False):
    st.switch_page("pages/review.py")
st.title("Batch")
st.caption("Score many radiographs at once with the model chosen in the sidebar. Research tool, not a medical device.")
batch_page()
frame.end(page_frame)
