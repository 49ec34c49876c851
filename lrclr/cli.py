"""Command line for the library: ``python -m lrclr predict PATH... --out predictions.csv`` and
``python -m lrclr add-user`` for a deployment's logins."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lrclr.model.device import PRECISIONS
from lrclr.errors import LRCLRError
from lrclr.findings import NIH_FINDINGS, parse_finding_list
from lrclr.bundled import DEFAULT_MODEL_DIR


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
    predict.add_argument("--out", type=Path, required=True, help="CSV file to write ('-' for standard output)")
    predict.add_argument("--device", default="auto", help="auto (CUDA > MPS > CPU), cuda, mps or cpu")
    predict.add_argument("--precision", default="float32", choices=PRECISIONS,
                         help="bf16: autocast on a GPU for throughput; probabilities then differ from "
                              "float32 by up to about 0.1 (BENCHMARKS.md). The CPU always runs float32")
    predict.add_argument("--batch-size", type=int, default=None,
                         help="images per model batch (default: 32 on CUDA, 16 on MPS, 8 on a CPU)")
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


def run_predict(args: argparse.Namespace) -> int:
    from lrclr.batch.scoring import BatchRun
    from lrclr.batch.sources import open_source
    from lrclr.model.lrclr_model import LRCLRModel
    from lrclr.batch.prediction_csv import write_csv

    findings = parse_finding_list(args.findings)
    if args.reports is not None and not args.reports.is_dir():
        raise LRCLRError(f"--reports {args.reports} is not a folder")
    source = open_source(args.paths, args.reports)
    try:
        if not source.inputs:
            raise LRCLRError(f"no image files found in {' '.join(map(str, args.paths))}")
        model = LRCLRModel.from_pretrained(args.model, device=args.device, precision=args.precision)
        run = BatchRun(model, source, findings, args.batch_size)
        print(f"model {model.model_id} on {model.device_info.name}; {run.total} files, "
              f"{run.batch_size} per batch", file=sys.stderr)
        rows = (result.row for chunk in _with_progress(run) for result in chunk)
        if str(args.out) == "-":
            scored, failed = write_csv(rows, sys.stdout, findings, source.with_reports)
        else:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            with open(args.out, "w", newline="", encoding="utf-8") as out:
                scored, failed = write_csv(rows, out, findings, source.with_reports)
    finally:
        source.close()
    print(f"{scored} scored, {failed} failed -> {args.out}", file=sys.stderr)
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
        return run_add_user(args) if args.command == "add-user" else run_predict(args)
    except (LRCLRError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
