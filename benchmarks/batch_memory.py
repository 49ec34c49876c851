"""Batch scoring streams: peak memory of a 300-file batch against a 30-file one, and its CSV against the CLI's.

    python -m benchmarks.batch_memory --sizes 30 300 --out-json docs/benchmarks/batch_memory.json

Each batch is a temporary folder of copies of the NIH sample (``../shared/data/nih-cxr14-sample``),
the two demo DICOMs and five broken files (zero bytes, a truncated PNG, text named .png, a
truncated DICOM, a PNG whose header claims 40000 x 40000 pixels). Each batch runs in a fresh
process through the Batch page's code path (``lrclr.batch.scoring.BatchRun`` with thumbnails, every result
kept as the page keeps it, the CSV written by ``lrclr.batch.prediction_csv.write_csv``), which reports its peak
RSS (``ru_maxrss``) after loading the model (the floor) and at the end. Then
``python -m lrclr predict`` runs on the same folder and the two CSVs are compared byte for byte.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import resource
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

from benchmarks.report import emit, git_commit
from lrclr.bundled import DEFAULT_DEMO_DIR

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("LRCLR_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
NIH_IMAGES = SHARED_DATA / "nih-cxr14-sample" / "images"
DEMO_DICOMS = sorted(DEFAULT_DEMO_DIR.glob("*.dcm"))
# Each broken file and the words its error must contain.
BROKEN = {
    "broken-empty.png": "the file is empty",
    "broken-truncated.png": "truncated or damaged",
    "broken-text.png": "it looks like text",
    "broken-truncated.dcm": "truncated or damaged",
    "broken-huge-header.png": "40000 x 40000 pixels",
}


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def write_broken_files(folder: Path, png: bytes, dicom: bytes) -> None:
    (folder / "broken-empty.png").write_bytes(b"")
    (folder / "broken-truncated.png").write_bytes(png[: len(png) // 3])
    (folder / "broken-text.png").write_text("Patient list, not an image.\n" * 20, encoding="utf-8")
    (folder / "broken-truncated.dcm").write_bytes(dicom[:20_000])
    header = struct.pack(">IIBBBBB", 40_000, 40_000, 8, 0, 0, 0, 0)  # 8-bit grayscale, 1.6 gigapixels
    (folder / "broken-huge-header.png").write_bytes(
        b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + _png_chunk(b"IEND", b""))


def build_batch(folder: Path, files: int) -> None:
    """``files`` files: NIH copies (distinct names), the demo DICOMs, and the five broken files."""
    nih = sorted(NIH_IMAGES.glob("*.png"))
    if not nih:
        raise SystemExit(f"needs the NIH sample in {NIH_IMAGES} (the team's shared data)")
    folder.mkdir(parents=True)
    copies = files - len(DEMO_DICOMS) - len(BROKEN)
    for index in range(copies):
        source = nih[index % len(nih)]
        shutil.copy(source, folder / f"nih-{index:04d}-{source.name}")
    for dicom in DEMO_DICOMS:
        shutil.copy(dicom, folder / dicom.name)
    write_broken_files(folder, nih[0].read_bytes(), DEMO_DICOMS[0].read_bytes())


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def child(folder: Path, csv_path: Path, model_dir: str) -> dict:
    """The page's code path, in this (fresh) process."""
    from lrclr.batch.preparing import THUMBNAIL_PX
    from lrclr.batch.scoring import BatchRun
    from lrclr.batch.sources import FolderSource
    from lrclr.model.lrclr_model import LRCLRModel
    from lrclr.batch.prediction_csv import write_csv

    model = LRCLRModel.from_pretrained(model_dir, device="auto")
    floor = _peak_rss_mb()
    start = time.perf_counter()
    run = BatchRun(model, FolderSource.from_paths([folder]), _findings(), thumbnail_px=THUMBNAIL_PX)
    results = []
    for chunk in run:  # the page steps the same run one chunk per rerun and keeps every result
        results.extend(chunk)
    buffer = io.StringIO(newline="")
    write_csv([r.row for r in results], buffer, run.findings, run.source.with_reports)
    csv_path.write_bytes(buffer.getvalue().encode("utf-8"))
    seconds = time.perf_counter() - start
    return {"files": run.total, "scored": run.scored, "failed": run.failed, "batch_size": run.batch_size,
            "device": model.device_info.name, "seconds": seconds, "seconds_per_file": seconds / run.total,
            "peak_rss_after_model_load_mb": floor, "peak_rss_mb": _peak_rss_mb(),
            "errors": {r.row.image: r.row.error for r in results if r.row.error}}


def _findings() -> list[str]:
    from lrclr.findings import NIH_FINDINGS

    return list(NIH_FINDINGS)


def measure(files: int, workdir: Path, model_dir: str) -> dict:
    folder = workdir / f"batch-{files}"
    build_batch(folder, files)
    page_csv, cli_csv = workdir / f"page-{files}.csv", workdir / f"cli-{files}.csv"
    started = time.perf_counter()
    page = subprocess.run([sys.executable, "-m", "benchmarks.batch_memory", "--child", str(folder),
                           "--csv", str(page_csv), "--model", model_dir],
                          cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    result = json.loads(page.stdout.strip().splitlines()[-1])
    result["wall_s"] = time.perf_counter() - started
    started = time.perf_counter()
    cli = subprocess.run([sys.executable, "-m", "lrclr", "predict", str(folder), "--model", model_dir,
                          "--out", str(cli_csv)], cwd=REPO_ROOT, capture_output=True, text=True)
    result["cli_wall_s"] = time.perf_counter() - started
    result["cli_exit_code"] = cli.returncode
    result["csv_equal_to_cli"] = page_csv.read_bytes() == cli_csv.read_bytes()
    result["broken_files_reported"] = all(
        name in result["errors"] and words in result["errors"][name] for name, words in BROKEN.items())
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[30, 300], help="files per batch (smallest first)")
    parser.add_argument("--model", default=None, help="model folder (default: the bundled model)")
    parser.add_argument("--out-json", type=Path)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--csv", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    from lrclr.bundled import DEFAULT_MODEL_DIR

    model_dir = args.model or str(DEFAULT_MODEL_DIR)
    if args.child:
        print(json.dumps(child(args.child, args.csv, model_dir)))
        return 0
    with tempfile.TemporaryDirectory() as workdir:
        batches = {str(n): measure(n, Path(workdir), model_dir) for n in args.sizes}
    smallest, largest = batches[str(min(args.sizes))], batches[str(max(args.sizes))]
    result = {
        "command": "python -m benchmarks.batch_memory " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "date": time.strftime("%Y-%m-%d"), "commit": git_commit(), "model": model_dir,
        "batches": batches,
        "peak_rss_ratio_largest_to_smallest": largest["peak_rss_mb"] / smallest["peak_rss_mb"],
    }
    emit(result, args.out_json)
    ok = all(b["csv_equal_to_cli"] and b["broken_files_reported"] for b in batches.values())
    return 0 if ok and result["peak_rss_ratio_largest_to_smallest"] <= 1.5 else 1


if __name__ == "__main__":
    sys.exit(main())
