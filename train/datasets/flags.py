"""Annotators' flags as training data: find each flagged pair's image and report, and tokenize it.

The flag store (``lrclr.annotations.store``) never keeps file names or report text, only SHA-256 digests
(so it holds no patient identifiers). To learn from a flag we must find the bytes again: images are
located by hashing candidate files under the image roots (``--flag-images DIR``, default the demo
gallery and the training dataset's image folder), reports by hashing candidate texts (``.txt`` files
under the same roots, and the training dataset's own reports). A flag whose image or report cannot
be found is skipped, with the reason counted and printed, never guessed.

Only ``bad match`` and ``good match`` verdicts are used; several annotators' verdicts on the same
(image, report, word span, grid cell) are merged by majority, and a tie is skipped. The target of a
flag is its grid cell, not its region rank: after fine-tuning the selector may rank regions
differently, while the cell still names the same place on the image.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import torch

from lrclr.annotations.records import Verdict, sha256_hex

from lrclr.annotations.store import AnnotationStore
from lrclr.bundled import DEFAULT_DEMO_DIR
from lrclr.imaging.reading import load_image
from lrclr.model.letterbox import Letterbox, prepare_images
from lrclr.reports.text import read_report_file
from lrclr.model.tokens import TokenizedReports, tokenize_reports

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".dcm", ".dicom"}
REPORT_SUFFIX = ".txt"
SIGN = {"bad match": 1, "good match": -1}  # +1: push the attention down, -1: up
# explain() grounds reports up to this many tokens; flags were made on what it showed.
EXPLAIN_MAX_TOKENS = 512
HASH_CACHE_ENV = "LRCLR_CACHE_DIR"


# ---- finding files by hash -------------------------------------------------------------------------


def default_hash_cache() -> Path:
    base = os.environ.get(HASH_CACHE_ENV)
    return (Path(base) if base else Path.home() / ".cache" / "lrclr") / "flag-file-hashes.json"


def _is_dicom_without_suffix(path: Path) -> bool:
    # DICOM files often have no extension; the preamble's "DICM" marker says what they are.
    try:
        with open(path, "rb") as handle:
            return handle.read(132)[128:132] == b"DICM"
    except OSError:
        return False


def _report_variants(text: str) -> set[str]:
    # The app shows (and hashes) a demo report stripped; a dataset may store it either way.
    return {text, text.strip()}


class FileHashIndex:
    """SHA-256 -> image file and SHA-256 -> report text over some folders, searched recursively.

    Image digests are cached on disk by (path, size, mtime), so a large image folder is hashed
    once; ``.txt`` reports are small and simply re-read.
    """

    def __init__(self, roots: Iterable[str | Path], cache_path: Path | None = None,
                 extra_reports: Iterable[str] = ()) -> None:
        self.roots = [Path(r) for r in roots]
        self.cache_path = cache_path
        self.images: dict[str, Path] = {}
        self.reports: dict[str, str] = {}
        cache = self._read_cache()
        seen: dict[str, dict] = {}
        texts = list(extra_reports)
        for path in self._candidates():
            if path.suffix.lower() == REPORT_SUFFIX:
                texts.append(read_report_file(path))
                continue
            key, stat = str(path.resolve()), path.stat()
            entry = cache.get(key)
            if not entry or entry.get("size") != stat.st_size or entry.get("mtime_ns") != stat.st_mtime_ns:
                entry = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": sha256_hex(path.read_bytes())}
            seen[key] = entry
            self.images.setdefault(entry["sha256"], path)
        for text in texts:
            for variant in _report_variants(text):
                self.reports.setdefault(sha256_hex(variant), variant)
        if any(cache.get(key) != entry for key, entry in seen.items()):
            self._write_cache({**cache, **seen})

    def _candidates(self) -> Iterable[Path]:
        for root in self.roots:
            if not root.is_dir():
                continue
            for path in sorted(root.rglob("*")):
                if not path.is_file():
                    continue
                suffix = path.suffix.lower()
                if suffix in IMAGE_SUFFIXES or suffix == REPORT_SUFFIX:
                    yield path
                elif not suffix and _is_dicom_without_suffix(path):
                    yield path

    def _read_cache(self) -> dict[str, dict]:
        if self.cache_path is None or not self.cache_path.is_file():
            return {}
        try:
            data = json.loads(self.cache_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}  # a damaged cache costs a re-hash, nothing more
        return data if isinstance(data, dict) else {}

    def _write_cache(self, data: dict) -> None:
        if self.cache_path is None:
            return
        try:
            self.cache_path.parent.mkdir(parents=True, exist_ok=True)
            temporary = self.cache_path.with_suffix(f".{os.getpid()}.tmp")
            temporary.write_text(json.dumps(data), encoding="utf-8")
            os.replace(temporary, self.cache_path)  # several torchrun ranks may write at once
        except OSError:
            pass


def dataset_image_roots(dataset) -> list[Path]:
    """Where a dataset keeps its image files (NIH: images/, CSV: the CSV's folder); [] for phantoms."""
    for attribute in ("images_dir", "base", "root"):
        folder = getattr(dataset, attribute, None)
        if folder is not None and Path(folder).is_dir():
            return [Path(folder)]
    return []


def dataset_reports(dataset) -> list[str]:
    """The dataset's report texts, where it holds them without decoding images (NIH, CSV)."""
    reports = getattr(dataset, "reports", None)
    if isinstance(reports, dict):
        return [getattr(r, "text", r) for r in reports.values() if isinstance(getattr(r, "text", r), str)]
    records = getattr(dataset, "records", None) or []
    return [r.text for r in records if isinstance(getattr(r, "text", None), str)]


# ---- choosing the flags ----------------------------------------------------------------------------


@dataclass(frozen=True)
class FlagCase:
    image_sha256: str
    report_sha256: str
    image_path: Path
    report: str
    case_id: str


@dataclass(frozen=True)
class FlagTarget:
    """One flagged (word, grid cell) pair of a case, after merging annotators' verdicts."""

    case: int  # index into FlagSelection.cases
    word: str
    char_start: int
    char_end: int
    cell: tuple[int, int]  # (row, col) of the patch grid
    sign: int  # +1 bad match (lower its attention), -1 good match (raise it)
    verdicts: int  # how many verdicts agreed
    region_rank: int  # the rank the annotator saw (reporting only)


@dataclass
class FlagSelection:
    cases: list[FlagCase] = field(default_factory=list)
    targets: list[FlagTarget] = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)  # reason -> number of verdicts
    n_verdicts: int = 0

    def summary(self) -> str:
        bad = sum(t.sign > 0 for t in self.targets)
        lines = [f"flags: {self.n_verdicts} verdict(s) read; {len(self.targets)} flagged pair(s) used "
                 f"({bad} bad, {len(self.targets) - bad} good) on {len(self.cases)} case(s); "
                 f"{sum(self.skipped.values())} verdict(s) skipped"]
        lines += [f"  skipped {n}: {reason}" for reason, n in self.skipped.most_common()]
        return "\n".join(lines)


