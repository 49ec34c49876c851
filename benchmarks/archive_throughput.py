"""Archive scoring throughput against the image tower alone, on the same images and device.

    python -m benchmarks.archive_throughput --device cpu --images 64 --repeats 3 \\
        --out-json docs/benchmarks/archive_throughput_cpu.json
    python -m benchmarks.archive_throughput --device cuda --images 2048 --repeats 3 \\
        --out-json docs/benchmarks/archive_throughput_cuda.json

Measured in one process, the model loaded once, medians of ``--repeats``:

* ``image_tower``: the image tower's forward pass alone over all the images, already letterboxed
  and on the device, ``--batch-size`` at a time (the floor no scoring built on this tower can beat);
* ``archive``: a folder run (``lrclr.batch.distributed_run.score_chunks`` and the merge) from the
  files on disk to the merged CSV: DataLoader workers read, decode and letterbox, then the model,
  the input gate and the part files; a fresh run folder each repeat;
* ``in_process``: the same files through ``BatchRun`` (the ``--out FILE.csv`` and Batch page path),
  which reads and decodes in the scoring process;
* ``stages``: where one image's time goes when done one after the other (ms per image): read and
  decode, letterbox, the gate's image statistics, the tower alone and the whole of ``score_batch``
  (tower included) per image at the batch size, and the CSV row. On a GPU, what the CPU stages cost against the tower says how
  many loader workers a GPU needs.

The images are ``--folder``'s image files (the first ``--images``, repeated if fewer), by default
the demo gallery's radiographs (512 and 1024 px).
"""

from __future__ import annotations

import argparse
import io
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.report import emit, torch_run_header
from lrclr.batch.distributed_run import default_workers, score_chunks
from lrclr.ranks import Ranks
from lrclr.batch.prediction_csv import write_csv
from lrclr.batch.preparing import collate, load_input, prepare_input
from lrclr.batch.run_folder import RunFolder, RunPlan
from lrclr.batch.scoring import BatchRun, default_batch_size, score_batch
from lrclr.batch.sources import FolderSource
from lrclr.bundled import DEFAULT_MODEL_DIR
from lrclr.demo import load_gallery
from lrclr.findings import NIH_FINDINGS
from lrclr.imaging.input_check import image_reasons
from lrclr.model.device import PRECISIONS, autocast
from lrclr.model.letterbox import as_pixels, letterbox_pixels
from lrclr.model.lrclr_model import LRCLRModel


def copy_images(folder: Path | None, count: int, into: Path) -> list[Path]:
    """``count`` image files in ``into``, copied round-robin from ``folder`` (default: the gallery)."""
    if folder is None:
        sources = [case.image_path for case in load_gallery()]
    else:
        sources = FolderSource.from_paths([folder]).inputs
        sources = [Path(item.path) for item in sources]
    if not sources:
        raise SystemExit(f"no image files in {folder}")
    files = []
    for i in range(count):
        source = sources[i % len(sources)]
        files.append(into / f"{i:06d}-{source.name}")
        shutil.copy(source, files[-1])
    return files


def interleaved_medians(runs: dict, repeats: int) -> dict[str, float]:
    """Median seconds of each run, the runs taken in turn within each repeat, so that a shared
    machine's changing load falls on all of them alike (every ratio compares numbers of one run)."""
    for run in runs.values():
        run()  # warm: prompt encoding, allocator, first-call kernels
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def synchronize(model) -> None:
    if model.device_info.device.type == "cuda":
        torch.cuda.synchronize()


def tower_run(model, source, batch_size: int):
    prepared = [prepare_input(source, item, i, model.config.image_size, ()) for i, item in enumerate(source.inputs)]
    device = model.device_info.device
    batches = [collate(prepared[i:i + batch_size]).pixels.to(device) for i in range(0, len(prepared), batch_size)]

    @torch.inference_mode()
    def run():
        with autocast(model.device_info):
            for pixels in batches:
                model.image_tower(pixels)
        synchronize(model)

    return run


