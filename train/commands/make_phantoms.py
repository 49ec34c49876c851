"""``python -m train make-phantoms``: write phantom training data, a contact sheet, or time the generator.

  --out DIR             PNG images + per-finding mask PNGs + manifest.jsonl (image, masks, findings,
                        report, provenance, seed), one line per phantom.
  --contact-sheet PNG   a 4x4 (for --n 16) grid with mask outlines in colour and a caption per tile.
  --benchmark           median phantoms/second on this process (run it with OMP_NUM_THREADS=1 and
                        ``taskset -c 0`` to measure one core).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from train.synthetic.phantoms import Phantom, ReportBank, generate_phantom

DEFAULT_OPENI = Path(__file__).resolve().parents[3] / "shared" / "data" / "openi-reports" / "NLMCXR_reports.tgz"
# One colour per finding for outlines (and the caption text of that finding).
COLOURS = {
    "Effusion": (0, 170, 255), "Cardiomegaly": (255, 60, 60), "Consolidation": (255, 200, 0),
    "Nodule": (0, 255, 120), "Mass": (255, 0, 255), "Pneumothorax": (0, 255, 255),
    "Atelectasis": (255, 140, 0), "Edema": (160, 120, 255),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--n", type=int, default=16, help="number of phantoms (default 16)")
    parser.add_argument("--seed", type=int, default=0, help="first seed; phantom i uses seed + i")
    parser.add_argument("--size", type=int, nargs="+", default=[320], metavar="PX",
                        help="side, or height width (default 320)")
    parser.add_argument("--openi", type=Path, default=None,
                        help=f"OpenI reports (.tgz or folder) for real reports (default {DEFAULT_OPENI} "
                             "when present; templates otherwise)")
    parser.add_argument("--templates", action="store_true", help="use template reports, ignore OpenI")
    parser.add_argument("--out", type=Path, help="folder for PNGs, masks and manifest.jsonl")
    parser.add_argument("--contact-sheet", type=Path, help="write a contact sheet PNG here")
    parser.add_argument("--benchmark", action="store_true", help="time generation, print the median rate")
    parser.add_argument("--repeats", type=int, default=7, help="benchmark repeats (default 7)")


def _bank(args: argparse.Namespace) -> ReportBank | None:
    if args.templates:
        return None
    path = args.openi or (DEFAULT_OPENI if DEFAULT_OPENI.exists() else None)
    if path is None:
        print("no OpenI reports found: using template reports (provenance 'template')")
        return None
    started = time.perf_counter()
    bank = ReportBank.from_openi(path)
    print(f"report bank from {path}: {bank.counts()} usable reports in {time.perf_counter() - started:.1f} s")
    return bank


def run(args: argparse.Namespace) -> int:
    size = args.size[0] if len(args.size) == 1 else (args.size[0], args.size[1])
    if not (args.out or args.contact_sheet or args.benchmark):
        print("nothing to do: give --out, --contact-sheet and/or --benchmark")
        return 2
    bank = _bank(args)
    if args.benchmark:
        benchmark(size, bank, args.n if args.n > 16 else 200, args.repeats)
    if args.out or args.contact_sheet:
        phantoms = [generate_phantom(args.seed + i, size, report_bank=bank) for i in range(args.n)]
        if args.out:
            write_dataset(phantoms, args.out)
            print(f"wrote {len(phantoms)} phantoms to {args.out}")
        if args.contact_sheet:
            args.contact_sheet.parent.mkdir(parents=True, exist_ok=True)
            contact_sheet(phantoms).save(args.contact_sheet)
            print(f"wrote contact sheet {args.contact_sheet}")
    return 0


def benchmark(size, bank: ReportBank | None, count: int, repeats: int) -> float:
    """Median phantoms/second over ``repeats`` runs of ``count`` phantoms (after a warm-up)."""
    generate_phantom(0, size, report_bank=bank)  # caches grids and blur matrices
    rates = []
    for repeat in range(repeats):
        started = time.perf_counter()
        for seed in range(count):
            generate_phantom(repeat * count + seed, size, report_bank=bank)
        rates.append(count / (time.perf_counter() - started))
    median = statistics.median(rates)
    print(f"phantoms/s at {size} px: median {median:.1f} (min {min(rates):.1f}, max {max(rates):.1f}) "
          f"over {repeats} x {count}; reports: {'OpenI bank' if bank else 'templates'}")
    return median


def write_dataset(phantoms: list[Phantom], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "manifest.jsonl", "w", encoding="utf-8") as manifest:
        for phantom in phantoms:
            stem = f"phantom_{phantom.seed:06d}"
            Image.fromarray(to_uint8(phantom.image)).save(out / f"{stem}.png")
            masks = {}
            for name, mask in phantom.masks.items():
                masks[name] = f"{stem}_{name.lower()}.png"
                Image.fromarray(mask.astype(np.uint8) * 255).save(out / masks[name])
            record = {"image": f"{stem}.png", "masks": masks, "seed": phantom.seed,
                      "findings": [asdict(spec) for spec in phantom.findings],
                      "report": phantom.report, "provenance": phantom.report_provenance}
            manifest.write(json.dumps(record) + "\n")


def to_uint8(image: np.ndarray) -> np.ndarray:
    return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _outline(mask: np.ndarray) -> np.ndarray:
    """Pixels of the mask that touch a pixel outside it (4-neighbourhood)."""
    padded = np.pad(mask, 1)
    interior = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return mask & ~interior


def _caption(phantom: Phantom) -> list[tuple[str, tuple[int, int, int]]]:
    if not phantom.findings:
        return [("normal", (220, 220, 220))]
    return [(f"{s.name} {(s.side or '')[:3]} {s.zone or ''} {s.severity[:3]}".replace("  ", " "),
             COLOURS[s.name]) for s in phantom.findings]


def contact_sheet(phantoms: list[Phantom], caption_px: int = 46) -> Image.Image:
    """Tiles with coloured mask outlines and the drawn findings underneath, seed in the corner."""
    columns = math.ceil(math.sqrt(len(phantoms)))
    rows = math.ceil(len(phantoms) / columns)
    height, width = phantoms[0].image.shape
    sheet = Image.new("RGB", (columns * width, rows * (height + caption_px)), (0, 0, 0))
    draw = ImageDraw.Draw(sheet)
    for index, phantom in enumerate(phantoms):
        tile = np.repeat(to_uint8(phantom.image)[:, :, None], 3, axis=2)
        for name, mask in phantom.masks.items():
            tile[_outline(mask)] = COLOURS[name]
        x, y = (index % columns) * width, (index // columns) * (height + caption_px)
        sheet.paste(Image.fromarray(tile), (x, y))
        draw.text((x + 4, y + 2), f"seed {phantom.seed}", fill=(255, 255, 0))
        for line, (text, colour) in enumerate(_caption(phantom)):
            draw.text((x + 4, y + height + 2 + 14 * line), text, fill=colour)
    return sheet