def select_flags(store_path: str | Path, index: FileHashIndex, model_id: str | None) -> FlagSelection:
    """Usable flags of ``store_path`` (read only); ``model_id=None`` keeps every model's flags."""
    if not Path(store_path).is_file():
        raise FileNotFoundError(f"flag store {store_path} not found")
    with AnnotationStore(store_path) as store:
        verdicts = store.verdicts()
    selection = FlagSelection(n_verdicts=len(verdicts))
    groups: dict[tuple, list[Verdict]] = {}
    for verdict in verdicts:
        reason = _skip_reason(verdict, index, model_id)
        if reason:
            selection.skipped[reason] += 1
            continue
        p = verdict.pair
        key = (p.image_sha256, p.report_sha256, p.char_start, p.char_end, p.cell_row, p.cell_col)
        groups.setdefault(key, []).append(verdict)
    case_of: dict[tuple[str, str], int] = {}
    for key, group in groups.items():
        votes = sum(SIGN[v.verdict] for v in group)
        if votes == 0:
            selection.skipped["bad and good verdicts tie on the same pair"] += len(group)
            continue
        pair = group[0].pair
        case_key = (pair.image_sha256, pair.report_sha256)
        if case_key not in case_of:
            case_of[case_key] = len(selection.cases)
            selection.cases.append(FlagCase(pair.image_sha256, pair.report_sha256, index.images[pair.image_sha256],
                                            index.reports[pair.report_sha256], pair.case_id))
        sign = 1 if votes > 0 else -1
        agreeing = sum(SIGN[v.verdict] == sign for v in group)
        selection.targets.append(FlagTarget(case_of[case_key], pair.word, pair.char_start, pair.char_end,
                                            (pair.cell_row, pair.cell_col), sign, agreeing, pair.region_rank))
        if len(group) > agreeing:
            selection.skipped["outvoted by other annotators on the same pair"] += len(group) - agreeing
    return selection


def _skip_reason(verdict: Verdict, index: FileHashIndex, model_id: str | None) -> str:
    pair = verdict.pair
    if verdict.verdict not in SIGN:
        return f"verdict {verdict.verdict!r} (only bad/good matches teach)"
    if model_id is not None and pair.model_id != model_id:
        return f"made on model {pair.model_id!r}, not the starting model {model_id!r} (--flags-any-model keeps it)"
    if pair.image_sha256 not in index.images:
        return "image not found by SHA-256 under the image roots (--flag-images)"
    report = index.reports.get(pair.report_sha256)
    if report is None:
        return "report text not found by SHA-256 (edited in the app, or not under the roots/dataset)"
    if report[pair.char_start : pair.char_end] != pair.word:
        return "the word is not at its character span in the report"
    return ""


# ---- the dataset of flagged pairs ------------------------------------------------------------------


