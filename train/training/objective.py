"""The training objective: the one place its terms are weighted and summed.

    loss = L_global + local_loss_weight * L_local           the model's two contrastive terms
                                                           (local_loss_weight is in the model's config)
         + localization_weight * L_localization           train/training/localization.py
         + prompt_loss_weight * L_prompt                  train/training/prompt_loss.py
         + sentence_loss_weight * L_sentence              train/training/sentence_loss.py
         + flag_weight * L_flag                           train/training/flag_loss.py

A weight of 0 turns its term off (the trainer then never computes it). The model computes its
contrastive terms in ``LRCLRModel.forward`` and the other terms live in their modules; none of them
weights anything, so reading this file tells what a run optimises.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch

TERMS = ("global_loss", "local_loss", "localization_loss", "prompt_loss", "sentence_loss", "flag_loss")


@dataclass(frozen=True)
class Objective:
    local: float = 1.0
    localization: float = 0.0
    prompt: float = 0.0
    sentence: float = 0.0
    flag: float = 0.0

    @classmethod
    def of(cls, model_config, train_config=None) -> "Objective":
        """The weights a run uses: the model's local weight, the training config's term weights."""
        if train_config is None:
            return cls(local=model_config.local_loss_weight)
        return cls(local=model_config.local_loss_weight, localization=train_config.localization_weight,
                   prompt=train_config.prompt_loss_weight, sentence=train_config.sentence_loss_weight,
                   flag=train_config.flag_weight)

    def weight(self, term: str) -> float:
        return {"global_loss": 1.0, "local_loss": self.local, "localization_loss": self.localization,
                "prompt_loss": self.prompt, "sentence_loss": self.sentence, "flag_loss": self.flag}[term]

    def total(self, terms: Mapping[str, torch.Tensor | None]) -> torch.Tensor:
        """The weighted sum of the terms given; a term that is None (the baseline's local loss) adds nothing."""
        unknown = set(terms) - set(TERMS)
        if unknown:
            raise KeyError(f"not a term of the objective: {sorted(unknown)}")
        total = None
        for name in TERMS:  # always in this order, so a run's sum is the same however it was asked for
            value = terms.get(name)
            if value is not None:
                part = value if name == "global_loss" else self.weight(name) * value
                total = part if total is None else total + part
        if total is None:
            raise ValueError("the objective needs at least one term")
        return total

    def contrastive(self, output) -> torch.Tensor:
        """L_global + local_loss_weight * L_local of one forward pass (``LRCLROutput``)."""
        return self.total({"global_loss": output.global_loss, "local_loss": output.local_loss})
