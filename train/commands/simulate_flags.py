"""``python -m train simulate-flags``: a SIMULATED annotator's flags, for measuring learning from flags.

No radiologist is available here, so a fixed, documented rule plays the annotator. For each case
(the demo gallery's NIH cases and phantoms, optionally a dataset split's cases) and each word that
states a finding in the report (``lrclr.reports.labeler`` mentions with status positive; negated and hedged
findings have nothing to point at), the model's ``--top-regions`` most attended regions for that
word are judged:

* phantoms (exact ground truth): ``good match`` when the region's box overlaps the finding's mask,
  ``bad match`` when it does not;
* real images (no masks): ``good match`` when the region's centre lies in the area of a frontal
  chest film where that kind of finding can appear (``ZONES``: lung fields, heart, costophrenic
  bases), ``bad match`` when it lies outside (corners, neck, abdomen, mediastinum for a lung
  finding, ...). The rule ignores the report's laterality on purpose: composed reports come from
  other patients' sentences, so their "left"/"right" says nothing about this image.

Each verdict's comment states the rule and the numbers that decided it. Verdicts are stored as
annotator ``simulated-annotator`` in a fresh store (refused if the file exists).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from lrclr.annotations.records import PairKey, sha256_hex

from lrclr.annotations.store import AnnotationStore
from lrclr.bundled import DEFAULT_MODEL_DIR
from lrclr.reports.labeler import POSITIVE, label_report

ANNOTATOR = "simulated-annotator"
TOP_REGIONS = 3

# Plausible areas as rectangles (x0, x1, y0, y1) in fractions of the image's width and height, on
# a frontal film (the patient's right on the image's left). The centre strip x 0.42-0.58 is
# mediastinum and spine, not lung.
_LUNGS = ((0.08, 0.42, 0.10, 0.90), (0.58, 0.92, 0.10, 0.90))
_HEART = ((0.35, 0.78, 0.40, 0.88),)
_BASES = ((0.05, 0.45, 0.50, 0.95), (0.55, 0.95, 0.50, 0.95))
ZONES: dict[str, tuple[tuple[float, float, float, float], ...]] = {
    "Cardiomegaly": _HEART, "Enlarged Cardiomediastinum": _HEART, "Effusion": _BASES,
    "Hernia": ((0.30, 0.70, 0.60, 0.95),),
    **{name: _LUNGS for name in (
        "Atelectasis", "Infiltration", "Mass", "Nodule", "Pneumonia", "Pneumothorax", "Consolidation", "Edema",
        "Emphysema", "Fibrosis", "Pleural_Thickening", "Lung Opacity", "Lung Lesion", "Pleural Other")},
}


@dataclass(frozen=True)
class Case:
    case_id: str  # non-identifying: a demo id or "img-" + the image's SHA-256 prefix
    image_path: Path
    report: str
    masks: dict  # finding -> bool (H, W) mask, phantoms only


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, metavar="DB",
                        help="new flag store to write (must not exist)")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR,
                        help="model whose attention is judged (default: the bundled LRCLR model)")
    parser.add_argument("--top-regions", type=int, default=TOP_REGIONS,
                        help=f"most attended regions judged per finding word (default {TOP_REGIONS})")
    parser.add_argument("--no-demo", action="store_true", help="leave out the demo gallery's cases")
    parser.add_argument("--dataset", help="also flag the cases of this dataset spec (JSON file or inline JSON)")
    parser.add_argument("--split", default="test", help="split of --dataset (default test)")
    parser.add_argument("--exclude-demo-images", action="store_true",
                        help="skip --dataset images that are also demo cases (flags for unseen cases)")
    parser.add_argument("--limit", type=int, help="at most N --dataset cases")


def demo_cases() -> Iterator[Case]:
    from lrclr.demo import load_gallery

    for case in load_gallery():
        if case.kind == "dicom" or not case.report:
            continue  # the DICOM cases carry no report: there are no words to judge
        yield Case(case.id, case.image_path, case.report_text(), {f: case.mask(f) for f in case.mask_findings})


def dataset_cases(spec_text: str, split: str, limit: int | None, skip_sha: set[str]) -> Iterator[Case]:
    from train.datasets.factory import dataset_samples, read_dataset_spec
    from train.datasets.flags import dataset_image_roots

    samples = dataset_samples(read_dataset_spec(spec_text), split, (0.8, 0.1, 0.1), 0, None)
    roots = dataset_image_roots(samples.dataset)
    count = 0
    for index in range(len(samples)):
        sample = samples.sample(index)
        path = next((root / sample.image_id for root in roots if (root / sample.image_id).is_file()), None)
        if path is None or not sample.report.strip():
            continue
        digest = sha256_hex(path.read_bytes())
        if digest in skip_sha:
            continue
        yield Case(f"img-{digest[:12]}", path, sample.report, dict(sample.masks))
        count += 1
        if limit and count >= limit:
            return


def finding_words(explanation) -> Iterator[tuple[str, object]]:
    """(finding, word) for every word inside a positive mention's trigger, first finding per word."""
    seen = set()
    for mention in label_report(explanation.report).mentions:
        if mention.status != POSITIVE:
            continue
        for span in mention.triggers:
            for word in explanation.words:
                if word.start < span.end and word.end > span.start and word.index not in seen:
                    seen.add(word.index)
                    yield mention.finding, word