def archive_run(model, source, batch_size: int, workers: int, scratch: Path):
    runs = iter(range(10**6))
    chunk_size = batch_size * max(1, len(source.inputs) // batch_size // 4)  # four parts, as a run has many

    def run():
        folder = RunFolder(scratch / f"run-{next(runs)}")
        folder.parts.mkdir(parents=True)
        plan = RunPlan(len(source.inputs), "", False, model.model_id, "", tuple(NIH_FINDINGS), chunk_size,
                       batch_size, "float32", False)
        score_chunks(model, source, plan, range(plan.chunks), folder, workers, lambda text: None)
        folder.merge(plan)
        shutil.rmtree(folder.root)

    return run


def in_process_run(model, source, batch_size: int):
    def run():
        rows = (result.row for chunk in BatchRun(model, source, NIH_FINDINGS, batch_size) for result in chunk)
        write_csv(rows, io.StringIO(), NIH_FINDINGS)

    return run


def stage_milliseconds(model, source, batch_size: int, repeats: int) -> dict:
    """Per image, each stage alone over the first ``batch_size`` images, median of ``repeats``."""
    items = source.inputs[:batch_size]
    size = model.config.image_size
    images = [load_input(source, item)[0] for item in items]
    batch = collate([prepare_input(source, item, i, size, NIH_FINDINGS) for i, item in enumerate(items)])
    rows = [result.row for result in score_batch(model, batch, NIH_FINDINGS)]
    device_pixels = batch.pixels.to(model.device_info.device)

    @torch.inference_mode()
    def tower():
        model.image_tower(device_pixels)
        synchronize(model)

    def scoring():
        score_batch(model, batch, NIH_FINDINGS)
        synchronize(model)

    seconds = interleaved_medians({
        "read_and_decode": lambda: [load_input(source, item) for item in items],
        "letterbox": lambda: [letterbox_pixels(as_pixels(image), size) for image in images],
        "gate_image_statistics": lambda: [image_reasons(i.pixels, i.header, i.colourfulness) for i in images],
        "image_tower": tower,
        "score_batch": scoring,
        "csv_rows": lambda: write_csv(rows, io.StringIO(), NIH_FINDINGS),
    }, repeats)
    # score_batch: the copy to the device, the tower, projections, regions, prompts, calibration,
    # gate; on a CPU its difference from image_tower is within the noise of a shared machine.
    return {name: 1000 * value / len(items) for name, value in seconds.items()}


def measure(args) -> dict:
    model = LRCLRModel.from_pretrained(DEFAULT_MODEL_DIR, device=args.device, precision=args.precision)
    batch_size = args.batch_size or default_batch_size(model)
    workers = args.workers if args.workers is not None else default_workers(model.device_info.device.type, Ranks())
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        (scratch / "images").mkdir()
        files = copy_images(args.folder, args.images, scratch / "images")
        source = FolderSource(files)
        seconds = interleaved_medians({"tower": tower_run(model, source, batch_size),
                                       "archive": archive_run(model, source, batch_size, workers, scratch),
                                       "in_process": in_process_run(model, source, batch_size)}, args.repeats)
        stages = stage_milliseconds(model, source, batch_size, max(3, args.repeats))
    n, tower, archive, in_process = len(files), seconds["tower"], seconds["archive"], seconds["in_process"]
    return {
        "device": model.device_info.name, "precision": args.precision, "images": n, "batch_size": batch_size,
        "loader_workers": workers, "repeats": args.repeats,
        "image_tower_images_per_s": n / tower, "archive_images_per_s": n / archive,
        "in_process_images_per_s": n / in_process,
        "archive_ratio_to_tower": tower / archive, "in_process_ratio_to_tower": tower / in_process,
        "stages_ms_per_image": stages,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", help="auto (CUDA > MPS > CPU), cuda or cpu")
    parser.add_argument("--precision", default="float32", choices=PRECISIONS)
    parser.add_argument("--images", type=int, default=64, help="files to score (copies, round-robin)")
    parser.add_argument("--folder", type=Path, default=None, help="take the images from here (default: the demo gallery)")
    parser.add_argument("--batch-size", type=int, default=None, help="default: the CLI's for the device")
    parser.add_argument("--workers", type=int, default=None, help="loader workers (default: the CLI's for the device)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out-json", type=Path)
    args = parser.parse_args(argv)
    result = {**torch_run_header("archive_throughput", argv), **measure(args)}
    emit(result, args.out_json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
