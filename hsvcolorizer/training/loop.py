"""The staged training loop: stage 1 trains LR-CMGN alone against the
ground truth's H, S shrunk to 1/4 of the side; stage 2 trains the RCN while
fine-tuning LR-CMGN. Checkpoints with exact resume, JSON-line events for the
desktop application, and DistributedDataParallel under torchrun."""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn

from hsvcolorizer import color
from hsvcolorizer.device import native_bf16
from hsvcolorizer.errors import ColorizerError
from hsvcolorizer.hints import simulate_hints
from hsvcolorizer.imageio import write_image
from hsvcolorizer.losses import colorization_loss
from hsvcolorizer.networks import TwoStageColorizer, add_hint_input, count_parameters
from hsvcolorizer.training.checkpoint import read_checkpoint, write_checkpoint
from hsvcolorizer.training.distributed import agree, dist_setup, mean_over_ranks
from hsvcolorizer.training.feed import BatchSource, prepare_batch
from hsvcolorizer.training.recipe import TrainConfig, lr_factor, model_config, validate_config
from hsvcolorizer.training.runfolder import (
    CHECKPOINT,
    FINAL_WEIGHTS,
    PREVIEWS,
    STAGE1_WEIGHTS,
    Events,
    count,
    remove_stale_temp_files,
)
from hsvcolorizer.weights import load_weights, save_weights

# An epoch's end writes a checkpoint only when this long has passed since the
# last one (or the --checkpoint-every cadence falls on that step): a run of
# tiny epochs (64 px, 3 steps) would otherwise write its whole state, 120 MB
# for the full model, every few seconds. The end of a stage, a stop and the
# step and time cadences still always write, so a kill loses at most this.
EPOCH_CHECKPOINT_SECONDS = 120.0


class _Stage1(nn.Module):
    """Only LR-CMGN, so DDP sees exactly the parameters stage 1 trains."""

    def __init__(self, model: TwoStageColorizer):
        super().__init__()
        self.lrcmgn = model.lrcmgn

    def forward(self, gray: torch.Tensor, hints: torch.Tensor | None = None) -> torch.Tensor:
        return self.lrcmgn(gray, hints) if hints is not None else self.lrcmgn(gray)


@dataclass
class _StagePlan:
    """What a stage runs for, fixed when it starts (or resumes)."""

    stage: int
    net: nn.Module
    epochs: int
    max_steps: int | None
    minutes: float | None
    total_steps: int
    start: float  # when the stage started, resumed time included (for budgets)
    step0: int  # stage steps done before this process (for the pace)
    wall_start: float  # when this process started the stage (for the pace)
    last_ckpt_time: float = field(default_factory=time.time)


class _LogWindow:
    """Losses and images summed since the last "step" event."""

    def __init__(self, acc: torch.Tensor):
        self.acc = acc
        self.reset()

    def add(self, losses: torch.Tensor, images: int) -> None:
        self.acc += losses
        self.count += 1
        self.images += images

    def reset(self) -> None:
        self.acc.zero_()
        self.count, self.images, self.since = 0, 0, time.time()


