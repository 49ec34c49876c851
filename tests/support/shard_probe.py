"""Run under ``torchrun`` by tests/train/test_shards.py: train on a shard set with the real Trainer
(DDP over gloo) and record which images every rank's every batch held.

``python -m tests.support.shard_probe CONFIG.json OUT.json``: rank 0 writes
``{"ranks": [{"rank": r, "batches": [[image ids], ...]}, ...]}``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch.distributed as dist

from train.datasets import build_dataset
from train.training.distributed import setup_distributed, teardown_distributed
from train.training.run_config import TrainConfig
from train.training.trainer import Trainer


class RecordingTrainer(Trainer):
    seen: list[list[str]]

    def _micro_batches(self):
        for batch in super()._micro_batches():
            self.seen.append(list(batch.image_ids))
            yield batch


def main(config_path: str, out: str) -> None:
    config = TrainConfig.load(config_path)
    context = setup_distributed(use_cuda=False)
    try:
        trainer = RecordingTrainer(config, build_dataset(config.dataset), [], context, resume=False,
                                   show_progress=False)
        if trainer.shard_training is None:
            raise SystemExit("the training set is not read from shards")
        trainer.seen = []
        trainer.fit()
        ranks = [None] * context.world_size
        dist.all_gather_object(ranks, {"rank": context.rank, "batches": trainer.seen})
        if context.is_main:
            Path(out).write_text(json.dumps({"ranks": ranks}), encoding="utf-8")
    finally:
        teardown_distributed()


if __name__ == "__main__":
    main(*sys.argv[1:3])
