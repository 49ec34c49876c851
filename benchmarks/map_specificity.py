"""Map specificity of model folders on the demo gallery's real NIH radiographs.

    python -m benchmarks.map_specificity --model assets/models/lrclr-default --model assets/models/baseline-default \
        --out-json docs/evaluation/map-specificity.json

For each model: the mean pairwise correlation of the maps of the reference finding phrases
(``lrclr.trust.map_checks.REFERENCE_PHRASES``) on each real NIH demo case, for the map the app draws and
for the word-patch similarity map (the definition is ``train.evaluation.map_specificity``; lower is more
specific, 1 is the same map for every phrase). Cross-validation measures the same on held-out
folds (``train cross-validate --map-images``); this command is for a model folder as it is, e.g.
to compare a new bundled model with the one it replaces. Note whether the demo images were in the
model's training data (the model card says).
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

from benchmarks.report import emit, git_commit
from lrclr.demo import load_gallery
from lrclr.model.lrclr_model import LRCLRModel
from train.evaluation.map_specificity import map_specificity


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, action="append", required=True, help="model folder (repeatable)")
    parser.add_argument("--out-json", type=Path, default=None)
    args = parser.parse_args(argv)
    cases = [case for case in load_gallery() if case.id.startswith("nih-")]
    images = [case.load_image().pixels for case in cases]
    results = {}
    for folder in args.model:
        model = LRCLRModel.from_pretrained(folder)
        found = map_specificity(model, images)
        results[str(folder)] = {kind: {"mean_correlation": m.mean_correlation, "per_image": list(m.per_image)}
                                for kind, m in found.items()}
        print(f"{folder}: " + ", ".join(f"{kind} {m.mean_correlation:.3f}" for kind, m in found.items()))
    report = {"benchmark": "map_specificity", "commit": git_commit(), "created": dt.datetime.now(dt.timezone.utc).isoformat(),
              "images": [case.id for case in cases], "phrases": list(next(iter(found.values())).phrases),
              "models": results}
    emit(report, args.out_json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
