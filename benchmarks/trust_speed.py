"""How long the Review page's trust checks take on one case, warm, against the towers' floor.

    python -m benchmarks.trust_speed --repeats 10 --out-json docs/benchmarks/trust_speed.json

On the bundled LRCLR model and one demo case, already encoded (as the page holds it), medians of
``--repeats`` runs of:

* the deletion test (k = 4 top cells of the phrase's map, 5 random repeats: 6 images re-scored);
* the counterfactual probes of one phrase (original, negated, mirrored: 3 groundings);
* the phrase-specificity check (10 reference phrases grounded; the page caches it per case);
* the floor: the image tower's forward on one image plus the text tower on the phrase,

with each check's ratio to the floor measured in the same run. The target (issue #18) is that the
deletion test and the counterfactual probes together take at most 2 s on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

import torch

from benchmarks.model_speed import DEFAULT_CASE, median_seconds, tower_floor
from benchmarks.report import emit, git_commit
from lrclr.trust.counterfactual import probe_phrases
from lrclr.demo import load_gallery
from lrclr.trust.faithfulness import deletion_test
from lrclr.trust.map_checks import phrase_specificity, reference_maps
from lrclr.model.lrclr_model import LRCLRModel
from lrclr.findings import NIH_FINDINGS
from lrclr.trust.case_findings import phrase_map
from lrclr.bundled import DEFAULT_MODEL_DIR

PHRASE = "left pleural effusion"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--case", default=DEFAULT_CASE)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    parser.add_argument("--out-json", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    model = LRCLRModel.from_pretrained(DEFAULT_MODEL_DIR)
    case = next(c for c in load_gallery() if c.id == args.case)
    image = case.load_image()
    encoded = model.encode_case(image)
    grid_map = phrase_map(model.explain(encoded, PHRASE, findings=()))
    valid = encoded.features.valid[0].numpy().reshape(encoded.features.grid)

    deletion = median_seconds(lambda: deletion_test(model, image.pixels, grid_map, valid, encoded.letterbox,
                                                    NIH_FINDINGS, k=4), args.repeats)
    probes = median_seconds(lambda: probe_phrases(model, encoded, PHRASE), args.repeats)
    specificity = median_seconds(lambda: phrase_specificity(grid_map, reference_maps(model, encoded), valid),
                                 args.repeats)
    floor = tower_floor(model, image, PHRASE, args.repeats)
    from train.training.fit import cpu_name

    emit({
        "commit": git_commit(), "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpu": cpu_name(), "threads": torch.get_num_threads(), "torch": torch.__version__},
        "model": model.model_id, "case": args.case, "phrase": PHRASE, "repeats": args.repeats,
        "seconds": {"deletion_test_k4": deletion, "counterfactual_probes": probes,
                    "deletion_plus_probes": deletion + probes, "specificity_check": specificity,
                    "floor_towers_one_image": floor},
        "ratio_to_floor": {"deletion_test_k4": deletion / floor, "counterfactual_probes": probes / floor,
                           "specificity_check": specificity / floor},
        "target_seconds": {"deletion_plus_probes": 2.0},
    }, args.out_json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
