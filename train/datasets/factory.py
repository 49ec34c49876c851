"""``build_dataset(spec)``: datasets named in JSON configs.

A spec is the class's keyword arguments plus ``"kind"``; ``"augment"`` (true, or a dict of
``RadiographAugment`` fields) sets the transform. Unknown keys are an error, not silently ignored,
so a typo in a config fails at start-up rather than training on the wrong data.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any, Mapping, Sequence

from lrclr.findings import NIH_FINDINGS
from train.datasets.base import DatasetError, ImageReportDataset
from train.datasets.chexpert import CheXpertDataset
from train.datasets.csv_dataset import CSVDataset
from train.datasets.mimic import MIMICCXRDataset
from train.datasets.nih import NIHDataset
from train.datasets.openi import OpenIDataset
from train.datasets.phantom_dataset import PhantomDataset
from train.datasets.shards import ShardDataset
from train.datasets.splits import Subset, split_dataset

KINDS: dict[str, type[ImageReportDataset]] = {
    "nih": NIHDataset, "openi": OpenIDataset, "mimic": MIMICCXRDataset, "mimic-cxr": MIMICCXRDataset,
    "chexpert": CheXpertDataset, "csv": CSVDataset, "phantom": PhantomDataset, "phantoms": PhantomDataset,
    "shards": ShardDataset,  # make-shards output: {"kind": "shards", "index": "DIR/index.json"}
}


def accepted_arguments(cls: type[ImageReportDataset]) -> set[str]:
    names = set()
    for klass in (cls, ImageReportDataset):
        names |= {name for name, p in inspect.signature(klass.__init__).parameters.items()
                  if name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
    return names


def build_dataset(spec: Mapping[str, Any]) -> ImageReportDataset:
    """E.g. ``{"kind": "nih", "root": "data/nih", "reports": "composed", "max_side": 512}``."""
    arguments = dict(spec)
    kind = str(arguments.pop("kind", "")).lower()
    if kind not in KINDS:
        raise DatasetError(f"dataset spec needs 'kind', one of {sorted(KINDS)}; got {spec.get('kind')!r}")
    cls = KINDS[kind]
    augment = arguments.pop("augment", None)
    unknown = sorted(set(arguments) - accepted_arguments(cls) - {"transform"})
    if unknown:
        raise DatasetError(f"unknown key(s) {unknown} for a {kind!r} dataset; accepted: "
                           f"{sorted(accepted_arguments(cls) - {'transform'})}")
    if "transform" in arguments:
        raise DatasetError("a JSON spec cannot hold a transform; use \"augment\": true or {...}")
    if augment:
        from train.training.augment import RadiographAugment
        arguments["transform"] = RadiographAugment(**(augment if isinstance(augment, Mapping) else {}))
    try:
        return cls(**arguments)
    except TypeError as error:
        raise DatasetError(f"bad arguments for a {kind!r} dataset: {error}") from error


def read_dataset_spec(text: str) -> dict[str, Any]:
    """A dataset spec given on a command line: inline JSON, or the path of a JSON file."""
    if text.lstrip().startswith("{"):
        return json.loads(text)
    return json.loads(Path(text).read_text(encoding="utf-8"))


def dataset_samples(spec: dict[str, Any], split: str | None, fractions: Sequence[float], split_seed: int,
             limit: int | None):
    """The dataset (or one split of it, exactly as training splits it), never augmented."""
    dataset = build_dataset(spec)
    indices = list(range(len(dataset)))
    if split:
        splits = split_dataset(dataset, fractions, split_seed)
        if split not in splits:  # ValueError: the commands report it to the user
            raise ValueError(f"unknown split {split!r}; this split has {sorted(splits)}")
        indices = splits[split].indices
    return Subset(dataset, indices[:limit] if limit else indices, transform=None)


def labelled_findings(samples) -> list[str]:
    """Findings labelled anywhere in the samples, NIH order first; read from the index when possible."""
    read = samples.labels_of if hasattr(samples, "labels_of") else (lambda i: samples[i].labels)
    seen = {name for i in range(len(samples)) for name in read(i)}
    return [f for f in NIH_FINDINGS if f in seen] + sorted(seen - set(NIH_FINDINGS))
