"""Sentence-level pairs: every sentence of an image's report is a positive for that image.

A composed report is a handful of finding statements ("Moderate bilateral pleural effusions.",
"No pneumothorax."). The global contrastive loss pairs the image with their mean only, so a
statement shared by many reports carries little signal. RadZero trains on finding sentences
instead; this term does the same beside the report-level loss: the batch's distinct sentences are
the text side of a contrastive matrix, and an image's positives are all the sentences its report
contains (multi-positive soft targets, so "No pneumothorax." is a positive of every image whose
report says it, never a negative). Both directions: image to sentences, sentence to images.

Sentences come from the training reports as the dataset gives them, so a run with
``held_out_findings`` (train/datasets/held_out.py) never sees the removed sentences here either. Under DDP
each rank scores its own images against its own sentences (no gather): a smaller matrix, the same
objective in expectation.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from lrclr.reports.text import split_sentences


def report_sentences(report: str) -> list[str]:
    """The report's sentences, stripped, each once, in order."""
    seen = []
    for sentence in split_sentences(report):
        text = sentence.text.strip()
        if text and text not in seen:
            seen.append(text)
    return seen


def sentence_targets(reports: Sequence[str]) -> tuple[list[str], torch.Tensor]:
    """(the batch's distinct sentences, (B, S) 1 where report i contains sentence s)."""
    per_report = [report_sentences(r) for r in reports]
    sentences = list(dict.fromkeys(s for found in per_report for s in found))
    index = {s: j for j, s in enumerate(sentences)}
    targets = torch.zeros(len(reports), len(sentences))
    for row, found in enumerate(per_report):
        for sentence in found:
            targets[row, index[sentence]] = 1.0
    return sentences, targets


def multi_positive_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against targets spread evenly over each row's positives, in both directions;
    rows (or columns) without a positive are left out."""
    losses = []
    for scores, positives in ((logits, targets), (logits.T, targets.T)):
        keep = positives.sum(-1) > 0
        if keep.any():
            soft = positives[keep] / positives[keep].sum(-1, keepdim=True)
            losses.append(-(soft * F.log_softmax(scores[keep], dim=-1)).sum(-1).mean())
    return torch.stack(losses).mean() if losses else logits.new_zeros(())


class SentencePairTerm:
    """The term; with a frozen text tower each sentence's tower states are computed once."""

    def __init__(self, device: torch.device, text_frozen: bool):
        self.device, self.text_frozen = device, text_frozen
        self.states: dict[str, torch.Tensor] = {}  # sentence -> (tokens, H) float16, frozen tower only

    def loss(self, model, image, reports: Sequence[str]) -> torch.Tensor:
        """The term for a batch: ``image`` is its ``ImageFeatures`` from the contrastive forward."""
        sentences, targets = sentence_targets(reports)
        if not sentences:
            return image.global_embedding.new_zeros(())
        tokens = model.tokenize(sentences).to(self.device)
        states = self._frozen_states(model, sentences, tokens) if self.text_frozen else \
            model.text_tower(tokens.input_ids, tokens.attention_mask)
        text = model.project_text_states(states, tokens)
        logits = model.logit_scale.exp() * image.global_embedding @ text.global_embedding.T
        return multi_positive_loss(logits.float(), targets.to(logits.device))

    @torch.no_grad()
    def _frozen_states(self, model, sentences: list[str], tokens) -> torch.Tensor:
        missing = [s for s in sentences if s not in self.states]
        if missing:
            new = model.tokenize(missing).to(self.device)
            hidden = model.text_tower(new.input_ids, new.attention_mask)
            for row, sentence in enumerate(missing):
                self.states[sentence] = hidden[row, : int(new.attention_mask[row].sum())].half().cpu()
        length = tokens.input_ids.shape[1]
        first = self.states[sentences[0]]
        states = torch.zeros(len(sentences), length, first.shape[-1], device=self.device)
        for row, sentence in enumerate(sentences):
            cached = self.states[sentence]
            states[row, : cached.shape[0]] = cached.to(self.device).float()
        return states