def judge(finding: str, region, case: Case, image_size: tuple[int, int]) -> tuple[str, str] | None:
    """(verdict, comment) for one region, or None when the rule has nothing to say."""
    x0, y0, x1, y1 = region.box
    if finding in case.masks:
        mask = case.masks[finding]
        rows = slice(max(0, int(np.floor(y0))), int(np.ceil(y1)))
        cols = slice(max(0, int(np.floor(x0))), int(np.ceil(x1)))
        inside = int(mask[rows, cols].sum())
        verdict = "good match" if inside else "bad match"
        return verdict, f"simulated annotator (mask rule): {inside} px of the {finding} mask inside the region box"
    if case.masks or finding not in ZONES:
        return None  # a phantom finding without a mask, or a finding without a plausible area
    width, height = image_size
    cx, cy = (x0 + x1) / 2 / width, (y0 + y1) / 2 / height
    plausible = any(a <= cx <= b and c <= cy <= d for a, b, c, d in ZONES[finding])
    verdict = "good match" if plausible else "bad match"
    where = "inside" if plausible else "outside"
    return verdict, (f"simulated annotator (zone rule): region centre x={cx:.2f}, y={cy:.2f} {where} the "
                     f"plausible area for {finding}")


def case_flags(model, case: Case, top: int) -> list[tuple[PairKey, str, str]]:
    from lrclr.imaging.reading import load_image

    explanation = model.explain(model.encode_case(load_image(case.image_path)), case.report, findings=())
    image_sha, report_sha = sha256_hex(case.image_path.read_bytes()), sha256_hex(case.report)
    flags = []
    for finding, word in finding_words(explanation):
        order = np.argsort(-np.asarray(word.region_attention))[:top]
        for position in order:
            region = explanation.regions[int(position)]
            judged = judge(finding, region, case, explanation.image_size)
            if judged is not None:
                key = PairKey.from_explanation(model.model_id, case.case_id, image_sha, report_sha, word, region)
                flags.append((key, *judged))
    return flags


def run(args: argparse.Namespace) -> int:
    from lrclr.model.lrclr_model import LRCLRModel

    if args.out.exists():
        print(f"{args.out} exists; simulate-flags writes a fresh store")
        return 2
    model = LRCLRModel.from_pretrained(args.model)
    cases = [] if args.no_demo else list(demo_cases())
    if args.dataset:
        skip = {sha256_hex(c.image_path.read_bytes()) for c in demo_cases()} if args.exclude_demo_images else set()
        cases += list(dataset_cases(args.dataset, args.split, args.limit, skip))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    counts = {"bad match": 0, "good match": 0}
    with AnnotationStore(args.out) as store:
        for case in cases:
            flags = case_flags(model, case, args.top_regions)
            store.record_many([(ANNOTATOR, key, verdict, comment) for key, verdict, comment in flags])
            for _, verdict, _ in flags:
                counts[verdict] += 1
            print(f"{case.case_id}: {sum(v == 'bad match' for _, v, _ in flags)} bad, "
                  f"{sum(v == 'good match' for _, v, _ in flags)} good")
    print(f"{args.out}: {counts['bad match']} bad and {counts['good match']} good matches on {len(cases)} cases "
          f"(simulated annotator, model {model.model_id})")
    return 0
