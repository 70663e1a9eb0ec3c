"""Staged training: stage 1 trains LR-CMGN alone against the ground truth's
H, S shrunk to 1/4 of the side; stage 2 trains the RCN while fine-tuning
LR-CMGN. Atomic checkpoints with exact resume, JSON-line events for the
desktop application, and DistributedDataParallel under torchrun."""

from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn

from hsvcolorizer import color
from hsvcolorizer.data import (
    CacheArray,
    FolderDataset,
    balanced_indices,
    crop_flip_batch,
    resized_crop_batch,
    source_of,
    filter_grayscale,
    find_images,
    is_cache,
    split_train_val,
)
from hsvcolorizer.atomic import atomic_write
from hsvcolorizer.errors import ColorizerError
from hsvcolorizer.imageio import write_image
from hsvcolorizer.inference import pick_device
from hsvcolorizer.losses import colorization_loss
from hsvcolorizer.networks import DILATED_LRCMGN, ModelConfig, TwoStageColorizer, count_parameters
from hsvcolorizer.weights import load_weights, save_weights

CHECKPOINT = "checkpoint.pt"
WARMUP_STEPS = 100  # the learning rate rises linearly over each stage's first steps (a tenth of a short stage)
STAGE1_WEIGHTS = "stage1.safetensors"
FINAL_WEIGHTS = "model.safetensors"


@dataclass
class TrainConfig:
    """Every option of `hsvcolorizer train`; stored in checkpoints and weights."""

    data: str
    out: str
    val: str | None = None
    stage: str = "both"  # "1", "2" or "both"
    epochs_stage1: int = 10
    epochs_stage2: int = 10
    steps_stage1: int | None = None  # optional cap on optimizer steps (a budget)
    steps_stage2: int | None = None
    minutes_stage1: float | None = None  # optional wall-clock budget per stage
    minutes_stage2: float | None = None
    batch_size: int = 16
    size: int = 256
    lr: float = 2e-4
    hue_weight: float = 1.0
    hue_loss: str = "circular"  # "circular" (the paper's) or "l1" (ablation)
    input_channel: str = "luma"  # "luma" (ours) or "v" (the paper's)
    rcn: str = "pyramid"
    circular_resize: bool = True
    width_scale: float = 1.0  # < 1 makes every layer narrower (tests, quick trials)
    device: str = "auto"
    amp: bool | None = None  # None: bf16 autocast on CUDA only
    workers: int | None = None
    seed: int = 0
    checkpoint_every: int = 200  # steps
    checkpoint_minutes: float = 5.0
    log_every: int = 10
    val_max: int = 64
    init: str | None = None  # weights to start from (required for --stage 2 without a stage-1 run)
    resume: bool = False
    events: bool = False
    # The v2 recipe (models/README.md compares each against v1's choice):
    sampling: str = "source"  # "source": every source equally often; "file": every photo equally often (v1)
    crop: str = "resized"  # "resized": random-resized crops; "plain": random squares (v1)
    hue_weighting: str = "saturation"  # hue error weighted by the true saturation; "none" (v1, the paper)
    hue_vector: bool = True  # hue predicted as (cos, sin); False: one tanh value (v1)
    stage1_weight: float = 1.0  # stage 1's own loss kept during stage 2 with this weight; 0 (v1) drops it
    schedule: str = "cosine"  # learning rate: "cosine" decay to 0 over the stage's budget, or "constant" (v1)
    ema: float = 0.999  # decay of the moving average of the weights that is saved; 0 (v1): none
    dilated: bool = False  # LR-CMGN's 1/4-size layers dilated (receptive field 253 px instead of 77)


# The options that define the model and its training (the recipe), as
# opposed to how and where a run goes (device, workers, budgets, events).
RECIPE_FIELDS = ("data", "size", "batch_size", "lr", "hue_weight", "hue_loss", "input_channel", "rcn",
                 "circular_resize", "width_scale", "seed", "sampling", "crop", "hue_weighting", "hue_vector",
                 "stage1_weight", "schedule", "ema", "dilated")
# What a checkpoint written before these options existed was trained with.
PRE_V2_RECIPE = {"sampling": "file", "crop": "plain", "hue_weighting": "none", "hue_vector": False,
                 "stage1_weight": 0.0, "schedule": "constant", "ema": 0.0, "dilated": False}


def model_config(cfg: TrainConfig) -> ModelConfig:
    base = ModelConfig(rcn=cfg.rcn, circular_resize=cfg.circular_resize, hue_vector=cfg.hue_vector,
                       lrcmgn_dilations=list(DILATED_LRCMGN) if cfg.dilated else [])
    if cfg.width_scale != 1.0:
        sc = lambda w: max(4, int(round(w * cfg.width_scale)))  # noqa: E731
        base.lrcmgn_widths = [sc(w) for w in base.lrcmgn_widths[:-1]] + [2]
        base.rcn_branch_widths = [sc(w) for w in base.rcn_branch_widths]
        base.rcn_fuse_width = sc(base.rcn_fuse_width)
        base.rcn_head_widths = [sc(w) for w in base.rcn_head_widths]
        base.plain_width = sc(base.plain_width)
    return base