class Trainer:
    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        validate_config(cfg)
        self.rank, self.world, self.device = dist_setup(cfg.device)
        self.main = self.rank == 0
        self.events = Events(cfg.events and self.main)
        self.out = Path(cfg.out)
        if self.main:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / PREVIEWS).mkdir(exist_ok=True)
            remove_stale_temp_files(self.out)
        # bf16 autocast where the hardware multiplies bf16 natively (CUDA, a
        # CPU with AMX: 3-4x the images per second of fp32 on the 2-core Xeon
        # of issue 11); fp32 elsewhere, where bf16 would be emulated.
        self.amp = cfg.amp if cfg.amp is not None else native_bf16(self.device)
        torch.manual_seed(cfg.seed)
        self.model = TwoStageColorizer(model_config(cfg)).to(self.device)
        if self.device.type == "cuda" or self.amp:  # the layout cuDNN's and oneDNN's fast kernels want
            self.model = self.model.to(memory_format=torch.channels_last)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        self.stages = {"1": [1], "2": [2], "both": [1, 2]}[cfg.stage]
        self.state = {"stage": self.stages[0], "epoch": 0, "step_in_epoch": 0, "stage_step": 0, "global_step": 0,
                      "elapsed": 0.0, "history": [], "precisions": [self._precision]}
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
            "state": {**self.state, "elapsed": self.state["elapsed"] + (time.time() - self.t_start),
                      "stage_seconds": (time.time() - self._stage_start) if getattr(self, "_stage_start", None)
                      else float(self.state.get("stage_seconds", 0.0))},
            "config": asdict(self.cfg),
            "rng": torch.get_rng_state(),
        }
        path = self._ckpt_path()
        write_checkpoint(path, state)
        self.events("checkpoint", path=str(path), stage=self.state["stage"], epoch=self.state["epoch"],
                    step=self.state["global_step"])

    @property
    def _precision(self) -> str:
        return "bf16" if self.amp else "fp32"

    def load_checkpoint(self) -> bool:
        path = self._ckpt_path()
        if not path.exists():
            return False
        ck = read_checkpoint(path, self.cfg)
        try:
            self.model.load_state_dict(ck["model"])
        except Exception as e:  # noqa: BLE001 - the recipe matched, so the tensors are damaged
            raise ColorizerError(f"the checkpoint {path} is damaged ({type(e).__name__}); delete it to start over") from e
        state = ck["state"]
        self.state = state
        # A run resumed on other hardware may change its number format: the
        # weights say every one it trained in.
        used = state.setdefault("precisions", [])
        if self._precision not in used:
            used.append(self._precision)
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
        hints = self._simulated_hints(rgb) if self.cfg.hints else None
        if self.device.type == "cuda":
            gray = gray.contiguous(memory_format=torch.channels_last)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            pred = net(gray, hints) if hints is not None else net(gray)
        if stage == 1:
            return self._criterion(pred.float(), low)
        total, ls, lh = self._criterion(pred[1].float(), hs)
        if self.cfg.stage1_weight > 0:
            # Stage 1 keeps answering for its own 1/4-size map, so that the
            # map the stage panel shows stays a colour map a person can read.
            total = total + self.cfg.stage1_weight * self._criterion(pred[0].float(), low)[0]
        return total, ls, lh

    def _simulated_hints(self, rgb_u8: torch.Tensor) -> torch.Tensor:
        """Bx4xSxS hint map drawn from the batch's own colours; the generator
        is seeded by the step so a resumed run draws the same hints."""
        g = torch.Generator().manual_seed(self.cfg.seed * 1000003 + self.state["global_step"] * 17 + self.rank)
        return simulate_hints(rgb_u8.float() / 255.0, g)

    def _criterion(self, pred: torch.Tensor, target: torch.Tensor):
        cfg = self.cfg
        return colorization_loss(pred, target, cfg.hue_weight, cfg.hue_loss == "circular", cfg.hue_weighting)

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
        if self.main and self.val_batch is None:
            why = (f"no colour photo could be read from {cfg.val}" if cfg.val else
                   f"{cfg.data} holds too few photos to hold any out (at least 4 are needed)")
            self.log(f"no validation: {why}; the run shows no validation figures or previews. "
                     "Pass --val FOLDER to validate on photos of your own")
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
        mine, theirs = self.model.config, model.config
        if theirs.hint_input and not mine.hint_input:
            raise ColorizerError(f"{init.name} reads colour hints; pass --hints to continue from it")
        state = model.state_dict()
        if mine.hint_input and not theirs.hint_input:
            # Zero weights for the hint channels: training starts from
            # exactly the hint-free model's colours.
            state = add_hint_input(state)
        self.model.lrcmgn.load_state_dict({k[len("lrcmgn."):]: v for k, v in state.items() if k.startswith("lrcmgn.")})
        if dataclasses.replace(theirs, hint_input=mine.hint_input) == mine:
            self.model.rcn.load_state_dict(model.rcn.state_dict())
        self.log(f"starting from {init}" + (" (hint input added)" if mine.hint_input and not theirs.hint_input else ""))

    def _elapsed(self) -> float:
        return self.state["elapsed"] + (time.time() - self.t_start)

    def _run_stage(self, stage: int) -> None:
        """Train one stage to the end of its epochs or budget."""
        plan = self._begin_stage(stage)
        for epoch in range(self.state["epoch"], plan.epochs):
            self.state["epoch"] = epoch
            ended = self._run_epoch(plan, epoch)
            self._end_of_epoch(plan, epoch, last=ended or epoch + 1 >= plan.epochs)
            if ended:
                break
        self._finish_stage(stage)

    def _begin_stage(self, stage: int) -> "_StagePlan":
        """Budgets, optimizer and moving average of a stage, fresh or resumed."""
        cfg, src = self.cfg, self.source
        epochs = cfg.epochs_stage1 if stage == 1 else cfg.epochs_stage2
        max_steps = cfg.steps_stage1 if stage == 1 else cfg.steps_stage2
        minutes = cfg.minutes_stage1 if stage == 1 else cfg.minutes_stage2
        total_steps = epochs * src.steps_per_epoch if max_steps is None else min(max_steps, epochs * src.steps_per_epoch)
        if self.state["stage"] != stage:  # a fresh stage after the previous one finished
            self.state.update(stage=stage, epoch=0, step_in_epoch=0, stage_step=0, stage_seconds=0.0)
        params = self.model.lrcmgn.parameters() if stage == 1 else self.model.parameters()
        self.optimizer = torch.optim.Adam(params, lr=cfg.lr)
        self._start_ema()
        resume_opt = getattr(self, "_resume_optimizer", None)
        if resume_opt:
            self.optimizer.load_state_dict(resume_opt)
            self._resume_optimizer = None
        net = self._stage_module(stage)
        net.train()
        # A resumed stage goes on with the time it had already spent, so that
        # --minutes-stage1/2 are budgets for the stage, not for each process.
        start = time.time() - float(self.state.get("stage_seconds", 0.0))
        self._stage_start = start
        self.log(f"stage {stage}: {count(epochs, 'epoch')} of {count(src.steps_per_epoch, 'step')} "
                 f"(batch {src.batch} x {self.world}), {count(total_steps, 'step')} in all")
        return _StagePlan(stage, net, epochs, max_steps, minutes, total_steps, start, self.state["stage_step"], time.time())

    def _run_epoch(self, plan: "_StagePlan", epoch: int) -> bool:
        """The steps of one epoch; True when the stage's budget ended it."""
        cfg, src, stage = self.cfg, self.source, plan.stage
        bar = self._progress_bar(plan, epoch)
        log = _LogWindow(torch.zeros(3, device=self.device))
        self._in_steps = True
        try:
            for rgb in src.batches(stage, epoch, self.state["step_in_epoch"]):
                total, ls, lh = self._loss(plan.net, stage, rgb)
                self.optimizer.zero_grad(set_to_none=True)
                total.backward()
                time_done = None if plan.minutes is None else (time.time() - plan.start) / (plan.minutes * 60)
                lr = cfg.lr * lr_factor(cfg.schedule, self.state["stage_step"], plan.total_steps, time_done)
                for group in self.optimizer.param_groups:
                    group["lr"] = lr
                self.optimizer.step()
                if self.ema is not None:
                    self.ema.update_parameters(self.model)
                log.add(torch.stack([ls.detach(), lh.detach(), total.detach()]), rgb.shape[0] * self.world)
                for key in ("step_in_epoch", "stage_step", "global_step"):
                    self.state[key] += 1
                budget_hit, ckpt_by_time, stop_now = agree(self.world, self.device, (
                    self._budget_spent(plan),
                    time.time() - plan.last_ckpt_time > cfg.checkpoint_minutes * 60,
                ), self._stop_requested)
                epoch_end = self.state["step_in_epoch"] >= src.steps_per_epoch
                if log.count >= cfg.log_every or budget_hit or stop_now or epoch_end:
                    self._log_step(plan, epoch, log, lr, bar)
                # Each periodic action on its own cadence, looked at every step
                # (the end of an epoch or of the stage checkpoints anyway).
                due = self.state["global_step"] % cfg.checkpoint_every == 0 or ckpt_by_time
                if due and not (epoch_end or budget_hit or stop_now):
                    self.save_checkpoint()
                    plan.last_ckpt_time = time.time()
                if bar is not None:
                    bar.update(1)
                if stop_now:
                    self._stop_here(stage, epoch)
                if budget_hit:
                    return True
            return False
        finally:
            self._in_steps = False
            if bar is not None:
                bar.close()

    def _budget_spent(self, plan: "_StagePlan") -> bool:
        done = self.state["stage_step"]
        return (plan.max_steps is not None and done >= plan.max_steps) or (
            plan.minutes is not None and time.time() - plan.start >= plan.minutes * 60)

    def _progress_bar(self, plan: "_StagePlan", epoch: int):
        """A tqdm bar on stderr for people at a terminal (not with --events)."""
        if not self.main or self.cfg.events:
            return None
        from tqdm import tqdm

        return tqdm(total=self.source.steps_per_epoch, initial=self.state["step_in_epoch"],
                    desc=f"stage {plan.stage} epoch {epoch + 1}/{plan.epochs}", unit="step", file=sys.stderr,
                    dynamic_ncols=True, disable=None)

    def _log_step(self, plan: "_StagePlan", epoch: int, log: "_LogWindow", lr: float, bar) -> None:
        """One "step" event with the mean losses since the last one (over all ranks)."""
        stage, src = plan.stage, self.source
        vals = (mean_over_ranks(log.acc, self.world) / log.count).tolist()  # one sync per log line, not per step
        if not all(math.isfinite(v) for v in vals):
            raise ColorizerError(
                f"training diverged: the loss became NaN at stage {stage}, epoch {epoch + 1}, "
                f"step {self.state['step_in_epoch']}; no weights were written from this point. "
                "Lower the learning rate (--lr) and resume from the last checkpoint")
        ips = log.images / max(time.time() - log.since, 1e-9)
        rec = {"stage": stage, "epoch": epoch + 1, "epochs": plan.epochs, "step": self.state["step_in_epoch"],
               "steps_per_epoch": src.steps_per_epoch, "global_step": self.state["global_step"],
               "loss_s": round(vals[0], 5), "loss_h": round(vals[1], 5), "loss": round(vals[2], 5),
               "lr": round(lr, 8), "images_per_s": round(ips, 2), "eta_s": self._eta(plan)}
        self.state["history"].append({k: rec[k] for k in ("stage", "epoch", "global_step", "loss_s", "loss_h", "loss")})
        self.events("step", **rec)
        if bar is not None:
            bar.set_postfix(loss=f"{vals[2]:.4f}", S=f"{vals[0]:.4f}", H=f"{vals[1]:.4f}", ips=f"{ips:.1f}")
        log.reset()

    def _eta(self, plan: "_StagePlan") -> float | None:
        """Seconds left in the run at this stage's pace; a time budget ends a stage before its epochs do."""
        done = self.state["stage_step"]
        rate = (done - plan.step0) / max(time.time() - plan.wall_start, 1e-9)
        if rate <= 0:
            return None
        after = self._steps_after(plan.stage)
        eta = (max(plan.total_steps - done, 0) + after) / rate
        if plan.minutes is not None:
            left = max(plan.minutes * 60 - (time.time() - plan.start), 0.0)
            later = self.cfg.minutes_stage2 if plan.stage == 1 and 2 in self.stages else None
            eta = min(eta, left + (min(after / rate, later * 60) if later is not None else after / rate))
        return round(eta, 1)

    def _stop_here(self, stage: int, epoch: int, step: int | None = None) -> None:
        """Stopped between two steps, where the state is whole: checkpoint it,
        so Stop then Resume loses nothing, and unwind."""
        self.save_checkpoint()
        step = self.state["step_in_epoch"] if step is None else step
        self.events("stopped", stage=stage, epoch=epoch + 1, step=step, global_step=self.state["global_step"])
        self.log(f"stopped at stage {stage}, epoch {epoch + 1}, step {step}; --resume continues from here")
        raise KeyboardInterrupt

    def _finish_stage(self, stage: int) -> None:
        """The stage's result (its moving average), its record, and a checkpoint that marks it done."""
        if self.ema is not None:
            # The stage's result is its average; the next stage starts from it.
            self.model.load_state_dict(self.ema.module.state_dict())
            self.ema = None
        self.state.setdefault("done", {})[str(stage)] = {
            "steps": self.state["stage_step"],
            "epochs": round(self.state["stage_step"] / self.source.steps_per_epoch, 2),
        }
        if self.main:
            if stage == 1:
                self._save_final(STAGE1_WEIGHTS)
            self.log(f"stage {stage} finished after {count(self.state['stage_step'], 'step')}")
        # The next stage starts fresh; mark this one done in the checkpoint.
        self.state.update(stage=stage + 1, epoch=0, step_in_epoch=0, stage_step=0, stage_seconds=0.0)
        self._stage_start = None
        self.optimizer = None
        if stage < max(self.stages):
            self.save_checkpoint()

    def _steps_after(self, stage: int) -> int:
        if stage == 2 or 2 not in self.stages:
            return 0
        n = self.cfg.epochs_stage2 * self.source.steps_per_epoch
        return n if self.cfg.steps_stage2 is None else min(n, self.cfg.steps_stage2)

    def _end_of_epoch(self, plan: "_StagePlan", epoch: int, last: bool) -> None:
        """Validation, preview and "epoch" event; a checkpoint when the stage
        ends here or one is due (see EPOCH_CHECKPOINT_SECONDS)."""
        stage = plan.stage
        self._check_finite_weights()  # before validating and previewing garbage
        # Count the epoch as done before the checkpoint so resume starts the next one.
        self.state["epoch"] = epoch + 1
        self.state["step_in_epoch"] = 0
        try:
            if self.main:
                self.last_val = self.validate(stage)
                preview = self.preview(stage, epoch)
                self.events("epoch", stage=stage, epoch=epoch + 1, epochs=plan.epochs,
                            preview=str(preview) if preview else None,
                            **{f"val_{k}": v for k, v in self.last_val.items()})
                if self.last_val:
                    self.log(f"stage {stage} epoch {epoch + 1}: validation " +
                             ", ".join(f"{k} {v:.4f}" for k, v in self.last_val.items()))
        except KeyboardInterrupt:
            # Stopped while validating: the epoch's steps are whole and may be
            # minutes past the last checkpoint now that epochs do not always
            # write one, so keep them as a stop between two steps does.
            self._stop_here(stage, epoch, step=self.source.steps_per_epoch)
        since = time.time() - plan.last_ckpt_time
        due = (self.state["global_step"] % self.cfg.checkpoint_every == 0
               or since >= min(EPOCH_CHECKPOINT_SECONDS, self.cfg.checkpoint_minutes * 60))
        if last or due:
            self.save_checkpoint()
            plan.last_ckpt_time = time.time()

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
        path = self.out / PREVIEWS / f"stage{stage}_epoch{epoch + 1:03d}.png"
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
                "stage1_weight": cfg.stage1_weight, "schedule": cfg.schedule, "ema": cfg.ema, "hints": cfg.hints,
                "init": Path(cfg.init).name if cfg.init else None,
                "epochs_stage1": self.state.get("done", {}).get("1", {}).get("epochs", 0),
                "epochs_stage2": self.state.get("done", {}).get("2", {}).get("epochs", 0),
                "steps_stage1": self.state.get("done", {}).get("1", {}).get("steps", 0),
                "steps_stage2": self.state.get("done", {}).get("2", {}).get("steps", 0),
                "steps": self.state["global_step"], "device": str(self.device),
                "precision": "+".join(self.state.get("precisions") or [self._precision]),
                "wall_time_s": round(self._elapsed(), 1), "seed": cfg.seed,
            },
            "validation": self.last_val,
        }
        return save_weights(self.model, self.out / name, meta)


def train(cfg: TrainConfig) -> Path | None:
    """Run a whole training; returns the final weights' path (rank 0)."""
    trainer = Trainer(cfg)
    try:
        return trainer.run()
    finally:
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
