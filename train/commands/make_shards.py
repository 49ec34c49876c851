"""``python -m train make-shards``: any dataset spec (or one split of it) as WebDataset tar shards.

Training on a cluster then reads a few large files per rank instead of one small file per image
(see ``train/datasets/shards.py`` and ``train/training/shard_stream.py``); the spec to train on is
``{"kind": "shards", "index": "OUT/index.json"}``. Shard the whole dataset and let training split
it: the index keeps each record's patient id and labels, so the split is the source's split.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from lrclr.errors import LRCLRError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", required=True, help="dataset spec: a JSON file, or inline JSON")
    parser.add_argument("--out", type=Path, required=True, help="folder for the shards and index.json")
    parser.add_argument("--split", choices=("train", "val", "test"),
                        help="only this split of the patient-disjoint split (default: every record)")
    parser.add_argument("--split-fractions", type=float, nargs=3, default=[0.8, 0.1, 0.1], metavar="F",
                        help="train val test fractions, as training will split (default 0.8 0.1 0.1)")
    parser.add_argument("--split-seed", type=int, default=0, help="seed of the patient split (default 0)")
    parser.add_argument("--samples-per-shard", type=int, default=1000, metavar="N",
                        help="at most N samples per shard (default 1000)")
    parser.add_argument("--max-shard-bytes", type=int, default=1 << 30, metavar="B",
                        help="close a shard before a sample would take it past B bytes (default 1 GiB; 0: no limit)")
    parser.add_argument("--limit", type=int, help="only the first N records (trial runs)")
    parser.add_argument("--overwrite", action="store_true", help="replace a shard set already in --out")


def run(args: argparse.Namespace) -> int:
    from train.datasets.factory import build_dataset, read_dataset_spec
    from train.datasets.shard_writer import ShardOptions, write_shards
    from train.datasets.splits import split_dataset

    try:
        spec = read_dataset_spec(args.dataset)
        options = ShardOptions(args.samples_per_shard, args.max_shard_bytes or None)
        dataset = build_dataset(spec)
        records = list(range(len(dataset)))
        split = None
        if args.split:
            # Exactly as training splits (stratified): the same patients end up in the same split.
            records = split_dataset(dataset, args.split_fractions, args.split_seed)[args.split].indices
            split = {"name": args.split, "fractions": list(args.split_fractions), "seed": args.split_seed}
        records = records[: args.limit] if args.limit else records
        if spec.get("augment"):
            print("note: augmentation is applied when training reads, not stored; put \"augment\" in the shards spec")
        index = write_shards(dataset, records, args.out, options, {"spec": spec, "split": split},
                             overwrite=args.overwrite, report=lambda line: print(line, file=sys.stderr),
                             progress=sys.stderr.isatty())
    except (OSError, json.JSONDecodeError) as error:
        print(f"make-shards: {error}", file=sys.stderr)
        return 2
    except (LRCLRError, ValueError) as error:  # a bad spec, split or option: the message is for the user
        print(f"make-shards: {error}", file=sys.stderr)
        return 2
    size = sum(s.bytes for s in index.shards)
    print(f"wrote {len(index.records)} samples in {len(index.shards)} shards ({size / 2**20:.1f} MiB) to {args.out}; "
          f"skipped {len(index.skipped)} unreadable record(s)")
    print(f'train on them with: --set \'dataset={{"kind": "shards", "index": "{args.out / "index.json"}"}}\'')
    return 0
