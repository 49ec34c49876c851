"""The training loop: one process or many (``torchrun``), exactly resumable.

Exact resume means a run stopped after N steps and resumed for N more ends with the same weights as
an uninterrupted 2N-step run. That needs four things restored: the weights, the optimizer and
scheduler state, the random generators (dropout), and the *data position*: each epoch's order is a
permutation drawn from (seed, epoch), and the checkpoint records how many batches of it were used.

A little over 400 lines on purpose: the Trainer's setup, loop, validation and checkpointing share its
state; what can stand alone does (batches.py, objective.py, the terms' modules, checkpoint.py).
"""

from __future__ import annotations

import json
import math
import time
from contextlib import nullcontext
from functools import partial
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader

from lrclr.model.config import LRCLRConfig
from lrclr.model.lrclr_model import LRCLRModel
from lrclr.model.letterbox import prepare_images
from lrclr.findings import NIH_FINDINGS
from lrclr.model.weights import read_folder
from train.training.objective import Objective
from train.training.checkpoint import TrainerState, latest_checkpoint, load_checkpoint, save_checkpoint
from lrclr.ranks import Ranks
from train.training.distributed import mean_across_ranks
from train.training.feature_cache import CachedBatch, FrozenTowerCache
from train.datasets.held_out import HeldOutView
from train.datasets.labels import LABEL_FINDINGS
from train.training.localization import PhraseBank, batch_targets, localization_loss
from train.training.prompt_loss import PromptScoreTerm
from train.training.sentence_loss import SentencePairTerm
from train.training.run_config import TrainConfig

from train.training.batches import EpochBatches, collate_samples
from train.training.shard_stream import ShardTraining, StreamLayout
TOWERS = ("image_tower", "text_tower")


def warmup_cosine(warmup_steps: int, max_steps: int):
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, max_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


def build_model(config: TrainConfig) -> LRCLRModel:
    """A fresh model, or one started from a model folder (e.g. LRCLR from its baseline)."""
    if config.init_from is None:
        return LRCLRModel(LRCLRConfig.from_dict(config.model))
    base_config, weights, _ = read_folder(config.init_from)
    merged = {**base_config.to_dict(), **config.model}
    model = LRCLRModel(LRCLRConfig.from_dict(merged))
    own = model.state_dict()
    foreign = [k for k in weights if k not in own or own[k].shape != weights[k].shape]
    if foreign:
        raise ValueError(f"{config.init_from} does not fit this architecture: {foreign[:3]}")
    model.load_state_dict({k: v.float() for k, v in weights.items()}, strict=False)
    return model


