"""The shard format: WebDataset tar files of samples, and the index that describes a set of them.

A sample is the tar members sharing one key (the WebDataset convention, e.g. ``000000042.png``,
``000000042.txt``, ``000000042.json``). The key is the record's number in the source dataset, which
identifies no one:

- ``KEY.png`` / ``KEY.jpg`` / ``KEY.dcm``: the original image file's bytes, when the record's pixels
  are exactly that file's decode (so training decodes the same bytes the same way as without
  shards); ``KEY.npy``: the float32 pixels themselves (phantoms, or a reader that changes what it
  decoded), also lossless;
- ``KEY.txt``: the report (UTF-8); ``KEY.json``: image and patient ids, labels, boxes, provenance,
  the names of the masks; ``KEY.mask-N.png``: finding mask N (0/255), in the JSON's order.

The index (``index.json``) lists the shards (name, sample count, bytes, SHA-256), the source spec and
split, and per sample only what splitting needs without opening a shard: the record number, the
patient id and the labels. Image ids and report text stay inside the shards.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
from PIL import Image

from lrclr.errors import LRCLRError
from lrclr.imaging.reading import load_image, sniff_format
from train.datasets.base import DatasetError, SampleReadError
from train.datasets.sample import Sample

FORMAT = "lrclr-webdataset-shards/1"
INDEX_NAME = "index.json"
IMAGE_EXTENSIONS = {"png": "png", "jpeg": "jpg", "dicom": "dcm"}  # sniffed format -> member extension
PIXEL_MEMBERS = (*IMAGE_EXTENSIONS.values(), "npy")
# One character per label: compact enough for an index of 377k MIMIC records (~20 bytes each).
_CODE = {1: "1", 0: "0", -1: "u"}
_VALUE = {"1": 1, "0": 0, "u": -1}
_ABSENT = "."
_PATH_TOKEN = re.compile(r"[^\s:()'\"]*[/\\][^\s:()'\"]*")


def sample_key(record: int) -> str:
    """The tar key of source record ``record``: digits only, since WebDataset splits at the first dot."""
    return f"{int(record):09d}"


@dataclass
class ShardInfo:
    name: str
    samples: int
    bytes: int
    sha256: str


@dataclass
class SkippedRecord:
    record: int  # the record's number in the source dataset (or split)
    reason: str  # the read error, with file paths replaced by <file> (paths can hold patient ids)


@dataclass
class ShardIndex:
    source: dict[str, Any]  # {"spec": ..., "split": {"name", "fractions", "seed"} or None, "records": N}
    shards: list[ShardInfo]
    records: list[int]  # per sample, in shard order: its source record number (= its tar key)
    patient_ids: list[str]  # per sample: kept so that shards split patient-disjointly like the source
    label_names: list[str]
    labels: list[str]  # per sample: one character per label name (see label_code)
    skipped: list[SkippedRecord] = field(default_factory=list)

    def __post_init__(self) -> None:
        n = len(self.records)
        if not (len(self.patient_ids) == len(self.labels) == n == sum(s.samples for s in self.shards)):
            raise DatasetError(f"shard index is inconsistent: {n} records, {len(self.patient_ids)} patient ids, "
                               f"{len(self.labels)} label rows, {sum(s.samples for s in self.shards)} in shards")
        self.starts = np.cumsum([0] + [s.samples for s in self.shards]).tolist()

    def shard_of(self, index: int) -> int:
        return int(np.searchsorted(self.starts, index, side="right") - 1)

    def labels_of(self, index: int) -> dict[str, int]:
        return parse_label_code(self.labels[index], self.label_names)

    def to_json(self) -> str:
        data = {"format": FORMAT, "source": self.source,
                "counts": {"samples": len(self.records), "shards": len(self.shards), "skipped": len(self.skipped)},
                "shards": [asdict(s) for s in self.shards], "skipped": [asdict(s) for s in self.skipped],
                "label_names": self.label_names,
                "samples": {"records": self.records, "patient_ids": self.patient_ids, "labels": self.labels}}
        return json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False) + "\n"

    @classmethod
    def load(cls, path: str | Path) -> "ShardIndex":
        path = Path(path)
        if not path.is_file():
            raise DatasetError(f"shard index not found: {path} (make one with: python -m train make-shards)")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("format") != FORMAT:
                raise DatasetError(f"{path} is not a shard index of format {FORMAT!r} (it says {data.get('format')!r})")
            samples = data["samples"]
            return cls(data["source"], [ShardInfo(**s) for s in data["shards"]], samples["records"],
                       samples["patient_ids"], data["label_names"], samples["labels"],
                       [SkippedRecord(**s) for s in data["skipped"]])
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise DatasetError(f"{path} is not a readable shard index: {error!r}") from error


def label_code(labels: Mapping[str, int], names: list[str]) -> str:
    unknown = sorted(set(labels) - set(names))
    if unknown:
        raise ValueError(f"labels {unknown} are not in the index's label names")
    try:
        return "".join(_CODE[int(labels[name])] if name in labels else _ABSENT for name in names)
    except KeyError as error:
        raise ValueError(f"a label must be 1, 0 or -1, got {error.args[0]!r} in {dict(labels)}") from None


def parse_label_code(code: str, names: list[str]) -> dict[str, int]:
    return {name: _VALUE[char] for name, char in zip(names, code) if char != _ABSENT}


def redact_paths(message: str) -> str:
    """A read error without its file paths or names (MIMIC paths hold subject and study ids; a
    file name can hold anything), e.g. "cannot read image <file>: <file>: the file is empty"."""
    names = {re.split(r"[/\\]", token)[-1] for token in _PATH_TOKEN.findall(message)} - {""}
    redacted = _PATH_TOKEN.sub("<file>", message)
    for name in sorted(names, key=len, reverse=True):
        redacted = redacted.replace(name, "<file>")
    return redacted


# --- one sample <-> its tar members -------------------------------------------------------------


def encode_sample(sample: Sample, record: int, image_file: bytes | None) -> dict[str, bytes]:
    """The members of one sample; ``image_file`` is the original file (None: store the pixels)."""
    if image_file is not None:
        fmt = sniff_format(image_file)
        if fmt not in IMAGE_EXTENSIONS:
            raise ValueError(f"record {record}: the image file is not PNG, JPEG or DICOM")
        members = {IMAGE_EXTENSIONS[fmt]: image_file}
    else:
        members = {"npy": _npy_bytes(np.ascontiguousarray(sample.pixels, dtype=np.float32))}
    mask_names = sorted(sample.masks)
    for number, name in enumerate(mask_names):
        members[f"mask-{number}.png"] = _mask_png(sample.masks[name])
    meta = {"record": int(record), "image_id": sample.image_id, "patient_id": sample.patient_id,
            "labels": {k: int(v) for k, v in sample.labels.items()}, "source": sample.source,
            "boxes": {k: [list(map(float, box)) for box in v] for k, v in sample.boxes.items()},
            "masks": mask_names}
    members["json"] = json.dumps(meta, sort_keys=True, ensure_ascii=False).encode("utf-8")
    members["txt"] = sample.report.encode("utf-8")
    return members


def decode_sample(members: Mapping[str, bytes], where: str) -> Sample:
    """The Sample stored in ``members``; ``where`` (shard and key) names it in errors."""
    try:
        meta = json.loads(members["json"])
        report = members["txt"].decode("utf-8")
        ids, labels, source = (meta["image_id"], meta["patient_id"]), dict(meta["labels"]), meta["source"]
        boxes = {k: [tuple(box) for box in v] for k, v in meta["boxes"].items()}
        mask_names = list(meta["masks"])
    except (KeyError, ValueError, TypeError, AttributeError) as error:
        raise SampleReadError(f"{where}: missing or malformed .json/.txt member ({error!r})") from error
    pixels = _decode_pixels(members, where)
    masks = {name: _read_mask(members.get(f"mask-{n}.png"), where, name) for n, name in enumerate(mask_names)}
    return Sample(*ids, pixels, report, labels, masks, boxes, source)


def _decode_pixels(members: Mapping[str, bytes], where: str) -> np.ndarray:
    stored = [ext for ext in PIXEL_MEMBERS if ext in members]
    if len(stored) != 1:
        raise SampleReadError(f"{where}: expected one image member ({'/'.join(PIXEL_MEMBERS)}), found {stored}")
    data = members[stored[0]]
    if stored[0] == "npy":
        return np.load(io.BytesIO(data), allow_pickle=False)
    try:
        return load_image(data, name=where).pixels  # the decode read_pixels does on the original file
    except LRCLRError as error:
        raise SampleReadError(f"cannot read image {where}: {error}") from error


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _mask_png(mask: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(mask, dtype=bool).astype(np.uint8) * 255, mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


def _read_mask(data: bytes | None, where: str, name: str) -> np.ndarray:
    if data is None:
        raise SampleReadError(f"{where}: the mask of {name!r} is missing")
    return np.asarray(Image.open(io.BytesIO(data))) > 127
