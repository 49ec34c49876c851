"""Two gloo processes, each holding half of a batch, reproduce the one-process loss and gradients."""

from __future__ import annotations

import os
import socket

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from lrclr.model.config import tiny_config
from lrclr.model.lrclr_model import LRCLRModel
from lrclr.model.letterbox import prepare_images
from train.training.objective import Objective

REPORTS = [
    "left pleural effusion",
    "no acute disease. heart size normal",
    "right upper lobe nodule",
    "mild cardiomegaly with pulmonary edema",
]


def _batch(model: LRCLRModel):
    rng = np.random.default_rng(0)
    images = [rng.random((64, 48 + 8 * i)).astype(np.float32) for i in range(len(REPORTS))]
    pixels, boxes = prepare_images(images, 64)
    return pixels, model.tokenize(REPORTS), boxes


def _model() -> LRCLRModel:
    torch.manual_seed(0)
    # eval(): dropout would draw different random masks in each process; the loss math is under test.
    return LRCLRModel(tiny_config()).eval()


def _slice(tokens, part: slice):
    from lrclr.model.tokens import TokenizedReports

    return TokenizedReports(
        tokens.input_ids[part], tokens.attention_mask[part], tokens.word_mask[part], tokens.words[part], tokens.truncated[part]
    )


def _loss_and_grad(model, pixels, tokens, boxes):
    output = model(pixels, tokens, boxes)
    loss = Objective.of(model.config).contrastive(output)
    loss.backward()
    grad = model.region_selector.scorer[1].weight.grad.clone()
    return loss.detach(), output.global_loss.detach(), output.local_loss.detach(), grad


def _worker(rank: int, port: int, results):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        model = _model()
        pixels, tokens, boxes = _batch(model)
        half = slice(2 * rank, 2 * rank + 2)
        loss, global_loss, local_loss, grad = _loss_and_grad(model, pixels[half], _slice(tokens, half), boxes[half])
        stacked = torch.stack([loss, global_loss, local_loss])
        dist.all_reduce(stacked)  # the mean of the ranks' losses is the global-batch loss
        dist.all_reduce(grad)  # what DDP does: average the ranks' gradients
        results[rank] = (stacked / 2, grad / 2)
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_ranks_match_one_process_on_the_global_batch():
    model = _model()
    loss, global_loss, local_loss, grad = _loss_and_grad(model, *_batch(model))
    manager = mp.Manager()
    results = manager.dict()
    # fork: the children inherit the imported libraries instead of importing them again (seconds each).
    mp.start_processes(_worker, args=(_free_port(), results), nprocs=2, join=True, start_method="fork")
    losses, distributed_grad = results[0]
    torch.testing.assert_close(losses, torch.stack([loss, global_loss, local_loss]), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(distributed_grad, grad, rtol=1e-4, atol=1e-6)
