"""``build_dataset(spec)``: datasets named in JSON configs.

A spec is the class's keyword arguments plus ``"kind"``; ``"augment"`` (true, or a dict of
``RadiographAugment`` fields) sets the transform. Unknown keys are an error, not silently ignored,
so a typo in a config fails at start-up rather than training on the wrong data.
"""

from __future__ import annotations

import inspect
from typing import Any, Mapping

from train.datasets.base import DatasetError, ImageReportDataset
from train.datasets.chexpert import CheXpertDataset
from train.datasets.csv_dataset import CSVDataset
from train.datasets.mimic import MIMICCXRDataset
from train.datasets.nih import NIHDataset
from train.datasets.openi import OpenIDataset
from train.datasets.phantom_dataset import PhantomDataset

KINDS: dict[str, type[ImageReportDataset]] = {
    "nih": NIHDataset, "openi": OpenIDataset, "mimic": MIMICCXRDataset, "mimic-cxr": MIMICCXRDataset,
    "chexpert": CheXpertDataset, "csv": CSVDataset, "phantom": PhantomDataset, "phantoms": PhantomDataset,
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