@dataclass
class FlagItem:
    pixels: torch.Tensor  # (1, S, S) letterboxed image
    letterbox: Letterbox
    input_ids: torch.Tensor  # (L,) the case's report tokens
    attention_mask: torch.Tensor  # (L,)
    word_mask: torch.Tensor  # (L,)
    token_indices: tuple[int, ...]  # the flagged word's wordpieces
    cell: int  # flat index of the flagged grid cell
    sign: int


class FlagPairs(torch.utils.data.Dataset):
    """The flagged pairs, ready for a model: images letterboxed and reports tokenized once per case.

    Pairs whose word cannot be matched to wordpieces (past the token limit) or whose cell lies
    outside the model's grid are dropped here and counted in ``selection.skipped``.
    """

    def __init__(self, selection: FlagSelection, tokenizer, image_size: int, grid: tuple[int, int]) -> None:
        self.selection, self.grid = selection, grid
        self.targets, self.token_indices = [], []
        if not selection.cases:
            return
        images = [load_image(case.image_path).pixels for case in selection.cases]
        self.pixels, self.letterboxes = prepare_images(images, image_size)
        limit = getattr(tokenizer, "model_max_length", EXPLAIN_MAX_TOKENS)
        limit = min(EXPLAIN_MAX_TOKENS, limit if isinstance(limit, int) else EXPLAIN_MAX_TOKENS)
        self.tokens: TokenizedReports = tokenize_reports(tokenizer, [c.report for c in selection.cases], limit)
        for target in selection.targets:
            reason = self._unusable(target)
            if reason:
                selection.skipped[reason] += target.verdicts
                continue
            self.targets.append(target)
            self.token_indices.append(self._wordpieces(target))

    def _unusable(self, target: FlagTarget) -> str:
        row, col = target.cell
        if not (0 <= row < self.grid[0] and 0 <= col < self.grid[1]):
            return f"grid cell outside this model's {self.grid[0]}x{self.grid[1]} grid"
        if not self._wordpieces(target):
            return "word not among the tokenized report's words (past the token limit?)"
        return ""

    def _wordpieces(self, target: FlagTarget) -> tuple[int, ...]:
        words = self.tokens.words[target.case]
        exact = [w for w in words if (w.start, w.end) == (target.char_start, target.char_end)]
        # Another tokenizer (flags of another model) may split words differently: take the overlap.
        chosen = exact or [w for w in words if w.start < target.char_end and w.end > target.char_start]
        return tuple(i for w in chosen for i in w.token_indices)

    def __len__(self) -> int:
        return len(self.targets)

    def cell_index(self, i: int) -> int:
        row, col = self.targets[i].cell
        return row * self.grid[1] + col

    def __getitem__(self, i: int) -> FlagItem:
        target, case = self.targets[i], self.targets[i].case
        return FlagItem(self.pixels[case], self.letterboxes[case], self.tokens.input_ids[case],
                        self.tokens.attention_mask[case], self.tokens.word_mask[case], self.token_indices[i],
                        self.cell_index(i), target.sign)

    def case_tokens(self, cases: Sequence[int]) -> TokenizedReports:
        """The reports of some cases as one batch (trailing padding trimmed)."""
        index = torch.as_tensor(list(cases))
        mask = self.tokens.attention_mask[index]
        length = int(mask.sum(1).max())
        return TokenizedReports(self.tokens.input_ids[index, :length], mask[:, :length],
                                self.tokens.word_mask[index, :length], [self.tokens.words[c] for c in cases],
                                [self.tokens.truncated[c] for c in cases])


def model_grid(model) -> tuple[int, int]:
    """The patch grid the image tower gives at the model's input size."""
    size = model.config.image_size
    device = next(model.parameters()).device
    with torch.no_grad():
        return tuple(model.image_tower(torch.zeros(1, 1, size, size, device=device)).shape[-2:])


def starting_model_id(init_from: str | Path | None) -> str | None:
    """The model_id the app recorded for flags on the model a fine-tune starts from."""
    if init_from is None:
        return None
    card = Path(init_from) / "model_card.json"
    try:
        return str(json.loads(card.read_text(encoding="utf-8")).get("model_id") or Path(init_from).name)
    except (OSError, ValueError):
        return Path(init_from).name


def default_image_roots(dataset=None) -> list[Path]:
    return [DEFAULT_DEMO_DIR, *(dataset_image_roots(dataset) if dataset is not None else [])]


def load_flag_pairs(store_path, model, *, image_roots: Sequence[str | Path] = (), dataset=None,
                    model_id: str | None = None, any_model: bool = False,
                    hash_cache: Path | None = None) -> FlagPairs:
    """Everything above in one call: locate, select, tokenize. ``image_roots`` empty: the defaults."""
    roots = [Path(r) for r in image_roots] or default_image_roots(dataset)
    reports = dataset_reports(dataset) if dataset is not None else []
    index = FileHashIndex(roots, hash_cache if hash_cache is not None else default_hash_cache(), reports)
    selection = select_flags(store_path, index, None if any_model else model_id)
    return FlagPairs(selection, model.tokenizer, model.config.image_size, model_grid(model))
