"""``python -m train evaluate``: zero-shot AUC with CIs, retrieval and localization, models side by side.

For each model, one pass over the samples (so a lazily loading dataset holds one batch at a time):

- Zero-shot: the scores ``model.zero_shot`` gives (the app's), from the same image encoding the retrieval
  uses, so the image tower runs once per sample for both; per-finding AUC against
  ``sample.labels`` (uncertain -1 and unlabelled cases left out) with a bootstrap CI, and the macro
  mean over findings that have both classes, with a CI from resampling whole cases.
- Retrieval: global image and report embeddings (``prepare_images`` + ``encode_image`` with the
  letterboxes, as the model's own inference does); recall@k in both directions. Reports with
  identical text are interchangeable, so retrieving any of them counts as retrieving the true one.
- Localization, for every finding a sample has a mask (or boxes) for: the finding's phrase
  ("pleural effusion") is grounded with ``model.explain``; its word maps (averaged over the phrase's
  words) are the LRCLR region attention and, for both models, the word-patch similarity. Pointing
  game: is the centre of the map's peak cell, in original pixels, inside the mask (see
  ``peak_heatmap`` for why the peak is not taken on the bilinear upsampling); IoU of the union of
  the top-N cells' boxes with the mask. The same N for both map kinds keeps the comparison fair.

Outputs: a JSON file and a markdown page, each recording the exact command line.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch

from lrclr.model.device import autocast
from lrclr.errors import LRCLRError
from lrclr.model.explain import Explanation
from lrclr.trust.map_checks import peak_cells
from lrclr.model.letterbox import Letterbox, prepare_images
from lrclr.findings import NIH_FINDINGS, finding_phrase
from train.evaluation.metrics import (
    AUCDifference, FindingAUC, LocalizationScore, MacroAUC, RetrievalResult, boxes_to_mask, finding_auc, grown_mask, iou,
    macro_auc, paired_auc_differences, pointing_game_hit, recall_at_k, roc_curve,
)
from train.evaluation.report import compare, json_safe, write_outputs
from train.training.localization import ground_truth
from train.datasets.sample import Sample

KS = (1, 5, 10)
TOP_REGIONS = 3
ATTENTION, SIMILARITY = "region_attention", "patch_similarity"
UNLABELLED = -2  # a finding missing from sample.labels: unknown, but not "uncertain" (-1)


@dataclass(frozen=True)
class LocalizationCase:
    image_id: str
    finding: str
    map_kind: str
    hit: bool
    iou: float
    # Could any map hit? On a coarse grid the peak sits at a cell centre, and a mask thinner than a
    # cell (a plate of atelectasis, a nodule) may contain no cell centre at all.
    reachable: bool = True
    # The hit rate of a map peaking at a random content cell: the pointing game's chance level.
    chance: float = float("nan")


@dataclass
class EvaluationResult:
    model_id: str
    uses_regions: bool
    n_samples: int
    findings: list[FindingAUC]
    macro: MacroAUC
    retrieval: list[RetrievalResult]
    localization: list[LocalizationScore]
    roc: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # finding -> {"fpr", "tpr"}
    settings: dict[str, Any] = field(default_factory=dict)  # bootstrap, seed, top_regions, ks, ...
    seconds: float = 0.0
    # Per case (cases, findings), kept in memory for paired comparisons between models; not saved.
    case_labels: np.ndarray | None = field(default=None, repr=False, compare=False)
    case_scores: np.ndarray | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """Strict JSON: NaN becomes null and recall@k keys become strings."""
        data = dataclasses.asdict(self)
        del data["case_labels"], data["case_scores"]
        for item in data["retrieval"]:
            item["recall"] = {str(k): v for k, v in item["recall"].items()}
        return json_safe(data)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "EvaluationResult":
        def number(value):
            return float("nan") if value is None else value

        def build(kind, item):
            return kind(**{k: number(v) if isinstance(v, (float, type(None))) else v for k, v in item.items()})

        macro = dict(data["macro"], findings=tuple(data["macro"]["findings"]))
        retrieval = [RetrievalResult(r["direction"], r["n"], {int(k): number(v) for k, v in r["recall"].items()})
                     for r in data["retrieval"]]
        return cls(
            data["model_id"], data["uses_regions"], data["n_samples"],
            [build(FindingAUC, f) for f in data["findings"]], build(MacroAUC, macro), retrieval,
            [build(LocalizationScore, s) for s in data["localization"]], data.get("roc", {}),
            data.get("settings", {}), data.get("seconds", 0.0),
        )


# ---- one model -----------------------------------------------------------------------------------


@dataclass
class _Collected:
    labels: list[np.ndarray] = field(default_factory=list)  # per batch (B, F): 1, 0, -1, UNLABELLED
    scores: list[np.ndarray] = field(default_factory=list)  # per batch (B, F)
    images: list[np.ndarray] = field(default_factory=list)  # per batch (B', D), samples with reports
    texts: list[np.ndarray] = field(default_factory=list)
    reports: list[str] = field(default_factory=list)
    cases: list[LocalizationCase] = field(default_factory=list)
    n_samples: int = 0


def evaluate_model(model, samples: Iterable[Sample], findings: Sequence[str], *, batch_size: int = 16,
                   bootstrap: int = 1000, seed: int = 0, top_regions: int = TOP_REGIONS, ks: Sequence[int] = KS,
                   missing_as_negative: bool = False, tolerance_px: float = 0.0) -> EvaluationResult:
    """Evaluate one model on samples (a list, a dataset, or any iterable, read once)."""
    started = time.perf_counter()
    model.eval()
    findings = tuple(findings)
    collected = _Collected()
    for batch in _batches(samples, batch_size):
        collected.n_samples += len(batch)
        _score_batch(model, batch, findings, collected, missing_as_negative)
        for sample in batch:
            collected.cases.extend(localize_sample(model, sample, top_regions, tolerance_px))
    labels = np.concatenate(collected.labels) if collected.labels else np.zeros((0, len(findings)), int)
    scores = np.concatenate(collected.scores) if collected.scores else np.zeros((0, len(findings)))
    per_finding = [finding_auc(f, labels[:, j], scores[:, j], bootstrap, seed) for j, f in enumerate(findings)]
    return EvaluationResult(
        model_id=model.model_id, uses_regions=model.interaction is not None, n_samples=collected.n_samples,
        findings=per_finding, macro=macro_auc(findings, labels, scores, bootstrap, seed),
        retrieval=_retrieval(collected, ks), localization=summarise_localization(collected.cases),
        roc=roc_curves(findings, labels, scores),
        settings={"bootstrap": bootstrap, "seed": seed, "top_regions": top_regions, "ks": list(ks),
                  "missing_as_negative": missing_as_negative, "pointing_tolerance_px": tolerance_px},
        seconds=round(time.perf_counter() - started, 3), case_labels=labels, case_scores=scores,
    )


def pair_name(first: str, other: str) -> str:
    """How a paired difference is keyed in the outputs and model cards: "first - other"."""
    return f"{first} - {other}"


def paired_differences(results: dict[str, EvaluationResult]) -> dict[str, list[AUCDifference]]:
    """The first model against each other one ("A - B" -> per finding and macro), paired by case.

    Only meaningful for results of the same samples in the same order, as ``run`` produces.
    """
    names = list(results)
    if len(names) < 2:
        return {}
    first = results[names[0]]
    findings = [item.finding for item in first.findings]
    settings = first.settings
    return {pair_name(names[0], other): paired_auc_differences(
                findings, first.case_labels, first.case_scores, results[other].case_scores,
                settings.get("bootstrap", 1000), settings.get("seed", 0))
            for other in names[1:]}


def _batches(samples: Iterable[Sample], size: int) -> Iterator[list[Sample]]:
    if size < 1:
        raise ValueError(f"batch_size must be at least 1, got {size}")
    # A Dataset is indexed, not iterated: iterating a torch Dataset relies on IndexError to stop.
    items = (samples[i] for i in range(len(samples))) if hasattr(samples, "__getitem__") else iter(samples)
    batch: list[Sample] = []
    for sample in items:
        batch.append(sample)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _score_batch(model, batch: list[Sample], findings: tuple[str, ...], out: _Collected,
                 missing_as_negative: bool) -> None:
    """Zero-shot scores and retrieval embeddings from ONE pass of the image tower over the batch.

    ``model.score_features`` on these features is exactly what ``model.zero_shot`` computes.
    """
    missing = 0 if missing_as_negative else UNLABELLED
    device = model.device_info.device
    paired = [i for i, s in enumerate(batch) if s.report.strip()]
    with torch.inference_mode(), autocast(model.device_info):
        pixels, letterboxes = prepare_images([s.pixels for s in batch], model.config.image_size)
        features = model.encode_image(pixels.to(device), letterboxes)
        if findings:
            scores = model.score_features(features, findings).probabilities
        if paired:
            texts = model.encode_text(model.tokenize([batch[i].report for i in paired]).to(device)).global_embedding
    if findings:
        out.scores.append(scores.astype(np.float64))
        out.labels.append(np.array([[int(s.labels.get(f, missing)) for f in findings] for s in batch]))
    if paired:
        out.images.append(features.global_embedding[paired].float().cpu().numpy())
        out.texts.append(texts.float().cpu().numpy())
        out.reports.extend(batch[i].report.strip() for i in paired)


def _retrieval(collected: _Collected, ks: Sequence[int]) -> list[RetrievalResult]:
    if not collected.images:
        return []
    similarity = np.concatenate(collected.images) @ np.concatenate(collected.texts).T
    reports = np.array(collected.reports, dtype=object)
    same_text = reports[:, None] == reports[None, :]  # symmetric, so it serves both directions
    n = len(reports)
    return [
        RetrievalResult("image->report", n, recall_at_k(similarity, ks, relevant=same_text)),
        RetrievalResult("report->image", n, recall_at_k(similarity.T, ks, relevant=same_text)),
    ]


def roc_curves(findings, labels: np.ndarray, scores: np.ndarray) -> dict[str, dict[str, list[float]]]:
    curves = {}
    for j, finding in enumerate(findings):
        known = np.isin(labels[:, j], (0, 1))
        if len(set(labels[known, j].tolist())) == 2:
            fpr, tpr, _ = roc_curve(labels[known, j], scores[known, j])
            curves[finding] = {"fpr": np.round(fpr, 4).tolist(), "tpr": np.round(tpr, 4).tolist()}
    return curves


# ---- localization --------------------------------------------------------------------------------


def localize_sample(model, sample: Sample, top_regions: int = TOP_REGIONS,
                    tolerance_px: float = 0.0) -> list[LocalizationCase]:
    truth = ground_truth(sample)
    if not truth:
        return []
    case = model.encode_case(sample.pixels)  # once per image, reused for every finding
    results = []
    for finding, mask in truth.items():
        explanation = model.explain(case, finding_phrase(finding), findings=())
        hits = content_cell_hits(mask, case.letterbox, explanation.grid, top_regions, tolerance_px)
        reachable, chance = bool(hits.any()), float(hits.mean())
        for kind, grid_map, candidates, boxes in word_maps(explanation, case.letterbox, top_regions):
            peak = peak_heatmap(grid_map, candidates, case.letterbox)
            hit = pointing_game_hit(peak, mask, tolerance_px)
            results.append(LocalizationCase(sample.image_id, finding, kind, hit,
                                            iou(boxes_to_mask(boxes, mask.shape), mask), reachable, chance))
    return results


def content_cell_hits(mask: np.ndarray, letterbox: Letterbox, grid: tuple[int, int], top: int,
                      tolerance_px: float = 0.0) -> np.ndarray:
    """For each content cell, would a map peaking there hit? Any: the pointing game's ceiling on
    this grid; their mean: its chance level (a peak at a random content cell).

    A single-cell peak hits when its centre pixel lies in the mask (grown by the tolerance, as
    ``pointing_game_hit`` grows it), so it is enough to look up each content cell's centre once.
    """
    mask = grown_mask(mask, tolerance_px)
    return np.array([bool(mask[letterbox.cell_centre(int(row), int(col), grid)])
                     for row, col in np.argwhere(content_cells(letterbox, grid, top))])


def pointing_game_reachable(mask: np.ndarray, letterbox: Letterbox, grid: tuple[int, int], top: int,
                            tolerance_px: float = 0.0) -> bool:
    """Would a map peaking at the best content cell hit? (The ceiling of the pointing game here.)"""
    return bool(content_cell_hits(mask, letterbox, grid, top, tolerance_px).any())


def word_maps(explanation: Explanation, letterbox: Letterbox, top: int):
    """[(map kind, (rows, cols) map averaged over the phrase's words, cells its peak may lie in,
    top-N boxes in original pixels)]."""
    words = explanation.words
    if not words:
        return []
    similarity = np.mean([w.patch_similarity for w in words], axis=0)
    content = content_cells(letterbox, similarity.shape, top)
    maps = [(SIMILARITY, similarity, content, top_cell_boxes(similarity, content, letterbox, top))]
    if explanation.regions and words[0].region_attention is not None:
        attention = np.mean([w.region_attention for w in words], axis=0)  # over regions, by rank
        grid_map = np.mean([explanation.attention_map(i) for i in range(len(words))], axis=0)
        selected = np.zeros(explanation.grid, dtype=bool)
        selected[tuple(np.array([r.cell for r in explanation.regions]).T)] = True
        order = np.argsort(-attention, kind="stable")[:top]
        maps.insert(0, (ATTENTION, grid_map, selected, [explanation.regions[i].box for i in order]))
    return maps


def content_cells(letterbox: Letterbox, grid: tuple[int, int], top: int) -> np.ndarray:
    """Cells showing image content, by the rule region selection uses (``Letterbox.content_cells``)."""
    return letterbox.content_cells(grid, top)


def top_cell_boxes(grid_map: np.ndarray, candidates: np.ndarray, letterbox: Letterbox,
                   top: int) -> list[tuple[float, float, float, float]]:
    """Original-pixel boxes of the ``top`` highest candidate cells."""
    grid = grid_map.shape
    order = np.argsort(-np.where(candidates, grid_map, -np.inf).ravel(), kind="stable")
    return [letterbox.cell_box(int(i) // grid[1], int(i) % grid[1], grid) for i in order[: min(top, candidates.sum())]]


def peak_heatmap(grid_map: np.ndarray, candidates: np.ndarray, letterbox: Letterbox) -> np.ndarray:
    """Original-pixel map that is 1 at the centre of the highest candidate cell(s), 0 elsewhere
    (the peak rule is ``lrclr.trust.map_checks.peak_cells``, which the Model page uses too)."""
    width, height = letterbox.original_size
    heat = np.zeros((height, width), dtype=np.float32)
    for row, col in peak_cells(grid_map, candidates):
        heat[letterbox.cell_centre(row, col, grid_map.shape)] = 1.0
    return heat


def summarise_localization(cases: Sequence[LocalizationCase]) -> list[LocalizationScore]:
    """Per (finding, map kind), then "all" per map kind pooling every (image, finding) pair."""
    groups: dict[tuple[str, str], list[LocalizationCase]] = {}
    for case in cases:
        groups.setdefault((case.finding, case.map_kind), []).append(case)
        groups.setdefault(("all", case.map_kind), []).append(case)
    scores = []
    for (finding, kind), items in sorted(groups.items(), key=lambda kv: (kv[0][0] == "all", kv[0])):
        scores.append(LocalizationScore(finding, kind, len(items), float(np.mean([c.hit for c in items])),
                                        float(np.nanmean([c.iou for c in items])),
                                        float(np.mean([c.reachable for c in items])), _finite_mean(c.chance for c in items)))
    return scores


def _finite_mean(values) -> float:
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


# ---- side by side --------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", action="append", required=True, type=Path, metavar="DIR",
                        help="model folder (config.json + model.safetensors); repeat to compare models")
    parser.add_argument("--name", action="append", metavar="NAME", help="display name per --model, in order")
    parser.add_argument("--dataset", required=True, help="dataset spec: a JSON file, or inline JSON")
    parser.add_argument("--split", help="evaluate one split of the patient-disjoint split (train, val, test)")
    parser.add_argument("--split-fractions", type=float, nargs=3, default=[0.8, 0.1, 0.1], metavar="F",
                        help="train val test fractions, as the model was trained with (default 0.8 0.1 0.1)")
    parser.add_argument("--split-seed", type=int, default=0, help="seed of the patient split (default 0)")
    parser.add_argument("--findings", nargs="+", help="finding names (default: those labelled in the data)")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--top-regions", type=int, default=TOP_REGIONS,
                        help=f"regions / cells whose boxes are compared with the mask (default {TOP_REGIONS})")
    parser.add_argument("--card-key", default=None, metavar="KEY",
                        help="also record each model's results in its model_card.json under metrics[KEY] "
                             "(e.g. nih_test_split), where the app's Model page shows them")
    parser.add_argument("--pointing-tolerance", type=float, default=0.0, metavar="PX",
                        help="pointing game: a peak this close to the mask counts as a hit (default 0)")
    parser.add_argument("--missing-as-negative", action="store_true",
                        help="a finding absent from a sample's labels counts as negative (default: left out)")
    parser.add_argument("--limit", type=int, help="only the first N samples (smoke runs)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, mps or auto (default cpu)")
    parser.add_argument("--out-json", type=Path, help="write the JSON record here")
    parser.add_argument("--out-md", type=Path, help="write the markdown page here (printed either way)")


def run(args: argparse.Namespace) -> int:
    from lrclr.model.lrclr_model import LRCLRModel
    from lrclr.findings import parse_finding_list

    names = list(args.name or [])
    if len(names) > len(args.model):
        print(f"{len(names)} --name given for {len(args.model)} --model")
        return 2
    names += [folder.name for folder in args.model[len(names):]]
    if len(set(names)) != len(names):
        print(f"model names must differ, got {names}; give each a --name")
        return 2
    try:
        spec = _read_spec(args.dataset)
    except (OSError, json.JSONDecodeError) as error:
        print(f"cannot read the dataset spec {args.dataset!r}: {error}")
        return 2
    try:
        samples = _samples(spec, args.split, args.split_fractions, args.split_seed, args.limit)
    except (LRCLRError, ValueError) as error:  # a bad spec or split: the message is for the user
        print(f"dataset: {error}")
        return 2
    if len(samples) == 0:
        print(f"no samples to evaluate (split {args.split!r}, limit {args.limit})")
        return 2
    findings = parse_finding_list(",".join(args.findings)) if args.findings else _labelled_findings(samples)
    results = {}
    for name, folder in zip(names, args.model):
        try:
            model = LRCLRModel.from_pretrained(folder, device=args.device)
        except (LRCLRError, OSError) as error:
            print(f"model {folder}: {error}")
            return 2
        results[name] = evaluate_model(model, samples, findings, batch_size=args.batch_size,
                                       bootstrap=args.bootstrap, seed=args.seed, top_regions=args.top_regions,
                                       missing_as_negative=args.missing_as_negative,
                                       tolerance_px=args.pointing_tolerance)
    command = getattr(args, "command_line", None) or "python -m train " + shlex.join(sys.argv[1:])
    dataset = {"spec": spec, "split": args.split, "split_fractions": args.split_fractions,
               "split_seed": args.split_seed, "limit": args.limit, "n_samples": len(samples)}
    comparison = compare(results, command=command, dataset=dataset, differences=paired_differences(results))
    write_outputs(comparison, args.out_json, args.out_md)
    if args.card_key:
        _record_in_cards(comparison.data, names, args.model, args.card_key)
    print(comparison.markdown)
    return 0


def _record_in_cards(data: dict[str, Any], names: list[str], folders: list[Path], key: str) -> None:
    """Each model's card gets its own result, the command and data that made it, and the paired
    differences it takes part in (the Model page and the bundled models' tests read them there)."""
    from lrclr.model.weights import record_metrics

    for name, folder in zip(names, folders):
        pairs = {pair_name(names[0], other): data["paired_differences"][pair_name(names[0], other)]
                 for other in names[1:] if name in (names[0], other)}
        record_metrics(folder, key, {"name": name, "command": data["command"], "dataset": data["dataset"],
                                     "result": data["models"][name], "paired_differences": pairs})
        print(f"recorded under metrics[{key!r}] in {folder / 'model_card.json'}")


def _read_spec(text: str) -> dict[str, Any]:
    if text.lstrip().startswith("{"):
        return json.loads(text)
    return json.loads(Path(text).read_text(encoding="utf-8"))


def _samples(spec: dict[str, Any], split: str | None, fractions: Sequence[float], split_seed: int,
             limit: int | None):
    """The dataset (or one split of it, exactly as training splits it), never augmented."""
    # Colleagues' modules, imported when the command runs so the rest of this file stands alone.
    from train.datasets import build_dataset
    from train.datasets.splits import Subset, split_dataset

    dataset = build_dataset(spec)
    indices = list(range(len(dataset)))
    if split:
        splits = split_dataset(dataset, fractions, split_seed)
        if split not in splits:  # ValueError: reported to the user by run()
            raise ValueError(f"unknown split {split!r}; this split has {sorted(splits)}")
        indices = splits[split].indices
    return Subset(dataset, indices[:limit] if limit else indices, transform=None)


def _labelled_findings(samples) -> list[str]:
    """Findings labelled anywhere in the samples, NIH order first; read from the index when possible."""
    read = samples.labels_of if hasattr(samples, "labels_of") else (lambda i: samples[i].labels)
    seen = {name for i in range(len(samples)) for name in read(i)}
    return [f for f in NIH_FINDINGS if f in seen] + sorted(seen - set(NIH_FINDINGS))
