"""A test set of images that are not frontal chest radiographs, built from what ships in packages.

The input gate (lrclr/imaging/input_check.py) must catch these; ``python -m train input-reference`` reports
its catch rate on them and the tests assert it. Nothing is downloaded: photographs come from
matplotlib's bundled sample data, other-modality DICOMs from pydicom's bundled test files, and the
rest (rendered text, noise, blank frames, rotated and cropped films) is made here. Each item names
its kind, so a miss can be read as "which kind slipped through".
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from lrclr.imaging.reading import LoadedImage, load_image

PHOTOS = ("grace_hopper.jpg", "Minduka_Present_Blue_Pack.png", "logo2.png")
OTHER_MODALITY_DICOMS = ("CT_small.dcm", "MR_small.dcm", "liver_1frame.dcm", "SC_rgb.dcm", "rtdose_1frame.dcm",
                         "MR_small_jpeg_ls_lossless.dcm", "JPEG2000.dcm")
TEXT = ("FINDINGS: The lungs are clear. No pleural effusion or pneumothorax.\nIMPRESSION: Normal chest.",
        "Patient list\n1. Ward 4B  bed 12\n2. Ward 4B  bed 14\n3. ICU     bed 2",
        "def main():\n    return 0\n\nif __name__ == '__main__':\n    main()")


@dataclass(frozen=True)
class NonChestImage:
    kind: str  # "photo", "grayscale photo", "text", "noise", "blank", "other modality", "rotated film", ...
    name: str
    image: LoadedImage


def _png(array: np.ndarray) -> LoadedImage:
    buffer = io.BytesIO()
    Image.fromarray(np.round(np.clip(array, 0, 1) * 255).astype(np.uint8), mode="L").save(buffer, format="PNG")
    return load_image(buffer.getvalue())


def _photos() -> list[NonChestImage]:
    import matplotlib

    folder = Path(matplotlib.get_data_path()) / "sample_data"
    out = []
    for name in PHOTOS:
        data = (folder / name).read_bytes()
        out.append(NonChestImage("photo", name, load_image(data)))
        gray = Image.open(io.BytesIO(data)).convert("L")
        out.append(NonChestImage("grayscale photo", name, _png(np.asarray(gray, dtype=np.float32) / 255.0)))
    return out


def _text() -> list[NonChestImage]:
    font = ImageFont.load_default()
    out = []
    for index, text in enumerate(TEXT):
        for inverted in (False, True):
            canvas = Image.new("L", (640, 480), 0 if inverted else 255)
            ImageDraw.Draw(canvas).multiline_text((20, 20), text, fill=255 if inverted else 0, font=font, spacing=8)
            big = canvas.resize((1280, 960), Image.NEAREST)
            out.append(NonChestImage("text", f"text-{index}{'-inverted' if inverted else ''}",
                                     _png(np.asarray(big, dtype=np.float32) / 255.0)))
    return out


def _synthetic(rng: np.random.Generator) -> list[NonChestImage]:
    from scipy import ndimage

    uniform = rng.random((512, 512))
    smooth = ndimage.gaussian_filter(rng.random((512, 512)), 12)
    smooth = (smooth - smooth.min()) / (smooth.max() - smooth.min())
    stripes = (np.sin(np.linspace(0, 40 * np.pi, 512))[None, :] * 0.5 + 0.5).repeat(512, 0)
    return [NonChestImage("noise", "uniform noise", _png(uniform)),
            NonChestImage("noise", "gaussian noise", _png(np.clip(rng.normal(0.5, 0.2, (512, 512)), 0, 1))),
            NonChestImage("noise", "smooth noise", _png(smooth)),
            NonChestImage("pattern", "stripes", _png(stripes)),
            NonChestImage("blank", "black", _png(np.zeros((512, 512)))),
            NonChestImage("blank", "white", _png(np.ones((512, 512)))),
            NonChestImage("blank", "mid gray", _png(np.full((512, 512), 0.5)))]


def _dicoms() -> list[NonChestImage]:
    import pydicom

    folder = Path(pydicom.__file__).parent / "data" / "test_files"
    out = []
    for name in OTHER_MODALITY_DICOMS:
        path = folder / name
        if not path.is_file():
            continue
        try:
            out.append(NonChestImage("other modality", name, load_image(path)))
        except Exception:  # noqa: BLE001 - a test file this build cannot decode is not part of the set
            continue
    return out


def _films(films: list[np.ndarray]) -> list[NonChestImage]:
    """Real chest films made unusable: rotated a quarter or half turn, or cut to a strip."""
    out = []
    for index, film in enumerate(films):
        out.append(NonChestImage("rotated film", f"film-{index} rotated 90", _png(np.rot90(film))))
        out.append(NonChestImage("rotated film", f"film-{index} upside down", _png(np.rot90(film, 2))))
        height, width = film.shape
        out.append(NonChestImage("cropped film", f"film-{index} strip", _png(film[: height // 5])))
    return out


def non_chest_images(films: list[np.ndarray] = (), seed: int = 0) -> list[NonChestImage]:
    """The whole set; ``films`` (chest radiographs in [0, 1]) supply the rotated and cropped ones."""
    rng = np.random.default_rng(seed)
    return [*_photos(), *_text(), *_synthetic(rng), *_dicoms(), *_films(list(films))]
