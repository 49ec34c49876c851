"""``python -m train evaluate``: zero-shot AUC with CIs, retrieval and localization, models side by side.

Each model gets one pass over the samples (:mod:`train.evaluation.model_evaluation`), then the
models' paired AUC differences; outputs are a JSON file and a markdown page, each recording the
exact command line, and optionally each model card's ``metrics[KEY]``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any


from lrclr.errors import LRCLRError
from train.evaluation.report import compare, write_outputs

from train.datasets.factory import dataset_samples, labelled_findings, read_dataset_spec
from train.evaluation.model_evaluation import TOP_REGIONS, evaluate_model, pair_name, paired_differences


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", action="append", required=True, type=Path, metavar="DIR",
                        help="model folder (config.json + model.safetensors); repeat to compare models")
    parser.add_argument("--name", action="append", metavar="NAME", help="display name per --model, in order")
    parser.add_argument("--dataset", required=True, help="dataset spec: a JSON file, or inline JSON")
    parser.add_argument("--split", help="evaluate one split of the patient-disjoint split (train, val, test)")
    parser.add_argument("--split-fractions", type=float, nargs=3, default=[0.8, 0.1, 0.1], metavar="F",
                        help="train val test fractions, as the model was trained with (default 0.8 0.1 0.1)")
    parser.add_argument("--split-seed", type=int, default=0, help="seed of the patient split (default 0)")
    parser.add_argument("--findings", nargs="+", help="finding names (default: those labelled in the data)")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--top-regions", type=int, default=TOP_REGIONS,
                        help=f"regions / cells whose boxes are compared with the mask (default {TOP_REGIONS})")
    parser.add_argument("--card-key", default=None, metavar="KEY",
                        help="also record each model's results in its model_card.json under metrics[KEY] "
                             "(e.g. nih_test_split), where the app's Model page shows them")
    parser.add_argument("--pointing-tolerance", type=float, default=0.0, metavar="PX",
                        help="pointing game: a peak this close to the mask counts as a hit (default 0)")
    parser.add_argument("--missing-as-negative", action="store_true",
                        help="a finding absent from a sample's labels counts as negative (default: left out)")
    parser.add_argument("--limit", type=int, help="only the first N samples (smoke runs)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, mps or auto (default cpu)")
    parser.add_argument("--out-json", type=Path, help="write the JSON record here")
    parser.add_argument("--out-md", type=Path, help="write the markdown page here (printed either way)")


def run(args: argparse.Namespace) -> int:
    from lrclr.model.lrclr_model import LRCLRModel
    from lrclr.findings import parse_finding_list

    names = list(args.name or [])
    if len(names) > len(args.model):
        print(f"{len(names)} --name given for {len(args.model)} --model")
        return 2
    names += [folder.name for folder in args.model[len(names):]]
    if len(set(names)) != len(names):
        print(f"model names must differ, got {names}; give each a --name")
        return 2
    try:
        spec = read_dataset_spec(args.dataset)
    except (OSError, json.JSONDecodeError) as error:
        print(f"cannot read the dataset spec {args.dataset!r}: {error}")
        return 2
    try:
        samples = dataset_samples(spec, args.split, args.split_fractions, args.split_seed, args.limit)
    except (LRCLRError, ValueError) as error:  # a bad spec or split: the message is for the user
        print(f"dataset: {error}")
        return 2
    if len(samples) == 0:
        print(f"no samples to evaluate (split {args.split!r}, limit {args.limit})")
        return 2
    findings = parse_finding_list(",".join(args.findings)) if args.findings else labelled_findings(samples)
    results = {}
    for name, folder in zip(names, args.model):
        try:
            model = LRCLRModel.from_pretrained(folder, device=args.device)
        except (LRCLRError, OSError) as error:
            print(f"model {folder}: {error}")
            return 2
        results[name] = evaluate_model(model, samples, findings, batch_size=args.batch_size,
                                       bootstrap=args.bootstrap, seed=args.seed, top_regions=args.top_regions,
                                       missing_as_negative=args.missing_as_negative,
                                       tolerance_px=args.pointing_tolerance)
    command = getattr(args, "command_line", None) or "python -m train " + shlex.join(sys.argv[1:])
    dataset = {"spec": spec, "split": args.split, "split_fractions": args.split_fractions,
               "split_seed": args.split_seed, "limit": args.limit, "n_samples": len(samples)}
    comparison = compare(results, command=command, dataset=dataset, differences=paired_differences(results))
    write_outputs(comparison, args.out_json, args.out_md)
    if args.card_key:
        _record_in_cards(comparison.data, names, args.model, args.card_key)
    print(comparison.markdown)
    return 0


def _record_in_cards(data: dict[str, Any], names: list[str], folders: list[Path], key: str) -> None:
    """Each model's card gets its own result, the command and data that made it, and the paired
    differences it takes part in (the Model page and the bundled models' tests read them there)."""
    from lrclr.model.weights import record_metrics

    for name, folder in zip(names, folders):
        pairs = {pair_name(names[0], other): data["paired_differences"][pair_name(names[0], other)]
                 for other in names[1:] if name in (names[0], other)}
        record_metrics(folder, key, {"name": name, "command": data["command"], "dataset": data["dataset"],
                                     "result": data["models"][name], "paired_differences": pairs})
        print(f"recorded under metrics[{key!r}] in {folder / 'model_card.json'}")
