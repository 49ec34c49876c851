"""The bundled demo gallery: real NIH cases, real DICOMs and phantoms with ground-truth masks.

``assets/demo/manifest.json`` (written by ``python -m train make-demo``) lists each case's files
and the SHA-256 of its image; ``load_gallery`` checks both, so a missing or altered file is
reported by name instead of showing the wrong image. Sources and licenses: ``assets/demo/SOURCES.md``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from lrclr.bundled import DEFAULT_DEMO_DIR
from lrclr.errors import LRCLRError
from lrclr.imaging.reading import LoadedImage, load_image
from lrclr.reports.text import read_report_file

MANIFEST_FILE = "manifest.json"
MANIFEST_VERSION = 1
KINDS = ("nih", "dicom", "phantom")
_REQUIRED = ("id", "title", "kind", "image", "image_sha256", "report", "report_provenance", "labels",
             "masks", "source", "license", "notes")


class DemoGalleryError(LRCLRError):
    """The demo gallery's manifest or one of its files is missing, unreadable or altered."""


@dataclass(frozen=True)
class DemoCase:
    id: str
    title: str
    kind: str  # "nih" | "dicom" | "phantom"
    image: str  # file name in ``folder``
    image_sha256: str
    report: str | None  # file name, or None when the case has no report
    report_provenance: str | None
    labels: tuple[str, ...]  # NIH labels, or the findings a phantom draws
    masks: dict[str, str] = field(repr=False, hash=False)  # finding -> mask file name (phantoms)
    source: str
    license: str
    notes: str
    folder: Path
    # mm per pixel of the image as stored (row, column) and where it comes from; None: not known.
    pixel_spacing_mm: tuple[float, float] | None = None
    pixel_spacing_source: str | None = None

    @property
    def image_path(self) -> Path:
        return self.folder / self.image

    @property
    def mask_findings(self) -> tuple[str, ...]:
        return tuple(self.masks)

    def image_bytes(self) -> bytes:
        return self.image_path.read_bytes()

    def load_image(self, include_identifiers: bool = False) -> LoadedImage:
        return load_image(self.image_path, include_identifiers=include_identifiers)

    @property
    def findings_text(self) -> str:
        """The case's findings for the gallery: NIH labels, or what a phantom draws."""
        labels = [label.replace("_", " ") for label in self.labels if label != "No Finding"]
        if labels:
            return ", ".join(labels)
        return "No finding" if "No Finding" in self.labels else f"Unlabelled: {self.title}"

    @property
    def source_text(self) -> str:
        """Where the case comes from, in a few words, for the gallery."""
        return {"nih": "NIH ChestX-ray14", "dicom": "SIIM-ACR DICOM", "phantom": "LRCLR phantom"}[self.kind]

    def thumbnail(self, max_side: int = 160) -> Image.Image:
        """A small grayscale picture of the image, as decoded (area-resampled)."""
        from lrclr.display.operations import downsample

        pixels = np.clip(downsample(self.load_image().pixels, max_side), 0, 1)
        return Image.fromarray(np.round(pixels * 255).astype(np.uint8), mode="L")

    def report_text(self) -> str:
        return read_report_file(self.folder / self.report).strip() if self.report else ""

    def mask(self, finding: str) -> np.ndarray:
        """Boolean (H, W) ground-truth mask of ``finding``, the same size as the image."""
        if finding not in self.masks:
            raise KeyError(f"demo case {self.id} has no mask for {finding!r}; it has {list(self.masks)}")
        with Image.open(self.folder / self.masks[finding]) as mask:
            return np.asarray(mask.convert("L")) > 127


def load_gallery(folder: str | Path = DEFAULT_DEMO_DIR) -> tuple[DemoCase, ...]:
    """Every case of the gallery in ``folder``, after checking its files exist and images match."""
    folder = Path(folder)
    manifest_path = folder / MANIFEST_FILE
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DemoGalleryError(f"demo manifest {manifest_path} not found "
                               "(python -m train make-demo --out assets/demo writes it)") from None
    except (OSError, ValueError) as error:
        raise DemoGalleryError(f"demo manifest {manifest_path} cannot be read: {error}") from error
    if not isinstance(manifest, dict) or manifest.get("version") != MANIFEST_VERSION:
        version = manifest.get("version") if isinstance(manifest, dict) else None
        raise DemoGalleryError(f"{manifest_path} has manifest version {version!r}; this code reads "
                               f"version {MANIFEST_VERSION}")
    return tuple(_case(entry, folder, manifest_path) for entry in manifest.get("cases", []))


def _case(entry: dict, folder: Path, manifest_path: Path) -> DemoCase:
    missing = [key for key in _REQUIRED if not isinstance(entry, dict) or key not in entry]
    if missing:
        raise DemoGalleryError(f"{manifest_path}: case {_name(entry)} lacks {', '.join(missing)}")
    if entry["kind"] not in KINDS:
        raise DemoGalleryError(f"{manifest_path}: case {entry['id']} has unknown kind {entry['kind']!r}")
    files = [entry["image"], *([entry["report"]] if entry["report"] else []), *entry["masks"].values()]
    for name in files:
        if not (folder / name).is_file():
            raise DemoGalleryError(f"demo file {folder / name} (case {entry['id']}) is missing")
    image = folder / entry["image"]
    digest = hashlib.sha256(image.read_bytes()).hexdigest()
    if digest != entry["image_sha256"]:
        raise DemoGalleryError(f"demo image {image} (case {entry['id']}) does not match the SHA-256 in "
                               f"{manifest_path}: the file was altered or replaced")
    return DemoCase(id=entry["id"], title=entry["title"], kind=entry["kind"], image=entry["image"],
                    image_sha256=entry["image_sha256"], report=entry["report"],
                    report_provenance=entry["report_provenance"], labels=tuple(entry["labels"] or ()),
                    masks=dict(entry["masks"]), source=entry["source"], license=entry["license"],
                    notes=entry["notes"], folder=folder, **_spacing(entry, manifest_path))


def _spacing(entry: dict, manifest_path: Path) -> dict:
    """The optional pixel spacing of a case (the NIH cases carry it from their labels)."""
    spacing = entry.get("pixel_spacing_mm")
    if spacing is None:
        return {}
    try:
        row, column = (float(value) for value in spacing)
    except (TypeError, ValueError):
        raise DemoGalleryError(f"{manifest_path}: case {entry['id']} has an unreadable pixel_spacing_mm "
                               f"{spacing!r}") from None
    if not (row > 0 and column > 0):
        raise DemoGalleryError(f"{manifest_path}: case {entry['id']} has a pixel spacing that is not positive")
    return {"pixel_spacing_mm": (row, column), "pixel_spacing_source": str(entry.get("pixel_spacing_source") or "")}


def _name(entry: object) -> str:
    return repr(entry.get("id")) if isinstance(entry, dict) else repr(entry)
