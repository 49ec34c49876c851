"""The prompt-score term: train the exact zero-shot scores the app shows against the image's labels.

The contrastive losses teach the model which report goes with which image. The app, however, asks
something narrower: for a finding f, is this image closer to "pleural effusion." than to "no pleural
effusion."? With a few hundred images and reports composed from a handful of sentence types, the
contrastive losses alone left those scores at chance on real patients (issue #15), while a linear
read-out of the frozen features did better. This term is a binary cross-entropy on the logit
``lrclr.model.zero_shot.prompt_logits`` computes, the same function, templates and global/local mix the
app scores with, for every training image whose label for f is known (1 or 0). The prompts go
through the text projection with gradients, so the term shapes where the prompts sit in the shared
space as well as the images.

Labels come from the dataset (NIH labels, a phantom's rendered findings; a MIMIC user's CheXpert
labels), the same facts the composed reports state, so no information is used that a report-only
model could not have read from the report. Held-out findings (train/datasets/held_out.py) are never scored.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from lrclr.model.zero_shot import prompt_features, prompt_logits, prompt_texts


class PromptScoreTerm:
    """The prompts of ``findings``, tokenized once (their text-tower states once when frozen)."""

    def __init__(self, model, findings: Sequence[str], label_findings: Sequence[str], device: torch.device,
                 text_frozen: bool):
        self.findings = list(findings)
        missing = [f for f in self.findings if f not in label_findings]
        if missing:
            raise ValueError(f"prompt-score findings without a label column: {missing}")
        # Columns of the batch's label matrix (ordered as ``label_findings``) that this term scores.
        self.columns = torch.tensor([list(label_findings).index(f) for f in self.findings], device=device)
        self.tokens = model.tokenize(prompt_texts(self.findings)).to(device)
        self.states = None
        if text_frozen:
            with torch.no_grad():
                self.states = model.text_tower(self.tokens.input_ids, self.tokens.attention_mask).float()

    def loss(self, model, image, labels: torch.Tensor) -> torch.Tensor:
        """Mean BCE over the (image, finding) pairs with a known label; 0 when there are none.

        ``image`` is the batch's ``ImageFeatures`` from the contrastive forward; ``labels`` is
        (B, len(label_findings)) with 1 / 0 known and anything else unknown.
        """
        targets = labels[:, self.columns].float()
        known = (targets == 0) | (targets == 1)
        if not known.any():
            return image.global_embedding.new_zeros(())
        states = self.states
        if states is None:
            states = model.text_tower(self.tokens.input_ids, self.tokens.attention_mask)
        text = model.project_text_states(states, self.tokens)
        logits = prompt_logits(model.scoring_rule(), image, prompt_features(self.findings, text))
        return F.binary_cross_entropy_with_logits(logits[known], targets[known])