# ---------------------------------------------------------------------------
# Events and distributed helpers
# ---------------------------------------------------------------------------


class Events:
    """One JSON object per line on stdout (the desktop application reads them)."""

    def __init__(self, enabled: bool):
        self.enabled = enabled

    def __call__(self, event: str, **data) -> None:
        if self.enabled:
            sys.stdout.write(json.dumps({"event": event, "time": round(time.time(), 3), **data}) + "\n")
            sys.stdout.flush()


def _dist_setup(device_name: str) -> tuple[int, int, torch.device]:
    """(rank, world size, device) — under torchrun, joins the process group."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, pick_device(device_name)
    rank = int(os.environ["RANK"])
    local = int(os.environ.get("LOCAL_RANK", rank))
    dev = pick_device(device_name)
    if dev.type == "cuda":
        torch.cuda.set_device(local)
        dev = torch.device("cuda", local)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return rank, world, dev


# ---------------------------------------------------------------------------
# Data feeding
# ---------------------------------------------------------------------------


class BatchSource:
    """Yields Bx3xSxS uint8 RGB batches on the training device, in an order
    fixed by (seed, stage, epoch) so a resumed run repeats it exactly."""

    def __init__(self, cfg: TrainConfig, rank: int, world: int, device: torch.device, log):
        self.cfg, self.rank, self.world, self.device = cfg, rank, world, device
        data = Path(cfg.data)
        self.cache = None
        if is_cache(data):
            self.cache = CacheArray(data)
            if self.cache.meta["size"] < cfg.size:
                raise ColorizerError(f"the cache in {data} holds {self.cache.meta['size']} px images, smaller than --size {cfg.size}")
            self.counts = {
                "images_used": len(self.cache),
                "excluded_gray": int(self.cache.meta.get("excluded_gray", 0)),
                "unreadable": int(self.cache.meta.get("unreadable", 0)),
            }
            # The whole cache goes where training happens: on a GPU the crops
            # and flips then cost nothing and no JPEG is ever decoded.
            arr = np.asarray(self.cache.images)
            self.images = torch.from_numpy(arr).to(device) if device.type == "cuda" else torch.from_numpy(np.array(arr))
            self.sizes = self.cache.sizes
            self.sources = self.cache.sources
            self.n = len(self.cache)
            val_src = Path(cfg.val) if cfg.val else None
            self.val_files = _val_files(val_src) if val_src else []
            self.val_cache = CacheArray(val_src) if val_src and is_cache(val_src) else None
        else:
            files = find_images(data, "train")
            if cfg.val:
                val_files = _val_files(Path(cfg.val))
            else:
                files, val_files = split_train_val(files, data)
            kept = filter_grayscale(files)
            self.counts = {
                "images_used": len(kept.files),
                "excluded_gray": len(kept.excluded_gray),
                "unreadable": len(kept.unreadable),
            }
            if not kept.files:
                raise ColorizerError(
                    f"no colour photos to train on in {data}: {len(files)} files, "
                    f"{len(kept.excluded_gray)} grayscale, {len(kept.unreadable)} unreadable"
                )
            self.dataset = FolderDataset(kept.files, cfg.size, train=True, seed=cfg.seed, crop=cfg.crop)
            self.sources = [source_of(f, data) for f in kept.files]
            self.n = len(kept.files)
            self.val_files = val_files
            self.val_cache = None
        log(f"training on {self.counts['images_used']} colour photos; excluded {self.counts['excluded_gray']} grayscale "
            f"and {self.counts['unreadable']} unreadable")
        n_sources = len(set(self.sources))
        if cfg.sampling == "source" and n_sources > 1:
            log(f"sampling {n_sources} sources evenly")
        per_rank = self.n // world
        if per_rank < 1:
            raise ColorizerError(f"{self.n} training photos are too few for {world} processes")
        self.batch = min(cfg.batch_size, per_rank)
        self.steps_per_epoch = per_rank // self.batch
        workers = cfg.workers if cfg.workers is not None else min(4, os.cpu_count() or 1)
        self.workers = 0 if self.cache is not None else workers

    def _order(self, stage: int, epoch: int) -> list[list[int]]:
        g = torch.Generator().manual_seed(self.cfg.seed * 1000003 + stage * 1009 + epoch)
        if self.cfg.sampling == "source":
            # An "epoch" is still as many draws as there are photos.
            perm = balanced_indices(self.sources, self.n, g)
        else:
            perm = torch.randperm(self.n, generator=g).tolist()
        mine = perm[self.rank :: self.world][: self.steps_per_epoch * self.batch]
        return [mine[i : i + self.batch] for i in range(0, len(mine), self.batch)]

    def batches(self, stage: int, epoch: int, start_step: int):
        order = self._order(stage, epoch)[start_step:]
        if self.cache is not None:
            for k, idx in enumerate(order, start=start_step):
                g = torch.Generator().manual_seed(self.cfg.seed * 7919 + stage * 104729 + epoch * 1000 + k * 17 + self.rank)
                if self.cfg.crop == "resized":
                    b = resized_crop_batch(self.images, self.sizes, torch.tensor(idx), self.cfg.size, g, True)
                else:
                    b = crop_flip_batch(self.images, torch.tensor(idx), self.cfg.size, g, True, self.sizes)
                yield b.to(self.device, non_blocking=True)
        else:
            self.dataset.set_epoch(epoch * 10 + stage)
            loader = torch.utils.data.DataLoader(
                self.dataset, batch_sampler=order, num_workers=self.workers, pin_memory=self.device.type == "cuda"
            )
            for b in loader:
                yield b.to(self.device, non_blocking=True)

    def validation_batch(self, max_images: int) -> torch.Tensor | None:
        """Up to max_images centre crops of validation photos, Bx3xSxS uint8 (CPU)."""
        size = self.cfg.size
        if self.val_cache is not None:
            arr = torch.from_numpy(np.array(self.val_cache.images[:max_images]))
            return resized_crop_batch(arr, self.val_cache.sizes, torch.arange(arr.shape[0]), size, torch.Generator(), False)
        if not self.val_files:
            return None
        from hsvcolorizer.data import load_square

        kept = filter_grayscale(self.val_files[: max_images * 2]).files[:max_images]
        if not kept:
            return None
        return torch.stack([torch.from_numpy(load_square(f, size)).permute(2, 0, 1) for f in kept])


def _val_files(path: Path) -> list[Path]:
    if is_cache(path):
        return []
    return find_images(path, "val")


# ---------------------------------------------------------------------------
# The trainer
# ---------------------------------------------------------------------------


def prepare_batch(rgb_u8: torch.Tensor, input_channel: str, circular: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Bx3xSxS uint8 RGB -> (network input Bx1xSxS, true hs Bx2xSxS, true hs at 1/4), all in [-1, 1]."""
    rgb = rgb_u8.float() / 255.0
    hsv = color.rgb_to_hsv(rgb)
    gray = color.rgb_to_luma(rgb) * 2 - 1 if input_channel == "luma" else hsv[:, 2:3]
    hs = hsv[:, :2]
    low = color.resize_hs(hs, (hs.shape[-2] // 4, hs.shape[-1] // 4), circular)
    return gray, hs, low


class _Stage1(nn.Module):
    """Only LR-CMGN, so DDP sees exactly the parameters stage 1 trains."""

    def __init__(self, model: TwoStageColorizer):
        super().__init__()
        self.lrcmgn = model.lrcmgn

    def forward(self, gray: torch.Tensor) -> torch.Tensor:
        return self.lrcmgn(gray)


class Trainer:
    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        _validate(cfg)
        self.rank, self.world, self.device = _dist_setup(cfg.device)
        self.main = self.rank == 0
        self.events = Events(cfg.events and self.main)
        self.out = Path(cfg.out)
        if self.main:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "previews").mkdir(exist_ok=True)
            _remove_stale_temp_files(self.out)
        self.amp = cfg.amp if cfg.amp is not None else self.device.type == "cuda"
        torch.manual_seed(cfg.seed)
        self.model = TwoStageColorizer(model_config(cfg)).to(self.device)
        if self.device.type == "cuda":
            self.model = self.model.to(memory_format=torch.channels_last)
            torch.backends.cudnn.benchmark = True
        self.stages = {"1": [1], "2": [2], "both": [1, 2]}[cfg.stage]
        self.state = {"stage": self.stages[0], "epoch": 0, "step_in_epoch": 0, "stage_step": 0, "global_step": 0,
                      "elapsed": 0.0, "history": []}
        self.optimizer: torch.optim.Optimizer | None = None
        self.ema: torch.optim.swa_utils.AveragedModel | None = None
        self.last_val: dict = {}
        self.t_start = time.time()

    # -- logging ---------------------------------------------------------
    def log(self, msg: str) -> None:
        if not self.main:
            return
        if self.cfg.events:
            self.events("log", message=msg)
        else:
            print(msg, file=sys.stderr, flush=True)

    # -- checkpoints -------------------------------------------------------
    def _ckpt_path(self) -> Path:
        return self.out / CHECKPOINT

    def _check_finite_weights(self) -> None:
        """Refuse to save NaN or infinite weights.

        The loss check cannot see them all: the loss of a step is computed
        before that step's update, so the last update before a save is unchecked.
        """
        bad = next((name for name, t in self.model.state_dict().items()
                    if t.is_floating_point() and not bool(torch.isfinite(t).all())), None)
        if bad is not None:
            raise ColorizerError(
                f"training diverged: the weights became NaN or infinite ({bad}) at stage {self.state['stage']}, "
                f"step {self.state['global_step']}; no weights were written from this point. "
                "Lower the learning rate (--lr) and resume from the last checkpoint")

    def save_checkpoint(self) -> None:
        # A stop request during the write unwinds at once (the temporary file
        # is removed, the previous checkpoint stays) rather than waiting.
        in_steps, self._in_steps = getattr(self, "_in_steps", False), False
        try:
            self._save_checkpoint()
        finally:
            self._in_steps = in_steps

    def _save_checkpoint(self) -> None:
        self._check_finite_weights()  # on every rank: they hold the same weights and must stop together
        if not self.main:
            return
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict() if self.optimizer else {},
            "ema": self.ema.state_dict() if getattr(self, "ema", None) is not None and self.optimizer else {},
            "state": {**self.state, "elapsed": self.state["elapsed"] + (time.time() - self.t_start)},
            "config": asdict(self.cfg),
            "rng": torch.get_rng_state(),
        }
        path = self._ckpt_path()
        # Checkpoints are our own: owner-only, like any training state.
        atomic_write(path, lambda f: torch.save(state, f), mode=0o600)
        self.events("checkpoint", path=str(path), stage=self.state["stage"], epoch=self.state["epoch"],
                    step=self.state["global_step"])

    def load_checkpoint(self) -> bool:
        path = self._ckpt_path()
        if not path.exists():
            return False
        try:
            # weights_only: our own checkpoint still must not be able to run code.
            ck = torch.load(path, map_location="cpu", weights_only=True)
            stored = dict(ck["config"])
        except Exception as e:  # noqa: BLE001 - any failure means the file is unusable
            raise ColorizerError(f"the checkpoint {path} is damaged ({type(e).__name__}); delete it to start over") from e
        # The recipe decides the model and its training; resuming with another
        # would silently train something else, so name what differs first.
        differ = [f"{k} {stored.get(k, PRE_V2_RECIPE.get(k))!r} there, {getattr(self.cfg, k)!r} now"
                  for k in RECIPE_FIELDS if stored.get(k, PRE_V2_RECIPE.get(k)) != getattr(self.cfg, k)]
        if differ:
            raise ColorizerError(f"the checkpoint in {self.out} was made with another recipe ({'; '.join(differ)}): "
                                 "resume with the same options, or use another --out")
        try:
            self.model.load_state_dict(ck["model"])
            state = ck["state"]
            _ = state["stage"], state["epoch"], state["step_in_epoch"]
        except Exception as e:  # noqa: BLE001 - any failure means the file is unusable
            raise ColorizerError(f"the checkpoint {path} is damaged ({type(e).__name__}); delete it to start over") from e
        self.state = state
        self._resume_optimizer = ck.get("optimizer") or None
        self._resume_ema = ck.get("ema") or None
        torch.set_rng_state(ck["rng"])
        self.log(f"resuming from {path}: stage {state['stage']}, epoch {state['epoch'] + 1}, step {state['step_in_epoch']}")
        return True

    # -- one stage ---------------------------------------------------------
    def _stage_module(self, stage: int) -> nn.Module:
        module: nn.Module = _Stage1(self.model) if stage == 1 else self.model
        if self.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            module = nn.parallel.DistributedDataParallel(module, device_ids=ids)
        return module

    def _loss(self, net: nn.Module, stage: int, rgb: torch.Tensor):
        gray, hs, low = prepare_batch(rgb, self.cfg.input_channel, self.cfg.circular_resize)
        if self.device.type == "cuda":
            gray = gray.contiguous(memory_format=torch.channels_last)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            pred = net(gray)
        if stage == 1:
            return self._criterion(pred.float(), low)
        total, ls, lh = self._criterion(pred[1].float(), hs)
        if self.cfg.stage1_weight > 0:
            # Stage 1 keeps answering for its own 1/4-size map, so that the
            # map the stage panel shows stays a colour map a person can read.
            total = total + self.cfg.stage1_weight * self._criterion(pred[0].float(), low)[0]
        return total, ls, lh

    def _criterion(self, pred: torch.Tensor, target: torch.Tensor):
        cfg = self.cfg
        return colorization_loss(pred, target, cfg.hue_weight, cfg.hue_loss == "circular", cfg.hue_weighting)

    def _lr_factor(self, step: int, total_steps: int, time_done: float | None) -> float:
        """The learning rate's share of --lr after `step` of `total_steps`
        (and `time_done`, the spent share of a time budget, whichever is further)."""
        # A short linear warm-up keeps Adam's first, noisy steps small: without
        # it, at 3e-4 and batch 64, the tanh outputs of a fresh network were
        # driven to +-1 within the first steps and stayed there (models/README.md).
        warm = min(1.0, (step + 1) / max(1, min(WARMUP_STEPS, total_steps // 10)))
        if self.cfg.schedule == "constant":
            return warm
        progress = step / max(total_steps, 1)
        if time_done is not None:
            progress = max(progress, time_done)
        return warm * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    def _start_ema(self) -> None:
        """A fresh moving average of the weights for the stage about to run.

        Its decay ramps up as (1 + n) / (10 + n) towards --ema, so that a
        short run's average is not dominated by its first, random weights.
        """
        self.ema = None
        if self.cfg.ema <= 0:
            return
        decay = self.cfg.ema

        def avg(ema_params, params, n):
            d = min(decay, (1 + float(n)) / (10 + float(n)))
            torch._foreach_lerp_(ema_params, params, 1 - d)

        self.ema = torch.optim.swa_utils.AveragedModel(self.model, multi_avg_fn=avg, use_buffers=False)
        resume = getattr(self, "_resume_ema", None)
        if resume:
            self.ema.load_state_dict(resume)
            self._resume_ema = None

    def _eval_model(self) -> TwoStageColorizer:
        """The weights that validation and the saved files use: the average when there is one."""
        return self.ema.module if getattr(self, "ema", None) is not None else self.model

    def _request_stop(self, _signum=None, _frame=None) -> None:
        # Inside the step loop, finish the step and checkpoint; elsewhere
        # (scanning data, validating, saving) unwind at once like Ctrl+C.
        if getattr(self, "_in_steps", False):
            self._stop_requested = True
        else:
            raise KeyboardInterrupt

    def run(self) -> Path | None:
        """Train every stage; SIGTERM or Ctrl+C stop after the current step
        with a checkpoint (KeyboardInterrupt is raised then)."""
        import signal
        import threading

        self._stop_requested = False
        previous = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, getattr(signal, "SIGTERM", None)):
                if sig is not None:
                    previous[sig] = signal.signal(sig, self._request_stop)
        try:
            return self._run()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _run(self) -> Path | None:
        cfg = self.cfg
        resumed = cfg.resume and self.load_checkpoint()
        if cfg.resume and not resumed:
            self.log(f"no checkpoint in {self.out}; starting a new run")
        if not resumed and 1 not in self.stages:
            self._load_stage1_init()
        self.source = BatchSource(cfg, self.rank, self.world, self.device, self.log)
        self.val_batch = self.source.validation_batch(cfg.val_max) if self.main else None
        self.events("start", config=asdict(cfg), parameters=count_parameters(self.model),
                    steps_per_epoch=self.source.steps_per_epoch, batch_size=self.source.batch, world_size=self.world,
                    device=str(self.device), **self.source.counts)
        if not resumed and cfg.init and 1 in self.stages:
            self._load_stage1_init()
        for stage in self.stages:
            if stage < self.state["stage"]:
                continue
            self._run_stage(stage)
        path = None
        if self.main:
            path = self._save_final(FINAL_WEIGHTS)
            self.events("done", weights=str(path), elapsed_s=round(self._elapsed(), 1))
            self.log(f"weights written to {path}")
        return path

    def _load_stage1_init(self) -> None:
        init = Path(self.cfg.init) if self.cfg.init else self.out / STAGE1_WEIGHTS
        if not init.exists():
            raise ColorizerError(f"stage 2 needs stage-1 weights: train stage 1 first or pass --init WEIGHTS ({init} not found)")
        model, _ = load_weights(init, "cpu")
        if model.config.lrcmgn_widths != self.model.config.lrcmgn_widths:
            raise ColorizerError(f"{init.name} has another LR-CMGN than this run's model")
        self.model.lrcmgn.load_state_dict(model.lrcmgn.state_dict())
        if model.config.rcn == self.model.config.rcn and model.config == self.model.config:
            self.model.rcn.load_state_dict(model.rcn.state_dict())
        self.log(f"starting from {init}")

    def _elapsed(self) -> float:
        return self.state["elapsed"] + (time.time() - self.t_start)

    def _run_stage(self, stage: int) -> None:
        cfg, src = self.cfg, self.source
        epochs = cfg.epochs_stage1 if stage == 1 else cfg.epochs_stage2
        max_steps = cfg.steps_stage1 if stage == 1 else cfg.steps_stage2
        minutes = cfg.minutes_stage1 if stage == 1 else cfg.minutes_stage2
        total_steps = epochs * src.steps_per_epoch if max_steps is None else min(max_steps, epochs * src.steps_per_epoch)
        if self.state["stage"] != stage:  # a fresh stage after the previous one finished
            self.state.update(stage=stage, epoch=0, step_in_epoch=0, stage_step=0)
        params = self.model.lrcmgn.parameters() if stage == 1 else self.model.parameters()
        self.optimizer = torch.optim.Adam(params, lr=cfg.lr)
        self._start_ema()
        resume_opt = getattr(self, "_resume_optimizer", None)
        if resume_opt:
            self.optimizer.load_state_dict(resume_opt)
            self._resume_optimizer = None
        net = self._stage_module(stage)
        net.train()
        stage_start = time.time()
        stage_step0 = self.state["stage_step"]
        last_ckpt_time = time.time()
        self.log(f"stage {stage}: {epochs} epochs of {src.steps_per_epoch} steps (batch {src.batch} x {self.world}), "
                 f"{total_steps} steps in all")
        try:
            from tqdm import tqdm
        except ImportError:  # pragma: no cover - tqdm is a dependency
            tqdm = None
        stop = False
        for epoch in range(self.state["epoch"], epochs):
            if stop:
                break
            self.state["epoch"] = epoch
            bar = None
            if tqdm is not None and self.main and not cfg.events:
                bar = tqdm(total=src.steps_per_epoch, initial=self.state["step_in_epoch"],
                           desc=f"stage {stage} epoch {epoch + 1}/{epochs}", unit="step", file=sys.stderr,
                           dynamic_ncols=True, disable=None)
            acc = torch.zeros(3, device=self.device)
            n_acc = 0
            t_log = time.time()
            imgs_since = 0
            self._in_steps = True
            for rgb in src.batches(stage, epoch, self.state["step_in_epoch"]):
                total, ls, lh = self._loss(net, stage, rgb)
                self.optimizer.zero_grad(set_to_none=True)
                total.backward()
                lr = cfg.lr * self._lr_factor(self.state["stage_step"], total_steps,
                                              None if minutes is None else (time.time() - stage_start) / (minutes * 60))
                for group in self.optimizer.param_groups:
                    group["lr"] = lr
                self.optimizer.step()
                if self.ema is not None:
                    self.ema.update_parameters(self.model)
                acc += torch.stack([ls.detach(), lh.detach(), total.detach()])
                n_acc += 1
                imgs_since += rgb.shape[0] * self.world
                self.state["step_in_epoch"] += 1
                self.state["stage_step"] += 1
                self.state["global_step"] += 1
                done_steps = self.state["stage_step"]
                budget_hit = (max_steps is not None and done_steps >= max_steps) or (
                    minutes is not None and time.time() - stage_start >= minutes * 60)
                at_log = (n_acc >= cfg.log_every or budget_hit or self._stop_requested
                          or self.state["step_in_epoch"] >= src.steps_per_epoch)
                if at_log:
                    vals = (acc / n_acc).tolist()  # one sync per log interval, not per step
                    if not all(math.isfinite(v) for v in vals):
                        raise ColorizerError(
                            f"training diverged: the loss became NaN at stage {stage}, epoch {epoch + 1}, "
                            f"step {self.state['step_in_epoch']}; no weights were written from this point. "
                            "Lower the learning rate (--lr) and resume from the last checkpoint")
                    dt = max(time.time() - t_log, 1e-9)
                    ips = imgs_since / dt
                    rate = (done_steps - stage_step0) / max(time.time() - stage_start, 1e-9)
                    remaining = max(total_steps - done_steps, 0) + self._steps_after(stage)
                    eta = remaining / rate if rate > 0 else None
                    if eta is not None and minutes is not None:
                        # A time budget ends the stage before its epochs do.
                        left = max(minutes * 60 - (time.time() - stage_start), 0.0)
                        later = self.cfg.minutes_stage2 if stage == 1 and 2 in self.stages else None
                        after = self._steps_after(stage) / rate
                        eta = min(eta, left + (min(after, later * 60) if later is not None else after))
                    rec = {"stage": stage, "epoch": epoch + 1, "epochs": epochs, "step": self.state["step_in_epoch"],
                           "steps_per_epoch": src.steps_per_epoch, "global_step": self.state["global_step"],
                           "loss_s": round(vals[0], 5), "loss_h": round(vals[1], 5), "loss": round(vals[2], 5),
                           "lr": round(lr, 8), "images_per_s": round(ips, 2), "eta_s": None if eta is None else round(eta, 1)}
                    self.state["history"].append({k: rec[k] for k in ("stage", "epoch", "global_step", "loss_s", "loss_h", "loss")})
                    self.events("step", **rec)
                    if bar is not None:
                        bar.set_postfix(loss=f"{vals[2]:.4f}", S=f"{vals[0]:.4f}", H=f"{vals[1]:.4f}", ips=f"{ips:.1f}")
                    acc.zero_()
                    n_acc, imgs_since, t_log = 0, 0, time.time()
                    due = (self.state["global_step"] % cfg.checkpoint_every == 0
                           or time.time() - last_ckpt_time > cfg.checkpoint_minutes * 60)
                    if due and self.state["step_in_epoch"] < src.steps_per_epoch and not budget_hit:
                        self.save_checkpoint()
                        last_ckpt_time = time.time()
                if bar is not None:
                    bar.update(1)
                if self._stop_requested:
                    # Stopped between two steps, where the state is whole:
                    # checkpoint it, so Stop then Resume loses nothing.
                    self.save_checkpoint()
                    self.events("stopped", stage=stage, epoch=epoch + 1, step=self.state["step_in_epoch"],
                                global_step=self.state["global_step"])
                    self.log(f"stopped at stage {stage}, epoch {epoch + 1}, step {self.state['step_in_epoch']}; "
                             "--resume continues from here")
                    raise KeyboardInterrupt
                if budget_hit:
                    stop = True
                    break
            self._in_steps = False
            if bar is not None:
                bar.close()
            self._end_of_epoch(stage, epoch, epochs)
            last_ckpt_time = time.time()
        if self.ema is not None:
            # The stage's result is its average; the next stage starts from it.
            self.model.load_state_dict(self.ema.module.state_dict())
            self.ema = None
        self.state.setdefault("done", {})[str(stage)] = {
            "steps": self.state["stage_step"],
            "epochs": round(self.state["stage_step"] / src.steps_per_epoch, 2),
        }
        if self.main:
            if stage == 1:
                self._save_final(STAGE1_WEIGHTS)
            self.log(f"stage {stage} finished after {self.state['stage_step']} steps")
        # The next stage starts fresh; mark this one done in the checkpoint.
        self.state.update(stage=stage + 1, epoch=0, step_in_epoch=0, stage_step=0)
        self.optimizer = None
        if stage < max(self.stages):
            self.save_checkpoint()

    def _steps_after(self, stage: int) -> int:
        if stage == 2 or 2 not in self.stages:
            return 0
        n = self.cfg.epochs_stage2 * self.source.steps_per_epoch
        return n if self.cfg.steps_stage2 is None else min(n, self.cfg.steps_stage2)

    def _end_of_epoch(self, stage: int, epoch: int, epochs: int) -> None:
        self._check_finite_weights()  # before validating and previewing garbage
        # Count the epoch as done before the checkpoint so resume starts the next one.
        self.state["epoch"] = epoch + 1
        self.state["step_in_epoch"] = 0
        if self.main:
            self.last_val = self.validate(stage)
            preview = self.preview(stage, epoch)
            self.events("epoch", stage=stage, epoch=epoch + 1, epochs=epochs, preview=str(preview) if preview else None,
                        **{f"val_{k}": v for k, v in self.last_val.items()})
            if self.last_val:
                self.log(f"stage {stage} epoch {epoch + 1}: validation " +
                         ", ".join(f"{k} {v:.4f}" for k, v in self.last_val.items()))
        self.save_checkpoint()

    @torch.no_grad()
    def _predict(self, rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        model = self._eval_model()
        model.eval()
        outs = []
        for i in range(0, rgb.shape[0], 8):
            part = rgb[i : i + 8].to(self.device)
            gray, hs, low = prepare_batch(part, self.cfg.input_channel, self.cfg.circular_resize)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
                p1, p2 = model(gray)
            outs.append((p1.float(), p2.float(), hs, low))
        self.model.train()
        return tuple(torch.cat([o[k] for o in outs]) for k in range(4))  # type: ignore[return-value]

    def validate(self, stage: int) -> dict:
        """Validation figures of the stage being trained: S, H and total loss,
        and PSNR (dB) of the luma recomposition against the original."""
        if self.val_batch is None:
            return {}
        p1, p2, hs, low = self._predict(self.val_batch)
        pred, target = (p1, low) if stage == 1 else (p2, hs)
        total, ls, lh = self._criterion(pred, target)
        rgb = self.val_batch.float().numpy().transpose(0, 2, 3, 1) / 255.0
        psnrs = []
        full = p2 if stage == 2 else None
        for i in range(rgb.shape[0]):
            gray = color.rgb_to_luma_np(rgb[i])
            hsi = (full[i] if full is not None else p1[i]).cpu().numpy()
            field = color.enlarge_hs_np(hsi, gray.shape[1], gray.shape[0], self.cfg.circular_resize)
            out = color.render_full(gray, field, "luma", 1.0, self.cfg.circular_resize, 8).astype(np.float32) / 255
            mse = float(((out - rgb[i]) ** 2).mean())
            psnrs.append(10 * math.log10(1.0 / max(mse, 1e-10)))
        return {"loss_s": round(float(ls), 5), "loss_h": round(float(lh), 5), "loss": round(float(total), 5),
                "psnr": round(float(np.mean(psnrs)), 3)}

    def preview(self, stage: int, epoch: int) -> Path | None:
        """gray | stage 1 | refined | original of the first validation photo."""
        if self.val_batch is None:
            return None
        p1, p2, _, _ = self._predict(self.val_batch[:1])
        rgb = self.val_batch[0].numpy().transpose(1, 2, 0)
        gray = color.rgb_to_luma_np(rgb.astype(np.float32) / 255.0)
        tiles = [np.repeat(color.from_unit_float(gray, 8)[..., None], 3, 2)]
        for hs in (p1[0], p2[0]):
            field = color.enlarge_hs_np(hs.cpu().numpy(), gray.shape[1], gray.shape[0], self.cfg.circular_resize)
            tiles.append(color.render_full(gray, field, "luma", 1.0, self.cfg.circular_resize, 8))
        tiles.append(rgb)
        path = self.out / "previews" / f"stage{stage}_epoch{epoch + 1:03d}.png"
        write_image(path, np.concatenate(tiles, axis=1))
        return path

    def _save_final(self, name: str) -> Path:
        cfg = self.cfg
        self._check_finite_weights()
        meta = {
            "input_channel": cfg.input_channel,
            "recompose": "luma",
            "parameters": {"total": count_parameters(self.model), "lrcmgn": count_parameters(self.model.lrcmgn),
                           "rcn": count_parameters(self.model.rcn)},
            "training": {
                "data": Path(cfg.data).name, **self.source.counts, "size": cfg.size, "batch_size": self.source.batch,
                "world_size": self.world, "lr": cfg.lr, "hue_loss": cfg.hue_loss, "hue_weight": cfg.hue_weight,
                "sampling": cfg.sampling, "crop": cfg.crop, "hue_weighting": cfg.hue_weighting,
                "stage1_weight": cfg.stage1_weight, "schedule": cfg.schedule, "ema": cfg.ema,
                "epochs_stage1": self.state.get("done", {}).get("1", {}).get("epochs", 0),
                "epochs_stage2": self.state.get("done", {}).get("2", {}).get("epochs", 0),
                "steps_stage1": self.state.get("done", {}).get("1", {}).get("steps", 0),
                "steps_stage2": self.state.get("done", {}).get("2", {}).get("steps", 0),
                "steps": self.state["global_step"], "device": str(self.device),
                "wall_time_s": round(self._elapsed(), 1), "seed": cfg.seed,
            },
            "validation": self.last_val,
        }
        return save_weights(self.model, self.out / name, meta)


def _remove_stale_temp_files(out: Path) -> None:
    """Delete the temporary files a killed run left behind (a checkpoint, weights
    or preview being written when the process died); the real files are intact."""
    for pattern in (".checkpoint.*.tmp", ".*.safetensors.*.tmp", "previews/.*.png.*.tmp"):
        for tmp in out.glob(pattern):
            try:
                tmp.unlink()
            except OSError:
                pass  # not ours to fight over; it is hidden and harmless


def _validate(cfg: TrainConfig) -> None:
    if cfg.stage not in ("1", "2", "both"):
        raise ColorizerError(f"--stage must be 1, 2 or both, not {cfg.stage!r}")
    if cfg.size < 16 or cfg.size % 4:
        raise ColorizerError(f"--size must be a multiple of 4 and at least 16, not {cfg.size}")
    if cfg.batch_size < 1:
        raise ColorizerError("--batch-size must be at least 1")
    if cfg.epochs_stage1 < 0 or cfg.epochs_stage2 < 0:
        raise ColorizerError("epochs must not be negative")
    if not (cfg.lr > 0):
        raise ColorizerError("--lr must be positive")
    if cfg.input_channel not in ("luma", "v"):
        raise ColorizerError("--input-channel must be luma or v")
    if cfg.hue_loss not in ("circular", "l1"):
        raise ColorizerError("--hue-loss must be circular or l1")
    for name, value, allowed in (("--sampling", cfg.sampling, ("source", "file")), ("--crop", cfg.crop, ("resized", "plain")),
                                 ("--hue-weighting", cfg.hue_weighting, ("saturation", "none")),
                                 ("--schedule", cfg.schedule, ("cosine", "constant"))):
        if value not in allowed:
            raise ColorizerError(f"{name} must be one of {', '.join(allowed)}, not {value!r}")
    if not (0 <= cfg.ema < 1):
        raise ColorizerError("--ema must be at least 0 and below 1")
    if cfg.stage1_weight < 0:
        raise ColorizerError("--stage1-weight must not be negative")
    if not Path(cfg.data).is_dir():
        raise ColorizerError(f"data folder {cfg.data} does not exist")
    if cfg.val and not Path(cfg.val).is_dir():
        raise ColorizerError(f"validation folder {cfg.val} does not exist")


def train(cfg: TrainConfig) -> Path | None:
    """Run a whole training; returns the final weights' path (rank 0)."""
    trainer = Trainer(cfg)
    try:
        return trainer.run()
    finally:
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()


def config_fields() -> list[str]:
    return [f.name for f in fields(TrainConfig)]
