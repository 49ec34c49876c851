"""Annotate: judge the model's region-word matches of a case, one pair at a time, from the keyboard.

Layout only: the queue comes from ``lrclr.annotations.queue``, verdicts go to ``lrclr.annotations.store``.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from lrclr.display import figures as viz
from lrclr.annotations.queue import DEFAULT_QUEUE_LENGTH, QueueItem, build_queue, sentence_markdown
from lrclr.annotations.records import VERDICTS, PairKey
from lrclr.annotations.store import AnnotationStore
from lrclr.errors import ImageReadError, LRCLRError
from lrclr.imaging.reading import load_image
from lrclr.escaping import markdown_literal
from lrclr.trust.case_findings import sha256_hex
from pages.parts.case_source import CaseInput, case_navigation, choose_case
from pages.parts.shared import (
    cached,
    current_annotator,
    current_model,
    current_settings,
    current_store,
    encode_case,
    image_bytes,
    model_key,
)
from pages.parts import frame

SHORTCUTS = {"bad match": "B", "good match": "G", "unsure": "U"}


def pair_key(item: QueueItem, case: CaseInput, explanation, image_sha: str, report_sha: str) -> PairKey:
    return PairKey.from_explanation(explanation.model_id, case.case_id, image_sha, report_sha,
                                    item.word, item.region)


def record(store: AnnotationStore, annotator: str, pair: PairKey, verdict: str, comment_key: str) -> None:
    """Button callback: store the verdict; the comment box empties for the next pair."""
    try:
        store.record(annotator, pair, verdict, st.session_state.get(comment_key, ""))
    except (LRCLRError, ValueError) as error:
        st.session_state["annotate-error"] = str(error)
        return
    st.session_state[comment_key] = ""


def undo(store: AnnotationStore, annotator: str) -> None:
    entry = store.undo_last(annotator)
    st.session_state["annotate-notice"] = "Nothing to undo." if entry is None else "Last change undone."


def continue_as_known_annotator() -> None:
    """Confirm button: picking a name in the list only proposes it, since someone else's name
    chosen by accident records verdicts under it (issue #19)."""
    st.session_state["annotator"] = st.session_state["annotate-known"]


def skip(skipped_key: str, identity: tuple) -> None:
    st.session_state.setdefault(skipped_key, set()).add(identity)


def verdict_buttons(store, annotator, pair, comment_key, skipped_key) -> None:
    for column, verdict in zip(st.columns(3), VERDICTS):
        column.button(verdict.capitalize(), shortcut=SHORTCUTS[verdict], width="stretch",
                      on_click=record, args=(store, annotator, pair, verdict, comment_key),
                      type="primary" if verdict == "bad match" else "secondary")
    left, right, _ = st.columns(3)
    left.button("Skip", shortcut="S", width="stretch", on_click=skip, args=(skipped_key, pair.identity))
    right.button("Undo last", shortcut="Z", width="stretch", on_click=undo, args=(store, annotator))


def show_pair(image, explanation, item: QueueItem):
    """The region on the image beside the word in its sentence; returns the details column."""
    picture, details = st.columns([1, 1])
    base = viz.to_display_rgb(image.pixels)
    heat = viz.overlay_heatmap(base, explanation.attention_map(item.word.index), explanation.letterbox,
                               opacity=0.35)
    picture.image(viz.highlight_region(heat, explanation, item.region.rank),
                  caption=f"Region {item.region.rank} (cyan box) over the word's attention map", width="stretch")
    details.markdown(f"Word {item.word.index + 1} in its sentence:")
    details.markdown(sentence_markdown(item))
    details.caption(f"Attention of this word on region {item.region.rank}: {item.attention:.3f} "
                    f"(uniform would be {1 / len(explanation.regions):.3f}); region significance "
                    f"(selector) {item.region.significance:.2f}.")
    return details


def progress(store: AnnotationStore, annotator: str, queue_length: int, done: int) -> None:
    st.progress(done / queue_length, text=f"This case: {done} of {queue_length} pairs judged")
    total = sum(store.counts("annotator").get(annotator, {}).values())
    cases = sum(1 for counts in store.counts("case_id").values() if counts)
    st.caption(f"You have judged {total} pair(s) overall; the store holds verdicts on {cases} case(s).")


def judged_table(verdicts) -> None:
    if not verdicts:
        return
    st.dataframe(pd.DataFrame({
        "word": [v.pair.word for v in verdicts], "region": [v.pair.region_rank for v in verdicts],
        "verdict": [v.verdict for v in verdicts], "comment": [v.comment for v in verdicts],
        "updated (UTC)": [v.updated_at for v in verdicts]}), hide_index=True, width="stretch")


def annotate(model, store: AnnotationStore, annotator: str, case: CaseInput) -> None:
    image_sha = sha256_hex(case.data)  # once per run: images are megabytes, the queue has dozens of pairs
    try:
        image = cached("annotate-image", (image_sha,), lambda: load_image(
            case.data, name=case.file_name, max_decoded_pixels=current_settings().budgets.decoded_pixels),
            size=image_bytes)
    except ImageReadError as error:
        st.error(markdown_literal(str(error)))
        return
    case_image = encode_case(model, model_key(model), image_sha, image)
    explanation = cached("annotate-explanation", (model_key(model), image_sha, case.report),
                         lambda: model.explain(case_image, case.report, findings=()))
    if not explanation.regions:
        st.info("This model selects no regions (global-only baseline): there are no region-word pairs to judge.")
        return
    length = st.slider("Pairs per case", 5, 100, DEFAULT_QUEUE_LENGTH, 5)
    queue = build_queue(explanation, length)
    if not queue:
        st.info("The report has no words to judge (type or paste a report above).")
        return
    report_sha = sha256_hex(explanation.report)
    pairs = [pair_key(item, case, explanation, image_sha, report_sha) for item in queue]
    mine = store.verdicts(annotator=annotator, model_id=explanation.model_id, case_id=case.case_id,
                          image_sha256=image_sha, report_sha256=report_sha)
    judged = {v.pair.identity for v in mine} & {pair.identity for pair in pairs}
    skipped_key = f"annotate-skipped-{image_sha[:12]}"
    skipped = st.session_state.get(skipped_key, set())
    progress(store, annotator, len(queue), len(judged))
    pending = [(item, pair) for item, pair in zip(queue, pairs) if pair.identity not in judged | skipped]
    if not pending:
        st.success("Every pair in this case's queue is judged or skipped. Choose another case, or lengthen the queue.")
        if skipped and st.button("Show skipped pairs again"):
            st.session_state[skipped_key] = set()
            st.rerun()
    else:
        item, pair = pending[0]
        details = show_pair(image, explanation, item)
        comment_key = f"annotate-comment-{sha256_hex(repr(pair.identity))[:16]}"
        details.text_input("Comment (optional)", key=comment_key, max_chars=5000)
        with details:
            verdict_buttons(store, annotator, pair, comment_key, skipped_key)
            st.caption("Keys: B bad match · G good match · U unsure · S skip · Z undo last")
    judged_table(mine)


def annotate_section(annotator_name: str, flag_store, loaded_model, chosen_case) -> None:
    if not annotator_name:
        st.warning("Enter your name or ID in the sidebar first: every verdict records who gave it.")
        known = list(flag_store.counts("annotator")) if flag_store is not None else []
        if known:
            proposed = st.selectbox("Or continue as an annotator already in this store", known, index=None,
                                    key="annotate-known")
            if proposed:
                st.button(markdown_literal(f"Continue as {proposed}: my verdicts are recorded under this name"),
                          on_click=continue_as_known_annotator, key="annotate-known-confirm")
    elif flag_store is None or loaded_model is None:
        st.warning("A model and a flag store are needed (see the sidebar).")
    elif chosen_case is not None:
        annotate(loaded_model, flag_store, annotator_name, chosen_case)


page_frame = frame.begin()  # settings, sign-in, sidebar: before anything of this page
st.title("Annotate")
st.caption("Judge where the model says each report word looks. Verdicts are stored with your name, never "
           "with patient identifiers.")
for name, show in (("annotate-error", st.error), ("annotate-notice", st.info)):
    if st.session_state.get(name):
        show(markdown_literal(st.session_state.pop(name)))
annotator_name, flag_store, loaded_model = current_annotator(), current_store(), current_model()
# The pair being judged comes first, the case picker below it: at 1600x1000 the pair was below the
# fold (issue #19). The picker runs first (the pair depends on it) but draws into the lower slot.
work, case_slot = st.container(), st.container()
with case_slot:
    st.subheader("Case")
    case_navigation("annotate")  # N / P beside B, G, U: the next case without scrolling to the gallery
    gallery_area, report_area = st.container(), st.container()  # the thumbnails take the page's width
    with gallery_area:
        chosen_case = choose_case("annotate", report_area)
with work:
    annotate_section(annotator_name, flag_store, loaded_model, chosen_case)
frame.end(page_frame)
