"""Command line for the library: ``python -m lrclr predict PATH... --out predictions.csv`` (or
``--out FOLDER/``: a resumable run that ``torchrun`` shares out, and ``python -m lrclr merge FOLDER``)
and ``python -m lrclr add-user`` for a deployment's logins."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from lrclr.model.device import PRECISIONS
from lrclr.errors import LRCLRError
from lrclr.findings import NIH_FINDINGS, parse_finding_list
from lrclr.bundled import DEFAULT_MODEL_DIR
from lrclr.batch.run_folder import DEFAULT_CHUNK_SIZE


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m lrclr")
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")
    predict = sub.add_parser(
        "predict",
        help="zero-shot finding probabilities for images, one CSV row per image",
        description="Score PNG/JPEG/DICOM files (or folders of them). Unreadable files get a row "
        "with the reason in the 'error' column; the rest are still scored.",
    )
    predict.add_argument("paths", nargs="+", metavar="PATH",
                         help="image files or folders, or one ZIP archive (read member by member, never extracted)")
    predict.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR,
                         help=f"model folder (default: the bundled model, {DEFAULT_MODEL_DIR})")
    predict.add_argument("--findings", default=",".join(NIH_FINDINGS),
                         help="comma-separated finding names; any name works (default: the 14 NIH findings)")
    predict.add_argument("--reports", type=Path, default=None,
                         help="folder of same-named .txt reports; adds the report labeler's status per finding "
                         "(in a ZIP archive, same-named .txt members beside the images are read instead)")
    predict.add_argument("--out", required=True,
                         help="CSV file to write ('-' for standard output); or a folder (an existing one, or a "
                              "path ending in /): a resumable run that torchrun can share out (see below)")
    predict.add_argument("--device", default="auto", help="auto (CUDA > MPS > CPU), cuda, mps or cpu")
    predict.add_argument("--precision", default="float32", choices=PRECISIONS,
                         help="bf16: autocast on a GPU for throughput; probabilities then differ from "
                              "float32 by up to about 0.1 (BENCHMARKS.md). The CPU always runs float32")
    predict.add_argument("--batch-size", type=int, default=None,
                         help="images per model batch (default: 32 on CUDA, 16 on MPS, 8 on a CPU)")
    archive = predict.add_argument_group(
        "when --out is a folder", "Parts of --chunk-size files are written to FOLDER/parts/ and merged into "
        "FOLDER/predictions.csv; a run started again scores only the chunks without a part. Under "
        "'torchrun --nproc_per_node N -m lrclr predict ...' each process scores its share of the chunks.")
    archive.add_argument("--chunk-size", type=int, default=None,
                         help=f"files per part (default {DEFAULT_CHUNK_SIZE}, or the run's own when resumed); "
                              "a multiple of --batch-size")
    archive.add_argument("--workers", type=int, default=None,
                         help="DataLoader worker processes reading and decoding files, per process "
                              "(default: 1 on a CPU; on a GPU the node's cores per process, minus one)")
    archive.add_argument("--threads", type=int, default=None,
                         help="torch threads per process on a CPU (default: the node's cores divided by its "
                              "processes); the last digits of a CPU's probabilities depend on it")
    archive.add_argument("--parquet", action="store_true", default=None,
                         help="also write each part, and the merged predictions, as Parquet (kept when resumed)")
    merge = sub.add_parser("merge", help="merge a finished folder run's parts into FOLDER/predictions.csv",
                           description="What the run does itself at its end; for a run whose processes were "
                           "started some other way. Refuses while chunks are missing.")
    merge.add_argument("folder", type=Path, help="the run's --out folder")
    add_user = sub.add_parser(
        "add-user",
        help="add a user to a deployment's credentials file, or reset their password and role",
        description="The password is read from standard input (one line), never prompted for: "
        "printf '%s' \"$PASSWORD\" | python -m lrclr add-user users.toml dr_carol --role admin --password-stdin",
    )
    add_user.add_argument("credentials", type=Path, help="the credentials file (created if missing)")
    add_user.add_argument("name", help="the user's name, recorded with their verdicts")
    add_user.add_argument("--role", required=True, choices=("admin", "annotator"),
                          help="admin may choose the model; annotator reviews and records verdicts")
    add_user.add_argument("--password-stdin", action="store_true", required=True,
                          help="read the password from standard input")
    return parser


def run_add_user(args: argparse.Namespace) -> int:
    from lrclr.deployment.logins import add_user

    password = sys.stdin.readline().rstrip("\r\n")
    add_user(args.credentials, args.name, args.role, password)
    print(f"{args.name} ({args.role}) saved in {args.credentials}", file=sys.stderr)
    return 0


ARCHIVE_ONLY = ("chunk_size", "workers", "threads", "parquet")


def is_folder_out(out: str) -> bool:
    return out != "-" and (out.endswith(("/", os.sep)) or Path(out).is_dir())


def run_predict(args: argparse.Namespace) -> int:
    from lrclr.ranks import Ranks

    if args.reports is not None and not args.reports.is_dir():
        raise LRCLRError(f"--reports {args.reports} is not a folder")
    if is_folder_out(args.out):
        return run_archive(args)
    if Ranks.from_environment().enabled:
        raise LRCLRError("under torchrun each process writes part files into a folder: give --out a folder "
                         "(a path ending in /)")
    given = [f"--{name.replace('_', '-')}" for name in ARCHIVE_ONLY if getattr(args, name) is not None]
    if given:
        raise LRCLRError(f"{', '.join(given)} apply only when --out is a folder (a path ending in /)")
    return run_predict_csv(args, Path(args.out))


def run_archive(args: argparse.Namespace) -> int:
    from lrclr.batch.distributed_run import ArchiveOptions, score_archive

    if args.workers is not None and args.workers < 0 or args.threads is not None and args.threads < 1:
        raise LRCLRError("--workers must be 0 or more (0: decode in the scoring process) and --threads 1 or more")
    if args.parquet:
        try:
            import pyarrow  # noqa: F401
        except ImportError as error:
            raise LRCLRError("--parquet needs pyarrow: pip install -r requirements.txt") from error
    options = ArchiveOptions(tuple(map(str, args.paths)), Path(args.out), args.model,
                             tuple(parse_finding_list(args.findings)), args.reports, args.device, args.precision,
                             args.batch_size, args.chunk_size, args.workers, args.threads, args.parquet)
    merged = score_archive(options).merged
    if merged is None:  # not rank 0: rank 0 merges and reports
        return 0
    print(f"{merged.scored} scored, {merged.failed} failed -> {', '.join(map(str, merged.files))}", file=sys.stderr)
    return 0 if merged.scored else 1


def run_merge(args: argparse.Namespace) -> int:
    from lrclr.batch.run_folder import RunFolder

    merged = RunFolder(args.folder).merge()
    print(f"{merged.scored} scored, {merged.failed} failed -> {', '.join(map(str, merged.files))}", file=sys.stderr)
    return 0


def run_predict_csv(args: argparse.Namespace, out: Path) -> int:
    from lrclr.batch.scoring import BatchRun
    from lrclr.batch.sources import open_source
    from lrclr.model.lrclr_model import LRCLRModel
    from lrclr.batch.prediction_csv import write_csv

    findings = parse_finding_list(args.findings)
    source = open_source(args.paths, args.reports)
    try:
        if not source.inputs:
            raise LRCLRError(f"no image files found in {' '.join(map(str, args.paths))}")
        model = LRCLRModel.from_pretrained(args.model, device=args.device, precision=args.precision)
        run = BatchRun(model, source, findings, args.batch_size)
        print(f"model {model.model_id} on {model.device_info.name}; {run.total} files, "
              f"{run.batch_size} per batch", file=sys.stderr)
        rows = (result.row for chunk in _with_progress(run) for result in chunk)
        if str(out) == "-":
            scored, failed = write_csv(rows, sys.stdout, findings, source.with_reports)
        else:
            out.parent.mkdir(parents=True, exist_ok=True)
            with open(out, "w", newline="", encoding="utf-8") as handle:
                scored, failed = write_csv(rows, handle, findings, source.with_reports)
    finally:
        source.close()
    print(f"{scored} scored, {failed} failed -> {out}", file=sys.stderr)
    return 0 if scored else 1


def _with_progress(run):
    """The run's chunks; on a terminal, a progress line ("n / total · ETA") after each."""
    for chunk in run:
        yield chunk
        if sys.stderr.isatty():
            print(f"\r{run.progress_text()}   ", end="" if run.active else "\n", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        commands = {"add-user": run_add_user, "merge": run_merge, "predict": run_predict}
        return commands[args.command](args)
    except (LRCLRError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
