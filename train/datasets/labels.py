"""Finding labels as the matrix the label-aware training terms read (prompt scores, soft targets).

Columns are the NIH findings in ``LABEL_FINDINGS`` order; 1 positive, 0 negative, and -1 for
anything else: uncertain (CheXpert's -1), not labelled by the dataset, or held out of training.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch

from lrclr.findings import NIH_FINDINGS

LABEL_FINDINGS: tuple[str, ...] = NIH_FINDINGS
UNKNOWN = -1


def label_matrix(rows: Sequence[Mapping[str, int]], findings: Sequence[str] = LABEL_FINDINGS) -> torch.Tensor:
    """(len(rows), len(findings)) int8 tensor of 1 / 0 / -1 from per-sample label dicts."""
    table = torch.full((len(rows), len(findings)), UNKNOWN, dtype=torch.int8)
    for i, labels in enumerate(rows):
        for j, finding in enumerate(findings):
            value = labels.get(finding)
            if value in (0, 1):
                table[i, j] = int(value)
    return table