class Trainer:
    def __init__(self, config: TrainConfig, train_set, val_set, context: Ranks | None = None,
                 device: torch.device | None = None, resume: bool = True, show_progress: bool = True,
                 feedback=None, shared_cache=None):
        self.config = config
        # (SharedCache, this run's indices into its dataset): cross-validation folds share one cache.
        self.shared_cache = shared_cache
        self.feedback = feedback  # train.training.flag_loss.FlagFeedback: learning from annotators' flags
        self.context = context or Ranks()
        self.device = device or torch.device("cpu")
        self.run_dir = Path(config.output_dir)
        if config.held_out_findings:
            train_set = HeldOutView(train_set, config.held_out_findings)
            val_set = HeldOutView(val_set, config.held_out_findings) if val_set else val_set
        self.train_set, self.val_set = train_set, val_set
        self.show_progress = show_progress and self.context.is_main
        self.state = TrainerState()
        checkpoint = latest_checkpoint(self.run_dir) if resume else None
        torch.manual_seed(config.seed)
        if checkpoint is None:
            self.model = build_model(config)
        else:
            loaded = load_checkpoint(checkpoint)
            self.model = LRCLRModel(loaded.config, pretrained_towers=False)
            self.model.load_state_dict(loaded.weights)
        self.model.to(self.device)
        self.optimizer = torch.optim.AdamW(self._parameter_groups(), betas=(0.9, 0.98), eps=1e-6)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, warmup_cosine(config.warmup_steps, config.max_steps)
        )
        self._set_frozen(config.freeze)
        if checkpoint is not None:
            self._restore(loaded)
        self.batches = EpochBatches(len(train_set), config.batch_size, config.seed, self.context.rank, self.context.world_size)
        # A training view backed by shards is streamed shard by shard instead (train/training/shard_stream.py).
        self.shard_training = ShardTraining.of(self.train_set, StreamLayout(
            config.seed, config.batch_size, self.context.rank, self.context.world_size, config.num_workers))
        self.network = self._wrap_distributed()
        self.objective = Objective.of(self.model.config, config)
        self.train_cache = self.val_cache = None
        # Localization supervision (train/training/localization.py): the model's cell grid and the phrases.
        self.target_grid: tuple[int, int] | None = None
        self.phrases: PhraseBank | None = None
        self.prompt_term: PromptScoreTerm | None = None
        self.sentence_term: SentencePairTerm | None = None
        if config.localization_weight > 0 and self.model.interaction is None:
            raise ValueError("localization_weight > 0 needs the region layers (model.use_regions: true)")

    # ---- setup ----------------------------------------------------------------------------------

    def _parameter_groups(self):
        groups = {"tower": [], "tower_no_decay": [], "head": [], "head_no_decay": []}
        for name, parameter in self.model.named_parameters():
            kind = "tower" if name.split(".")[0] in TOWERS else "head"
            # Biases, norms and temperatures are not weights to shrink.
            groups[kind + ("_no_decay" if parameter.ndim < 2 else "")].append(parameter)
        c = self.config
        return [
            {"params": groups["tower"], "lr": c.tower_lr, "weight_decay": c.weight_decay},
            {"params": groups["tower_no_decay"], "lr": c.tower_lr, "weight_decay": 0.0},
            {"params": groups["head"], "lr": c.lr, "weight_decay": c.weight_decay},
            {"params": groups["head_no_decay"], "lr": c.lr, "weight_decay": 0.0},
        ]

    def _set_frozen(self, names: list[str]) -> None:
        self.frozen = set(names)
        for name, module in self.model.named_children():
            for parameter in module.parameters():
                parameter.requires_grad_(name not in self.frozen)
        for module in self._frozen_image_prefix():
            module.requires_grad_(False)

    def _frozen_image_prefix(self) -> list:
        """With image_tower_tail_blocks, the image tower's early blocks stay frozen."""
        tail = self.config.image_tower_tail_blocks
        if not tail or "image_tower" in self.frozen:
            return []
        if not hasattr(self.model.image_tower, "prefix_modules"):
            raise ValueError(f"image_tower_tail_blocks needs a tower that can be split; {self.model.config.image_tower.kind} cannot")
        return self.model.image_tower.prefix_modules(tail)

    def _restore(self, loaded) -> None:
        self.optimizer.load_state_dict(loaded.trainer["optimizer"])
        self.scheduler.load_state_dict(loaded.trainer["scheduler"])
        torch.set_rng_state(loaded.trainer["torch_rng"])
        if torch.cuda.is_available() and loaded.trainer["cuda_rng"]:
            torch.cuda.set_rng_state_all(loaded.trainer["cuda_rng"])
        self.state = loaded.state
        if self.config.unfreeze_at_step is not None and self.state.step >= self.config.unfreeze_at_step:
            self._set_frozen([])

    def _wrap_distributed(self):
        if not self.context.enabled:
            return self.model
        from torch.nn.parallel import DistributedDataParallel

        device_ids = [self.context.local_rank] if self.device.type == "cuda" else None
        # The last interaction layer's region branch feeds only explanations, not the loss.
        return DistributedDataParallel(self.model, device_ids=device_ids, find_unused_parameters=True)

    def _autocast(self):
        if self.device.type != "cuda" or not self.config.amp:
            return nullcontext()
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)

    def _train_mode(self) -> None:
        self.network.train()
        # Frozen towers keep their BatchNorm statistics: small batches would corrupt them.
        for name, module in self.model.named_children():
            if name in self.frozen:
                module.eval()
        for module in self._frozen_image_prefix():
            module.eval()

    # ---- data -----------------------------------------------------------------------------------

    def _collate(self):
        return partial(collate_samples, image_size=self.model.config.image_size, target_grid=self.target_grid)

    def _loader(self, dataset, batches: list[list[int]]) -> DataLoader:
        # A private generator: creating a loader must not draw from the global RNG, or a resumed run
        # would see different dropout masks than an uninterrupted one.
        return DataLoader(dataset, batch_sampler=batches, num_workers=self.config.num_workers,
                          collate_fn=self._collate(), generator=torch.Generator().manual_seed(self.config.seed))

    def _build_caches(self) -> None:
        variants = self.config.cache_frozen_towers
        if not variants or self.train_cache is not None:
            return
        tail = self.config.image_tower_tail_blocks
        image_ok = "image_tower" in self.frozen or tail > 0
        if not image_ok or "text_tower" not in self.frozen or self.config.unfreeze_at_step is not None:
            raise ValueError("cache_frozen_towers needs both towers frozen for the whole run (freeze: "
                             "[image_tower, text_tower], or only the text tower with image_tower_tail_blocks "
                             "> 0; unfreeze_at_step: null)")
        self.model.eval()
        tail = 0 if "image_tower" in self.frozen else tail
        if self.shared_cache is not None:
            pool, indices = self.shared_cache
            if len(indices) != len(self.train_set):
                raise ValueError(f"{len(indices)} shared-cache indices for {len(self.train_set)} training items")
            frozen = [self.model.text_tower, *(self._frozen_image_prefix() or [self.model.image_tower])]
            self.train_cache = pool.view(indices, self.model, self.device, variants, tail, frozen, self.target_grid,
                                         self.show_progress)
        else:
            self.train_cache = FrozenTowerCache(self.model, self.train_set, variants, self.device, self.show_progress,
                                                tail, self.target_grid)
        if self.val_set:
            # No targets: the validation loss stays the contrastive one, comparable across runs with
            # and without the localization term.
            self.val_cache = FrozenTowerCache(self.model, self.val_set, 1, self.device, self.show_progress, tail)

    def _prepare_localization(self) -> None:
        if self.config.localization_weight <= 0 or self.phrases is not None:
            return
        size = self.model.config.image_size
        pixels, _ = prepare_images([np.zeros((size, size), dtype=np.float32)], size)
        tower = self.model.image_tower
        training = tower.training
        tower.eval()  # a dummy image must not move BatchNorm statistics
        with torch.no_grad():
            self.target_grid = tuple(tower(pixels.to(self.device)).shape[-2:])
        tower.train(training)
        trained = [f for f in NIH_FINDINGS if f not in self.config.held_out_findings]
        self.phrases = PhraseBank(self.model, trained, self.device, "text_tower" in self.frozen)

    def _prepare_prompt_term(self) -> None:
        if self.config.prompt_loss_weight <= 0 or self.prompt_term is not None:
            return
        trained = [f for f in LABEL_FINDINGS if f not in self.config.held_out_findings]
        self.prompt_term = PromptScoreTerm(self.model, trained, LABEL_FINDINGS, self.device,
                                           "text_tower" in self.frozen)

    def _prepare_sentence_term(self) -> None:
        if self.config.sentence_loss_weight > 0 and self.sentence_term is None:
            self.sentence_term = SentencePairTerm(self.device, "text_tower" in self.frozen)

    def _epoch_batches(self, epoch: int, start: int):
        if self.train_cache is not None:
            return (self.train_cache.batch(indices, epoch) for indices in self.batches.epoch(epoch, start))
        if hasattr(self.train_set, "set_epoch"):
            self.train_set.set_epoch(epoch)
        if self.shard_training is not None:
            return self.shard_training.loader(epoch, start, self._collate())
        return self._loader(self.train_set, self.batches.epoch(epoch, start))

    def _micro_batches(self) -> Iterator:
        """Endless stream of this rank's batches, starting at the saved data position."""
        while True:
            for batch in self._epoch_batches(self.state.epoch, self.state.batches_in_epoch):
                self.state.batches_in_epoch += 1
                yield batch
            self.state.epoch += 1
            self.state.batches_in_epoch = 0

    def _loss(self, batch, cache: FrozenTowerCache | None = None):
        labels = batch.labels.to(self.device) if batch.labels is not None else None
        mix = self.config.label_target_mix
        if isinstance(batch, CachedBatch):
            with self._autocast():
                return self.network(None, batch.tokens.to(self.device), batch.letterboxes,
                                    image_grid=batch.image_grid.to(self.device),
                                    text_states=batch.text_states.to(self.device),
                                    image_tail_blocks=(cache or self.train_cache).tail_blocks,
                                    labels=labels, label_target_mix=mix)
        tokens = self.model.tokenize(batch.reports).to(self.device)
        with self._autocast():
            return self.network(batch.pixels.to(self.device), tokens, batch.letterboxes,
                                labels=labels, label_target_mix=mix)

    # ---- the loop -------------------------------------------------------------------------------

    def fit(self, stop_at_step: int | None = None) -> TrainerState:
        """Train to ``max_steps`` (or stop early at ``stop_at_step``, checkpointed, e.g. before a
        maintenance window; the schedule still follows ``max_steps``)."""
        config = self.config
        last_step = min(config.max_steps, stop_at_step or config.max_steps)
        if self.context.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            config.save(self.run_dir / "train_config.json")
        # Training time includes building the feature cache: it is part of what a run costs.
        started = time.perf_counter() - self.state.elapsed_seconds
        self._prepare_localization()
        self._prepare_prompt_term()
        self._prepare_sentence_term()
        self._build_caches()
        self._prepare_feedback()
        stream = self._micro_batches()
        progress = self._progress()
        while self.state.step < last_step:
            if config.unfreeze_at_step is not None and self.state.step == config.unfreeze_at_step:
                self._set_frozen([])
            record = self._step(stream)
            self.state.step += 1
            self.state.elapsed_seconds = time.perf_counter() - started
            if progress is not None:
                progress.update(1)
                progress.set_postfix(loss=f"{record['loss']:.3f}")
            if self._evaluation_due() and self._evaluate(record):
                break
            self._log(record)
            if self.state.step % config.checkpoint_every == 0 or self.state.step == last_step:
                self._checkpoint()
        if progress is not None:
            progress.close()
        return self.state

    def _prepare_feedback(self) -> None:
        if self.feedback is None or self.feedback.pairs is not None:
            return
        # Frozen parts of the towers are computed once for the flag images, as for the training set.
        fixed = self.config.unfreeze_at_step is None
        tail = self.config.image_tower_tail_blocks if "image_tower" not in self.frozen else 0
        if not fixed:
            image = "none"
        elif "image_tower" in self.frozen:
            image = "grid"
        else:
            image = "prefix" if tail else "none"
        self.feedback.prepare(self.model, self.device, image, tail, fixed and "text_tower" in self.frozen)

    def _step(self, stream) -> dict:
        self._train_mode()
        accum = self.config.grad_accum_steps
        totals: dict[str, float] = {"loss": 0.0}
        for micro in range(accum):
            batch = next(stream)
            terms = self._terms(batch, self.state.step * accum + micro)
            loss = self.objective.total(terms)
            (loss / accum).backward()
            totals["loss"] += float(loss.detach()) / accum
            for name, value in terms.items():
                if value is not None:
                    totals[name] = totals.get(name, 0.0) + float(value.detach()) / accum
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        torch.nn.utils.clip_grad_norm_(trainable, self.config.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        # Under DDP each rank's loss covers its own rows of the global batch; their mean is the loss.
        totals = {k: mean_across_ranks(v, self.context, self.device) for k, v in totals.items()}
        return {"step": self.state.step + 1, **totals, "lr": self.scheduler.get_last_lr()[-1],
                "logit_scale": float(self.model.logit_scale.detach().exp())}

    def _terms(self, batch, flag_step: int) -> dict[str, torch.Tensor | None]:
        """Every term this run optimises, unweighted, on one micro-batch (objective.py weighs them)."""
        output = self._loss(batch)
        terms = {"global_loss": output.global_loss, "local_loss": output.local_loss}
        if self.phrases is not None:
            terms["localization_loss"] = self._localization_loss(batch, output)
        if self.prompt_term is not None:
            # On the unwrapped model, as the localization term (see there).
            with self._autocast():
                terms["prompt_loss"] = self.prompt_term.loss(self.model, output.image, batch.labels.to(self.device))
        if self.sentence_term is not None:
            with self._autocast():  # on the unwrapped model, as the prompt-score term
                terms["sentence_loss"] = self.sentence_term.loss(self.model, output.image, batch.reports)
        if self.feedback is not None:
            # Computed on the unwrapped model: under DDP its parameters are a subset of those the
            # contrastive forward used, so the one backward still syncs every gradient once.
            with self._autocast():
                terms["flag_loss"] = self.feedback.loss(self.model, flag_step, self.context.rank)
        return terms

    def _localization_loss(self, batch, output) -> torch.Tensor:
        """The localization term on this micro-batch's images with ground truth (0 without any)."""
        targets = batch_targets(batch.coverage, self.phrases.findings, self.device)
        if targets is None:
            return output.global_loss.new_zeros(())
        # On the unwrapped model, as the flag term: DDP syncs these parameters' gradients through
        # the contrastive forward, which used every one of them.
        with self._autocast():
            return localization_loss(self.model, output.image, targets, self.phrases,
                                     self.config.localization_local_only)

    def _evaluation_due(self) -> bool:
        return bool(self.val_set) and self.config.eval_every > 0 and self.state.step % self.config.eval_every == 0

    @torch.no_grad()
    def validation_loss(self) -> float:
        self.network.eval()
        batches = EpochBatches(len(self.val_set), min(self.config.batch_size, len(self.val_set) // self.context.world_size),
                               seed=0, rank=self.context.rank, world_size=self.context.world_size)
        if self.val_cache is not None:
            stream = (self.val_cache.batch(indices, 0) for indices in batches.epoch(0))
        else:
            stream = self._loader(self.val_set, batches.epoch(0))
        losses = [float(self.objective.contrastive(self._loss(batch, self.val_cache))) for batch in stream]
        return mean_across_ranks(sum(losses) / len(losses), self.context, self.device)

    def _evaluate(self, record: dict) -> bool:
        """Record the validation loss; keep the best model; True when early stopping says stop."""
        record["val_loss"] = value = self.validation_loss()
        state = self.state
        if state.best_val_loss is None or value < state.best_val_loss:
            state.best_val_loss, state.evaluations_without_improvement = value, 0
            if self.context.is_main:
                self.model.save_pretrained(self.run_dir / "best", model_card={"step": state.step, "val_loss": value})
            return False
        state.evaluations_without_improvement += 1
        patience = self.config.early_stopping_patience
        if patience is not None and state.evaluations_without_improvement >= patience:
            self._log({**record, "early_stop": True})
            self._checkpoint()
            return True
        return False

    def _checkpoint(self) -> None:
        if self.context.is_main:
            save_checkpoint(self.run_dir, self.model, self.optimizer, self.scheduler, self.state)

    def _log(self, record: dict) -> None:
        if self.context.is_main and (record["step"] % self.config.log_every == 0 or "val_loss" in record):
            with open(self.run_dir / "metrics.jsonl", "a", encoding="utf-8") as log:
                log.write(json.dumps({**record, "seconds": round(self.state.elapsed_seconds, 2)}) + "\n")

    def _progress(self):
        if not self.show_progress:
            return None
        from tqdm.auto import tqdm

        return tqdm(total=self.config.max_steps, initial=self.state.step, desc="train", unit="step")
